namespace Emulator.Core.Cpu;

/// <summary>
/// The AVIC unit of the VMCB a vCPU runs under (APM vol. 2 §15.29), as the memory path sees it: a guest access whose
/// guest-physical page is the VMCB's APIC_BAR, and whose nested page-table entry is present and allows it, goes here
/// instead of to the host page that entry maps (the APIC-access page). The unit serves it from the vCPU's backing page
/// or exits to the hypervisor. Emulator.Svm implements it; Core only routes the access.
/// </summary>
public abstract class AvicPort
{
    /// <summary>A read of <paramref name="size"/> bytes at <paramref name="offset"/> in the APIC page.</summary>
    public abstract ulong Read(Cpu cpu, int offset, int size);

    /// <summary>A write of <paramref name="size"/> bytes at <paramref name="offset"/> in the APIC page.</summary>
    public abstract void Write(Cpu cpu, int offset, int size, ulong value);
}

public sealed partial class Cpu
{
    private const ulong NoAvicPage = ulong.MaxValue;

    /// <summary>The AVIC unit of the current VMCB while its AVIC_ENABLE is set; null otherwise.</summary>
    public AvicPort? Avic { get; private set; }

    /// <summary>APIC_BAR's page number while <see cref="Avic"/> is set; otherwise no page matches.</summary>
    private ulong _avicBarPage = NoAvicPage;

    /// <summary>
    /// Turns the AVIC unit on (<paramref name="unit"/> with the page of <paramref name="apicBar"/>) or off (null), as
    /// loading a VMCB with or without AVIC_ENABLE does. The TLB never holds the APIC page while AVIC is on (accesses are
    /// recognised after the translation, before a fill), but it may hold a translation made while AVIC was off: the hypervisor
    /// flushes when it turns AVIC on (KVM does, for the same reason), and this does it for the hypervisor.
    /// </summary>
    public void SetAvic(AvicPort? unit, ulong apicBar)
    {
        bool on = unit != null;
        if (on && Avic == null)
        {
            FlushAllTlbs();
        }

        Avic = unit;
        _avicBarPage = on ? apicBar >> 12 : NoAvicPage;
    }

    /// <summary>True when an access to guest-physical <paramref name="gpa"/> is the AVIC unit's.</summary>
    private bool IsAvicAccess(ulong gpa) => (gpa >> 12) == _avicBarPage && !GuestMode;
}
