using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>Exit status and console output → outcome, as kvm-unit-tests reports (lib/report.c, isa-debug-exit).</summary>
public class CaseClassifierTests
{
    private const string Passing = "PASS: a\nSKIP: b\nSUMMARY: 2 tests, 1 skipped\n";

    [TestCase(1, Passing, "Pass")]
    [TestCase(1, "PASS: a\nFAIL: b\nSUMMARY: 2 tests\n", "Fail")]
    [TestCase(3, "PASS: a\nFAIL: b\n", "Fail")]
    [TestCase(3, "", "Fail")]
    [TestCase(77, "SKIP: no x2apic\nSUMMARY: 1 tests, 1 skipped\n", "Skip")]
    [TestCase(124, "PASS: a\n", "Timeout")]
    [TestCase(124, "FAIL: a\n", "Timeout")]
    [TestCase(4, "PASS: a\n", "Error")]
    [TestCase(0, Passing, "Error")]
    [TestCase(127, "FAIL: a\nAbort\n", "Error")]
    [TestCase(5, "", "Error")]
    public void ExitStatusAndFailLinesGiveTheOutcome(int status, string output, string outcome) =>
        Assert.That(CaseClassifier.Classify(status, output).Outcome, Is.EqualTo(Enum.Parse<CaseOutcome>(outcome)));

    [Test]
    public void FailLinesAreCollectedAndXfailIsNotAFailure()
    {
        var (_, _, fails) = CaseClassifier.Classify(1, "PASS: a\r\nFAIL: b 1\r\nXFAIL: c\nKFAIL: d\nFAIL: e\n");
        Assert.That(fails, Is.EqualTo(new[] { "FAIL: b 1", "FAIL: e" }));
    }

    [TestCase("SUMMARY: 12 tests\n", 12, 0, 0)]
    [TestCase("SUMMARY: 25 tests, 18 unexpected failures\n", 25, 18, 0)]
    [TestCase("SUMMARY: 30 tests, 2 unexpected failures, 1 known failures, 3 expected failures, 4 skipped\r\n", 30, 2, 4)]
    [TestCase("SUMMARY: 1 tests, 1 unexpected failure\n", 1, 1, 0)]
    [TestCase("SUMMARY: 5 tests, 5 skipped", 5, 0, 5)]
    public void SummaryLineGivesTheSubtestCounts(string output, int tests, int failures, int skipped) =>
        Assert.That(CaseClassifier.ParseSummary("PASS: x\n" + output), Is.EqualTo(new SubtestSummary(tests, failures, skipped)));

    [Test]
    public void NoSummaryLineGivesNoCounts() =>
        Assert.That(CaseClassifier.ParseSummary("PASS: x\nthe SUMMARY: is elsewhere\n"), Is.Null);

    [TestCase("PASS: a\nUnhandled exception 6 #UD(0) at ip 000000000101c000\nrax=0\n\tSTACK: @101c000 4001ad\n", "Unhandled exception 6 #UD(0) at ip 000000000101c000")]
    [TestCase("PASS: a\nAbort: something\n\n", "Abort: something")]
    [TestCase("", "")]
    public void AnErrorIsExplainedByTheKernelsExceptionReportOrItsLastLine(string output, string line) =>
        Assert.That(SuiteRunner.LastLine(output), Is.EqualTo(line));
}
