using System.Text;
using System.Xml;
using System.Xml.Linq;
using System.Xml.Schema;
using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>The JUnit report validates against the JUnit schema (junit.xsd); the JSON report reads back as written.</summary>
public sealed class ReportsTests
{
    private static readonly DateTimeOffset s_started = new(2026, 12, 6, 7, 0, 0, TimeSpan.Zero);

    private static List<CaseResult> Results()
    {
        SuiteCase C(string name, string suite = "seeds") => new() { Name = name, Suite = suite, Source = $"s.yaml:{name.Length}:3" };
        return
        [
            new(C("pass"), CaseOutcome.Pass, new SubtestSummary(3, 0, 1), [], null, TimeSpan.FromSeconds(1.25))
            {
                Output = "PASS: x\n\u001b[0mcolour\u0000\n",
                ExitStatus = 1,
                Cycles = 123_456,
                Counters = new Dictionary<string, ulong> { ["cpu.cycles"] = 123_456, ["mmu.pf.emulate"] = 2 },
            },
            new(C("fail"), CaseOutcome.Fail, null, ["FAIL: a", "FAIL: b"], "counter mmu.pf.emulate = 0, expected >= 1", TimeSpan.FromMilliseconds(20)) { ExitStatus = 0 },
            new(C("hang"), CaseOutcome.Timeout, null, [], "emu: timeout after 0.2 s at RIP 0x400010", TimeSpan.FromSeconds(0.2)) { ExitStatus = 124 },
            new(C("gone", "unittests.cfg"), CaseOutcome.Error, null, [], "/x/gone.flat: image missing", TimeSpan.Zero),
            new(C("kvm", "unittests.cfg"), CaseOutcome.Skip, null, [], "needs KVM", TimeSpan.Zero),
        ];
    }

    private static XmlSchemaSet Schema()
    {
        using var xsd = typeof(ReportsTests).Assembly.GetManifestResourceStream("Emulator.Tests.Cli.Suite.junit.xsd")!;
        var set = new XmlSchemaSet();
        set.Add(null, XmlReader.Create(xsd));
        set.Compile();
        return set;
    }

    private static List<string> Validate(byte[] xml)
    {
        var errors = new List<string>();
        var settings = new XmlReaderSettings { ValidationType = ValidationType.Schema, Schemas = Schema() };
        settings.ValidationEventHandler += (_, e) => errors.Add($"{e.Severity}: {e.Message}");
        using var reader = XmlReader.Create(new MemoryStream(xml), settings);
        while (reader.Read())
        {
        }

        return errors;
    }

    private static byte[] JUnit(IReadOnlyList<CaseResult> results)
    {
        using var ms = new MemoryStream();
        JUnitReport.Write(JUnitReport.Build(results, s_started, TimeSpan.FromSeconds(2)), ms);
        return ms.ToArray();
    }

    [Test]
    public void TheJUnitReportValidatesAgainstTheSchema()
    {
        Assert.That(Validate(JUnit(Results())), Is.Empty);
        Assert.That(Validate(JUnit([])), Is.Empty, "an empty shard");
    }

    [Test]
    public void TheSchemaRejectsWhatCiSystemsCannotRead()
    {
        // The schema is not vacuous: a testcase without its classname, or a suite without its counts, fails.
        var doc = XDocument.Load(new MemoryStream(JUnit(Results())));
        doc.Root!.Element("testsuite")!.Element("testcase")!.Attribute("classname")!.Remove();
        Assert.That(Validate(Encoding.UTF8.GetBytes(doc.ToString())), Is.Not.Empty);
        doc = XDocument.Load(new MemoryStream(JUnit(Results())));
        doc.Root!.Element("testsuite")!.Attribute("failures")!.Remove();
        Assert.That(Validate(Encoding.UTF8.GetBytes(doc.ToString())), Is.Not.Empty);
    }

    [Test]
    public void TheJUnitReportHasOneSuitePerSuiteAndAnElementPerOutcome()
    {
        var doc = XDocument.Load(new MemoryStream(JUnit(Results())));
        var root = doc.Root!;
        Assert.That(root.Name.LocalName, Is.EqualTo("testsuites"));
        Assert.That(((int)root.Attribute("tests")!, (int)root.Attribute("failures")!, (int)root.Attribute("errors")!, (int)root.Attribute("skipped")!), Is.EqualTo((5, 1, 2, 1)));
        var suites = root.Elements("testsuite").ToList();
        Assert.That(suites.Select(s => (string)s.Attribute("name")!), Is.EqualTo(new[] { "seeds", "unittests.cfg" }));
        var cases = root.Descendants("testcase").ToDictionary(c => (string)c.Attribute("name")!);
        Assert.That(cases["pass"].Elements().Select(e => e.Name.LocalName), Is.EqualTo(new[] { "system-out" }));
        Assert.That((string)cases["pass"].Attribute("time")!, Is.EqualTo("1.250"));
        Assert.That(cases["pass"].Element("system-out")!.Value, Is.EqualTo("PASS: x\n\uFFFD[0mcolour\uFFFD\n"), "control characters XML cannot hold");
        Assert.That((string)cases["fail"].Element("failure")!.Attribute("message")!, Is.EqualTo("counter mmu.pf.emulate = 0, expected >= 1"));
        Assert.That(cases["fail"].Element("failure")!.Value, Is.EqualTo("FAIL: a\nFAIL: b"));
        Assert.That((string)cases["hang"].Element("error")!.Attribute("type")!, Is.EqualTo("TIMEOUT"));
        Assert.That((string)cases["gone"].Element("error")!.Attribute("type")!, Is.EqualTo("ERROR"));
        Assert.That((string)cases["kvm"].Element("skipped")!.Attribute("message")!, Is.EqualTo("needs KVM"));
    }

    [Test]
    public void TheJsonReportRoundTrips()
    {
        var report = SuiteReport.From(Results(), s_started, TimeSpan.FromSeconds(2.5), new Shard(2, 3));
        string json = report.ToJson();
        var back = SuiteReport.FromJson(json)!;
        Assert.That(back.ToJson(), Is.EqualTo(json));
        Assert.That((back.Started, back.Seconds, back.Shard), Is.EqualTo((s_started, 2.5, "2/3")));
        Assert.That(back.Totals, Is.EqualTo(new SuiteTotals(5, 1, 1, 1, 1, 1)));
        var pass = back.Cases[0];
        Assert.That((pass.Suite, pass.Name, pass.Outcome, pass.ExitStatus, pass.Cycles, pass.Summary), Is.EqualTo(("seeds", "pass", CaseOutcome.Pass, (int?)1, (ulong?)123_456, (SubtestSummary?)new SubtestSummary(3, 0, 1))));
        Assert.That(pass.Counters, Is.EqualTo(new Dictionary<string, ulong> { ["cpu.cycles"] = 123_456, ["mmu.pf.emulate"] = 2 }));
        Assert.That(pass.Output, Is.EqualTo(Results()[0].Output));
        Assert.That(back.Cases[1].FailLines, Is.EqualTo(new[] { "FAIL: a", "FAIL: b" }));
        Assert.That(json, Does.Contain("\"outcome\": \"TIMEOUT\""));
    }
}
