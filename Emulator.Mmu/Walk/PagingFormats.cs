using System.Runtime.CompilerServices;

namespace Emulator.Mmu.Walk;

/// <summary>
/// The paging mode of the tables being walked. For L1's nested page tables this is L1's own paging mode
/// at VMRUN: the nested walk uses the host's format, taken from its CR4.PAE, CR4.PSE and EFER.LMA
/// (AMD64 APM vol. 2 §15.25, "Nested Paging").
/// </summary>
public enum PagingMode : byte
{
    /// <summary>2-level 32-bit tables with CR4.PSE = 0: PDE.PS is ignored, 4 KiB pages only (APM vol. 2 §5.2).</summary>
    Legacy32,
    /// <summary>2-level 32-bit tables with CR4.PSE = 1: 4 MiB pages, with PSE-36 (§5.2).</summary>
    Legacy32Pse,
    /// <summary>PAE: 4-entry PDPT, 512-entry PD and PT, 2 MiB pages (§5.2, PAE paging).</summary>
    Pae,
    /// <summary>4-level long mode (§5.3).</summary>
    LongMode4,
    /// <summary>
    /// 5-level long mode (CR4.LA57). Only the CPU's own walk uses it so far: the shadow-NPT MMU's role packs
    /// the mode in two bits and <see cref="PagingModes.FromControlRegisters"/> never returns it.
    /// </summary>
    LongMode5,
}

public static class PagingModes
{
    /// <summary>Physical-address width (MAXPHYADDR) of the modelled CPU: entry bits from here to 51 are reserved.</summary>
    public const int PhysAddrBits = 48;

    private const ulong Cr4Pse = 1UL << 4, Cr4Pae = 1UL << 5, EferLma = 1UL << 10;

    /// <summary>The format of the tables that CR3 (or nCR3) roots, from the owner's CR4 and EFER.</summary>
    public static PagingMode FromControlRegisters(ulong cr4, ulong efer) =>
        (efer & EferLma) != 0 ? PagingMode.LongMode4
        : (cr4 & Cr4Pae) != 0 ? PagingMode.Pae
        : (cr4 & Cr4Pse) != 0 ? PagingMode.Legacy32Pse
        : PagingMode.Legacy32;

    /// <summary>
    /// The root table address that a CR3 value names in <paramref name="mode"/> (the CR3 formats of APM vol. 2
    /// §5.2 and §5.3): bits 51:12 in long mode; in legacy modes CR3 is 32 bits, bits 31:5 (the 32-byte aligned PDPT)
    /// with PAE and bits 31:12 without.
    /// </summary>
    public static ulong RootAddress(PagingMode mode, ulong cr3) => mode switch
    {
        PagingMode.LongMode4 or PagingMode.LongMode5 => cr3 & 0x000F_FFFF_FFFF_F000UL,
        PagingMode.Pae => cr3 & 0xFFFF_FFE0UL,
        _ => cr3 & 0xFFFF_F000UL,
    };
}

/// <summary>
/// What one walk checks beyond the tables themselves: the paging controls of the walk's owner and the
/// features its CPUID reports. The CPU derives them from CR0, CR4, EFER, RFLAGS.AC and CPUID on each
/// walk; the nested (NPT) walk of the shadow MMU passes L1's EFER.NXE and the fixed host features.
/// </summary>
[Flags]
public enum WalkRules : ushort
{
    None = 0,
    /// <summary>EFER.NXE: bit 63 is the NX bit, not a reserved bit (APM vol. 2 §5.6.3).</summary>
    Nxe = 1 << 0,
    /// <summary>CR0.WP: supervisor writes honour R/W (§5.6.2).</summary>
    WriteProtect = 1 << 1,
    /// <summary>CR4.SMEP: no supervisor fetch from a user page (§5.6.4).</summary>
    Smep = 1 << 2,
    /// <summary>CR4.SMAP: no supervisor data access to a user page, except as <see cref="Ac"/> allows (§5.6.5).</summary>
    Smap = 1 << 3,
    /// <summary>RFLAGS.AC: lifts SMAP for explicit supervisor data accesses.</summary>
    Ac = 1 << 4,
    /// <summary>An implicit supervisor access (descriptor tables, TSS): SMAP applies whatever RFLAGS.AC says.</summary>
    Implicit = 1 << 5,
    /// <summary>CPUID reports 1 GiB pages: a PDPE with PS maps 1 GiB; without it PS there is reserved (§5.3.4).</summary>
    Page1Gb = 1 << 6,
    /// <summary>CPUID reports PSE-36 (AMD's 40-bit form): 4 MiB PDE bits 20:13 are PA bits 39:32, else reserved (§5.2.4).</summary>
    Pse36 = 1 << 7,
    /// <summary>The error code sets I/D for a fetch: the #PF code does only with EFER.NXE or CR4.SMEP (§8.4.2).</summary>
    ReportFetch = 1 << 8,
}

/// <summary>
/// An x86 page-table format, as static members so the walker is specialized per format (no virtual
/// calls): 5- and 4-level long mode, PAE and legacy 32-bit (APM vol. 2 §5.2–5.3).
/// </summary>
public interface IPagingFormat
{
    static abstract PagingMode Mode { get; }

    static abstract int RootLevel { get; }

    /// <summary>Entry size in bytes (4 or 8).</summary>
    static abstract int EntryBytes { get; }

    /// <summary>Byte offset of the entry for <paramref name="address"/> within the table at <paramref name="level"/>.</summary>
    static abstract ulong EntryOffset(ulong address, int level);

    /// <summary>True when a present entry at <paramref name="level"/> maps a page (PS set where allowed).</summary>
    static abstract bool IsLeaf(ulong entry, int level);

    /// <summary>Page size in bytes of a leaf at <paramref name="level"/>.</summary>
    static abstract ulong PageBytes(int level);

    /// <summary>Physical address of the next table, or of the page for a leaf.</summary>
    static abstract ulong Frame(ulong entry, int level, bool leaf);

    /// <summary>Reserved bits set in <paramref name="entry"/> (non-zero means a RSVD fault).</summary>
    static abstract ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules);

    /// <summary>True when the level has R/W, U/S, A and NX bits (PAE PDPTEs have none).</summary>
    static abstract bool HasPermissions(int level);

    /// <summary>
    /// Which slice of the guest table a 512-entry, 8-byte shadow table at <paramref name="shadowLevel"/>
    /// covers, for <paramref name="address"/> (KVM's role.quadrant): a 1024-entry legacy table spans what
    /// several shadow tables span. <paramref name="table"/> is the guest table's address; a PAE PDPT is only
    /// 32-byte aligned, so its slot within the page tells PDPTs sharing a page apart.
    /// </summary>
    static abstract uint ShadowQuadrant(ulong address, ulong table, int shadowLevel);
}

/// <summary>4-level long-mode tables with 2 MiB and 1 GiB pages (§5.3).</summary>
public readonly struct LongMode4 : IPagingFormat
{
    public static PagingMode Mode => PagingMode.LongMode4;
    public static int RootLevel => 4;
    public static int EntryBytes => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOffset(ulong address, int level) => LongModeTables.EntryOffset(address, level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong entry, int level) => LongModeTables.IsLeaf(entry, level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => LongModeTables.PageBytes(level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Frame(ulong entry, int level, bool leaf) => LongModeTables.Frame(entry, level, leaf);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules) => LongModeTables.Reserved(entry, level, leaf, rules);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasPermissions(int level) => true;

    public static uint ShadowQuadrant(ulong address, ulong table, int shadowLevel) => 0;
}

/// <summary>5-level long-mode tables (CR4.LA57): a PML5 above the 4-level format, 57-bit linear addresses.</summary>
public readonly struct LongMode5 : IPagingFormat
{
    public static PagingMode Mode => PagingMode.LongMode5;
    public static int RootLevel => 5;
    public static int EntryBytes => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOffset(ulong address, int level) => LongModeTables.EntryOffset(address, level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong entry, int level) => LongModeTables.IsLeaf(entry, level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => LongModeTables.PageBytes(level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Frame(ulong entry, int level, bool leaf) => LongModeTables.Frame(entry, level, leaf);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules) => LongModeTables.Reserved(entry, level, leaf, rules);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasPermissions(int level) => true;

    public static uint ShadowQuadrant(ulong address, ulong table, int shadowLevel) => 0;
}

/// <summary>What the long-mode formats share: 512-entry tables of 8-byte entries, leaves at levels 3 to 1.</summary>
internal static class LongModeTables
{
    private const ulong AddrMask = 0x000F_FFFF_FFFF_F000UL;
    private const ulong PhysMask = ((1UL << PagingModes.PhysAddrBits) - 1) & ~0xFFFUL;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOffset(ulong address, int level) => ((address >> (12 + (9 * (level - 1)))) & 511) * 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong entry, int level) => level == 1 || (level <= 3 && (entry & 0x80) != 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => 1UL << (12 + (9 * (level - 1)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Frame(ulong entry, int level, bool leaf) => leaf ? entry & AddrMask & ~(PageBytes(level) - 1) : entry & AddrMask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules)
    {
        // Bits 62:52 are available to software in long mode; only 51:MAXPHYADDR are reserved (§5.3, §5.4).
        ulong r = entry & AddrMask & ~PhysMask;
        if ((rules & WalkRules.Nxe) == 0)
        {
            r |= entry & (1UL << 63);
        }

        if (level >= 4)
        {
            r |= entry & 0x180; // PML4E/PML5E bits 8:7 must be zero on AMD (Figure 5-18)
        }
        else if (leaf && level > 1)
        {
            if (level == 3 && (rules & WalkRules.Page1Gb) == 0)
            {
                r |= 0x80; // 1 GiB pages exist only when CPUID reports them
            }

            r |= entry & (PageBytes(level) - 1) & ~0x1FFFUL; // low frame bits of a large page, PAT (bit 12) excepted
        }

        return r;
    }
}

/// <summary>
/// PAE tables: a 4-entry PDPT (no permission or accessed bits), then 512-entry PD and PT; 2 MiB pages.
/// Only address bits 31:0 are translated.
/// </summary>
public readonly struct Pae : IPagingFormat
{
    private const ulong AddrMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>Bits 62:MAXPHYADDR of a legacy-mode PAE entry are reserved, unlike long mode's available 62:52 (§5.2, §5.4).</summary>
    private const ulong HighReserved = 0x7FFF_FFFF_FFFF_FFFFUL & ~((1UL << PagingModes.PhysAddrBits) - 1);

    public static PagingMode Mode => PagingMode.Pae;
    public static int RootLevel => 3;
    public static int EntryBytes => 8;

    public static ulong EntryOffset(ulong address, int level) => level == 3
        ? ((address >> 30) & 3) * 8
        : ((address >> (12 + (9 * (level - 1)))) & 511) * 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong entry, int level) => level == 1 || (level == 2 && (entry & 0x80) != 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => level == 2 ? 1UL << 21 : 1UL << 12;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Frame(ulong entry, int level, bool leaf) => leaf ? entry & AddrMask & ~(PageBytes(level) - 1) : entry & AddrMask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules)
    {
        ulong r = entry & HighReserved;
        if (level == 3)
        {
            // PDPTE: bits 2:1, 8:5 and 63 are reserved too (§5.2, PAE PDPE format).
            return r | (entry & 0x1E6) | (entry & (1UL << 63));
        }

        if ((rules & WalkRules.Nxe) == 0)
        {
            r |= entry & (1UL << 63);
        }

        if (leaf && level == 2)
        {
            r |= entry & 0x1FE000; // bits 20:13 of a 2 MiB PDE
        }

        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasPermissions(int level) => level != 3;

    // The PDPT's 32-byte slot in its page names it (levels 3 and above); PDs and PTs are whole pages.
    public static uint ShadowQuadrant(ulong address, ulong table, int shadowLevel) => shadowLevel >= 3 ? (uint)((table & 0xFE0) >> 5) : 0;
}

/// <summary>Legacy 2-level 32-bit tables with CR4.PSE = 0: PDE.PS is ignored. Only address bits 31:0 are translated.</summary>
public readonly struct Legacy32 : IPagingFormat
{
    public static PagingMode Mode => PagingMode.Legacy32;
    public static int RootLevel => 2;
    public static int EntryBytes => 4;

    public static ulong EntryOffset(ulong address, int level) => Legacy32Tables.EntryOffset(address, level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong entry, int level) => level == 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => Legacy32Tables.PageBytes(level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Frame(ulong entry, int level, bool leaf) => entry & 0xFFFFF000;

    // No reserved bits in 32-bit PDEs and PTEs, and no NX bit (§5.2).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules) => 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasPermissions(int level) => true;

    public static uint ShadowQuadrant(ulong address, ulong table, int shadowLevel) => Legacy32Tables.ShadowQuadrant(address, shadowLevel);
}

/// <summary>
/// Legacy 2-level 32-bit tables with CR4.PSE = 1: a PDE with PS maps 4 MiB. With PSE-36 (AMD's 40-bit form,
/// <see cref="WalkRules.Pse36"/>) PDE bits 20:13 are PA bits 39:32 and bit 21 is reserved; without it bits
/// 21:13 are reserved (§5.2.4).
/// </summary>
public readonly struct Legacy32Pse : IPagingFormat
{
    public static PagingMode Mode => PagingMode.Legacy32Pse;
    public static int RootLevel => 2;
    public static int EntryBytes => 4;

    public static ulong EntryOffset(ulong address, int level) => Legacy32Tables.EntryOffset(address, level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong entry, int level) => level == 1 || (entry & 0x80) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => Legacy32Tables.PageBytes(level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Frame(ulong entry, int level, bool leaf) => leaf && level == 2
        ? (entry & 0xFFC00000) | (((entry >> 13) & 0xFF) << 32)
        : entry & 0xFFFFF000;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reserved(ulong entry, int level, bool leaf, WalkRules rules) => !leaf || level != 2 ? 0
        : entry & ((rules & WalkRules.Pse36) != 0 ? 1UL << 21 : 0x3FE000UL);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasPermissions(int level) => true;

    public static uint ShadowQuadrant(ulong address, ulong table, int shadowLevel) => Legacy32Tables.ShadowQuadrant(address, shadowLevel);
}

/// <summary>What the two legacy 32-bit formats share: 1024-entry tables of 4-byte entries.</summary>
internal static class Legacy32Tables
{
    public static ulong EntryOffset(ulong address, int level) => level == 2 ? ((address >> 22) & 1023) * 4 : ((address >> 12) & 1023) * 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageBytes(int level) => level == 2 ? 1UL << 22 : 1UL << 12;

    /// <summary>
    /// A 1024-entry PD spans 4 GiB, four level-2 shadow tables of 1 GiB: quadrant = address bits 31:30.
    /// A 1024-entry PT spans 4 MiB, two level-1 shadow tables of 2 MiB: quadrant = address bit 21.
    /// </summary>
    public static uint ShadowQuadrant(ulong address, int shadowLevel) => shadowLevel switch
    {
        2 => (uint)(address >> 30) & 3,
        1 => (uint)(address >> 21) & 1,
        _ => 0,
    };
}
