using Emulator.Core.Cpu;
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

    public ApicvState(MmuContext mmu, IReadOnlyList<Cpu> cpus)
    {
        _mmu = mmu;
        _cpus = cpus;
    }

    /// <summary>True when no reason inhibits APIC virtualization (KVM's kvm_apicv_activated).</summary>
    public bool Active => _mmu.ApicvInhibitReasons == 0;

    /// <summary>
    /// Ends the VM's creation: the counters below then count what the run did. <see cref="Raised"/> keeps the reasons set
    /// at creation, which say why a VM never had APICv.
    /// </summary>
    public void CreationDone()
    {
        Transitions = 0;
        InhibitChanges = 0;
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

    /// <summary>Sets (<paramref name="set"/>) or clears one reason.</summary>
    public void SetInhibit(ApicvInhibitReason reason, bool set)
    {
        ulong old = _mmu.ApicvInhibitReasons;
        ulong now = set ? old | Bit(reason) : old & ~Bit(reason);
        if (now != old)
        {
            InhibitChanges++;
            if (set)
            {
                Raised[(int)reason]++;
            }
        }

        if ((old == 0) != (now == 0))
        {
            Transitions++;
            foreach (var cpu in _cpus)
            {
                cpu.MakeRequestAndKick(VcpuRequest.ApicvUpdate);
            }
        }

        _mmu.SetApicvInhibit((int)reason, set);
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
