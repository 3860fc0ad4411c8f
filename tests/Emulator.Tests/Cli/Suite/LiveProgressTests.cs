using System.Text;
using System.Text.RegularExpressions;
using Emulator.Cli;
using Emulator.Cli.Suite;
using Spectre.Console;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// <c>emu suite run</c> on a terminal: the live footer (done/total, counts, running cases) below the plain case
/// lines, drawn on a Spectre console that writes to memory and read back through a model of the screen; and
/// the choice between it and plain lines.
/// </summary>
public sealed partial class LiveProgressTests
{
    /// <summary>A terminal that takes cursor movement and is interactive, writing to <paramref name="writer"/>.</summary>
    private static IAnsiConsole Terminal(TextWriter writer) => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.Yes,
        ColorSystem = ColorSystemSupport.Standard,
        Interactive = InteractionSupport.Yes,
        Out = new AnsiConsoleOutput(writer),
    });

    private static List<SuiteCase> Cases(params string[] names) => YamlSuite.Parse(
        "name: s\ncases:\n" + string.Concat(names.Select(n => $"  - {{name: {n}, guest: builtin:workload, max-instructions: 1000, expect: {{exit: 124}}}}\n")), "s.yaml");

    private static CaseResult Result(SuiteCase c, CaseOutcome outcome, string? reason = null) =>
        new(c, outcome, null, outcome == CaseOutcome.Fail ? ["FAIL: went wrong"] : [], reason, TimeSpan.FromSeconds(1.5));

    [Test]
    public void TheFooterShowsCountsAndRunningCasesBelowTheFinishedOnesAndIsGoneAtTheEnd()
    {
        using var w = new StringWriter();
        var cases = Cases("alpha", "beta", "gamma");
        var live = new LiveProgress(Terminal(w), cases.Count);
        string[] during = [];
        var results = new[] { Result(cases[0], CaseOutcome.Pass), Result(cases[1], CaseOutcome.Fail, "exit status 3, expected 0"), Result(cases[2], CaseOutcome.Skip, "why") };
        live.Show(() =>
        {
            live.Started(cases[0]);
            live.Started(cases[1]);
            live.Ended(results[0]);
            live.Print(results[0].Outcome, SuiteCommand.CaseLines(results[0], 5, false));
            live.Started(cases[2]);
            live.Refresh();
            during = Screen.Of(w.ToString());
            live.Ended(results[1]);
            live.Print(results[1].Outcome, SuiteCommand.CaseLines(results[1], 5, false));
            live.Ended(results[2]);
            live.Print(results[2].Outcome, SuiteCommand.CaseLines(results[2], 5, false));
            return 0;
        });

        Assert.That(during, Has.Length.EqualTo(4), string.Join("\n", during));
        Assert.That(during[0], Is.EqualTo(SuiteCommand.FormatLine(results[0], 5)));
        Assert.That(during[1], Does.Match(@"^1/3 done, 1 PASS, \d+\.\d s$"));
        Assert.That(during[2], Does.Match(@"^  running beta \d+\.\d s$"));
        Assert.That(during[3], Does.Match(@"^  running gamma \d+\.\d s$"));

        string[] expected = [.. results.SelectMany(r => SuiteCommand.CaseLines(r, 5, false))];
        Assert.That(expected, Has.Length.EqualTo(4), "the FAIL line of beta is printed under it");
        Assert.That(Screen.Of(w.ToString()), Is.EqualTo(expected), "only the case lines stay");
        Assert.That(w.ToString(), Does.Contain("\u001b[32mPASS\u001b[0m"), "the outcome is coloured");
    }

    [Test]
    public void TheFooterCountsEachOutcomeAndForgetsEndedCases()
    {
        using var w = new StringWriter();
        var cases = Cases("a", "b", "c", "d");
        var live = new LiveProgress(Terminal(w), cases.Count);
        foreach (var c in cases)
        {
            live.Started(c);
        }

        live.Ended(Result(cases[2], CaseOutcome.Timeout));
        live.Ended(Result(cases[0], CaseOutcome.Pass));
        live.Ended(Result(cases[3], CaseOutcome.Pass));
        string footer = string.Join("\n", Screen.Of(Render(live.Footer())));
        Assert.That(footer, Does.Match(@"^3/4 done, 2 PASS, 1 TIMEOUT, \d+\.\d s\n  running b \d+\.\d s$"));
    }

    [Test]
    public void OnATerminalTheCommandPrintsTheSameCaseLinesAndSummary()
    {
        using var w = new StringWriter();
        var console = new CliConsole(Stream.Null, w, TextWriter.Null) { Terminal = Terminal(w) };
        var cases = Cases("one", "two", "three");
        int status = SuiteCommand.Run(console, cases, new SuiteRunner { Jobs = 2 }, null, null, verbose: false);

        Assert.That(status, Is.Zero, w.ToString());
        string[] screen = Screen.Of(w.ToString());
        Assert.That(screen, Has.Length.EqualTo(4), string.Join("\n", screen));
        for (int i = 0; i < cases.Count; i++)
        {
            Assert.That(screen[i], Does.Match($@"^PASS    {cases[i].Name,-5}  \d+\.\d\d s$"));
        }

        Assert.That(screen[3], Does.Match(@"^3 cases: 3 PASS, 0 SKIP, 0 FAIL, 0 TIMEOUT, 0 ERROR in \d+\.\d s$"));
        Assert.That(w.ToString(), Does.Contain("/3 done"), "the footer was shown");
    }

    [Test]
    public void WithoutATerminalTheCommandPrintsPlainLines()
    {
        using var w = new StringWriter();
        var console = new CliConsole(Stream.Null, w, TextWriter.Null);
        Assert.That(console.Interactive, Is.False);
        int status = SuiteCommand.Run(console, Cases("one"), new SuiteRunner { Jobs = 1 }, null, null, verbose: false);
        Assert.That(status, Is.Zero);
        Assert.That(w.ToString(), Does.Not.Contain("\u001b").And.Not.Contain("done"));
    }

    [TestCase(false, null, "xterm-256color", true)]
    [TestCase(true, null, "xterm-256color", false)]
    [TestCase(false, "true", "xterm", false)]
    [TestCase(false, "TRUE", "xterm", false)]
    [TestCase(false, "false", "xterm", true)]
    [TestCase(false, null, "dumb", false)]
    [TestCase(false, null, null, true)]
    public void OnlyAnUnredirectedTerminalOutsideCiThatCanMoveTheCursorGetsTheLiveDisplay(bool redirected, string? ci, string? term, bool live)
    {
        var env = new Dictionary<string, string?> { ["CI"] = ci, ["TERM"] = term };
        Assert.That(CliConsole.IsTerminal(redirected, n => env.GetValueOrDefault(n)), Is.EqualTo(live));
    }

    private static string Render(Spectre.Console.Rendering.IRenderable r)
    {
        using var w = new StringWriter();
        Terminal(w).Write(r);
        return w.ToString();
    }

    /// <summary>
    /// What a VT100-style terminal shows after <c>text</c>: printable characters overwrite, <c>\r</c> and
    /// <c>\n</c> (a tty's output processing makes it CR LF), cursor up (CUU), erase in line (EL) and in display
    /// (ED); colours and cursor visibility do not change the text. Any other control sequence fails the test,
    /// so a change in what Spectre.Console writes cannot pass unnoticed. Rows are trimmed; trailing empty rows dropped.
    /// </summary>
    private static partial class Screen
    {
        public static string[] Of(string text)
        {
            var rows = new List<StringBuilder> { new() };
            int row = 0, col = 0;
            for (int i = 0; i < text.Length; i++)
            {
                char ch = text[i];
                if (ch == '\u001b')
                {
                    var m = Csi().Match(text, i);
                    if (!m.Success || m.Index != i)
                    {
                        Assert.Fail($"unexpected escape at {i}: {text[i..Math.Min(text.Length, i + 10)].Replace("\u001b", "ESC", StringComparison.Ordinal)}");
                    }

                    string p = m.Groups[1].Value;
                    int n = int.TryParse(p, out int v) ? v : 0;
                    switch (m.Groups[2].Value)
                    {
                        case "A":
                            row = Math.Max(0, row - Math.Max(1, n));
                            break;
                        case "K" when n == 2:
                            rows[row].Clear();
                            break;
                        case "K" when n == 0:
                            if (rows[row].Length > col)
                            {
                                rows[row].Length = col;
                            }

                            break;
                        case "J" when n == 0:
                            if (rows[row].Length > col)
                            {
                                rows[row].Length = col;
                            }

                            rows.RemoveRange(row + 1, rows.Count - row - 1);
                            break;
                        case "m":
                        case "l" or "h" when p == "?25":
                            break;
                        default:
                            Assert.Fail($"unexpected control sequence ESC{m.Value[1..]}");
                            break;
                    }

                    i += m.Length - 1;
                }
                else if (ch == '\r')
                {
                    col = 0;
                }
                else if (ch == '\n')
                {
                    row++;
                    col = 0;
                    while (rows.Count <= row)
                    {
                        rows.Add(new());
                    }
                }
                else
                {
                    var line = rows[row];
                    while (line.Length < col)
                    {
                        line.Append(' ');
                    }

                    if (col < line.Length)
                    {
                        line[col] = ch;
                    }
                    else
                    {
                        line.Append(ch);
                    }

                    col++;
                }
            }

            var result = rows.Select(r => r.ToString().TrimEnd()).ToList();
            while (result.Count != 0 && result[^1].Length == 0)
            {
                result.RemoveAt(result.Count - 1);
            }

            return [.. result];
        }

        [GeneratedRegex(@"\u001b\[([0-9;?]*)([A-Za-z])")]
        private static partial Regex Csi();
    }
}
