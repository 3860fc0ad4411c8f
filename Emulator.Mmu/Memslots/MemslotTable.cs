using Emulator.Mmu.Memory;

namespace Emulator.Mmu.Memslots;

/// <summary>Why a memslot update was refused.</summary>
public sealed class MemslotException(string message) : Exception(message);

/// <summary>
/// Owns the published <see cref="MemslotSet"/> and performs updates with KVM's semantics: delete and
/// move first publish the old slot marked INVALID and let the MMU zap its SPTEs, then publish the new
/// set; every install bumps the generation (bit 63 while in progress, then +2).
/// </summary>
public sealed class MemslotTable
{
    /// <summary>Low 19 bits of the generation are stamped into MMIO SPTEs.</summary>
    public const ulong MmioGenerationMask = (1UL << 19) - 1;

    private MemslotSet _current = MemslotSet.Empty;
    private readonly ulong _hostSize;

    /// <param name="hostSize">Size of host memory; slots must lie inside it.</param>
    /// <param name="mmuLock">The MMU lock: updates and harvests take its exclusive side, so no fault runs
    /// between publishing a set and zapping or write-protecting what it changed, and updates are serialised.</param>
    public MemslotTable(ulong hostSize, Fault.MmuLock? mmuLock = null)
    {
        _hostSize = hostSize;
        Lock = mmuLock ?? new Fault.MmuLock();
    }

    public Fault.MmuLock Lock { get; }

    /// <summary>The published snapshot (lock-free read).</summary>
    public MemslotSet Current => Volatile.Read(ref _current);

    /// <summary>Called with the INVALID copy of a slot being deleted or moved: zap everything it covered.</summary>
    public Action<Memslot>? SlotInvalidated { get; set; }

    /// <summary>Called after dirty logging was turned on for a slot: write-protect its SPTEs.</summary>
    public Action<Memslot>? DirtyLoggingEnabled { get; set; }

    /// <summary>Called by a harvest for each 64-page group [start, end) that had dirty pages: write-protect them.</summary>
    public Action<Gfn, Gfn>? DirtyPagesHarvested { get; set; }

    /// <summary>Called when the MMIO generation wrapped to 0: every MMIO SPTE must go.</summary>
    public Action? MmioGenerationWrapped { get; set; }

    public ulong Updates { get; private set; }

    public Memslot Create(int id, Gpa start, ulong size, Hpa host, MemslotFlags flags = MemslotFlags.None)
    {
        ulong gpa = start.Value, hostOffset = host.Value;
        if ((gpa & 0xFFF) != 0 || (size & 0xFFF) != 0 || (hostOffset & 0xFFF) != 0 || size == 0)
        {
            throw new MemslotException($"memslot {id}: address, size and host offset must be non-zero multiples of 4 KiB");
        }

        if ((uint)id >= Memslot.MaxSlots)
        {
            throw new MemslotException($"memslot {id}: id out of range");
        }

        if (hostOffset > _hostSize || size > _hostSize - hostOffset)
        {
            throw new MemslotException($"memslot {id}: host range 0x{hostOffset:X}+0x{size:X} is outside host memory");
        }

        if ((flags & MemslotFlags.Invalid) != 0)
        {
            throw new MemslotException($"memslot {id}: INVALID is an internal flag");
        }

        using (Lock.Write())
        {
            var cur = _current;
            if (cur.ById(id) != null)
            {
                throw new MemslotException($"memslot {id} already exists");
            }

            var slot = new Memslot(id, gpa >> 12, size >> 12, hostOffset, flags);
            CheckOverlap(cur, slot, ignoreId: -1);
            Install(With(cur, slot, removeId: -1));
            return slot;
        }
    }

    /// <summary>
    /// Creates a user slot under the lowest free user id: the one place user slot ids are chosen, so
    /// callers that lay out memory name ranges, not ids (KVM's userspace picks ids; here the table does).
    /// </summary>
    public Memslot CreateUserSlot(Gpa start, ulong size, Hpa host, MemslotFlags flags = MemslotFlags.None)
    {
        using (Lock.Write())
        {
            return Create(LowestFreeUserId(_current), start, size, host, flags);
        }
    }

    private static int LowestFreeUserId(MemslotSet set)
    {
        int id = 0;
        while (set.ById(id) != null)
        {
            id++;
        }

        if (id >= Memslot.UserSlots)
        {
            throw new MemslotException("no free user memslot id");
        }

        return id;
    }

    public void Delete(int id)
    {
        using (Lock.Write())
        {
            var cur = _current;
            var old = cur.ById(id) ?? throw new MemslotException($"memslot {id} does not exist");
            var invalid = old.AsInvalid();
            Install(With(cur, invalid, removeId: id));
            SlotInvalidated?.Invoke(invalid);
            Install(With(_current, null, removeId: id));
        }
    }

    public Memslot Move(int id, Gpa newStart)
    {
        ulong newGpa = newStart.Value;
        if ((newGpa & 0xFFF) != 0)
        {
            throw new MemslotException($"memslot {id}: address must be 4 KiB aligned");
        }

        using (Lock.Write())
        {
            var cur = _current;
            var old = cur.ById(id) ?? throw new MemslotException($"memslot {id} does not exist");
            var moved = old.MovedTo(newGpa >> 12);
            CheckOverlap(cur, moved, ignoreId: id);
            var invalid = old.AsInvalid();
            Install(With(cur, invalid, removeId: id));
            SlotInvalidated?.Invoke(invalid);
            Install(With(_current, moved, removeId: id));
            return moved;
        }
    }

    /// <summary>Flags-only change (dirty logging, read-only). Turning dirty logging on write-protects the slot.</summary>
    public Memslot SetFlags(int id, MemslotFlags flags)
    {
        if ((flags & MemslotFlags.Invalid) != 0)
        {
            throw new MemslotException($"memslot {id}: INVALID is an internal flag");
        }

        using (Lock.Write())
        {
            var cur = _current;
            var old = cur.ById(id) ?? throw new MemslotException($"memslot {id} does not exist");
            var updated = old.WithFlags(flags);
            bool readOnlyChanged = ((old.Flags ^ flags) & MemslotFlags.ReadOnly) != 0;
            if (readOnlyChanged)
            {
                // KVM refuses to toggle READONLY on a live slot; delete and re-create instead.
                throw new MemslotException($"memslot {id}: READONLY cannot change on an existing slot");
            }

            Install(With(cur, updated, removeId: id));
            if (!old.LogsDirty && updated.LogsDirty)
            {
                DirtyLoggingEnabled?.Invoke(updated);
            }

            return updated;
        }
    }

    /// <summary>
    /// Returns and clears the dirty bitmap of a slot and write-protects the harvested pages, so their next
    /// write faults and is logged again (KVM_GET_DIRTY_LOG without manual protect). Runs under the
    /// exclusive MMU lock: no fault is between making an SPTE writable and logging it, so every writable
    /// SPTE of the slot has its bit in the bitmap when a harvest starts, and a page written after the
    /// harvest returns is in the next one.
    /// </summary>
    public ulong[] HarvestDirty(int id)
    {
        var slot = Current.ById(id) ?? throw new MemslotException($"memslot {id} does not exist");
        var bitmap = slot.DirtyBitmap ?? throw new MemslotException($"memslot {id} does not log dirty pages");
        var copy = new ulong[bitmap.Length];
        using (Lock.Write())
        {
            for (int i = 0; i < bitmap.Length; i++)
            {
                ulong mask = Interlocked.Exchange(ref bitmap[i], 0);
                copy[i] = mask;
                if (mask != 0)
                {
                    ulong start = slot.BaseGfn + ((ulong)i * 64);
                    DirtyPagesHarvested?.Invoke(new Gfn(start), new Gfn(Math.Min(start + 64, slot.EndGfn)));
                }
            }
        }

        return copy;
    }

    private static void CheckOverlap(MemslotSet cur, Memslot slot, int ignoreId)
    {
        foreach (var s in cur.Slots)
        {
            if (s.Id != ignoreId && slot.BaseGfn < s.EndGfn && s.BaseGfn < slot.EndGfn)
            {
                throw new MemslotException(
                    $"memslot {slot.Id} [0x{slot.BaseGfn << 12:X}, 0x{slot.EndGfn << 12:X}) overlaps memslot {s.Id} [0x{s.BaseGfn << 12:X}, 0x{s.EndGfn << 12:X})");
            }
        }
    }

    private static Memslot[] With(MemslotSet cur, Memslot? add, int removeId)
    {
        var list = new List<Memslot>(cur.Slots.Length + 1);
        foreach (var s in cur.Slots)
        {
            if (s.Id != removeId)
            {
                list.Add(s);
            }
        }

        if (add != null)
        {
            list.Add(add);
        }

        list.Sort((a, b) => a.BaseGfn.CompareTo(b.BaseGfn));
        return [.. list];
    }

    /// <summary>Publishes a new set: generation with the in-progress bit, then the settled generation (+2).</summary>
    private void Install(Memslot[] slots)
    {
        ulong old = _current.Generation & ~MemslotSet.UpdateInProgress;
        Volatile.Write(ref _current, new MemslotSet(slots, old | MemslotSet.UpdateInProgress));
        ulong next = old + 2;
        Volatile.Write(ref _current, new MemslotSet(slots, next));
        Updates++;
        if ((next & MmioGenerationMask) == 0)
        {
            MmioGenerationWrapped?.Invoke();
        }
    }
}
