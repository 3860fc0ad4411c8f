namespace Emulator.Svm.Avic;

/// <summary>
/// Reasons L0 inhibits APIC virtualization VM-wide, as bit numbers of <see cref="Emulator.Mmu.Fault.MmuContext.ApicvInhibitReasons"/>
/// (any set bit makes the APIC-access page invisible). Bits 0–5 are Linux 5.15's APICV_INHIBIT_REASON_* with their
/// 5.15 numbers and triggers; the later ones are what this model also raises, numbered after them (Linux 6.x renumbered
/// the whole list into <c>enum kvm_apicv_inhibit</c>; the numbers only need to be distinct here).
/// </summary>
public enum ApicvInhibitReason
{
    /// <summary>APIC virtualization is off for the VM (KVM's enable_apicv = 0: <c>--cpu -avic</c>, or no nested paging); set at creation, never cleared.</summary>
    Disable = 0,

    /// <summary>Hyper-V SynIC AutoEOI in use (not modelled: no SynIC).</summary>
    HyperV = 1,

    /// <summary>The guest's CPUID has SVM (5.15: VM-wide, set at CPUID time, never cleared; 5.19 made it per vCPU while in L2).</summary>
    Nested = 2,

    /// <summary>L0 asked for an interrupt window (V_IRQ, which AVIC ignores) to inject an ExtINT or a pending interrupt; cleared when the window opens.</summary>
    IrqWindow = 3,

    /// <summary>The PIT re-injects lost ticks, which needs EOI exits AVIC does not produce for edge interrupts.</summary>
    PitReinjection = 4,

    /// <summary>The guest's CPUID has x2APIC (5.15's AVIC has no x2APIC mode); set at CPUID time, never cleared.</summary>
    X2Apic = 5,

    /// <summary>The guest wrote an xAPIC ID other than the vCPU's initial one (Linux 6.0's APIC_ID_MODIFIED; sticky here).</summary>
    ApicIdModified = 6,

    /// <summary>The guest enabled an APIC away from 0xFEE00000 (Linux 6.0's APIC_BASE_MODIFIED; 5.15 just did not support it).</summary>
    ApicBaseModified = 7,
}
