using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// suites/kvm-unit-tests-avic.yaml as shipped: every AVIC case has a <c>-noavic</c> twin that boots the same image
/// the same way with <c>-avic</c> added and expects the same kvm-unit-tests result, so the suite really compares
/// the two; and without KVM_UNIT_TESTS_DIR every case is a skip that names the variable.
/// </summary>
public sealed class ShippedAvicSuiteTests
{
    private static List<SuiteCase> Cases(Func<string, string?> environment)
    {
        string? dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "suites", "kvm-unit-tests-avic.yaml")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        Assert.That(dir, Is.Not.Null, "suites/kvm-unit-tests-avic.yaml above the test binaries");
        string path = Path.Combine(dir!, "suites", "kvm-unit-tests-avic.yaml");
        return YamlSuite.Parse(File.ReadAllText(path), path, environment);
    }

    [Test]
    public void EachAvicCaseHasATwinWithoutAvicThatExpectsTheSameResult()
    {
        var cases = Cases(_ => "/kut");
        var byName = cases.ToDictionary(c => c.Name);
        var avic = cases.Where(c => !c.Name.EndsWith("-noavic", StringComparison.Ordinal)).ToList();
        Assert.That(avic, Has.Count.EqualTo(17), "xapic, ioapic, smptest, smptest3, eventinj and twelve vmexit cases");
        Assert.That(cases, Has.Count.EqualTo(2 * avic.Count), "no -noavic case without its AVIC case");
        foreach (var a in avic)
        {
            Assert.That(byName.TryGetValue(a.Name + "-noavic", out var n), Is.True, a.Name);
            Assert.That((n!.ImagePath, n.Cpus, n.Memory, n.Append, n.Timeout), Is.EqualTo((a.ImagePath, a.Cpus, a.Memory, a.Append, a.Timeout)), a.Name);
            Assert.That(a.ImagePath, Does.StartWith("/kut/"), a.Name);
            Assert.That(a.CpuFeatures, Does.Contain("-x2apic").And.Contain("-svm").And.No.Contain("-avic"), a.Name);
            Assert.That(n.CpuFeatures, Is.EqualTo(a.CpuFeatures.Append("-avic")), a.Name);
            Assert.That(n.Expect!.KvmUnitTests, Is.EqualTo(a.Expect!.KvmUnitTests).And.Not.Null, a.Name);
            Assert.That(a.Expect.KvmUnitTests!.Outcome, Is.EqualTo(CaseOutcome.Pass), a.Name);
            Assert.That(Range(a, "avic.accelerated").Low, Is.GreaterThan(0UL), a.Name);
            Assert.That(Range(n, "avic.accelerated"), Is.EqualTo(new CounterRange(0, 0, "0")), a.Name);
            Assert.That(Range(n, "apicv.active"), Is.EqualTo(new CounterRange(0, 0, "0")), a.Name);
        }
    }

    [Test]
    public void WithoutTheImagesFolderEveryCaseIsSkippedAndSaysWhy() =>
        Assert.That(Cases(_ => null).Select(c => c.SkipReason).Distinct(), Is.EqualTo(new[] { "KVM_UNIT_TESTS_DIR is not set" }));

    private static CounterRange Range(SuiteCase c, string counter) =>
        c.Expect!.Counters.Single(p => p.Name == counter).Range;
}
