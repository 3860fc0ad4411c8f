using System.Text;
using System.Text.Json;
using Emulator.Cli.Suite;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// <c>emu suite run</c> over YAML suites: a case passes only when every expectation holds; the failure names
/// the expectation and the actual value; timeouts, triple faults and missing images; folders, shards, reports.
/// </summary>
public sealed class YamlSuiteRunTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("emu-yaml-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text) => Write(name, Encoding.UTF8.GetBytes(text));

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private CaseResult RunOne(string yaml)
    {
        var cases = YamlSuite.Parse(yaml, Path.Combine(_dir, "t.yaml"));
        return new SuiteRunner { Jobs = 1 }.RunOne(cases.Single());
    }

    [Test]
    public void ScheduledApicvActionsChangeWhatTheGuestRunsUnder()
    {
        // builtin:apicv-toggle inhibits (IRQWIN) and un-inhibits once per iteration. A HYPERV inhibit held over part of
        // the run swallows the IRQWIN flips it covers; turning PIT reinjection on and off inhibits once more.
        var r = RunOne("""
            name: s
            cases:
              - name: actions
                guest: builtin:apicv-toggle
                actions:
                  - {at: 2_000_000, do: apicv-inhibit, reason: hyperv}
                  - {at: 4_000_000, do: apicv-inhibit, reason: hyperv, set: false}
                  - {at: 6_000_000, do: pit-reinject, on: true}
                  - {at: 7_000_000, do: pit-reinject, on: false}
                expect:
                  exit: 1
                  counters:
                    apicv.inhibit.hyperv: 1
                    apicv.inhibit.pit_reinj: 1
                    apicv.active: 1
            """);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Pass), r.Reason);
        Assert.That(r.Counters["apicv.inhibit.irqwin"], Is.EqualTo(200UL), "one window per iteration");
        Assert.That(r.Counters["apicv.transitions"], Is.LessThan(400UL), "IRQWIN flips under HYPERV or PIT_REINJ change nothing");
        Assert.That(r.Counters["apicv.transitions"] % 2, Is.Zero, "and it ends active");
    }

    [Test]
    public void ABuiltinGuestThisBuildLacksIsSkippedWithTheReason()
    {
        // A compiled workload built without gcc: its cases are skipped, not run and not errors.
        var c = YamlSuite.Parse("name: s\ncases:\n  - name: d\n    guest: builtin:demo\n    expect: {exit: 0}\n", Path.Combine(_dir, "t.yaml")).Single();
        var lacking = new SuiteCase { Name = c.Name, Source = c.Source, Builtin = c.Builtin! with { Unavailable = "workload 'demo' was not built: gcc not found" } };
        var r = new SuiteRunner { Jobs = 1 }.RunOne(lacking);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Skip));
        Assert.That(r.Reason, Is.EqualTo("workload 'demo' was not built: gcc not found"));
    }

    [Test]
    public void AKernelPassesWhenEveryExpectationHolds()
    {
        Write("k/pass.flat", SuiteKernels.Printing("PASS: one\nSKIP: two\nSUMMARY: 2 tests, 1 skipped\n", 0));
        var r = RunOne("""
            name: s
            cases:
              - name: pass
                guest: k/pass.flat
                memory: 16M
                expect:
                  kvm-unit-tests: {outcome: PASS, tests: 2, skipped: 1}
                  exit: 1
                  console: ["PASS: one", "/^SUMMARY: 2 tests/"]
                  console-not: [/FAIL/]
                  counters: {console.bytes: "> 10", cpu.unimplemented_codes: 0}
            """);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Pass), r.Reason);
        Assert.That(r.Reason, Is.Null);
        Assert.That(r.ExitStatus, Is.EqualTo(1));
        Assert.That(r.Cycles, Is.EqualTo(r.Counters["cpu.cycles"]).And.GreaterThan(0));
    }

    [Test]
    public void ACaseFailsOnTheFirstExpectationThatDoesNotHold()
    {
        var r = RunOne("""
            name: s
            cases:
              - name: demo
                guest: builtin:demo
                memory: 16M
                expect:
                  exit: 0
                  console: ["emu: built-in guest done"]
                  counters: {cpu.unimplemented_codes: 0, cpu.exceptions: ">= 1"}
            """);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Fail));
        Assert.That(r.Reason, Is.EqualTo("counter cpu.exceptions = 0, expected >= 1"));

        r = RunOne("""
            name: s
            cases:
              - {name: demo, guest: builtin:demo, memory: 16M, expect: {exit: 0, console-not: ["/vendor: Authentic/"]}}
            """);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Fail));
        Assert.That(r.Reason, Is.EqualTo("console line 'cpu vendor: AuthenticAMD' matches /vendor: Authentic/, which must not appear"));
    }

    [Test]
    public void TheCycleBudgetIsCheckedWithItsTolerance()
    {
        // The workload runs a fixed number of instructions, so its modeled cycles are the same every run.
        const string Case = "name: s\ncases:\n  - {name: w, guest: builtin:workload, memory: 16M, max-instructions: 100000, expect: {exit: 124, cycles: CYCLES}}\n";
        var first = RunOne(Case.Replace("CYCLES", "1", StringComparison.Ordinal));
        Assert.That(first.Outcome, Is.EqualTo(CaseOutcome.Fail));
        ulong cycles = first.Cycles!.Value;
        Assert.That(first.Reason, Does.StartWith($"cycles {cycles}, expected 1 (instruction limit 100000 reached at RIP 0x"));
        Assert.That(RunOne(Case.Replace("CYCLES", $"{cycles}", StringComparison.Ordinal)).Outcome, Is.EqualTo(CaseOutcome.Pass));
        Assert.That(RunOne(Case.Replace("CYCLES", $"{{expected: {cycles + 100}, tolerance: 100}}", StringComparison.Ordinal)).Outcome, Is.EqualTo(CaseOutcome.Pass));
        var tight = RunOne(Case.Replace("CYCLES", $"{{expected: {cycles + 101}, tolerance: 100}}", StringComparison.Ordinal));
        Assert.That(tight.Reason, Does.StartWith($"cycles {cycles}, expected {cycles + 101} ± 100"));
    }

    [Test]
    public void AWallClockTimeoutIsATimeoutEvenWhenTheCaseExpectsStatus124()
    {
        Write("hang.flat", SuiteKernels.Hang());
        var r = RunOne("name: s\ncases:\n  - {name: h, guest: hang.flat, memory: 16M, timeout: 0.2, expect: {exit: 124}}\n");
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Timeout));
        Assert.That(r.Reason, Does.StartWith("emu: timeout after 0.2 s"));
    }

    [Test]
    public void AGuestThatTripleFaultsFailsUnlessTheCaseExpectsIt()
    {
        Write("triple.flat", SuiteKernels.TripleFault());
        var r = RunOne("name: s\ncases:\n  - {name: t, guest: triple.flat, memory: 16M, expect: {exit: 1}}\n");
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Fail));
        Assert.That(r.Reason, Does.StartWith("exit status 4, expected 1 (triple fault (shutdown) at RIP 0x"));
        r = RunOne("name: s\ncases:\n  - {name: t, guest: triple.flat, memory: 16M, expect: {exit: 4, counters: {cpu.exceptions: \">= 1\"}}}\n");
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Pass), r.Reason);
    }

    [Test]
    public void AMissingImageOrInitrdIsAnError()
    {
        var r = RunOne("name: s\ncases:\n  - {name: m, guest: nowhere.flat, expect: {exit: 1}}\n");
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Error));
        Assert.That(r.Reason, Is.EqualTo($"{Path.Combine(_dir, "nowhere.flat")}: image missing"));
        Write("pass.flat", SuiteKernels.Printing("", 0));
        r = RunOne("name: s\ncases:\n  - {name: m, guest: pass.flat, initrd: none.img, expect: {exit: 1}}\n");
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Error));
        Assert.That(r.Reason, Is.EqualTo($"{Path.Combine(_dir, "none.img")}: initrd missing"));
    }

    [Test]
    public void TheCommandRunsFoldersAndReportsEachFailure()
    {
        Write("suites/a.yaml", "name: a\ncases:\n  - {name: demo, guest: builtin:demo, memory: 16M, expect: {exit: 0}}\n");
        Write("suites/sub/b.yml", "name: b\ncases:\n  - {name: broken, guest: builtin:demo, memory: 16M, expect: {exit: 0, counters: {mmu.pf.emulate: 0}}}\n");
        Write("suites/notes.txt", "not a suite");
        var r = Emu("suite", "run", Path.Combine(_dir, "suites"), "--jobs", "2");
        Assert.That(r.Status, Is.EqualTo(1), r.Err);
        string[] lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Does.Match(@"^PASS +demo +\d"));
        Assert.That(lines[1], Does.Match(@"^FAIL +broken +\(counter mmu\.pf\.emulate = \d+, expected 0\)"));
        Assert.That(lines[2], Does.StartWith("2 cases: 1 PASS, 0 SKIP, 1 FAIL"));
        Assert.That(lines[3], Does.Match(@"^FAIL: broken: counter mmu\.pf\.emulate = \d+, expected 0$"));

        Assert.That(Emu("suite", "run", Path.Combine(_dir, "suites", "a.yaml")).Status, Is.Zero);
    }

    [Test]
    public void AnErrorInASuiteFileIsAUsageErrorWithItsPosition()
    {
        string bad = Write("bad.yaml", "name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    expect: {exit: 0, counters: {no.such: 1}}\n");
        var r = Emu("suite", "run", bad);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Err, Does.StartWith($"emu: {bad}:5:34: unknown counter 'no.such'"));
        Assert.That(r.Out, Is.Empty, "nothing runs");
    }

    [Test]
    public void ShardsSplitTheCasesAndWriteTheirReports()
    {
        var text = new StringBuilder("name: s\ndefaults: {guest: builtin:demo, memory: 16M, expect: {exit: 0}}\ncases:\n");
        for (int i = 0; i < 5; i++)
        {
            text.Append($"  - name: c{i}\n");
        }

        string suite = Write("s.yaml", text.ToString());
        var names = new List<string>();
        for (int i = 1; i <= 3; i++)
        {
            string json = Path.Combine(_dir, $"shard{i}.json"), junit = Path.Combine(_dir, $"shard{i}.xml");
            var r = Emu("suite", "run", suite, "--shard", $"{i}/3", "--json", json, "--junit", junit);
            Assert.That(r.Status, Is.Zero, r.Out + r.Err);
            Assert.That(r.Out, Does.Contain($"cases (shard {i}/3)"));
            var report = SuiteReport.FromJson(File.ReadAllText(json))!;
            Assert.That(report.Shard, Is.EqualTo($"{i}/3"));
            names.AddRange(report.Cases.Select(c => c.Name));
            Assert.That(System.Xml.Linq.XDocument.Load(junit).Descendants("testcase").Count(), Is.EqualTo(report.Cases.Count));
        }

        Assert.That(names.Order(), Is.EqualTo(new[] { "c0", "c1", "c2", "c3", "c4" }));
        var empty = Emu("suite", "run", suite, "--shard", "7/7", "--filter", "c1,c2");
        Assert.That(empty.Status, Is.Zero, "an empty shard has nothing to fail");
        Assert.That(empty.Out, Does.StartWith("0 cases (shard 7/7)"));
        Assert.That(Emu("suite", "run", suite, "--shard", "4/3").Status, Is.EqualTo(2));
    }

    [Test]
    public void TheJsonReportHoldsCountersAndCycles()
    {
        string suite = Write("s.yaml", "name: s\ncases:\n  - {name: demo, guest: builtin:demo, memory: 16M, expect: {exit: 0}}\n");
        string json = Path.Combine(_dir, "r.json");
        Assert.That(Emu("suite", "run", suite, "--json", json).Status, Is.Zero);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var c = doc.RootElement.GetProperty("cases")[0];
        Assert.That(c.GetProperty("outcome").GetString(), Is.EqualTo("PASS"));
        Assert.That(c.GetProperty("cycles").GetUInt64(), Is.EqualTo(c.GetProperty("counters").GetProperty("cpu.cycles").GetUInt64()).And.GreaterThan(0));
        Assert.That(c.GetProperty("output").GetString(), Does.Contain("emu: built-in guest done"));
    }

    [Test]
    public void ScheduledActionsRunAtTheirCycleAndSplittingTheRunChangesNothingElse()
    {
        var plain = YamlSuite.Parse("name: s\ncases:\n  - {name: demo, guest: builtin:demo, memory: 16M, expect: {exit: 0}}\n", Path.Combine(_dir, "t.yaml")).Single();
        var runner = new SuiteRunner { Jobs = 1 };
        var reference = runner.RunOne(plain);

        ulong seenAt = 0;
        var idle = new SuiteCase
        {
            Name = "demo",
            Builtin = plain.Builtin,
            Memory = plain.Memory,
            Expect = plain.Expect,
            Actions = [new ScheduledAction(300_000, "look", m => seenAt = m.Cpu.Cycles), new ScheduledAction(600_000, "nothing", _ => { })],
        };
        var split = runner.RunOne(idle);
        Assert.That(split.Outcome, Is.EqualTo(CaseOutcome.Pass), split.Reason);
        Assert.That(seenAt, Is.GreaterThanOrEqualTo(300_000UL).And.LessThan(310_000UL));
        Assert.That((split.Cycles, split.Output), Is.EqualTo((reference.Cycles, reference.Output)));
        Assert.That(split.Counters, Is.EqualTo(reference.Counters));

        var stop = new SuiteCase
        {
            Name = "demo",
            Builtin = plain.Builtin,
            Memory = plain.Memory,
            Expect = plain.Expect,
            Actions = [new ScheduledAction(500_000, "stop", m => m.RequestStop(42))],
        };
        var stopped = runner.RunOne(stop);
        Assert.That(stopped.ExitStatus, Is.EqualTo(42));
        Assert.That(stopped.Reason, Is.EqualTo("exit status 42, expected 0"));
        Assert.That(stopped.Output, Does.Not.Contain("done"));
    }

    [Test]
    public void TheFlushingNestedGuestFlushesTheTlbAtEveryWorldSwitch()
    {
        // The same L1 and L2 program; only L0's flush on VMRUN and #VMEXIT differs (NestedSvm.FlushOnTransition).
        const string Case = "name: s\ncases:\n  - {name: n, guest: builtin:GUEST, max-instructions: 100000, expect: {exit: 124}}\n";
        var tagged = RunOne(Case.Replace("GUEST", "nested-vmmcall", StringComparison.Ordinal));
        var flushed = RunOne(Case.Replace("GUEST", "nested-vmmcall-flush", StringComparison.Ordinal));
        Assert.That((tagged.Outcome, flushed.Outcome), Is.EqualTo((CaseOutcome.Pass, CaseOutcome.Pass)));
        Assert.That(flushed.Counters["svm.vmrun"], Is.EqualTo(tagged.Counters["svm.vmrun"]));
        Assert.That(tagged.Counters["cpu.tlb.misses"], Is.LessThan(10UL));
        Assert.That(flushed.Counters["cpu.tlb.misses"], Is.GreaterThan(3 * flushed.Counters["svm.vmrun"]));
        Assert.That(flushed.Cycles!.Value, Is.GreaterThan(tagged.Cycles!.Value));
    }
}
