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
    private static bool IsContributory(int v) => v is Vector.DE or Vector.TS or Vector.NP or Vector.SS or Vector.GP;

    public void DeliverEvent(int vector, EventKind kind, uint error, bool hasError)
    {
        Cycles += Costs.EventDelivery;
        Halted = false;
        int first = vector;
        while (true)
        {
            PendingVector = -1;
            bool ok = TryDeliver(vector, kind, error, hasError);
            if (ok)
            {
                return;
            }

            int second = PendingVector;
            PendingVector = -1;
            if (first == Vector.DF)
            {
                Shutdown = true;
                StopRequested = false;
                return;
            }

            bool df = (IsContributory(first) && IsContributory(second))
                   || (first == Vector.PF && (second == Vector.PF || IsContributory(second)));
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
        if (!Push(flags & 0xFFFF, 2) || !Push(Seg[SegReg.CS].Selector, 2) || !Push(Rip & 0xFFFF, 2))
        {
            return false;
        }

        MaterializeFlags();
        FlagsBits &= ~(Rflags.IF | Rflags.TF | Rflags.AC | Rflags.RF);
        Seg[SegReg.CS] = SegmentCache.RealMode((ushort)(ivt >> 16), 0x9B);
        SegmentLoaded(SegReg.CS);
        Rip = ivt & 0xFFFF;
        return true;
    }

    private uint ExtBit(EventKind kind) => kind is EventKind.External or EventKind.Exception or EventKind.Nmi ? 1u : 0u;

    private bool DeliverLong(int vector, EventKind kind, uint error, bool hasError)
    {
        uint off = (uint)vector * 16;
        uint idtErr = ((uint)vector << 3) | 2 | ExtBit(kind);
        if (off + 15 > Idtr.Limit)
        {
            return RaiseGP(idtErr) == 0;
        }

        if (!ReadLinearSystem(Idtr.Base + off, 8, out ulong lo) || !ReadLinearSystem(Idtr.Base + off + 8, 8, out ulong hi))
        {
            return false;
        }

        int type = (int)(lo >> 40) & 0xF;
        int dpl = (int)(lo >> 45) & 3;
        if (type is not (0xE or 0xF))
        {
            return RaiseGP(idtErr) == 0;
        }

        if (kind is EventKind.SoftwareIntN or EventKind.SoftwareException && dpl < Cpl)
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
        if ((sel & ~3) == 0)
        {
            return RaiseGP(ExtBit(kind)) == 0;
        }

        if (!FetchDescriptor(sel, out ulong cd))
        {
            return false;
        }

        var cs = FromDescriptor(sel, cd);
        if (!cs.IsCode || !cs.Long || cs.Big || cs.Dpl > Cpl)
        {
            return RaiseGP((uint)(sel & ~3) | ExtBit(kind)) == 0;
        }

        if (!cs.Present)
        {
            return Raise(Vector.NP, (uint)(sel & ~3) | ExtBit(kind)) == 0;
        }

        int newCpl = (cs.Type & 4) != 0 ? Cpl : cs.Dpl; // conforming keeps CPL
        ulong oldSs = Seg[SegReg.SS].Selector;
        ulong oldRsp = Gpr[Reg.RSP];
        ulong rsp = oldRsp;
        ulong trBase = Seg[TrIndex].Base;
        if (ist != 0)
        {
            if (!ReadLinearSystem(trBase + 0x24 + ((ulong)(ist - 1) * 8), 8, out rsp))
            {
                return false;
            }
        }
        else if (newCpl < Cpl)
        {
            if (!ReadLinearSystem(trBase + 4 + ((ulong)newCpl * 8), 8, out rsp))
            {
                return false;
            }
        }

        rsp &= ~0xFUL;
        ulong flags = Rflags64;
        Span<ulong> frame = [oldSs, oldRsp, flags, Seg[SegReg.CS].Selector, Rip, error];
        int n = hasError ? 6 : 5;
        int savedCpl = Cpl;
        Cpl = newCpl; // pushes use the new privilege level
        for (int i = 0; i < n; i++)
        {
            rsp -= 8;
            if (!WriteLinearSystem(rsp, 8, frame[i]))
            {
                Cpl = savedCpl;
                return false;
            }
        }

        Cpl = savedCpl;
        if (newCpl != Cpl)
        {
            Seg[SegReg.SS] = new SegmentCache { Selector = (ushort)newCpl, Attr = (ushort)(0x93 | (newCpl << 5)) };
        }

        SetCpl(newCpl);
        cs.Selector = (ushort)((sel & ~3) | newCpl);
        Seg[SegReg.CS] = cs;
        MaterializeFlags();
        FlagsBits &= ~(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM);
        if (type == 0xE)
        {
            FlagsBits &= ~Rflags.IF;
        }

        Gpr[Reg.RSP] = rsp;
        Rip = target;
        SegmentLoaded(SegReg.SS);
        SegmentLoaded(SegReg.CS);
        return true;
    }

    private bool DeliverProtected(int vector, EventKind kind, uint error, bool hasError)
    {
        uint off = (uint)vector * 8;
        uint idtErr = ((uint)vector << 3) | 2 | ExtBit(kind);
        if (off + 7 > Idtr.Limit)
        {
            return RaiseGP(idtErr) == 0;
        }

        if (!ReadLinearSystem(Idtr.Base + off, 8, out ulong g))
        {
            return false;
        }

        int type = (int)(g >> 40) & 0x1F;
        int dpl = (int)(g >> 45) & 3;
        bool gate32 = (type & 8) != 0;
        if ((type & 0x17) is not (0x6 or 0x7))
        {
            return RaiseGP(idtErr) == 0;
        }

        if (kind is EventKind.SoftwareIntN or EventKind.SoftwareException && dpl < Cpl)
        {
            return RaiseGP(idtErr) == 0;
        }

        if ((g & (1UL << 47)) == 0)
        {
            return Raise(Vector.NP, idtErr) == 0;
        }

        ushort sel = (ushort)(g >> 16);
        ulong target = (g & 0xFFFF) | ((g >> 32) & 0xFFFF0000);
        if ((sel & ~3) == 0)
        {
            return RaiseGP(ExtBit(kind)) == 0;
        }

        if (!FetchDescriptor(sel, out ulong cd))
        {
            return false;
        }

        var cs = FromDescriptor(sel, cd);
        if (!cs.IsCode || cs.Dpl > Cpl)
        {
            return RaiseGP((uint)(sel & ~3) | ExtBit(kind)) == 0;
        }

        if (!cs.Present)
        {
            return Raise(Vector.NP, (uint)(sel & ~3) | ExtBit(kind)) == 0;
        }

        int newCpl = (cs.Type & 4) != 0 ? Cpl : cs.Dpl;
        int size = gate32 ? 4 : 2;
        ulong flags = Rflags64;
        ulong oldSs = Seg[SegReg.SS].Selector, oldEsp = Gpr[Reg.RSP];
        if (newCpl < Cpl)
        {
            // Inner-privilege stack from the TSS (32-bit TSS: ESPn at 4+8n, SSn at 8+8n).
            ulong trBase = Seg[TrIndex].Base;
            if (!ReadLinearSystem(trBase + 4 + ((ulong)newCpl * 8), 4, out ulong esp) ||
                !ReadLinearSystem(trBase + 8 + ((ulong)newCpl * 8), 2, out ulong ss))
            {
                return false;
            }

            if (!FetchDescriptor((ushort)ss, out ulong sd))
            {
                return false;
            }

            var ssc = FromDescriptor((ushort)ss, sd);
            Seg[SegReg.SS] = ssc;
            SegmentLoaded(SegReg.SS);
            Gpr[Reg.RSP] = esp;
            int saved = Cpl;
            Cpl = newCpl;
            bool ok = Push(oldSs, size) && Push(oldEsp, size);
            Cpl = saved;
            if (!ok)
            {
                return false;
            }
        }

        int savedCpl = Cpl;
        Cpl = newCpl;
        bool pushed = Push(flags, size) && Push(Seg[SegReg.CS].Selector, size) && Push(Rip, size) && (!hasError || Push(error, size));
        Cpl = savedCpl;
        if (!pushed)
        {
            return false;
        }

        SetCpl(newCpl);
        cs.Selector = (ushort)((sel & ~3) | newCpl);
        Seg[SegReg.CS] = cs;
        MaterializeFlags();
        FlagsBits &= ~(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM);
        if ((type & 7) == 6)
        {
            FlagsBits &= ~Rflags.IF;
        }

        Rip = gate32 ? target : target & 0xFFFF;
        SegmentLoaded(SegReg.CS);
        return true;
    }
}
