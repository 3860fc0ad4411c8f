using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Emulator.Core.Cpu;

/// <summary>
/// Completed page-table walks, kept by the host behind the host's software-TLB set (docs/cpu.md, "The walk cache").
/// It is not part of the modeled machine: the modeled TLB stays 256 direct-mapped entries per bank, and a modeled
/// miss is still charged its TLB fill and one <c>PageWalkLevel</c> per table entry read. What it saves is the host's
/// work for such a miss when the walk would come out the same: an entry is used only if every paging entry the walk
/// read still holds the value the walk left in it (accessed and dirty bits included), in the paging context the walk
/// ran under, with L0's nested tables unchanged since. A walk then would read the same values, take the same
/// decisions, write no accessed or dirty bit and give the same page, so cycles, counts and guest memory are the same
/// with the cache or without it.
///
/// Layout: a direct-mapped table per bank (read, write, fetch) indexed by the linear page, each entry with the leaf
/// entry's host address and value, and one table of upper paths shared by the banks, indexed by the 2 MiB region: the
/// entries above the leaf, which the 512 pages of a region have in common. An entry names the version of the upper
/// path it was made with. A bank's table is allocated only after <see cref="AllocateAfter"/> walks, so a vCPU that
/// walks little does not pay for it.
/// </summary>
internal sealed unsafe class WalkCache
{
    /// <summary>32 Ki pages per bank: 128 MiB of linear space, a larger working set than the modeled TLB by far.</summary>
    internal const int EntryBits = 15;
    private const int EntryCount = 1 << EntryBits;
    private const int UpperBits = 9;
    private const int UpperCount = 1 << UpperBits;

    /// <summary>Walks of a bank before it gets its table.</summary>
    internal const int AllocateAfter = 1024;

    /// <summary>Table entries a walk reads at most (5-level paging).</summary>
    internal const int MaxReads = 5;

    /// <summary>Accessed and dirty bits: the same positions in every paging format.</summary>
    internal const ulong Accessed = 0x20, Dirty = 0x40;

    private struct Entry
    {
        /// <summary>Linear page, bit 1 set for a user (CPL 3) access.</summary>
        public ulong Tag;
        public ulong GpaPage;
        public ulong HpaPage;
        public ulong LeafAddress;
        public ulong LeafValue;
        public uint Epoch;
        public uint UpperVersion;
    }

    [InlineArray(MaxReads - 1)]
    private struct UpperValues
    {
        private ulong _element0;
    }

    private struct UpperPath
    {
        /// <summary>2 MiB region (linear address bits 63:21) and the number of entries above the leaf, in bits 2:0.</summary>
        public ulong Key;
        public uint Version;
        public bool Narrow;
        public bool LargeLeaf;
        public UpperValues Address;
        public UpperValues Value;
    }

    private readonly Entry[]?[] _banks = new Entry[3][];
    private readonly int[] _walks = new int[3];
    private UpperPath[]? _upper;
    private uint _epoch = 1;
    private uint _upperVersion;

    // The paging context the entries were made under (only the bits a walk depends on) and L0's flush generation.
    private ulong _cr0, _cr3, _cr4, _efer, _tdpGeneration;

    /// <summary>Modeled misses the cache answered.</summary>
    public ulong Hits;

    /// <summary>Every entry goes (the TLB set was flushed).</summary>
    public void Flush()
    {
        if (++_epoch == 0)
        {
            // After 2^32 flushes an old entry's epoch could match again: clear the tables instead.
            foreach (var b in _banks)
            {
                if (b != null)
                {
                    Array.Clear(b);
                }
            }

            _epoch = 1;
        }
    }

    /// <summary>The entries of one linear page go, in every bank (INVLPG of a 4 KiB page).</summary>
    public void Invalidate(ulong linear)
    {
        ulong page = linear & ~0xFFFUL;
        int i = Slot(linear);
        foreach (var b in _banks)
        {
            if (b != null && (b[i].Tag & ~0xFFFUL) == page)
            {
                b[i].Epoch = 0;
            }
        }
    }

    /// <summary>
    /// True when the entries were made under this paging context; otherwise they are dropped and the context
    /// becomes this one. CR0, CR4 and EFER are the bits a walk depends on; CR3 as a whole.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool InContext(ulong cr0, ulong cr3, ulong cr4, ulong efer, ulong tdpGeneration)
    {
        if (cr0 == _cr0 && cr3 == _cr3 && cr4 == _cr4 && efer == _efer && tdpGeneration == _tdpGeneration)
        {
            return true;
        }

        Flush();
        (_cr0, _cr3, _cr4, _efer, _tdpGeneration) = (cr0, cr3, cr4, efer, tdpGeneration);
        return false;
    }

    /// <summary>
    /// The walk of <paramref name="linear"/> for <paramref name="bank"/>, if one is kept and every entry it read
    /// still holds what it left there: the page's guest-physical and host addresses, the entries read, and whether
    /// the leaf maps a large page.
    /// </summary>
    public bool TryGet(int bank, ulong linear, bool user, out ulong gpaPage, out ulong hpaPage, out int reads, out bool largeLeaf)
    {
        gpaPage = hpaPage = 0;
        reads = 0;
        largeLeaf = false;
        if (_banks[bank] is not { } table)
        {
            return false;
        }

        ref Entry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(table), Slot(linear));
        if (e.Tag != Tag(linear, user) || e.Epoch != _epoch)
        {
            return false;
        }

        ref UpperPath u = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_upper!), UpperSlot(linear));
        int above = (int)(u.Key & 7);
        if (u.Version != e.UpperVersion || (u.Key >> 3) != (linear >> 21))
        {
            return false;
        }

        bool narrow = u.Narrow;
        for (int i = 0; i < above; i++)
        {
            if (Load(u.Address[i], narrow) != u.Value[i])
            {
                return false;
            }
        }

        if (Load(e.LeafAddress, narrow) != e.LeafValue)
        {
            return false;
        }

        Hits++;
        gpaPage = e.GpaPage;
        hpaPage = e.HpaPage;
        reads = above + 1;
        largeLeaf = u.LargeLeaf;
        return true;
    }

    /// <summary>
    /// Keeps a walk that just succeeded: <paramref name="addresses"/> are the host addresses of the entries it read,
    /// root first, and <paramref name="values"/> what each holds now (after the walk's accessed and dirty updates).
    /// </summary>
    public void Add(int bank, ulong linear, bool user, ulong gpaPage, ulong hpaPage, ReadOnlySpan<ulong> addresses, ReadOnlySpan<ulong> values, bool narrow, bool largeLeaf)
    {
        if (_banks[bank] is not { } table)
        {
            if (++_walks[bank] < AllocateAfter)
            {
                return;
            }

            table = _banks[bank] = new Entry[EntryCount];
            _upper ??= new UpperPath[UpperCount];
        }

        int above = addresses.Length - 1;
        ulong key = ((linear >> 21) << 3) | (uint)above;
        ref UpperPath u = ref _upper![UpperSlot(linear)];
        if (!SamePath(ref u, key, addresses, values, narrow, largeLeaf))
        {
            u.Key = key;
            u.Version = ++_upperVersion;
            u.Narrow = narrow;
            u.LargeLeaf = largeLeaf;
            for (int i = 0; i < above; i++)
            {
                u.Address[i] = addresses[i];
                u.Value[i] = values[i];
            }
        }

        ref Entry e = ref table[Slot(linear)];
        e.Tag = Tag(linear, user);
        e.GpaPage = gpaPage;
        e.HpaPage = hpaPage;
        e.LeafAddress = addresses[above];
        e.LeafValue = values[above];
        e.Epoch = _epoch;
        e.UpperVersion = u.Version;
    }

    private static bool SamePath(ref UpperPath u, ulong key, ReadOnlySpan<ulong> addresses, ReadOnlySpan<ulong> values, bool narrow, bool largeLeaf)
    {
        if (u.Version == 0 || u.Key != key || u.Narrow != narrow || u.LargeLeaf != largeLeaf)
        {
            return false;
        }

        for (int i = 0; i < addresses.Length - 1; i++)
        {
            if (u.Address[i] != addresses[i] || u.Value[i] != values[i])
            {
                return false;
            }
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Load(ulong address, bool narrow) => narrow ? *(uint*)address : *(ulong*)address;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Slot(ulong linear) => (int)(linear >> 12) & (EntryCount - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int UpperSlot(ulong linear) => (int)(linear >> 21) & (UpperCount - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Tag(ulong linear, bool user) => (linear & ~0xFFFUL) | (user ? 2UL : 0);
}
