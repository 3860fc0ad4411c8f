using System.Runtime.CompilerServices;
using Emulator.Mmu.Memory;

namespace Emulator.Mmu.Spte;

/// <summary>
/// SPTE tables: 512 × ulong pages in one native, lazily committed arena, addressed by table index
/// (0 is "no table"). Metadata (level, gfn base, parent link, present count) lives in parallel arrays
/// sized once at construction, so allocating, freeing and walking never touch the managed heap.
/// </summary>
public sealed unsafe class TableArena : IDisposable
{
    public const int EntriesPerTable = 512;

    private readonly HostMemoryArena _memory;
    private readonly ulong* _base;
    private readonly int[] _nextFree;
    private int _freeHead;
    private int _highWater = 1;

    public readonly byte[] Level;
    public readonly ulong[] BaseGfn;
    public readonly int[] Parent;
    public readonly short[] ParentIndex;
    public readonly short[] PresentCount;
    public readonly uint[] Role;

    public int Capacity { get; }
    public int InUse { get; private set; }

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

    /// <summary>Allocates a zeroed table; returns 0 when the arena is exhausted.</summary>
    public int Allocate(int level, ulong baseGfn, int parent, int parentIndex, uint role = 0)
    {
        int t;
        if (_freeHead != 0)
        {
            t = _freeHead;
            _freeHead = _nextFree[t];
            Table(t).Clear();
        }
        else if (_highWater < Capacity)
        {
            t = _highWater++;
        }
        else
        {
            return 0;
        }

        Level[t] = (byte)level;
        BaseGfn[t] = baseGfn;
        Parent[t] = parent;
        ParentIndex[t] = (short)parentIndex;
        PresentCount[t] = 0;
        Role[t] = role;
        InUse++;
        return t;
    }

    public void Free(int t)
    {
        Level[t] = 0;
        _nextFree[t] = _freeHead;
        _freeHead = t;
        InUse--;
    }

    public void Dispose() => _memory.Dispose();
}
