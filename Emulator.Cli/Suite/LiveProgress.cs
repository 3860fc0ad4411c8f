using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Emulator.Cli.Suite;

/// <summary>
/// What <c>emu suite run</c> shows on a terminal: each finished case's lines scroll up as the plain output has
/// them (the outcome coloured), above a footer redrawn in place with the cases done of all, the count of each
/// outcome so far, the elapsed time and the cases running with how long each has run. Spectre.Console's live
/// display does the drawing: what is written while it is up goes above the footer, which is drawn again below
/// it; the footer is cut to the terminal's height and wraps to its width, both read at each redraw; at the end
/// it is erased, so the output keeps only the case lines. Calls come from the runner's worker threads and from
/// the refresh loop; one lock serializes them, as a Spectre console is not safe to share between threads.
/// </summary>
internal sealed class LiveProgress
{
    /// <summary>How often the footer is redrawn when nothing happens, so the seconds go on.</summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMilliseconds(250);

    private readonly IAnsiConsole _terminal;
    private readonly int _total;
    private readonly TimeProvider _time;
    private readonly long _start;
    private readonly Lock _gate = new();
    private readonly List<(SuiteCase Case, long Since)> _running = [];
    private readonly int[] _counts = new int[Enum.GetValues<CaseOutcome>().Length];
    private int _ended;
    private LiveDisplayContext? _context;

    public LiveProgress(IAnsiConsole terminal, int total, TimeProvider? time = null)
    {
        _terminal = terminal;
        _total = total;
        _time = time ?? TimeProvider.System;
        _start = _time.GetTimestamp();
    }

    /// <summary>Shows the footer while <paramref name="work"/> runs on another thread, redrawing it every <see cref="RefreshInterval"/>, and erases it after.</summary>
    public T Show<T>(Func<T> work)
    {
        var display = new LiveDisplay(_terminal, new Text(""))
        {
            AutoClear = true,
            Overflow = VerticalOverflow.Ellipsis,
            Cropping = VerticalOverflowCropping.Bottom,
        };
        // The live display hides the cursor while it draws; Ctrl+C ends the process without the display's own
        // cleanup, so show it again then, or the user's shell is left without one.
        ConsoleCancelEventHandler showCursor = (_, _) =>
        {
            lock (_gate)
            {
                _terminal.Cursor.Show(true);
            }
        };
        Console.CancelKeyPress += showCursor;
        try
        {
            return Start(display, work);
        }
        finally
        {
            Console.CancelKeyPress -= showCursor;
        }
    }

    private T Start<T>(LiveDisplay display, Func<T> work)
    {
        return display.Start(ctx =>
        {
            lock (_gate)
            {
                _context = ctx;
                ctx.UpdateTarget(Footer());
            }

            var running = Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            try
            {
                while (!running.Wait(RefreshInterval))
                {
                    Refresh();
                }
            }
            catch (AggregateException)
            {
                // Thrown again below, unwrapped.
            }
            finally
            {
                lock (_gate)
                {
                    _context = null;
                }
            }

            return running.GetAwaiter().GetResult();
        });
    }

    /// <summary>A case started: it shows in the footer from now.</summary>
    public void Started(SuiteCase c)
    {
        lock (_gate)
        {
            _running.Add((c, _time.GetTimestamp()));
            Redraw();
        }
    }

    /// <summary>A case ended (in any order): it leaves the running ones and counts under its outcome.</summary>
    public void Ended(CaseResult r)
    {
        lock (_gate)
        {
            int at = _running.FindIndex(x => ReferenceEquals(x.Case, r.Case));
            if (at >= 0)
            {
                _running.RemoveAt(at);
            }

            _counts[(int)r.Outcome]++;
            _ended++;
            Redraw();
        }
    }

    /// <summary>Prints a case's lines above the footer: <paramref name="lines"/>[0] is its result line, which starts with the outcome's label.</summary>
    public void Print(CaseOutcome outcome, IReadOnlyList<string> lines)
    {
        string label = SuiteCommand.Label(outcome);
        var text = new Paragraph();
        for (int i = 0; i < lines.Count; i++)
        {
            string line = lines[i];
            if (i == 0 && line.StartsWith(label, StringComparison.Ordinal))
            {
                text.Append(label, StyleOf(outcome));
                line = line[label.Length..];
            }

            text.Append(line + "\n");
        }

        lock (_gate)
        {
            // One write per case, so the footer is redrawn once, below all of its lines.
            _terminal.Write(new OverFooter(text));
        }
    }

    /// <summary>Redraws the footer (the seconds change even when no case starts or ends).</summary>
    public void Refresh()
    {
        lock (_gate)
        {
            Redraw();
        }
    }

    private void Redraw() => _context?.UpdateTarget(Footer());

    /// <summary>The footer: a line of counts and time, then one line per running case, longest running first.</summary>
    internal IRenderable Footer()
    {
        lock (_gate)
        {
            long now = _time.GetTimestamp();
            var head = new Paragraph();
            head.Append(string.Create(CultureInfo.InvariantCulture, $"{_ended}/{_total} done"), new Style(decoration: Decoration.Bold));
            foreach (var k in Enum.GetValues<CaseOutcome>())
            {
                if (_counts[(int)k] != 0)
                {
                    head.Append(", ");
                    head.Append(string.Create(CultureInfo.InvariantCulture, $"{_counts[(int)k]} {SuiteCommand.Label(k)}"), StyleOf(k));
                }
            }

            head.Append(string.Create(CultureInfo.InvariantCulture, $", {_time.GetElapsedTime(_start, now).TotalSeconds:0.0} s"));
            var rows = new List<IRenderable> { head };
            foreach (var (c, since) in _running)
            {
                rows.Add(new Text(string.Create(CultureInfo.InvariantCulture, $"  running {c.Name} {_time.GetElapsedTime(since, now).TotalSeconds:0.0} s"), new Style(Color.Grey)));
            }

            return new Rows(rows);
        }
    }

    /// <summary>
    /// Lines written where the footer was. The live display moves the cursor back to the footer's first row
    /// and writes over it without erasing, so a line shorter than the footer row under it would keep that row's
    /// tail: erase from the cursor to the end of the screen first (ECMA-48 8.3.39, ED with parameter 0); the
    /// footer is drawn again below the lines.
    /// </summary>
    private sealed class OverFooter(IRenderable lines) : IRenderable
    {
        public Measurement Measure(RenderOptions options, int maxWidth) => lines.Measure(options, maxWidth);

        public IEnumerable<Segment> Render(RenderOptions options, int maxWidth) =>
            lines.Render(options, maxWidth).Prepend(Segment.Control("\u001b[J"));
    }

    private static Style StyleOf(CaseOutcome k) => k switch
    {
        CaseOutcome.Pass => new Style(Color.Green),
        CaseOutcome.Skip => new Style(Color.Yellow),
        _ => new Style(Color.Red, decoration: Decoration.Bold),
    };
}
