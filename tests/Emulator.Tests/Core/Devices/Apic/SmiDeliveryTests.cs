namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>SMI messages reach the vCPU as a pending SMI (<c>VcpuRequest.Smi</c>).</summary>
public class SmiDeliveryTests
{
    [Test]
    public void SmiIpiMakesAnSmiPendingOnTheTarget()
    {
        using var r = new ApicRig(2);
        r.Enable(0);
        r.Cpus[1].WaitingForSipi = false;
        Assert.That(r.Cpus[1].SmiPending, Is.False);
        r.SendIcr(0, 0x0200, 1); // delivery mode 010b: SMI
        Assert.That(r.Cpus[1].SmiPending, Is.True);
        Assert.That(r.Cpus[0].SmiPending, Is.False);
        Assert.That(r[1].SmisReceived, Is.EqualTo(1UL));
    }

    [Test]
    public void SmiOutsideAGuestIsDroppedAtTheNextBoundary()
    {
        using var r = new ApicRig(1);
        r.Cpus[0].RaiseSmi();
        r.Cpus[0].Halted = true;
        r.Cpus[0].Run(maxInstructions: 10);
        Assert.That(r.Cpus[0].SmiPending, Is.False, "no SMM: taking the SMI is a no-op");
    }
}
