using System.Diagnostics;
using System.Text;
using Emulator.Core.Loaders;
using Emulator.Svm.Run;

namespace Emulator.Cli.Suite;

/// <summary>
/// Runs suite cases in this process, each in its own <see cref="Machine"/> with its console captured to a
/// buffer, up to <see cref="Jobs"/> at a time. Results are handed to the caller in case order as soon as
/// every earlier case has finished, so a report reads the same whatever the scheduling.
/// </summary>
internal sealed class SuiteRunner
{
    /// <summary>Diagnostic lines (unimplemented instructions, ...) kept per case.</summary>
    public const int MaxDiagnosticLines = 20;

    public int Jobs { get; init; } = Environment.ProcessorCount;

    /// <summary>Multiplies every case's timeout (slow or shared hosts).</summary>
    public double TimeoutScale { get; init; } = 1;

    /// <summary>
    /// Runs <paramref name="cases"/> and returns their results in case order. On the worker threads, as things
    /// happen: <paramref name="started"/> when a case starts, <paramref name="ended"/> as soon as it ends (in any
    /// order), and <paramref name="inOrder"/> with each result once every earlier case's has been handed over
    /// (one at a time). Callers that share state between them serialize it themselves.
    /// </summary>
    public IReadOnlyList<CaseResult> Run(IReadOnlyList<SuiteCase> cases, Action<CaseResult>? inOrder = null, Action<SuiteCase>? started = null, Action<CaseResult>? ended = null)
    {
        var results = new CaseResult?[cases.Count];
        int next = -1, reported = 0;
        var gate = new object();

        void Worker()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < cases.Count)
            {
                started?.Invoke(cases[i]);
                var r = RunOne(cases[i]);
                ended?.Invoke(r);
                lock (gate)
                {
                    results[i] = r;
                    while (reported < cases.Count && results[reported] is { } done)
                    {
                        inOrder?.Invoke(done);
                        reported++;
                    }
                }
            }
        }

        int jobs = Math.Clamp(Jobs, 1, Math.Max(1, cases.Count));
        var threads = new Thread[jobs];
        for (int t = 0; t < jobs; t++)
        {
            threads[t] = new Thread(Worker) { Name = $"suite-{t}", IsBackground = true };
            threads[t].Start();
        }

        foreach (var t in threads)
        {
            t.Join();
        }

        return [.. results.Select(r => r!)];
    }

    /// <summary>Builds the case's machine, boots its image with its command line, and classifies the end of the run.</summary>
    public CaseResult RunOne(SuiteCase c)
    {
        var clock = Stopwatch.StartNew();
        if ((c.SkipReason ?? c.Builtin?.Unavailable) is { } skip)
        {
            return new CaseResult(c, CaseOutcome.Skip, null, [], skip, TimeSpan.Zero);
        }

        byte[] image = [];
        var modules = new List<BootModule>();
        string reading = "image";
        try
        {
            if (c.Builtin == null)
            {
                image = File.ReadAllBytes(c.ImagePath);
            }

            if (c.InitrdPath != null)
            {
                reading = "initrd";
                modules.Add(new BootModule(c.InitrdPath, File.ReadAllBytes(c.InitrdPath)));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            string path = reading == "image" ? c.ImagePath : c.InitrdPath!;
            string why = e is FileNotFoundException or DirectoryNotFoundException ? $"{reading} missing" : e.Message;
            return new CaseResult(c, CaseOutcome.Error, null, [], $"{path}: {why}", clock.Elapsed);
        }

        if (c.Cpus > MachineOptions.MaxCpus)
        {
            return new CaseResult(c, CaseOutcome.Error, null, [], $"smp {c.Cpus}: emu has at most {MachineOptions.MaxCpus} vCPUs", clock.Elapsed);
        }

        using var console = new MemoryStream();
        var diag = new BoundedWriter(MaxDiagnosticLines);
        Machine machine;
        try
        {
            machine = new Machine(new MachineOptions
            {
                MemorySize = c.Memory,
                Cpus = c.Cpus,
                CpuFeatures = c.CpuFeatures,
                RtcBase = c.RtcBase,
                ApicvToggle = c.ApicvToggle,
                ApicvNested = c.ApicvNested,
                PitReinject = c.PitReinject,
                ConsoleOutput = console,
                Diagnostics = TextWriter.Synchronized(diag),
            });
        }
        catch (Exception e) when (e is OutOfMemoryException or ArgumentException)
        {
            return new CaseResult(c, CaseOutcome.Error, null, [], $"cannot build the machine: {e.Message}", clock.Elapsed);
        }

        RunResult run;
        Dictionary<string, ulong> counters;
        ulong cycles;
        using (machine)
        {
            try
            {
                if (c.Builtin is { } builtin)
                {
                    builtin.Install(machine);
                }
                else
                {
                    machine.Load(image, new BootOptions { ImageName = c.ImagePath, CommandLine = c.Append, Modules = modules });
                }
            }
            catch (LoaderException e)
            {
                return new CaseResult(c, CaseOutcome.Error, null, [], $"{c.ImagePath}: {e.Message}", clock.Elapsed);
            }

            run = Run(machine, c, c.Timeout * TimeoutScale);
            cycles = machine.Cpu.Cycles;
            counters = new Dictionary<string, ulong>(StringComparer.Ordinal);
            foreach (var (name, value) in machine.Stats())
            {
                counters[name] = value;
            }
        }

        string output = Encoding.UTF8.GetString(console.GetBuffer(), 0, (int)console.Length);
        var (outcome, summary, fails) = CaseClassifier.Classify(run.ExitStatus, output);
        string? reason;
        if (c.Expect is { } expect)
        {
            // A YAML case passes when every expectation holds; only the wall-clock limit is a timeout, as the
            // instruction and cycle limits are part of what the case asks for (it may expect exit 124).
            reason = run.Reason == StopReason.Timeout ? run.Message : expect.Check(new CaseExpectations.Run(run.ExitStatus, output, counters, cycles));
            outcome = run.Reason == StopReason.Timeout ? CaseOutcome.Timeout : reason == null ? CaseOutcome.Pass : CaseOutcome.Fail;
            if (reason != null && run.Message != null && run.Reason != StopReason.Timeout)
            {
                reason += $" ({run.Message.Replace("emu: ", "", StringComparison.Ordinal)})";
            }
        }
        else
        {
            reason = outcome switch
            {
                CaseOutcome.Error or CaseOutcome.Timeout => run.Message ?? CaseClassifier.Describe(run.ExitStatus),
                _ => null,
            };
            if (outcome == CaseOutcome.Error && (diag.Lines.Count != 0 ? diag.Lines[^1] : LastLine(output)) is { Length: > 0 } last)
            {
                // The emulator's last diagnostic (an unimplemented instruction), or else the kernel's last words.
                reason += "; " + (last.Length > 160 ? last[..160] + "..." : last);
            }
        }

        return new CaseResult(c, outcome, summary, fails, reason, clock.Elapsed)
        {
            Output = output,
            ExitStatus = run.ExitStatus,
            Cycles = cycles,
            Counters = counters,
        };
    }

    /// <summary>Runs the machine to the case's limits, stopping at each scheduled action's cycle to apply it.</summary>
    private static RunResult Run(Machine machine, SuiteCase c, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        foreach (var action in c.Actions)
        {
            if (action.AtCycle >= c.MaxCycles)
            {
                break;
            }

            if (machine.Cpu.Cycles < action.AtCycle)
            {
                var part = machine.Run(new RunLimits { MaxInstructions = c.MaxInstructions, MaxCycles = action.AtCycle, Timeout = timeout - clock.Elapsed });
                if (part.Reason != StopReason.CycleLimit)
                {
                    return part;
                }
            }

            action.Apply(machine);
        }

        var left = timeout - clock.Elapsed;
        return machine.Run(new RunLimits { MaxInstructions = c.MaxInstructions, MaxCycles = c.MaxCycles, Timeout = left > TimeSpan.Zero ? left : TimeSpan.FromTicks(1) });
    }

    /// <summary>The kernel's report of an unhandled exception (lib/x86/desc.c prints it before the register dump), else its last line.</summary>
    internal static string LastLine(string output)
    {
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = lines.Length - 1; i >= 0; i--)
        {
            if (lines[i].StartsWith("Unhandled exception", StringComparison.Ordinal))
            {
                return lines[i];
            }
        }

        return lines.Length == 0 ? "" : lines[^1];
    }

    /// <summary>Keeps the first few diagnostic lines of a case, so a noisy guest cannot fill the host's memory.</summary>
    private sealed class BoundedWriter(int maxLines) : TextWriter
    {
        private readonly StringBuilder _line = new();

        public List<string> Lines { get; } = [];

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            if (value == '\n')
            {
                if (Lines.Count < maxLines)
                {
                    Lines.Add(_line.ToString().TrimEnd('\r'));
                }

                _line.Clear();
            }
            else if (_line.Length < 1000)
            {
                _line.Append(value);
            }
        }
    }
}
