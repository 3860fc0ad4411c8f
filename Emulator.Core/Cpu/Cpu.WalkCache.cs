using System.Runtime.CompilerServices;
using Emulator.Core.Memory;

namespace Emulator.Core.Cpu;

/// <summary>
/// The walk cache's place in a modeled TLB miss (<see cref="WalkCache"/>; docs/cpu.md, "The walk cache"). The
/// slow paths of reads, writes and fetches ask it before walking; on a hit they make the walk's charges (one page
/// walk, <c>PageWalkLevel</c> per entry read) and go on with the page as if the walk and L0's translation had given
/// it. A walk of the host's space records the host address of each entry it reads, and the slow path keeps it once
/// L0's translation has mapped the page. Only L1's own walks are kept: an implicit supervisor access, a walk with
/// paging off or one that read an entry outside RAM, and every walk of L2, take the full path each time.
/// </summary>
public sealed unsafe partial class Cpu
{
    [InlineArray(WalkCache.MaxReads)]
    private struct WalkTrace
    {
        private ulong _element0;
    }

    /// <summary>Host addresses of the entries the last walk read, root first.</summary>
    private WalkTrace _walkTrace;

    /// <summary>Entries the last walk read; -1 when one of them was not plain RAM (the walk cannot be kept).</summary>
    private int _walkReads = -1;

    /// <summary>The entries the last successful walk read, by level.</summary>
    private Emulator.Mmu.Walk.WalkPath _walkEntries;

    /// <summary>The last walk's leaf level, and the level whose entries have no accessed bit (PAE's PDPTEs), or 0.</summary>
    private int _walkLeafLevel, _walkLevelWithoutAccessed;

    /// <summary>Turns the walk cache off (tests compare a run with and without it).</summary>
    internal bool WalkCacheEnabled = true;

    /// <summary>Modeled TLB misses answered by the walk cache instead of a walk (a host-side count: not modeled).</summary>
    public ulong WalkCacheHits => _hostTlb.Walks!.Hits;

    /// <summary>A walk's read of the table entry at host address <paramref name="entry"/> (plain RAM): noted for the walk cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void TraceWalkRead(byte* entry)
    {
        int n = _walkReads;
        if ((uint)n < WalkCache.MaxReads)
        {
            _walkTrace[n] = (ulong)entry;
            _walkReads = n + 1;
        }
        else
        {
            _walkReads = -1;
        }
    }

    /// <summary>
    /// The walk cache when this access may use it (L1's own, not implicit, access with paging on) and its entries were
    /// made under the paging context in force. A cache whose context changed drops them, takes this context, and is
    /// not used for this access.
    /// </summary>
    private WalkCache? WalkCacheInContext() =>
        WalkCacheEnabled && !GuestMode && !_implicitSupervisor && _activeTlb == _hostTlb && (Cr0 & Cr0Bits.PG) != 0
        && _hostTlb.Walks!.InContext(Cr0 & (Cr0Bits.PG | Cr0Bits.WP), Cr3, Cr4 & WalkCr4Bits, Efer & (EferBits.LMA | EferBits.NXE), TdpFlushGeneration)
            ? _hostTlb.Walks
            : null;

    /// <summary>
    /// A modeled TLB miss of <paramref name="lin"/> answered from the walk cache: the walk's charges are made and
    /// <paramref name="gpa"/>, <paramref name="hpa"/> are what the walk and L0's translation would give.
    /// </summary>
    private bool WalkCacheHit(int bank, ulong lin, out ulong gpa, out ulong hpa)
    {
        gpa = hpa = 0;
        if (WalkCacheInContext() is not { } wc
            || !wc.TryGet(bank, lin, Cpl == 3, out ulong gpaPage, out ulong hpaPage, out int reads, out bool large))
        {
            return false;
        }

        // What Walk would have done: count the walk, charge each entry read, clear the SMAP-override mark.
        PageWalks++;
        Cycles += (ulong)reads * Costs.PageWalkLevel;
        _translationUncacheable = false;
        if (large)
        {
            _tlbMayHoldLargePages = true;
        }

        gpa = gpaPage | (lin & 0xFFF);
        hpa = hpaPage | (lin & 0xFFF);
        return true;
    }

    /// <summary>CR4 bits a walk depends on.</summary>
    private const ulong WalkCr4Bits = Cr4Bits.PSE | Cr4Bits.PAE | Cr4Bits.LA57 | Cr4Bits.SMEP | Cr4Bits.SMAP;

    private ulong TdpFlushGeneration => Phys.Mmu is { } mmu ? mmu.Tdp.TlbFlushGeneration : 0;

    /// <summary>
    /// Keeps the walk of <paramref name="lin"/> that just succeeded, whose page L0 mapped at <paramref name="hpa"/>,
    /// if every entry it read now holds what it read plus the accessed (and, in the leaf of a write, dirty) bit it
    /// wanted: then a walk would find them so again. Anything else (a walk outside RAM, an entry another vCPU changed
    /// meanwhile, the SMAP override) is not kept.
    /// </summary>
    private void WalkCacheAdd(int bank, ulong lin, ulong gpa, ulong hpa)
    {
        int reads = _walkReads;
        if (reads <= 0 || _translationUncacheable || WalkCacheInContext() is not { } wc)
        {
            return;
        }

        bool narrow = (Cr4 & Cr4Bits.PAE) == 0;
        Span<ulong> values = stackalloc ulong[WalkCache.MaxReads];
        int leaf = _walkLeafLevel;
        for (int i = 0; i < reads; i++)
        {
            int level = leaf + reads - 1 - i;
            ulong read = _walkEntries[level];
            ulong want = level == _walkLevelWithoutAccessed ? 0 : level == leaf && bank == Access.Write ? WalkCache.Accessed | WalkCache.Dirty : WalkCache.Accessed;
            ulong now = narrow ? *(uint*)_walkTrace[i] : *(ulong*)_walkTrace[i];
            if (now != (read | want))
            {
                return;
            }

            values[i] = now;
        }

        wc.Add(bank, lin, Cpl == 3, gpa & ~0xFFFUL, hpa & ~0xFFFUL, ((ReadOnlySpan<ulong>)_walkTrace).Slice(0, reads), values[..reads], narrow, leaf > 1);
    }
}
