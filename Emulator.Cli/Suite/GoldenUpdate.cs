using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Emulator.Cli.Suite;

/// <summary>
/// <c>emu suite run --update-golden</c>: rewrites the golden values of YAML suites (a case's expected cycles and
/// its exact counter values) to what the cases measured, in place. Only the number inside each scalar changes;
/// every other character of the file (comments, quotes, key order, other numbers) stays. Ranges and bounds
/// (<c>&gt;= 1</c>, <c>1..5</c>), exit status and console lines are expectations, not recordings, and stay too.
/// A value several cases share (written in <c>defaults</c>) changes only when all of them measured the same.
/// </summary>
internal static partial class GoldenUpdate
{
    /// <summary>One golden value rewritten: where, which expectation, and the old and new numbers.</summary>
    internal sealed record Change(ScalarSpot Spot, string What, ulong Old, ulong New)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Spot.File}:{Spot.Line}:{Spot.Column}: {What} {Old} -> {New}");
    }

    /// <summary>What an update did: the values rewritten, the warnings, and the failed cases its new values make pass.</summary>
    internal sealed record Result(IReadOnlyList<Change> Changes, IReadOnlyList<string> Warnings, IReadOnlySet<CaseResult> Fixed);

    /// <summary>A golden value a case proposes: the value it measured for the expectation at <see cref="Spot"/>.</summary>
    private sealed record Proposal(CaseResult Case, ScalarSpot Spot, string What, ulong Old, ulong Actual);

    /// <summary>
    /// Rewrites the suite files of the cases in <paramref name="results"/> that ran to the end (PASS or FAIL: not
    /// skipped, timed out or erred) and prints one line per changed value, the warnings and a count to
    /// <paramref name="output"/>.
    /// </summary>
    public static Result Apply(IReadOnlyList<CaseResult> results, TextWriter output)
    {
        var proposals = new List<Proposal>();
        foreach (var r in results)
        {
            if (r.Case.Expect is not { } expect || r.Outcome is not (CaseOutcome.Pass or CaseOutcome.Fail) || r.Cycles is not { } cycles)
            {
                continue;
            }

            foreach (var (name, range) in expect.Counters)
            {
                if (IsExact(range) && expect.CounterSpots.TryGetValue(name, out var spot))
                {
                    proposals.Add(new Proposal(r, spot, $"counter {name}", range.Low, r.Counters.GetValueOrDefault(name)));
                }
            }

            if (expect.Cycles is { } budget && expect.CyclesSpot is { } cyclesSpot)
            {
                proposals.Add(new Proposal(r, cyclesSpot, "cycles", budget.Expected, cycles));
            }
        }

        var warnings = new List<string>();
        var changes = new List<Change>();
        var conflicts = new HashSet<ScalarSpot>();
        foreach (var same in proposals.GroupBy(p => p.Spot).OrderBy(g => g.Key.File, StringComparer.Ordinal).ThenBy(g => g.Key.Start))
        {
            var first = same.First();
            if (same.Any(p => p.Actual != first.Actual))
            {
                conflicts.Add(same.Key);
                string measured = string.Join(", ", same.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Case.Case.Name} {p.Actual}")));
                warnings.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{same.Key.File}:{same.Key.Line}:{same.Key.Column}: {first.What} is shared by cases that measured different values ({measured}); left at {first.Old}"));
            }
            else if (first.Actual != first.Old)
            {
                changes.Add(new Change(same.Key, first.What, first.Old, first.Actual));
            }
        }

        var written = new List<Change>();
        foreach (var file in changes.GroupBy(c => c.Spot.File))
        {
            if (Rewrite(file.Key, [.. file], out string? error))
            {
                written.AddRange(file);
            }
            else
            {
                warnings.Add($"{file.Key}: not updated: {error}");
            }
        }

        foreach (var c in written)
        {
            output.WriteLine(c.ToString());
        }

        foreach (string w in warnings)
        {
            output.WriteLine($"warning: {w}");
        }

        int files = written.Select(c => c.Spot.File).Distinct().Count();
        output.WriteLine(written.Count == 0
            ? "golden values: nothing to update"
            : $"golden values: {written.Count} updated in {files} {(files == 1 ? "file" : "files")}");

        var done = written.Select(c => c.Spot).ToHashSet();
        var unchanged = proposals.Where(p => p.Actual == p.Old && !conflicts.Contains(p.Spot)).Select(p => p.Spot).ToHashSet();
        return new Result(written, warnings, FixedCases(results, s => done.Contains(s) || unchanged.Contains(s)));
    }

    /// <summary>True for a counter expectation that records one value (<c>N</c>, <c>== N</c>), not a bound or range.</summary>
    internal static bool IsExact(CounterRange range) => range.Low == range.High && range.Text.Length != 0 && char.IsAsciiDigit(range.Text[0]) && !range.Text.Contains("..", StringComparison.Ordinal);

    /// <summary>The failed cases that pass with the golden values at the spots <paramref name="current"/> accepts set to what they measured.</summary>
    private static HashSet<CaseResult> FixedCases(IReadOnlyList<CaseResult> results, Func<ScalarSpot, bool> current)
    {
        var fixedCases = new HashSet<CaseResult>();
        foreach (var r in results)
        {
            if (r.Outcome != CaseOutcome.Fail || r.Case.Expect is not { } expect || r.Cycles is not { } cycles || r.ExitStatus is not { } exit)
            {
                continue;
            }

            var counters = new List<(string Name, CounterRange Range)>();
            foreach (var (name, range) in expect.Counters)
            {
                bool golden = IsExact(range) && expect.CounterSpots.TryGetValue(name, out var spot) && current(spot);
                ulong v = r.Counters.GetValueOrDefault(name);
                counters.Add(golden ? (name, new CounterRange(v, v, v.ToString(CultureInfo.InvariantCulture))) : (name, range));
            }

            var budget = expect.Cycles;
            if (budget is { } b && expect.CyclesSpot is { } cs && current(cs))
            {
                budget = b with { Expected = cycles };
            }

            var updated = expect with { Counters = counters, Cycles = budget };
            if (updated.Check(new CaseExpectations.Run(exit, r.Output, r.Counters, cycles)) == null)
            {
                fixedCases.Add(r);
            }
        }

        return fixedCases;
    }

    /// <summary>Replaces the number inside each changed scalar of <paramref name="path"/> and writes the file atomically (a temporary file renamed over it).</summary>
    private static bool Rewrite(string path, List<Change> changes, out string? error)
    {
        error = null;
        string text;
        bool mark;
        try
        {
            // Decoded as the reader decoded it (without a byte-order mark), so the positions match; the mark is written back.
            byte[] bytes = File.ReadAllBytes(path);
            mark = SuiteText.HasByteOrderMark(bytes);
            text = SuiteText.Decode(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = e.Message;
            return false;
        }

        // Last first, so the earlier spots' positions still hold.
        var sb = new StringBuilder(text);
        foreach (var c in changes.OrderByDescending(c => c.Spot.Start))
        {
            if (c.Spot.Start < 0 || c.Spot.End > text.Length || c.Spot.Start >= c.Spot.End)
            {
                error = $"the file changed since it was read (line {c.Spot.Line})";
                return false;
            }

            string scalar = text[(int)c.Spot.Start..(int)c.Spot.End];
            var m = NumberPattern().Match(scalar);
            if (!m.Success || !Values.TryParseNumber(m.Value, out ulong old) || old != c.Old)
            {
                error = $"the file changed since it was read (line {c.Spot.Line}: '{scalar}')";
                return false;
            }

            sb.Remove((int)c.Spot.Start + m.Index, m.Length).Insert((int)c.Spot.Start + m.Index, Format(c.New, m.Value));
        }

        string temp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            File.WriteAllBytes(temp, SuiteText.Encode(sb.ToString(), mark));
            File.Move(temp, path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = e.Message;
            File.Delete(temp);
            return false;
        }
    }

    /// <summary><paramref name="value"/> written as <paramref name="like"/> is: hexadecimal when it was, with '_' between groups of digits when it had them.</summary>
    internal static string Format(ulong value, string like)
    {
        bool hex = like.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        string digits = hex ? value.ToString(char.IsAsciiLetterUpper(like[^1]) ? "X" : "x", CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);
        if (like.Contains('_'))
        {
            int group = hex ? 4 : 3;
            var sb = new StringBuilder();
            for (int i = 0; i < digits.Length; i++)
            {
                if (i != 0 && (digits.Length - i) % group == 0)
                {
                    sb.Append('_');
                }

                sb.Append(digits[i]);
            }

            digits = sb.ToString();
        }

        return hex ? like[..2] + digits : digits;
    }

    [GeneratedRegex("0[xX][0-9a-fA-F_]+|[0-9][0-9_]*")]
    private static partial Regex NumberPattern();
}
