using Emulator.Cli;
using Emulator.Cli.Guests;
using Emulator.Cli.Suite;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

/// <summary><c>emu boot --apicv-nested vm|vcpu</c>, the suite key <c>apicv-nested</c>, and the demo's machine (issue 10, item 8).</summary>
public class ApicvNestedOptionTests
{
    [TestCase(null, ApicvNestedInhibit.Vm)]
    [TestCase("vm", ApicvNestedInhibit.Vm)]
    [TestCase("VCPU", ApicvNestedInhibit.Vcpu)]
    public void TheOptionReachesTheMachine(string? text, ApicvNestedInhibit expected)
    {
        Assert.That(BootCommand.TryParseApicvNested(text, out var nested), Is.True);
        Assert.That(nested, Is.EqualTo(expected));
        using var o = new StringWriter();
        using var e = new StringWriter();
        Assert.That(BootCommand.TryCreate(new CliConsole(Stream.Null, o, e), 16 << 20, 1, [], false, false, out var machine, out _, nested: nested), Is.True, e.ToString());
        using (machine)
        {
            // The default CPU reports SVM: 5.15's rule inhibits APICv at creation, 5.19's does not.
            Assert.That(machine.Apicv.IsSet(ApicvInhibitReason.Nested), Is.EqualTo(expected == ApicvNestedInhibit.Vm));
        }
    }

    [TestCase("both")]
    [TestCase("")]
    public void AnInvalidValueIsOneUsageLineAndStatusTwo(string text)
    {
        var r = Emu("boot", "--apicv-nested", text);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.StartWith("emu: --apicv-nested").And.Contain("expected vm or vcpu"));
        Assert.That(r.Guest, Is.Empty);
    }

    [Test]
    public void TheDemoSaysOnlyWhatItChoseItself()
    {
        var both = Emu("boot", "--cpu", "-x2apic", "--apicv-nested", "vm");
        Assert.That(both.Status, Is.EqualTo(DemoGuest.SuccessStatus), both.Err);
        Assert.That(both.Err, Is.Empty, "the user chose both");

        var cpuOnly = Emu("boot", "--cpu", "-x2apic");
        Assert.That(cpuOnly.ErrLines, Is.EqualTo(new[] { "emu: demo machine: --apicv-nested vcpu (Linux 5.19's per-vCPU NESTED inhibit)" }));

        var nestedOnly = Emu("boot", "--apicv-nested", "vcpu");
        Assert.That(nestedOnly.ErrLines, Is.EqualTo(new[] { "emu: demo machine: --cpu -x2apic" }));
    }

    [Test]
    public void AnImageBootGetsNoDemoDefaults()
    {
        using var f = new TempFile([0xF4]); // hlt
        var r = Emu("boot", f.Path, "--format", "flat", "--stats", "--max-instructions", "10");
        Assert.That(r.Err, Does.Not.Contain("demo machine"));
        Assert.That(r.ErrLines, Has.Some.EqualTo("apicv.inhibit.nested 1"), "5.15's rule with the default CPU");
    }

    [Test]
    public void TheSuiteKeyIsParsedAndCheckedWithItsPlace()
    {
        var c = YamlSuite.Parse("name: s\ncases:\n  - {name: a, guest: builtin:demo, apicv-nested: vcpu, expect: {exit: 0}}\n", "t.yaml").Single();
        Assert.That(c.ApicvNested, Is.EqualTo(ApicvNestedInhibit.Vcpu));
        var d = YamlSuite.Parse("name: s\ncases:\n  - {name: a, guest: builtin:demo, expect: {exit: 0}}\n", "t.yaml").Single();
        Assert.That(d.ApicvNested, Is.EqualTo(ApicvNestedInhibit.Vm));
        var e = Assert.Throws<SuiteFileException>(() => YamlSuite.Parse("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    apicv-nested: sometimes\n    expect: {exit: 0}\n", "t.yaml"));
        Assert.That(e!.Message, Is.EqualTo("t.yaml:5:19: apicv-nested 'sometimes': expected vm or vcpu"));
    }
}
