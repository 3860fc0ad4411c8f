namespace Emulator.Cli.Suite;

/// <summary>
/// A known-results file: one <c>name OUTCOME</c> line per case (<c>#</c> comments, blank lines allowed).
/// A case does worse than the file when it was expected to PASS and did not, or was expected to SKIP and
/// neither skipped nor passed; a case expected to FAIL, TIMEOUT or ERROR may end any way. A case that
/// ends better than the file says is reported as improved, so the file can be ratcheted.
/// </summary>
internal sealed class ExpectedResults
{
    private readonly Dictionary<string, CaseOutcome> _expected;

    private ExpectedResults(Dictionary<string, CaseOutcome> expected) => _expected = expected;

    public IReadOnlyDictionary<string, CaseOutcome> Entries => _expected;

    public static bool TryParse(string text, out ExpectedResults results, out string? error)
    {
        results = new ExpectedResults([]);
        error = null;
        var map = new Dictionary<string, CaseOutcome>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (string raw in text.Split('\n'))
        {
            lineNo++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            string[] words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (words.Length != 2 || !TryParseOutcome(words[1], out CaseOutcome outcome))
            {
                error = $"line {lineNo}: expected 'name PASS|SKIP|FAIL|TIMEOUT|ERROR', got '{line}'";
                return false;
            }

            if (!map.TryAdd(words[0], outcome))
            {
                error = $"line {lineNo}: case '{words[0]}' is listed twice";
                return false;
            }
        }

        results = new ExpectedResults(map);
        return true;
    }

    public static bool TryParseOutcome(string text, out CaseOutcome outcome) =>
        Enum.TryParse(text, ignoreCase: true, out outcome) && Enum.IsDefined(outcome) && !int.TryParse(text, out _);

    /// <summary>True when <paramref name="actual"/> is worse than <paramref name="expected"/> allows.</summary>
    public static bool IsRegression(CaseOutcome expected, CaseOutcome actual) => expected switch
    {
        CaseOutcome.Pass => actual != CaseOutcome.Pass,
        CaseOutcome.Skip => actual is not (CaseOutcome.Skip or CaseOutcome.Pass),
        _ => false,
    };

    /// <summary>Compares results with the file: regressions, improvements, and cases the file does not list.</summary>
    public Comparison Compare(IEnumerable<CaseResult> results)
    {
        var worse = new List<(string, CaseOutcome, CaseOutcome)>();
        var better = new List<(string, CaseOutcome, CaseOutcome)>();
        var unlisted = new List<(string, CaseOutcome)>();
        foreach (var r in results)
        {
            if (!_expected.TryGetValue(r.Case.Name, out CaseOutcome expected))
            {
                unlisted.Add((r.Case.Name, r.Outcome));
            }
            else if (IsRegression(expected, r.Outcome))
            {
                worse.Add((r.Case.Name, expected, r.Outcome));
            }
            else if (r.Outcome < expected)
            {
                better.Add((r.Case.Name, expected, r.Outcome));
            }
        }

        return new Comparison(worse, better, unlisted);
    }

    /// <summary>The outcome of <see cref="Compare"/>; only <see cref="Regressions"/> fail a run.</summary>
    public sealed record Comparison(
        IReadOnlyList<(string Name, CaseOutcome Expected, CaseOutcome Actual)> Regressions,
        IReadOnlyList<(string Name, CaseOutcome Expected, CaseOutcome Actual)> Improvements,
        IReadOnlyList<(string Name, CaseOutcome Actual)> Unlisted);
}
