namespace Emulator.Core.Cpu;

/// <summary>Descriptor-table access (APM vol. 2 §4.7–4.8).</summary>
public sealed partial class Cpu
{
    /// <summary>Reads the 8-byte descriptor for <paramref name="selector"/> from the GDT or LDT.
    /// Returns false with #GP(selector) pending when the selector is outside the table limit.</summary>
    public bool FetchDescriptor(ushort selector, out ulong descriptor)
    {
        descriptor = 0;
        bool ldt = (selector & 4) != 0;
        ulong tableBase = ldt ? Seg[LdtrIndex].Base : Gdtr.Base;
        uint limit = ldt ? Seg[LdtrIndex].Limit : Gdtr.Limit;
        uint index = (uint)(selector & ~7);
        if ((ldt && !Seg[LdtrIndex].Present) || index + 7 > limit)
        {
            RaiseGP((uint)(selector & ~3));
            return false;
        }

        return ReadLinearSystem(tableBase + index, 8, out descriptor);
    }

    /// <summary>Second 8 bytes of a 16-byte system descriptor (long-mode TSS/LDT/call gate).</summary>
    public bool FetchDescriptorHigh(ushort selector, out ulong high)
    {
        high = 0;
        bool ldt = (selector & 4) != 0;
        ulong tableBase = ldt ? Seg[LdtrIndex].Base : Gdtr.Base;
        uint limit = ldt ? Seg[LdtrIndex].Limit : Gdtr.Limit;
        uint index = (uint)(selector & ~7) + 8;
        if (index + 7 > limit)
        {
            RaiseGP((uint)(selector & ~3));
            return false;
        }

        return ReadLinearSystem(tableBase + index, 8, out high);
    }

    /// <summary>Descriptor → hidden segment state (base, expanded limit, attributes).</summary>
    public static SegmentCache FromDescriptor(ushort selector, ulong d)
    {
        uint limit = (uint)((d & 0xFFFF) | ((d >> 32) & 0xF0000));
        ushort attr = (ushort)((d >> 40) & 0xF0FF);
        if ((attr & SegmentCache.AttrG) != 0)
        {
            limit = (limit << 12) | 0xFFF;
        }

        return new SegmentCache
        {
            Selector = selector,
            Base = ((d >> 16) & 0xFFFFFF) | ((d >> 32) & 0xFF000000),
            Limit = limit,
            Attr = attr,
        };
    }

    /// <summary>Sets the accessed bit of a code/data descriptor in memory if it is clear.</summary>
    public bool SetDescriptorAccessed(ushort selector, ulong d)
    {
        if ((d & (1UL << 40)) != 0)
        {
            return true;
        }

        bool ldt = (selector & 4) != 0;
        ulong tableBase = ldt ? Seg[LdtrIndex].Base : Gdtr.Base;
        return WriteLinearSystem(tableBase + (uint)(selector & ~7) + 5, 1, (d >> 40) | 1);
    }
}
