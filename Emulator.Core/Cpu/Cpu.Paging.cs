using System.Runtime.CompilerServices;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Walk;

namespace Emulator.Core.Cpu;

/// <summary>
/// Guest page-table walk (AMD64 APM vol. 2 ch. 5) through the generic walker of Emulator.Mmu
/// (<see cref="GuestWalker{TFormat, TReader}"/>): legacy 32-bit (4 KiB, 4 MiB with PSE/PSE-36), PAE
/// (4 KiB/2 MiB), 4- and 5-level long mode (4 KiB/2 MiB/1 GiB), reserved bits, U/S, R/W with CR0.WP, NX,
/// SMEP, SMAP, and the exact #PF error code and CR2. Accessed and dirty bits are written only when the
/// translation succeeds (the walker's rule), so a faulting access leaves the tables untouched. Table reads
/// and A/D updates go through <see cref="ReadPagingEntry"/> and <see cref="SetPagingEntryBits"/>.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>Physical address bits reported by CPUID 0x80000008 (and used for reserved-bit checks).</summary>
    public const int MaxPhysAddrBits = PagingModes.PhysAddrBits;

    /// <summary>Bits 51:12 of CR3 in long mode, limited to the physical width (MOV CR3 rejects the rest).</summary>
    private const ulong Cr3FrameMask = ((1UL << MaxPhysAddrBits) - 1) & ~0xFFFUL;

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

    /// <summary>
    /// Translates a linear address for <paramref name="access"/>; on failure raises #PF and returns false (or
    /// returns false without #PF when a nested fault, already recorded, aborted the walk: Cpu.WalkMemory.cs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Translate(ulong lin, int access, out ulong gpa)
    {
        if ((Cr0 & Cr0Bits.PG) == 0)
        {
            _walkReads = -1;
            gpa = LongModeActive ? lin : (uint)lin;
            return true;
        }

        return Walk(lin, access, out gpa);
    }

    // No zeroing of the walk result (about 130 bytes) on each TLB miss: the walker writes what it reads.
    [SkipLocalsInit]
    private bool Walk(ulong lin, int access, out ulong gpa)
    {
        PageWalks++;
        _translationUncacheable = false;
        _walkReads = 0;
        _walkLevelWithoutAccessed = 0;
        bool user = Cpl == 3 && !_implicitSupervisor;
        ulong kind = access == Access.Write ? PfErr.Write : access == Access.Fetch ? PfErr.Fetch : 0;
        ulong acc = kind | (user ? PfErr.User : 0);
        WalkRules rules = CurrentWalkRules();
        var reader = new TableReader(this);
        Unsafe.SkipInit(out WalkResult r);
        bool ok;
        if ((Cr4 & Cr4Bits.PAE) == 0)
        {
            // Two-level 32-bit paging (§5.2): PDE.PS maps 4 MiB only with CR4.PSE.
            lin = (uint)lin;
            ulong root = Cr3 & 0xFFFFF000;
            ok = (Cr4 & Cr4Bits.PSE) != 0
                ? GuestWalker<Legacy32Pse, TableReader>.Walk(ref reader, root, lin, acc, rules, ref r)
                : GuestWalker<Legacy32, TableReader>.Walk(ref reader, root, lin, acc, rules, ref r);
        }
        else if (LongModeActive)
        {
            ulong root = Cr3 & Cr3FrameMask;
            ok = (Cr4 & Cr4Bits.LA57) != 0
                ? GuestWalker<LongMode5, TableReader>.Walk(ref reader, root, lin, acc, rules, ref r)
                : GuestWalker<LongMode4, TableReader>.Walk(ref reader, root, lin, acc, rules, ref r);
        }
        else
        {
            // PAE legacy mode (§5.3): the PDPTEs are read from memory at CR3 bits 31:5 on every walk; they have no accessed bit.
            _walkLevelWithoutAccessed = 3;
            ok = GuestWalker<Pae, TableReader>.Walk(ref reader, Cr3 & 0xFFFFFFE0, lin, acc, rules, ref r);
        }

        if (!ok)
        {
            gpa = 0;
            if (!r.Aborted)
            {
                // #PF with the error code of §8.4.2 (P, W, U, RSVD, I/D as the walker set them) and CR2.
                RaisePF(lin, (uint)r.ErrorCode);
            }

            return false;
        }

        if (r.Level > 1)
        {
            _tlbMayHoldLargePages = true;
        }

        if (r.AcOverride)
        {
            _translationUncacheable = true;
        }

        _walkLeafLevel = r.Level;
        _walkEntries = r.Entries;
        gpa = r.Address;
        return true;
    }

    /// <summary>
    /// The walker's rules from the paging controls in force: EFER.NXE, CR0.WP, CR4.SMEP, CR4.SMAP with
    /// RFLAGS.AC and whether this is an implicit supervisor access, the CPUID page-size features, and I/D in
    /// the #PF error code only when EFER.NXE or CR4.SMEP is set (§8.4.2).
    /// </summary>
    private WalkRules CurrentWalkRules()
    {
        WalkRules rules = WalkRules.None;
        if ((Efer & EferBits.NXE) != 0)
        {
            rules |= WalkRules.Nxe | WalkRules.ReportFetch;
        }

        if ((Cr0 & Cr0Bits.WP) != 0)
        {
            rules |= WalkRules.WriteProtect;
        }

        if ((Cr4 & Cr4Bits.SMEP) != 0)
        {
            rules |= WalkRules.Smep | WalkRules.ReportFetch;
        }

        if ((Cr4 & Cr4Bits.SMAP) != 0)
        {
            rules |= WalkRules.Smap
                | ((FlagsBits & Rflags.AC) != 0 ? WalkRules.Ac : 0)
                | (_implicitSupervisor ? WalkRules.Implicit : 0);
        }

        if (Features.Has(CpuFeature.Pse36))
        {
            rules |= WalkRules.Pse36;
        }

        if (Features.Has(CpuFeature.Page1Gb))
        {
            rules |= WalkRules.Page1Gb;
        }

        return rules;
    }

    /// <summary>The walker's table reader: guest-physical memory through the walk-memory seam, at a cycle cost per level read.</summary>
    private readonly struct TableReader(Cpu cpu) : ITableReader
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool TryRead(ulong address, int bytes, out ulong value)
        {
            cpu.Cycles += cpu.Costs.PageWalkLevel;
            return cpu.ReadPagingEntry(address, bytes, out value);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool TrySetBits(ulong address, int bytes, ulong expected, ulong bits) => cpu.SetPagingEntryBits(address, bytes, expected, bits);
    }
}
