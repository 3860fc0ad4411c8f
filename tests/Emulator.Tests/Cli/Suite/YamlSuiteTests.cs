using Emulator.Cli.Suite;
using Emulator.Mmu.Fault;

namespace Emulator.Tests.Cli.Suite;

/// <summary>The YAML suite reader: what a valid file becomes, and every kind of error with its line and column.</summary>
public sealed class YamlSuiteTests
{
    private const string File = "/suites/demo.yaml";

    private static List<SuiteCase> Parse(string text) => YamlSuite.Parse(text, File);

    private static SuiteFileException Error(string text) => Assert.Throws<SuiteFileException>(() => Parse(text))!;

    [Test]
    public void AValidSuiteBecomesCasesWithDefaultsAndExpectations()
    {
        var cases = Parse("""
            # a comment
            name: seeds
            defaults:
              memory: 64M
              timeout: 2m
              expect:
                console-not: [/FAIL/]
            cases:
              - name: demo
                guest: builtin:demo
                expect:
                  exit: 0
                  console:
                    - "emu: built-in guest done"
                    - "/checksum: 0x[0-9a-f]+/"
                  counters:
                    mmu.pf.emulate: ">= 1"
                    cpu.exceptions: 0
                    vcpu.1.cycles: 100..200
                    svm.exits.l1.ioio: "< 1000"
                  cycles: {expected: 1200000, tolerance: 1%}
              - name: kernel
                guest: kernels/access.flat
                smp: 2
                memory: 1G
                cpu: +x2apic,-npt
                apicv-toggle: memslot
                append: -v fast
                initrd: kernels/initrd.img
                max-cycles: 0x1000
                max-instructions: 1_000
                timeout: 30
                groups: [mmu, slow]
                expect:
                  kvm-unit-tests: {outcome: PASS, tests: 12, skipped: 1}
            """);
        Assert.That(cases, Has.Count.EqualTo(2));
        var demo = cases[0];
        Assert.That(demo.Name, Is.EqualTo("demo"));
        Assert.That(demo.Suite, Is.EqualTo("seeds"));
        Assert.That(demo.Source, Is.EqualTo($"{File}:9:5"));
        Assert.That(demo.Builtin?.Name, Is.EqualTo("demo"));
        Assert.That(demo.Memory, Is.EqualTo(64UL << 20));
        Assert.That(demo.Timeout, Is.EqualTo(TimeSpan.FromMinutes(2)));
        var x = demo.Expect!;
        Assert.That(x.Exit, Is.Zero);
        Assert.That(x.Console.Select(c => c.Text), Is.EqualTo(new[] { "emu: built-in guest done", "/checksum: 0x[0-9a-f]+/" }));
        Assert.That(x.ConsoleNot.Single().Text, Is.EqualTo("/FAIL/"), "from the defaults");
        Assert.That(x.Counters.Select(c => $"{c.Name} {c.Range}"), Is.EqualTo(new[]
        {
            "mmu.pf.emulate >= 1", "cpu.exceptions 0", "vcpu.1.cycles 100..200", "svm.exits.l1.ioio < 1000",
        }));
        Assert.That(x.Cycles, Is.EqualTo(new CycleBudget(1_200_000, 12_000, "1%")));

        var k = cases[1];
        Assert.That(k.Builtin, Is.Null);
        Assert.That(k.File, Is.EqualTo("kernels/access.flat"));
        Assert.That(k.ImagePath, Is.EqualTo(Path.Combine("/suites", "kernels/access.flat")));
        Assert.That(k.InitrdPath, Is.EqualTo(Path.Combine("/suites", "kernels/initrd.img")));
        Assert.That((k.Cpus, k.Memory, k.Append), Is.EqualTo((2, 1UL << 30, "-v fast")));
        Assert.That(k.CpuFeatures, Is.EqualTo(new[] { "+x2apic", "-npt" }));
        Assert.That(k.ApicvToggle, Is.EqualTo(ApicvToggle.Memslot));
        Assert.That((k.MaxCycles, k.MaxInstructions), Is.EqualTo((0x1000UL, 1000UL)));
        Assert.That(k.Timeout, Is.EqualTo(TimeSpan.FromSeconds(30)));
        Assert.That(k.Groups, Is.EqualTo(new[] { "mmu", "slow" }));
        Assert.That(k.Expect!.KvmUnitTests, Is.EqualTo(new KutExpectation(CaseOutcome.Pass, 12, null, 1)));
        Assert.That(k.Expect.ConsoleNot.Single().Text, Is.EqualTo("/FAIL/"));
    }

    [Test]
    public void ABuiltinGuestBringsTheMachineItNeedsUnlessTheCaseSaysOtherwise()
    {
        var cases = Parse("""
            name: nested
            cases:
              - {name: a, guest: builtin:nested-vmmcall, max-instructions: 1000, expect: {exit: 124}}
              - {name: b, guest: builtin:nested-vmmcall, memory: 128M, cpu: +x2apic, max-instructions: 1000, expect: {exit: 124}}
            """);
        Assert.That((cases[0].Memory, cases[0].CpuFeatures), Is.EqualTo((64UL << 20, new[] { "+svm", "+npt", "+nrip_save" })));
        Assert.That((cases[1].Memory, cases[1].CpuFeatures), Is.EqualTo((128UL << 20, new[] { "+svm", "+npt", "+nrip_save", "+x2apic" })));
    }

    [Test]
    public void ACaseAddsToTheDefaultsExpectations()
    {
        var c = Parse("""
            name: s
            defaults:
              expect:
                exit: 1
                console: [a]
                console-not: [/FAIL/]
                counters: {cpu.exceptions: 0, io.unhandled: 0}
                cycles: 10
            cases:
              - name: x
                guest: builtin:demo
                expect:
                  exit: 0
                  console: [b]
                  counters: {io.unhandled: "< 5", mmu.pf.emulate: 2}
            """).Single().Expect!;
        Assert.That(c.Exit, Is.Zero, "the case's exit replaces the default");
        Assert.That(c.Console.Select(m => m.Text), Is.EqualTo(new[] { "a", "b" }));
        Assert.That(c.ConsoleNot.Select(m => m.Text), Is.EqualTo(new[] { "/FAIL/" }));
        Assert.That(c.Counters.Select(p => $"{p.Name} {p.Range}"), Is.EqualTo(new[] { "cpu.exceptions 0", "io.unhandled < 5", "mmu.pf.emulate 2" }));
        Assert.That(c.Cycles?.Expected, Is.EqualTo(10UL));
    }

    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    memroy: 1G\n    expect: {exit: 0}\n", 5, 5, "unknown key 'memroy'")]
    [TestCase("name: s\ncolour: red\ncases: []\n", 2, 1, "unknown key 'colour'; expected one of: name, defaults, cases")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    expect: {exit: 0, exits: 1}\n", 5, 23, "unknown key 'exits'")]
    [TestCase("name: s\ndefaults: {name: x}\ncases: []\n", 2, 12, "unknown key 'name'")]
    public void UnknownKeysAreErrors(string text, int line, int column, string message) =>
        AssertError(text, line, column, message);

    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    smp: [1]\n    expect: {exit: 0}\n", 5, 10, "expected smp (a number of vCPUs), got a list")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    smp: two\n    expect: {exit: 0}\n", 5, 10, "expected smp (a number of vCPUs), got 'two'")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    smp: 65\n    expect: {exit: 0}\n", 5, 10, "smp (a number of vCPUs): 65 is outside 1..64")]
    [TestCase("name: s\ncases: {name: a}\n", 2, 8, "expected 'cases' to be a non-empty list")]
    [TestCase("name: s\ncases: []\n", 2, 8, "expected 'cases' to be a non-empty list")]
    [TestCase("- a\n- b\n", 1, 1, "expected the suite (a mapping with name, defaults and cases), got a list")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: {path: x}\n    expect: {exit: 0}\n", 4, 12, "expected guest (a path or builtin:NAME), got a mapping")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    expect: {exit: 300}\n", 5, 20, "exit (an exit status 0..255): 300 is outside 0..255")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    expect: {exit: 0, console: {a: b}}\n", 5, 32, "expected console (a line, or /regex/), got a mapping")]
    public void ValuesOfTheWrongTypeAreErrors(string text, int line, int column, string message) =>
        AssertError(text, line, column, message);

    [TestCase("mmu.pf.emulat", "unknown counter 'mmu.pf.emulat'; expected a name 'emu boot --stats' prints (did you mean mmu.pf.emulate?)")]
    [TestCase("vcpu.64.cycles", "unknown counter 'vcpu.64.cycles'")]
    [TestCase("vcpu.0.nothing", "unknown counter 'vcpu.0.nothing'")]
    [TestCase("svm.exits.l3.vmmcall", "unknown counter 'svm.exits.l3.vmmcall'")]
    [TestCase("svm.exits.l2.vmcall", "unknown counter 'svm.exits.l2.vmcall'")]
    public void UnknownCountersAreErrors(string counter, string message) =>
        AssertError($"name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    expect:\n      exit: 0\n      counters:\n        {counter}: 1\n", 8, 9, message);

    [TestCase("memory: lots", 5, 13, "memory 'lots': expected a size of at least 1M")]
    [TestCase("memory: 512K", 5, 13, "memory '512K': expected a size of at least 1M")]
    [TestCase("cpu: +nosuchfeature", 5, 10, "cpu '+nosuchfeature': ")]
    [TestCase("cpu: 'a b'", 5, 10, "cpu 'a b': 'a b' is not a feature name")]
    [TestCase("apicv-toggle: flush", 5, 19, "apicv-toggle 'flush': expected zap or memslot")]
    [TestCase("timeout: -3", 5, 14, "timeout '-3': expected a positive number of seconds")]
    [TestCase("max-cycles: 0", 5, 17, "max-cycles (a number of cycles): 0 is outside")]
    [TestCase("append: x", 5, 5, "case 'a': append and initrd need an image, not a built-in guest")]
    public void BadOptionValuesAreErrors(string option, int line, int column, string message) =>
        AssertError($"name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    {option}\n    expect: {{exit: 0}}\n", line, column, message);

    [Test]
    public void AnUnknownActionIsAnError() =>
        AssertError("""
            name: s
            cases:
              - name: a
                guest: builtin:demo
                actions:
                  - {at: 1000, do: inhibit-apicv, reason: test}
                expect: {exit: 0}
            """, 6, 24, "unknown action 'inhibit-apicv'; expected one of: apicv-inhibit, dirty-log, irq, pit-reinject");

    [TestCase("{at: 1000, do: apicv-inhibit, reason: disable}", "action 'apicv-inhibit': needs 'reason', one of: hyperv, nested, irqwin")]
    [TestCase("{at: 1000, do: apicv-inhibit, reason: irqwin, set: maybe}", "action 'apicv-inhibit': 'set' is true or false, not 'maybe'")]
    [TestCase("{at: 1000, do: pit-reinject}", "action 'pit-reinject': needs 'on': true or false")]
    [TestCase("{at: 1000, do: pit-reinject, on: true, rate: 2}", "action 'pit-reinject': unknown argument 'rate'; expected on")]
    public void BadActionArgumentsAreErrors(string action, string message) =>
        AssertError($"name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    actions:\n      - {action}\n    expect: {{exit: 0}}\n", 6, 9, message);

    [Test]
    public void AnActionWithoutAtOrDoIsAnError() =>
        AssertError("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    actions:\n      - {do: x}\n    expect: {exit: 0}\n", 6, 9, "an action needs 'at' (a cycle) and 'do'");

    [TestCase("guest: builtin:nope", 4, 12, "unknown built-in guest 'builtin:nope'; expected one of builtin:demo, builtin:workload, builtin:apicv-toggle, builtin:nested-vmmcall")]
    [TestCase("guest: ''", 4, 12, "expected a guest path or builtin:NAME, got an empty string")]
    public void BadGuestsAreErrors(string guest, int line, int column, string message) =>
        AssertError($"name: s\ncases:\n  - name: a\n    {guest}\n    expect: {{exit: 0}}\n", line, column, message);

    [TestCase("expect: {exit: 0, console: '/(unclosed/'}", 5, 32, "console '/(unclosed/': not a regular expression")]
    [TestCase("expect: {exit: 0, counters: {cpu.exceptions: '>> 1'}}", 5, 50, "counter cpu.exceptions: '>> 1' is not a value or range")]
    [TestCase("expect: {exit: 0, counters: {cpu.exceptions: '9..3'}}", 5, 50, "counter cpu.exceptions: '9..3' is not a value or range")]
    [TestCase("expect: {exit: 0, cycles: {expected: 100, tolerance: 200%}}", 5, 58, "tolerance '200%': expected a number of cycles or a percentage")]
    [TestCase("expect: {exit: 0, cycles: {tolerance: 1}}", 5, 31, "cycles: missing key 'expected'")]
    [TestCase("expect: {kvm-unit-tests: GOOD}", 5, 30, "kvm-unit-tests outcome 'GOOD': expected PASS, FAIL or SKIP")]
    [TestCase("expect: {kvm-unit-tests: {tests: 3}}", 5, 30, "kvm-unit-tests: missing key 'outcome'")]
    [TestCase("expect: {console: [x]}", 5, 5, "case 'a': expected an 'exit' or 'kvm-unit-tests' expectation")]
    public void BadExpectationsAreErrors(string expect, int line, int column, string message) =>
        AssertError($"name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    {expect}\n", line, column, message);

    [Test]
    public void ACaseWithoutExpectationsIsAnErrorNotASilentPass() =>
        AssertError("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n", 3, 5, "case 'a': expected an 'exit' or 'kvm-unit-tests' expectation");

    [Test]
    public void MissingKeysAndDuplicateCasesAreErrors()
    {
        AssertError("cases:\n  - {name: a, guest: builtin:demo, expect: {exit: 0}}\n", 1, 1, "missing key 'name'");
        AssertError("name: s\n", 1, 1, "missing key 'cases'");
        AssertError("name: s\ncases:\n  - {guest: builtin:demo, expect: {exit: 0}}\n", 3, 5, "missing key 'name' (the case's name)");
        AssertError("name: s\ncases:\n  - {name: a, expect: {exit: 0}}\n", 3, 5, "case 'a': missing key 'guest'");
        AssertError("name: s\ncases:\n  - {name: a, guest: builtin:demo, expect: {exit: 0}}\n  - {name: a, guest: builtin:demo, expect: {exit: 0}}\n", 4, 12, "case 'a' appears twice in the suite (first at line 3)");
    }

    [Test]
    public void InvalidYamlIsAnErrorWithItsPosition()
    {
        var e = Error("name: s\ncases:\n  - name: a\n   guest: x\n");
        Assert.That(e.Message, Does.StartWith($"{File}:4:"));
        Assert.That(e.What, Does.StartWith("not valid YAML: "));
        Assert.That(Error("").Message, Is.EqualTo($"{File}:1:1: empty file; expected a mapping with name, defaults and cases"));
        Assert.That(Error("name: s\nname: t\ncases: []\n").Message, Does.StartWith($"{File}:2:1: not valid YAML: "), "a duplicate key");
    }

    [TestCase("s.yaml", true)]
    [TestCase("S.YML", true)]
    [TestCase("unittests.cfg", false)]
    [TestCase("yaml", false)]
    public void TheReaderIsChosenByExtension(string path, bool yaml) => Assert.That(YamlSuite.Handles(path), Is.EqualTo(yaml));

    private static void AssertError(string text, int line, int column, string message)
    {
        var e = Error(text);
        Assert.That(e.What, Does.StartWith(message));
        Assert.That((e.Line, e.Column), Is.EqualTo(((long)line, (long)column)), e.Message);
        Assert.That(e.Message, Does.StartWith($"{File}:{line}:{column}: "));
    }
}
