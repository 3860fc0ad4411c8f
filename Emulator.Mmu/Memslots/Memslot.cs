using Emulator.Mmu.Memory;

namespace Emulator.Mmu.Memslots;

/// <summary>Memslot flags (KVM uapi bits 0–1; INVALID is the internal bit 16).</summary>
[Flags]
public enum MemslotFlags : uint
{
    None = 0,
    LogDirtyPages = 1 << 0,
    ReadOnly = 1 << 1,
    /// <summary>The slot is being deleted or moved: faults on it retry until the new set is published.</summary>
    Invalid = 1 << 16,
}

/// <summary>
/// A range of guest frames backed by host memory. Immutable: an update publishes a new object in a
/// new <see cref="MemslotSet"/>. The dirty bitmap is shared between the old and new object of a
/// flags-only change, as KVM keeps it.
/// </summary>
public sealed class Memslot
{
    /// <summary>User slots are ids below this; private slots (invisible to L2) sit above.</summary>
    public const int UserSlots = 32764;
    public const int TssPrivate = UserSlots + 0;
    public const int ApicAccessPrivate = UserSlots + 1;
    public const int IdentityPageTablePrivate = UserSlots + 2;
    public const int MaxSlots = UserSlots + 3;

    public Memslot(int id, ulong baseGfn, ulong pages, ulong hostOffset, MemslotFlags flags, ulong[]? dirtyBitmap = null)
    {
        Id = id;
        BaseGfn = baseGfn;
        Pages = pages;
        HostOffset = hostOffset;
        Flags = flags;
        DirtyBitmap = dirtyBitmap ?? ((flags & MemslotFlags.LogDirtyPages) != 0 ? new ulong[(pages + 63) / 64] : null);
    }

    public int Id { get; }
    public ulong BaseGfn { get; }
    public ulong Pages { get; }

    /// <summary>HPA (offset into the host arena) of the first frame.</summary>
    public ulong HostOffset { get; }
    public MemslotFlags Flags { get; }

    /// <summary>One bit per page while dirty logging is on.</summary>
    public ulong[]? DirtyBitmap { get; }

    public ulong EndGfn => BaseGfn + Pages;
    public bool IsPrivate => Id >= UserSlots;
    public bool IsInvalid => (Flags & MemslotFlags.Invalid) != 0;
    public bool IsReadOnly => (Flags & MemslotFlags.ReadOnly) != 0;
    public bool LogsDirty => (Flags & MemslotFlags.LogDirtyPages) != 0;

    /// <summary>KVM's kvm_is_visible_memslot: a user slot that is not being deleted or moved.</summary>
    public bool IsVisible => Id < UserSlots && !IsInvalid;

    public bool Contains(Gfn gfn) => gfn.Value - BaseGfn < Pages;

    /// <summary>Host frame (HPA >> 12) for <paramref name="gfn"/>, which must be in the slot.</summary>
    public Hfn HostPfn(Gfn gfn) => new((HostOffset >> 12) + (gfn.Value - BaseGfn));

    /// <summary>Marks a page dirty (atomic: faults on several vCPUs may race with a harvest).</summary>
    public void MarkDirty(Gfn gfn)
    {
        var bitmap = DirtyBitmap;
        if (bitmap == null)
        {
            return;
        }

        ulong rel = gfn.Value - BaseGfn;
        Interlocked.Or(ref bitmap[rel >> 6], 1UL << (int)(rel & 63));
    }

    internal Memslot WithFlags(MemslotFlags flags) => new(Id, BaseGfn, Pages, HostOffset, flags,
        (flags & MemslotFlags.LogDirtyPages) != 0 ? DirtyBitmap ?? new ulong[(Pages + 63) / 64] : null);

    /// <summary>The copy published while this slot is being deleted or moved.</summary>
    internal Memslot AsInvalid() => new(Id, BaseGfn, Pages, HostOffset, Flags | MemslotFlags.Invalid, DirtyBitmap);

    internal Memslot MovedTo(ulong baseGfn) => new(Id, baseGfn, Pages, HostOffset, Flags & ~MemslotFlags.Invalid, DirtyBitmap);
}
