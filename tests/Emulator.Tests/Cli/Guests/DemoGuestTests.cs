using System.Text;
using Emulator.Cli.Guests;
using Emulator.Core.Loaders;
using Emulator.Svm.Run;

namespace Emulator.Tests.Cli.Guests;

/// <summary>
/// The built-in demo (issue 10, item 8): on its machine (no x2APIC, 5.19's per-vCPU NESTED) L1's APIC traffic is served
/// by AVIC, L1 runs an L2 under its own nested paging, and the PIT's ExtINT behind IF=0 makes one IRQWIN
/// inhibit/uninhibit cycle; on other machines the same program prints the same lines by the emulated paths.
/// </summary>
public class DemoGuestTests
{
    private sealed record DemoRun(int Status, string Console, Dictionary<string, ulong> Stats, Machine Machine);

    private static DemoRun Run(IReadOnlyList<string> cpu, ApicvNestedInhibit nested, ulong memory = 64 << 20)
    {
        using var console = new MemoryStream();
        var m = new Machine(new MachineOptions { MemorySize = memory, CpuFeatures = cpu, ApicvNested = nested, ConsoleOutput = console });
        DemoGuest.Install(m.Cpu);
        var r = m.Run(new RunLimits { MaxCycles = 200_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.Shutdown), r.Message);
        var stats = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var (name, value) in m.Stats())
        {
            stats[name] = value;
        }

        return new DemoRun(r.ExitStatus, Encoding.ASCII.GetString(console.ToArray()), stats, m);
    }

    private static string[] ExpectedLines(string l2Line) =>
    [
        DemoGuest.Banner,
        DemoGuest.ChecksumLabel + DemoGuest.ExpectedChecksum().ToString("x16"),
        DemoGuest.VendorLabel + "AuthenticAMD",
        DemoGuest.ApicLine,
        l2Line,
        DemoGuest.Irq0Line,
        DemoGuest.Farewell,
        "",
    ];

    private static readonly string L2Line = DemoGuest.L2LinePrefix + DemoGuest.ExpectedL2Result().ToString("x16") + DemoGuest.L2LineSuffix;

    [Test]
    public void OnTheDemoMachineEachPathShowsInTheCounters()
    {
        var run = Run(DemoGuest.MachineFeatures, DemoGuest.MachineNested);
        using var m = run.Machine;
        var s = run.Stats;
        Assert.That(run.Status, Is.EqualTo(DemoGuest.SuccessStatus));
        Assert.That(run.Console.Split('\n'), Is.EqualTo(ExpectedLines(L2Line)));

        // AVIC served L1's APIC traffic: TPR reads and writes, two EOIs, the self-IPI; SVR, divide, LVT timer, initial
        // count and LINT0 were trapped.
        Assert.That(s["apicv.active"], Is.EqualTo(1UL));
        Assert.That(s["apicv.inhibit.nested"] + s["apicv.inhibit.x2apic"], Is.Zero);
        Assert.That(s["avic.accelerated.write"], Is.EqualTo(4UL), "TPR 0x20, two EOIs, TPR 0");
        Assert.That(s["avic.accelerated.read"], Is.GreaterThan((ulong)DemoGuest.ReadsAfter), "TPR reads before the inhibit and after it");
        Assert.That(s["avic.trap"], Is.EqualTo(5UL));
        Assert.That(s["avic.ipi"], Is.EqualTo(1UL));
        Assert.That(s["apic.timer_fires"], Is.EqualTo(1UL));

        // L1 ran L2 under its nested tables: one VMRUN, the VMMCALL reflected, L2's faults in L0's shadow NPT.
        Assert.That(s["svm.vmrun"], Is.EqualTo(1UL));
        Assert.That(s["svm.vmrun_failed"], Is.Zero);
        Assert.That(s["svm.exits.l2.vmmcall"], Is.EqualTo(1UL));
        Assert.That(s["mmu.shadow.faults"], Is.GreaterThan(0UL));

        // One IRQWIN cycle: inhibited while the ExtINT waited, emulated reads meanwhile, active again.
        Assert.That(s["apicv.inhibit.irqwin"], Is.EqualTo(1UL));
        Assert.That(s["apicv.transitions"], Is.EqualTo(2UL));
        Assert.That(s["mmu.apic_emulations"], Is.GreaterThan(0UL));
        Assert.That(s["avic.accelerated.read"] + s["mmu.apic_emulations"], Is.EqualTo((ulong)(1 + DemoGuest.InhibitReads + DemoGuest.ReadsAfter)),
            "every TPR read, one way or the other");
        Assert.That(s["cpu.unimplemented_codes"] + s["io.unhandled"], Is.Zero);
    }

    [Test]
    public void WithLinux515sNestedRuleTheSameLinesComeByL0sEmulation()
    {
        var run = Run(DemoGuest.MachineFeatures, ApicvNestedInhibit.Vm);
        using var m = run.Machine;
        Assert.That(run.Console.Split('\n'), Is.EqualTo(ExpectedLines(L2Line)));
        Assert.That(run.Stats["apicv.active"], Is.Zero);
        Assert.That(run.Stats["apicv.inhibit.nested"], Is.EqualTo(1UL));
        Assert.That(run.Stats["avic.accelerated"], Is.Zero);
        Assert.That(run.Stats["apicv.transitions"], Is.Zero);
        Assert.That(run.Stats["svm.vmrun"], Is.EqualTo(1UL));
    }

    [Test]
    public void WithoutSvmTheL2PartIsSkippedAndTheRestRuns()
    {
        var run = Run(["-svm", "-x2apic"], ApicvNestedInhibit.Vm);
        using var m = run.Machine;
        Assert.That(run.Console.Split('\n'), Is.EqualTo(ExpectedLines("l2: skipped (no SVM with nested paging in CPUID)")));
        Assert.That(run.Stats["apicv.transitions"], Is.EqualTo(2UL), "APICv is active without SVM in CPUID: the IRQWIN cycle still happens");
    }

    [Test]
    public void TheSummaryNamesEachCounterWithItsValue()
    {
        var run = Run(DemoGuest.MachineFeatures, DemoGuest.MachineNested);
        using var m = run.Machine;
        using var w = new StringWriter();
        DemoGuest.WriteSummary(w, m);
        string[] lines = w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Is.EqualTo(DemoGuest.SummaryTitle));
        Assert.That(lines, Has.Length.EqualTo(DemoGuest.SummaryCounters.Count + 1));
        for (int i = 0; i < DemoGuest.SummaryCounters.Count; i++)
        {
            var (counter, words) = DemoGuest.SummaryCounters[i];
            string[] parts = lines[i + 1].Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            Assert.That(parts[0], Is.EqualTo(counter));
            Assert.That(ulong.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(run.Stats[counter]), counter);
            Assert.That(parts[2].Trim(), Is.EqualTo(words));
        }
    }

    [Test]
    public void TooLittleRamIsALoaderError()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 2 << 20 });
        Assert.That(() => DemoGuest.Install(m.Cpu), Throws.TypeOf<LoaderException>().With.Message.Contains("at least 4 MiB"));
    }
}
