using System.Runtime.CompilerServices;

namespace Emulator.Core.Cpu;

/// <summary>
/// Guest page-table walk (AMD64 APM vol. 2 ch. 5): legacy 32-bit (4 KiB/4 MiB), PAE, 4-level and
/// 5-level long mode (4 KiB/2 MiB/1 GiB), accessed/dirty updates, U/S, R/W with CR0.WP, NX, SMEP,
/// SMAP and reserved-bit checks. Table reads go through guest-physical memory.
/// </summary>
public sealed partial class Cpu
{
    private const ulong PteP = 1, PteRw = 2, PteUs = 4, PteA = 0x20, PteD = 0x40, PtePs = 0x80;
    private const ulong PteNx = 1UL << 63;

    /// <summary>Physical address bits reported by CPUID 0x80000008 (and used for reserved-bit checks).</summary>
    public const int MaxPhysAddrBits = 48;

    /// <summary>Translates a linear address for <paramref name="access"/>; on failure raises #PF and returns false.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Translate(ulong lin, int access, out ulong gpa)
    {
        if ((Cr0 & Cr0Bits.PG) == 0)
        {
            gpa = LongModeActive ? lin : (uint)lin;
            return true;
        }

        return Walk(lin, access, out gpa);
    }

    private bool Walk(ulong lin, int access, out ulong gpa)
    {
        PageWalks++;
        gpa = 0;
        bool user = Cpl == 3 && !_implicitSupervisor;
        bool write = access == Access.Write;
        bool fetch = access == Access.Fetch;
        bool nxe = (Efer & EferBits.NXE) != 0;
        ulong physMask = ((1UL << MaxPhysAddrBits) - 1) & ~0xFFFUL;

        // Combined permissions over all levels: writable and user only if every level allows.
        bool allRw = true, allUs = true, anyNx = false;
        ulong pte;
        int levels;
        ulong table;
        int pageShift;

        if ((Cr4 & Cr4Bits.PAE) == 0)
        {
            // Legacy 2-level 32-bit paging.
            table = Cr3 & 0xFFFFF000;
            ulong pdeAddr = table + (((lin >> 22) & 0x3FF) * 4);
            ulong pde = Phys.Read(pdeAddr, 4);
            Cycles += Costs.PageWalkLevel;
            if ((pde & PteP) == 0)
            {
                return PageFault(lin, access, user, present: false, rsvd: false);
            }

            allRw &= (pde & PteRw) != 0;
            allUs &= (pde & PteUs) != 0;
            if ((pde & PtePs) != 0 && (Cr4 & Cr4Bits.PSE) != 0)
            {
                // 4 MiB page; bits 20:13 give PA bits 39:32 (PSE-36/40).
                if (!CheckPermissions(lin, access, user, allRw, allUs, false))
                {
                    return false;
                }

                UpdateAccessedDirty(pdeAddr, pde, 4, write);
                ulong pa = (pde & 0xFFC00000) | ((pde >> 13) & 0xFF) << 32;
                gpa = pa | (lin & 0x3FFFFF);
                return true;
            }

            if ((pde & PteA) == 0)
            {
                Phys.Write(pdeAddr, 4, pde | PteA);
            }

            ulong pteAddr = (pde & 0xFFFFF000) + (((lin >> 12) & 0x3FF) * 4);
            pte = Phys.Read(pteAddr, 4);
            Cycles += Costs.PageWalkLevel;
            if ((pte & PteP) == 0)
            {
                return PageFault(lin, access, user, present: false, rsvd: false);
            }

            allRw &= (pte & PteRw) != 0;
            allUs &= (pte & PteUs) != 0;
            if (!CheckPermissions(lin, access, user, allRw, allUs, false))
            {
                return false;
            }

            UpdateAccessedDirty(pteAddr, pte, 4, write);
            gpa = (pte & 0xFFFFF000) | (lin & 0xFFF);
            return true;
        }

        if (LongModeActive)
        {
            levels = (Cr4 & Cr4Bits.LA57) != 0 ? 5 : 4;
            table = Cr3 & physMask;
        }
        else
        {
            // PAE: the PDPTE is selected by bits 31:30; PDPTEs have no R/W, U/S or NX.
            levels = 3;
            ulong pdpteAddr = (Cr3 & 0xFFFFFFE0) + (((lin >> 30) & 3) * 8);
            ulong pdpte = Phys.Read(pdpteAddr, 8);
            Cycles += Costs.PageWalkLevel;
            if ((pdpte & PteP) == 0)
            {
                return PageFault(lin, access, user, present: false, rsvd: false);
            }

            if ((pdpte & (~physMask & ~0xFFFUL | 0x1E6)) != 0)
            {
                return PageFault(lin, access, user, present: true, rsvd: true);
            }

            table = pdpte & physMask;
            levels = 2;
        }

        for (int level = levels; level >= 1; level--)
        {
            pageShift = 12 + (9 * (level - 1));
            ulong entryAddr = table + (((lin >> pageShift) & 0x1FF) * 8);
            pte = Phys.Read(entryAddr, 8);
            Cycles += Costs.PageWalkLevel;
            if ((pte & PteP) == 0)
            {
                return PageFault(lin, access, user, present: false, rsvd: false);
            }

            ulong rsvd = (pte & ~physMask & 0x000F_F000_0000_0000UL) | (!nxe ? pte & PteNx : 0);
            bool large = level > 1 && (pte & PtePs) != 0;
            if (large && (level > 3 || (level == 3 && !LongModeActive)))
            {
                rsvd |= PtePs; // PS must be 0 in PML4E/PML5E (and 1 GiB pages need long mode)
            }

            if (large)
            {
                // Large page: bits below the page size (except PAT at bit 12) must be zero.
                rsvd |= pte & (((1UL << pageShift) - 1) & ~0x1FFFUL);
            }

            if (rsvd != 0)
            {
                return PageFault(lin, access, user, present: true, rsvd: true);
            }

            allRw &= (pte & PteRw) != 0;
            allUs &= (pte & PteUs) != 0;
            anyNx |= nxe && (pte & PteNx) != 0;

            if (level == 1 || large)
            {
                if (!CheckPermissions(lin, access, user, allRw, allUs, anyNx))
                {
                    return false;
                }

                UpdateAccessedDirty(entryAddr, pte, 8, write);
                ulong frame = pte & physMask & ~((1UL << pageShift) - 1);
                gpa = frame | (lin & ((1UL << pageShift) - 1));
                return true;
            }

            if ((pte & PteA) == 0)
            {
                Phys.Write(entryAddr, 8, pte | PteA);
            }

            table = pte & physMask;
        }

        return false; // unreachable: level 1 always returns
    }

    private bool CheckPermissions(ulong lin, int access, bool user, bool rw, bool us, bool nx)
    {
        bool write = access == Access.Write;
        bool fetch = access == Access.Fetch;
        bool ok = true;
        if (user)
        {
            ok = us && (!write || rw) && !(fetch && nx);
        }
        else
        {
            if (write && !rw && (Cr0 & Cr0Bits.WP) != 0)
            {
                ok = false;
            }

            if (fetch && nx)
            {
                ok = false;
            }

            if (us && fetch && (Cr4 & Cr4Bits.SMEP) != 0)
            {
                ok = false;
            }

            // SMAP: supervisor data access to a user page faults unless EFLAGS.AC (explicit accesses only).
            if (us && !fetch && (Cr4 & Cr4Bits.SMAP) != 0 && (_implicitSupervisor || (FlagsBits & Rflags.AC) == 0))
            {
                ok = false;
            }
        }

        return ok || PageFault(lin, access, user, present: true, rsvd: false);
    }

    private void UpdateAccessedDirty(ulong entryAddr, ulong pte, int size, bool write)
    {
        ulong want = pte | PteA | (write ? PteD : 0);
        if (want != pte)
        {
            Phys.Write(entryAddr, size, want);
        }
    }

    private bool PageFault(ulong lin, int access, bool user, bool present, bool rsvd)
    {
        uint err = 0;
        if (present) err |= PfErr.Present;
        if (access == Access.Write) err |= PfErr.Write;
        if (user) err |= PfErr.User;
        if (rsvd) err |= PfErr.Rsvd;
        if (access == Access.Fetch && ((Efer & EferBits.NXE) != 0 || (Cr4 & Cr4Bits.SMEP) != 0)) err |= PfErr.Fetch;
        RaisePF(lin, err);
        return false;
    }
}
