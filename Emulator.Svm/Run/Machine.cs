using System.Diagnostics;
using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Emulator.Core.Devices.Acpi;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Svm.Avic;
using Emulator.Svm.Exits;
using Emulator.Svm.Nested;

namespace Emulator.Svm.Run;

/// <summary>How a machine is built (the <c>emu boot</c> options that are not about the image).</summary>
public sealed class MachineOptions
{
    public const ulong DefaultMemory = 1UL << 30;

    public ulong MemorySize { get; init; } = DefaultMemory;

    /// <summary>Number of vCPUs (<c>--smp</c>); vCPU 0 is the bootstrap processor, the others wait for INIT/SIPI.</summary>
    public int Cpus { get; init; } = 1;

    public const int MaxCpus = 64;

    /// <summary>Guest console output (COM1 and the 0xE9 debug console); null discards it.</summary>
    public Stream? ConsoleOutput { get; init; }

    /// <summary>Host-side diagnostics (unimplemented instructions, traces); null discards them.</summary>
    public TextWriter? Diagnostics { get; init; }

    /// <summary>Report port accesses no device claims (<c>--trace-io</c>).</summary>
    public bool TraceIo { get; init; }

    /// <summary>Print the RIP of every instruction before it runs (<c>--trace</c>); slow, off by default.</summary>
    public bool Trace { get; init; }

    /// <summary>CPU feature switches (<c>--cpu</c>), e.g. "-avic", "+svm", applied to <see cref="Cpu.Features"/>.</summary>
    public IReadOnlyList<string> CpuFeatures { get; init; } = [];

    /// <summary>How L0 removes the APIC-access page when APICv is inhibited (<c>--apicv-toggle zap|memslot</c>).</summary>
    public Emulator.Mmu.Fault.ApicvToggle ApicvToggle { get; init; } = Emulator.Mmu.Fault.ApicvToggle.Zap;

    /// <summary>Which kernel's NESTED inhibit L0 follows (<c>--apicv-nested vm|vcpu</c>): Linux 5.15's VM-wide one by default.</summary>
    public ApicvNestedInhibit ApicvNested { get; init; } = ApicvNestedInhibit.Vm;

    /// <summary>
    /// Wall-clock time the RTC and kvmclock show at cycle 0 (QEMU's <c>-rtc base=</c>); null uses the fixed
    /// <see cref="Emulator.Core.Devices.Legacy.Rtc.DefaultEpoch"/>, so runs stay repeatable.
    /// </summary>
    public DateTime? RtcBase { get; init; }

    /// <summary>The cycle model's costs (<c>--cost-table FILE</c>); null uses <see cref="CostTable.Default"/>.</summary>
    public CostTable? Costs { get; init; }

    /// <summary>
    /// The PIT re-injects ticks the guest has not acknowledged yet (<c>--pit-reinject</c>; KVM_REINJECT_CONTROL). KVM's
    /// in-kernel PIT starts with it on and QEMU keeps it for <c>lost_tick_policy=delay</c>; this machine starts as
    /// QEMU does with <c>-global kvm-pit.lost_tick_policy=discard</c>, the setting AVIC needs, since reinjection
    /// inhibits APICv (PIT_REINJ).
    /// </summary>
    public bool PitReinject { get; init; }
}

/// <summary>
/// How L0 keeps AVIC away from a nested guest (docs/avic.md, "5.19's per-vCPU NESTED"). KVM gives L2 no AVIC either
/// way; the kernels differ in what L1 loses.
/// </summary>
public enum ApicvNestedInhibit
{
    /// <summary>Linux 5.15: a guest whose CPUID has SVM inhibits APICv VM-wide at creation, for ever (NESTED).</summary>
    Vm,

    /// <summary>
    /// Linux 5.19 (commit f44509f849fe): no VM-wide NESTED; a vCPU's own AVIC is off only while it runs L2 (nested
    /// VMRUN and #VMEXIT ask for its APICv update, and avic_vcpu_get_apicv_inhibit_reasons names NESTED in guest mode).
    /// </summary>
    Vcpu,
}

/// <summary>Limits of one run; counts are totals since the machine was built.</summary>
public sealed class RunLimits
{
    public ulong MaxInstructions { get; init; } = ulong.MaxValue;
    public ulong MaxCycles { get; init; } = ulong.MaxValue;
    public TimeSpan? Timeout { get; init; }
}

/// <summary>Why a run ended.</summary>
public enum StopReason
{
    DebugExit,
    Shutdown,
    Stopped,
    TripleFault,
    Halted,
    InstructionLimit,
    CycleLimit,
    Timeout,
}

/// <summary>The end of a run: process exit status (PLATFORM.md "Exit status"), reason, RIP and the stderr line.</summary>
public sealed record RunResult(int ExitStatus, StopReason Reason, ulong Rip, string? Message);

/// <summary>
/// One PC as PLATFORM.md describes it: guest RAM, the vCPU, the console and test devices on their ports,
/// and an image loaded by the boot loaders. <see cref="Run"/> runs the CPU in slices so wall-clock limits
/// are checked between them, and maps the end of the run to the documented exit status.
/// </summary>
public sealed class Machine : IDisposable
{
    /// <summary>
    /// Exit status when the guest can make no more progress (triple-fault shutdown, every vCPU halted
    /// with nothing to wake it). Even, so it never looks like an isa-debug-exit status (always odd).
    /// </summary>
    public const int ExitNoProgress = 4;

    /// <summary>Exit status when a limit (instructions, cycles, wall-clock timeout) ends the run, as timeout(1) reports.</summary>
    public const int ExitLimit = 124;

    /// <summary>Instructions per <see cref="Cpu.Run"/> call between timeout checks (a few ms of guest time).</summary>
    public const ulong SliceInstructions = 4_000_000;

    /// <summary>
    /// Cycles per slice as well: a guest caught in a loop of faults retires no instructions but still
    /// spends cycles, and the timeout must still be checked.
    /// </summary>
    public const ulong SliceCycles = 1_000_000;

    private readonly MachineOptions _options;
    private readonly TextWriter _diag;
    private StopReason _stopReason = StopReason.Stopped;
    private Cpu _current;

    public Machine(MachineOptions? options = null)
    {
        _options = options ?? new MachineOptions();
        if (_options.Cpus is < 1 or > MachineOptions.MaxCpus)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"--smp: between 1 and {MachineOptions.MaxCpus} vCPUs");
        }

        _diag = _options.Diagnostics ?? TextWriter.Null;
        Memory = BuildMemory(_options.MemorySize, _options.ApicvToggle, out _hostMemory, out _mmu);
        var cpus = new Cpu[_options.Cpus];
        for (int i = 0; i < cpus.Length; i++)
        {
            var cpu = new Cpu(Memory, _options.Costs) { Diagnostic = _diag.WriteLine, IsBsp = i == 0 };

            // L0 is a KVM: CPUID.1:ECX[31] says a hypervisor is present (KVM always sets it).
            cpu.Features[CpuFeature.Hypervisor] = true;
            if (_options.CpuFeatures.Count != 0 && !cpu.Features.TryApply(string.Join(',', _options.CpuFeatures), out string? featureError))
            {
                DisposeMemory();
                throw new ArgumentException($"--cpu: {featureError}", nameof(options));
            }

            if (i != 0)
            {
                // Application processors: APIC without the BSP flag, parked until INIT + Startup IPI.
                cpu.ApicBase &= ~Cpu.ApicBaseBsp;
                cpu.WaitingForSipi = true;
            }

            cpu.YieldOnPause = cpus.Length > 1;
            cpus[i] = cpu;
        }

        Cpus = cpus;
        _current = cpus[0];
        DateTime rtcBase = _options.RtcBase ?? Emulator.Core.Devices.Legacy.Rtc.DefaultEpoch;
        Platform = new PcPlatform(Memory, cpus, rtcBase);
        Hypercalls = new Hypercalls(Platform.Apics);
        KvmClock = new KvmClock(Memory, cpus, rtcBase);
        var l0 = new L0Svm[cpus.Length];
        for (int i = 0; i < cpus.Length; i++)
        {
            // L1 runs under L0's vmcb01 on every vCPU: its intercepted instructions and events exit to L0's handler
            // table (hypercalls, VMCALL through #UD, I/O, MSRs, CPUID, HLT, …), and with SVM reported L0 emulates
            // L1's VMRUN, VMLOAD and VMSAVE and reflects L2's exits (KVM's nested.c).
            var cpu = cpus[i];
            cpu.HypervisorLeaves = KvmClock.Leaves;
            cpu.ParavirtMsrs = KvmClock.Msrs;
            l0[i] = new L0Svm(Memory, Hypercalls).Attach(cpu);
        }

        L0 = l0;

        Apicv = new ApicvState(_mmu, cpus);
        _avicTables = new AvicTables(cpus.Length);
        for (int i = 0; i < cpus.Length; i++)
        {
            var apic = Platform.Apics[i];

            // L0's LAPIC emulation limits periodic timers to KVM's min_timer_period_us (200 µs).
            apic.MinPeriodCycles = KvmMinTimerPeriodCycles;

            // KVM inhibits APICv the first time the guest renumbers or moves an APIC.
            var cpu = cpus[i];
            apic.LayoutChanged = (_, change) => Apicv.SetInhibit(
                change == ApicLayoutChange.IdModified ? ApicvInhibitReason.ApicIdModified : ApicvInhibitReason.ApicBaseModified, true, cpu);

            // Every vCPU gets AVIC (the local APIC's register page as backing page, host core i); it is on while no
            // reason inhibits APICv, from the vCPU's first entry (its ApicvUpdate request).
            l0[i].ApicvActive = () => Apicv.Active;
            bool perVcpuNested = _options.ApicvNested == ApicvNestedInhibit.Vcpu;
            l0[i].NestedInhibitsVcpu = perVcpuNested;
            l0[i].Nested.ApicvUpdateOnTransition = perVcpuNested;
            l0[i].IrqWindow = requested => Apicv.SetInhibit(ApicvInhibitReason.IrqWindow, requested, cpu);
            l0[i].SetUpAvic(cpus[i], _avicTables, new LocalApicBacking(cpus[i], apic), (int)apic.InitialApicId, i);
        }

        SetCreationInhibits(cpus[0].Features);
        Platform.PitReinjection.Changed = on => Apicv.SetInhibit(ApicvInhibitReason.PitReinjection, on);
        Platform.PitReinjection.Enabled = _options.PitReinject;
        Apicv.CreationDone();

        var events = Platform.Events;
        events.Clock = () => _current.Cycles;
        events.EarliestChanged = deadline =>
        {
            if (deadline < _current.NextEventCycle)
            {
                // Lowering it requests VcpuRequest.Event; the kick ends the block at the instruction that armed it.
                _current.NextEventCycle = deadline;
                _current.MakeRequestAndKick(VcpuRequest.Event);
            }
        };
        foreach (var cpu in cpus)
        {
            cpu.OnTimerEvent = c =>
            {
                events.RunDue(c.Cycles);
                c.NextEventCycle = events.NextDeadline;
            };
        }

        Console = new ConsoleSink(_options.ConsoleOutput ?? Stream.Null);
        Com1 = new Uart16550(Console);
        DebugConsole = new DebugConsole(Console);
        TestDev = new PcTestDev(DebugConsole);
        FwCfg = new FwCfg(Memory.RamSize, _options.Cpus, _options.Cpus, MemoryMap.For(Memory));

        var io = Memory.Io;
        io.Register(Uart16550.Com1Base, 8, Com1);
        io.Register(DebugExit.Base, DebugExit.Size, new DebugExit(status => RequestStop(status, StopReason.DebugExit)));
        io.Register(BochsShutdown.Port, 1, new BochsShutdown(status => RequestStop(status, StopReason.Shutdown)));
        io.Register(FwCfg.PortBase, 2, FwCfg);
        TestDev.Attach(io, Memory.Mmio);
        TestDev.IrqChanged = Platform.Isa.SetIrq;
        Com1.IrqChanged = level => Platform.Isa.SetIrq(Uart16550.Com1Irq, level);

        // ACPI tables in the BIOS area, the ACPI PM block (SCI on ISA IRQ 9), the PCI host bridge. Soft-off
        // and a 0xCF9 reset end the run with status 0, as QEMU with --no-reboot does.
        AcpiTables.Build(cpus.Length).Install(Memory);
        io.Register(PmTimer.PortBase, PmTimer.Size, new PmTimer(events, Platform.Isa, () => RequestStop(0, StopReason.Shutdown)));
        io.Register(PciHost.PortBase, PciHost.Size, new PciHost(Memory.RamSize, () => RequestStop(0, StopReason.Shutdown)));
        if (_options.TraceIo)
        {
            io.Trace = _diag.WriteLine;
        }
    }

    // The VM's memory, owned here: the host arena behind guest RAM and L0's MMU (memslots, TDP, shadow NPT).
    private readonly HostMemoryArena _hostMemory;
    private readonly MmuContext _mmu;

    /// <summary>
    /// Builds the VM's memory as KVM's VM creation and QEMU's board setup do together: host memory, L0's MMU
    /// reading L1's tables through that memory, the platform memslots, and the APIC-access private memslot.
    /// </summary>
    /// <summary>L0's APICv-inhibit machinery (the reasons, the request to every vCPU on a change).</summary>
    public ApicvState Apicv { get; }

    private readonly AvicTables _avicTables;

    /// <summary>
    /// The reasons KVM 5.15 sets when the VM and its vCPUs' CPUID are made: DISABLE without AVIC (<c>--cpu -avic</c>;
    /// KVM's enable_apicv), NESTED when the guest's CPUID has SVM, X2APIC when it has x2APIC (5.15's AVIC has no
    /// x2APIC mode). None of them is ever cleared. With <see cref="ApicvNestedInhibit.Vcpu"/> there is no NESTED here:
    /// 5.19 dropped it from svm_vcpu_after_set_cpuid and inhibits per vCPU while L2 runs instead (L0Svm.ApicvUpdate).
    /// </summary>
    private void SetCreationInhibits(CpuFeatures features)
    {
        if (features.Has(CpuFeature.Svm) && _options.ApicvNested == ApicvNestedInhibit.Vm)
        {
            Apicv.SetInhibit(ApicvInhibitReason.Nested, true);
        }

        if (features.Has(CpuFeature.X2Apic))
        {
            Apicv.SetInhibit(ApicvInhibitReason.X2Apic, true);
        }

        // BuildMemory set DISABLE before the APIC-access page existed; it stays only without AVIC.
        Apicv.SetInhibit(ApicvInhibitReason.Disable, !features.Has(CpuFeature.Avic));
    }

    private static PhysicalMemory BuildMemory(ulong size, ApicvToggle toggle, out HostMemoryArena host, out MmuContext mmu)
    {
        host = PlatformMemory.CreateHostMemory(size);
        try
        {
            mmu = PlatformMemory.CreateMmu(host, size, toggle);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        // APICv starts inhibited (DISABLE) until the vCPUs have their AVIC units and the creation-time reasons are
        // set (SetCreationInhibits, which clears DISABLE when the machine has AVIC).
        mmu.SetApicvInhibit((int)ApicvInhibitReason.Disable, true);
        mmu.CreateApicAccessSlot(PlatformMemory.ApicAccessBacking(size));
        return new PhysicalMemory(host, size, mmu);
    }

    private void DisposeMemory()
    {
        Memory.Dispose();
        _mmu.Dispose();
        foreach (var l0 in L0 ?? [])
        {
            l0.Dispose();
        }

        _hostMemory.Dispose();
    }

    /// <summary>The vCPUs; index = APIC ID; 0 is the bootstrap processor.</summary>
    public IReadOnlyList<Cpu> Cpus { get; }

    /// <summary>The bootstrap processor (vCPU 0), which the loaders start.</summary>
    public Cpu Cpu => Cpus[0];

    public PcPlatform Platform { get; }

    /// <summary>KVM's default min_timer_period_us (200 µs) in cycles of the guest clock.</summary>
    public const ulong KvmMinTimerPeriodCycles = GuestClock.CyclesPerSecond / 5_000;

    /// <summary>L0 per vCPU (index = vCPU): vmcb01, the exit-handler table and nested SVM.</summary>
    public IReadOnlyList<L0Svm> L0 { get; }

    /// <summary>L0's hypercall exits (VMMCALL, and VMCALL through the #UD intercept).</summary>
    public Hypercalls Hypercalls { get; }

    /// <summary>L0's KVM CPUID leaves and kvmclock MSRs.</summary>
    public KvmClock KvmClock { get; }

    public PhysicalMemory Memory { get; }
    public ConsoleSink Console { get; }
    public Uart16550 Com1 { get; }
    public DebugConsole DebugConsole { get; }
    public PcTestDev TestDev { get; }
    public FwCfg FwCfg { get; }

    public IReadOnlyList<string> CpuFeatures => _options.CpuFeatures;

    /// <summary>The status a device asked for (isa-debug-exit, Bochs shutdown), once one has.</summary>
    public int? ExitStatus { get; private set; }

    /// <summary>Loads an image and sets the entry state; throws <see cref="LoaderException"/> for a bad image.</summary>
    public LoadedImage Load(ReadOnlySpan<byte> image, BootOptions boot) => ImageLoader.Load(Cpu, image, boot);

    /// <summary>Ends the run after the current instruction with the given process exit status.</summary>
    public void RequestStop(int status) => RequestStop(status, StopReason.Stopped);

    private void RequestStop(int status, StopReason reason)
    {
        if (ExitStatus == null)
        {
            ExitStatus = status;
            _stopReason = reason;
        }

        foreach (var cpu in Cpus)
        {
            cpu.MakeRequestAndKick(VcpuRequest.Stop);
        }
    }

    /// <summary>
    /// Cycles per scheduling round when there is more than one vCPU: each vCPU in turn runs until its
    /// cycle counter reaches the round's horizon (or it halts, waits for SIPI or spins on PAUSE, which
    /// idles it to the horizon). The order and horizons are fixed, so runs are deterministic.
    /// </summary>
    public const ulong SmpQuantum = 20_000;

    public RunResult Run(RunLimits? limits = null)
    {
        limits ??= new RunLimits();
        var clock = Stopwatch.StartNew();
        bool smp = Cpus.Count > 1;
        ulong quantum = smp ? SmpQuantum : SliceCycles;
        try
        {
            while (true)
            {
                ulong horizon = Math.Min(Cpu.Cycles + quantum, limits.MaxCycles);
                bool progress = false;
                for (int i = 0; i < Cpus.Count; i++)
                {
                    var cpu = Cpus[i];
                    _current = cpu;
                    if (smp && cpu.Cycles >= horizon)
                    {
                        continue;
                    }

                    ulong left = limits.MaxInstructions - Math.Min(limits.MaxInstructions, TotalInstructions);
                    ulong cpuInstrTarget = cpu.Instructions + Math.Min(_options.Trace ? 1 : SliceInstructions, left);
                    if (_options.Trace)
                    {
                        _diag.WriteLine(smp ? $"trace: cpu {i} rip 0x{cpu.Rip:X}" : $"trace: rip 0x{cpu.Rip:X}");
                    }

                    cpu.NextEventCycle = Platform.Events.NextDeadline;
                    ulong before = cpu.Instructions;
                    var exit = cpu.Run(cpuInstrTarget, smp ? horizon : Math.Min(cpu.Cycles + SliceCycles, limits.MaxCycles));
                    progress |= cpu.Instructions != before;
                    switch (exit)
                    {
                        case RunExit.Stopped:
                            return new RunResult(ExitStatus ?? 0, ExitStatus == null ? StopReason.Stopped : _stopReason, cpu.Rip, null);
                        case RunExit.TripleFault:
                            return NoProgress(cpu, StopReason.TripleFault, "triple fault (shutdown)");
                        case RunExit.HaltedForever when !smp:
                            return NoProgress(cpu, StopReason.Halted, "halted with interrupts disabled");
                        case RunExit.Halted when !smp:
                            return NoProgress(cpu, StopReason.Halted, "halted with no interrupt source pending");
                        case RunExit.Halted or RunExit.HaltedForever or RunExit.WaitingForSipi or RunExit.Yielded:
                            // Idle (or spinning) until the end of the round.
                            cpu.Cycles = Math.Max(cpu.Cycles, horizon);
                            break;
                    }
                }

                if (Cpu.Cycles >= limits.MaxCycles)
                {
                    return Limit(StopReason.CycleLimit, $"cycle limit {limits.MaxCycles} reached");
                }

                if (TotalInstructions >= limits.MaxInstructions)
                {
                    return Limit(StopReason.InstructionLimit, $"instruction limit {limits.MaxInstructions} reached");
                }

                if (smp && !progress && AllIdleForever(Platform.Events.NextDeadline == ulong.MaxValue))
                {
                    return NoProgress(Cpu, StopReason.Halted, "every vCPU halted with nothing pending");
                }

                if (limits.Timeout is { } timeout && clock.Elapsed >= timeout)
                {
                    return Limit(StopReason.Timeout, $"timeout after {timeout.TotalSeconds:0.###} s");
                }
            }
        }
        finally
        {
            Console.Flush();
        }
    }

    /// <summary>Guest instructions retired by all vCPUs.</summary>
    public ulong TotalInstructions => Sum(Cpus, c => c.Instructions);

    private static ulong Sum<T>(IReadOnlyList<T> items, Func<T, ulong> value)
    {
        ulong n = 0;
        for (int i = 0; i < items.Count; i++)
        {
            n += value(items[i]);
        }

        return n;
    }

    /// <summary>
    /// No vCPU can run again: each waits for SIPI or is halted with nothing latched, and either no timer
    /// event is queued or every halted vCPU has interrupts disabled. The second case ignores a device NMI
    /// that could still wake a <c>cli; hlt</c> vCPU, as the one-vCPU machine does (RunExit.HaltedForever):
    /// test kernels use <c>cli; hlt</c> to stop, while the PIT keeps queuing events.
    /// </summary>
    private bool AllIdleForever(bool noEvents)
    {
        foreach (var cpu in Cpus)
        {
            bool idle = cpu.WaitingForSipi || (cpu.Halted && !cpu.NmiPending
                && (noEvents ? cpu.Interrupts is not { HasPendingInterrupt: true } : (cpu.FlagsBits & Rflags.IF) == 0));
            if (!idle)
            {
                return false;
            }
        }

        return true;
    }

    private RunResult NoProgress(Cpu cpu, StopReason reason, string what) => End(ExitNoProgress, cpu, reason, what);

    private RunResult Limit(StopReason reason, string what) => End(ExitLimit, Cpu, reason, what);

    private RunResult End(int status, Cpu cpu, StopReason reason, string what) =>
        new(status, reason, cpu.Rip, Cpus.Count > 1
            ? $"emu: {what} at RIP 0x{cpu.Rip:X} (vCPU {cpu.Apic?.ApicId ?? 0})"
            : $"emu: {what} at RIP 0x{cpu.Rip:X}");

    /// <summary>Counters in a fixed order, for <c>--stats</c>: CPU, buses, then L0's MMU (mmu.*) when present.</summary>
    public IReadOnlyList<(string Name, ulong Value)> Stats()
    {
        // cpu.* sum over vCPUs (cpu.cycles is the BSP's clock; the decoded-block cache is the VM's); vcpu.N.* per vCPU.
        var decode = Cpu.DecodeCacheCounters(Cpus);
        var stats = new List<(string, ulong)>
        {
            ("cpu.instructions", TotalInstructions),
            ("cpu.cycles", Cpu.Cycles),
            ("cpu.decode_cache.misses", decode.Misses),
            ("cpu.decode_cache.hits", decode.Hits),
            ("cpu.decode_cache.invalidations", decode.Invalidations),
            ("cpu.decode_cache.compiled", decode.Compiled),
            ("cpu.tlb.misses", Sum(Cpus, c => c.TlbMisses)),
            ("cpu.page_walks", Sum(Cpus, c => c.PageWalks)),
            ("cpu.walk_cache.hits", Sum(Cpus, c => c.WalkCacheHits)),
            ("cpu.exceptions", Sum(Cpus, c => c.ExceptionsDelivered)),
            ("cpu.interrupts", Sum(Cpus, c => c.InterruptsDelivered)),
            ("cpu.unimplemented_codes", (ulong)Cpu.UnimplementedSeen.Count),
            ("io.unhandled", Memory.Io.UnhandledAccesses),
            ("mmio.accesses", Memory.MmioAccesses),
            ("console.bytes", Console.BytesWritten),
            ("apic.bus_messages", Platform.ApicBus.Messages),
            ("apic.interrupts_accepted", Sum(Platform.Apics, a => a.InterruptsAccepted)),
            ("apic.ipis_sent", Sum(Platform.Apics, a => a.IpisSent)),
            ("apic.timer_fires", Sum(Platform.Apics, a => a.TimerFires)),
            ("apic.eois", Sum(Platform.Apics, a => a.Eois)),
            ("apic.spurious", Sum(Platform.Apics, a => a.SpuriousInterrupts)),
            ("apic.smis", Sum(Platform.Apics, a => a.SmisReceived)),
            ("l0.hypercalls", Hypercalls.Count),
            ("l0.hypercalls_patched", Hypercalls.Patched),
        };
        for (int i = 0; i < Cpus.Count; i++)
        {
            var c = Cpus[i];
            stats.Add(($"vcpu.{i}.instructions", c.Instructions));
            stats.Add(($"vcpu.{i}.cycles", c.Cycles));
            stats.Add(($"vcpu.{i}.interrupts", c.InterruptsDelivered));
            stats.Add(($"vcpu.{i}.nmis", c.NmisDelivered));
            stats.Add(($"vcpu.{i}.inits", c.InitsReceived));
            stats.Add(($"vcpu.{i}.startups", c.StartupsReceived));
            stats.Add(($"vcpu.{i}.halted", c.Halted || c.WaitingForSipi ? 1UL : 0UL));
        }

        AddSvmStats(stats, Cpus[0].Features.Has(CpuFeature.Svm));
        AddAvicStats(stats);

        if (Memory.Mmu is { } mmu)
        {
            stats.AddRange(mmu.Stats.Counters(mmu.TablesInUse));
            stats.Add(("mmu.dirty.pages", DirtyPages(mmu)));
            stats.Add(("mmu.shadow.tables", Memory.ShadowTables));
            stats.Add(("mmu.shadow.faults", Sum(Cpus, c => c.NestedPageFaults)));
            stats.Add(("mmu.shadow.reflected", Sum(Cpus, c => c.NestedPageFaultsReflected)));
        }

        stats.AddRange(Platform.IrqCounters());
        return stats;
    }

    /// <summary>
    /// svm.*: the exits L0 handled for L1 (svm.exits.l1.NAME, every machine), and with SVM reported L1's VMRUNs
    /// (failed ones too), VMLOAD/VMSAVE, L2's exits reflected to L1 (svm.exits.l2.NAME) and L2's exits L0 handled
    /// itself (svm.exits.l0.NAME), per exit code.
    /// </summary>
    private void AddSvmStats(List<(string, ulong)> stats, bool svm)
    {
        AddExits(stats, "svm.exits.l1.", l => l.L1Exits.Nonzero());
        if (!svm)
        {
            return;
        }

        ulong vmrun = 0, failed = 0, reflected = 0, vmload = 0, vmsave = 0;
        foreach (var l0 in L0)
        {
            var n = l0.Nested;
            vmrun += n.Stats.Vmrun;
            failed += n.Stats.VmrunFailed;
            reflected += n.Stats.Reflected;
            vmload += n.Stats.Vmload;
            vmsave += n.Stats.Vmsave;
        }

        stats.Add(("svm.vmrun", vmrun));
        stats.Add(("svm.vmrun_failed", failed));
        stats.Add(("svm.vmload", vmload));
        stats.Add(("svm.vmsave", vmsave));
        stats.Add(("svm.nested.reflected", reflected));
        AddExits(stats, "svm.exits.l2.", l => l.Nested.Stats.Exits());
        AddExits(stats, "svm.exits.l0.", l => l.L0Exits.Nonzero());
    }

    /// <summary>
    /// apicv.* and avic.*: whether APICv is active at the end and how often it flipped, the inhibit reasons set, and
    /// what the AVIC units did (accelerated accesses, traps, faults, IPIs delivered, doorbells, incomplete IPIs).
    /// </summary>
    private void AddAvicStats(List<(string, ulong)> stats)
    {
        stats.Add(("apicv.active", Apicv.Active ? 1UL : 0));
        stats.Add(("apicv.transitions", Apicv.Transitions));
        stats.Add(("apicv.inhibit_changes", Apicv.InhibitChanges));
        stats.Add(("apicv.inhibit_reasons", _mmu.ApicvInhibitReasons));
        stats.Add(("apicv.kicks", Apicv.Kicks));
        stats.Add(("apicv.toggle_cycles", Apicv.ToggleCycles));
        foreach (var step in Enum.GetValues<ToggleStep>())
        {
            if (step != ToggleStep.Count)
            {
                stats.Add(("apicv.cost." + StepName(step), Apicv.StepCycles[(int)step]));
            }
        }
        for (int r = 0; r < ApicvState.ReasonCount; r++)
        {
            stats.Add(("apicv.inhibit." + ApicvState.ReasonName((ApicvInhibitReason)r), Apicv.Raised[r]));
        }

        ulong reads = 0, writes = 0, traps = 0, faults = 0, ipis = 0, doorbells = 0, incomplete = 0;
        foreach (var l0 in L0)
        {
            if (l0.Avic is { } u)
            {
                reads += u.AcceleratedReads;
                writes += u.AcceleratedWrites;
                traps += u.Traps;
                faults += u.Faults;
                ipis += u.IpisAccelerated;
                doorbells += u.Doorbells;
                foreach (ulong n in u.IncompleteIpis)
                {
                    incomplete += n;
                }
            }
        }

        stats.Add(("avic.accelerated", reads + writes));
        stats.Add(("avic.accelerated.read", reads));
        stats.Add(("avic.accelerated.write", writes));
        stats.Add(("avic.trap", traps));
        stats.Add(("avic.noaccel", faults));
        stats.Add(("avic.ipi", ipis));
        stats.Add(("avic.doorbell", doorbells));
        stats.Add(("avic.incomplete_ipi", incomplete));
    }

    /// <summary>Pages marked dirty in the user memslots that log them (not yet harvested).</summary>
    private static ulong DirtyPages(Emulator.Mmu.Fault.MmuContext mmu)
    {
        ulong n = 0;
        foreach (var slot in mmu.Memslots.Current.Slots)
        {
            if (slot.DirtyBitmap is { } bitmap)
            {
                foreach (ulong word in bitmap)
                {
                    n += (ulong)System.Numerics.BitOperations.PopCount(word);
                }
            }
        }

        return n;
    }

    private static string StepName(ToggleStep step) => step switch
    {
        ToggleStep.Kick => "kick",
        ToggleStep.Exit => "exit",
        ToggleStep.MmuLock => "mmu_lock",
        ToggleStep.Zap => "zap",
        ToggleStep.MemslotInstall => "memslot_install",
        ToggleStep.SrcuGracePeriod => "srcu",
        _ => "root_reload",
    };

    /// <summary>One counter per exit code that happened, summed over the vCPUs, in code order.</summary>
    private void AddExits(List<(string, ulong)> stats, string prefix, Func<L0Svm, IEnumerable<(ulong Code, ulong Count)>> exits)
    {
        var byName = new SortedDictionary<ulong, ulong>();
        foreach (var l0 in L0)
        {
            foreach (var (code, count) in exits(l0))
            {
                byName[code] = byName.GetValueOrDefault(code) + count;
            }
        }

        foreach (var (code, count) in byName)
        {
            stats.Add((prefix + SvmExit.Name(code), count));
        }
    }

    public void Dispose()
    {
        Console.Flush();
        DisposeMemory();
        Platform.Dispose();
    }
}
