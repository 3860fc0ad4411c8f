using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;
using Emulator.Mmu.Shadow;
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
    // Properties over a constant rather than static readonly fields: they inline to an immediate.
    private const ulong ApicAccessAddress = 0xFEE00000;

    public static Gpa ApicAccessGpa => new(ApicAccessAddress);
    public static Gfn ApicAccessGfn => new(ApicAccessAddress >> 12);

    private readonly TableArena _arena;

    // Write tracking of gfns that hold L1 nested page tables shadowed for L2 (count per gfn), and the
    // huge-page ranges that such gfns forbid (KVM's disallow_lpage), keyed by (level << 56) | index.
    private readonly GfnMap _writeTracked = new(1 << 16);
    private readonly GfnMap _noLargePage = new(1 << 16);

    /// <param name="concurrentFaults">
    /// False when every fault, zap and memslot update comes from one host thread (emu's machine): the MMU
    /// lock is then built disabled (<see cref="MmuLock"/>).
    /// </param>
    public MmuContext(ulong hostMemorySize, ApicvToggle toggle = ApicvToggle.Zap, int tableCapacity = 1 << 18, Memory.HostMemoryArena? host = null, bool concurrentFaults = true)
    {
        Host = host;
        Lock = new MmuLock(concurrentFaults);
        Memslots = new MemslotTable(hostMemorySize, Lock);
        _arena = new TableArena(tableCapacity);
        Tdp = new TdpMmu(_arena, Stats, Lock);
        Toggle = toggle;
        Memslots.SlotInvalidated = slot =>
        {
            if (ZapAllOnSlotRemoval)
            {
                ZapAllFast();
            }
            else
            {
                Tdp.ZapRange(new Gfn(slot.BaseGfn), new Gfn(slot.EndGfn));
            }
        };
        Memslots.DirtyLoggingEnabled = slot => Tdp.WriteProtectRange(new Gfn(slot.BaseGfn), new Gfn(slot.EndGfn));
        Memslots.DirtyPagesHarvested = (start, end) => Tdp.WriteProtectRange(start, end);
        Memslots.MmioGenerationWrapped = () => Tdp.ZapAllMmio();
    }

    /// <summary>
    /// How removing (deleting or moving) a memslot clears its SPTEs. True, as KVM on x86 through 6.x: the page-track
    /// flush-slot hook runs kvm_mmu_zap_all_fast, which invalidates every root of every vCPU (TDP and shadow), so the
    /// whole VM faults its memory in again (KVM zapped only the slot's range for one release, 5.5-rc, and reverted it
    /// after it broke device assignment). False: only the slot's range, as KVM does since 6.12 once a VM turns the
    /// KVM_X86_QUIRK_SLOT_ZAP_ALL quirk off.
    /// </summary>
    public bool ZapAllOnSlotRemoval { get; set; } = true;

    /// <summary>Set by the shadow-NPT engine over this MMU: drops every shadow root and table (<see cref="ZapAllFast"/>).</summary>
    public Action? ShadowZapAll { get; set; }

    /// <summary>
    /// KVM's kvm_mmu_zap_all_fast: every SPTE of L1's TDP tables and every shadow table of L2 goes; vCPUs fault
    /// everything in again. Returns the TDP SPTEs cleared.
    /// </summary>
    public ulong ZapAllFast()
    {
        using var exclusive = Lock.Write();
        Stats.ZapAllFast++;
        ulong n = Tdp.ZapRange(new Gfn(0), new Gfn(TdpMmu.PagesAt(TdpMmu.RootLevel + 1)));
        ShadowZapAll?.Invoke();
        return n;
    }

    /// <summary>KVM's mmu_lock: TDP faults take the shared side; everything that removes or protects SPTEs the exclusive side.</summary>
    public MmuLock Lock { get; }

    public MemslotTable Memslots { get; }
    public TdpMmu Tdp { get; }
    public MmuStats Stats { get; } = new();
    public ApicvToggle Toggle { get; }
    public int TablesInUse => _arena.InUse;

    /// <summary>Host memory behind the memslots (needed to read L1's nested page tables).</summary>
    public Memory.HostMemoryArena? Host { get; }

    internal TableArena Arena => _arena;

    private ulong _apicvInhibitReasons;

    /// <summary>VM-wide APICv inhibit reasons (bit per reason); APICv is active when this is 0.</summary>
    public ulong ApicvInhibitReasons => Volatile.Read(ref _apicvInhibitReasons);

    public bool ApicvInhibited => ApicvInhibitReasons != 0;

    /// <summary>Host offset of the APIC-access page's backing frame, once the private slot exists.</summary>
    public Hpa ApicAccessHostOffset { get; private set; } = NoHostOffset;

    private static readonly Hpa NoHostOffset = new(ulong.MaxValue);

    /// <summary>Creates the APIC-access private memslot (4 KiB at 0xFEE00000), as AVIC does at vCPU init.</summary>
    public void CreateApicAccessSlot(Hpa hostOffset)
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
        ulong bit = 1UL << reason;
        if (Toggle == ApicvToggle.Zap)
        {
            // The reasons word changes with one compare-exchange; only the active → inhibited transition
            // needs the MMU lock, for its zap. A fault that read "active" either installs the SPTE before
            // the zap (which waits for it and removes it) or starts after and reads "inhibited". Two
            // racing transitions at worst zap an SPTE that is not there. With the lock disabled (one host
            // thread) nothing races the update, and a plain store does.
            ulong old, now;
            if (!Lock.Enabled)
            {
                old = _apicvInhibitReasons;
                now = _apicvInhibitReasons = set ? old | bit : old & ~bit;
            }
            else
            {
                do
                {
                    old = Volatile.Read(ref _apicvInhibitReasons);
                    now = set ? old | bit : old & ~bit;
                }
                while (now != old && Interlocked.CompareExchange(ref _apicvInhibitReasons, now, old) != old);
            }

            if (old == 0 && now != 0)
            {
                Tdp.ZapRange(ApicAccessGfn, ApicAccessGfn + 1);
            }

            return;
        }

        // The memslot design's delete and re-create must follow the transitions in order: the MMU lock's
        // exclusive side (which the memslot update takes again) serialises them, as KVM's apicv_update_lock.
        using (Lock.Write())
        {
            ulong old = _apicvInhibitReasons;
            ulong now = set ? old | bit : old & ~bit;
            Volatile.Write(ref _apicvInhibitReasons, now);
            if ((old == 0) == (now == 0) || ApicAccessHostOffset == NoHostOffset)
            {
                return;
            }

            if (now != 0)
            {
                Memslots.Delete(Memslot.ApicAccessPrivate);
            }
            else
            {
                Memslots.Create(Memslot.ApicAccessPrivate, ApicAccessGpa, 0x1000, ApicAccessHostOffset);
            }
        }
    }

    /// <summary>
    /// Handles one nested-paging fault of L1 (TDP) under the shared side of <see cref="Lock"/>, so vCPUs
    /// fault concurrently. The result is also in pf.Result. Statistics are plain counters: exact on one
    /// thread, approximate when several vCPUs fault at once (an interlocked add per fault would cost more
    /// than the rest of the fast path).
    /// </summary>
    public RetPf Handle(ref PageFault pf)
    {
        Stats.Faults++;
        pf.Gfn = pf.Gpa.Gfn;
        RetPf r;
        if (!pf.IsRsvd && pf.Gfn == ApicAccessGfn && ApicvInhibited
            && ResolveSlot(ref pf, Memslots.Current, out _) == RetPf.Emulate)
        {
            // As KVM, kvm_faultin_pfn decides "emulate the inhibited APIC page" before taking mmu_lock:
            // nothing is installed, so a decision on a snapshot that is about to change is harmless.
            r = RetPf.Emulate;
        }
        else
        {
            Lock.EnterRead();
            try
            {
                r = HandleCore(ref pf);
            }
            finally
            {
                Lock.ExitRead();
            }
        }

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

        if (pf.IsPresent && pf.IsWrite && !pf.IsRsvd && IsWriteTracked(pf.Gfn))
        {
            // A write to a page that holds shadowed L1 tables: emulate it, then the write notifier
            // (NotifyTrackedWrite) drops the shadow pages built from it.
            return RetPf.Emulate;
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
        if (!Tdp.TrySetSpte(ref entry, spte, fixedSpte))
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
        RetPf resolved = ResolveSlot(ref pf, slots, out Memslot? slot);
        if (resolved != RetPf.Continue)
        {
            return resolved;
        }

        if (slot == null)
        {
            pf.Spte = MakeMmio(pf.Gfn.Value, MmioAccessMask, slots.Generation);
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

        bool tracked = IsWriteTracked(pf.Gfn);
        int level = tracked ? 1 : MaxMappingLevel(slot!, pf.Gfn, pf.MaxLevel);
        ulong mask = TdpMmu.PagesAt(level) - 1;
        var start = new Gfn(pf.Gfn.Value & ~mask);
        Hfn pfn = slot!.HostPfn(start);
        bool writable = !slot.IsReadOnly && !tracked;
        ulong spte = MakeLeaf(pfn.Value, level, writable, hostWritable: !slot.IsReadOnly);
        if (tracked)
        {
            spte &= ~MmuWritable; // the fast path must not make a tracked page writable again
        }
        RetPf r = Tdp.Map(start, level, spte);
        if (writable && slot.LogsDirty && r != RetPf.Retry)
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
    /// kvm_faultin_pfn's slot decision: Continue with the slot to map (null: no memory, MMIO), or a
    /// result that stops the fault (Retry for an INVALID slot, Emulate for the inhibited APIC page).
    /// </summary>
    internal RetPf ResolveSlot(ref PageFault pf, MemslotSet slots, out Memslot? slot)
    {
        slot = slots.Find(pf.Gfn);
        pf.SlotId = slot?.Id ?? -1;
        if (slot != null && slot.IsInvalid)
        {
            return RetPf.Retry; // delete/move in flight: its SPTEs may not be zapped yet
        }

        if (slot != null && !slot.IsVisible)
        {
            if (pf.IsGuestMode)
            {
                slot = null; // private slots are invisible to L2
            }
            else if (slot.Id == Memslot.ApicAccessPrivate && ApicvInhibited)
            {
                // Emulate without caching an MMIO SPTE, so uninhibiting needs no purge.
                Stats.ApicEmulations++;
                return RetPf.Emulate;
            }
        }

        return RetPf.Continue;
    }

    public bool IsWriteTracked(Gfn gfn) => _writeTracked.Count != 0 && _writeTracked.Get(gfn.Value) > 0;

    /// <summary>Starts write-tracking <paramref name="gfn"/>: its TDP mapping becomes 4 KiB and read-only.</summary>
    public bool TrackWrite(Gfn l1Gfn)
    {
        ulong gfn = l1Gfn.Value;
        using var exclusive = Lock.Write();
        int n = _writeTracked.Get(gfn);
        if (!_writeTracked.Set(gfn, n + 1))
        {
            return false;
        }

        if (n == 0)
        {
            for (int level = 2; level <= 3; level++)
            {
                ulong key = ((ulong)level << 56) | (gfn >> (9 * (level - 1)));
                _noLargePage.Set(key, _noLargePage.Get(key) + 1);
            }

            Tdp.ZapRange(l1Gfn, l1Gfn + 1);
        }

        return true;
    }

    public void UntrackWrite(Gfn l1Gfn)
    {
        ulong gfn = l1Gfn.Value;
        using var exclusive = Lock.Write();
        int n = _writeTracked.Get(gfn);
        if (n <= 0)
        {
            return;
        }

        _writeTracked.Set(gfn, n - 1);
        if (n == 1)
        {
            for (int level = 2; level <= 3; level++)
            {
                ulong key = ((ulong)level << 56) | (gfn >> (9 * (level - 1)));
                _noLargePage.Set(key, _noLargePage.Get(key) - 1);
            }
        }
    }

    /// <summary>Called after L1's write to a write-tracked gfn was emulated (the page-track notifier).</summary>
    public Action<Gfn>? TrackedWrite { get; set; }

    /// <summary>
    /// After an emulated write to <paramref name="gpa"/>: when its gfn is write-tracked, tells the notifier and
    /// returns true (the caller flushes the TLBs that may hold translations through what the notifier dropped).
    /// </summary>
    public bool NotifyTrackedWrite(Gpa gpa)
    {
        if (!IsWriteTracked(gpa.Gfn))
        {
            return false;
        }

        TrackedWrite?.Invoke(gpa.Gfn);
        return true;
    }

    /// <summary>
    /// Largest level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB) at which the whole aligned range lies in the slot,
    /// the host backing is equally aligned, no write-tracked gfn is inside, and the slot does not log dirty pages.
    /// </summary>
    internal int MaxMappingLevel(Memslot slot, Gfn l1Gfn, int callerMax)
    {
        ulong gfn = l1Gfn.Value;
        if (slot.LogsDirty)
        {
            return 1;
        }

        int max = callerMax is > 0 and < 3 ? callerMax : 3;
        for (int level = max; level > 1; level--)
        {
            ulong pages = TdpMmu.PagesAt(level);
            ulong start = gfn & ~(pages - 1);
            if (start >= slot.BaseGfn && start + pages <= slot.EndGfn && ((slot.BaseGfn ^ (slot.HostOffset >> 12)) & (pages - 1)) == 0
                && (_noLargePage.Count == 0 || _noLargePage.Get(((ulong)level << 56) | (gfn >> (9 * (level - 1)))) == 0))
            {
                return level;
            }
        }

        return 1;
    }

    public void Dispose() => _arena.Dispose();
}
