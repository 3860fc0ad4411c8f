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

    /// <summary>Active ↔ inhibited flips so far.</summary>
    public ulong Transitions { get; private set; }

    public bool IsSet(ApicvInhibitReason reason) => (_mmu.ApicvInhibitReasons & Bit(reason)) != 0;

    /// <summary>Sets (<paramref name="set"/>) or clears one reason.</summary>
    public void SetInhibit(ApicvInhibitReason reason, bool set)
    {
        ulong old = _mmu.ApicvInhibitReasons;
        ulong now = set ? old | Bit(reason) : old & ~Bit(reason);
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

    private static ulong Bit(ApicvInhibitReason reason) => 1UL << (int)reason;
}
