using System.Runtime.CompilerServices;

namespace Emulator.Mmu.Memory;

// Address kinds as distinct types (DESIGN.md): each wraps one ulong, so it costs nothing at run time, and
// there is no implicit conversion to or from ulong or between kinds, so passing an L2 address where an
// L1 one is wanted, or a frame number where an address is wanted, does not compile. `.Value` is the
// explicit boundary to raw arithmetic (hot loops, SPTE bit fields, the arena's pointer math).
//
// Gpa/Gfn are addresses of L1, the guest the hypervisor runs directly (what memslots translate).
// L2Gpa/L2Gfn are addresses of a nested guest (L2): they only mean something through L1's nested page
// tables, and the shadow MMU is the one place where both meet, so they are kept apart by type too.
// Hpa/Hfn are host addresses: offsets into the HostMemoryArena and its 4 KiB frames.

/// <summary>An L1 guest-physical address.</summary>
public readonly record struct Gpa(ulong Value)
{
    // Equality written out so that == is a plain 64-bit compare after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(Gpa other) => Value == other.Value;

    public override int GetHashCode() => Value.GetHashCode();

    /// <summary>The frame holding this address (the page offset is dropped).</summary>
    public Gfn Gfn
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(Value >> Addresses.PageShift);
    }

    /// <summary>Offset inside the 4 KiB page.</summary>
    public ulong PageOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Value & Addresses.PageMask;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Gpa operator +(Gpa a, ulong bytes) => new(a.Value + bytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Gpa operator -(Gpa a, ulong bytes) => new(a.Value - bytes);

    public override string ToString() => $"gpa 0x{Value:X}";
}

/// <summary>An L1 guest frame number (L1 GPA &gt;&gt; 12).</summary>
public readonly record struct Gfn(ulong Value)
{
    // Equality written out so that == is a plain 64-bit compare after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(Gfn other) => Value == other.Value;

    public override int GetHashCode() => Value.GetHashCode();

    /// <summary>The first byte of the frame.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Gpa ToGpa() => new(Value << Addresses.PageShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Gfn operator +(Gfn a, ulong frames) => new(a.Value + frames);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Gfn operator -(Gfn a, ulong frames) => new(a.Value - frames);

    public override string ToString() => $"gfn 0x{Value:X}";
}

/// <summary>An L2 (nested guest) guest-physical address: translated only by L1's nested page tables.</summary>
public readonly record struct L2Gpa(ulong Value)
{
    // Equality written out so that == is a plain 64-bit compare after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(L2Gpa other) => Value == other.Value;

    public override int GetHashCode() => Value.GetHashCode();

    public L2Gfn Gfn
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(Value >> Addresses.PageShift);
    }

    public ulong PageOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Value & Addresses.PageMask;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static L2Gpa operator +(L2Gpa a, ulong bytes) => new(a.Value + bytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static L2Gpa operator -(L2Gpa a, ulong bytes) => new(a.Value - bytes);

    public override string ToString() => $"l2gpa 0x{Value:X}";
}

/// <summary>An L2 guest frame number (L2 GPA &gt;&gt; 12).</summary>
public readonly record struct L2Gfn(ulong Value)
{
    // Equality written out so that == is a plain 64-bit compare after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(L2Gfn other) => Value == other.Value;

    public override int GetHashCode() => Value.GetHashCode();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public L2Gpa ToGpa() => new(Value << Addresses.PageShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static L2Gfn operator +(L2Gfn a, ulong frames) => new(a.Value + frames);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static L2Gfn operator -(L2Gfn a, ulong frames) => new(a.Value - frames);

    public override string ToString() => $"l2gfn 0x{Value:X}";
}

/// <summary>A host-physical address: an offset into the <see cref="HostMemoryArena"/>.</summary>
public readonly record struct Hpa(ulong Value)
{
    // Equality written out so that == is a plain 64-bit compare after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(Hpa other) => Value == other.Value;

    public override int GetHashCode() => Value.GetHashCode();

    public Hfn Hfn
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(Value >> Addresses.PageShift);
    }

    public ulong PageOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Value & Addresses.PageMask;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Hpa operator +(Hpa a, ulong bytes) => new(a.Value + bytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Hpa operator -(Hpa a, ulong bytes) => new(a.Value - bytes);

    public override string ToString() => $"hpa 0x{Value:X}";
}

/// <summary>A host frame number (HPA &gt;&gt; 12): what a leaf SPTE points at.</summary>
public readonly record struct Hfn(ulong Value)
{
    // Equality written out so that == is a plain 64-bit compare after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(Hfn other) => Value == other.Value;

    public override int GetHashCode() => Value.GetHashCode();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Hpa ToHpa() => new(Value << Addresses.PageShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Hfn operator +(Hfn a, ulong frames) => new(a.Value + frames);

    public override string ToString() => $"hfn 0x{Value:X}";
}

/// <summary>Page geometry shared by the address kinds.</summary>
public static class Addresses
{
    public const int PageShift = 12;
    public const ulong PageMask = (1UL << PageShift) - 1;
}
