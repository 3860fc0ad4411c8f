using System.Globalization;
using System.Text.RegularExpressions;
using Emulator.Svm.Run;

namespace Emulator.Cli.Suite;

/// <summary>How a case ended, best first: a known-results file may only let a case get better, never worse.</summary>
internal enum CaseOutcome
{
    Pass,
    Skip,
    Fail,
    Timeout,
    Error,
}

/// <summary>The counts of a kvm-unit-tests <c>SUMMARY:</c> line.</summary>
internal readonly record struct SubtestSummary(int Tests, int Failures, int Skipped)
{
    public override string ToString() => $"{Tests} tests, {Failures} failures, {Skipped} skipped";
}

/// <summary>One case's result: outcome, the subtest summary when the kernel printed one, the FAIL lines, why.</summary>
internal sealed record CaseResult(SuiteCase Case, CaseOutcome Outcome, SubtestSummary? Summary, IReadOnlyList<string> FailLines, string? Reason, TimeSpan Duration)
{
    /// <summary>Guest console output (kept for reports that want it).</summary>
    public string Output { get; init; } = "";

    /// <summary>The run's exit status; null when the case did not run (skipped, image missing).</summary>
    public int? ExitStatus { get; init; }

    /// <summary>Modeled cycles of the bootstrap vCPU at the end of the run (<c>cpu.cycles</c>); null when it did not run.</summary>
    public ulong? Cycles { get; init; }

    /// <summary>The machine's counters at the end of the run, as <c>emu boot --stats</c> lists them; empty when it did not run.</summary>
    public IReadOnlyDictionary<string, ulong> Counters { get; init; } = new Dictionary<string, ulong>();
}

/// <summary>
/// Turns a run's exit status and console output into an outcome, the way kvm-unit-tests reports
/// (spec/test-kernels.md): isa-debug-exit status 1 = all passed, 3 = a failure, 77 = all skipped; emu's
/// own 124 = a limit or timeout; anything else (0, 4 = no more progress, 127 = abort) is an error.
/// </summary>
internal static partial class CaseClassifier
{
    public const int Passed = 1, Failed = 3, Skipped = 77;

    public static (CaseOutcome Outcome, SubtestSummary? Summary, List<string> FailLines) Classify(int exitStatus, string output)
    {
        var fails = FailLines(output);
        var summary = ParseSummary(output);
        CaseOutcome outcome = exitStatus switch
        {
            Machine.ExitLimit => CaseOutcome.Timeout,
            Passed or Failed or Skipped when fails.Count != 0 => CaseOutcome.Fail,
            Passed => CaseOutcome.Pass,
            Failed => CaseOutcome.Fail,
            Skipped => CaseOutcome.Skip,
            _ => CaseOutcome.Error,
        };
        return (outcome, summary, fails);
    }

    /// <summary>A short reason for an error or timeout, from the exit status.</summary>
    public static string Describe(int exitStatus) => exitStatus switch
    {
        0 => "exit status 0: the kernel ended without isa-debug-exit",
        Machine.ExitNoProgress => "exit status 4: no more progress",
        Machine.ExitLimit => "exit status 124: timeout",
        127 => "exit status 127: the kernel aborted",
        _ => $"exit status {exitStatus}",
    };

    /// <summary>Lines that report a failed check (<c>FAIL: ...</c>, as lib/report.c prints them).</summary>
    public static List<string> FailLines(string output)
    {
        var lines = new List<string>();
        foreach (string raw in output.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("FAIL:", StringComparison.Ordinal) || line.StartsWith("FAIL ", StringComparison.Ordinal))
            {
                lines.Add(line);
            }
        }

        return lines;
    }

    /// <summary>The last <c>SUMMARY: N tests[, F unexpected failures][, ...][, S skipped]</c> line, if any.</summary>
    public static SubtestSummary? ParseSummary(string output)
    {
        SubtestSummary? found = null;
        foreach (Match m in SummaryPattern().Matches(output))
        {
            int Count(string what)
            {
                var c = Regex.Match(m.Groups[2].Value, @"(\d+) " + what);
                return c.Success ? int.Parse(c.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
            }

            found = new SubtestSummary(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Count("unexpected failures?"), Count("skipped"));
        }

        return found;
    }

    [GeneratedRegex(@"^SUMMARY: (\d+) tests?([^\r\n]*)", RegexOptions.Multiline)]
    private static partial Regex SummaryPattern();
}
