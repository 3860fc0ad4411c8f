using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>The APIC timer on the cycle clock: one-shot, periodic, TSC-deadline, divide configuration, masking.</summary>
public sealed class ApicTimerTests
{
    private ApicRig _r = null!;

    [SetUp]
    public void SetUp()
    {
        _r = new ApicRig(1);
        _r.Enable(0);
    }

    [TearDown]
    public void TearDown() => _r.Dispose();

    [TestCase(0x0u, 2u)]
    [TestCase(0x1u, 4u)]
    [TestCase(0x2u, 8u)]
    [TestCase(0x3u, 16u)]
    [TestCase(0x8u, 32u)]
    [TestCase(0x9u, 64u)]
    [TestCase(0xAu, 128u)]
    [TestCase(0xBu, 1u)]
    [TestCase(0xF4u, 2u, TestName = "ReservedBitsIgnored")]
    public void DivideConfiguration(uint config, uint divide)
    {
        _r.Write(0, ApicReg.TimerDivide, config);
        Assert.That(_r[0].TimerDivide, Is.EqualTo(divide));
        Assert.That(_r.Read(0, ApicReg.TimerDivide), Is.EqualTo(config & 0xB));
    }

    [Test]
    public void OneShotCountsDownAndFiresOnce()
    {
        _r.Write(0, ApicReg.TimerDivide, 0x1); // ÷4
        _r.Write(0, ApicReg.LvtTimer, 0x40);
        _r.Write(0, ApicReg.TimerInitial, 1000);
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(1000u));
        _r.Advance(400);
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(900u));
        _r.Advance(3599);
        Assert.That(_r.Irr(0, 0x40), Is.False, "one cycle before initial × divide");
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(0u), "less than one count left");
        _r.Advance(1);
        Assert.That(_r.Irr(0, 0x40), Is.True);
        Assert.That(_r[0].TimerFires, Is.EqualTo(1UL));
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.TimerInitial), Is.EqualTo(1000u));
        _r.Advance(100_000);
        Assert.That(_r[0].TimerFires, Is.EqualTo(1UL));
    }

    [Test]
    public void PeriodicRearmsFromTheDeadline()
    {
        _r.Write(0, ApicReg.TimerDivide, 0xB); // ÷1
        _r.Write(0, ApicReg.LvtTimer, 0x2_0041);
        ulong start = _r.Cpus[0].Cycles;
        _r.Write(0, ApicReg.TimerInitial, 5000);
        for (int i = 1; i <= 4; i++)
        {
            Assert.That(_r[0].TimerDeadline, Is.EqualTo(start + (ulong)(i * 5000)));
            _r.Advance(5000 + (ulong)(i * 7)); // late event checks do not shift the next period
            Assert.That(_r[0].TimerFires, Is.EqualTo((ulong)i));
        }

        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo((uint)(start + 25_000 - _r.Cpus[0].Cycles)));
        _r.Write(0, ApicReg.TimerInitial, 0);
        Assert.That(_r[0].TimerDeadline, Is.EqualTo(ulong.MaxValue), "initial count 0 stops the timer");
    }

    [Test]
    public void APeriodicTimerIsRaisedToTheMinimumPeriodButAOneShotIsNot()
    {
        _r[0].MinPeriodCycles = 20_000;
        _r.Write(0, ApicReg.TimerDivide, 0xB); // ÷1
        _r.Write(0, ApicReg.LvtTimer, 0x2_0041);
        ulong start = _r.Cpus[0].Cycles;
        _r.Write(0, ApicReg.TimerInitial, 1000);
        Assert.That(_r[0].TimerDeadline, Is.EqualTo(start + 20_000));
        _r.Advance(20_000);
        Assert.That(_r[0].TimerDeadline, Is.EqualTo(start + 40_000), "re-armed with the raised period");
        Assert.That(_r.Read(0, ApicReg.TimerInitial), Is.EqualTo(1000u), "the register keeps what was written");

        _r.Write(0, ApicReg.LvtTimer, 0x41); // one-shot
        start = _r.Cpus[0].Cycles;
        _r.Write(0, ApicReg.TimerInitial, 1000);
        Assert.That(_r[0].TimerDeadline, Is.EqualTo(start + 1000));
    }

    [Test]
    public void MaskedTimerCountsWithoutInterrupts()
    {
        _r.Write(0, ApicReg.TimerDivide, 0xB);
        _r.Write(0, ApicReg.LvtTimer, 0x1_0042);
        _r.Write(0, ApicReg.TimerInitial, 100);
        _r.Advance(50);
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(50u));
        _r.Advance(50);
        Assert.That(_r[0].TimerFires, Is.EqualTo(1UL));
        Assert.That(_r.Irr(0, 0x42), Is.False);
    }

    [Test]
    public void DivideChangeRescalesTheRemainingCount()
    {
        _r.Write(0, ApicReg.TimerDivide, 0xB);
        _r.Write(0, ApicReg.LvtTimer, 0x43);
        _r.Write(0, ApicReg.TimerInitial, 1000);
        _r.Advance(600);
        _r.Write(0, ApicReg.TimerDivide, 0x0); // ÷2: 400 counts left take 800 cycles
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(400u));
        _r.Advance(799);
        Assert.That(_r.Irr(0, 0x43), Is.False);
        _r.Advance(1);
        Assert.That(_r.Irr(0, 0x43), Is.True);
    }

    [Test]
    public void TscDeadlineMode()
    {
        var cpu = _r.Cpus[0];
        cpu.Cycles = 10_000;
        Assert.That(cpu.WriteMsr(Msr.Tsc, 1_000_000), Is.True); // TSC ahead of the cycle counter
        Assert.That(cpu.WriteMsr(Msr.TscDeadline, 1_005_000), Is.True, "ignored outside TSC-deadline mode");
        Assert.That(cpu.ReadMsr(Msr.TscDeadline, out ulong v) && v == 0, Is.True);

        _r.Write(0, ApicReg.LvtTimer, 0x4_0044);
        _r.Write(0, ApicReg.TimerInitial, 1234);
        Assert.That(_r.Read(0, ApicReg.TimerInitial), Is.EqualTo(0u), "initial count ignored in TSC-deadline mode");
        Assert.That(cpu.WriteMsr(Msr.TscDeadline, 1_005_000), Is.True);
        Assert.That(cpu.ReadMsr(Msr.TscDeadline, out v) && v == 1_005_000, Is.True);
        Assert.That(_r[0].TimerDeadline, Is.EqualTo(15_000UL), "cycle at which the TSC reaches the deadline");
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(0u));
        _r.Advance(4999);
        Assert.That(_r.Irr(0, 0x44), Is.False);
        _r.Advance(1);
        Assert.That(_r.Irr(0, 0x44), Is.True);
        Assert.That(cpu.ReadMsr(Msr.TscDeadline, out v) && v == 0, Is.True, "disarmed and cleared after firing");

        Assert.That(cpu.WriteMsr(Msr.TscDeadline, 5), Is.True, "a deadline in the past fires at once");
        _r.Advance(0);
        Assert.That(_r[0].TimerFires, Is.EqualTo(2UL));

        Assert.That(cpu.WriteMsr(Msr.TscDeadline, 2_000_000), Is.True);
        _r.Write(0, ApicReg.LvtTimer, 0x44); // back to one-shot: the deadline is dropped
        Assert.That(_r[0].TimerDeadline, Is.EqualTo(ulong.MaxValue));
    }

    [Test]
    public void TscDeadlineMsrFaultsWithoutTheFeature()
    {
        var cpu = _r.Cpus[0];
        Assert.That(cpu.Features.TryApply("-tsc-deadline", out _), Is.True);
        Assert.That(cpu.ReadMsr(Msr.TscDeadline, out _), Is.False);
        Assert.That(cpu.WriteMsr(Msr.TscDeadline, 1), Is.False);
        _r.Write(0, ApicReg.LvtTimer, 0x4_0044);
        Assert.That(_r.Read(0, ApicReg.LvtTimer), Is.EqualTo(0x44u), "mode bit 18 is reserved without the feature");
    }
}
