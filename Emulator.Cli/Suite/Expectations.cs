using System.Globalization;
using System.Text.RegularExpressions;

namespace Emulator.Cli.Suite;

/// <summary>
/// A console line a case expects (or forbids): an exact line, or a regular expression written between
/// slashes (<c>/checksum: 0x[0-9a-f]+/</c>) that may match anywhere in a line.
/// </summary>
internal sealed class ConsoleMatch
{
    private readonly Regex? _regex;

    private ConsoleMatch(string text, Regex? regex)
    {
        Text = text;
        _regex = regex;
    }

    /// <summary>The pattern as the suite file wrote it.</summary>
    public string Text { get; }

    /// <summary>Parses <paramref name="text"/>; a bad regular expression gives an error.</summary>
    public static bool TryParse(string text, out ConsoleMatch match, out string? error)
    {
        error = null;
        match = new ConsoleMatch(text, null);
        if (text.Length >= 2 && text[0] == '/' && text[^1] == '/')
        {
            try
            {
                match = new ConsoleMatch(text, new Regex(text[1..^1], RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)));
            }
            catch (ArgumentException e)
            {
                error = $"not a regular expression: {e.Message}";
                return false;
            }
        }

        return true;
    }

    public bool Matches(string line) => _regex?.IsMatch(line) ?? line == Text;

    /// <summary>The first console line that matches, or null.</summary>
    public string? FirstMatch(IReadOnlyList<string> lines)
    {
        foreach (string line in lines)
        {
            if (Matches(line))
            {
                return line;
            }
        }

        return null;
    }
}

/// <summary>
/// The values a counter may end with: one value (<c>0</c>, <c>== 3</c>), a bound (<c>&gt;= 1</c>, <c>&lt; 10</c>)
/// or an inclusive range (<c>100..200</c>). Numbers are decimal or 0x-prefixed, '_' separators allowed.
/// </summary>
internal readonly record struct CounterRange(ulong Low, ulong High, string Text)
{
    public bool Contains(ulong value) => value >= Low && value <= High;

    public override string ToString() => Text;

    public static bool TryParse(string text, out CounterRange range)
    {
        range = default;
        string t = text.Trim();
        ulong v;
        int dots = t.IndexOf("..", StringComparison.Ordinal);
        if (dots > 0)
        {
            if (!Values.TryParseNumber(t[..dots], out ulong lo) || !Values.TryParseNumber(t[(dots + 2)..], out ulong hi) || lo > hi)
            {
                return false;
            }

            range = new CounterRange(lo, hi, $"{lo}..{hi}");
            return true;
        }

        (string op, string rest) = t switch
        {
            _ when t.StartsWith(">=", StringComparison.Ordinal) => (">=", t[2..]),
            _ when t.StartsWith("<=", StringComparison.Ordinal) => ("<=", t[2..]),
            _ when t.StartsWith("==", StringComparison.Ordinal) => ("==", t[2..]),
            _ when t.StartsWith('>') => (">", t[1..]),
            _ when t.StartsWith('<') => ("<", t[1..]),
            _ => ("==", t),
        };
        if (!Values.TryParseNumber(rest, out v))
        {
            return false;
        }

        (ulong low, ulong high, bool ok) = op switch
        {
            ">=" => (v, ulong.MaxValue, true),
            ">" => (v + 1, ulong.MaxValue, v != ulong.MaxValue),
            "<=" => (0UL, v, true),
            "<" => (0UL, v - 1, v != 0),
            _ => (v, v, true),
        };
        if (!ok)
        {
            return false;
        }

        range = new CounterRange(low, high, op == "==" ? v.ToString(CultureInfo.InvariantCulture) : $"{op} {v}");
        return true;
    }
}

/// <summary>A modeled-cycle budget: <see cref="Expected"/> cycles, give or take <see cref="Tolerance"/> cycles.</summary>
internal readonly record struct CycleBudget(ulong Expected, ulong Tolerance, string ToleranceText)
{
    public bool Contains(ulong cycles) => (cycles > Expected ? cycles - Expected : Expected - cycles) <= Tolerance;

    public override string ToString() => Tolerance == 0 ? Expected.ToString(CultureInfo.InvariantCulture) : $"{Expected} ± {ToleranceText}";

    /// <summary>A tolerance: a cycle count, or a percentage of <paramref name="expected"/> (<c>1%</c>, <c>0.5%</c>).</summary>
    public static bool TryParseTolerance(string text, ulong expected, out ulong tolerance)
    {
        tolerance = 0;
        string t = text.Trim();
        if (t.EndsWith('%'))
        {
            if (!double.TryParse(t[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double pct) || pct < 0 || pct > 100)
            {
                return false;
            }

            tolerance = (ulong)Math.Ceiling(expected * pct / 100);
            return true;
        }

        return Values.TryParseNumber(t, out tolerance);
    }
}

/// <summary>
/// Where a scalar is written in its suite file, for <c>--update-golden</c>: the characters
/// [<see cref="Start"/>, <see cref="End"/>) of the file's text (quotes included) and its 1-based line and column.
/// </summary>
internal readonly record struct ScalarSpot(string File, long Start, long End, long Line, long Column);

/// <summary>The kvm-unit-tests outcome a case expects, with the SUMMARY counts it names.</summary>
internal sealed record KutExpectation(CaseOutcome Outcome, int? Tests, int? Failures, int? Skipped);

/// <summary>
/// What a case of a YAML suite must show when it ends: exit status, console lines present and absent, the
/// kvm-unit-tests outcome, counter values and a modeled-cycle budget. <see cref="Check"/> names the first
/// expectation that does not hold, in that order.
/// </summary>
internal sealed record CaseExpectations
{
    public int? Exit { get; init; }

    public IReadOnlyList<ConsoleMatch> Console { get; init; } = [];

    public IReadOnlyList<ConsoleMatch> ConsoleNot { get; init; } = [];

    public KutExpectation? KvmUnitTests { get; init; }

    /// <summary>Counter name → allowed values, in the order the file lists them.</summary>
    public IReadOnlyList<(string Name, CounterRange Range)> Counters { get; init; } = [];

    public CycleBudget? Cycles { get; init; }

    /// <summary>Where each counter's value is written (the winning one when a case overrides the defaults).</summary>
    public IReadOnlyDictionary<string, ScalarSpot> CounterSpots { get; init; } = new Dictionary<string, ScalarSpot>();

    /// <summary>Where the expected number of <see cref="Cycles"/> is written.</summary>
    public ScalarSpot? CyclesSpot { get; init; }

    /// <summary>The run as the expectations see it.</summary>
    internal readonly record struct Run(int ExitStatus, string Output, IReadOnlyDictionary<string, ulong> Counters, ulong Cycles);

    /// <summary>Null when every expectation holds, else why the first one does not.</summary>
    public string? Check(Run run)
    {
        if (Exit is { } exit && run.ExitStatus != exit)
        {
            return $"exit status {run.ExitStatus}, expected {exit}";
        }

        if (KvmUnitTests is { } kut && CheckKut(kut, run) is { } kutFailure)
        {
            return kutFailure;
        }

        var lines = Lines(run.Output);
        foreach (var m in Console)
        {
            if (m.FirstMatch(lines) == null)
            {
                return $"console has no line {Quote(m)}";
            }
        }

        foreach (var m in ConsoleNot)
        {
            if (m.FirstMatch(lines) is { } line)
            {
                return $"console line '{line}' matches {Quote(m)}, which must not appear";
            }
        }

        foreach (var (name, range) in Counters)
        {
            // Counters the machine lists only when they happened (svm.exits.*) are zero otherwise.
            ulong value = run.Counters.GetValueOrDefault(name);
            if (!range.Contains(value))
            {
                return $"counter {name} = {value}, expected {range}";
            }
        }

        if (Cycles is { } budget && !budget.Contains(run.Cycles))
        {
            return $"cycles {run.Cycles}, expected {budget}";
        }

        return null;
    }

    private static string? CheckKut(KutExpectation kut, Run run)
    {
        var (outcome, summary, fails) = CaseClassifier.Classify(run.ExitStatus, run.Output);
        if (outcome != kut.Outcome)
        {
            string why = fails.Count != 0 ? $" ({fails[0]})" : "";
            return $"kvm-unit-tests outcome {SuiteCommand.Label(outcome)}{why}, expected {SuiteCommand.Label(kut.Outcome)}";
        }

        if (kut.Tests == null && kut.Failures == null && kut.Skipped == null)
        {
            return null;
        }

        if (summary is not { } s)
        {
            return "kvm-unit-tests printed no SUMMARY line, expected subtest counts";
        }

        if ((kut.Tests is { } t && t != s.Tests) || (kut.Failures is { } f && f != s.Failures) || (kut.Skipped is { } k && k != s.Skipped))
        {
            string want = string.Join(", ", new[]
            {
                kut.Tests is { } t2 ? $"{t2} tests" : null,
                kut.Failures is { } f2 ? $"{f2} failures" : null,
                kut.Skipped is { } k2 ? $"{k2} skipped" : null,
            }.Where(x => x != null));
            return $"kvm-unit-tests SUMMARY {s}, expected {want}";
        }

        return null;
    }

    private static string Quote(ConsoleMatch m) => m.Text.StartsWith('/') ? m.Text : $"'{m.Text}'";

    internal static List<string> Lines(string output)
    {
        var lines = new List<string>();
        foreach (string raw in output.Split('\n'))
        {
            lines.Add(raw.TrimEnd('\r'));
        }

        return lines;
    }
}
