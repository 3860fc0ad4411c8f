using System.Text;
using Emulator.Cli.Guests;
using Emulator.Cli.Suite;
using Emulator.Core.Devices.Apic;
using Emulator.Svm.Run;

namespace Emulator.Tests.Cli.Guests;

/// <summary>
/// builtin:nested-apic: an L2's reads of 0xFEE00000, with and without L1's nested paging, are emulated by L0
/// against L1's local APIC (never served from the page L0 maps for L1's AVIC), and L1 notices when L2 sees
/// anything else.
/// </summary>
public sealed class NestedApicGuestTests
{
    private static Machine Create(ApicvNestedInhibit nested, MemoryStream console, IReadOnlyList<string>? cpu = null)
    {
        var m = new Machine(new MachineOptions
        {
            MemorySize = NestedApicGuest.MemorySize,
            CpuFeatures = cpu ?? NestedApicGuest.CpuFeatures,
            ApicvNested = nested,
            ConsoleOutput = console,
        });
        NestedApicGuest.Install(m.Cpu);
        return m;
    }

    private static ulong Stat(Machine m, string name) => m.Stats().Single(s => s.Name == name).Value;

    private static string[] Lines(MemoryStream console) => Encoding.ASCII.GetString(console.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [TestCase(ApicvNestedInhibit.Vcpu)]
    [TestCase(ApicvNestedInhibit.Vm)]
    public void L2SeesL1sApicWithAndWithoutNestedPagingThroughL0sEmulation(ApicvNestedInhibit nested)
    {
        using var console = new MemoryStream();
        using var m = Create(nested, console);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });

        Assert.That(r.ExitStatus, Is.Zero, r.Message + string.Join("\n", Lines(console)));
        Assert.That(Lines(console), Is.EqualTo(new[]
        {
            NestedApicGuest.Line(npt: true, 0, LocalApic.VersionValue, NestedApicGuest.TprWithNpt, NestedApicGuest.TprWithNpt),
            NestedApicGuest.Line(npt: false, 0, LocalApic.VersionValue, NestedApicGuest.TprWithoutNpt, NestedApicGuest.TprWithoutNpt),
            NestedApicGuest.Done,
        }));
        Assert.That(Stat(m, "svm.exits.l2.vmmcall"), Is.EqualTo(2UL));

        // L1 makes five APIC accesses (SVR, two TPR writes, ID, version), L2 six reads.
        bool avic = nested == ApicvNestedInhibit.Vcpu;
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(avic ? 1UL : 0UL));
        Assert.That(Stat(m, "avic.accelerated") + Stat(m, "avic.trap"), Is.EqualTo(avic ? 5UL : 0UL), "L1's accesses only");
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.EqualTo(avic ? 0UL : 5UL), "L1's accesses to its inhibited APIC page");
        Assert.That(Stat(m, "mmu.pf.emulate"), Is.EqualTo(avic ? 6UL : 11UL), "L2's six reads are emulated either way");
    }

    [Test]
    public void WithoutNestedPagingInCpuidOnlyTheSecondRunHappens()
    {
        using var console = new MemoryStream();
        using var m = Create(ApicvNestedInhibit.Vcpu, console, ["+svm", "-npt", "-x2apic"]);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.ExitStatus, Is.Zero, r.Message);
        Assert.That(Lines(console)[0], Is.EqualTo("nested-apic: with NPT: skipped (no nested paging in CPUID)"));
        Assert.That(Lines(console)[1], Does.StartWith("nested-apic: without NPT: L2 read APIC ID"));
        Assert.That(Stat(m, "mmu.pf.emulate"), Is.EqualTo(3UL));
    }

    [Test]
    public void WithoutSvmItSaysSoAndFails()
    {
        using var console = new MemoryStream();
        using var m = Create(ApicvNestedInhibit.Vm, console, ["-svm"]);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.ExitStatus, Is.EqualTo(3), "isa-debug-exit with 1");
        Assert.That(Lines(console), Is.EqualTo(new[] { "nested-apic: skipped (no SVM in CPUID)" }));
    }

    [Test]
    public void L1NoticesWhenL2SeesAnotherTpr()
    {
        // The host changes the TPR while L2 runs (APICv off, so the register file is what every access reads):
        // L2 reads the new value, and L1, which wrote 0x20, reports the mismatch and fails.
        using var console = new MemoryStream();
        using var m = Create(ApicvNestedInhibit.Vm, console);
        for (int i = 0; !m.Cpu.GuestMode && i < 100_000; i++)
        {
            m.Run(new RunLimits { MaxInstructions = m.TotalInstructions + 1 });
        }

        Assert.That(m.Cpu.GuestMode, Is.True, "L1 reached its VMRUN");
        m.Cpu.Apic!.WriteMmio(ApicReg.Tpr, 4, 0x50);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.ExitStatus, Is.EqualTo(3), r.Message);
        Assert.That(Lines(console), Is.EqualTo(new[]
        {
            NestedApicGuest.Line(npt: true, 0, LocalApic.VersionValue, 0x50, NestedApicGuest.TprWithNpt),
            "nested-apic: with NPT: FAILED (L2 did not see L1's APIC)",
        }));
    }

    [Test]
    public void ItIsABuiltinGuestWithItsMachine()
    {
        var g = BuiltinGuests.Find("nested-apic");
        Assert.That(g, Is.Not.Null);
        Assert.That(g!.Memory, Is.EqualTo(NestedApicGuest.MemorySize));
        Assert.That(g.CpuFeatures, Is.EqualTo(NestedApicGuest.CpuFeatures));
    }
}
