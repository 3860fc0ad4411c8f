using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Xml;
using System.Xml.Linq;

namespace Emulator.Cli.Suite;

/// <summary>The <c>--json</c> report: the run and every case, as records that read back as they were written.</summary>
internal sealed record SuiteReport(DateTimeOffset Started, double Seconds, string? Shard, SuiteTotals Totals, IReadOnlyList<CaseReport> Cases)
{
    private static readonly JsonSerializerOptions s_options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter<CaseOutcome>(JsonNamingPolicy.SnakeCaseUpper) },
    };

    public static SuiteReport From(IReadOnlyList<CaseResult> results, DateTimeOffset started, TimeSpan elapsed, Shard? shard)
    {
        int Count(CaseOutcome o) => results.Count(r => r.Outcome == o);
        var totals = new SuiteTotals(results.Count, Count(CaseOutcome.Pass), Count(CaseOutcome.Skip), Count(CaseOutcome.Fail), Count(CaseOutcome.Timeout), Count(CaseOutcome.Error));
        return new SuiteReport(started, Math.Round(elapsed.TotalSeconds, 3), shard?.ToString(), totals, [.. results.Select(CaseReport.From)]);
    }

    public string ToJson() => JsonSerializer.Serialize(this, s_options);

    public static SuiteReport? FromJson(string json) => JsonSerializer.Deserialize<SuiteReport>(json, s_options);
}

/// <summary>How many cases ended each way.</summary>
internal sealed record SuiteTotals(int Cases, int Passed, int Skipped, int Failed, int TimedOut, int Errors);

/// <summary>One case in the <c>--json</c> report.</summary>
internal sealed record CaseReport(
    string Suite,
    string Name,
    string Source,
    CaseOutcome Outcome,
    string? Reason,
    double Seconds,
    int? ExitStatus,
    ulong? Cycles,
    SubtestSummary? Summary,
    IReadOnlyList<string> FailLines,
    IReadOnlyDictionary<string, ulong> Counters,
    string Output)
{
    public static CaseReport From(CaseResult r) => new(
        r.Case.Suite, r.Case.Name, r.Case.Source, r.Outcome, r.Reason, Math.Round(r.Duration.TotalSeconds, 3), r.ExitStatus, r.Cycles,
        r.Summary, r.FailLines, r.Counters, r.Output);
}

/// <summary>
/// The <c>--junit</c> report as CI systems read it: <c>testsuites</c> with one <c>testsuite</c> per suite, one
/// <c>testcase</c> per case with a <c>failure</c> (FAIL), <c>error</c> (TIMEOUT, ERROR) or <c>skipped</c> element,
/// its time in seconds and the guest console in <c>system-out</c>.
/// </summary>
internal static class JUnitReport
{
    public static XDocument Build(IReadOnlyList<CaseResult> results, DateTimeOffset started, TimeSpan elapsed)
    {
        var root = new XElement("testsuites", new XAttribute("name", "emu suite run"));
        Totals(root, results, elapsed);
        foreach (var group in results.GroupBy(r => r.Case.Suite.Length == 0 ? "suite" : r.Case.Suite))
        {
            var list = group.ToList();
            var suite = new XElement("testsuite", new XAttribute("name", group.Key));
            Totals(suite, list, TimeSpan.FromTicks(list.Sum(r => r.Duration.Ticks)));
            suite.Add(new XAttribute("timestamp", started.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture)));
            suite.Add(new XAttribute("hostname", Clean(Environment.MachineName)));
            foreach (var r in list)
            {
                suite.Add(Case(group.Key, r));
            }

            root.Add(suite);
        }

        return new XDocument(new XDeclaration("1.0", "utf-8", null), root);
    }

    public static void Write(XDocument doc, Stream to)
    {
        using var w = XmlWriter.Create(to, new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false) });
        doc.Save(w);
    }

    private static void Totals(XElement e, IReadOnlyList<CaseResult> results, TimeSpan time)
    {
        e.Add(
            new XAttribute("tests", results.Count),
            new XAttribute("failures", results.Count(r => r.Outcome == CaseOutcome.Fail)),
            new XAttribute("errors", results.Count(r => r.Outcome is CaseOutcome.Timeout or CaseOutcome.Error)),
            new XAttribute("skipped", results.Count(r => r.Outcome == CaseOutcome.Skip)),
            new XAttribute("time", Seconds(time)));
    }

    private static XElement Case(string suite, CaseResult r)
    {
        var e = new XElement(
            "testcase",
            new XAttribute("name", Clean(r.Case.Name)),
            new XAttribute("classname", Clean(suite)),
            new XAttribute("time", Seconds(r.Duration)));
        string message = Clean(r.Reason ?? (r.FailLines.Count != 0 ? r.FailLines[0] : SuiteCommand.Label(r.Outcome)));
        switch (r.Outcome)
        {
            case CaseOutcome.Fail:
                e.Add(new XElement("failure", new XAttribute("message", message), new XAttribute("type", "FAIL"), Clean(string.Join('\n', r.FailLines))));
                break;
            case CaseOutcome.Timeout or CaseOutcome.Error:
                e.Add(new XElement("error", new XAttribute("message", message), new XAttribute("type", SuiteCommand.Label(r.Outcome))));
                break;
            case CaseOutcome.Skip:
                e.Add(new XElement("skipped", new XAttribute("message", message)));
                break;
        }

        if (r.Output.Length != 0)
        {
            e.Add(new XElement("system-out", Clean(r.Output)));
        }

        return e;
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);

    /// <summary>Text XML can hold (XML 1.0 §2.2): a guest may print control characters, which become U+FFFD.</summary>
    internal static string Clean(string s)
    {
        if (s.All(XmlConvert.IsXmlChar))
        {
            return s;
        }

        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (XmlConvert.IsXmlChar(s[i]))
            {
                sb.Append(s[i]);
            }
            else if (i + 1 < s.Length && XmlConvert.IsXmlSurrogatePair(s[i + 1], s[i]))
            {
                sb.Append(s, i, 2);
                i++;
            }
            else
            {
                sb.Append('\uFFFD');
            }
        }

        return sb.ToString();
    }
}
