namespace Emulator.Core.Cpu;

/// <summary>How an event entered delivery; decides the EXT bit, the gate-DPL check and double-fault rules.</summary>
public enum EventKind : byte
{
    Exception,
    External,
    Nmi,
    /// <summary>INT n: gate DPL is checked against CPL.</summary>
    SoftwareIntN,
    /// <summary>INT3, INTO: also checked against gate DPL.</summary>
    SoftwareException,
    /// <summary>INT1 (ICEBP): behaves as a hardware #DB for the DPL check.</summary>
    PrivilegedSoftware,
}

/// <summary>
/// Exception and interrupt delivery through the IVT (real mode) or IDT (protected and long mode),
/// with double-fault escalation and triple-fault shutdown (APM vol. 2 §8.2.9, §8.7, §8.9).
/// </summary>
public sealed partial class Cpu
{
    /// <summary>
    /// RIP of the INT n/INT3/INTO/INT1 instruction being delivered. Delivery of a software interrupt starts
    /// with RIP already past the instruction; a fault during delivery (gate DPL, not present, stack) is
    /// reported with RIP back at the instruction, as a fault of the instruction itself.
    /// </summary>
    public ulong SoftwareEventRip = NoSoftwareEvent;

    /// <summary>Value of <see cref="SoftwareEventRip"/> when no INT instruction is being delivered (e.g. injected events).</summary>
    public const ulong NoSoftwareEvent = ulong.MaxValue;

    /// <summary>Contributory exceptions (APM vol. 2 Table 8-7): two of them in a row make a #DF.</summary>
    private static bool IsContributory(int v) => v is Vector.DE or Vector.TS or Vector.NP or Vector.SS or Vector.GP;

    /// <summary>
    /// Exceptions of the fault class: the RFLAGS image they push has RF set, so that the faulting
    /// instruction, restarted by IRET, does not trip its own instruction breakpoint again (APM vol. 2
    /// §13.1, "Resume flag"). Not #DB (its instruction-breakpoint form pushes RF as it is, and the handler
    /// sets it), not the traps #BP/#OF, not the aborts #DF/#MC, and never NMI or external interrupts.
    /// </summary>
    private static bool PushesRf(int vector, EventKind kind) =>
        kind == EventKind.Exception && vector < 32 && vector is not (Vector.DB or Vector.NMI or Vector.BP or Vector.OF or Vector.DF or Vector.MC);

    /// <summary>RF to OR into the RFLAGS image of the delivery attempt in progress (see <see cref="PushesRf"/>).</summary>
    private ulong _imageRf;

    /// <summary>Set when the last <see cref="DeliverEvent"/> could not deliver its event and delivered a fault instead.</summary>
    private bool _deliveryFaulted;

    /// <summary>Delivers an event; a fault during delivery is combined with it per APM vol. 2 §8.2.9.</summary>
    public void DeliverEvent(int vector, EventKind kind, uint error, bool hasError)
    {
        Cycles += Costs.EventDelivery;
        Halted = false;
        // An interrupt shadow covers only the instruction that follows; once an event is delivered, that
        // instruction is not next any more.
        InterruptShadow = false;
        _deliveryFaulted = false;
        // INT1 (ICEBP) reaches here as a software exception on vector 1: no gate-DPL check (APM vol. 3 "INT").
        if (kind == EventKind.SoftwareException && vector == Vector.DB)
        {
            kind = EventKind.PrivilegedSoftware;
        }

        ulong restartRip = SoftwareEventRip;
        SoftwareEventRip = NoSoftwareEvent;
        ulong from = Rip;
        int first = vector;
        bool firstIsException = kind is EventKind.Exception;
        uint interrupted = 0, interruptedError = 0;
        while (true)
        {
            if (TryInterceptException(vector, kind, error, hasError, restartRip, interrupted, interruptedError))
            {
                return;
            }

            PendingVector = -1;
            _imageRf = PushesRf(vector, kind) ? Rflags.RF : 0;
            bool ok = TryDeliver(vector, kind, error, hasError);
            _imageRf = 0;
            if (ok)
            {
                if ((DebugCtl & DebugCtlLbr) != 0)
                {
                    RecordEvent(from, vector, kind);
                }

                return;
            }

            _deliveryFaulted = true;
            if (GuestMode)
            {
                // The event whose delivery faulted, for EXITINTINFO if the fault exits (APM vol. 2 §15.7.2).
                interrupted = EventInfo(vector, kind, hasError);
                interruptedError = error;
            }

            int second = PendingVector;
            PendingVector = -1;
            if (restartRip != NoSoftwareEvent && kind is EventKind.SoftwareIntN or EventKind.SoftwareException or EventKind.PrivilegedSoftware)
            {
                Rip = restartRip;
                restartRip = NoSoftwareEvent;
            }

            if (second == Vector.NestedPageFault)
            {
                // The event's delivery touched memory L1's nested tables do not map: #VMEXIT(NPF) to L1.
                TakeNestedPageFaultDuringDelivery(vector, kind, error, hasError);
                return;
            }

            if (first == Vector.DF && firstIsException)
            {
                // A fault while delivering #DF: shutdown (triple fault), or its intercept's #VMEXIT.
                // L0 handles its own SHUTDOWN exit by letting the triple fault end the run (KVM_EXIT_SHUTDOWN).
                if (Intercepted(Emulator.Core.Svm.SvmIntercept.Shutdown)
                    && Svm!.Exit(this, Emulator.Core.Svm.SvmExit.Shutdown, 0, 0) != ExecStatus.Continue)
                {
                    return;
                }

                Shutdown = true;
                StopRequested = false;
                Diagnostic?.Invoke($"emu: triple fault (vector {second} while delivering #DF) at RIP 0x{Rip:X}");
                return;
            }

            bool df = firstIsException &&
                      ((IsContributory(first) && IsContributory(second))
                       || (first == Vector.PF && (second == Vector.PF || IsContributory(second))));
            if (df)
            {
                vector = first = Vector.DF;
                error = 0;
                hasError = true;
            }
            else
            {
                vector = first = second;
                error = PendingError;
                hasError = PendingHasError;
            }

            kind = EventKind.Exception;
            firstIsException = true;
        }
    }

    private bool TryDeliver(int vector, EventKind kind, uint error, bool hasError)
    {
        if (Mode == CpuMode.Real)
        {
            return DeliverReal(vector);
        }

        if (LongModeActive)
        {
            return DeliverLong(vector, kind, error, hasError);
        }

        return DeliverProtected(vector, kind, error, hasError);
    }

    /// <summary>Real mode (APM vol. 2 §8.8.1): IVT entry = IP:CS at vector·4; push FLAGS, CS, IP; clear IF, TF, AC, RF.</summary>
    private bool DeliverReal(int vector)
    {
        uint off = (uint)vector * 4;
        if (off + 3 > Idtr.Limit)
        {
            return RaiseGP(0) == 0;
        }

        if (!ReadLinearSystem(Idtr.Base + off, 4, out ulong ivt))
        {
            return false;
        }

        ulong flags = Rflags64;
        Span<ulong> frame = [flags & 0xFFFF, Seg[SegReg.CS].Selector, Rip & 0xFFFF];
        if (!WriteStack(Seg[SegReg.SS], Gpr[Reg.RSP], 2, 2, frame, true, 0, out ulong sp))
        {
            return false;
        }

        SetStackPointer(sp, 2);
        MaterializeFlags();
        FlagsBits &= ~(Rflags.IF | Rflags.TF | Rflags.AC | Rflags.RF);
        ref SegmentCache cs = ref Seg[SegReg.CS];
        cs.Selector = (ushort)(ivt >> 16);
        cs.Base = (ivt >> 16) << 4;
        SegmentLoaded(SegReg.CS);
        Rip = ivt & 0xFFFF;
        return true;
    }

    /// <summary>EXT bit of an error code: set when the event is external to the program (APM vol. 2 §8.4.1).</summary>
    private static uint ExtBit(EventKind kind) => kind is EventKind.External or EventKind.Exception or EventKind.Nmi or EventKind.PrivilegedSoftware ? 1u : 0u;

    private static bool IsSoftware(EventKind kind) => kind is EventKind.SoftwareIntN or EventKind.SoftwareException;

    /// <summary>
    /// Reads and checks the code segment an IDT gate names (APM vol. 2 §8.7.3, §8.9.3): non-null,
    /// inside the table, code with DPL ≤ CPL, present. Errors carry the EXT bit.
    /// </summary>
    private bool GateTargetCode(ushort sel, uint ext, out SegmentCache cs)
    {
        cs = default;
        if (IsNullSelector(sel))
        {
            return RaiseGP(ext) == 0;
        }

        if (!DescriptorInTable(sel))
        {
            return RaiseGP(SelectorError(sel) | ext) == 0;
        }

        if (!FetchDescriptor(sel, out ulong d))
        {
            return false;
        }

        cs = FromDescriptor(sel, d);
        cs.Attr |= 1;
        if (!cs.IsCode || cs.Dpl > Cpl)
        {
            return RaiseGP(SelectorError(sel) | ext) == 0;
        }

        if (!cs.Present)
        {
            return Raise(Vector.NP, SelectorError(sel) | ext) == 0;
        }

        return SetDescriptorAccessed(sel, d);
    }

    private bool DeliverLong(int vector, EventKind kind, uint error, bool hasError)
    {
        uint ext = ExtBit(kind);
        uint off = (uint)vector * 16;
        uint idtErr = ((uint)vector << 3) | 2 | ext;
        if (off + 15 > Idtr.Limit)
        {
            return RaiseGP(idtErr) == 0;
        }

        if (!ReadLinearSystem(Idtr.Base + off, 8, out ulong lo) || !ReadLinearSystem(Idtr.Base + off + 8, 8, out ulong hi))
        {
            return false;
        }

        // Long mode has only 64-bit interrupt and trap gates (APM vol. 2 §4.8.4); task gates are illegal.
        int type = (int)(lo >> 40) & 0x1F;
        int dpl = (int)(lo >> 45) & 3;
        if (type is not (0xE or 0xF))
        {
            return RaiseGP(idtErr) == 0;
        }

        if (IsSoftware(kind) && dpl < Cpl)
        {
            return RaiseGP(idtErr) == 0;
        }

        if ((lo & (1UL << 47)) == 0)
        {
            return Raise(Vector.NP, idtErr) == 0;
        }

        ushort sel = (ushort)(lo >> 16);
        ulong target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000) | (hi << 32);
        int ist = (int)(lo >> 32) & 7;
        if (!GateTargetCode(sel, ext, out SegmentCache cs))
        {
            return false;
        }

        if (!cs.Long || cs.Big)
        {
            return RaiseGP(SelectorError(sel) | ext) == 0;
        }

        int newCpl = (cs.Type & 4) != 0 ? Cpl : cs.Dpl; // conforming keeps CPL
        ulong rsp = Gpr[Reg.RSP];
        if (ist != 0 || newCpl < Cpl)
        {
            // RSPn or ISTn from the 64-bit TSS (APM vol. 2 §12.2.5, §8.9.4).
            ulong slot = ist != 0 ? 0x24 + ((ulong)(ist - 1) * 8) : 4 + ((ulong)newCpl * 8);
            ref SegmentCache tr = ref Seg[TrIndex];
            if (slot + 7 > tr.Limit)
            {
                return Raise(Vector.TS, SelectorError(tr.Selector) | ext) == 0;
            }

            if (!ReadLinearSystem(tr.Base + slot, 8, out rsp))
            {
                return false;
            }
        }

        // 64-bit mode aligns the new stack to 16 bytes and always pushes SS:RSP (APM vol. 2 §8.9.3).
        rsp &= ~0xFUL;
        ulong flags = Rflags64 | _imageRf;
        Span<ulong> frame = [Seg[SegReg.SS].Selector, Gpr[Reg.RSP], flags, Seg[SegReg.CS].Selector, Rip, error];
        if (!WriteStack(Seg[SegReg.SS], rsp, 8, 8, frame[..(hasError ? 6 : 5)], newCpl < 3, 0, out ulong newRsp))
        {
            return false;
        }

        // The handler must be canonical for the paging mode in force (57 bits under CR4.LA57).
        if (!IsCanonicalNow(target))
        {
            return RaiseGP(ext) == 0;
        }

        if (newCpl != Cpl)
        {
            // The new SS is the null selector with RPL = new CPL.
            Seg[SegReg.SS] = new SegmentCache
            {
                Selector = (ushort)newCpl,
                Attr = (ushort)(SegmentCache.AttrS | SegmentCache.AttrP | 0x3 | (newCpl << 5)),
            };
            SegmentLoaded(SegReg.SS);
        }

        MaterializeFlags();
        FlagsBits &= ~(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM);
        if (type == 0xE)
        {
            FlagsBits &= ~Rflags.IF;
        }

        cs.Selector = (ushort)((sel & 0xFFFC) | newCpl);
        CommitCodeSegment(cs, newCpl);
        Gpr[Reg.RSP] = newRsp;
        Rip = target;
        return true;
    }

    private bool DeliverProtected(int vector, EventKind kind, uint error, bool hasError)
    {
        uint ext = ExtBit(kind);
        uint off = (uint)vector * 8;
        uint idtErr = ((uint)vector << 3) | 2 | ext;
        if (off + 7 > Idtr.Limit)
        {
            return RaiseGP(idtErr) == 0;
        }

        if (!ReadLinearSystem(Idtr.Base + off, 8, out ulong g))
        {
            return false;
        }

        bool vm86 = Mode == CpuMode.Virtual8086;
        int type = (int)(g >> 40) & 0x1F;
        int dpl = (int)(g >> 45) & 3;
        if (type is not (0x5 or 0x6 or 0x7 or 0xE or 0xF))
        {
            return RaiseGP(idtErr) == 0;
        }

        // Software interrupts from virtual-8086 mode need IOPL 3 (APM vol. 2 §8.10.2, without VME redirection).
        if (IsSoftware(kind) && (dpl < Cpl || (vm86 && kind == EventKind.SoftwareIntN && ((FlagsBits >> 12) & 3) != 3)))
        {
            return RaiseGP(vm86 && dpl >= Cpl ? 0 : idtErr) == 0;
        }

        if ((g & (1UL << 47)) == 0)
        {
            return Raise(Vector.NP, idtErr) == 0;
        }

        if (type == 0x5)
        {
            Diagnostic?.Invoke($"emu: task gate in IDT vector {vector}: hardware task switching is not implemented");
            return RaiseGP(idtErr) == 0;
        }

        bool gate32 = (type & 8) != 0;
        int size = gate32 ? 4 : 2;
        ushort sel = (ushort)(g >> 16);
        ulong target = (g & 0xFFFF) | (gate32 ? (g >> 32) & 0xFFFF0000 : 0);
        if (!GateTargetCode(sel, ext, out SegmentCache cs))
        {
            return false;
        }

        bool conforming = (cs.Type & 4) != 0;
        int newCpl = conforming ? Cpl : cs.Dpl;
        if (vm86 && newCpl != 0)
        {
            // From virtual-8086 mode the handler must be non-conforming ring-0 code.
            return RaiseGP(SelectorError(sel) | ext) == 0;
        }

        if (target > cs.Limit)
        {
            return RaiseGP(ext) == 0;
        }

        ulong flags = Rflags64 | _imageRf;
        if (newCpl < Cpl)
        {
            if (!ReadTssStack(newCpl, ext, out ushort ssSel, out ulong esp))
            {
                return false;
            }

            if (!CheckStackSegment(ssSel, newCpl, true, out SegmentCache ss))
            {
                return false;
            }

            Span<ulong> frame =
            [
                Seg[SegReg.GS].Selector, Seg[SegReg.FS].Selector, Seg[SegReg.DS].Selector, Seg[SegReg.ES].Selector,
                Seg[SegReg.SS].Selector, Gpr[Reg.RSP], flags, Seg[SegReg.CS].Selector, Rip, error,
            ];
            int first = vm86 ? 0 : 4;
            int last = hasError ? frame.Length : frame.Length - 1;
            int ssSize = LegacyStackSize(ss);
            if (!WriteStack(ss, esp, ssSize, size, frame[first..last], true, SelectorError(ssSel), out ulong newSp))
            {
                return false;
            }

            MaterializeFlags();
            FlagsBits &= ~(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM);
            if (vm86)
            {
                for (int s = 0; s < 6; s++)
                {
                    if (s is SegReg.ES or SegReg.DS or SegReg.FS or SegReg.GS)
                    {
                        Seg[s] = NullSegment(0);
                    }
                }
            }

            Seg[SegReg.SS] = ss;
            Gpr[Reg.RSP] = ssSize == 4 ? newSp : (Gpr[Reg.RSP] & ~0xFFFFUL) | newSp;
        }
        else
        {
            Span<ulong> frame = [flags, Seg[SegReg.CS].Selector, Rip, error];
            int ssSize = StackSize;
            if (!WriteStack(Seg[SegReg.SS], Gpr[Reg.RSP], ssSize, size, frame[..(hasError ? 4 : 3)], Cpl < 3, 0, out ulong newSp))
            {
                return false;
            }

            MaterializeFlags();
            FlagsBits &= ~(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM);
            SetStackPointer(newSp, ssSize);
        }

        if ((type & 7) == 6)
        {
            FlagsBits &= ~Rflags.IF;
        }

        cs.Selector = (ushort)((sel & 0xFFFC) | newCpl);
        CommitCodeSegment(cs, newCpl);
        RecomputeSegmentAccess();
        Rip = target;
        return true;
    }

    /// <summary>
    /// SSn:ESPn for an inner privilege level from the current legacy TSS (APM vol. 2 §12.2.2–12.2.3):
    /// a 32-bit TSS holds ESPn at 4+8n and SSn at 8+8n, a 16-bit TSS SPn at 2+4n and SSn at 4+4n.
    /// Beyond the TSS limit → #TS(TSS selector).
    /// </summary>
    public bool ReadTssStackFor(int cpl, out ushort ss, out ulong sp) => ReadTssStack(cpl, 0, out ss, out sp);

    private bool ReadTssStack(int cpl, uint ext, out ushort ss, out ulong sp)
    {
        ss = 0;
        sp = 0;
        ref SegmentCache tr = ref Seg[TrIndex];
        bool tss32 = (tr.Type & 8) != 0;
        ulong spOff = tss32 ? 4 + ((ulong)cpl * 8) : 2 + ((ulong)cpl * 4);
        ulong ssOff = tss32 ? spOff + 4 : spOff + 2;
        if (ssOff + 1 > tr.Limit)
        {
            return Raise(Vector.TS, SelectorError(tr.Selector) | ext) == 0;
        }

        if (!ReadLinearSystem(tr.Base + spOff, tss32 ? 4 : 2, out sp) || !ReadLinearSystem(tr.Base + ssOff, 2, out ulong s))
        {
            return false;
        }

        ss = (ushort)s;
        return true;
    }
}
