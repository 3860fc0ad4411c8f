using System.Runtime.CompilerServices;

namespace Emulator.Mmu.Spte;

/// <summary>
/// The SPTE format: AMD nested-paging entries (the x86-64 PTE format) plus software bits, as KVM's
/// TDP MMU uses them on NPT.
///
/// Invariants (checked by SpteTests):
/// - A shadow-present SPTE has <see cref="MmuPresent"/> (bit 11); MMIO and frozen SPTEs never do.
/// - An MMIO SPTE is recognised by (spte &amp; MmioMask) == MmioValue: P plus reserved PA bit 51, so the
///   hardware walk reports P=1, RSVD=1. Its generation occupies bits 3–10 and 52–62, its access bits 1–2,
///   its gpa bits 12–50; none of these overlap each other or the marker.
/// - Software bits 9 (host-writable), 10 (MMU-writable) and 11 (MMU-present) overlap no hardware bit
///   the NPT walk interprets, and W may be restored without the MMU lock only if both 9 and 10 are set.
/// - <see cref="Frozen"/> (0x5A0) is not present, has no pfn, and is neither MMIO nor shadow-present.
/// - A non-leaf SPTE's address field holds a table index of the SPTE table arena (index &lt;&lt; 12).
/// </summary>
public static class Spte
{
    public const ulong Present = 1UL << 0;
    public const ulong Writable = 1UL << 1;
    public const ulong User = 1UL << 2;
    public const ulong Accessed = 1UL << 5;
    public const ulong Dirty = 1UL << 6;
    public const ulong PageSize = 1UL << 7;
    public const ulong HostWritable = 1UL << 9;
    public const ulong MmuWritable = 1UL << 10;
    public const ulong MmuPresent = 1UL << 11;
    public const ulong NoExecute = 1UL << 63;

    /// <summary>Host frame number bits 12–51.</summary>
    public const ulong PfnMask = ((1UL << 52) - 1) & ~0xFFFUL;

    /// <summary>Reserved physical-address bit used as the MMIO marker (hosts with fewer than 52 PA bits).</summary>
    public const ulong MmioReservedBit = 1UL << 51;
    public const ulong MmioValue = MmioReservedBit | Present;
    public const ulong MmioMask = MmioReservedBit | Present | MmuPresent;
    public const ulong MmioAccessMask = Writable | User;
    public const ulong MmioGpaMask = ((1UL << 51) - 1) & ~0xFFFUL;
    public const ulong MmioGenLowMask = 0xFFUL << 3;         // generation bits 0–7
    public const ulong MmioGenHighMask = 0x7FFUL << 52;      // generation bits 8–18
    public const int MmioGenBits = 19;

    /// <summary>Value written while an entry is being replaced (TDP MMU's removed SPTE).</summary>
    public const ulong Frozen = 0x5A0;

    /// <summary>Bits of a non-leaf SPTE besides the child address.</summary>
    public const ulong NonLeafBits = MmuPresent | Present | Writable | User | Accessed;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsShadowPresent(ulong spte) => (spte & MmuPresent) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsMmio(ulong spte) => (spte & MmioMask) == MmioValue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeaf(ulong spte, int level) => level == 1 || (spte & PageSize) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Pfn(ulong spte) => (spte & PfnMask) >> 12;

    /// <summary>A leaf mapping host frame <paramref name="pfn"/> (aligned to the level) with full guest access.</summary>
    public static ulong MakeLeaf(ulong pfn, int level, bool writable, bool hostWritable)
    {
        ulong s = MmuPresent | Present | User | Accessed | (pfn << 12);
        if (level > 1)
        {
            s |= PageSize;
        }

        if (hostWritable)
        {
            s |= HostWritable | MmuWritable;
        }

        if (writable)
        {
            // D is set eagerly for writable SPTEs, as KVM does.
            s |= Writable | Dirty;
        }

        return s;
    }

    public static ulong MakeNonLeaf(int tableIndex) => NonLeafBits | ((ulong)tableIndex << 12);

    public static int ChildTable(ulong spte) => (int)((spte & PfnMask) >> 12);

    /// <summary>An MMIO SPTE for <paramref name="gfn"/>, stamped with the low 19 bits of the memslot generation.</summary>
    public static ulong MakeMmio(ulong gfn, ulong access, ulong generation)
    {
        ulong gen = generation & ((1UL << MmioGenBits) - 1);
        return MmioValue | (access & MmioAccessMask) | ((gfn << 12) & MmioGpaMask)
            | ((gen & 0xFF) << 3) | ((gen >> 8) << 52);
    }

    public static ulong MmioGeneration(ulong spte) => ((spte & MmioGenLowMask) >> 3) | (((spte & MmioGenHighMask) >> 52) << 8);

    public static ulong MmioGfn(ulong spte) => (spte & MmioGpaMask) >> 12;
}
