using Emulator.Mmu.Memslots;
using Emulator.Mmu.Spte;
using Emulator.Mmu.Tdp;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Mmu.Fault;

/// <summary>How inhibiting APICv removes the APIC-access page from L1's view.</summary>
public enum ApicvToggle
{
    /// <summary>5.15 behaviour: the private memslot stays; only the APIC-access SPTE is zapped.</summary>
    Zap,
    /// <summary>The older design: delete the private memslot on inhibit and re-add it on uninhibit.</summary>
    Memslot,
}

/// <summary>
/// The hypervisor's memory virtualization for one VM: memslots, the TDP MMU for L1, the page-fault
/// handler with KVM 5.15's fault-in rules (DESIGN.md, "Flow of one nested-paging fault"), and the
/// APICv-inhibit hook that removes the APIC-access page from L1's NPT.
/// </summary>
public sealed class MmuContext : IDisposable
{
    public const ulong ApicAccessGpa = 0xFEE00000;
    public const ulong ApicAccessGfn = ApicAccessGpa >> 12;

    private readonly TableArena _arena;

    public MmuContext(ulong hostMemorySize, ApicvToggle toggle = ApicvToggle.Zap, int tableCapacity = 1 << 18)
    {
        Memslots = new MemslotTable(hostMemorySize);
        _arena = new TableArena(tableCapacity);
        Tdp = new TdpMmu(_arena, Stats);
        Toggle = toggle;
        Memslots.SlotInvalidated = slot => Tdp.ZapRange(slot.BaseGfn, slot.EndGfn);
        Memslots.DirtyLoggingEnabled = slot => Tdp.WriteProtectRange(slot.BaseGfn, slot.EndGfn);
        Memslots.MmioGenerationWrapped = () => Tdp.ZapAllMmio();
    }

    public MemslotTable Memslots { get; }
    public TdpMmu Tdp { get; }
    public MmuStats Stats { get; } = new();
    public ApicvToggle Toggle { get; }
    public int TablesInUse => _arena.InUse;

    /// <summary>VM-wide APICv inhibit reasons (bit per reason); APICv is active when this is 0.</summary>
    public ulong ApicvInhibitReasons { get; private set; }

    public bool ApicvInhibited => ApicvInhibitReasons != 0;

    /// <summary>Host offset of the APIC-access page's backing frame, once the private slot exists.</summary>
    public ulong ApicAccessHostOffset { get; private set; } = ulong.MaxValue;

    /// <summary>Creates the APIC-access private memslot (4 KiB at 0xFEE00000), as AVIC does at vCPU init.</summary>
    public void CreateApicAccessSlot(ulong hostOffset)
    {
        ApicAccessHostOffset = hostOffset;
        if (!(Toggle == ApicvToggle.Memslot && ApicvInhibited))
        {
            Memslots.Create(Memslot.ApicAccessPrivate, ApicAccessGpa, 0x1000, hostOffset);
        }
    }

    /// <summary>
    /// Sets or clears one inhibit reason. On the active → inhibited transition the zap design removes the
    /// single APIC-access SPTE; the memslot design deletes the private slot (INVALID window, generation
    /// bump, zap of its range) and re-creates it on the way back.
    /// </summary>
    public void SetApicvInhibit(int reason, bool set)
    {
        bool wasInhibited = ApicvInhibited;
        ApicvInhibitReasons = set ? ApicvInhibitReasons | (1UL << reason) : ApicvInhibitReasons & ~(1UL << reason);
        bool nowInhibited = ApicvInhibited;
        if (wasInhibited == nowInhibited)
        {
            return;
        }

        if (Toggle == ApicvToggle.Zap)
        {
            if (nowInhibited)
            {
                Tdp.ZapRange(ApicAccessGfn, ApicAccessGfn + 1);
            }

            return;
        }

        if (ApicAccessHostOffset == ulong.MaxValue)
        {
            return;
        }

        if (nowInhibited)
        {
            Memslots.Delete(Memslot.ApicAccessPrivate);
        }
        else
        {
            Memslots.Create(Memslot.ApicAccessPrivate, ApicAccessGpa, 0x1000, ApicAccessHostOffset);
        }
    }

    /// <summary>Handles one nested-paging fault of L1 (TDP). The result is also in pf.Result.</summary>
    public RetPf Handle(ref PageFault pf)
    {
        Stats.Faults++;
        pf.Gfn = pf.Gpa >> 12;
        RetPf r = HandleCore(ref pf);
        pf.Result = r;
        Stats.Count(r);
        return r;
    }

    private RetPf HandleCore(ref PageFault pf)
    {
        var slots = Memslots.Current;
        if (pf.IsRsvd)
        {
            RetPf m = HandleMmioFault(ref pf, slots);
            if (m != RetPf.Invalid)
            {
                return m;
            }
        }

        if (pf.IsPresent && pf.IsWrite && !pf.IsRsvd)
        {
            RetPf f = FastPageFault(ref pf, slots);
            if (f != RetPf.Invalid)
            {
                return f;
            }
        }

        return FaultIn(ref pf, slots);
    }

    /// <summary>KVM's handle_mmio_page_fault: a current MMIO SPTE means emulate; a stale one refaults.</summary>
    private RetPf HandleMmioFault(ref PageFault pf, MemslotSet slots)
    {
        ulong spte = Tdp.Lookup(pf.Gfn, out _);
        if (!IsMmio(spte))
        {
            // Zapped meanwhile (or never an MMIO SPTE): let the guest retry.
            return IsShadowPresent(spte) ? RetPf.Invalid : RetPf.Retry;
        }

        ulong gen = slots.Generation;
        if ((gen & MemslotSet.UpdateInProgress) != 0 || MmioGeneration(spte) != (gen & MemslotTable.MmioGenerationMask))
        {
            Stats.StaleMmioRefaults++;
            return RetPf.Invalid;
        }

        pf.Spte = spte;
        return RetPf.Emulate;
    }

    /// <summary>Lockless write-protection fix: restore W on a 4 KiB leaf whose host/MMU-writable bits allow it.</summary>
    private RetPf FastPageFault(ref PageFault pf, MemslotSet slots)
    {
        ref ulong entry = ref Tdp.EntryRef(pf.Gfn, 1, out bool found);
        ulong spte;
        int level = 1;
        if (!found)
        {
            spte = Tdp.Lookup(pf.Gfn, out level);
            if (!IsShadowPresent(spte))
            {
                return RetPf.Invalid;
            }

            // Huge leaf: already writable → spurious; otherwise the slow path maps 4 KiB.
            return (spte & Writable) != 0 ? RetPf.Spurious : RetPf.Invalid;
        }

        spte = entry;
        if (!IsShadowPresent(spte))
        {
            return RetPf.Invalid;
        }

        if ((spte & Writable) != 0)
        {
            return RetPf.Spurious;
        }

        if ((spte & (HostWritable | MmuWritable)) != (HostWritable | MmuWritable))
        {
            return RetPf.Invalid;
        }

        ulong fixedSpte = spte | Writable | Dirty;
        if (Interlocked.CompareExchange(ref entry, fixedSpte, spte) != spte)
        {
            return RetPf.Retry;
        }

        slots.Find(pf.Gfn)?.MarkDirty(pf.Gfn);
        Stats.FastPathFixes++;
        pf.Spte = fixedSpte;
        pf.Level = level;
        return RetPf.Fixed;
    }

    /// <summary>kvm_faultin_pfn plus the mapping step, with the "APICv memslot enabled but invisible" rules.</summary>
    private RetPf FaultIn(ref PageFault pf, MemslotSet slots)
    {
        Memslot? slot = slots.Find(pf.Gfn);
        pf.SlotId = slot?.Id ?? -1;
        if (slot != null && slot.IsInvalid)
        {
            return RetPf.Retry; // delete/move in flight: its SPTEs may not be zapped yet
        }

        bool noSlot = slot == null;
        if (slot != null && !slot.IsVisible)
        {
            if (pf.IsGuestMode)
            {
                noSlot = true; // private slots are invisible to L2
            }
            else if (slot.Id == Memslot.ApicAccessPrivate && ApicvInhibited)
            {
                // Emulate without caching an MMIO SPTE, so uninhibiting needs no purge.
                Stats.ApicEmulations++;
                return RetPf.Emulate;
            }
        }

        if (noSlot)
        {
            pf.Spte = MakeMmio(pf.Gfn, MmioAccessMask, slots.Generation);
            RetPf m = Tdp.Map(pf.Gfn, 1, pf.Spte);
            if (m == RetPf.Retry)
            {
                return m;
            }

            Stats.MmioSptesCreated++;
            return RetPf.Emulate;
        }

        if (pf.IsWrite && slot!.IsReadOnly)
        {
            return RetPf.Emulate; // KVM_PFN_ERR_RO_FAULT: emulated, deliberately not cached as MMIO
        }

        int level = MaxMappingLevel(slot!, pf.Gfn, pf.MaxLevel);
        ulong mask = TdpMmu.PagesAt(level) - 1;
        ulong pfn = slot!.HostPfn(pf.Gfn & ~mask);
        bool writable = !slot.IsReadOnly;
        ulong spte = MakeLeaf(pfn, level, writable, hostWritable: !slot.IsReadOnly);
        RetPf r = Tdp.Map(pf.Gfn & ~mask, level, spte);
        if (writable && slot.LogsDirty)
        {
            // As KVM: a writable SPTE in a dirty-logged slot marks the page dirty when it is created.
            slot.MarkDirty(pf.Gfn);
        }

        pf.Level = level;
        pf.Pfn = pfn;
        pf.Spte = spte;
        return r;
    }

    /// <summary>
    /// Largest level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB) at which the whole aligned range lies in the slot,
    /// the host backing is equally aligned, and the slot does not log dirty pages.
    /// </summary>
    private static int MaxMappingLevel(Memslot slot, ulong gfn, int callerMax)
    {
        if (slot.LogsDirty)
        {
            return 1;
        }

        int max = callerMax is > 0 and < 3 ? callerMax : 3;
        for (int level = max; level > 1; level--)
        {
            ulong pages = TdpMmu.PagesAt(level);
            ulong start = gfn & ~(pages - 1);
            if (start >= slot.BaseGfn && start + pages <= slot.EndGfn && ((slot.BaseGfn ^ (slot.HostOffset >> 12)) & (pages - 1)) == 0)
            {
                return level;
            }
        }

        return 1;
    }

    public void Dispose() => _arena.Dispose();
}
