namespace Emulator.Core.Cpu;

/// <summary>Model-specific register numbers (AMD64 APM vol. 2 appendix A).</summary>
public static class Msr
{
    public const uint Tsc = 0x10;

    /// <summary>IA32_TSC_ADJUST (Intel SDM vol. 3 §18.17.3; KVM emulates it on AMD too).</summary>
    public const uint TscAdjust = 0x3B;
    public const uint ApicBase = 0x1B;

    /// <summary>x2APIC register MSRs (APM vol. 2 §16.11).</summary>
    public const uint X2ApicFirst = 0x800, X2ApicLast = 0x8FF;

    public const uint MtrrCap = 0xFE;

    /// <summary>IA32_TSC_DEADLINE: the APIC timer's TSC-deadline mode (forwarded to the local APIC).</summary>
    public const uint TscDeadline = 0x6E0;
    public const uint SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176;
    public const uint McgCap = 0x179, McgStatus = 0x17A;
    public const uint MiscEnable = 0x1A0;

    /// <summary>AMD legacy performance counters PerfEvtSel0–3 (0xC0010000–3) and PerfCtr0–3 (0xC0010004–7).</summary>
    public const uint K7PerfFirst = 0xC001_0000, K7PerfLast = 0xC001_0007;
    public const uint MtrrPhysBase0 = 0x200, MtrrPhysMask7 = 0x20F;
    public const uint MtrrFix64K = 0x250, MtrrFix16K80000 = 0x258, MtrrFix16KA0000 = 0x259;
    public const uint MtrrFix4KC0000 = 0x268, MtrrFix4KF8000 = 0x26F;
    public const uint Pat = 0x277;
    public const uint MtrrDefType = 0x2FF;
    public const uint Efer = 0xC000_0080;
    public const uint Star = 0xC000_0081, Lstar = 0xC000_0082, Cstar = 0xC000_0083, Sfmask = 0xC000_0084;
    public const uint FsBase = 0xC000_0100, GsBase = 0xC000_0101, KernelGsBase = 0xC000_0102, TscAux = 0xC000_0103;
    public const uint Hwcr = 0xC001_0015;

    /// <summary>DebugCtl (APM vol. 2 §13.1.1.6): bit 0 LBR, bit 1 BTF; the rest reserved.</summary>
    public const uint DebugCtl = 0x1D9;

    /// <summary>Control-transfer recording MSRs (APM vol. 2 §13.1.1.3), read-only.</summary>
    public const uint LastBranchFromIp = 0x1DB, LastBranchToIp = 0x1DC, LastExceptionFromIp = 0x1DD, LastExceptionToIp = 0x1DE;
    public const uint VmCr = 0xC001_0114, VmHsavePa = 0xC001_0117;
}

/// <summary>
/// RDMSR/WRMSR semantics: each known MSR with its reserved-bit checks. An unknown MSR or a write of a
/// reserved bit is a #GP(0) (APM vol. 3 "RDMSR", "WRMSR"); these methods report that by returning false
/// and leave the raising to the caller, so the SVM layer can reuse them for its MSR intercepts.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>PAT reset value: WB, WT, UC-, UC repeated (APM vol. 2 §7.8.1).</summary>
    public const ulong PatDefault = 0x0007_0406_0007_0406;

    public const ulong VmCrSvmDis = 1 << 4;

    public const ulong ApicBaseBsp = 1 << 8, ApicBaseExtd = 1 << 10, ApicBaseEnable = 1 << 11;

    /// <summary>Variable MTRR pairs reported in MTRRcap.VCNT.</summary>
    public const int VariableMtrrCount = 8;

    /// <summary>MTRRcap: VCNT = 8, fixed-range MTRRs (bit 8), write-combining type (bit 10).</summary>
    public const ulong MtrrCapValue = VariableMtrrCount | (1 << 8) | (1 << 10);

    public ulong Pat = PatDefault;
    public ulong TscAux;

    /// <summary>IA32_TSC_ADJUST: the sum of every change made to the TSC by software (WRMSR to TSC or to this MSR).</summary>
    public ulong TscAdjust;
    public bool IsBsp = true;
    public ulong ApicBase = 0xFEE0_0000 | ApicBaseBsp | ApicBaseEnable;
    public ulong MtrrDefType;
    public readonly ulong[] MtrrVariable = new ulong[VariableMtrrCount * 2];
    public readonly ulong[] MtrrFixed = new ulong[11];
    public ulong Hwcr;

    /// <summary>
    /// IA32_MISC_ENABLE: KVM emulates it for every vendor and resets it to "BTS unavailable | PEBS unavailable"
    /// (bits 11 and 12), which a guest may not change; EMON (bit 7) ignores writes.
    /// </summary>
    public ulong MiscEnable = MiscEnableBtsUnavailable | MiscEnablePebsUnavailable;

    public const ulong MiscEnableEmon = 1 << 7, MiscEnableBtsUnavailable = 1 << 11, MiscEnablePebsUnavailable = 1 << 12;
    public ulong VmCr;
    public ulong VmHsavePa;

    /// <summary>DebugCtl: LBR (bit 0) and BTF (bit 1).</summary>
    public ulong DebugCtl;
    public const ulong DebugCtlValidBits = 3;

    private const ulong EferAlwaysValid = EferBits.SCE | EferBits.LME | EferBits.LMA;

    private ulong PhysAddrReserved => ~((1UL << MaxPhysAddrBits) - 1);

    /// <summary>Bits of EFER a WRMSR may set, from the reported features.</summary>
    public ulong EferValidBits =>
        EferAlwaysValid
        | (Features.Has(CpuFeature.Nx) ? EferBits.NXE : 0)
        | (Features.Has(CpuFeature.Svm) ? EferBits.SVME : 0)
        | (Features.Has(CpuFeature.Ffxsr) ? EferBits.FFXSR : 0);

    private static int FixedMtrrIndex(uint msr) => msr switch
    {
        Msr.MtrrFix64K => 0,
        Msr.MtrrFix16K80000 => 1,
        Msr.MtrrFix16KA0000 => 2,
        >= Msr.MtrrFix4KC0000 and <= Msr.MtrrFix4KF8000 => 3 + (int)(msr - Msr.MtrrFix4KC0000),
        _ => -1,
    };

    /// <summary>RDMSR: false when the MSR does not exist (#GP(0)).</summary>
    public bool ReadMsr(uint msr, out ulong v)
    {
        v = 0;
        if (msr is >= Msr.X2ApicFirst and <= Msr.X2ApicLast)
        {
            return Apic != null && Apic.ReadMsr(msr, out v);
        }

        switch (msr)
        {
            case Msr.Tsc: v = Cycles + TscOffset; return true;
            case Msr.ApicBase: v = ApicBase; return true;
            case Msr.TscAdjust when Features.Has(CpuFeature.TscAdjust): v = TscAdjust; return true;
            case Msr.TscDeadline when Apic != null && Features.Has(CpuFeature.TscDeadline): return Apic.ReadMsr(msr, out v);
            case Msr.MtrrCap: v = MtrrCapValue; return true;
            case Msr.SysenterCs: v = SysenterCs; return true;
            case Msr.SysenterEsp: v = SysenterEsp; return true;
            case Msr.SysenterEip: v = SysenterEip; return true;
            case Msr.McgCap: return true;
            case Msr.McgStatus: return true;
            case Msr.MiscEnable: v = MiscEnable; return true;

            // No virtual PMU: as KVM without one, the legacy counters read 0 and ignore writes.
            case >= Msr.K7PerfFirst and <= Msr.K7PerfLast: return true;
            case Msr.Pat: v = Pat; return true;
            case Msr.MtrrDefType: v = MtrrDefType; return true;
            case Msr.Efer: v = Efer; return true;
            case Msr.Star: v = Star; return true;
            case Msr.Lstar: v = Lstar; return true;
            case Msr.Cstar: v = Cstar; return true;
            case Msr.Sfmask: v = Sfmask; return true;
            case Msr.FsBase: v = Seg[SegReg.FS].Base; return true;
            case Msr.GsBase: v = Seg[SegReg.GS].Base; return true;
            case Msr.KernelGsBase: v = KernelGsBase; return true;
            case Msr.TscAux when Features.Has(CpuFeature.Rdtscp) || Features.Has(CpuFeature.Rdpid): v = TscAux; return true;
            case Msr.Hwcr: v = Hwcr; return true;
            case Msr.DebugCtl: v = DebugCtl; return true;
            case Msr.LastBranchFromIp: v = LastBranchFromIp; return true;
            case Msr.LastBranchToIp: v = LastBranchToIp; return true;
            case Msr.LastExceptionFromIp: v = LastExceptionFromIp; return true;
            case Msr.LastExceptionToIp: v = LastExceptionToIp; return true;
            case Msr.VmCr when Features.Has(CpuFeature.Svm): v = VmCr; return true;
            case Msr.VmHsavePa when Features.Has(CpuFeature.Svm): v = VmHsavePa; return true;
            case >= Msr.MtrrPhysBase0 and <= Msr.MtrrPhysMask7: v = MtrrVariable[msr - Msr.MtrrPhysBase0]; return true;
        }

        int fix = FixedMtrrIndex(msr);
        if (fix >= 0)
        {
            v = MtrrFixed[fix];
            return true;
        }

        return msr is >= ParavirtMsrFirst and <= ParavirtMsrLast && ParavirtMsrs != null && ParavirtMsrs(this, msr, false, ref v);
    }

    /// <summary>
    /// WRMSR: false on an unknown MSR, a reserved bit or an invalid value (#GP(0)); nothing changes then.
    /// A write that can change translation or mode (EFER) flushes the TLB and updates the mode.
    /// </summary>
    public bool WriteMsr(uint msr, ulong v)
    {
        if (msr is >= Msr.X2ApicFirst and <= Msr.X2ApicLast)
        {
            return Apic != null && Apic.WriteMsr(msr, v);
        }

        switch (msr)
        {
            case Msr.Tsc:
                // The TSC is the cycle counter plus an offset (PLATFORM.md, "Cycle model"). IA32_TSC_ADJUST
                // follows the change the write makes (SDM vol. 3 §18.17.3). A nested guest's write that its hypervisor
                // lets through sets the hypervisor's TSC, as KVM does: the value is taken as L1's TSC and L2's TSC
                // keeps its offset from it.
                ulong delta = v - (Cycles + TscOffset - NestedTscOffset);
                TscAdjust += delta;
                TscOffset += delta;
                return true;
            case Msr.TscAdjust when Features.Has(CpuFeature.TscAdjust):
                // Writing IA32_TSC_ADJUST moves the TSC by the difference from its old value (SDM vol. 3 §18.17.3).
                TscOffset += v - TscAdjust;
                TscAdjust = v;
                return true;
            case Msr.ApicBase:
                return WriteApicBase(v);
            case Msr.TscDeadline when Apic != null && Features.Has(CpuFeature.TscDeadline):
                return Apic.WriteMsr(msr, v);
            case Msr.SysenterCs: SysenterCs = v; return true;
            case Msr.SysenterEsp: SysenterEsp = v; return true;
            case Msr.SysenterEip: SysenterEip = v; return true;
            case Msr.McgStatus: return v == 0;
            case Msr.Pat:
                if (!IsValidPat(v))
                {
                    return false;
                }

                Pat = v;
                return true;
            case Msr.MtrrDefType:
                // Type in 7:0, FE = bit 10, E = bit 11; the rest is reserved (APM vol. 2 §7.7.1).
                if ((v & ~0xCFFUL) != 0 || !IsValidMtrrType(v & 0xFF))
                {
                    return false;
                }

                MtrrDefType = v;
                return true;
            case Msr.Efer:
                return WriteEfer(v);
            case Msr.Star: Star = v; return true;
            case Msr.Lstar:
            case Msr.Cstar:
            case Msr.FsBase:
            case Msr.GsBase:
            case Msr.KernelGsBase:
                return WriteAddressMsr(msr, v);
            case Msr.Sfmask:
                // SFMASK bits 63:32 are reserved (APM vol. 2 §6.1.1).
                if ((v >> 32) != 0)
                {
                    return false;
                }

                Sfmask = v;
                return true;
            case Msr.TscAux when Features.Has(CpuFeature.Rdtscp) || Features.Has(CpuFeature.Rdpid):
                if ((v >> 32) != 0)
                {
                    return false;
                }

                TscAux = v;
                return true;
            case Msr.Hwcr: Hwcr = v; return true;
            case Msr.DebugCtl:
                // LBR starts or stops control-transfer recording (Cpu.Debug.cs); WRMSR ends the block, so the
                // next one sees it. BTF is accepted and read back but does not change single-stepping.
                if ((v & ~DebugCtlValidBits) != 0)
                {
                    return false;
                }

                DebugCtl = v;
                return true;
            case Msr.MiscEnable:
                if (((v ^ MiscEnable) & (MiscEnableBtsUnavailable | MiscEnablePebsUnavailable)) != 0)
                {
                    return false;
                }

                MiscEnable = (v & ~MiscEnableEmon) | (MiscEnable & MiscEnableEmon);
                return true;
            case >= Msr.K7PerfFirst and <= Msr.K7PerfLast: return true;
            case Msr.VmCr when Features.Has(CpuFeature.Svm):
                // DPD, R_INIT, DIS_A20M, LOCK, SVMDIS (APM vol. 2 §15.30.1).
                if ((v & ~0x1FUL) != 0)
                {
                    return false;
                }

                VmCr = v;
                return true;
            case Msr.VmHsavePa when Features.Has(CpuFeature.Svm):
                // Must be 4 KiB aligned and inside the physical address space (APM vol. 2 §15.30.4).
                if ((v & 0xFFF) != 0 || (v & PhysAddrReserved) != 0)
                {
                    return false;
                }

                VmHsavePa = v;
                return true;
            case >= Msr.MtrrPhysBase0 and <= Msr.MtrrPhysMask7:
                return WriteVariableMtrr(msr, v);
        }

        int fix = FixedMtrrIndex(msr);
        if (fix >= 0)
        {
            for (int i = 0; i < 8; i++)
            {
                if (!IsValidMtrrType((v >> (i * 8)) & 0xFF))
                {
                    return false;
                }
            }

            MtrrFixed[fix] = v;
            return true;
        }

        if (msr is >= ParavirtMsrFirst and <= ParavirtMsrLast && ParavirtMsrs != null)
        {
            return ParavirtMsrs(this, msr, true, ref v);
        }

        return false; // unknown, or read-only (MTRRcap, MCG_CAP)
    }

    /// <summary>
    /// EFER write (APM vol. 2 §3.1.7): reserved or unsupported bits #GP; LMA is read-only (the written
    /// value is ignored); LME cannot change while paging is on.
    /// </summary>
    public bool WriteEfer(ulong v)
    {
        if ((v & ~EferValidBits) != 0)
        {
            return false;
        }

        // VM_CR.SVMDIS forbids enabling SVM (APM vol. 2 §15.4).
        if ((v & EferBits.SVME) != 0 && (VmCr & VmCrSvmDis) != 0)
        {
            return false;
        }

        if (PagingEnabled && ((v ^ Efer) & EferBits.LME) != 0)
        {
            return false;
        }

        ulong next = (v & ~EferBits.LMA) | (Efer & EferBits.LMA);
        ulong changed = next ^ Efer;
        Efer = next;
        if ((changed & EferBits.NXE) != 0)
        {
            FlushTranslations();
        }

        return true;
    }

    private bool WriteAddressMsr(uint msr, ulong v)
    {
        if (!IsCanonical(v))
        {
            return false;
        }

        switch (msr)
        {
            case Msr.Lstar: Lstar = v; break;
            case Msr.Cstar: Cstar = v; break;
            case Msr.KernelGsBase: KernelGsBase = v; break;
            case Msr.FsBase: Seg[SegReg.FS].Base = v; SegmentLoaded(SegReg.FS); break;
            default: Seg[SegReg.GS].Base = v; SegmentLoaded(SegReg.GS); break;
        }

        return true;
    }

    private bool WriteApicBase(ulong v)
    {
        // Base in 51:12 (within the physical width), EN = 11, EXTD = 10 (x2APIC only), BSP = 8 (read-only).
        ulong valid = ApicBaseEnable | ApicBaseBsp | (((1UL << MaxPhysAddrBits) - 1) & ~0xFFFUL)
            | (Features.Has(CpuFeature.X2Apic) ? ApicBaseExtd : 0);
        if ((v & ~valid) != 0)
        {
            return false;
        }

        v = (v & ~ApicBaseBsp) | (IsBsp ? ApicBaseBsp : 0);
        if (Apic != null && !Apic.ApicBaseChanging(ApicBase, v))
        {
            return false;
        }

        if (((ApicBase ^ v) & (ApicBaseEnable | ApicBaseExtd)) != 0)
        {
            // The APIC's mode changed (disabled, xAPIC, x2APIC): the hypervisor re-decides this vCPU's APIC
            // virtualization before it runs on (KVM's kvm_lapic_set_base requests KVM_REQ_APICV_UPDATE).
            MakeRequestAndKick(VcpuRequest.ApicvUpdate);
        }

        ApicBase = v;
        return true;
    }

    private bool WriteVariableMtrr(uint msr, ulong v)
    {
        bool isMask = ((msr - Msr.MtrrPhysBase0) & 1) != 0;
        // PhysBase: type 7:0, bits 11:8 reserved; PhysMask: bits 10:0 reserved, V = bit 11 (APM vol. 2 §7.7.2).
        ulong reserved = PhysAddrReserved | (isMask ? 0x7FFUL : 0xF00UL);
        if ((v & reserved) != 0 || (!isMask && !IsValidMtrrType(v & 0xFF)))
        {
            return false;
        }

        MtrrVariable[msr - Msr.MtrrPhysBase0] = v;
        return true;
    }

    /// <summary>MTRR memory types: UC 0, WC 1, WT 4, WP 5, WB 6.</summary>
    private static bool IsValidMtrrType(ulong t) => t is 0 or 1 or 4 or 5 or 6;

    /// <summary>PAT entries: UC 0, WC 1, WT 4, WP 5, WB 6, UC- 7; bits 7:3 of each byte reserved.</summary>
    private static bool IsValidPat(ulong v)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong t = (v >> (i * 8)) & 0xFF;
            if (t is not (0 or 1 or 4 or 5 or 6 or 7))
            {
                return false;
            }
        }

        return true;
    }
}
