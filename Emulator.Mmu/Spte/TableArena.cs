using System.Runtime.CompilerServices;
using Emulator.Mmu.Memory;

namespace Emulator.Mmu.Spte;

/// <summary>
/// SPTE tables: 512 × ulong pages in one native, lazily committed arena, addressed by table index
/// (0 is "no table"). Metadata (level, gfn base, parent link, present count) lives in parallel arrays
/// sized once at construction, so allocating, freeing and walking never touch the managed heap.
///
/// Thread safety: faults on several vCPUs allocate tables concurrently (under the MMU lock's shared
/// side), so the free list and counters sit behind a small lock; a table is allocated once per 512
/// faults at most, so that lock is off the per-fault cost. A table unlinked while faults may still be
/// walking it goes on a deferred list (<see cref="FreeDeferred"/>) and is recycled only by
/// <see cref="ReclaimDeferred"/> under the exclusive side, when no fault can hold a reference (the role
/// RCU plays for KVM's TDP MMU).
/// </summary>
public sealed unsafe class TableArena : IDisposable
{
    public const int EntriesPerTable = 512;

    private readonly HostMemoryArena _memory;
    private readonly ulong* _base;
    private readonly int[] _nextFree;
    private readonly Lock _allocLock = new();
    private int _freeHead;
    private int _deferredHead;
    private int _highWater = 1;
    private int _inUse;

    public readonly byte[] Level;
    public readonly ulong[] BaseGfn;
    public readonly int[] Parent;
    public readonly short[] ParentIndex;
    public readonly short[] PresentCount;
    public readonly uint[] Role;

    public int Capacity { get; }
    public int InUse => Volatile.Read(ref _inUse);

    public TableArena(int capacity = 1 << 18)
    {
        Capacity = capacity;
        _memory = new HostMemoryArena((ulong)capacity * 4096);
        _base = (ulong*)_memory.Base;
        _nextFree = new int[capacity];
        Level = new byte[capacity];
        BaseGfn = new ulong[capacity];
        Parent = new int[capacity];
        ParentIndex = new short[capacity];
        PresentCount = new short[capacity];
        Role = new uint[capacity];
    }

    /// <summary>The 512 entries of table <paramref name="index"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<ulong> Table(int index) => new(_base + ((long)index * EntriesPerTable), EntriesPerTable);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong Entry(int table, int i) => ref _base[((long)table * EntriesPerTable) + i];

    /// <summary>
    /// Walks the tables under <paramref name="root"/> (at <paramref name="rootLevel"/>) for <paramref name="gfn"/>
    /// and returns the last SPTE on the way (a leaf, an MMIO or frozen SPTE, or 0) and its level.
    /// </summary>
    public ulong LastSpte(int root, int rootLevel, ulong gfn, out int level)
    {
        int t = root;
        for (level = rootLevel; ; level--)
        {
            ulong e = Entry(t, (int)(gfn >> (9 * (level - 1))) & 511);
            if (!Spte.IsShadowPresent(e) || Spte.IsLeaf(e, level))
            {
                return e;
            }

            t = Spte.ChildTable(e);
        }
    }

    /// <summary>Allocates a zeroed table; returns 0 when the arena is exhausted. Safe from several threads.</summary>
    public int Allocate(int level, ulong baseGfn, int parent, int parentIndex, uint role = 0)
    {
        int t;
        bool reused;
        lock (_allocLock)
        {
            if (_freeHead != 0)
            {
                t = _freeHead;
                _freeHead = _nextFree[t];
                reused = true;
            }
            else if (_highWater < Capacity)
            {
                t = _highWater++;
                reused = false;
            }
            else
            {
                return 0;
            }

            _inUse++;
        }

        if (reused)
        {
            Table(t).Clear();
        }

        Level[t] = (byte)level;
        BaseGfn[t] = baseGfn;
        Parent[t] = parent;
        ParentIndex[t] = (short)parentIndex;
        PresentCount[t] = 0;
        Role[t] = role;
        return t;
    }

    /// <summary>Returns a table that no walker can reach (never published, or unlinked under the exclusive lock).</summary>
    public void Free(int t)
    {
        Level[t] = 0;
        lock (_allocLock)
        {
            _nextFree[t] = _freeHead;
            _freeHead = t;
            _inUse--;
        }
    }

    /// <summary>
    /// Parks a table (and, at reclaim time, everything below it) that was unlinked under the shared lock:
    /// concurrent faults may still be walking it or linking children into it.
    /// </summary>
    public void FreeDeferred(int t)
    {
        lock (_allocLock)
        {
            _nextFree[t] = _deferredHead;
            _deferredHead = t;
        }
    }

    /// <summary>Recycles the deferred tables and their subtrees. Call only under the exclusive MMU lock.</summary>
    public int ReclaimDeferred()
    {
        if (Volatile.Read(ref _deferredHead) == 0)
        {
            return 0;
        }

        int t;
        lock (_allocLock)
        {
            t = _deferredHead;
            _deferredHead = 0;
        }

        int n = 0;
        while (t != 0)
        {
            int next = _nextFree[t];
            n += FreeSubtree(t);
            t = next;
        }

        return n;
    }

    private int FreeSubtree(int t)
    {
        int n = 1;
        int level = Level[t];
        Span<ulong> table = Table(t);
        for (int i = 0; i < EntriesPerTable; i++)
        {
            ulong e = table[i];
            if (Spte.IsShadowPresent(e) && !Spte.IsLeaf(e, level))
            {
                n += FreeSubtree(Spte.ChildTable(e));
            }
        }

        Free(t);
        return n;
    }

    public void Dispose() => _memory.Dispose();
}
