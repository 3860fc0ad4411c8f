using Emulator.Core.Devices.Legacy;

namespace Emulator.Tests.Core.Devices.Legacy;

/// <summary>KVM's PIT reinject mode between channel 0's OUT and IRQ 0: one tick at a time, one per acknowledgement.</summary>
public class PitReinjectionTests
{
    private static (PitReinjection Gate, List<bool> Line) NewGate()
    {
        var line = new List<bool>();
        return (new PitReinjection(line.Add), line);
    }

    [Test]
    public void OffTheOutputDrivesIrq0Directly()
    {
        var (gate, line) = NewGate();
        gate.Out0(true);
        gate.Out0(false);
        gate.Out0(true);
        Assert.That(line, Is.EqualTo(new[] { true, false, true }));
    }

    [Test]
    public void OnATickBeforeTheAcknowledgementWaitsAndEachAcknowledgementDeliversOne()
    {
        var (gate, line) = NewGate();
        gate.Enabled = true;
        line.Clear();
        gate.Out0(true);
        Assert.That(line, Is.EqualTo(new[] { true, false }), "the first tick goes out as a pulse");
        gate.Out0(false);
        gate.Out0(true);
        gate.Out0(false);
        gate.Out0(true);
        Assert.That(line, Has.Count.EqualTo(2), "two more ticks, not acknowledged yet: held back");
        Assert.That(gate.Pending, Is.EqualTo(2UL));

        gate.Acknowledged();
        Assert.That(line, Has.Count.EqualTo(4));
        gate.Acknowledged();
        Assert.That(line, Has.Count.EqualTo(6));
        Assert.That(gate.Reinjected, Is.EqualTo(2UL));
        gate.Acknowledged();
        Assert.That(line, Has.Count.EqualTo(6), "nothing left to deliver");
        Assert.That(gate.Pending, Is.Zero);
    }

    [Test]
    public void TurningItOnOrOffStartsAfreshAndTellsTheMachine()
    {
        var (gate, line) = NewGate();
        var changes = new List<bool>();
        gate.Changed = changes.Add;
        gate.Out0(true); // OUT0 high while off
        gate.Enabled = true;
        Assert.That(line[^1], Is.False, "reinjection pulses the line, so it starts low");
        gate.Out0(false);
        gate.Out0(true);
        gate.Out0(false);
        gate.Out0(true);
        Assert.That(gate.Pending, Is.EqualTo(1UL));
        gate.Enabled = false;
        Assert.That(gate.Pending, Is.Zero);
        Assert.That(line[^1], Is.True, "OUT0's level again");
        gate.Enabled = false;
        Assert.That(changes, Is.EqualTo(new[] { true, false }));
    }
}
