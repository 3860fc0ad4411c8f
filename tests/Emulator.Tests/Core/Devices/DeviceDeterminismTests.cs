using Emulator.Svm.Run;
using Emulator.Tests.Core.Devices.Acpi;
using Emulator.Tests.Core.Devices.Apic;
using Emulator.Tests.Core.Devices.Legacy;

namespace Emulator.Tests.Core.Devices;

/// <summary>
/// Every device guest of issue 4 run twice: the console output, the exit status, every vCPU's cycle and
/// instruction counts and every <c>--stats</c> counter (<see cref="Machine.Stats"/>) must be identical, since all
/// device time comes from the cycle clock.
/// </summary>
public sealed class DeviceDeterminismTests
{
    /// <summary>What one run leaves behind.</summary>
    private sealed record Outcome(string Console, int? ExitStatus, ulong[] Cycles, ulong[] Instructions, (string Name, ulong Value)[] Stats);

    private static Machine RunImage(byte[] image, int cpus, Stream console, ulong apEntry = 0, ulong maxCycles = 20_000_000_000)
    {
        var m = ApicGuest.Boot(image, cpus, console, apEntry);
        var r = m.Run(new RunLimits { MaxCycles = maxCycles });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        return m;
    }

    private static Machine RunAcpi(Action<Iced.Intel.Assembler> body, int cpus, Stream console, ulong startCycles = 0)
    {
        var m = AcpiGuestTests.NewMachine(cpus, console);
        AcpiGuestTests.Run(m, body, startCycles);
        return m;
    }

    private static readonly (string Name, Func<Stream, Machine> Run)[] Guests =
    [
        ("ApicTimerOneShot", c => RunImage(ApicGuestTests.OneShotGuest(), 1, c)),
        ("ApicTimerPeriodic", c => RunImage(ApicGuestTests.PeriodicGuest(), 1, c)),
        ("ApicTimerTscDeadline", c => RunImage(ApicGuestTests.TscDeadlineGuest(), 1, c)),
        ("ApicBaseTransitions", c => RunImage(ApicGuestTests.ApicBaseTransitionsGuest(), 1, c)),
        ("SmpIpiRing4Xapic", c => RunImage(SmpIpiTests.RingGuest(4, false, 2_000, out ulong ap), 4, c, ap)),
        ("SmpIpiRing2X2Apic", c => RunImage(SmpIpiTests.RingGuest(2, true, 2_000, out ulong ap), 2, c, ap)),
        ("SmpHaltedApWake", c => RunImage(SmpWakeTests.Guest(out ulong ap), 2, c, ap)),
        ("IoApicLevelAndEdge", c => RunImage(IoApicGuestTests.Guest(), 1, c)),
        ("PitMode2ThroughPic", c => LegacyGuestTests.RunPitGuest(c)),
        ("PitChannel2Gate", c => RunImage(PicPitGuestTests.Channel2Guest(), 1, c)),
        ("PicSpecialMask", c => RunImage(PicPitGuestTests.SpecialMaskGuest(true), 1, c)),
        ("PicExtIntAndSpurious", c => RunImage(PicPitGuestTests.ExtIntGuest(), 1, c)),
        ("RtcClock", c => LegacyGuestTests.RunRtcClockGuest(c)),
        ("RtcPeriodic", c => LegacyGuestTests.RunRtcPeriodicGuest(c)),
        ("AcpiTablesFourVcpus", c => RunAcpi(AcpiGuestTests.AcpiWalker, 4, c)),
        ("PmTimer", c => RunAcpi(AcpiGuestTests.PmTimerLoop, 1, c, AcpiGuestTests.PmTimerLoopStart)),
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        Guests.Select(g => new TestCaseData(g.Name).SetName($"TwoRunsAreIdentical({g.Name})"));

    private static Outcome RunOnce(string name)
    {
        var guest = Guests.Single(g => g.Name == name);
        using var console = new MemoryStream();
        using var m = guest.Run(console);
        return new Outcome(
            ApicGuest.Text(console),
            m.ExitStatus,
            m.Cpus.Select(c => c.Cycles).ToArray(),
            m.Cpus.Select(c => c.Instructions).ToArray(),
            m.Stats().ToArray());
    }

    [TestCaseSource(nameof(Cases))]
    public void TwoRunsAreIdentical(string name)
    {
        var first = RunOnce(name);
        var second = RunOnce(name);
        Assert.Multiple(() =>
        {
            Assert.That(first.Instructions.Sum(i => (decimal)i), Is.GreaterThan(0m), "the guest ran");
            Assert.That(second.Console, Is.EqualTo(first.Console), "console output");
            Assert.That(second.ExitStatus, Is.EqualTo(first.ExitStatus), "exit status");
            Assert.That(second.Cycles, Is.EqualTo(first.Cycles), "vCPU cycle counts");
            Assert.That(second.Instructions, Is.EqualTo(first.Instructions), "vCPU instruction counts");
            Assert.That(second.Stats, Is.EqualTo(first.Stats), "--stats counters");
        });
    }
}
