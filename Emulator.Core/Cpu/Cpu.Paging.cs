using System.Runtime.CompilerServices;

namespace Emulator.Core.Cpu;

/// <summary>
/// Guest page-table walk (AMD64 APM vol. 2 ch. 5): legacy 32-bit (4 KiB, 4 MiB with PSE-40), PAE
/// (4 KiB/2 MiB), 4-level long mode (4 KiB/2 MiB/1 GiB), reserved-bit checks, U/S, R/W with CR0.WP, NX,
/// SMEP, SMAP, and the exact #PF error code and CR2. Accessed and dirty bits are written only when the
/// translation succeeds, so a faulting access leaves the tables untouched. Table reads go through
/// guest-physical memory.
/// </summary>
public sealed partial class Cpu
{
    private const ulong PteP = 1, PteRw = 2, PteUs = 4, PteA = 0x20, PteD = 0x40, PtePs = 0x80;
    private const ulong PteNx = 1UL << 63;

    /// <summary>Physical address bits reported by CPUID 0x80000008 (and used for reserved-bit checks).</summary>
    public const int MaxPhysAddrBits = 48;

    /// <summary>Bits 51:MAXPHYADDR of a long-mode entry (reserved); bits 62:52 are available to software.</summary>
    private const ulong LongModeHighReserved = 0x000F_FFFF_FFFF_FFFFUL & ~((1UL << MaxPhysAddrBits) - 1);

    /// <summary>Bits 62:MAXPHYADDR of a legacy-mode PAE entry: all reserved (APM vol. 2 §5.3.3).</summary>
    private const ulong PaeHighReserved = 0x7FFF_FFFF_FFFF_FFFFUL & ~((1UL << MaxPhysAddrBits) - 1);

    /// <summary>PAE PDPTE bits 63:MAXPHYADDR, 8:5 and 2:1 are reserved (no R/W, U/S, A, NX there).</summary>
    private const ulong PdpteReserved = ~((1UL << MaxPhysAddrBits) - 1) | 0x1E6;

    /// <summary>Frame address bits of a table entry (51:12 limited to the physical width).</summary>
    private const ulong FrameMask = ((1UL << MaxPhysAddrBits) - 1) & ~0xFFFUL;

    /// <summary>
    /// Set by the walk when the access was allowed only because RFLAGS.AC overrode SMAP: such a translation
    /// must not enter the software TLB, which does not know AC (a later CLAC must fault again).
    /// </summary>
    private bool _translationUncacheable;

    /// <summary>
    /// True when <paramref name="v"/> is canonical for the paging mode in force: bits 63:47 equal, or 63:56
    /// with 5-level paging (CR4.LA57). For addresses used now: memory operands, branch and stack targets.
    /// </summary>
    public bool IsCanonicalNow(ulong v) => (ulong)((long)v >> ((Cr4 & Cr4Bits.LA57) != 0 ? 56 : 47)) + 1 <= 1;

    /// <summary>
    /// True when <paramref name="v"/> is canonical for the widest linear address the CPU reports (57 bits with
    /// LA57, whatever CR4.LA57 is now). For addresses loaded to be used later: MSR bases, descriptor-table and
    /// system-segment bases, INVPCID targets (Intel SDM vol. 3 §4.5.1 on 5-level paging).
    /// </summary>
    public bool IsCanonical(ulong v) => (ulong)((long)v >> (LinearAddrBits - 1)) + 1 <= 1;

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
        _translationUncacheable = false;
        bool user = Cpl == 3 && !_implicitSupervisor;
        return (Cr4 & Cr4Bits.PAE) == 0
            ? WalkLegacy((uint)lin, access, user, out gpa)
            : WalkPae(lin, access, user, out gpa);
    }

    /// <summary>Two-level 32-bit paging (APM vol. 2 §5.2), 4 MiB pages when CR4.PSE and PDE.PS.</summary>
    private bool WalkLegacy(uint lin, int access, bool user, out ulong gpa)
    {
        gpa = 0;
        bool write = access == Access.Write;
        ulong pdeAddr = (Cr3 & 0xFFFFF000) + ((ulong)(lin >> 22) * 4);
        ulong pde = Phys.Read(pdeAddr, 4);
        Cycles += Costs.PageWalkLevel;
        if ((pde & PteP) == 0)
        {
            return PageFault(lin, access, user, present: false, rsvd: false);
        }

        if ((pde & PtePs) != 0 && (Cr4 & Cr4Bits.PSE) != 0)
        {
            // 4 MiB page. With PSE-36 (AMD's PSE-40) PDE bits 20:13 are PA bits 39:32 and bit 21 is
            // reserved; without it bits 21:13 are reserved (§5.2.4).
            ulong rsvd = Features.Has(CpuFeature.Pse36) ? 1UL << 21 : 0x3FE000UL;
            if ((pde & rsvd) != 0)
            {
                return PageFault(lin, access, user, present: true, rsvd: true);
            }

            if (!CheckPermissions(lin, access, user, (pde & PteRw) != 0, (pde & PteUs) != 0, false))
            {
                return false;
            }

            SetAccessedDirty(pdeAddr, pde, 4, write);
            _tlbMayHoldLargePages = true;
            gpa = (pde & 0xFFC00000) | (((pde >> 13) & 0xFF) << 32) | (lin & 0x3FFFFFu);
            return true;
        }

        ulong pteAddr = (pde & 0xFFFFF000) + (((lin >> 12) & 0x3FFu) * 4);
        ulong pte = Phys.Read(pteAddr, 4);
        Cycles += Costs.PageWalkLevel;
        if ((pte & PteP) == 0)
        {
            return PageFault(lin, access, user, present: false, rsvd: false);
        }

        bool rw = (pde & pte & PteRw) != 0;
        bool us = (pde & pte & PteUs) != 0;
        if (!CheckPermissions(lin, access, user, rw, us, false))
        {
            return false;
        }

        SetAccessedDirty(pdeAddr, pde, 4, false);
        SetAccessedDirty(pteAddr, pte, 4, write);
        gpa = (pte & 0xFFFFF000) | (lin & 0xFFFu);
        return true;
    }

    /// <summary>
    /// PAE legacy mode (PDPTE, PDE, PTE) and long mode (PML4E, PDPE, PDE, PTE); APM vol. 2 §5.3.
    /// </summary>
    private bool WalkPae(ulong lin, int access, bool user, out ulong gpa)
    {
        gpa = 0;
        bool write = access == Access.Write;
        bool nxe = (Efer & EferBits.NXE) != 0;
        bool longMode = LongModeActive;
        ulong reservedHigh = (longMode ? LongModeHighReserved : PaeHighReserved) | (nxe ? 0 : PteNx);

        // Entries used by the walk, so their accessed bits can be set once the translation succeeds.
        Span<ulong> used = stackalloc ulong[8];
        int usedCount = 0;

        int levels;
        ulong table;
        if (longMode)
        {
            levels = (Cr4 & Cr4Bits.LA57) != 0 ? 5 : 4;
            table = Cr3 & FrameMask;
        }
        else
        {
            // The PDPTE is selected by bits 31:30; it has no R/W, U/S, NX or accessed bit.
            ulong pdpteAddr = (Cr3 & 0xFFFFFFE0) + (((lin >> 30) & 3) * 8);
            ulong pdpte = Phys.Read(pdpteAddr, 8);
            Cycles += Costs.PageWalkLevel;
            if ((pdpte & PteP) == 0)
            {
                return PageFault(lin, access, user, present: false, rsvd: false);
            }

            if ((pdpte & PdpteReserved) != 0)
            {
                return PageFault(lin, access, user, present: true, rsvd: true);
            }

            table = pdpte & FrameMask;
            levels = 2;
        }

        bool allRw = true, allUs = true, anyNx = false;
        for (int level = levels; level >= 1; level--)
        {
            int pageShift = 12 + (9 * (level - 1));
            ulong entryAddr = table + (((lin >> pageShift) & 0x1FF) * 8);
            ulong pte = Phys.Read(entryAddr, 8);
            Cycles += Costs.PageWalkLevel;
            if ((pte & PteP) == 0)
            {
                return PageFault(lin, access, user, present: false, rsvd: false);
            }

            ulong rsvd = pte & reservedHigh;
            bool large = level is 2 or 3 && (pte & PtePs) != 0;
            if (level >= 4)
            {
                // PML4E/PML5E bits 8:7 must be zero on AMD (Figure 5-18).
                rsvd |= pte & 0x180;
            }
            else if (large && level == 3 && !Features.Has(CpuFeature.Page1Gb))
            {
                rsvd |= PtePs; // 1 GiB pages exist only when CPUID reports them
            }

            if (large)
            {
                // Bits 20:13 (2 MiB) or 29:13 (1 GiB) are reserved; bit 12 is PAT.
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

                for (int i = 0; i < usedCount; i += 2)
                {
                    SetAccessedDirty(used[i], used[i + 1], 8, false);
                }

                SetAccessedDirty(entryAddr, pte, 8, write);
                if (large)
                {
                    _tlbMayHoldLargePages = true;
                }

                ulong offsetMask = (1UL << pageShift) - 1;
                gpa = (pte & FrameMask & ~offsetMask) | (lin & offsetMask);
                return true;
            }

            used[usedCount++] = entryAddr;
            used[usedCount++] = pte;
            table = pte & FrameMask;
        }

        return false; // unreachable: level 1 always returns
    }

    /// <summary>
    /// Page-level protection (APM vol. 2 §5.6): <paramref name="rw"/>, <paramref name="us"/> are the
    /// combined R/W and U/S of all levels, <paramref name="nx"/> whether any level forbids execution.
    /// </summary>
    private bool CheckPermissions(ulong lin, int access, bool user, bool rw, bool us, bool nx)
    {
        bool write = access == Access.Write;
        bool fetch = access == Access.Fetch;
        bool ok;
        if (user)
        {
            ok = us && (!write || rw) && !(fetch && nx);
        }
        else
        {
            ok = !(write && !rw && (Cr0 & Cr0Bits.WP) != 0) && !(fetch && nx);

            // SMEP: no supervisor fetch from a user page (§5.6.4).
            if (us && fetch && (Cr4 & Cr4Bits.SMEP) != 0)
            {
                ok = false;
            }

            // SMAP: a supervisor data access to a user page faults unless RFLAGS.AC is set and the
            // access is explicit; implicit supervisor accesses (descriptor tables, TSS) always fault (§5.6.5).
            if (us && !fetch && (Cr4 & Cr4Bits.SMAP) != 0)
            {
                if (_implicitSupervisor || (FlagsBits & Rflags.AC) == 0)
                {
                    ok = false;
                }
                else
                {
                    _translationUncacheable = true;
                }
            }
        }

        return ok || PageFault(lin, access, user, present: true, rsvd: false);
    }

    /// <summary>Sets the accessed bit (and the dirty bit for a write through a leaf) if not already set.</summary>
    private void SetAccessedDirty(ulong entryAddr, ulong pte, int size, bool write)
    {
        ulong want = pte | PteA | (write ? PteD : 0);
        if (want != pte)
        {
            Phys.Write(entryAddr, size, want);
        }
    }

    /// <summary>
    /// Raises #PF with the error code of §8.4.2: P (protection or reserved-bit fault), W, U (CPL 3 and not
    /// an implicit supervisor access), RSVD, and I/D for fetches only when EFER.NXE or CR4.SMEP is set.
    /// </summary>
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
