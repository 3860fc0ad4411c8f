using System.Diagnostics;
using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;

namespace Emulator.Svm.Run;

/// <summary>How a machine is built (the <c>emu boot</c> options that are not about the image).</summary>
public sealed class MachineOptions
{
    public const ulong DefaultMemory = 1UL << 30;

    public ulong MemorySize { get; init; } = DefaultMemory;

    /// <summary>Number of vCPUs; only 1 is supported until SMP lands.</summary>
    public int Cpus { get; init; } = 1;

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
    /// <summary>Exit status when the guest can make no more progress or hit a limit.</summary>
    public const int ExitNoProgress = 3;

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

    public Machine(MachineOptions? options = null)
    {
        _options = options ?? new MachineOptions();
        if (_options.Cpus != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "SMP is not yet supported: only 1 vCPU");
        }

        _diag = _options.Diagnostics ?? TextWriter.Null;
        Memory = new PhysicalMemory(_options.MemorySize);
        Cpu = new Cpu(Memory) { Diagnostic = _diag.WriteLine };
        if (_options.CpuFeatures.Count != 0 && !Cpu.Features.TryApply(string.Join(',', _options.CpuFeatures), out string? featureError))
        {
            Memory.Dispose();
            throw new ArgumentException($"--cpu: {featureError}", nameof(options));
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
        if (_options.TraceIo)
        {
            io.Trace = _diag.WriteLine;
        }
    }

    public PhysicalMemory Memory { get; }
    public Cpu Cpu { get; }
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

        Cpu.StopRequested = true;
        Cpu.ExitRequest = 1;
    }

    public RunResult Run(RunLimits? limits = null)
    {
        limits ??= new RunLimits();
        var clock = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                ulong slice = _options.Trace ? 1 : SliceInstructions;
                ulong target = Cpu.Instructions + Math.Min(slice, limits.MaxInstructions - Math.Min(limits.MaxInstructions, Cpu.Instructions));
                if (_options.Trace)
                {
                    _diag.WriteLine($"trace: rip 0x{Cpu.Rip:X}");
                }

                ulong cycleTarget = Cpu.Cycles + Math.Min(SliceCycles, limits.MaxCycles - Math.Min(limits.MaxCycles, Cpu.Cycles));
                var exit = Cpu.Run(target, cycleTarget);
                switch (exit)
                {
                    case RunExit.Stopped:
                        return new RunResult(ExitStatus ?? 0, ExitStatus == null ? StopReason.Stopped : _stopReason, Cpu.Rip, null);
                    case RunExit.TripleFault:
                        return NoProgress(StopReason.TripleFault, "triple fault (shutdown)");
                    case RunExit.HaltedForever:
                        return NoProgress(StopReason.Halted, "halted with interrupts disabled");
                    case RunExit.Halted:
                        return NoProgress(StopReason.Halted, "halted with no interrupt source pending");
                    case RunExit.CycleLimit when Cpu.Cycles >= limits.MaxCycles:
                        return NoProgress(StopReason.CycleLimit, $"cycle limit {limits.MaxCycles} reached");
                    case RunExit.InstructionLimit when Cpu.Instructions >= limits.MaxInstructions:
                        return NoProgress(StopReason.InstructionLimit, $"instruction limit {limits.MaxInstructions} reached");
                }

                if (limits.Timeout is { } timeout && clock.Elapsed >= timeout)
                {
                    return NoProgress(StopReason.Timeout, $"timeout after {timeout.TotalSeconds:0.###} s");
                }
            }
        }
        finally
        {
            Console.Flush();
        }
    }

    private RunResult NoProgress(StopReason reason, string what) =>
        new(ExitNoProgress, reason, Cpu.Rip, $"emu: {what} at RIP 0x{Cpu.Rip:X}");

    /// <summary>Counters in a fixed order, for <c>--stats</c>: CPU, buses, then L0's MMU (mmu.*) when present.</summary>
    public IReadOnlyList<(string Name, ulong Value)> Stats()
    {
        var stats = new List<(string, ulong)>
        {
            ("cpu.instructions", Cpu.Instructions),
            ("cpu.cycles", Cpu.Cycles),
            ("cpu.decode_cache.misses", Cpu.DecodeCacheMisses),
            ("cpu.decode_cache.hits", Cpu.DecodeCacheHits),
            ("cpu.decode_cache.invalidations", Cpu.DecodeCacheInvalidations),
            ("cpu.tlb.misses", Cpu.TlbMisses),
            ("cpu.page_walks", Cpu.PageWalks),
            ("cpu.exceptions", Cpu.ExceptionsDelivered),
            ("cpu.interrupts", Cpu.InterruptsDelivered),
            ("cpu.unimplemented_codes", (ulong)Cpu.UnimplementedSeen.Count),
            ("io.unhandled", Memory.Io.UnhandledAccesses),
            ("mmio.accesses", Memory.MmioAccesses),
            ("console.bytes", Console.BytesWritten),
        };
        if (Memory.Mmu is { } mmu)
        {
            stats.AddRange(mmu.Stats.Counters(mmu.TablesInUse));
        }

        return stats;
    }

    public void Dispose()
    {
        Console.Flush();
        Memory.Dispose();
    }
}
