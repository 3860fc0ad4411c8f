using System.Runtime.CompilerServices;

namespace Emulator.Mmu.Shadow;

/// <summary>
/// Open-addressing map from gfn to int, sized once (power of two) so lookups and updates on the fault
/// path allocate nothing. Linear probing with tombstones.
/// </summary>
public sealed class GfnMap
{
    private const ulong Empty = ulong.MaxValue;
    private const ulong Tombstone = ulong.MaxValue - 1;

    private readonly ulong[] _keys;
    private readonly int[] _values;
    private readonly int _mask;

    public GfnMap(int capacityPow2)
    {
        if (capacityPow2 <= 0 || (capacityPow2 & (capacityPow2 - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacityPow2), "capacity must be a power of two");
        }

        _keys = new ulong[capacityPow2];
        _values = new int[capacityPow2];
        _mask = capacityPow2 - 1;
        Array.Fill(_keys, Empty);
    }

    public int Count { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Slot(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> 40) & _mask;

    public int Get(ulong key)
    {
        for (int i = Slot(key), n = 0; n <= _mask; i = (i + 1) & _mask, n++)
        {
            ulong k = _keys[i];
            if (k == key)
            {
                return _values[i];
            }

            if (k == Empty)
            {
                return 0;
            }
        }

        return 0;
    }

    /// <summary>Sets the value; a value of 0 removes the key. Returns false when the map is full.</summary>
    public bool Set(ulong key, int value)
    {
        int firstFree = -1;
        for (int i = Slot(key), n = 0; n <= _mask; i = (i + 1) & _mask, n++)
        {
            ulong k = _keys[i];
            if (k == key)
            {
                if (value == 0)
                {
                    _keys[i] = Tombstone;
                    Count--;
                }
                else
                {
                    _values[i] = value;
                }

                return true;
            }

            if (k == Tombstone && firstFree < 0)
            {
                firstFree = i;
            }

            if (k == Empty)
            {
                if (firstFree < 0)
                {
                    firstFree = i;
                }

                break;
            }
        }

        if (value == 0)
        {
            return true;
        }

        if (firstFree < 0 || Count >= (_mask + 1) * 3 / 4)
        {
            return false;
        }

        _keys[firstFree] = key;
        _values[firstFree] = value;
        Count++;
        return true;
    }

    public int Add(ulong key, int delta)
    {
        int v = Get(key) + delta;
        Set(key, v);
        return v;
    }

    public void Clear()
    {
        Array.Fill(_keys, Empty);
        Count = 0;
    }
}
