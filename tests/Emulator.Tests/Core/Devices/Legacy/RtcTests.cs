using Emulator.Core.Devices;
using Emulator.Core.Devices.Legacy;
using Emulator.Core.Timing;

namespace Emulator.Tests.Core.Devices.Legacy;

public class RtcTests
{
    private const ulong Second = GuestClock.CyclesPerSecond;

    private ulong _now;
    private EventQueue _events = null!;
    private IoBus _io = null!;
    private Rtc _rtc = null!;
    private bool _irq;
    private List<ulong> _raises = null!;

    private void Build(DateTime? epoch = null)
    {
        _now = 0;
        _events = new EventQueue { Clock = () => _now };
        _raises = [];
        _irq = false;
        _rtc = new Rtc(_events, level =>
        {
            if (level && !_irq)
            {
                _raises.Add(_now);
            }

            _irq = level;
        }, epoch);
        _io = new IoBus();
        _rtc.Attach(_io);
    }

    [SetUp]
    public void SetUp() => Build();

    private void RunTo(ulong cycle)
    {
        while (_events.NextDeadline <= cycle)
        {
            _now = Math.Max(_now, _events.NextDeadline);
            _events.RunDue(_now);
        }

        _now = cycle;
    }

    private int Read(int index)
    {
        _io.Out(0x70, 1, (uint)index);
        return (int)_io.In(0x71, 1);
    }

    private void Write(int index, int value)
    {
        _io.Out(0x70, 1, (uint)index);
        _io.Out(0x71, 1, (uint)value);
    }

    private int[] Clock() => [Read(0x00), Read(0x02), Read(0x04), Read(0x06), Read(0x07), Read(0x08), Read(0x09), Read(0x32)];

    [Test]
    public void PowerOnStatusRegistersAreQemus()
    {
        Assert.That(Read(0x0A), Is.EqualTo(0x26));
        Assert.That(Read(0x0B), Is.EqualTo(0x02));
        Assert.That(Read(0x0C), Is.Zero);
        Assert.That(Read(0x0D), Is.EqualTo(0x80));
        Write(0x0D, 0x00);
        Assert.That(Read(0x0D), Is.EqualTo(0x80), "D is read-only, VRT set");
    }

    [Test]
    public void ClockStartsAtTheEpochInBcd()
    {
        // 2026-01-01 was a Thursday: day of week 5 (Sunday = 1).
        Assert.That(Clock(), Is.EqualTo(new[] { 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x26, 0x20 }));
    }

    [Test]
    public void ClockAdvancesByGuestSecondsInBinaryMode()
    {
        Write(0x0B, 0x06); // binary, 24-hour
        RunTo((3661 * Second) + (Second / 2));
        Assert.That(Clock(), Is.EqualTo(new[] { 1, 1, 1, 5, 1, 1, 26, 20 }));
    }

    [Test]
    public void RollsOverIntoTheNextYear()
    {
        Build(new DateTime(2025, 12, 31, 23, 59, 58));
        Assert.That(Clock(), Is.EqualTo(new[] { 0x58, 0x59, 0x23, 0x04, 0x31, 0x12, 0x25, 0x20 }));
        RunTo(2 * Second);
        Assert.That(Clock(), Is.EqualTo(new[] { 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x26, 0x20 }));
    }

    [Test]
    public void LeapDayAndCenturyAreComputed()
    {
        Build(new DateTime(2099, 12, 31, 23, 59, 59));
        RunTo(Second);
        Assert.That(Read(0x32), Is.EqualTo(0x21));
        Assert.That(Read(0x09), Is.EqualTo(0x00));
        Build(new DateTime(2028, 2, 28, 23, 59, 59));
        RunTo(Second);
        Assert.That(Read(0x07), Is.EqualTo(0x29));
        Assert.That(Read(0x08), Is.EqualTo(0x02));
    }

    [Test]
    public void TwelveHourModeSetsThePmBit()
    {
        Build(new DateTime(2026, 3, 4, 13, 5, 0));
        Write(0x0B, 0x00); // BCD, 12-hour
        Assert.That(Read(0x04), Is.EqualTo(0x81));
        Build(new DateTime(2026, 3, 4, 0, 30, 0));
        Write(0x0B, 0x04); // binary, 12-hour
        Assert.That(Read(0x04), Is.EqualTo(12), "midnight is 12 AM");
    }

    [Test]
    public void SetBitFreezesTheClockAndClearingItStartsFromTheWrittenTime()
    {
        Write(0x0B, 0x82); // SET, 24-hour BCD
        Write(0x04, 0x10);
        Write(0x02, 0x20);
        Write(0x00, 0x30);
        RunTo(5 * Second);
        Assert.That(Read(0x00), Is.EqualTo(0x30), "no updates while SET");
        Write(0x0B, 0x02);
        RunTo(8 * Second);
        Assert.That(new[] { Read(0x04), Read(0x02), Read(0x00) }, Is.EqualTo(new[] { 0x10, 0x20, 0x33 }));
    }

    [Test]
    public void WritingOneFieldOfARunningClockKeepsTheOthers()
    {
        RunTo(10 * Second);
        Write(0x02, 0x45);
        RunTo(12 * Second);
        Assert.That(new[] { Read(0x04), Read(0x02), Read(0x00) }, Is.EqualTo(new[] { 0x00, 0x45, 0x12 }));
    }

    [Test]
    public void PeriodicInterruptFollowsTheRateSelect()
    {
        const ulong period1024 = 1_953_125; // 976.5625 µs
        Write(0x0A, 0x26); // 1024 Hz
        Write(0x0B, 0x42); // PIE
        RunTo(Second / 100);
        Assert.That(_raises, Is.EqualTo(new ulong[] { period1024 }), "IRQ 8 stays high until C is read");
        Assert.That(Read(0x0C), Is.EqualTo(0xC0));
        Assert.That(_irq, Is.False, "reading C lowers IRQ 8");
        RunTo(11 * period1024);
        Assert.That(_raises, Is.EqualTo(new ulong[] { period1024, 11 * period1024 }));

        Write(0x0A, 0x23); // 8192 Hz: every 4 crystal ticks
        Read(0x0C);
        RunTo((11 * period1024) + 300_000);
        Assert.That(_raises[^1], Is.EqualTo(GuestClock.ToCycles((11 * 32) + 4, Rtc.CrystalHz)));
        Assert.That(_rtc.PeriodicTicks, Is.EqualTo(11 + 1));
    }

    [Test]
    public void PeriodicTicksAreExactlyOnTheCrystalGrid()
    {
        Write(0x0A, 0x2F); // 2 Hz
        Write(0x0B, 0x42);
        for (int i = 1; i <= 4; i++)
        {
            RunTo((ulong)i * Second / 2);
            Assert.That(Read(0x0C) & 0x40, Is.EqualTo(0x40), $"tick {i}");
        }

        Assert.That(_raises, Is.EqualTo(new ulong[] { Second / 2, Second, 3 * Second / 2, 2 * Second }));
        Assert.That(_rtc.Fires, Is.EqualTo(4));
    }

    [Test]
    public void NoPeriodicFlagWithoutPie()
    {
        RunTo(Second / 2);
        Assert.That(Read(0x0C) & 0x40, Is.Zero);
        Assert.That(_raises, Is.Empty);
    }

    [Test]
    public void UpdateEndedInterruptOncePerSecond()
    {
        Write(0x0B, 0x12); // UIE
        RunTo(3 * Second + 10);
        Assert.That(_raises, Is.EqualTo(new ulong[] { Second }), "held until C is read");
        Assert.That(Read(0x0C), Is.EqualTo(0x90));
        RunTo(4 * Second);
        Assert.That(_raises, Is.EqualTo(new ulong[] { Second, 4 * Second }));
        Assert.That(_rtc.Updates, Is.EqualTo(4));
    }

    [Test]
    public void UpdateFlagIsSetForPollersWithoutUie()
    {
        RunTo(Second / 2);
        Assert.That(Read(0x0C), Is.Zero);
        RunTo(Second + 1);
        Assert.That(Read(0x0C), Is.EqualTo(0x10));
        Assert.That(Read(0x0C), Is.Zero, "read clears");
        Assert.That(_raises, Is.Empty);
    }

    [Test]
    public void UpdateInProgressIsSetJustBeforeEachSecond()
    {
        RunTo(Second - Rtc.UipCycles - 1);
        Assert.That(Read(0x0A) & 0x80, Is.Zero);
        RunTo(Second - Rtc.UipCycles);
        Assert.That(Read(0x0A) & 0x80, Is.EqualTo(0x80));
        RunTo(Second);
        Assert.That(Read(0x0A) & 0x80, Is.Zero);
        Write(0x0A, 0xA6);
        Assert.That(Read(0x0A) & 0x7F, Is.EqualTo(0x26), "UIP is read-only");
    }

    [Test]
    public void AlarmInterruptAtTheMatchingSecond()
    {
        Write(0x01, 0x02);
        Write(0x03, 0xC0); // any minute
        Write(0x05, 0x00);
        Write(0x0B, 0x22); // AIE
        RunTo(3 * Second);
        Assert.That(_raises, Is.EqualTo(new ulong[] { 2 * Second }));
        Assert.That(Read(0x0C), Is.EqualTo(0xB0), "IRQF, AF and the update flag");
    }

    [Test]
    public void EnablingAnInterruptWithItsFlagSetRaisesIrq8()
    {
        RunTo(Second + 5);
        Write(0x0B, 0x12); // UIE; the lazy UF of the last second is not interrupting yet
        Assert.That(_raises, Is.Empty);
        RunTo(2 * Second);
        Assert.That(_raises, Is.EqualTo(new ulong[] { 2 * Second }));
        Write(0x0B, 0x02);
        Assert.That(_irq, Is.False, "disabling the source drops IRQF and the line");
    }

    [Test]
    public void SetClearsUie()
    {
        Write(0x0B, 0x92);
        Assert.That(Read(0x0B), Is.EqualTo(0x82));
    }

    [Test]
    public void IndexPortCarriesTheNmiMaskAndReadsAllOnes()
    {
        _io.Out(0x70, 1, 0x8F);
        Assert.That(_rtc.NmiMasked, Is.True);
        Assert.That(_io.In(0x70, 1), Is.EqualTo(0xFF));
        _io.Out(0x71, 1, 0x5A);
        _io.Out(0x70, 1, 0x0F);
        Assert.That(_rtc.NmiMasked, Is.False);
        Assert.That(_io.In(0x71, 1), Is.EqualTo(0x5A), "index 0x0F with the NMI bit is the same byte");
    }

    [Test]
    public void CmosHoldsTheMemorySizesAsQemuStoresThem()
    {
        _rtc.StoreMachineConfiguration(3UL << 30, 1UL << 30, 4);
        Assert.That(Read(0x15) | (Read(0x16) << 8), Is.EqualTo(640));
        Assert.That(Read(0x17) | (Read(0x18) << 8), Is.EqualTo(65535), "capped");
        Assert.That(Read(0x30) | (Read(0x31) << 8), Is.EqualTo(65535));
        Assert.That(Read(0x34) | (Read(0x35) << 8), Is.EqualTo(((3L << 30) - (16 << 20)) >> 16));
        Assert.That(Read(0x5B) | (Read(0x5C) << 8) | (Read(0x5D) << 16), Is.EqualTo(1 << 14));
        Assert.That(Read(0x5F), Is.EqualTo(3));

        Build();
        _rtc.StoreMachineConfiguration(32 << 20, 0, 1);
        Assert.That(Read(0x17) | (Read(0x18) << 8), Is.EqualTo(31 * 1024));
        Assert.That(Read(0x34) | (Read(0x35) << 8), Is.EqualTo(256));
        Assert.That(Read(0x5B) | Read(0x5C) | Read(0x5D), Is.Zero);
    }

    [Test]
    public void GarbageTimeValuesDoNotThrow()
    {
        Write(0x0B, 0x82);
        for (int r = 0; r < 10; r++)
        {
            Write(r, 0xFF);
        }

        Write(0x32, 0xFF);
        Write(0x0B, 0x02);
        RunTo(Second);
        Assert.That(Read(0x00), Is.LessThan(0x60));
    }
}
