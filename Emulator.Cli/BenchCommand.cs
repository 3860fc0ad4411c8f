using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Emulator.Cli.Guests;
using Emulator.Cli.Workloads;
using Emulator.Core.Loaders;
using Emulator.Core.Timing;
using Emulator.Mmu.Bench;
using Emulator.Svm.Run;

namespace Emulator.Cli;

/// <summary><c>emu bench cpu [IMAGE] [--workload NAME]</c>: interpreter throughput on a built-in workload (docs/workloads.md) or a given image; <c>bench faults</c>, <c>bench nested</c>.</summary>
internal static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var image = new Argument<string?>("IMAGE")
        {
            Description = "image to measure instead of a built-in workload",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var workload = new Option<string?>("--workload")
        {
            Description = $"built-in workload: {LoopWorkload} (the endless hand-written integer loop), {string.Join(", ", CompiledWorkload.All.Select(w => $"{w.Name} ({w.Description})"))} [default: {LoopWorkload}]",
            HelpName = "NAME",
        };
        var rounds = EmuCli.NumberOption("--rounds", $"rounds of a compiled workload [default: {CompiledWorkload.Mix.DefaultRounds} for mix]");
        var instructions = EmuCli.NumberOption("--instructions", $"guest instructions to run [default: {WorkloadGuest.DefaultInstructions}; a compiled workload runs to its end]");
        var json = new Option<bool>("--json") { Description = "print {\"workload\", \"instructions\", \"seconds\", \"mips\", \"hostCyclesPerInstruction\", \"modeledCycles\", \"checksumOk\", ...} as JSON" };
        var memory = EmuCli.SizeOption("--memory", "guest RAM [default: 1G]");
        var smp = new Option<int?>("--smp") { Description = "vCPUs of the machine (vCPU 0 runs the workload; for the decoded-block cache's size) [default: 1]", HelpName = "N" };
        smp.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is { } n && n is < 1 or > MachineOptions.MaxCpus)
            {
                r.AddError($"--smp must be between 1 and {MachineOptions.MaxCpus}");
            }
        });
        var stats = new Option<bool>("--stats") { Description = "print one 'name value' line per counter on stderr at exit" };
        var cpu = new Command("cpu", "guest instructions per second of the interpreter, host TSC cycles per guest instruction")
        {
            image, workload, rounds, instructions, json, memory, smp, stats,
        };
        cpu.SetAction(pr => RunCpu(console, new CpuBench(
            pr.GetValue(image),
            pr.GetValue(workload),
            pr.GetValue(rounds),
            pr.GetValue(instructions),
            pr.GetValue(json),
            pr.GetValue(memory) ?? MachineOptions.DefaultMemory,
            pr.GetValue(smp) ?? 1,
            pr.GetValue(stats))));
        return new Command("bench", "benchmarks") { cpu, CreateFaults(console), CreateNested(console), CreateApicvToggle(console) };
    }

    /// <summary><c>emu bench faults [NAME...]</c>: fault throughput of the MMU engine (workloads of Emulator.Mmu.Bench).</summary>
    private static Command CreateFaults(CliConsole console)
    {
        var names = new Argument<string[]>("NAME")
        {
            Description = "workloads to run [default: all]: " + string.Join(", ", FaultWorkload.Names),
            Arity = ArgumentArity.ZeroOrMore,
            HelpName = "NAME",
        };
        names.AcceptOnlyFromAmong(FaultWorkload.Names);
        var seconds = SecondsOption();
        var json = new Option<bool>("--json") { Description = "print {\"benchmarks\":[{\"name\", \"faultsPerSecond\", \"nsPerFault\", \"allocatedBytesPerFault\"}, ...]}" };
        var guestMemory = EmuCli.SizeOption("--guest-memory", "guest-physical size that tdp-4k and tdp-2m fault over (K/M/G suffix; a bare number is MiB) [default: 4G]");
        var mmuLock = new Option<string?>("--mmu-lock")
        {
            Description = "none: the MMU as emu's machine builds it (one host thread, no lock); rwlock: KVM's read/write mmu_lock on every fault and zap [default: none]",
            HelpName = "none|rwlock",
        };
        var faults = new Command("faults", "fault throughput of the MMU engine: faults/s and allocations per fault") { names, seconds, json, guestMemory, mmuLock };
        faults.SetAction(pr =>
        {
            string[] selected = pr.GetValue(names) is { Length: > 0 } n ? n : FaultWorkload.Names;
            var inv = CultureInfo.InvariantCulture;
            bool asJson = pr.GetValue(json);
            ulong bytes = pr.GetValue(guestMemory) ?? (4UL << 30);
            if (bytes < (2UL << 20) || (bytes & ((2UL << 20) - 1)) != 0 || bytes > (1UL << 40))
            {
                return BootCommand.Usage(console, $"--guest-memory: {bytes} bytes is not a whole number of 2 MiB pages between 2 MiB and 1 TiB");
            }

            bool locked;
            switch (pr.GetValue(mmuLock)?.ToLowerInvariant())
            {
                case null or "none": locked = false; break;
                case "rwlock": locked = true; break;
                default: return BootCommand.Usage(console, $"--mmu-lock {pr.GetValue(mmuLock)}: expected none or rwlock");
            }

            var rows = new JsonArray();
            foreach (string name in selected)
            {
                var r = FaultWorkload.Measure(name, pr.GetValue(seconds) ?? 0.5, bytes, locked);
                if (asJson)
                {
                    rows.Add(new JsonObject
                    {
                        ["name"] = r.Name,
                        ["faultsPerSecond"] = Math.Round(r.FaultsPerSecond),
                        ["nsPerFault"] = Math.Round(r.NsPerFault, 1),
                        ["allocatedBytesPerFault"] = Math.Round(r.AllocatedBytesPerFault, 3),
                        ["faults"] = r.Faults,
                        ["seconds"] = Math.Round(r.Seconds, 6),
                        ["mmuLock"] = locked ? "rwlock" : "none",
                    });
                }
                else
                {
                    console.Output.WriteLine(string.Create(inv, $"{r.Name,-16} {r.FaultsPerSecond,14:N0} faults/s {r.NsPerFault,10:0.0} ns/fault {r.AllocatedBytesPerFault,8:0.###} B/fault"));
                }
            }

            if (asJson)
            {
                console.Output.WriteLine(new JsonObject { ["benchmarks"] = rows }.ToJsonString());
            }

            return ExitCodes.Success;
        });
        return faults;
    }

    /// <summary>
    /// <c>emu bench nested [NAME...]</c>: L2 exit round trips and nested page faults of the built-in L1 hypervisor
    /// (<see cref="NestedGuest"/>) on a machine with nested SVM: rate, wall time, modeled cycles and allocations per unit.
    /// </summary>
    private static Command CreateNested(CliConsole console)
    {
        var names = new Argument<string[]>("NAME")
        {
            Description = "workloads to run [default: all]: " + string.Join(", ", NestedGuest.Names),
            Arity = ArgumentArity.ZeroOrMore,
            HelpName = "NAME",
        };
        names.AcceptOnlyFromAmong(NestedGuest.Names);
        var seconds = SecondsOption();
        var json = new Option<bool>("--json") { Description = "print {\"benchmarks\":[{\"name\", \"unit\", \"unitsPerSecond\", \"nsPerUnit\", \"cyclesPerUnit\", \"allocatedBytesPerUnit\", \"units\", \"seconds\"}, ...]}" };
        var costTable = EmuCli.CostTableOption();
        var nested = new Command("nested", "nested SVM: L2 exit round trips (vmmcall) and nested page faults (npf-shadow, npf-reflect) per second, cycles and allocations per unit")
        {
            names, seconds, json, costTable,
        };
        nested.SetAction(pr =>
        {
            if (!EmuCli.TryReadCostTable(console, pr.GetValue(costTable), out var costs, out int costError))
            {
                return costError;
            }

            string[] selected = pr.GetValue(names) is { Length: > 0 } n ? n : NestedGuest.Names;
            var inv = CultureInfo.InvariantCulture;
            bool asJson = pr.GetValue(json);
            var rows = new JsonArray();
            foreach (string name in selected)
            {
                NestedResult r;
                try
                {
                    using var w = NestedWorkload.Create(name, costs);
                    r = w.Measure(pr.GetValue(seconds) ?? 0.5);
                }
                catch (InvalidOperationException e)
                {
                    // The guest left its loop (an emulator bug): say where, as boot does for a stuck guest.
                    console.Error.WriteLine($"emu: {e.Message}");
                    return ExitCodes.NoProgress;
                }

                if (asJson)
                {
                    rows.Add(new JsonObject
                    {
                        ["name"] = r.Name,
                        ["unit"] = r.Unit,
                        ["unitsPerSecond"] = Math.Round(r.UnitsPerSecond),
                        ["nsPerUnit"] = Math.Round(r.NsPerUnit, 1),
                        ["cyclesPerUnit"] = Math.Round(r.CyclesPerUnit, 3),
                        ["allocatedBytesPerUnit"] = Math.Round(r.AllocatedBytesPerUnit, 3),
                        ["units"] = r.Units,
                        ["seconds"] = Math.Round(r.Seconds, 6),
                    });
                }
                else
                {
                    string unit = r.Unit == "fault" ? "faults" : "round trips";
                    console.Output.WriteLine(string.Create(inv, $"{r.Name,-12} {r.UnitsPerSecond,12:N0} {unit}/s {r.NsPerUnit,9:0.0} ns/{r.Unit} {r.CyclesPerUnit,9:0.#} cycles/{r.Unit} {r.AllocatedBytesPerUnit,6:0.###} B/{r.Unit}"));
                }
            }

            if (asJson)
            {
                console.Output.WriteLine(new JsonObject { ["benchmarks"] = rows }.ToJsonString());
            }

            return ExitCodes.Success;
        });
        return nested;
    }

    /// <summary>
    /// <c>emu bench apicv-toggle [DESIGN...]</c>: the same APIC-heavy SMP guest (<see cref="ApicvToggleGuest"/>) under
    /// each toggle design, side by side: host time, modeled cycles and what each design did, and memslot/zap ratios.
    /// </summary>
    private static Command CreateApicvToggle(CliConsole console)
    {
        var designs = new Argument<string[]>("DESIGN")
        {
            Description = "toggle designs to run [default: zap memslot]",
            Arity = ArgumentArity.ZeroOrMore,
            HelpName = "zap|memslot",
        };
        designs.AcceptOnlyFromAmong(ApicvToggleBench.Designs);
        var iterations = new Option<int?>("--iterations") { Description = $"guest iterations, one inhibit and one un-inhibit each [default: {ApicvToggleBench.DefaultIterations}]", HelpName = "N" };
        iterations.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is { } n && n is < 1 or > 1_000_000)
            {
                r.AddError("--iterations must be between 1 and 1000000");
            }
        });
        var smp = new Option<int?>("--smp") { Description = "vCPUs (2 to 16; vCPU 0 toggles, the others take its IPIs) [default: 2]", HelpName = "N" };
        smp.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is { } n && n is < 2 or > 16)
            {
                r.AddError("--smp must be between 2 and 16");
            }
        });
        var rounds = new Option<int?>("--rounds") { Description = "runs per design, alternating designs; host time is the best round's (modeled counts are the same every round) [default: 3]", HelpName = "N" };
        rounds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is { } n && n is < 1 or > 100)
            {
                r.AddError("--rounds must be between 1 and 100");
            }
        });
        var json = new Option<bool>("--json") { Description = "print {\"designs\":[{\"design\", \"seconds\", \"cycles\", ...}], \"ratio\":{...}}" };
        var costTable = EmuCli.CostTableOption();
        var cmd = new Command("apicv-toggle", "APICv inhibit/un-inhibit under both toggle designs (zap one SPTE, or delete and re-create the memslot): host time, modeled cycles, zaps, MMIO SPTEs, refaults, kicks")
        {
            designs, iterations, smp, rounds, json, costTable,
        };
        cmd.SetAction(pr =>
        {
            if (!EmuCli.TryReadCostTable(console, pr.GetValue(costTable), out var costs, out int costError))
            {
                return costError;
            }

            string[] selected = pr.GetValue(designs) is { Length: > 0 } d ? d : ApicvToggleBench.Designs;
            int n = pr.GetValue(iterations) ?? ApicvToggleBench.DefaultIterations;
            int cpus = pr.GetValue(smp) ?? 2;
            IReadOnlyList<ApicvToggleResult> results;
            try
            {
                results = ApicvToggleBench.Measure(selected, n, cpus, costs, pr.GetValue(rounds) ?? 3);
            }
            catch (InvalidOperationException e)
            {
                console.Error.WriteLine($"emu: {e.Message}");
                return ExitCodes.NoProgress;
            }

            ApicvToggleReport.Write(console.Output, results, n, cpus, pr.GetValue(json));
            return ExitCodes.Success;
        });
        return cmd;
    }

    private static Option<double?> SecondsOption()
    {
        var seconds = new Option<double?>("--seconds") { Description = "minimum measuring time per workload [default: 0.5]", HelpName = "SEC" };
        seconds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is { } t && !(t > 0 && t < 3600))
            {
                r.AddError("--seconds must be between 0 and 3600");
            }
        });
        return seconds;
    }

    /// <summary>The name of the hand-written endless loop (<see cref="WorkloadGuest"/>) among the workloads.</summary>
    internal const string LoopWorkload = "loop";

    /// <summary>Exit status of a compiled workload that printed a wrong checksum, or none.</summary>
    internal const int WrongChecksum = 1;

    private sealed record CpuBench(string? ImagePath, string? Workload, ulong? Rounds, ulong? Instructions, bool Json, ulong Memory, int Smp, bool Stats);

    private static int RunCpu(CliConsole console, CpuBench o)
    {
        if (o.Instructions == 0)
        {
            return BootCommand.Usage(console, "--instructions must be at least 1");
        }

        if (o.ImagePath != null && o.Workload != null)
        {
            return BootCommand.Usage(console, "give an IMAGE or --workload, not both");
        }

        CompiledWorkload? compiled = null;
        string name = o.Workload ?? LoopWorkload;
        if (o.ImagePath == null && name != LoopWorkload)
        {
            compiled = CompiledWorkload.Find(name);
            if (compiled == null)
            {
                return BootCommand.Usage(console, $"unknown workload '{name}' (expected {LoopWorkload}, {string.Join(", ", CompiledWorkload.All.Select(w => w.Name))})");
            }

            if (!compiled.IsBuilt)
            {
                return BootCommand.Usage(console, compiled.NotBuiltMessage);
            }
        }

        if (o.Rounds != null && (compiled == null || o.Rounds == 0))
        {
            return BootCommand.Usage(console, compiled == null ? "--rounds is for a compiled workload (--workload mix)" : "--rounds must be at least 1");
        }

        byte[]? bytes = null;
        if (o.ImagePath != null && (bytes = EmuCli.ReadFile(console, o.ImagePath)) == null)
        {
            return ExitCodes.Usage;
        }

        // The guest's console is kept to check a compiled workload's checksum line, then passed on.
        using var guestOutput = new MemoryStream();
        var captured = new CliConsole(guestOutput, console.Output, console.Error);
        if (!BootCommand.TryCreate(captured, o.Memory, o.Smp, [], false, false, out var machine, out int error))
        {
            return error;
        }

        using (machine)
        {
            ulong rounds = o.Rounds ?? compiled?.DefaultRounds ?? 0;
            try
            {
                if (bytes != null)
                {
                    machine.Load(bytes, new BootOptions { ImageName = o.ImagePath! });
                }
                else if (compiled != null)
                {
                    compiled.Install(machine.Cpu, rounds);
                }
                else
                {
                    WorkloadGuest.Install(machine.Cpu);
                }
            }
            catch (LoaderException e)
            {
                return BootCommand.Usage(console, o.ImagePath == null ? e.Message : $"{o.ImagePath}: {e.Message}");
            }

            // A compiled workload runs to its own end unless --instructions cuts it short; the loop never ends.
            ulong limit = o.Instructions ?? (compiled != null ? ulong.MaxValue : WorkloadGuest.DefaultInstructions);
            ulong tscBefore = HostTsc.Available ? HostTsc.Read() : 0;
            var clock = Stopwatch.StartNew();
            var result = machine.Run(new RunLimits { MaxInstructions = limit });
            double seconds = clock.Elapsed.TotalSeconds;
            ulong tscAfter = HostTsc.Available ? HostTsc.Read() : 0;
            guestOutput.Position = 0;
            guestOutput.CopyTo(console.GuestOutput);
            console.GuestOutput.Flush();

            ulong ran = machine.Cpu.Instructions;
            double mips = seconds > 0 ? ran / seconds / 1e6 : 0;
            double? hostCycles = HostTsc.Available && ran > 0 ? (double)(tscAfter - tscBefore) / ran : null;
            bool ended = result.Reason is StopReason.DebugExit or StopReason.Shutdown;
            bool completed = result.Reason is StopReason.InstructionLimit || (bytes != null && ended)
                || (compiled != null && result.Reason is StopReason.DebugExit && result.ExitStatus == CompiledWorkload.ExitStatus);
            if (!completed && result.Message != null)
            {
                console.Error.WriteLine(result.Message);
            }

            // The checksum is judged when the guest reached its end; a run cut short by --instructions has none.
            bool? checksumOk = null;
            string? checksumText = null;
            if (compiled != null && completed && result.Reason is not StopReason.InstructionLimit)
            {
                string printed = System.Text.Encoding.ASCII.GetString(guestOutput.ToArray());
                checksumOk = compiled.CheckOutput(printed, rounds, out string verdict);
                checksumText = verdict;
            }

            var (cacheBytes, caches) = Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint(machine.Cpus);
            string workloadName = o.ImagePath ?? name;
            var inv = CultureInfo.InvariantCulture;
            if (o.Json)
            {
                console.Output.WriteLine(new JsonObject
                {
                    ["workload"] = workloadName,
                    ["instructions"] = ran,
                    ["seconds"] = Math.Round(seconds, 6),
                    ["mips"] = Math.Round(mips, 3),
                    ["hostCyclesPerInstruction"] = hostCycles is { } hc ? Math.Round(hc, 3) : null,
                    ["modeledCycles"] = machine.Cpu.Cycles,
                    ["checksumOk"] = checksumOk,
                    ["rounds"] = compiled != null ? rounds : null,
                    ["cycles"] = machine.Cpu.Cycles,
                    ["vcpus"] = o.Smp,
                    ["decodedBlockCacheBytes"] = cacheBytes,
                    ["decodedBlockCaches"] = caches,
                }.ToJsonString());
            }
            else
            {
                if (checksumText != null)
                {
                    console.Output.WriteLine($"{workloadName}: {rounds} rounds, {checksumText}");
                }

                console.Output.WriteLine(string.Create(inv, $"{ran} instructions in {seconds:0.000} s: {mips:0.0} MIPS, {machine.Cpu.Cycles} modeled cycles"));
                console.Output.WriteLine(hostCycles is { } c
                    ? string.Create(inv, $"host: {c:0.0} TSC cycles per guest instruction")
                    : $"host cycles per instruction: unavailable ({HostTsc.Unavailable ?? "no instructions ran"})");
                console.Output.WriteLine(string.Create(inv, $"decoded-block cache: {cacheBytes} bytes total ({caches} caches for {o.Smp} vCPUs, {cacheBytes / o.Smp} bytes per vCPU)"));
            }

            if (o.Stats)
            {
                BootCommand.WriteStats(console.Error, machine);
            }

            if (checksumOk == false)
            {
                console.Error.WriteLine($"emu: workload '{compiled!.Name}': {checksumText}");
                return WrongChecksum;
            }

            return completed ? ExitCodes.Success : ExitCodes.NoProgress;
        }
    }
}
