using System.Runtime.CompilerServices;
using Emulator.Mmu.Memory;

namespace Emulator.Mmu.Memslots;

/// <summary>
/// An immutable snapshot of the memslots plus its generation. Readers take the current snapshot
/// without locking; lookup is a binary search over slots sorted by base gfn, with a last-hit shortcut.
/// </summary>
public sealed class MemslotSet
{
    /// <summary>Bit 63 of the generation: an update is being installed.</summary>
    public const ulong UpdateInProgress = 1UL << 63;

    private readonly Memslot[] _byGfn;
    private int _lastHit;

    internal MemslotSet(Memslot[] sortedByGfn, ulong generation)
    {
        _byGfn = sortedByGfn;
        Generation = generation;
    }

    public static MemslotSet Empty { get; } = new([], 0);

    public ulong Generation { get; }

    public ReadOnlySpan<Memslot> Slots => _byGfn;

    /// <summary>Slot by id (a scan: a VM has a handful of slots, and this is not on the fault path).</summary>
    public Memslot? ById(int id)
    {
        foreach (var s in _byGfn)
        {
            if (s.Id == id)
            {
                return s;
            }
        }

        return null;
    }

    /// <summary>The slot containing <paramref name="gfn"/>, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Memslot? Find(Gfn gfn)
    {
        var slots = _byGfn;
        int last = _lastHit;
        if ((uint)last < (uint)slots.Length && slots[last].Contains(gfn))
        {
            return slots[last];
        }

        return FindSlow(gfn);
    }

    private Memslot? FindSlow(Gfn gfn)
    {
        var slots = _byGfn;
        int lo = 0, hi = slots.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (slots[mid].BaseGfn <= gfn.Value)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        if (found >= 0 && slots[found].Contains(gfn))
        {
            _lastHit = found;
            return slots[found];
        }

        return null;
    }
}
