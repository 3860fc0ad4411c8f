using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Emulator.Cli.Guests;
using Emulator.Core.Loaders;
using Emulator.Svm.Run;

namespace Emulator.Cli;

/// <summary><c>emu bench cpu [IMAGE]</c>: interpreter throughput on the built-in workload or a given image.</summary>
internal static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var image = new Argument<string?>("IMAGE")
        {
            Description = "image to measure instead of the built-in integer workload",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var instructions = EmuCli.NumberOption("--instructions", $"guest instructions to run [default: {WorkloadGuest.DefaultInstructions}]");
        var json = new Option<bool>("--json") { Description = "print {\"mips\", \"instructions\", \"seconds\", \"cycles\"} as JSON" };
        var memory = EmuCli.SizeOption("--memory", "guest RAM [default: 1G]");
        var stats = new Option<bool>("--stats") { Description = "print one 'name value' line per counter on stderr at exit" };
        var cpu = new Command("cpu", "guest instructions per second of the interpreter")
        {
            image, instructions, json, memory, stats,
        };
        cpu.SetAction(pr => RunCpu(console, pr.GetValue(image), pr.GetValue(instructions) ?? WorkloadGuest.DefaultInstructions, pr.GetValue(json), pr.GetValue(memory) ?? MachineOptions.DefaultMemory, pr.GetValue(stats)));
        return new Command("bench", "benchmarks") { cpu };
    }

    private static int RunCpu(CliConsole console, string? imagePath, ulong count, bool json, ulong memory, bool stats)
    {
        if (count == 0)
        {
            return BootCommand.Usage(console, "--instructions must be at least 1");
        }

        byte[]? bytes = null;
        if (imagePath != null && (bytes = EmuCli.ReadFile(console, imagePath)) == null)
        {
            return ExitCodes.Usage;
        }

        if (!BootCommand.TryCreate(console, memory, 1, [], false, false, out var machine, out int error))
        {
            return error;
        }

        using (machine)
        {
            try
            {
                if (bytes == null)
                {
                    WorkloadGuest.Install(machine.Cpu);
                }
                else
                {
                    machine.Load(bytes, new BootOptions { ImageName = imagePath! });
                }
            }
            catch (LoaderException e)
            {
                return BootCommand.Usage(console, $"{imagePath}: {e.Message}");
            }

            var clock = Stopwatch.StartNew();
            var result = machine.Run(new RunLimits { MaxInstructions = count });
            double seconds = clock.Elapsed.TotalSeconds;
            ulong ran = machine.Cpu.Instructions;
            double mips = seconds > 0 ? ran / seconds / 1e6 : 0;
            bool completed = result.Reason is StopReason.InstructionLimit || (bytes != null && result.Reason is StopReason.DebugExit or StopReason.Shutdown);
            if (!completed && result.Message != null)
            {
                console.Error.WriteLine(result.Message);
            }

            var inv = CultureInfo.InvariantCulture;
            if (json)
            {
                console.Output.WriteLine(string.Create(inv, $"{{\"mips\": {mips:0.###}, \"instructions\": {ran}, \"seconds\": {seconds:0.######}, \"cycles\": {machine.Cpu.Cycles}}}"));
            }
            else
            {
                console.Output.WriteLine(string.Create(inv, $"{ran} instructions in {seconds:0.000} s: {mips:0.0} MIPS, {machine.Cpu.Cycles} modeled cycles"));
            }

            if (stats)
            {
                BootCommand.WriteStats(console.Error, machine);
            }

            return completed ? ExitCodes.Success : ExitCodes.NoProgress;
        }
    }
}
