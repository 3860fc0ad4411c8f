using System.Runtime.CompilerServices;

namespace Emulator.Mmu.Walk;

/// <summary>
/// An x86 page-table format, as static members so the walker is specialized per format (no virtual
/// calls): 4-level long mode, PAE and legacy 32-bit (APM vol. 2 §5.2–5.3).
/// </summary>
public interface IPagingFormat
{
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
    static abstract ulong Reserved(ulong entry, int level, bool leaf, bool nxe);

    /// <summary>True when the level has R/W, U/S and NX bits (PAE PDPTEs have none).</summary>
    static abstract bool HasPermissions(int level);
}

/// <summary>4-level long-mode tables with 2 MiB and 1 GiB pages and 48-bit physical addresses.</summary>
public readonly struct LongMode4 : IPagingFormat
{
    private const ulong AddrMask = 0x000F_FFFF_FFFF_F000UL;
    private const ulong PhysMask = ((1UL << 48) - 1) & ~0xFFFUL;

    public static int RootLevel => 4;
    public static int EntryBytes => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOffset(ulong address, int level) => ((address >> (12 + (9 * (level - 1)))) & 511) * 8;

    public static bool IsLeaf(ulong entry, int level) => level == 1 || (level <= 3 && (entry & 0x80) != 0);

    public static ulong PageBytes(int level) => 1UL << (12 + (9 * (level - 1)));

    public static ulong Frame(ulong entry, int level, bool leaf) => leaf ? entry & AddrMask & ~(PageBytes(level) - 1) : entry & AddrMask;

    public static ulong Reserved(ulong entry, int level, bool leaf, bool nxe)
    {
        ulong r = entry & AddrMask & ~PhysMask;
        if (!nxe)
        {
            r |= entry & (1UL << 63);
        }

        if (level == 4)
        {
            r |= entry & 0x80; // PS is reserved in a PML4E
        }

        if (leaf && level > 1)
        {
            r |= entry & (PageBytes(level) - 1) & ~0x1FFFUL; // low frame bits of a large page, PAT (bit 12) excepted
        }

        return r;
    }

    public static bool HasPermissions(int level) => true;
}

/// <summary>PAE tables: a 4-entry PDPT (no permission bits), then 512-entry PD and PT; 2 MiB pages.</summary>
public readonly struct Pae : IPagingFormat
{
    private const ulong AddrMask = 0x000F_FFFF_FFFF_F000UL;
    private const ulong PhysMask = ((1UL << 48) - 1) & ~0xFFFUL;

    public static int RootLevel => 3;
    public static int EntryBytes => 8;

    public static ulong EntryOffset(ulong address, int level) => level == 3
        ? ((address >> 30) & 3) * 8
        : ((address >> (12 + (9 * (level - 1)))) & 511) * 8;

    public static bool IsLeaf(ulong entry, int level) => level == 1 || (level == 2 && (entry & 0x80) != 0);

    public static ulong PageBytes(int level) => level == 2 ? 1UL << 21 : 1UL << 12;

    public static ulong Frame(ulong entry, int level, bool leaf) => leaf ? entry & AddrMask & ~(PageBytes(level) - 1) : entry & AddrMask;

    public static ulong Reserved(ulong entry, int level, bool leaf, bool nxe)
    {
        ulong r = entry & AddrMask & ~PhysMask;
        if (level == 3)
        {
            return r | (entry & 0x1E6) | (entry & (1UL << 63)); // PDPTE: bits 1,2,5..8 and NX reserved
        }

        if (!nxe)
        {
            r |= entry & (1UL << 63);
        }

        if (leaf && level == 2)
        {
            r |= entry & 0x1FE000; // bits 20:13 of a 2 MiB PDE
        }

        return r;
    }

    public static bool HasPermissions(int level) => level != 3;
}

/// <summary>Legacy 2-level 32-bit tables with 4 MiB pages (PSE; PSE-36 bits 20:13 give PA bits 39:32).</summary>
public readonly struct Legacy32 : IPagingFormat
{
    public static int RootLevel => 2;
    public static int EntryBytes => 4;

    public static ulong EntryOffset(ulong address, int level) => level == 2 ? ((address >> 22) & 1023) * 4 : ((address >> 12) & 1023) * 4;

    public static bool IsLeaf(ulong entry, int level) => level == 1 || (entry & 0x80) != 0;

    public static ulong PageBytes(int level) => level == 2 ? 1UL << 22 : 1UL << 12;

    public static ulong Frame(ulong entry, int level, bool leaf) => leaf && level == 2
        ? (entry & 0xFFC00000) | (((entry >> 13) & 0xFF) << 32)
        : entry & 0xFFFFF000;

    public static ulong Reserved(ulong entry, int level, bool leaf, bool nxe) => leaf && level == 2 ? entry & (1UL << 21) : 0;

    public static bool HasPermissions(int level) => true;
}
