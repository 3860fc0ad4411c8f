using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>The known-results file: a case may do better than it says, never worse.</summary>
public class ExpectedResultsTests
{
    private static ExpectedResults Parse(string text)
    {
        Assert.That(ExpectedResults.TryParse(text, out var e, out string? error), Is.True, error);
        return e;
    }

    private static CaseResult Result(string name, CaseOutcome outcome) =>
        new(new SuiteCase { Name = name }, outcome, null, [], null, TimeSpan.Zero);

    [Test]
    public void LinesCommentsAndBlanks()
    {
        var e = Parse("# known results\n\nx2apic PASS\nsvm  fail\r\nvmx\tSKIP\n");
        Assert.That(e.Entries, Is.EqualTo(new Dictionary<string, CaseOutcome>
        {
            ["x2apic"] = CaseOutcome.Pass,
            ["svm"] = CaseOutcome.Fail,
            ["vmx"] = CaseOutcome.Skip,
        }));
    }

    [TestCase("x2apic", "line 1")]
    [TestCase("x2apic PASSED", "line 1")]
    [TestCase("x2apic 0", "line 1")]
    [TestCase("a PASS\na FAIL", "twice")]
    public void BadLinesAreRefused(string text, string reason)
    {
        Assert.That(ExpectedResults.TryParse(text, out _, out string? error), Is.False);
        Assert.That(error, Does.Contain(reason));
    }

    [TestCase("Pass", "Pass", false)]
    [TestCase("Pass", "Skip", true)]
    [TestCase("Pass", "Fail", true)]
    [TestCase("Pass", "Error", true)]
    [TestCase("Skip", "Pass", false)]
    [TestCase("Skip", "Skip", false)]
    [TestCase("Skip", "Fail", true)]
    [TestCase("Skip", "Timeout", true)]
    [TestCase("Fail", "Error", false)]
    [TestCase("Fail", "Timeout", false)]
    [TestCase("Timeout", "Error", false)]
    [TestCase("Error", "Pass", false)]
    public void WorseMeansAPassThatStoppedPassingOrASkipThatFailed(string expected, string actual, bool regression) =>
        Assert.That(ExpectedResults.IsRegression(Enum.Parse<CaseOutcome>(expected), Enum.Parse<CaseOutcome>(actual)), Is.EqualTo(regression));

    [Test]
    public void ComparisonListsRegressionsImprovementsAndUnlistedCases()
    {
        var e = Parse("a PASS\nb FAIL\nc ERROR\nd SKIP\nnot_run PASS\n");
        var cmp = e.Compare([
            Result("a", CaseOutcome.Fail),
            Result("b", CaseOutcome.Pass),
            Result("c", CaseOutcome.Timeout),
            Result("d", CaseOutcome.Skip),
            Result("new", CaseOutcome.Error),
        ]);
        Assert.That(cmp.Regressions, Is.EqualTo(new[] { ("a", CaseOutcome.Pass, CaseOutcome.Fail) }));
        Assert.That(cmp.Improvements, Is.EqualTo(new[] { ("b", CaseOutcome.Fail, CaseOutcome.Pass), ("c", CaseOutcome.Error, CaseOutcome.Timeout) }));
        Assert.That(cmp.Unlisted, Is.EqualTo(new[] { ("new", CaseOutcome.Error) }));
    }
}
