using Emulator.Core.Cpu;
using Emulator.Core.Timing;
using Emulator.Mmu.Fault;

namespace Emulator.Svm.Avic;

/// <summary>
/// L0's APICv-inhibit machinery for a VM (KVM's kvm_request_apicv_update, Linux 5.15 form): the reasons word lives
/// in the MMU (its fault handler reads it); a change that flips the VM between active and inhibited first asks every
/// vCPU to update (<see cref="VcpuRequest.ApicvUpdate"/> with a kick, so a running vCPU leaves its block at the next
/// instruction and none enters the guest again under the old state), then stores the word and, on the way to
/// inhibited, removes the APIC-access page from the NPT (one SPTE zapped, or the memslot deleted, per
/// <see cref="MmuContext.Toggle"/>). A reason that changes nothing else is just stored.
/// </summary>
public sealed class ApicvState
{
    private readonly MmuContext _mmu;
    private readonly IReadOnlyList<Cpu> _cpus;

    // Until the VM is made, reasons are set with nothing to kick, nothing to pay and nothing counted but Raised (KVM
    // sets them before any vCPU runs).
    private bool _created;

    public ApicvState(MmuContext mmu, IReadOnlyList<Cpu> cpus)
    {
        _mmu = mmu;
        _cpus = cpus;
    }

    /// <summary>True when no reason inhibits APIC virtualization (KVM's kvm_apicv_activated).</summary>
    public bool Active => _mmu.ApicvInhibitReasons == 0;

    /// <summary>
    /// Ends the VM's creation: from here the counters below count what the run does. <see cref="Raised"/> also counts the
    /// reasons set at creation, which say why a VM never had APICv.
    /// </summary>
    public void CreationDone()
    {
        _created = true;
        // DISABLE was put in the MMU's word before this state existed (the APIC-access page needs it first); still
        // set now, it was raised at creation like the others.
        if (IsSet(ApicvInhibitReason.Disable) && Raised[(int)ApicvInhibitReason.Disable] == 0)
        {
            Raised[(int)ApicvInhibitReason.Disable] = 1;
        }
    }

    /// <summary>Active ↔ inhibited flips since creation.</summary>
    public ulong Transitions { get; private set; }

    /// <summary>Changes of the reasons word since creation (a reason set or cleared that was not already so), transitions or not.</summary>
    public ulong InhibitChanges { get; private set; }

    /// <summary>Per reason (indexed by its number), how often it was raised.</summary>
    public ulong[] Raised { get; } = new ulong[ReasonCount];

    /// <summary>One more than the highest <see cref="ApicvInhibitReason"/> number.</summary>
    public const int ReasonCount = (int)ApicvInhibitReason.ApicBaseModified + 1;

    public bool IsSet(ApicvInhibitReason reason) => (_mmu.ApicvInhibitReasons & Bit(reason)) != 0;

    /// <summary>vCPUs kicked out of guest mode by APICv toggles (the update request, and the flushes and reloads that follow).</summary>
    public ulong Kicks { get; private set; }

    /// <summary>Modeled cycles the toggles cost, summed over the vCPUs (the requester's work and every kicked vCPU's).</summary>
    public ulong ToggleCycles { get; private set; }

    /// <summary><see cref="ToggleCycles"/> by step (indexed by <see cref="ToggleStep"/>).</summary>
    public ulong[] StepCycles { get; } = new ulong[(int)ToggleStep.Count];

    /// <summary>
    /// Sets (<paramref name="set"/>) or clears one reason, on behalf of <paramref name="requester"/> (the vCPU whose
    /// exit handler asked; null for the VM's creation or a request from outside the vCPUs) which pays L0's work in
    /// modeled cycles (<see cref="ChargeToggle"/>).
    /// </summary>
    public void SetInhibit(ApicvInhibitReason reason, bool set, Cpu? requester = null)
    {
        ulong old = _mmu.ApicvInhibitReasons;
        ulong now = set ? old | Bit(reason) : old & ~Bit(reason);
        if (now != old)
        {
            InhibitChanges += _created ? 1UL : 0;
            if (set)
            {
                Raised[(int)reason]++;
            }
        }

        bool flips = (old == 0) != (now == 0);
        if (flips)
        {
            Transitions += _created ? 1UL : 0;
            foreach (var cpu in _cpus)
            {
                cpu.MakeRequestAndKick(VcpuRequest.ApicvUpdate);
            }
        }

        var stats = _mmu.Stats;
        ulong zappedBefore = stats.SptesZapped, zapAllBefore = stats.ZapAllFast;
        _mmu.SetApicvInhibit((int)reason, set);
        if (flips && _created)
        {
            ChargeToggle(requester, toInhibited: now != 0, stats.SptesZapped - zappedBefore, stats.ZapAllFast != zapAllBefore);
        }
    }

    /// <summary>
    /// What L0 spends on one active ↔ inhibited flip, in the design <see cref="MmuContext.Toggle"/> selects (KVM's
    /// steps, docs/avic.md "What a toggle costs"). Both designs kick every vCPU in guest mode with the update request
    /// (KVM_REQUEST_WAIT | NO_WAKEUP: a halted vCPU is not woken and handles it when it runs). Then
    /// <list type="bullet">
    /// <item>zap design, to inhibited: mmu_lock for write, the one SPTE zapped and, when there was one, a remote TLB
    /// flush (another kick of every running vCPU); to active: nothing more.</item>
    /// <item>memslot design, to inhibited (delete): two memslot installs, each followed by an SRCU grace period (the
    /// INVALID copy, then the real one), and between them the zap under mmu_lock, which in KVM through 6.x is
    /// kvm_mmu_zap_all_fast: every vCPU is kicked to reload its MMU root and faults its memory in again. The
    /// MMIO-generation bump of every install makes the cached MMIO SPTEs stale; those refaults are charged where they
    /// happen, as faults. To active (create): one install and one grace period.</item>
    /// </list>
    /// The requester pays the kicks it sends (<see cref="CostTable.VcpuKick"/>) and the work; each kicked vCPU pays its
    /// exit. Without a requester only the kicked vCPUs pay.
    /// </summary>
    private void ChargeToggle(Cpu? requester, bool toInhibited, ulong zapped, bool zappedAll)
    {
        var costs = (requester ?? _cpus[0]).Costs;
        ulong work = KickRound(requester, costs, 0);
        if (_mmu.Toggle == ApicvToggle.Zap)
        {
            if (toInhibited)
            {
                work += Step(requester, ToggleStep.MmuLock, costs.MmuLockWrite) + Step(requester, ToggleStep.Zap, zapped * costs.SpteZap);
                if (zapped != 0)
                {
                    work += KickRound(requester, costs, 0);
                }
            }
        }
        else if (toInhibited)
        {
            work += Step(requester, ToggleStep.MemslotInstall, 2 * costs.MemslotInstall) + Step(requester, ToggleStep.SrcuGracePeriod, 2 * costs.SrcuGracePeriod)
                + Step(requester, ToggleStep.MmuLock, costs.MmuLockWrite) + Step(requester, ToggleStep.Zap, zapped * costs.SpteZap);
            if (zappedAll)
            {
                work += KickRound(requester, costs, costs.MmuRootReload) + Step(requester, ToggleStep.RootReload, costs.MmuRootReload);
            }
        }
        else
        {
            work += Step(requester, ToggleStep.MemslotInstall, costs.MemslotInstall) + Step(requester, ToggleStep.SrcuGracePeriod, costs.SrcuGracePeriod);
        }

        if (requester != null)
        {
            requester.Cycles += work;
        }
    }

    /// <summary>The requester's share of one step: counted in <see cref="StepCycles"/> when there is a requester to pay it.</summary>
    private ulong Step(Cpu? requester, ToggleStep step, ulong cycles)
    {
        if (requester == null)
        {
            return 0;
        }

        StepCycles[(int)step] += cycles;
        ToggleCycles += cycles;
        return cycles;
    }

    /// <summary>
    /// Kicks every vCPU but the requester that is in guest mode (not halted, not waiting for SIPI; KVM_REQUEST_NO_WAKEUP
    /// leaves the others alone): each pays its exit. Every vCPU but the requester pays <paramref name="targetWork"/> (a
    /// root reload), a halted one when it next runs. Returns what the requester pays for sending the kicks.
    /// </summary>
    private ulong KickRound(Cpu? requester, CostTable costs, ulong targetWork)
    {
        ulong sent = 0;
        foreach (var cpu in _cpus)
        {
            if (cpu == requester)
            {
                continue;
            }

            ulong paid = targetWork;
            StepCycles[(int)ToggleStep.RootReload] += targetWork;
            if (!cpu.Halted && !cpu.WaitingForSipi)
            {
                paid += costs.VmexitRoundTrip;
                StepCycles[(int)ToggleStep.Exit] += costs.VmexitRoundTrip;
                Kicks++;
                sent += costs.VcpuKick;
            }

            cpu.Cycles += paid;
            ToggleCycles += paid;
        }

        return Step(requester, ToggleStep.Kick, sent);
    }

    /// <summary>The reason's name in counters (<c>apicv.inhibit.NAME</c>): Linux's APICV_INHIBIT_REASON_ suffix in lower case.</summary>
    public static string ReasonName(ApicvInhibitReason reason) => reason switch
    {
        ApicvInhibitReason.Disable => "disable",
        ApicvInhibitReason.HyperV => "hyperv",
        ApicvInhibitReason.Nested => "nested",
        ApicvInhibitReason.IrqWindow => "irqwin",
        ApicvInhibitReason.PitReinjection => "pit_reinj",
        ApicvInhibitReason.X2Apic => "x2apic",
        ApicvInhibitReason.ApicIdModified => "apic_id_modified",
        ApicvInhibitReason.ApicBaseModified => "apic_base_modified",
        _ => ((int)reason).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static ulong Bit(ApicvInhibitReason reason) => 1UL << (int)reason;
}

/// <summary>The steps of an APICv toggle that cost modeled cycles (<c>apicv.cost.NAME</c>).</summary>
public enum ToggleStep
{
    /// <summary>Sending kicks and waiting for the targets to leave guest mode (the requester).</summary>
    Kick,

    /// <summary>The kicked vCPUs' exits and re-entries.</summary>
    Exit,

    /// <summary>mmu_lock taken for write.</summary>
    MmuLock,

    /// <summary>SPTEs cleared.</summary>
    Zap,

    /// <summary>Memslot-array installs (memslot design).</summary>
    MemslotInstall,

    /// <summary>SRCU grace periods after the installs (memslot design).</summary>
    SrcuGracePeriod,

    /// <summary>Every vCPU's MMU root reload after a zap of all roots (memslot design).</summary>
    RootReload,

    Count,
}
