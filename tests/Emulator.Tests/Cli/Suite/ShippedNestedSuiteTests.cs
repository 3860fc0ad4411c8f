using Emulator.Cli.Suite;
using Emulator.Svm.Run;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// suites/nested.yaml as shipped: the L2-access-to-the-APIC-page case under both NESTED inhibit rules, expecting
/// L2's reads emulated and none accelerated, passes as recorded.
/// </summary>
public sealed class ShippedNestedSuiteTests
{
    private static string SuitePath()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "suites", "nested.yaml")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        Assert.That(dir, Is.Not.Null, "suites/nested.yaml above the test binaries");
        return Path.Combine(dir!, "suites", "nested.yaml");
    }

    [Test]
    public void BothNestedRulesRunTheGuestWithTheCountersThatShowThePath()
    {
        string path = SuitePath();
        var cases = YamlSuite.Parse(File.ReadAllText(path), path);
        Assert.That(cases.Select(c => c.Builtin?.Name).Distinct(), Is.EqualTo(new[] { "nested-apic" }));
        Assert.That(cases.Select(c => c.ApicvNested), Is.SupersetOf(new[] { ApicvNestedInhibit.Vcpu, ApicvNestedInhibit.Vm }));
        foreach (var c in cases)
        {
            var names = c.Expect!.Counters.Select(p => p.Name).ToList();
            Assert.That(names, Does.Contain("mmu.pf.emulate").And.Contain("avic.accelerated").And.Contain("svm.exits.l2.vmmcall"), c.Name);
            Assert.That(c.Expect.Cycles, Is.Not.Null, c.Name);
        }
    }

    [Test]
    public void ItPasses()
    {
        var r = Emu("suite", "run", SuitePath(), "--jobs", "2");
        Assert.That(r.Status, Is.Zero, r.Out + r.Err);
        Assert.That(r.Out, Does.Contain("3 cases: 3 PASS"));
    }
}
