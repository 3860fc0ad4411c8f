using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Emulator.Cli.Suite;

/// <summary>
/// <c>emu suite run PATH...</c>: reads suite files (YAML suites, kvm-unit-tests' <c>unittests.cfg</c>) and the
/// suite files in folders, runs the selected cases (or one shard of them) in-process and in parallel, prints one
/// line per case and a total, writes JUnit and JSON reports, and compares with a known-results file. Exit
/// status: 0 when every case did at least as well as expected (without <c>--expected</c>: no case failed, timed
/// out or erred), 1 otherwise, 2 for usage errors (including errors in suite files).
/// </summary>
internal static class SuiteCommand
{
    public const int Worse = 1;

    public static Command Create(CliConsole console)
    {
        var paths = new Argument<string[]>("PATH") { Description = "suite files (*.yaml, *.yml; kvm-unit-tests' unittests.cfg) or folders of them", Arity = ArgumentArity.OneOrMore };
        var images = new Option<string?>("--images") { Description = "unittests.cfg: folder holding the images [default: each suite file's folder]", HelpName = "DIR" };
        var filter = new Option<string?>("--filter") { Description = "run only cases whose name matches (glob with * and ?; comma-separated list)", HelpName = "NAME" };
        var group = new Option<string?>("--group") { Description = "run only cases in this group (also runs 'nodefault' cases of it)", HelpName = "G" };
        var jobs = new Option<int>("--jobs") { Description = "cases run at the same time (the host's core count by default)", HelpName = "N", DefaultValueFactory = _ => Environment.ProcessorCount };
        var expected = new Option<string?>("--expected") { Description = "known-results file ('name OUTCOME' lines): fail only when a case does worse", HelpName = "FILE" };
        var scale = new Option<double>("--timeout-scale") { Description = "multiply every case's timeout by F", HelpName = "F", DefaultValueFactory = _ => 1 };
        var verbose = new Option<bool>("--verbose") { Description = "print every case's notes (dropped CPU features, ignored QEMU options)" };
        var shard = new Option<string?>("--shard") { Description = "run only part I of N of the selected cases (stable: by name order), for CI matrices", HelpName = "I/N" };
        var junit = new Option<string?>("--junit") { Description = "write a JUnit XML report to FILE", HelpName = "FILE" };
        var json = new Option<string?>("--json") { Description = "write a JSON report to FILE", HelpName = "FILE" };
        var golden = new Option<bool>("--update-golden") { Description = "rewrite the recorded cycles and exact counter values of YAML suites to the measured ones, in place" };
        var run = new Command("run", "run the cases of suite files in-process and report PASS/FAIL/SKIP/TIMEOUT/ERROR per case")
        {
            paths, images, filter, group, jobs, expected, scale, verbose, shard, junit, json, golden,
        };
        run.SetAction(pr =>
        {
            int j = pr.GetValue(jobs);
            double f = pr.GetValue(scale);
            if (j < 1)
            {
                return BootCommand.Usage(console, $"--jobs {j}: need at least 1");
            }

            if (!(f > 0) || double.IsInfinity(f))
            {
                return BootCommand.Usage(console, $"--timeout-scale {f}: need a positive number");
            }

            Shard? part = null;
            if (pr.GetValue(shard) is { } shardText)
            {
                if (!Shard.TryParse(shardText, out var parsed, out string? shardError))
                {
                    return BootCommand.Usage(console, $"--shard {shardError}");
                }

                part = parsed;
            }

            ExpectedResults? known = null;
            string? expectedPath = pr.GetValue(expected);
            if (expectedPath != null)
            {
                if (EmuCli.ReadFile(console, expectedPath) is not { } bytes)
                {
                    return ExitCodes.Usage;
                }

                if (!ExpectedResults.TryParse(SuiteText.Decode(bytes), out known, out string? error))
                {
                    return BootCommand.Usage(console, $"{expectedPath}: {error}");
                }
            }

            var cases = new List<SuiteCase>();
            string? g = pr.GetValue(group);
            foreach (string path in SuiteFiles(pr.GetValue(paths) ?? []))
            {
                if (EmuCli.ReadFile(console, path) is not { } bytes)
                {
                    return ExitCodes.Usage;
                }

                string text = SuiteText.Decode(bytes);
                if (YamlSuite.Handles(path))
                {
                    try
                    {
                        cases.AddRange(YamlSuite.Parse(text, path));
                    }
                    catch (SuiteFileException e)
                    {
                        return BootCommand.Usage(console, e.Message);
                    }
                }
                else
                {
                    if (pr.GetValue(golden))
                    {
                        console.Output.WriteLine($"{path}: a unittests.cfg suite records no golden values; --update-golden leaves it alone");
                    }

                    string dir = pr.GetValue(images) ?? Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
                    cases.AddRange(UnittestsCfg.Parse(text, dir, groupSelected: g != null, file: path));
                }
            }

            var selected = Select(cases, pr.GetValue(filter), g);
            if (selected.Count == 0)
            {
                return BootCommand.Usage(console, "no case matches the filter");
            }

            if (part is { } p)
            {
                selected = p.Select(selected);
            }

            var reports = new ReportFiles(pr.GetValue(junit), pr.GetValue(json), part);
            return Run(console, selected, new SuiteRunner { Jobs = j, TimeoutScale = f }, known, expectedPath, pr.GetValue(verbose), reports, pr.GetValue(golden));
        });
        return new Command("suite", "regression suites") { run };
    }

    /// <summary>
    /// The suite files of the command line in order: a file as given; a folder's <c>*.yaml</c>, <c>*.yml</c> and
    /// <c>unittests.cfg</c> files, in its subfolders too, in ordinal path order. A path that is neither is kept,
    /// so reading it reports it missing.
    /// </summary>
    internal static IEnumerable<string> SuiteFiles(IEnumerable<string> paths)
    {
        foreach (string path in paths)
        {
            if (!Directory.Exists(path))
            {
                yield return path;
                continue;
            }

            var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                .Where(f => YamlSuite.Handles(f) || Path.GetFileName(f) == "unittests.cfg")
                .Order(StringComparer.Ordinal);
            foreach (string f in files)
            {
                yield return f;
            }
        }
    }

    /// <summary>Cases whose name matches one of the comma-separated globs, and that are in the group, when given.</summary>
    internal static List<SuiteCase> Select(IEnumerable<SuiteCase> cases, string? filter, string? group)
    {
        Regex[] globs = filter == null ? [] :
            [.. filter.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Glob)];
        return [.. cases.Where(c => (globs.Length == 0 || globs.Any(r => r.IsMatch(c.Name))) && (group == null || c.Groups.Contains(group)))];
    }

    private static Regex Glob(string pattern) =>
        new("^" + Regex.Escape(pattern).Replace(@"\*", ".*", StringComparison.Ordinal).Replace(@"\?", ".", StringComparison.Ordinal) + "$", RegexOptions.CultureInvariant);

    /// <summary>The report files to write (<c>--junit</c>, <c>--json</c>) and the shard they describe.</summary>
    internal sealed record ReportFiles(string? JUnit, string? Json, Shard? Shard);

    internal static int Run(CliConsole console, List<SuiteCase> cases, SuiteRunner runner, ExpectedResults? known, string? expectedPath, bool verbose, ReportFiles? reports = null, bool updateGolden = false)
    {
        var o = console.Output;
        int width = cases.Count == 0 ? 0 : Math.Min(40, cases.Max(c => c.Name.Length));
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        IReadOnlyList<CaseResult> results;
        if (console.Terminal is { } terminal)
        {
            var live = new LiveProgress(terminal, cases.Count);
            results = live.Show(() => runner.Run(cases, r => live.Print(r.Outcome, CaseLines(r, width, verbose)), live.Started, live.Ended));
        }
        else
        {
            results = runner.Run(cases, r =>
            {
                foreach (string line in CaseLines(r, width, verbose))
                {
                    o.WriteLine(line);
                }

                o.Flush();
            });
        }

        var elapsed = clock.Elapsed;
        var counts = Enum.GetValues<CaseOutcome>().Select(k => $"{results.Count(r => r.Outcome == k)} {Label(k)}");
        string shardNote = reports?.Shard is { } sh ? $" (shard {sh})" : "";
        o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{results.Count} cases{shardNote}: {string.Join(", ", counts)} in {elapsed.TotalSeconds:0.0} s"));
        var measured = results;
        if (updateGolden)
        {
            // A case that failed only on golden values passes with the values just written (exit status 0 then).
            var update = GoldenUpdate.Apply(results, o);
            results = [.. results.Select(r => update.Fixed.Contains(r) ? r with { Outcome = CaseOutcome.Pass, FailLines = [], Reason = null } : r)];
        }

        if (known == null)
        {
            foreach (var r in results.Where(r => r.Outcome > CaseOutcome.Skip))
            {
                o.WriteLine($"{Label(r.Outcome)}: {r.Case.Name}: {r.Reason ?? (r.FailLines.Count != 0 ? r.FailLines[0] : "")}".TrimEnd(' ', ':'));
            }
        }

        if (reports != null && !WriteReports(console, reports, measured, started, elapsed))
        {
            return ExitCodes.Usage;
        }

        int status;
        if (known != null)
        {
            var cmp = known.Compare(results);
            foreach (var (name, exp, act) in cmp.Improvements)
            {
                o.WriteLine($"improved: {name} {Label(exp)} -> {Label(act)} (update {expectedPath})");
            }

            foreach (var (name, act) in cmp.Unlisted)
            {
                o.WriteLine($"not in {expectedPath}: {name} {Label(act)}");
            }

            foreach (var (name, exp, act) in cmp.Regressions)
            {
                o.WriteLine($"REGRESSION: {name} expected {Label(exp)}, got {Label(act)}");
            }

            o.WriteLine(cmp.Regressions.Count == 0
                ? $"no case did worse than {expectedPath}"
                : $"{cmp.Regressions.Count} cases did worse than {expectedPath}");
            status = cmp.Regressions.Count == 0 ? ExitCodes.Success : Worse;
        }
        else
        {
            status = results.Any(r => r.Outcome > CaseOutcome.Skip) ? Worse : ExitCodes.Success;
        }

        o.Flush();
        return status;
    }

    private static bool WriteReports(CliConsole console, ReportFiles reports, IReadOnlyList<CaseResult> results, DateTimeOffset started, TimeSpan elapsed)
    {
        try
        {
            if (reports.JUnit is { } junit)
            {
                using var f = File.Create(junit);
                JUnitReport.Write(JUnitReport.Build(results, started, elapsed), f);
            }

            if (reports.Json is { } json)
            {
                File.WriteAllText(json, SuiteReport.From(results, started, elapsed, reports.Shard).ToJson() + "\n");
            }

            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            console.Error.WriteLine($"emu: cannot write a report: {e.Message}");
            return false;
        }
    }

    /// <summary>What a finished case prints: its result line, then its FAIL lines and notes when it did not pass (all with <paramref name="verbose"/>).</summary>
    internal static List<string> CaseLines(CaseResult r, int width, bool verbose)
    {
        var lines = new List<string> { FormatLine(r, width) };
        if (r.Outcome != CaseOutcome.Pass || verbose)
        {
            lines.AddRange(r.FailLines.Select(fail => $"    {fail}"));
        }

        if (verbose || r.Outcome is not (CaseOutcome.Pass or CaseOutcome.Skip))
        {
            lines.AddRange(r.Case.Notes.Select(note => $"    note: {note}"));
        }

        return lines;
    }

    internal static string Label(CaseOutcome k) => k.ToString().ToUpperInvariant();

    internal static string FormatLine(CaseResult r, int width)
    {
        string detail = r.Summary is { } s ? $"({s})" : "";
        if (r.Reason != null)
        {
            detail = detail.Length == 0 ? $"({r.Reason})" : $"{detail} ({r.Reason})";
        }

        string seconds = r.Outcome == CaseOutcome.Skip && r.Duration == TimeSpan.Zero ? "" : string.Create(CultureInfo.InvariantCulture, $" {r.Duration.TotalSeconds:0.00} s");
        return $"{Label(r.Outcome),-7} {r.Case.Name.PadRight(width)} {detail}{seconds}".TrimEnd();
    }
}
