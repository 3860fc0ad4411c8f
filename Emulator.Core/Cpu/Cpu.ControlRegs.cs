namespace Emulator.Core.Cpu;

/// <summary>
/// Writes to CR0, CR3, CR4, CR8 and the debug registers with their architectural checks (AMD64 APM
/// vol. 2 §3.1, §13.1; vol. 3 "MOV CRn", "MOV DRn"). Each returns false for a #GP(0) and changes
/// nothing then; on success it flushes what the change invalidates and updates the mode.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>CR0 bits that exist; writes to the other bits of 31:0 are ignored, bits 63:32 are reserved.</summary>
    public const ulong Cr0Defined = Cr0Bits.PE | Cr0Bits.MP | Cr0Bits.EM | Cr0Bits.TS | Cr0Bits.ET | Cr0Bits.NE
        | Cr0Bits.WP | Cr0Bits.AM | Cr0Bits.NW | Cr0Bits.CD | Cr0Bits.PG;

    /// <summary>DR6 bits software can change (B0–B3, BD, BS, BT); the rest read as fixed values.</summary>
    public const ulong Dr6Writable = 0xE00F, Dr6Fixed1 = 0xFFFF_0FF0;

    /// <summary>DR7 bits software can change; bit 10 reads as 1, bits 11, 12, 14, 15 as 0.</summary>
    public const ulong Dr7Writable = 0xFFFF_23FF, Dr7Fixed1 = 0x400;

    public const ulong Dr7GeneralDetect = 1 << 13, Dr6BreakpointDetect = 1 << 13;

    /// <summary>
    /// Set when a translation through a 2 MiB / 4 MiB / 1 GiB page may sit in the software TLB (which holds
    /// 4 KiB entries): INVLPG must then drop every entry, since one INVLPG removes the whole large page.
    /// </summary>
    private bool _tlbMayHoldLargePages;

    /// <summary>CR4 bits a MOV CR4 may set: exactly the features CPUID reports.</summary>
    public ulong Cr4ValidBits
    {
        get
        {
            CpuFeatures f = Features;
            ulong v = Cr4Bits.PCE;
            if (f.Has(CpuFeature.Vme)) v |= Cr4Bits.VME | Cr4Bits.PVI;
            if (f.Has(CpuFeature.Tsc)) v |= Cr4Bits.TSD;
            if (f.Has(CpuFeature.De)) v |= Cr4Bits.DE;
            if (f.Has(CpuFeature.Pse)) v |= Cr4Bits.PSE;
            if (f.Has(CpuFeature.Pae)) v |= Cr4Bits.PAE;
            if (f.Has(CpuFeature.Mce)) v |= Cr4Bits.MCE;
            if (f.Has(CpuFeature.Pge)) v |= Cr4Bits.PGE;
            if (f.Has(CpuFeature.Fxsr)) v |= Cr4Bits.OSFXSR;
            if (f.Has(CpuFeature.Sse)) v |= Cr4Bits.OSXMMEXCPT;
            if (f.Has(CpuFeature.Umip)) v |= Cr4Bits.UMIP;
            if (f.Has(CpuFeature.La57)) v |= Cr4Bits.LA57;
            if (f.Has(CpuFeature.FsGsBase)) v |= Cr4Bits.FSGSBASE;
            if (f.Has(CpuFeature.Pcid)) v |= Cr4Bits.PCIDE;
            if (f.Has(CpuFeature.Xsave)) v |= Cr4Bits.OSXSAVE;
            if (f.Has(CpuFeature.Smep)) v |= Cr4Bits.SMEP;
            if (f.Has(CpuFeature.Smap)) v |= Cr4Bits.SMAP;
            return v;
        }
    }

    /// <summary>Drops every cached translation (software TLB).</summary>
    public void FlushTranslations()
    {
        FlushTlb();
        _tlbMayHoldLargePages = false;
        _translationUncacheable = false;
    }

    /// <summary>INVLPG: drops the translation of one page (the whole TLB if it may hold a large page).</summary>
    public void InvalidateTranslation(ulong linear)
    {
        if (_tlbMayHoldLargePages)
        {
            FlushTranslations();
        }
        else
        {
            InvalidatePage(linear);
        }
    }

    /// <summary>MOV CR0 / LMSW / CLTS: the new CR0 value (APM vol. 2 §3.1.1, §14.6.1).</summary>
    public bool WriteCr0(ulong v)
    {
        if ((v >> 32) != 0)
        {
            return false;
        }

        v = (v & Cr0Defined) | Cr0Bits.ET; // ET is fixed at 1
        if ((v & Cr0Bits.PG) != 0 && (v & Cr0Bits.PE) == 0)
        {
            return false;
        }

        if ((v & Cr0Bits.NW) != 0 && (v & Cr0Bits.CD) == 0)
        {
            return false;
        }

        ulong old = Cr0;
        bool pagingOn = (v & Cr0Bits.PG) != 0 && (old & Cr0Bits.PG) == 0;
        bool pagingOff = (v & Cr0Bits.PG) == 0 && (old & Cr0Bits.PG) != 0;
        ulong efer = Efer;
        if (pagingOn && (efer & EferBits.LME) != 0)
        {
            // Activating long mode needs PAE paging and a CS that is not already a 64-bit segment (§14.6.1).
            if ((Cr4 & Cr4Bits.PAE) == 0 || Seg[SegReg.CS].Long)
            {
                return false;
            }

            efer |= EferBits.LMA;
        }

        if (pagingOff)
        {
            // Long mode is left from compatibility mode only; PCIDE requires paging.
            if (Mode == CpuMode.Long64 || (Cr4 & Cr4Bits.PCIDE) != 0)
            {
                return false;
            }

            efer &= ~EferBits.LMA;
        }

        Cr0 = v;
        bool lmaChanged = efer != Efer;
        Efer = efer;
        if (((old ^ v) & (Cr0Bits.PE | Cr0Bits.PG | Cr0Bits.WP)) != 0)
        {
            FlushTranslations();
        }

        if (lmaChanged || ((old ^ v) & (Cr0Bits.PE | Cr0Bits.PG)) != 0)
        {
            UpdateMode();
        }

        return true;
    }

    /// <summary>
    /// MOV CR3 (APM vol. 2 §3.1.2, §5.10): in long mode bits above the physical width are reserved; with
    /// CR4.PCIDE bits 11:0 are the PCID and bit 63 asks not to flush. The software TLB is not tagged by
    /// PCID, so a CR3 change always flushes; only a no-flush reload of the same value keeps it.
    /// </summary>
    public bool WriteCr3(ulong v)
    {
        bool noFlush = false;
        if (LongModeActive)
        {
            if ((Cr4 & Cr4Bits.PCIDE) != 0)
            {
                noFlush = (v >> 63) != 0;
                v &= ~(1UL << 63);
            }

            if ((v & ~((1UL << MaxPhysAddrBits) - 1)) != 0)
            {
                return false;
            }
        }
        else
        {
            v = (uint)v;
        }

        bool same = v == Cr3;
        Cr3 = v;
        if (!(noFlush && same))
        {
            FlushTranslations();
        }

        return true;
    }

    /// <summary>
    /// MOV CR4 (APM vol. 2 §3.1.3): only reported features; PAE stays on and LA57 cannot change in long mode
    /// (the paging depth is chosen before paging is enabled); PCIDE needs long mode and PCID 0.
    /// </summary>
    public bool WriteCr4(ulong v)
    {
        if ((v & ~Cr4ValidBits) != 0)
        {
            return false;
        }

        ulong old = Cr4;
        if (LongModeActive && ((v & Cr4Bits.PAE) == 0 || ((old ^ v) & Cr4Bits.LA57) != 0))
        {
            return false;
        }

        if ((v & Cr4Bits.PCIDE) != 0 && (old & Cr4Bits.PCIDE) == 0 && (!LongModeActive || (Cr3 & 0xFFF) != 0))
        {
            return false;
        }

        Cr4 = v;
        if (((old ^ v) & (Cr4Bits.PGE | Cr4Bits.PAE | Cr4Bits.PSE | Cr4Bits.SMEP | Cr4Bits.SMAP | Cr4Bits.PCIDE | Cr4Bits.LA57)) != 0)
        {
            FlushTranslations();
        }

        return true;
    }

    /// <summary>MOV CR8: the task priority (TPR bits 7:4 as CR8 bits 3:0); bits 63:4 are reserved.</summary>
    public bool WriteCr8(ulong v)
    {
        if ((v & ~0xFUL) != 0)
        {
            return false;
        }

        Tpr = (byte)(v << 4);
        return true;
    }

    /// <summary>Reads DRn (DR4/DR5 alias DR6/DR7; the caller has rejected them when CR4.DE is set).</summary>
    public ulong ReadDr(int n) => n switch
    {
        0 => Dr0,
        1 => Dr1,
        2 => Dr2,
        3 => Dr3,
        4 or 6 => Dr6,
        _ => Dr7,
    };

    /// <summary>MOV DRn (APM vol. 2 §13.1.1): DR6/DR7 bits 63:32 are reserved (#GP); fixed bits keep their values.</summary>
    public bool WriteDr(int n, ulong v)
    {
        switch (n)
        {
            case 0: Dr0 = v; return true;
            case 1: Dr1 = v; return true;
            case 2: Dr2 = v; return true;
            case 3: Dr3 = v; return true;
            case 4:
            case 6:
                if ((v >> 32) != 0)
                {
                    return false;
                }

                Dr6 = (v & Dr6Writable) | Dr6Fixed1;
                return true;
            default:
                if ((v >> 32) != 0)
                {
                    return false;
                }

                Dr7 = (v & Dr7Writable) | Dr7Fixed1;
                return true;
        }
    }
}
