namespace Emulator.Svm.Avic;

/// <summary>
/// Reasons L0 inhibits APIC virtualization VM-wide: bit numbers of <see cref="Emulator.Mmu.Fault.MmuContext.ApicvInhibitReasons"/>,
/// in the order of KVM's <c>enum kvm_apicv_inhibit</c> (Linux 6.x). Any set bit removes the APIC-access page.
/// </summary>
public static class ApicvInhibit
{
    public const int Disable = 0, HyperV = 1, Absent = 2, BlockIrq = 3, PhysicalIdAliased = 4;

    /// <summary>The guest wrote an xAPIC ID other than the vCPU's initial one (sticky, as KVM keeps it).</summary>
    public const int ApicIdModified = 5;

    /// <summary>The guest enabled an APIC away from 0xFEE00000: the APIC-access page cannot follow (sticky).</summary>
    public const int ApicBaseModified = 6;

    public const int Nested = 7, IrqWindow = 8, PitReinjection = 9, Sev = 10, LogicalIdAliased = 11;
}
