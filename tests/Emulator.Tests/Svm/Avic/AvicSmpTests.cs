using Emulator.Mmu.Fault;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using Emulator.Tests.Core.Devices.Apic;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;

namespace Emulator.Tests.Svm.Avic;

/// <summary>
/// IPIs between vCPUs under AVIC, with SmpIpiTests' ring guest (a token passed round the vCPUs as fixed IPIs; each
/// handler checks the token names it and counts, so a lost, duplicated or misdirected IPI shows). A target that is
/// running gets the doorbell; one halted in HLT is not running, so the sender's write ends in INCOMPLETE_IPI and L0
/// wakes it. Inhibiting and uninhibiting APICv thousands of times meanwhile, under either toggle design, loses and
/// duplicates nothing.
/// </summary>
public sealed class AvicSmpTests
{
    private const int Hops = 2_000, Errors = 0x18, HopCount = 0x08, Counters = 0x100;

    private static readonly string[] XapicNoSvm = ["-x2apic", "-svm"];

    private static void AssertRingIntact(Machine m, int cpus, int hops = Hops)
    {
        Assert.That(m.Memory.Read(Data + HopCount, 8), Is.EqualTo((ulong)hops));
        Assert.That(m.Memory.Read(Data + Errors, 8), Is.Zero, "no duplicate or misdirected IPI");
        for (int i = 0; i < cpus; i++)
        {
            Assert.That(m.Memory.Read(Data + Counters + ((ulong)i * 8), 8), Is.EqualTo((ulong)(hops / cpus)), $"vCPU {i}: no IPI lost");
        }
    }

    [Test]
    public void ARingOfTwoVcpusUsesDoorbellsForRunningTargetsAndIncompleteIpisForHaltedOnes()
    {
        var image = SmpIpiTests.RingGuest(2, x2: false, Hops, out ulong apEntry);
        using var m = Boot(image, 2, Stream.Null, apEntry, XapicNoSvm);
        var r = m.Run(new RunLimits { MaxCycles = 20_000_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        AssertRingIntact(m, 2);
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "avic.ipi"), Is.GreaterThanOrEqualTo((ulong)Hops), "the ring's IPIs went through the unit");
        Assert.That(Stat(m, "avic.incomplete_ipi"), Is.GreaterThan(0UL), "halted targets were woken by L0");
        Assert.That(Stat(m, "avic.doorbell") + Stat(m, "avic.incomplete_ipi"), Is.GreaterThanOrEqualTo((ulong)Hops),
            "every ring IPI reached a running target's doorbell or L0's wake-up");
    }

    [TestCase(ApicvToggle.Zap)]
    [TestCase(ApicvToggle.Memslot)]
    public void TenThousandInhibitTogglesWhileIpisFlyLoseAndDuplicateNothing(ApicvToggle toggle)
    {
        // Long enough that the ring is still going when the last toggle is made.
        const int hops = 20_000;
        var image = SmpIpiTests.RingGuest(2, x2: false, hops, out ulong apEntry);
        using var m = Boot(image, 2, Stream.Null, apEntry, XapicNoSvm, toggle);
        const int toggles = 10_000;
        const ulong step = 2_000;
        RunResult r = m.Run(new RunLimits { MaxCycles = step });
        int done = 0;
        for (; done < toggles && r.Reason == StopReason.CycleLimit; done++)
        {
            m.Apicv.SetInhibit(ApicvInhibitReason.IrqWindow, done % 2 == 0);
            r = m.Run(new RunLimits { MaxCycles = m.Cpu.Cycles + step });
        }

        m.Apicv.SetInhibit(ApicvInhibitReason.IrqWindow, false);
        while (r.Reason == StopReason.CycleLimit)
        {
            r = m.Run(new RunLimits { MaxCycles = m.Cpu.Cycles + 10_000_000 });
        }

        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(done, Is.EqualTo(toggles), "the ring was still running when the toggles ended");
        AssertRingIntact(m, 2, hops);
        Assert.That(Stat(m, "apicv.transitions"), Is.GreaterThanOrEqualTo((ulong)toggles));
        Assert.That(Stat(m, "avic.ipi"), Is.GreaterThan(0UL));
        // While inhibited, accesses were emulated: by the APIC-access slot's emulate rule (zap), or as MMIO once the
        // slot was deleted, through cached MMIO SPTEs (memslot).
        Assert.That(Stat(m, toggle == ApicvToggle.Zap ? "mmu.apic_emulations" : "mmu.mmio_spte.created"), Is.GreaterThan(0UL));
    }
}
