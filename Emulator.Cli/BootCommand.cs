using System.CommandLine;
using Emulator.Cli.Guests;
using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Timing;
using Emulator.Mmu.Fault;
using Emulator.Svm.Run;

namespace Emulator.Cli;

/// <summary><c>emu boot [IMAGE]</c>: boots an image (or the built-in demo guest) and streams its console to stdout.</summary>
internal static class BootCommand
{
    public static Command Create(CliConsole console)
    {
        var image = new Argument<string?>("IMAGE")
        {
            Description = "Multiboot, ELF64 or flat image; without one, the built-in demo guest runs",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var memory = EmuCli.SizeOption("--memory", "guest RAM (K/M/G suffix; a bare number is MiB) [default: 1G]");
        var smp = new Option<int>("--smp") { Description = "number of vCPUs (APs wait for INIT/SIPI)", DefaultValueFactory = _ => 1, HelpName = "N" };
        var append = new Option<string?>("--append") { Description = "kernel command line (Multiboot cmdline after the image name)", HelpName = "STR" };
        var initrd = new Option<string?>("--initrd") { Description = "file loaded as the first Multiboot module", HelpName = "FILE" };
        var module = new Option<string[]>("--module") { Description = "file loaded as a further Multiboot module (repeatable)", HelpName = "FILE" };
        var format = new Option<string>("--format") { Description = "image format", DefaultValueFactory = _ => "auto" };
        format.AcceptOnlyFromAmong("auto", "multiboot", "elf", "flat");
        var load = EmuCli.NumberOption("--load", "flat images: load address [default: 0x100000; 0x7C00 in real mode]", "ADDR");
        var entry = EmuCli.NumberOption("--entry", "flat images: entry address [default: the load address]", "ADDR");
        var mode = new Option<string>("--mode") { Description = "flat images: processor mode at entry", DefaultValueFactory = _ => "long" };
        mode.AcceptOnlyFromAmong("real", "protected", "long");
        var cpu = new Option<string?>("--cpu") { Description = "CPU features to turn on (+name) or off (-name), comma-separated", HelpName = "FEATURES" };
        // Validated in the action rather than with AcceptOnlyFromAmong, so a bad value is one usage line.
        var apicvToggle = new Option<string?>("--apicv-toggle")
        {
            Description = "how L0 hides the APIC-access page while APICv is inhibited: zap its SPTE (KVM 5.15) or delete and re-add the private memslot [default: zap]",
            HelpName = "zap|memslot",
        };
        var apicvNested = new Option<string?>("--apicv-nested")
        {
            Description = "how a guest with SVM inhibits APICv: VM-wide from creation (Linux 5.15) or per vCPU while it runs L2 (5.19) [default: vm; the demo: vcpu]",
            HelpName = "vm|vcpu",
        };
        var pitReinject = new Option<bool>("--pit-reinject")
        {
            Description = "the PIT re-injects ticks the guest has not acknowledged (KVM's PIT default, QEMU's lost_tick_policy=delay); inhibits APICv (PIT_REINJ) [default: off, as lost_tick_policy=discard]",
        };
        var costTable = EmuCli.CostTableOption();
        var limits = new RunOptions();

        var cmd = new Command("boot", "boot an image and stream the guest console to stdout")
        {
            image, memory, smp, append, initrd, module, format, load, entry, mode, cpu, apicvToggle, apicvNested, pitReinject, costTable,
        };
        limits.AddTo(cmd);
        cmd.SetAction(pr =>
        {
            string? imagePath = pr.GetValue(image);
            if (imagePath is ['-', ..])
            {
                return Usage(console, $"unrecognized option '{imagePath}' (try 'emu boot --help')");
            }

            int cpus = pr.GetValue(smp);
            if (cpus is < 1 or > MachineOptions.MaxCpus)
            {
                return Usage(console, $"--smp {cpus}: need between 1 and {MachineOptions.MaxCpus} vCPUs");
            }

            List<string> features = [];
            if (pr.GetValue(cpu) is { } cpuText && !Values.TryParseFeatures(cpuText, out features, out string? featureError))
            {
                return Usage(console, $"--cpu {cpuText}: {featureError}");
            }

            if (features.Count != 0 && !new CpuFeatures().TryApply(string.Join(',', features), out string? unknown))
            {
                return Usage(console, $"--cpu {pr.GetValue(cpu)}: {unknown}");
            }

            if (!TryParseApicvToggle(pr.GetValue(apicvToggle), out ApicvToggle toggle))
            {
                return Usage(console, $"--apicv-toggle {pr.GetValue(apicvToggle)}: expected zap or memslot");
            }

            if (!TryParseApicvNested(pr.GetValue(apicvNested), out ApicvNestedInhibit nested))
            {
                return Usage(console, $"--apicv-nested {pr.GetValue(apicvNested)}: expected vm or vcpu");
            }

            if (!EmuCli.TryReadCostTable(console, pr.GetValue(costTable), out var costs, out int costError))
            {
                return costError;
            }

            string[] modulePaths = pr.GetValue(module) ?? [];
            string? initrdPath = pr.GetValue(initrd);
            bool imageOnlyOptions = pr.GetValue(append) != null || initrdPath != null || modulePaths.Length != 0
                || pr.GetValue(load) != null || pr.GetValue(entry) != null
                || pr.GetResult(format) is { Implicit: false } || pr.GetResult(mode) is { Implicit: false };
            if (imagePath == null && imageOnlyOptions)
            {
                return Usage(console, "--append, --initrd, --module, --format, --load, --entry and --mode need an IMAGE");
            }

            byte[]? bytes = null;
            if (imagePath != null && (bytes = EmuCli.ReadFile(console, imagePath)) == null)
            {
                return ExitCodes.Usage;
            }

            var paths = new List<string>(modulePaths.Length + 1);
            if (initrdPath != null)
            {
                paths.Add(initrdPath);
            }

            paths.AddRange(modulePaths);
            var modules = new List<BootModule>();
            foreach (string path in paths)
            {
                if (EmuCli.ReadFile(console, path) is not { } data)
                {
                    return ExitCodes.Usage;
                }

                modules.Add(new BootModule(path, data));
            }

            var boot = new BootOptions
            {
                Format = Enum.Parse<ImageFormat>(pr.GetValue(format)!, ignoreCase: true),
                LoadAddress = pr.GetValue(load),
                EntryAddress = pr.GetValue(entry),
                Mode = Enum.Parse<EntryMode>(pr.GetValue(mode)!, ignoreCase: true),
                ImageName = imagePath ?? "emu-demo",
                CommandLine = pr.GetValue(append) ?? "",
                Modules = modules,
            };
            Action<Machine>? after = null;
            if (bytes == null)
            {
                // The demo's machine (DemoGuest.MachineFeatures, MachineNested): what the user did not choose, the demo does, and says so.
                var chosen = new List<string>();
                if (pr.GetValue(cpu) == null)
                {
                    features = [.. DemoGuest.MachineFeatures];
                    chosen.Add("--cpu " + string.Join(',', DemoGuest.MachineFeatures));
                }

                if (pr.GetValue(apicvNested) == null)
                {
                    nested = DemoGuest.MachineNested;
                    chosen.Add("--apicv-nested vcpu (Linux 5.19's per-vCPU NESTED inhibit)");
                }

                if (chosen.Count != 0)
                {
                    console.Error.WriteLine("emu: demo machine: " + string.Join(' ', chosen));
                }

                after = machine => DemoGuest.WriteSummary(console.Output, machine);
            }

            var options = new MachineChoice(pr.GetValue(memory) ?? MachineOptions.DefaultMemory, cpus, features, toggle, nested, costs, pr.GetValue(pitReinject));
            return Run(console, options, limits, pr, machine =>
            {
                if (bytes == null)
                {
                    DemoGuest.Install(machine.Cpu);
                }
                else
                {
                    machine.Load(bytes, boot);
                }
            }, imagePath, after);
        });
        return cmd;
    }

    /// <summary>The machine <c>emu boot</c> builds: what its options chose.</summary>
    internal sealed record MachineChoice(ulong Memory, int Cpus, List<string> Features, ApicvToggle Toggle, ApicvNestedInhibit Nested, CostTable? Costs, bool PitReinject = false);

    /// <summary>
    /// Builds the machine, installs the guest, runs it and reports: the run's message and <c>--stats</c> on stderr, then
    /// <paramref name="after"/> (the demo's summary on stdout, after the guest's output).
    /// </summary>
    internal static int Run(CliConsole console, MachineChoice choice, RunOptions run, ParseResult pr, Action<Machine> install, string? imagePath, Action<Machine>? after = null)
    {
        if (!TryCreate(console, choice.Memory, choice.Cpus, choice.Features, run.TraceIo(pr), run.Trace(pr), out var machine, out int error, choice.Toggle, choice.Costs, choice.Nested, choice.PitReinject))
        {
            return error;
        }

        using (machine)
        {
            try
            {
                install(machine);
            }
            catch (LoaderException e)
            {
                return Usage(console, imagePath == null ? e.Message : $"{imagePath}: {e.Message}");
            }

            var result = machine.Run(run.Limits(pr));
            if (result.Message != null)
            {
                console.Error.WriteLine(result.Message);
            }

            if (run.Stats(pr))
            {
                WriteStats(console.Error, machine);
            }

            if (after != null)
            {
                console.GuestOutput.Flush();
                after(machine);
            }

            return result.ExitStatus;
        }
    }

    /// <summary>The <c>--apicv-toggle</c> value: zap (default when absent) or memslot, case-insensitive.</summary>
    internal static bool TryParseApicvToggle(string? text, out ApicvToggle toggle)
    {
        toggle = ApicvToggle.Zap;
        switch (text?.ToLowerInvariant())
        {
            case null or "zap":
                return true;
            case "memslot":
                toggle = ApicvToggle.Memslot;
                return true;
            default:
                return false;
        }
    }

    /// <summary>The <c>--apicv-nested</c> value: vm (default when absent, Linux 5.15) or vcpu (5.19), case-insensitive.</summary>
    internal static bool TryParseApicvNested(string? text, out ApicvNestedInhibit nested)
    {
        nested = ApicvNestedInhibit.Vm;
        switch (text?.ToLowerInvariant())
        {
            case null or "vm":
                return true;
            case "vcpu":
                nested = ApicvNestedInhibit.Vcpu;
                return true;
            default:
                return false;
        }
    }

    internal static bool TryCreate(CliConsole console, ulong memory, int cpus, List<string> features, bool traceIo, bool trace, out Machine machine, out int error, ApicvToggle toggle = ApicvToggle.Zap, CostTable? costs = null, ApicvNestedInhibit nested = ApicvNestedInhibit.Vm, bool pitReinject = false)
    {
        machine = null!;
        error = 0;
        if (memory < (1 << 20) || (memory & 0xFFF) != 0)
        {
            error = Usage(console, $"--memory: {memory} bytes is not a whole number of 4 KiB pages of at least 1 MiB");
            return false;
        }

        try
        {
            machine = new Machine(new MachineOptions
            {
                MemorySize = memory,
                Cpus = cpus,
                ConsoleOutput = console.GuestOutput,
                Diagnostics = console.Error,
                TraceIo = traceIo,
                Trace = trace,
                CpuFeatures = features,
                ApicvToggle = toggle,
                ApicvNested = nested,
                Costs = costs,
                PitReinject = pitReinject,
            });
            return true;
        }
        catch (Exception e) when (e is OutOfMemoryException or ArgumentException)
        {
            error = Usage(console, $"--memory: cannot allocate {memory >> 20} MiB of guest RAM: {e.Message}");
            return false;
        }
    }

    internal static void WriteStats(TextWriter w, Machine machine)
    {
        foreach (var (name, value) in machine.Stats())
        {
            w.WriteLine($"{name} {value}");
        }
    }

    internal static int Usage(CliConsole console, string message)
    {
        console.Error.WriteLine($"emu: {message}");
        return ExitCodes.Usage;
    }
}

/// <summary>Run-time options shared by <c>boot</c> and <c>bench</c>: limits, statistics, traces.</summary>
internal sealed class RunOptions
{
    private readonly Option<ulong?> _maxInstructions = EmuCli.NumberOption("--max-instructions", "stop (status 124) after N guest instructions");
    private readonly Option<ulong?> _maxCycles = EmuCli.NumberOption("--max-cycles", "stop (status 124) after N modeled cycles");
    private readonly Option<double?> _timeout = new("--timeout") { Description = "stop (status 124) after SEC seconds of wall-clock time", HelpName = "SEC" };
    private readonly Option<bool> _stats = new("--stats") { Description = "print one 'name value' line per counter on stderr at exit" };
    private readonly Option<bool> _trace = new("--trace") { Description = "print the RIP of every instruction on stderr (slow)" };
    private readonly Option<bool> _traceIo = new("--trace-io") { Description = "report port accesses no device handles on stderr" };

    public RunOptions()
    {
        _timeout.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is { } t && (t <= 0 || double.IsNaN(t) || double.IsInfinity(t)))
            {
                r.AddError("--timeout must be a positive number of seconds");
            }
        });
    }

    public void AddTo(Command cmd)
    {
        cmd.Add(_maxInstructions);
        cmd.Add(_maxCycles);
        cmd.Add(_timeout);
        cmd.Add(_stats);
        cmd.Add(_trace);
        cmd.Add(_traceIo);
    }

    public RunLimits Limits(ParseResult pr, ulong? instructions = null) => new()
    {
        MaxInstructions = instructions ?? pr.GetValue(_maxInstructions) ?? ulong.MaxValue,
        MaxCycles = pr.GetValue(_maxCycles) ?? ulong.MaxValue,
        Timeout = pr.GetValue(_timeout) is { } t ? TimeSpan.FromSeconds(t) : null,
    };

    public bool Stats(ParseResult pr) => pr.GetValue(_stats);

    public bool Trace(ParseResult pr) => pr.GetValue(_trace);

    public bool TraceIo(ParseResult pr) => pr.GetValue(_traceIo);
}
