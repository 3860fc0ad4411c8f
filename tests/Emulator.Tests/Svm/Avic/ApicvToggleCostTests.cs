using Emulator.Core.Cpu;
using Emulator.Mmu.Fault;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using Emulator.Tests.Core.Devices.Apic;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;

namespace Emulator.Tests.Svm.Avic;

/// <summary>
/// What one APICv flip costs in modeled cycles under each toggle design (ApicvState.ChargeToggle): the requester pays
/// the kicks it sends and L0's work, every kicked vCPU pays its exit, and a halted vCPU is not kicked.
/// </summary>
public sealed class ApicvToggleCostTests
{
    private static readonly string[] XapicNoSvm = ["-x2apic", "-svm"];

    /// <summary>Two vCPUs passing IPIs (so both use the APIC page under AVIC), stopped mid-run.</summary>
    private static Machine RingMidRun(ApicvToggle toggle, Emulator.Core.Timing.CostTable? costs = null)
    {
        var image = SmpIpiTests.RingGuest(2, x2: false, 1_000_000, out ulong apEntry);
        var m = Boot(image, 2, Stream.Null, apEntry, XapicNoSvm, toggle, costs);
        var r = m.Run(new RunLimits { MaxCycles = 3_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.CycleLimit), r.Message);
        Assert.That(m.Apicv.Active, Is.True);
        Assert.That(m.Memory.Mmu!.Tdp.Lookup(MmuContext.ApicAccessGfn, out _), Is.Not.Zero, "the APIC-access SPTE is in place");
        return m;
    }

    /// <summary>
    /// Flips APICv on behalf of vCPU 0 with vCPU 1 in guest mode (<paramref name="otherRunning"/>) or halted, and
    /// returns the cycles each vCPU was charged and the kicks sent.
    /// </summary>
    private static (ulong Requester, ulong Other, ulong Kicks) Flip(Machine m, bool inhibit, bool otherRunning = true)
    {
        Cpu me = m.Cpus[0], other = m.Cpus[1];
        other.Halted = !otherRunning;
        ulong mine = me.Cycles, theirs = other.Cycles, kicks = Stat(m, "apicv.kicks"), spent = Stat(m, "apicv.toggle_cycles");
        m.Apicv.SetInhibit(ApicvInhibitReason.IrqWindow, inhibit, me);
        Assert.That(Stat(m, "apicv.toggle_cycles") - spent, Is.EqualTo(me.Cycles - mine + other.Cycles - theirs), "apicv.toggle_cycles sums them");
        return (me.Cycles - mine, other.Cycles - theirs, Stat(m, "apicv.kicks") - kicks);
    }

    [Test]
    public void ZapDesignInhibitPaysTheUpdateKickTheLockOneSpteAndARemoteFlush()
    {
        using var m = RingMidRun(ApicvToggle.Zap);
        var c = m.Cpu.Costs;
        ulong zappedBefore = Stat(m, "mmu.zap.sptes");
        var (mine, theirs, kicks) = Flip(m, inhibit: true);
        Assert.That(Stat(m, "mmu.zap.sptes") - zappedBefore, Is.EqualTo(1UL), "only the APIC-access SPTE");
        Assert.That(kicks, Is.EqualTo(2UL), "the update request, then the remote TLB flush");
        Assert.That(mine, Is.EqualTo((2 * c.VcpuKick) + c.MmuLockWrite + c.SpteZap));
        Assert.That(theirs, Is.EqualTo(2 * c.VmexitRoundTrip));

        // Back to active: the update request only.
        (mine, theirs, kicks) = Flip(m, inhibit: false);
        Assert.That(kicks, Is.EqualTo(1UL));
        Assert.That(mine, Is.EqualTo(c.VcpuKick));
        Assert.That(theirs, Is.EqualTo(c.VmexitRoundTrip));
    }

    [Test]
    public void MemslotDesignInhibitPaysTwoInstallsTwoGracePeriodsAndEveryVcpusRootReload()
    {
        using var m = RingMidRun(ApicvToggle.Memslot);
        var c = m.Cpu.Costs;
        ulong zappedBefore = Stat(m, "mmu.zap.sptes");
        var (mine, theirs, kicks) = Flip(m, inhibit: true);
        ulong zapped = Stat(m, "mmu.zap.sptes") - zappedBefore;
        Assert.That(zapped, Is.GreaterThan(1UL), "deleting the slot zapped every root, not one SPTE");
        Assert.That(Stat(m, "mmu.zap.all"), Is.EqualTo(1UL));
        Assert.That(kicks, Is.EqualTo(2UL), "the update request, then the MMU reload");
        Assert.That(mine, Is.EqualTo((2 * c.VcpuKick) + (2 * (c.MemslotInstall + c.SrcuGracePeriod)) + c.MmuLockWrite + (zapped * c.SpteZap) + c.MmuRootReload));
        Assert.That(theirs, Is.EqualTo((2 * c.VmexitRoundTrip) + c.MmuRootReload));

        // Back to active: the slot is created again (one install, one grace period) after the update request.
        (mine, theirs, kicks) = Flip(m, inhibit: false);
        Assert.That(kicks, Is.EqualTo(1UL));
        Assert.That(mine, Is.EqualTo(c.VcpuKick + c.MemslotInstall + c.SrcuGracePeriod));
        Assert.That(theirs, Is.EqualTo(c.VmexitRoundTrip));
    }

    [TestCase(ApicvToggle.Zap)]
    [TestCase(ApicvToggle.Memslot)]
    public void AHaltedVcpuIsNotKicked(ApicvToggle toggle)
    {
        using var m = RingMidRun(toggle);
        var (_, theirs, kicks) = Flip(m, inhibit: true, otherRunning: false);
        // KVM_REQUEST_NO_WAKEUP: no exit; under the memslot design it still reloads its root when it next runs.
        Assert.That(theirs, Is.EqualTo(toggle == ApicvToggle.Memslot ? m.Cpu.Costs.MmuRootReload : 0UL));
        Assert.That(kicks, Is.Zero);
    }

    [Test]
    public void MakingTheVmCostsNothing()
    {
        // DISABLE is set before the APIC-access page exists and cleared once AVIC is known to be on: a flip, but during
        // creation, with no vCPU to kick and nothing to pay.
        var image = SmpIpiTests.RingGuest(2, x2: false, 10, out ulong apEntry);
        using var m = Boot(image, 2, Stream.Null, apEntry, XapicNoSvm);
        Assert.That(m.Apicv.Active, Is.True);
        Assert.That(m.Cpus[0].Cycles + m.Cpus[1].Cycles, Is.Zero);
        Assert.That(Stat(m, "apicv.kicks") + Stat(m, "apicv.toggle_cycles") + Stat(m, "apicv.transitions"), Is.Zero);
    }

    [Test]
    public void TheCostsComeFromTheMachinesCostTable()
    {
        Assert.That(Emulator.Core.Timing.CostTable.TryParse("vcpu_kick 7\nmmu_lock_write 11\nspte_zap 13\nvmexit_round_trip 17\n", out var table, out string? error), Is.True, error);
        using var m = RingMidRun(ApicvToggle.Zap, table);
        var (mine, theirs, _) = Flip(m, inhibit: true);
        Assert.That(mine, Is.EqualTo((2 * 7UL) + 11 + 13));
        Assert.That(theirs, Is.EqualTo(2 * 17UL));
    }
}
