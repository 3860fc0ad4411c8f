using System.Runtime.CompilerServices;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Spte;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Mmu.Tdp;

/// <summary>
/// L1's nested page tables (TDP MMU): a 4-level NPT built on demand in the <see cref="TableArena"/>.
/// Levels: 4 = root (512 GiB per entry), 3 = 1 GiB, 2 = 2 MiB, 1 = 4 KiB.
///
/// Concurrency as KVM's TDP MMU: <see cref="Map"/> runs under the shared side of <see cref="MmuLock"/>
/// and publishes every entry with a compare-exchange (a lost race returns Retry and the vCPU refaults);
/// zaps and write-protection take the exclusive side. <see cref="Lookup"/> is the hardware walk and takes
/// no lock: it is safe against concurrent faults and write-protection (tables are only added), while a
/// zap frees tables, so the machine keeps vCPUs out of the walk while it zaps (as KVM's remote TLB flush
/// with RCU-deferred freeing does).
/// </summary>
public sealed class TdpMmu
{
    public const int RootLevel = 4;

    private readonly TableArena _arena;
    private readonly MmuStats _stats;
    private ulong _tlbFlushGeneration;

    public TdpMmu(TableArena arena, MmuStats stats, MmuLock? mmuLock = null)
    {
        _arena = arena;
        _stats = stats;
        Lock = mmuLock ?? new MmuLock();
        _atomic = Lock.Enabled;
        Root = arena.Allocate(RootLevel, 0, 0, 0);
    }

    // False when the MMU lock is disabled (one host thread): SPTE updates need no compare-exchange.
    private readonly bool _atomic;

    /// <summary>
    /// KVM's tdp_mmu_set_spte_atomic: replaces <paramref name="old"/> by <paramref name="value"/> unless
    /// another vCPU changed the entry first (false: the caller retries). With the lock disabled nothing
    /// else can change it, and a plain store does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TrySetSpte(ref ulong entry, ulong old, ulong value)
    {
        if (!_atomic)
        {
            entry = value;
            return true;
        }

        return Interlocked.CompareExchange(ref entry, value, old) == old;
    }

    public int Root { get; }

    public MmuLock Lock { get; }

    /// <summary>Bumped on every remote-TLB-flush request.</summary>
    public ulong TlbFlushGeneration => Volatile.Read(ref _tlbFlushGeneration);

    /// <summary>
    /// Raised on every remote-TLB-flush request (KVM's kvm_flush_remote_tlbs, which makes KVM_REQ_TLB_FLUSH on
    /// every vCPU): each vCPU over this MMU subscribes and flushes its TLB at its next block boundary. An event
    /// rather than a call into the CPU, since the MMU knows nothing of it.
    /// </summary>
    public event Action? RemoteTlbFlush;

    private void RequestTlbFlush()
    {
        if (Lock.IsWriteHeld)
        {
            // Exclusive (or one host thread): no fault can request a flush meanwhile.
            Volatile.Write(ref _tlbFlushGeneration, _tlbFlushGeneration + 1);
        }
        else
        {
            Interlocked.Increment(ref _tlbFlushGeneration);
        }

        _stats.TlbFlushRequests++; // statistics are plain counters (see MmuContext.Handle)
        RemoteTlbFlush?.Invoke();
    }

    public TableArena Arena => _arena;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int IndexAt(ulong gfn, int level) => (int)(gfn >> (9 * (level - 1))) & 511;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PagesAt(int level) => 1UL << (9 * (level - 1));

    /// <summary>The last SPTE on the walk for <paramref name="gfn"/> (a leaf, an MMIO SPTE, or 0) and its level.</summary>
    public ulong Lookup(Gfn gfn, out int level) => _arena.LastSpte(Root, RootLevel, gfn.Value, out level);

    /// <summary>Reference to the SPTE slot for <paramref name="gfn"/> at <paramref name="level"/>, if the tables exist.</summary>
    public ref ulong EntryRef(Gfn l1Gfn, int level, out bool found)
    {
        ulong gfn = l1Gfn.Value;
        int t = Root;
        for (int l = RootLevel; l > level; l--)
        {
            ulong e = _arena.Entry(t, IndexAt(gfn, l));
            if (!IsShadowPresent(e) || IsLeaf(e, l))
            {
                found = false;
                return ref Unsafe.NullRef<ulong>();
            }

            t = ChildTable(e);
        }

        found = true;
        return ref _arena.Entry(t, IndexAt(gfn, level));
    }

    /// <summary>
    /// Installs <paramref name="spte"/> for <paramref name="gfn"/> at <paramref name="level"/>, building
    /// intermediate tables and splitting a huge leaf that is in the way. The caller holds the MMU lock
    /// (either side); every store is a compare-exchange against the value read, and losing a race to
    /// another vCPU returns Retry (KVM's tdp_mmu_set_spte_atomic).
    /// </summary>
    public RetPf Map(Gfn l1Gfn, int level, ulong spte)
    {
        ulong gfn = l1Gfn.Value;
        int t = Root;
        for (int l = RootLevel; l > level; l--)
        {
            int i = IndexAt(gfn, l);
            ref ulong e = ref _arena.Entry(t, i);
            ulong old = Volatile.Read(ref e);
            if (old == Frozen)
            {
                return RetPf.Retry;
            }

            if (IsShadowPresent(old) && !IsLeaf(old, l))
            {
                t = ChildTable(old);
                continue;
            }

            ulong childBase = (gfn >> (9 * (l - 1))) << (9 * (l - 1));
            int child = _arena.Allocate(l - 1, childBase, t, i);
            if (child == 0)
            {
                return RetPf.Retry;
            }

            if (!TrySetSpte(ref e, old, MakeNonLeaf(child)))
            {
                _arena.Free(child); // never published
                return RetPf.Retry;
            }

            if (IsShadowPresent(old))
            {
                // A huge leaf covered this gfn but a smaller mapping is wanted: it is replaced by an
                // empty table (KVM zaps, then links), and the stale translation must leave the TLBs.
                _stats.SptesZapped++;
                RequestTlbFlush();
            }

            t = child;
        }

        ref ulong target = ref _arena.Entry(t, IndexAt(gfn, level));
        ulong prev = Volatile.Read(ref target);
        if (prev == spte)
        {
            return RetPf.Spurious;
        }

        if (prev == Frozen || !TrySetSpte(ref target, prev, spte))
        {
            return RetPf.Retry;
        }

        if (IsShadowPresent(prev) && !IsLeaf(prev, level))
        {
            // A huge page now covers what a table mapped: other vCPUs may still be walking the old
            // subtree, so under the shared lock it is only parked; the exclusive side recycles it.
            if (Lock.IsWriteHeld)
            {
                _stats.SptesZapped += ZapTable(ChildTable(prev), level - 1, 0, ulong.MaxValue);
                _arena.Free(ChildTable(prev));
            }
            else
            {
                _arena.FreeDeferred(ChildTable(prev));
            }
        }

        if (IsShadowPresent(prev))
        {
            RequestTlbFlush();
        }

        return RetPf.Fixed;
    }

    /// <summary>Zaps every SPTE (leaf or MMIO) that maps a gfn in [start, end); returns how many were cleared.</summary>
    public ulong ZapRange(Gfn start, Gfn end)
    {
        using var exclusive = Lock.Write();
        _arena.ReclaimDeferred();
        _stats.ZapCalls++;
        ulong n = ZapTable(Root, RootLevel, start.Value, end.Value);
        _stats.SptesZapped += n;
        if (n != 0)
        {
            RequestTlbFlush();
        }

        return n;
    }

    private ulong ZapTable(int t, int level, ulong start, ulong end)
    {
        ulong n = 0;
        ulong span = PagesAt(level);
        ulong tableBase = _arena.BaseGfn[t];
        Span<ulong> table = _arena.Table(t);
        (int first, int last) = IndexRange(tableBase, level, start, end);
        for (int i = first; i <= last; i++)
        {
            ulong e = table[i];
            if (e == 0)
            {
                continue;
            }

            ulong lo = tableBase + ((ulong)i * span);
            ulong hi = lo + span;

            if (IsShadowPresent(e) && !IsLeaf(e, level))
            {
                int child = ChildTable(e);
                n += ZapTable(child, level - 1, start, end);
                if (start <= lo && hi <= end)
                {
                    _arena.Free(child);
                    table[i] = 0;
                }
            }
            else
            {
                table[i] = 0;
                n++;
            }
        }

        return n;
    }

    /// <summary>Indices of the entries of a table at <paramref name="level"/> that overlap [start, end).</summary>
    private static (int First, int Last) IndexRange(ulong tableBase, int level, ulong start, ulong end)
    {
        // Entries span 512^(level-1) pages: shifts, not 64-bit divisions (a zap of one SPTE walks four levels).
        int shift = 9 * (level - 1);
        ulong tableEnd = tableBase + (512UL << shift);
        if (end <= tableBase || start >= tableEnd || end <= start)
        {
            return (0, -1);
        }

        ulong lo = Math.Max(start, tableBase), hi = Math.Min(end, tableEnd) - 1;
        return ((int)((lo - tableBase) >> shift), (int)((hi - tableBase) >> shift));
    }

    /// <summary>Zaps every MMIO SPTE (the MMIO generation wrapped).</summary>
    public ulong ZapAllMmio()
    {
        using var exclusive = Lock.Write();
        return ZapMmio(Root, RootLevel);
    }

    private ulong ZapMmio(int t, int level)
    {
        ulong n = 0;
        Span<ulong> table = _arena.Table(t);
        for (int i = 0; i < 512; i++)
        {
            ulong e = table[i];
            if (IsMmio(e))
            {
                table[i] = 0;
                n++;
            }
            else if (IsShadowPresent(e) && !IsLeaf(e, level))
            {
                n += ZapMmio(ChildTable(e), level - 1);
            }
        }

        _stats.SptesZapped += n;
        return n;
    }

    /// <summary>Clears W on every leaf in [start, end), keeping host/MMU-writable so the fast path can restore it.</summary>
    public ulong WriteProtectRange(Gfn start, Gfn end)
    {
        using var exclusive = Lock.Write();
        _arena.ReclaimDeferred();
        ulong n = WriteProtect(Root, RootLevel, start.Value, end.Value);
        if (n != 0)
        {
            RequestTlbFlush();
        }

        return n;
    }

    private ulong WriteProtect(int t, int level, ulong start, ulong end)
    {
        ulong n = 0;
        ulong span = PagesAt(level);
        ulong tableBase = _arena.BaseGfn[t];
        Span<ulong> table = _arena.Table(t);
        (int first, int last) = IndexRange(tableBase, level, start, end);
        for (int i = first; i <= last; i++)
        {
            ulong e = table[i];
            if (!IsShadowPresent(e))
            {
                continue;
            }

            if (!IsLeaf(e, level))
            {
                n += WriteProtect(ChildTable(e), level - 1, start, end);
            }
            else if ((e & Writable) != 0)
            {
                table[i] = e & ~Writable;
                n++;
            }
        }

        return n;
    }

    /// <summary>Number of MMIO SPTEs currently installed (for tests and statistics).</summary>
    public ulong CountMmio() => Count(Root, RootLevel, mmio: true);

    /// <summary>Number of shadow-present leaf SPTEs currently installed.</summary>
    public ulong CountLeaves() => Count(Root, RootLevel, mmio: false);

    private ulong Count(int t, int level, bool mmio)
    {
        ulong n = 0;
        Span<ulong> table = _arena.Table(t);
        for (int i = 0; i < 512; i++)
        {
            ulong e = table[i];
            if (IsShadowPresent(e) && !IsLeaf(e, level))
            {
                n += Count(ChildTable(e), level - 1, mmio);
            }
            else if (mmio ? IsMmio(e) : IsShadowPresent(e))
            {
                n++;
            }
        }

        return n;
    }
}
