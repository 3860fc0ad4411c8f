using Emulator.Cli.Guests;

namespace Emulator.Tests.Cli.Guests;

/// <summary>The nested workloads: what one pass does, and that the VMRUN/#VMEXIT/nested-#NPF path allocates nothing.</summary>
public class NestedGuestTests
{
    [TestCase("vmmcall", 1UL)]
    [TestCase("npf-shadow", (ulong)NestedGuest.RegionPages)]
    [TestCase("npf-reflect", 1UL)]
    public void APassIsOneVmrunAndItsUnits(string name, ulong units)
    {
        using var w = NestedWorkload.Create(name);
        Assert.That(w.UnitsPerPass, Is.EqualTo(units));
        ulong before = w.Units;
        w.Run(10);
        Assert.That(w.Units - before, Is.EqualTo(10 * units));
    }

    [TestCase("vmmcall")]
    [TestCase("npf-shadow")]
    [TestCase("npf-reflect")]
    public void ThePassesAllocateNothing(string name)
    {
        // A path that allocates per pass shows in every window; a one-off of the runtime (the JIT tiering a method
        // up on this thread while other tests load the cores) shows in one at most, so the best of three counts.
        using var w = NestedWorkload.Create(name);
        w.Run(64);
        long least = long.MaxValue;
        for (int i = 0; i < 3 && least != 0; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            w.Run(256);
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.That(least, Is.Zero);
    }

    [Test]
    public void TheReflectWorkloadMapsThePageL2FaultedOn()
    {
        using var w = NestedWorkload.Create("npf-reflect");
        var svm = ((Emulator.Svm.Run.L0Svm)w.Machine.Cpu.Svm!).Nested;
        w.Run(3);
        Assert.That(svm.Stats.VmrunFailed, Is.Zero);
        ulong gpa = w.Machine.Memory.Read(NestedGuest.Vmcb + Emulator.Svm.Vmcb.VmcbOffset.ExitInfo2, 8);
        Assert.That(gpa & ~0x1FFFFFUL, Is.EqualTo(NestedGuest.Region), "the #NPF is at an L2 address in the region");
        ulong pte = w.Machine.Memory.Read(NestedGuest.NptPt + (((gpa >> 12) & 511) * 8), 8);
        Assert.That(pte & ~0xFFFUL, Is.EqualTo(gpa & ~0xFFFUL), "L1 mapped the faulting page");
    }

    [Test]
    public void AnUnknownWorkloadIsRefused() =>
        Assert.Throws<ArgumentException>(() => NestedWorkload.Create("nope"));
}
