using Emulator.Core.Cpu;

namespace Emulator.Core.Devices.Apic;

/// <summary>APIC register offsets in the xAPIC page (APM vol. 2 Table 16-2); x2APIC MSR = 0x800 + offset / 16.</summary>
public static class ApicReg
{
    public const int Id = 0x20, Version = 0x30, Tpr = 0x80, Apr = 0x90, Ppr = 0xA0, Eoi = 0xB0, Rrd = 0xC0;
    public const int Ldr = 0xD0, Dfr = 0xE0, Svr = 0xF0, Isr = 0x100, Tmr = 0x180, Irr = 0x200, Esr = 0x280;
    public const int IcrLow = 0x300, IcrHigh = 0x310, LvtTimer = 0x320, LvtThermal = 0x330, LvtPerf = 0x340;
    public const int LvtLint0 = 0x350, LvtLint1 = 0x360, LvtError = 0x370;
    public const int TimerInitial = 0x380, TimerCurrent = 0x390, TimerDivide = 0x3E0, SelfIpi = 0x3F0;

    /// <summary>First x2APIC MSR; MSR 0x800 + (offset >> 4) is the register at <c>offset</c>.</summary>
    public const uint MsrBase = 0x800;

    /// <summary>IA32_TSC_DEADLINE (Intel SDM vol. 3 §10.5.4.1), forwarded to the APIC by the CPU.</summary>
    public const uint TscDeadlineMsr = 0x6E0;
}

/// <summary>Register access: the xAPIC MMIO page and the x2APIC MSRs share one register file.</summary>
public sealed partial class LocalApic
{
    /// <summary>
    /// ICR bits a write keeps: vector, delivery mode, destination mode, level, trigger mode, shorthand. The
    /// delivery-status bit (12) always reads idle: a message is delivered when the ICR is written.
    /// </summary>
    private const uint IcrLowWritable = 0x000C_CFFF & ~DeliveryStatus;

    /// <summary>x2APIC ICR bits that #GP when set (bits 31:20, 17:16, 13), as KVM checks; bit 12 is ignored.</summary>
    private const ulong X2IcrReserved = 0xFFF0_0000UL | 0x3_0000UL | 0x2000UL;

    /// <summary>
    /// An access of the vCPU that owns this APIC to guest-physical <paramref name="gpa"/>: true, with the register
    /// value, when it falls in the APIC's page (even while the APIC is disabled, which reads as all ones).
    /// </summary>
    public bool TryReadMmio(ulong gpa, int size, out ulong value)
    {
        ulong offset = gpa - MmioBase;
        if (offset >= PageSize)
        {
            value = 0;
            return false;
        }

        value = ReadMmio(offset, size);
        return true;
    }

    /// <summary>A write of the owning vCPU; true when it falls in the APIC's page (and was taken or dropped there).</summary>
    public bool TryWriteMmio(ulong gpa, int size, ulong value)
    {
        ulong offset = gpa - MmioBase;
        if (offset >= PageSize)
        {
            return false;
        }

        WriteMmio(offset, size, value);
        return true;
    }

    /// <summary>xAPIC register read at <paramref name="offset"/> in the APIC page.</summary>
    /// <remarks>
    /// As KVM: while the APIC is hardware-disabled or in x2APIC mode the page reads as all ones and ignores
    /// writes (the MMIO "hole"); a read of 1, 2 or 4 bytes inside the first dword of a register returns those
    /// bytes; reads of reserved or write-only registers, or that cross the dword, return 0.
    /// </remarks>
    public ulong ReadMmio(ulong offset, int size)
    {
        if (!HardwareEnabled || X2ApicMode)
        {
            return size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        }

        int align = (int)(offset & 0xF);
        if (offset >= 0x400 || align + size > 4 || !TryRead((int)offset & 0x3F0, false, out uint v))
        {
            return 0;
        }

        v >>= align * 8;
        return size >= 4 ? v : v & ((1u << (size * 8)) - 1);
    }

    /// <summary>
    /// xAPIC register write. Only aligned 32-bit writes reach a register (Intel SDM vol. 3 §10.4.1: registers
    /// are accessed with 128-bit-aligned 32-bit stores); other writes, and writes to read-only or reserved
    /// registers, are ignored, as KVM does.
    /// </summary>
    public void WriteMmio(ulong offset, int size, ulong value)
    {
        if (!HardwareEnabled || X2ApicMode || size != 4 || (offset & 0xF) != 0 || offset >= 0x400)
        {
            return;
        }

        TryWrite((int)offset, (uint)value, false);
    }

    /// <summary>
    /// RDMSR of an x2APIC register (0x800–0x8FF) or IA32_TSC_DEADLINE; false → #GP. x2APIC registers exist
    /// only in x2APIC mode; EOI and SELF_IPI are write-only; the ICR is one 64-bit register at 0x830.
    /// </summary>
    public bool ReadMsr(uint msr, out ulong value)
    {
        value = 0;
        if (msr == ApicReg.TscDeadlineMsr)
        {
            value = ReadTscDeadline();
            return true;
        }

        if (!X2ApicMode || msr < ApicReg.MsrBase || msr > ApicReg.MsrBase + 0xFF)
        {
            return false;
        }

        int reg = (int)(msr - ApicReg.MsrBase) << 4;
        if (reg == ApicReg.IcrLow)
        {
            value = ((ulong)Reg(ApicReg.IcrHigh) << 32) | Reg(ApicReg.IcrLow);
            return true;
        }

        if (!TryRead(reg, true, out uint v))
        {
            return false;
        }

        value = v;
        return true;
    }

    /// <summary>
    /// WRMSR of an x2APIC register or IA32_TSC_DEADLINE; false → #GP. In x2APIC mode a non-zero write to a
    /// reserved bit, any write to a read-only register, and (except for the 64-bit ICR) bits 63:32 are #GP
    /// (Intel SDM vol. 3 §10.12.1.3).
    /// </summary>
    public bool WriteMsr(uint msr, ulong value)
    {
        if (msr == ApicReg.TscDeadlineMsr)
        {
            WriteTscDeadline(value);
            return true;
        }

        if (!X2ApicMode || msr < ApicReg.MsrBase || msr > ApicReg.MsrBase + 0xFF)
        {
            return false;
        }

        int reg = (int)(msr - ApicReg.MsrBase) << 4;
        if (reg == ApicReg.IcrLow)
        {
            return WriteIcr64(value);
        }

        return (value >> 32) == 0 && TryWrite(reg, (uint)value, true);
    }

    /// <summary>The x2APIC ICR, one 64-bit register (destination in 63:32), stored as low 0x300 / high 0x310.</summary>
    private bool WriteIcr64(ulong value)
    {
        if ((value & X2IcrReserved) != 0)
        {
            return false;
        }

        uint low = (uint)value & IcrLowWritable;
        uint high = (uint)(value >> 32);
        Set(ApicReg.IcrLow, low);
        Set(ApicReg.IcrHigh, high);
        SendIpi(low, high);
        return true;
    }

    /// <summary>Reads a 32-bit register; false when it does not exist or is write-only in this mode.</summary>
    private bool TryRead(int reg, bool x2, out uint v)
    {
        v = 0;
        switch (reg)
        {
            case ApicReg.Apr or ApicReg.Dfr or ApicReg.IcrHigh when !x2:
            case ApicReg.Id or ApicReg.Version or ApicReg.Tpr or ApicReg.Ppr or ApicReg.Ldr or ApicReg.Svr:
            case >= ApicReg.Isr and < ApicReg.Esr + 0x10:
            case ApicReg.IcrLow:
            case >= ApicReg.LvtTimer and <= ApicReg.TimerInitial:
            case ApicReg.TimerDivide:
                // The register page holds each of these as read: ID and LDR in the current mode's form, ISR, TMR,
                // IRR, ESR. APR (xAPIC only) is the manuals' arbitration priority; KVM has no x2APIC APR MSR
                // (0x809 #GPs) and reads the xAPIC APR as 0.
                v = Reg(reg);
                return true;
            case ApicReg.TimerCurrent:
                v = CurrentCount();
                return true;
            default:
                // Reserved, EOI, remote read (KVM does not implement it) and SELF_IPI.
                return false;
        }
    }

    /// <summary>Writes a 32-bit register; false (#GP in x2APIC mode, ignored in xAPIC mode) when not writable.</summary>
    private bool TryWrite(int reg, uint v, bool x2)
    {
        switch (reg)
        {
            case ApicReg.Id:
                // Writable in xAPIC mode (as KVM allows); read-only in x2APIC mode.
                if (x2)
                {
                    return false;
                }

                Set(ApicReg.Id, v & 0xFF00_0000);
                if ((v >> 24) != InitialApicId)
                {
                    LayoutChanged?.Invoke(this, ApicLayoutChange.IdModified);
                }

                return true;
            case ApicReg.Tpr:
                if (x2 && (v & ~0xFFu) != 0)
                {
                    return false;
                }

                Cpu.Tpr = (byte)v;
                // A lower TPR can unblock a pending vector at the next instruction boundary.
                Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
                return true;
            case ApicReg.Eoi:
                // x2APIC: a non-zero EOI write is #GP (Intel SDM vol. 3 Table 10-6).
                if (x2 && v != 0)
                {
                    return false;
                }

                Eoi();
                return true;
            case ApicReg.Ldr when !x2:
                Set(ApicReg.Ldr, v & 0xFF00_0000);
                return true;
            case ApicReg.Dfr when !x2:
                // Model in bits 31:28 (flat 1111b, cluster 0000b); bits 27:0 read as ones.
                Set(ApicReg.Dfr, v | 0x0FFF_FFFF);
                return true;
            case ApicReg.Svr:
                if (x2 && (v & ~SvrWritable) != 0)
                {
                    return false;
                }

                WriteSvr(v & SvrWritable);
                return true;
            case ApicReg.Esr:
                // Write-then-read: a write makes the errors latched since the last write visible and starts a
                // new collection (APM vol. 2 §16.4.6). x2APIC allows only zero.
                if (x2 && v != 0)
                {
                    return false;
                }

                Set(ApicReg.Esr, _esrPending);
                _esrPending = 0;
                return true;
            case ApicReg.IcrLow when !x2:
                Set(ApicReg.IcrLow, v & IcrLowWritable);
                SendIpi(v & IcrLowWritable, Reg(ApicReg.IcrHigh) >> 24);
                return true;
            case ApicReg.IcrHigh when !x2:
                Set(ApicReg.IcrHigh, v & 0xFF00_0000);
                return true;
            case >= ApicReg.LvtTimer and <= ApicReg.LvtError:
                return WriteLvt((reg - ApicReg.LvtTimer) >> 4, v, x2);
            case ApicReg.TimerInitial:
                WriteInitialCount(v);
                return true;
            case ApicReg.TimerDivide:
                if (x2 && (v & ~0xBu) != 0)
                {
                    return false;
                }

                WriteDivide(v & 0xB);
                return true;
            case ApicReg.SelfIpi when x2:
                // SELF_IPI exists only in x2APIC mode: vector in 7:0, the rest reserved.
                if ((v & ~VectorMask) != 0)
                {
                    return false;
                }

                SendIpi(v | ((uint)ApicShorthand.Self << 18), 0);
                return true;
            default:
                // Read-only (ID and LDR in x2APIC mode, version, APR, PPR, ISR, TMR, IRR, current count) or
                // reserved.
                return false;
        }
    }

    /// <summary>
    /// SVR write: clearing the software enable masks every LVT entry, and while it stays clear the mask bits
    /// cannot be cleared (APM vol. 2 §16.4.7).
    /// </summary>
    private void WriteSvr(uint v)
    {
        Set(ApicReg.Svr, v);
        if ((v & SvrEnable) == 0)
        {
            for (int i = 0; i < LvtCount; i++)
            {
                SetLvt(i, Lvt(i) | Masked);
            }
        }

        Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
    }

    /// <summary>Bits of an LVT entry that software writes (APM vol. 2 Figure 16-7).</summary>
    private uint LvtWritable(int index) => index switch
    {
        // Timer mode: bit 17 periodic; bit 18 TSC-deadline when the CPU reports it.
        LvtTimer => VectorMask | Masked | ((Cpu.Features.Has(Emulator.Core.Cpu.CpuFeature.TscDeadline) ? 3u : 1u) << TimerModeShift),
        LvtThermal or LvtPerf => VectorMask | ModeMask | Masked,
        LvtLint0 or LvtLint1 => VectorMask | ModeMask | Polarity | TriggerLevel | Masked,
        _ => VectorMask | Masked,
    };

    private bool WriteLvt(int index, uint v, bool x2)
    {
        uint writable = LvtWritable(index);
        // Delivery status (and a LINT's remote IRR) are read-only: written values are ignored, not #GP.
        uint readOnly = DeliveryStatus | (index is LvtLint0 or LvtLint1 ? RemoteIrr : 0);
        if (x2 && (v & ~(writable | readOnly)) != 0)
        {
            return false;
        }

        if (!SoftwareEnabled)
        {
            v |= Masked;
        }

        uint old = Lvt(index);
        uint now = (v & writable) | (old & RemoteIrr & readOnly);
        SetLvt(index, now);
        if (index == LvtTimer)
        {
            TimerLvtChanged(old, now);
        }

        // Unmasking LINT0 in ExtINT mode can make the PIC's INTR deliverable.
        Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
        return true;
    }

    /// <summary>
    /// Sends the message in ICR (or SELF_IPI) through the bus. A fixed or lowest-priority message with a vector
    /// below 16 is not sent and sets ESR "send illegal vector". Reserved delivery mode 3 is dropped.
    /// </summary>
    private void SendIpi(uint low, uint destination)
    {
        var mode = (ApicDeliveryMode)((low >> 8) & 7);
        byte vector = (byte)low;
        if (mode is ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority && vector < 16)
        {
            SetError(EsrSendIllegalVector);
            return;
        }

        if ((int)mode == 3)
        {
            return;
        }

        IpisSent++;
        var message = new ApicMessage(
            vector,
            mode,
            (low & DestLogical) != 0,
            destination,
            (ApicShorthand)((low >> 18) & 3),
            (low & TriggerLevel) != 0,
            (low & LevelAssert) != 0,
            this);
        _bus.Deliver(message);
    }
}
