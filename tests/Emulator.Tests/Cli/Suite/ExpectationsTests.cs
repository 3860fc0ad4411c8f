using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>Counter ranges, console patterns, cycle budgets, and which expectation a run fails first.</summary>
public sealed class ExpectationsTests
{
    [TestCase("7", 7UL, 7UL, "7")]
    [TestCase("== 7", 7UL, 7UL, "7")]
    [TestCase(">= 1", 1UL, ulong.MaxValue, ">= 1")]
    [TestCase("> 1", 2UL, ulong.MaxValue, "> 1")]
    [TestCase("<= 0x10", 0UL, 16UL, "<= 16")]
    [TestCase("< 10", 0UL, 9UL, "< 10")]
    [TestCase("100..200", 100UL, 200UL, "100..200")]
    [TestCase("1_000..1_000", 1000UL, 1000UL, "1000..1000")]
    public void CounterRangesParse(string text, ulong low, ulong high, string shown)
    {
        Assert.That(CounterRange.TryParse(text, out var r), Is.True);
        Assert.That((r.Low, r.High, r.ToString()), Is.EqualTo((low, high, shown)));
    }

    [TestCase("")]
    [TestCase("many")]
    [TestCase(">> 1")]
    [TestCase("< 0")]
    [TestCase("5..4")]
    [TestCase("-1")]
    [TestCase("1..")]
    public void BadCounterRangesDoNotParse(string text) => Assert.That(CounterRange.TryParse(text, out _), Is.False);

    [Test]
    public void ConsolePatternsAreExactLinesOrRegularExpressions()
    {
        Assert.That(ConsoleMatch.TryParse("done", out var exact, out _), Is.True);
        Assert.That(exact.Matches("done"), Is.True);
        Assert.That(exact.Matches("all done"), Is.False, "exact means the whole line");
        Assert.That(ConsoleMatch.TryParse("/d.ne/", out var regex, out _), Is.True);
        Assert.That(regex.Matches("all done"), Is.True);
        Assert.That(ConsoleMatch.TryParse("/", out var slash, out _), Is.True);
        Assert.That(slash.Matches("/"), Is.True, "a lone slash is a line, not a pattern");
        Assert.That(ConsoleMatch.TryParse("/[/", out _, out string? error), Is.False);
        Assert.That(error, Does.StartWith("not a regular expression"));
    }

    [TestCase("1%", 1000UL, 10UL)]
    [TestCase("0.5%", 1001UL, 6UL)]
    [TestCase("250", 1000UL, 250UL)]
    [TestCase("0", 1000UL, 0UL)]
    public void TolerancesAreCyclesOrPercentages(string text, ulong expected, ulong tolerance)
    {
        Assert.That(CycleBudget.TryParseTolerance(text, expected, out ulong t), Is.True);
        Assert.That(t, Is.EqualTo(tolerance));
        var budget = new CycleBudget(expected, t, text);
        Assert.That(budget.Contains(expected + t) && budget.Contains(expected - t), Is.True);
        Assert.That(budget.Contains(expected + t + 1) || budget.Contains(expected - t - 1), Is.False);
    }

    private static readonly Dictionary<string, ulong> s_counters = new() { ["mmu.pf.emulate"] = 0, ["cpu.exceptions"] = 3 };

    private static CaseExpectations.Run Run(int exit = 0, string output = "hello\nworld\n", ulong cycles = 1000) =>
        new(exit, output, s_counters, cycles);

    private static ConsoleMatch M(string text) => ConsoleMatch.TryParse(text, out var m, out _) ? m : throw new ArgumentException(text);

    [Test]
    public void EveryExpectationThatHoldsPasses()
    {
        var x = new CaseExpectations
        {
            Exit = 0,
            Console = [M("hello"), M("/wor/")],
            ConsoleNot = [M("/FAIL/")],
            Counters = [("cpu.exceptions", new CounterRange(3, 3, "3")), ("svm.exits.l2.npf", new CounterRange(0, 0, "0"))],
            Cycles = new CycleBudget(990, 10, "10"),
        };
        Assert.That(x.Check(Run()), Is.Null);
    }

    [Test]
    public void TheFirstFailingExpectationIsNamedWithTheActualValue()
    {
        var x = new CaseExpectations
        {
            Exit = 0,
            Console = [M("hello")],
            ConsoleNot = [M("/orl/")],
            Counters = [("mmu.pf.emulate", new CounterRange(1, ulong.MaxValue, ">= 1"))],
            Cycles = new CycleBudget(2000, 20, "1%"),
        };
        Assert.That(x.Check(Run(exit: 4)), Is.EqualTo("exit status 4, expected 0"));
        Assert.That(x.Check(Run(output: "bye\n")), Is.EqualTo("console has no line 'hello'"));
        Assert.That(x.Check(Run()), Is.EqualTo("console line 'world' matches /orl/, which must not appear"));
        x = x with { ConsoleNot = [] };
        Assert.That(x.Check(Run()), Is.EqualTo("counter mmu.pf.emulate = 0, expected >= 1"));
        x = x with { Counters = [] };
        Assert.That(x.Check(Run()), Is.EqualTo("cycles 1000, expected 2000 ± 1%"));
    }

    [Test]
    public void TheKvmUnitTestsOutcomeAndCountsAreChecked()
    {
        const string Passed = "PASS: a\nSKIP: b\nSUMMARY: 2 tests, 1 skipped\n";
        var x = new CaseExpectations { KvmUnitTests = new KutExpectation(CaseOutcome.Pass, 2, 0, 1) };
        Assert.That(x.Check(Run(exit: 1, output: Passed)), Is.Null);
        Assert.That(x.Check(Run(exit: 3, output: "FAIL: a\nSUMMARY: 1 tests, 1 unexpected failures\n")), Is.EqualTo("kvm-unit-tests outcome FAIL (FAIL: a), expected PASS"));
        Assert.That(x.Check(Run(exit: 1, output: "PASS: a\n")), Is.EqualTo("kvm-unit-tests printed no SUMMARY line, expected subtest counts"));
        x = x with { KvmUnitTests = new KutExpectation(CaseOutcome.Pass, 3, null, null) };
        Assert.That(x.Check(Run(exit: 1, output: Passed)), Is.EqualTo("kvm-unit-tests SUMMARY 2 tests, 0 failures, 1 skipped, expected 3 tests"));
        x = x with { KvmUnitTests = new KutExpectation(CaseOutcome.Skip, null, null, null) };
        Assert.That(x.Check(Run(exit: 77, output: "SKIP: x\n")), Is.Null);
    }
}
