using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;

namespace Emulator.Svm.Nested;

/// <summary>
/// The consistency checks VMRUN makes on the VMCB it is given (APM vol. 2 §15.5.1, "Canonicalization and
/// Consistency Checks"); any failure makes VMRUN exit at once with EXITCODE VMEXIT_INVALID. The list is the
/// manual's as KVM applies it to L1's VMCB (docs/svm.md lists each check and its source).
/// </summary>
internal static class VmrunChecks
{
    /// <summary>MSRPM: two pages; IOPM: two pages and one byte (an access to port 0xFFFF may read the byte after).</summary>
    public const ulong MsrpmBytes = 2 * 4096, IopmBytes = (2 * 4096) + 1;

    /// <summary>True when the VMCB's control and save areas may be run by <paramref name="cpu"/>.</summary>
    public static bool Valid(Cpu cpu, VmcbView v)
    {
        return ControlsValid(cpu, v) && SaveValid(cpu, v) && GuestCr3Valid(cpu, v);
    }

    /// <summary>PDPTE bits that must be zero: 63:MAXPHYADDR, 8:5 and 2:1 (APM vol. 2 §5.3.3).</summary>
    private const ulong PdpteReserved = ~((1UL << Cpu.MaxPhysAddrBits) - 1) | 0x1E6;

    /// <summary>
    /// Loading the guest's CR3 (KVM's nested_svm_load_cr3): CR3 within the physical-address width in every mode,
    /// and, when L2 runs PAE paging without nested paging, the four PDPTEs at CR3 are loaded now and a present
    /// one with a reserved bit fails VMRUN. With nested paging the PDPTEs are only read by L2's own walks.
    /// </summary>
    private static bool GuestCr3Valid(Cpu cpu, VmcbView v)
    {
        ulong cr3 = v.U64(VmcbOffset.Cr3);
        if ((cr3 >> Cpu.MaxPhysAddrBits) != 0)
        {
            return false;
        }

        ulong cr0 = v.U64(VmcbOffset.Cr0), cr4 = v.U64(VmcbOffset.Cr4), efer = v.U64(VmcbOffset.Efer);
        bool pae = (cr0 & Cr0Bits.PG) != 0 && (cr4 & Cr4Bits.PAE) != 0 && (efer & EferBits.LME) == 0;
        bool npt = (v.U64(VmcbOffset.NestedCtl) & 1) != 0 && cpu.Features.Has(CpuFeature.Npt);
        if (!pae || npt)
        {
            return true;
        }

        ulong pdpt = cr3 & 0xFFFF_FFE0;
        for (int i = 0; i < 4; i++)
        {
            ulong e = cpu.Phys.Read(pdpt + ((ulong)i * 8), 8);
            if ((e & 1) != 0 && (e & PdpteReserved) != 0)
            {
                return false;
            }
        }

        return true;
    }

    private static bool ControlsValid(Cpu cpu, VmcbView v)
    {
        ulong misc = v.U32(VmcbOffset.InterceptMisc1) | ((ulong)v.U32(VmcbOffset.InterceptMisc2) << 32);
        if (((misc >> SvmIntercept.Vmrun) & 1) == 0)
        {
            return false;
        }

        if (v.U32(VmcbOffset.Asid) == 0)
        {
            return false;
        }

        // A permission map that reaches the physical-address limit (the low 12 bits of its address are ignored).
        if (((misc >> SvmIntercept.MsrProt) & 1) != 0 && !MapBelowLimit(v.U64(VmcbOffset.MsrpmBasePa), MsrpmBytes))
        {
            return false;
        }

        if (((misc >> SvmIntercept.IoioProt) & 1) != 0 && !MapBelowLimit(v.U64(VmcbOffset.IopmBasePa), IopmBytes))
        {
            return false;
        }

        if (!EventInjectionValid(v.U32(VmcbOffset.EventInj)))
        {
            return false;
        }

        if ((v.U64(VmcbOffset.NestedCtl) & 1) != 0 && cpu.Features.Has(CpuFeature.Npt))
        {
            if ((v.U64(VmcbOffset.NestedCr3) >> Cpu.MaxPhysAddrBits) != 0 || !PatValid(v.U64(VmcbOffset.GPat)))
            {
                return false;
            }
        }

        return true;
    }

    private static bool MapBelowLimit(ulong pa, ulong bytes) => (pa & ~0xFFFUL) + bytes <= (1UL << Cpu.MaxPhysAddrBits) - 1;

    /// <summary>
    /// EVENTINJ with V set must name a defined type (0 INTR, 2 NMI, 3 exception, 4 software interrupt) with
    /// bits 30:12 clear; an exception must be an architectural exception vector other than NMI's.
    /// </summary>
    public static bool EventInjectionValid(uint inj)
    {
        if ((inj & EventInj.Valid) == 0)
        {
            return true;
        }

        if ((inj & EventInj.Reserved) != 0)
        {
            return false;
        }

        uint type = (inj & EventInj.TypeMask) >> (int)EventInj.TypeShift;
        uint vector = inj & EventInj.VectorMask;
        return type switch
        {
            EventInj.TypeIntr or EventInj.TypeNmi or EventInj.TypeSoftInt => true,
            EventInj.TypeException => vector < 32 && vector != Vector.NMI,
            _ => false,
        };
    }

    /// <summary>Each PAT entry must be a defined memory type: 0, 1, 4, 5, 6 or 7 (APM vol. 2 §7.8.1).</summary>
    public static bool PatValid(ulong pat)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong t = (pat >> (i * 8)) & 0xFF;
            if (t is 2 or 3 or > 7)
            {
                return false;
            }
        }

        return true;
    }

    private static bool SaveValid(Cpu cpu, VmcbView v)
    {
        ulong efer = v.U64(VmcbOffset.Efer);
        ulong cr0 = v.U64(VmcbOffset.Cr0);
        ulong cr3 = v.U64(VmcbOffset.Cr3);
        ulong cr4 = v.U64(VmcbOffset.Cr4);
        if ((efer & EferBits.SVME) == 0 || (efer & ~cpu.EferValidBits) != 0)
        {
            return false;
        }

        if ((cr0 >> 32) != 0 || ((cr0 & Cr0Bits.CD) == 0 && (cr0 & Cr0Bits.NW) != 0))
        {
            return false;
        }

        if ((v.U64(VmcbOffset.Dr6) >> 32) != 0 || (v.U64(VmcbOffset.Dr7) >> 32) != 0)
        {
            return false;
        }

        if ((cr4 & ~cpu.Cr4ValidBits) != 0)
        {
            return false;
        }

        if ((efer & EferBits.LME) != 0 && (cr0 & Cr0Bits.PG) != 0)
        {
            // Long mode: PAE and PE required, CR3 within the physical-address width, and CS not both L and D.
            if ((cr4 & Cr4Bits.PAE) == 0 || (cr0 & Cr0Bits.PE) == 0 || (cr3 >> Cpu.MaxPhysAddrBits) != 0)
            {
                return false;
            }

            SegmentCache cs = v.GetSegment(VmcbOffset.Cs);
            if (cs.Long && cs.Big)
            {
                return false;
            }
        }

        return true;
    }
}
