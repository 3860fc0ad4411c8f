using Emulator.Core.Devices;
using Emulator.Core.Devices.Legacy;
using Emulator.Core.Timing;

namespace Emulator.Tests.Core.Devices.Legacy;

public class PitTests
{
    private ulong _now;
    private EventQueue _events = null!;
    private Pit8254 _pit = null!;
    private IoBus _io = null!;
    private List<(ulong Tick, bool Level)> _edges = null!;

    [SetUp]
    public void SetUp()
    {
        _now = 0;
        _events = new EventQueue { Clock = () => _now };
        _edges = [];
        _pit = new Pit8254(_events, level => _edges.Add((GuestClock.ToTicks(_now, Pit8254.Frequency), level)));
        _io = new IoBus();
        _pit.Attach(_io);
    }

    private static ulong Cycles(ulong tick) => GuestClock.ToCycles(tick, Pit8254.Frequency);

    /// <summary>Runs every event up to PIT tick <paramref name="tick"/>, each at its own deadline, and leaves the clock there.</summary>
    private void RunToTick(ulong tick)
    {
        ulong target = Cycles(tick);
        while (_events.NextDeadline <= target)
        {
            _now = Math.Max(_now, _events.NextDeadline);
            _events.RunDue(_now);
        }

        _now = target;
    }

    private void Out(int port, int value) => _io.Out((ushort)port, 1, (uint)value);

    private int In(int port) => (int)_io.In((ushort)port, 1);

    private void Program(int channel, int control, int count)
    {
        Out(0x43, (channel << 6) | control);
        Out(0x40 + channel, count & 0xFF);
        Out(0x40 + channel, (count >> 8) & 0xFF);
    }

    private int ReadWord(int channel) => In(0x40 + channel) | (In(0x40 + channel) << 8);

    private ulong[] Rises() => [.. _edges.Where(e => e.Level).Select(e => e.Tick)];

    private ulong[] Falls() => [.. _edges.Where(e => !e.Level).Select(e => e.Tick)];

    [Test]
    public void Mode2RaisesIrq0OncePerPeriodAtExactTicks()
    {
        Program(0, 0x34, 1000);
        RunToTick(5000);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0, 1000, 2000, 3000, 4000, 5000 }), "OUT rises with the control word, then at every reload");
        Assert.That(Falls(), Is.EqualTo(new ulong[] { 999, 1999, 2999, 3999, 4999 }), "low for the tick at count 1");
        Assert.That(_pit.Fires, Is.EqualTo(6));
    }

    [Test]
    public void Mode2CountsDownFromTheReloadValue()
    {
        Program(0, 0x34, 1000);
        RunToTick(250);
        Assert.That(ReadWord(0), Is.EqualTo(750));
        RunToTick(1000);
        Assert.That(ReadWord(0), Is.EqualTo(1000), "reloaded");
    }

    [Test]
    public void Mode0RisesOnceAtTerminalCountAndKeepsCounting()
    {
        Program(0, 0x30, 100);
        RunToTick(40);
        Assert.That(ReadWord(0), Is.EqualTo(60));
        Assert.That(_pit.Output(0), Is.False);
        RunToTick(1000);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 100 }));
        Assert.That(ReadWord(0), Is.EqualTo((65536 + 100 - 1000) & 0xFFFF), "the counter wraps and keeps counting");
    }

    [Test]
    public void Mode0FirstByteOfANewCountStopsTheCounter()
    {
        Program(0, 0x30, 100);
        RunToTick(50);
        Out(0x40, 10); // low byte only: counting stops, OUT stays low
        RunToTick(200);
        Assert.That(Rises(), Is.Empty);
        Out(0x40, 0);
        RunToTick(210);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 210 }));
    }

    [Test]
    public void Mode3IsASquareWaveHighForTheLargerHalf()
    {
        Program(0, 0x36, 7);
        RunToTick(21);
        Assert.That(Falls(), Is.EqualTo(new ulong[] { 4, 11, 18 }));
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0, 7, 14, 21 }), "high from the control word on");
    }

    [Test]
    public void Mode4StrobesOnceWhenTheCountExpires()
    {
        Program(0, 0x38, 20);
        RunToTick(100);
        Assert.That(Falls(), Is.EqualTo(new ulong[] { 20 }));
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0, 21 }));
    }

    [Test]
    public void NewCountInMode2TakesEffectAtTheEndOfThePeriod()
    {
        Program(0, 0x34, 1000);
        RunToTick(1500);
        Out(0x40, 200 & 0xFF);
        Out(0x40, 200 >> 8);
        RunToTick(2600);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0, 1000, 2000, 2200, 2400, 2600 }));
    }

    [Test]
    public void CounterLatchFreezesTheValueUntilRead()
    {
        Program(0, 0x34, 1000);
        RunToTick(100);
        Out(0x43, 0x00); // latch channel 0
        RunToTick(300);
        Assert.That(ReadWord(0), Is.EqualTo(900));
        Assert.That(ReadWord(0), Is.EqualTo(700), "after the latched value is read the counter is live again");
    }

    [Test]
    public void ReadBackLatchesStatusThenCount()
    {
        Out(0x43, 0x34);
        Out(0x43, 0xE2); // read-back: status of channel 0
        Assert.That(In(0x40), Is.EqualTo(0x40 | 0x80 | 0x30 | 0x04), "null count before a count is written; OUT high in mode 2");
        Out(0x40, 0x00);
        Out(0x40, 0x10); // 4096
        RunToTick(96);
        Out(0x43, 0xC2); // read-back: status and count of channel 0
        RunToTick(500);
        Assert.That(In(0x40), Is.EqualTo(0x80 | 0x30 | 0x04), "count loaded");
        Assert.That(ReadWord(0), Is.EqualTo(4000));
    }

    [Test]
    public void LowByteOnlyAccessProgramsAShortPeriod()
    {
        Out(0x43, 0x14); // channel 0, LSB only, mode 2
        Out(0x40, 50);
        RunToTick(100);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0, 50, 100 }));
        Assert.That(In(0x40), Is.EqualTo(50), "reload value, read through the LSB");
    }

    [Test]
    public void BcdModeCountsInDecimal()
    {
        Program(0, 0x35, 0x0100);
        RunToTick(30);
        Assert.That(ReadWord(0), Is.EqualTo(0x0070));
        RunToTick(100);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0, 100 }));
    }

    [Test]
    public void Channel2CountsOnlyWithItsGateHighAndShowsOutOnPort61()
    {
        Program(2, 0x30, 50);
        RunToTick(100);
        Assert.That(ReadWord(2), Is.EqualTo(50), "gate low: not counting");
        Assert.That(In(0x61) & 0x21, Is.Zero);
        Out(0x61, 0x03); // gate on, speaker on
        RunToTick(149);
        Assert.That(In(0x61) & 0x23, Is.EqualTo(0x03));
        RunToTick(150);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20), "OUT2 after 50 ticks of gate");
        Assert.That(_pit.SpeakerEnabled, Is.True);
        Assert.That(_edges, Is.Empty, "channel 2 is not an interrupt source");
    }

    [Test]
    public void Channel2GateLowSuspendsMode0()
    {
        Out(0x61, 0x01);
        Program(2, 0x30, 100);
        RunToTick(30);
        Out(0x61, 0x00);
        RunToTick(500);
        Assert.That(ReadWord(2), Is.EqualTo(70));
        Out(0x61, 0x01);
        RunToTick(569);
        Assert.That(In(0x61) & 0x20, Is.Zero);
        RunToTick(570);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20));
    }

    [Test]
    public void Mode1IsTriggeredByTheGateRisingEdge()
    {
        Program(2, 0x32, 30);
        RunToTick(5);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20), "high until triggered");
        RunToTick(10);
        Out(0x61, 0x01);
        RunToTick(11);
        Assert.That(In(0x61) & 0x20, Is.Zero, "one-shot low");
        RunToTick(40);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20));
    }

    [Test]
    public void Mode2GateLowHoldsOutHighAndTheRisingEdgeReloads()
    {
        Out(0x61, 0x01);
        Program(2, 0x34, 10);
        RunToTick(9);
        Assert.That(In(0x61) & 0x20, Is.Zero);
        Out(0x61, 0x00);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20));
        RunToTick(20);
        Out(0x61, 0x01);
        RunToTick(28);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20));
        RunToTick(29);
        Assert.That(In(0x61) & 0x20, Is.Zero, "a fresh period started at the gate edge");
    }

    [Test]
    public void RefreshBitTogglesWithTime()
    {
        Assert.That(In(0x61) & 0x10, Is.Zero);
        RunToTick(18);
        Assert.That(In(0x61) & 0x10, Is.EqualTo(0x10));
        RunToTick(36);
        Assert.That(In(0x61) & 0x10, Is.Zero);
    }

    [Test]
    public void ReprogrammingChannel0CancelsThePendingTimer()
    {
        Program(0, 0x34, 100);
        Out(0x43, 0x30); // mode 0, waiting for a count: OUT low, no edges
        RunToTick(1000);
        Assert.That(Rises(), Is.EqualTo(new ulong[] { 0 }));
        Assert.That(_events.PendingCount, Is.Zero);
    }
}
