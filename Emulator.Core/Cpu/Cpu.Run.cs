using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Core.Cpu;

/// <summary>Why <see cref="Cpu.Run"/> returned.</summary>
public enum RunExit
{
    /// <summary>A device asked the machine to stop (isa-debug-exit, Bochs shutdown).</summary>
    Stopped,
    InstructionLimit,
    CycleLimit,
    /// <summary>HLT with interrupts disabled and nothing pending: no further progress is possible.</summary>
    HaltedForever,
    /// <summary>HLT with interrupts enabled: the caller may advance time to the next event.</summary>
    Halted,
    TripleFault,
    /// <summary>The vCPU took INIT and waits for a Startup IPI from another vCPU.</summary>
    WaitingForSipi,
    /// <summary>The vCPU spins on PAUSE and gives the rest of its slice to the other vCPUs.</summary>
    Yielded,
}

/// <summary>Source of external interrupts (the PIC/APIC models plug in here).</summary>
public interface IInterruptController
{
    /// <summary>True when an interrupt could be delivered to this CPU if RFLAGS.IF allows.</summary>
    bool HasPendingInterrupt { get; }

    /// <summary>Acknowledges the highest-priority pending interrupt and returns its vector.</summary>
    int Acknowledge();
}

/// <summary>The interpreter loop (DESIGN.md, "Flow of one instruction").</summary>
public sealed unsafe partial class Cpu
{
    public IInterruptController? Interrupts;

    /// <summary>The vCPU is blocked in HLT as its hypervisor was told (<see cref="SvmUnit.VcpuBlocking"/>).</summary>
    private bool _blocked;

    private ulong _nextEventCycle = ulong.MaxValue;

    /// <summary>
    /// Cycle count at which <see cref="OnTimerEvent"/> runs next (ulong.MaxValue: none). Moving it earlier
    /// requests <see cref="VcpuRequest.Event"/>: the running block was given the old deadline.
    /// </summary>
    public ulong NextEventCycle
    {
        get => _nextEventCycle;
        set
        {
            if (value < _nextEventCycle)
            {
                MakeRequest(VcpuRequest.Event);
            }

            _nextEventCycle = value;
        }
    }

    public Action<Cpu>? OnTimerEvent;

    public ulong ExceptionsDelivered;
    public ulong InterruptsDelivered;
    private readonly HashSet<Code> _unimplemented = [];

    public Action<string>? Diagnostic;

    public IReadOnlyCollection<Code> UnimplementedSeen => _unimplemented;

    internal void NoteUnimplemented(Code code)
    {
        if (_unimplemented.Add(code))
        {
            Diagnostic?.Invoke($"emu: unimplemented instruction {code} at RIP 0x{Rip:X}");
        }
    }

    /// <summary>
    /// Width of the instruction pointer as sequential execution advances it: 64 bits in 64-bit mode, else EIP's 32.
    /// 16-bit code does not wrap IP at 64 KiB when it runs on (only a branch with 16-bit operand size truncates
    /// EIP); running past the CS limit is a #GP at the fetch (APM vol. 2 §4.8.1 on the limit check).
    /// </summary>
    private ulong IpMask => Bitness == 64 ? ulong.MaxValue : 0xFFFFFFFFUL;

    /// <summary>A code page's blocks were dropped (a write to it): forget the blocks looked up, leave the current one.</summary>
    internal void ForgetCodePage()
    {
        _codeEpoch++;
        ExitRequest = 1;
    }

    /// <summary>
    /// Runs until a limit, a stop request, a triple fault or an unrecoverable halt. This is the slow path: it
    /// handles the <see cref="Requests"/> bits and the limits in architectural priority order, then chains
    /// blocks in <see cref="RunBlocks"/> until a request bit or a limit sends it back here.
    /// </summary>
    public RunExit Run(ulong maxInstructions = ulong.MaxValue, ulong maxCycles = ulong.MaxValue)
    {
        Phys.Running = this;
        ulong eventsAtStart = ExceptionsDelivered;
        if (_interruptWindowArmed)
        {
            // Between two runs the caller (a loader, a test) may have set RFLAGS.IF directly.
            _interruptWindowArmed = false;
            Requests |= VcpuRequest.Interrupt;
        }

        while (true)
        {
            if ((Requests & VcpuRequest.TlbFlush) != 0)
            {
                // A zap in L0's NPT (inhibit, memslot update) asked for a remote TLB flush: every address space's
                // entries may go through the zapped SPTE (KVM's list of what a conditional nested flush needs).
                Requests &= ~VcpuRequest.TlbFlush;
                FlushAllTlbs();
            }

            if ((Requests & VcpuRequest.ApicvUpdate) != 0)
            {
                // No guest instruction runs under an APIC-virtualization state older than the VM's latest change.
                Requests &= ~VcpuRequest.ApicvUpdate;
                Svm?.ApicvUpdate(this);
            }

            if (StopRequested)
            {
                return RunExit.Stopped;
            }

            if (Shutdown)
            {
                return RunExit.TripleFault;
            }

            // Delivered events count toward the limit too, so a guest stuck in an exception loop (which
            // retires nothing) still stops.
            if (Instructions >= maxInstructions || ExceptionsDelivered - eventsAtStart >= maxInstructions)
            {
                return RunExit.InstructionLimit;
            }

            if (Cycles >= maxCycles)
            {
                return RunExit.CycleLimit;
            }

            if (Cycles >= NextEventCycle)
            {
                OnTimerEvent?.Invoke(this);
                continue;
            }

            if (WaitingForSipi)
            {
                return RunExit.WaitingForSipi;
            }

            // A debug trap an instruction left for its boundary (SYSRET setting TF) goes before NMI and
            // interrupts (APM vol. 2 §8.5, priorities: traps on the previous instruction come first).
            bool trapPending = _pendingDebugTraps != 0;
            if ((Requests & VcpuRequest.Smi) != 0 && TakeSmi(trapPending))
            {
                // SMI goes before NMI and INTR (APM vol. 2 §8.5).
                continue;
            }

            if ((Requests & VcpuRequest.Nmi) != 0 && TakeNmi(trapPending))
            {
                continue;
            }

            if ((Requests & VcpuRequest.Interrupt) != 0 && TakeInterrupt(trapPending))
            {
                continue;
            }

            if (GuestMode && !trapPending && TryVirtualInterrupt())
            {
                continue;
            }

            if (Halted)
            {
                if (!_blocked)
                {
                    _blocked = true;
                    Svm?.VcpuBlocking(this, true);
                }

                if (!PhysicalInterruptsEnabled || Interrupts == null)
                {
                    if (NextEventCycle == ulong.MaxValue || !PhysicalInterruptsEnabled)
                    {
                        return RunExit.HaltedForever;
                    }
                }

                if (NextEventCycle == ulong.MaxValue)
                {
                    return RunExit.Halted;
                }

                // Idle: jump time forward to the next timer event (deterministic).
                Cycles = Math.Min(Math.Max(Cycles, NextEventCycle), maxCycles);
                continue;
            }

            if (_blocked)
            {
                _blocked = false;
                Svm?.VcpuBlocking(this, false);
            }

            ulong budget = maxInstructions - Instructions;
            int limit = InterruptShadow ? 1 : budget < BlockCache.MaxBlockOps ? (int)budget : BlockCache.MaxBlockOps;
            // The blocks run against the deadline read here; moving it earlier meanwhile requests Event again.
            Requests &= ~(VcpuRequest.InterruptShadow | VcpuRequest.Event);
            ulong stopCycle = NextEventCycle < maxCycles ? NextEventCycle : maxCycles;
            RunBlocks(limit, maxInstructions, stopCycle);
            if (YieldRequested)
            {
                YieldRequested = false;
                if (NextEventCycle < maxCycles)
                {
                    // A spinner idles only to the next timer event of its turn, not to the turn's end, so
                    // its own timer interrupts arrive on time; it then spins (and yields) again.
                    Cycles = Math.Max(Cycles, NextEventCycle);
                    continue;
                }

                return RunExit.Yielded;
            }
        }
    }

    /// <summary>
    /// The <see cref="VcpuRequest.Nmi"/> request: delivers a latched NMI unless an interrupt shadow or a debug
    /// trap goes first (then the request stays for the next boundary). A blocked NMI drops the request until
    /// IRET unblocks it (<see cref="NmiBlocked"/>). True when an NMI was delivered.
    /// </summary>
    private bool TakeNmi(bool trapPending)
    {
        if (!NmiPending || NmiBlocked)
        {
            Requests &= ~VcpuRequest.Nmi;
            return false;
        }

        if (InterruptShadow || trapPending || !Gif)
        {
            // GIF clear holds the NMI (APM vol. 2 §15.17); STGI asks again.
            return false;
        }

        if (Intercepted(Emulator.Core.Svm.SvmIntercept.Nmi))
        {
            // A reflected NMI exit leaves it pending for L1 (APM vol. 2 §15.9.2; GIF is clear after the exit); one L0
            // handles (its own vmcb01 intercept) goes on to the delivery below.
            Halted = false;
            if (Svm!.Exit(this, Emulator.Core.Svm.SvmExit.Nmi, 0, 0) != ExecStatus.Continue)
            {
                return true;
            }
        }

        // NMI: ahead of maskable interrupts, not subject to IF; blocked until the next IRET (APM vol. 2 §8.2.3).
        Requests &= ~VcpuRequest.Nmi;
        NmiPending = false;
        NmiBlocked = true;
        Halted = false;
        NmisDelivered++;
        DeliverEvent(Vector.NMI, EventKind.Nmi, 0, false);
        return true;
    }

    /// <summary>
    /// The <see cref="VcpuRequest.Interrupt"/> request: asks the controller and delivers what it has. With
    /// RFLAGS.IF clear the request is parked until an instruction sets IF (<see cref="InterruptWindowOpened"/>);
    /// behind a shadow or a debug trap it stays; when the controller has nothing it is dropped. It also stays
    /// after a delivery, so a trap gate (IF still set) takes the next interrupt at once. True when delivered.
    /// </summary>
    private bool TakeInterrupt(bool trapPending)
    {
        if (!PhysicalInterruptsEnabled)
        {
            // IF (or GIF, or the host IF under V_INTR_MASKING) clear: parked until one of them opens the window.
            Requests &= ~VcpuRequest.Interrupt;
            _interruptWindowArmed = true;
            RequestHypervisorWindow();
            return false;
        }

        if (InterruptShadow || trapPending)
        {
            return false;
        }

        if (Interrupts is not { HasPendingInterrupt: true } ic)
        {
            Requests &= ~VcpuRequest.Interrupt;
            return false;
        }

        Halted = false;
        // Reflected, the interrupt stays pending in the controller and is L1's once it sets GIF and IF; handled by
        // L0 (vmcb01's INTR intercept), it is delivered below, as KVM injects it on the next VMRUN. With AVIC on, an
        // APIC vector is the hardware's to deliver from the backing page's IRR, with no exit (APM vol. 2 §15.29.2);
        // the PIC's ExtINT still goes through L0.
        bool avicDelivers = Avic != null && !GuestMode && Apic is { ExtIntNext: false };
        if (!avicDelivers && Intercepted(Emulator.Core.Svm.SvmIntercept.Intr) && Svm!.Exit(this, Emulator.Core.Svm.SvmExit.Intr, 0, 0) != ExecStatus.Continue)
        {
            return true;
        }

        int vector = ic.Acknowledge();
        if (vector < 0)
        {
            return false;
        }

        InterruptsDelivered++;
        DeliverEvent(vector, EventKind.External, 0, false);
        return true;
    }

    /// <summary>One entry of the RIP → block cache: the block's ops, valid while the epoch it was filled in lasts.</summary>
    private struct RipCacheEntry
    {
        public ulong Rip;
        public ulong Epoch;
        public int Start;
        public int Count;
        public int Block;
        public int Heat;
        public CompiledBlock? Code;
    }

    // RIP → block cache: a hit skips segmentation, the code TLB and the block hash. An entry is valid
    // only in the epoch it was filled in; the epoch moves on whenever anything it depends on may have
    // changed (TLB flush or INVLPG, mode or CS change, decoded code dropped).
    private const int RipCacheBits = 10;
    private readonly RipCacheEntry[] _ripCache = new RipCacheEntry[1 << RipCacheBits];
    private ulong _codeEpoch = 1;
    private ulong _ripCacheHits;

    /// <summary>Invalidates the RIP → block cache.</summary>
    internal void BumpCodeEpoch() => _codeEpoch++;

    /// <summary>
    /// The fast path: runs the block at RIP (up to <paramref name="limit"/> ops), then keeps running the
    /// following blocks for as long as no <see cref="Requests"/> bit is set and the instruction budget and
    /// <paramref name="stopCycle"/> (the earlier of the cycle limit and the next timer deadline) hold. Run's loop
    /// would then only look up the next block, so doing it here changes nothing but the cost of getting there.
    /// Anything unusual (a request, a limit, an event, a halt, a fault, a kick) returns to it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RunBlocks(int limit, ulong maxInstructions, ulong stopCycle)
    {
        while (true)
        {
            if (DebugActive)
            {
                // Single-step, breakpoints or RF: one instruction at a time through the debug path (Cpu.Debug.cs).
                DebugStep();
                return;
            }

            ulong rip = Rip;
            ref RipCacheEntry entry = ref RipCacheSlot(rip);
            int start, count;
            if (entry.Rip == rip && entry.Epoch == _codeEpoch)
            {
                start = entry.Start;
                count = entry.Count;
                _ripCacheHits++;
                if (count <= limit)
                {
                    var code = entry.Code;
                    if (code == null && ++entry.Heat == CompileThreshold)
                    {
                        code = entry.Code = Blocks.Compiled(entry.Block, Bitness, this, rip);
                    }

                    if (code != null && code.Ready)
                    {
                        // Its own copy of the tail below: sharing one tail with RunOps (a single call site choosing
                        // between the two) made the runtime lay out this loop worse, 1.46x slower on `loop`.
                        if (!RunChain(code, maxInstructions, stopCycle) || Requests != 0 || Instructions >= maxInstructions || Cycles >= stopCycle)
                        {
                            return;
                        }

                        ulong left = maxInstructions - Instructions;
                        limit = left < BlockCache.MaxBlockOps ? (int)left : BlockCache.MaxBlockOps;
                        continue;
                    }
                }
            }
            else
            {
                int block = FindBlock();
                if (block <= 0)
                {
                    return;
                }

                start = Blocks.Start(block);
                count = Blocks.Count(block);
                entry.Rip = rip;
                entry.Epoch = _codeEpoch;
                entry.Start = start;
                entry.Count = count;
                entry.Block = block;
                entry.Heat = 0;
                entry.Code = null;
            }

            // RunOps fails on a kick, a fault, HLT or a stop; exceptions are only delivered on those paths, so
            // the exception count Run also limits cannot have moved when it succeeds.
            if (!RunOps(start, count < limit ? count : limit) || Requests != 0 || Instructions >= maxInstructions || Cycles >= stopCycle)
            {
                return;
            }

            ulong budget = maxInstructions - Instructions;
            limit = budget < BlockCache.MaxBlockOps ? (int)budget : BlockCache.MaxBlockOps;
        }
    }

    /// <summary>Slow lookup: CS segmentation, code TLB, block hash (decoding on a miss). 0: handled otherwise.</summary>
    private int FindBlock()
    {
        ulong lin;
        if (!Linear(SegReg.CS, Rip, 1, Access.Fetch, out lin))
        {
            DeliverPending();
            return 0;
        }

        byte* page = FetchPageCached(lin);
        if (page == null)
        {
            if (PendingVector >= 0)
            {
                DeliverPending();
                return 0;
            }

            StepUncached(lin);
            return 0;
        }

        ulong hpa = Phys.HostOffsetOf(page) + (lin & 0xFFF);
        int block = Blocks.Lookup(hpa, Bitness, page + (lin & 0xFFF), Rip);
        if (block == 0)
        {
            StepUncached(lin);
            return 0;
        }

        return block;
    }

    /// <summary>
    /// Runs <paramref name="count"/> ops from pool index <paramref name="start"/>. True when all of them retired
    /// (the last may have ended the block by a control transfer) and nobody asked the loop to look around.
    /// </summary>
    private bool RunOps(int start, int count)
    {
        ulong ipMask = IpMask;
        ExitRequest = 0;
        ref DecodedOp op = ref Blocks.Op(start);
        // RIP stays in a register across the block: a handler that returns Continue has not moved NextRip
        // (a control transfer returns EndBlock), so the next RIP is the one computed here.
        ulong rip = Rip;
        for (int i = 0; i < count; i++)
        {
            ulong next = (rip + op.Length) & ipMask;
            NextRip = next;
            int st = op.Handler(this, ref op);
            if (st != ExecStatus.Continue)
            {
                if (st != ExecStatus.EndBlock)
                {
                    Finish(st, ref op);
                    return false;
                }

                Rip = NextRip;
                Cycles += op.Cycles;
                Instructions++;
                if (ExitRequest != 0)
                {
                    ExitRequest = 0;
                    return false;
                }

                return true;
            }

            rip = next;
            Rip = next;
            Cycles += op.Cycles;
            Instructions++;
            if (ExitRequest != 0)
            {
                ExitRequest = 0;
                return false;
            }

            op = ref Unsafe.Add(ref op, 1);
        }

        return true;
    }

    /// <summary>Code TLB: host pointer to the page of linear <paramref name="lin"/> (null: not RAM or a fault).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* FetchPageCached(ulong lin)
    {
        int i = (Access.Fetch << TlbBits) | ((int)(lin >> 12) & (TlbEntries - 1));
        ref TlbEntry e = ref _tlb[i];
        if (e.Tag == (lin & ~0xFFFUL))
        {
            return (byte*)(e.Add + (long)(lin & ~0xFFFUL));
        }

        byte* page = FetchPage(lin, out _);
        if (page != null)
        {
            FillTlb(Access.Fetch, lin, page);
        }

        return page;
    }

    private readonly byte[] _uncachedBytes = new byte[15];

    /// <summary>Runs one instruction whose bytes cannot be cached (page-straddling, or not in RAM).</summary>
    private void StepUncached(ulong lin)
    {
        ref DecodedOp op = ref DecodeUncached(lin);
        if (Unsafe.IsNullRef(ref op))
        {
            return;
        }

        NextRip = (Rip + op.Length) & IpMask;
        int st = op.Handler(this, ref op);
        if (st != ExecStatus.Continue)
        {
            Finish(st, ref op);
            return;
        }

        Rip = NextRip;
        Cycles += op.Cycles;
        Instructions++;
    }

    /// <summary>
    /// Decodes the instruction at linear <paramref name="lin"/> byte by byte into the scratch slot; a null
    /// ref when a byte it needs cannot be fetched (the fault has then been delivered).
    /// </summary>
    private ref DecodedOp DecodeUncached(ulong lin)
    {
        byte[] bytes = _uncachedBytes;
        int n = 0;
        for (; n < 15; n++)
        {
            if (!ReadLinearSlow(lin + (ulong)n, 1, Access.Fetch, out ulong b))
            {
                if (n == 0)
                {
                    DeliverPending();
                    return ref Unsafe.NullRef<DecodedOp>();
                }

                // Decode what we have; a fault on a later byte only matters if the instruction needs it.
                PendingVector = -1;
                break;
            }

            bytes[n] = (byte)b;
        }

        ref DecodedOp op = ref Blocks.DecodeScratch(bytes.AsSpan(0, n), Bitness, Rip);
        if (op.Length == 0 || op.Length > n)
        {
            // The instruction needs a byte we could not fetch: take that fault now.
            if (!ReadLinearSlow(lin + (ulong)n, 1, Access.Fetch, out _))
            {
                DeliverPending();
            }

            return ref Unsafe.NullRef<DecodedOp>();
        }

        return ref op;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Finish(int status, ref DecodedOp op)
    {
        switch (status)
        {
            case ExecStatus.EndBlock:
                Rip = NextRip;
                Cycles += op.Cycles;
                Instructions++;
                break;
            case ExecStatus.Fault:
                if (PendingIsSoftware)
                {
                    // INT n / INT3 / INTO retire, then deliver with RIP at the next instruction.
                    Rip = NextRip;
                    Cycles += op.Cycles;
                    Instructions++;
                }

                DeliverPending();
                break;
            case ExecStatus.Halt:
                Rip = NextRip;
                Cycles += op.Cycles;
                Instructions++;
                Halted = true;
                break;
            case ExecStatus.Exit:
                Rip = NextRip;
                Cycles += op.Cycles;
                Instructions++;
                StopRequested = true;
                break;
        }
    }

    private void DeliverPending()
    {
        int vector = PendingVector;
        PendingVector = -1;
        if (vector < 0)
        {
            return;
        }

        if (vector == Vector.NestedPageFault)
        {
            TakeNestedPageFault();
            return;
        }

        ExceptionsDelivered++;
        EventKind kind = PendingIsSoftware ? (PendingIsIntN ? EventKind.SoftwareIntN : EventKind.SoftwareException) : EventKind.Exception;
        DeliverEvent(vector, kind, PendingError, PendingHasError);
    }
}
