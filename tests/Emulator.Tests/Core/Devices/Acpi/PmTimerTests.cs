using Emulator.Core.Devices;
using Emulator.Core.Devices.Acpi;
using Emulator.Core.Timing;

namespace Emulator.Tests.Core.Devices.Acpi;

/// <summary>The ACPI PM block through its ports (offsets from 0x600), on a clock the test moves.</summary>
public class PmTimerTests
{
    private const ushort Sts = 0, En = 2, Cnt = 4, Tmr = 8;

    private ulong _now;
    private EventQueue _events = null!;
    private IrqRecorder _irqs = null!;
    private int _powerOffs;
    private PmTimer _pm = null!;

    private sealed class IrqRecorder : IIrqSink
    {
        public readonly List<(int Line, bool Level)> Changes = [];

        public void SetIrq(int line, bool level) => Changes.Add((line, level));
    }

    [SetUp]
    public void SetUp()
    {
        _now = 0;
        _events = new EventQueue { Clock = () => _now };
        _irqs = new IrqRecorder();
        _powerOffs = 0;
        _pm = new PmTimer(_events, _irqs, () => _powerOffs++);
    }

    /// <summary>Moves the clock and fires what fell due, as the machine does between instruction blocks.</summary>
    private void AdvanceTo(ulong cycles)
    {
        _now = cycles;
        _events.RunDue(cycles);
    }

    private static ulong CyclesForTicks(ulong ticks) => GuestClock.ToCycles(ticks, PmTimer.Frequency);

    [Test]
    public void TimerCountsAt3579545HzFromTheCycleClock()
    {
        Assert.That(_pm.In(Tmr, 4), Is.Zero);
        AdvanceTo(CyclesForTicks(1000) - 1);
        Assert.That(_pm.In(Tmr, 4), Is.EqualTo(999));
        AdvanceTo(CyclesForTicks(1000));
        Assert.That(_pm.In(Tmr, 4), Is.EqualTo(1000));
        AdvanceTo(GuestClock.CyclesPerSecond);
        Assert.That(_pm.In(Tmr, 4), Is.EqualTo(3_579_545));
    }

    [Test]
    public void TimerIs24BitsWide()
    {
        AdvanceTo(CyclesForTicks(0x100_0005));
        Assert.That(_pm.In(Tmr, 4), Is.EqualTo(5));
    }

    [Test]
    public void NarrowTimerReadsReturnTheLowBitsAtAnyLane()
    {
        AdvanceTo(CyclesForTicks(0x12_3456));
        Assert.Multiple(() =>
        {
            Assert.That(_pm.In(Tmr, 2), Is.EqualTo(0x3456));
            Assert.That(_pm.In(Tmr + 2, 2), Is.EqualTo(0x3456), "QEMU does not shift by the lane");
            Assert.That(_pm.In(Tmr + 1, 1), Is.EqualTo(0x56));
            Assert.That(_pm.In(Tmr + 3, 1), Is.EqualTo(0x56));
            Assert.That(_pm.In(Tmr + 2, 4), Is.EqualTo(0xFFFF_3456), "the upper half falls on undecoded ports");
        });
    }

    [Test]
    public void TimerStatusIsSetFromResetAndAgainWhenBit23Changes()
    {
        Assert.That(_pm.In(Sts, 2) & PmTimer.TmrSts, Is.Not.Zero, "set from reset, as on QEMU");
        AdvanceTo(CyclesForTicks(0x10));
        _pm.Out(Sts, 2, PmTimer.TmrSts);
        Assert.That(_pm.In(Sts, 2) & PmTimer.TmrSts, Is.Zero);
        AdvanceTo(CyclesForTicks(0x80_0000) - 1);
        Assert.That(_pm.In(Sts, 2) & PmTimer.TmrSts, Is.Zero);
        AdvanceTo(CyclesForTicks(0x80_0000));
        Assert.That(_pm.In(Sts, 2) & PmTimer.TmrSts, Is.Not.Zero);
    }

    [Test]
    public void StatusIsWriteOneToClearAndEnableIsAPlainRegister()
    {
        _pm.Out(Sts, 2, 0);
        Assert.That(_pm.In(Sts, 2) & PmTimer.TmrSts, Is.Not.Zero, "writing 0 clears nothing");
        _pm.Out(En, 2, 0xA5A5);
        Assert.That(_pm.In(En, 2), Is.EqualTo(0xA5A5));
        Assert.That(_pm.In(Sts, 4), Is.EqualTo(_pm.In(Sts, 2) | (0xA5A5u << 16)), "a dword spans status and enable");
        Assert.That(_pm.In(Sts + 1, 1), Is.Zero, "QEMU reads the high byte alone as 0");
        Assert.That(_pm.In(En, 1), Is.EqualTo(0xA5));
    }

    [Test]
    public void TimerOverflowRaisesTheSciWhenEnabled()
    {
        AdvanceTo(CyclesForTicks(0x100));
        _pm.Out(Sts, 2, PmTimer.TmrSts);
        _pm.Out(En, 2, PmTimer.TmrEn);
        Assert.That(_irqs.Changes, Is.Empty);
        Assert.That(_events.NextDeadline, Is.EqualTo(CyclesForTicks(0x80_0000)));

        AdvanceTo(CyclesForTicks(0x80_0000));
        Assert.That(_irqs.Changes, Is.EqualTo(new[] { (PmTimer.SciIrq, true) }));
        Assert.That(_pm.SciAsserted, Is.True);

        _pm.Out(Sts, 2, PmTimer.TmrSts);
        Assert.That(_irqs.Changes[^1], Is.EqualTo((PmTimer.SciIrq, false)));
        Assert.That(_events.NextDeadline, Is.EqualTo(CyclesForTicks(0x100_0000)), "the next change of bit 23");
    }

    [Test]
    public void EnablingWhileStatusIsSetRaisesTheSciAtOnce()
    {
        _pm.Out(En, 2, PmTimer.TmrEn);
        Assert.That(_irqs.Changes, Is.EqualTo(new[] { (PmTimer.SciIrq, true) }));
        _pm.Out(En, 2, 0);
        Assert.That(_irqs.Changes[^1], Is.EqualTo((PmTimer.SciIrq, false)));
        Assert.That(_events.PendingCount, Is.Zero);
    }

    [Test]
    public void ControlStartsInAcpiModeAndKeepsWhatIsWritten()
    {
        Assert.That(_pm.In(Cnt, 2), Is.EqualTo(PmTimer.SciEn));
        _pm.Out(Cnt, 2, 0x0C01);
        Assert.That(_pm.In(Cnt, 2), Is.EqualTo(0x0C01));
        Assert.That(_pm.In(Cnt + 1, 1), Is.EqualTo(0x0C), "the high byte at its own port");
        _pm.Out(Cnt + 1, 1, 0x04);
        Assert.That(_pm.In(Cnt, 2), Is.EqualTo(0x0401), "a high-byte write keeps the low byte");
        Assert.That(_powerOffs, Is.Zero);
    }

    [Test]
    public void SleepEnableWithSoftOffTypePowersOff()
    {
        _pm.Out(Cnt, 2, (1 << PmTimer.SlpTypShift) | PmTimer.SlpEn | PmTimer.SciEn);
        Assert.That(_powerOffs, Is.Zero, "S1-S3 are not modelled");
        Assert.That(_pm.In(Cnt, 2) & PmTimer.SlpEn, Is.Zero, "SLP_EN reads back as 0");
        _pm.Out(Cnt, 2, PmTimer.SlpEn | PmTimer.SciEn);
        Assert.That(_powerOffs, Is.EqualTo(1));
    }

    [Test]
    public void UndecodedPortsOfTheBlockReadAllOnes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_pm.In(6, 2), Is.EqualTo(0xFFFF));
            Assert.That(_pm.In(0x0C, 4), Is.EqualTo(0xFFFF_FFFF));
            Assert.That(_pm.In(0x3F, 1), Is.EqualTo(0xFF));
            Assert.That(_pm.In(Cnt, 4), Is.EqualTo(0xFFFF_0000 | PmTimer.SciEn));
        });
        _pm.Out(0x10, 4, 0);
        _pm.Out(Tmr, 4, 0);
        AdvanceTo(CyclesForTicks(7));
        Assert.That(_pm.In(Tmr, 4), Is.EqualTo(7), "the timer ignores writes");
    }
}
