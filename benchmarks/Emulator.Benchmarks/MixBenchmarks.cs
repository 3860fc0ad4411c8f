using BenchmarkDotNet.Attributes;
using Emulator.Cli.Workloads;
using Emulator.Svm.Run;

namespace Emulator.Benchmarks;

/// <summary>
/// Interpreter throughput on the gcc-compiled workload of <c>emu bench cpu --workload mix</c> (<see cref="CompiledWorkload"/>).
/// The guest gets far more rounds than any run reaches, so each invocation continues it for <see cref="Instructions"/>
/// more instructions of the same mix; the memory diagnoser must show zero bytes allocated per invocation.
/// Needs the image the build makes with gcc; without it the setup fails with the workload's "not built" message.
/// </summary>
[MemoryDiagnoser]
public class MixBenchmarks
{
    private Machine _machine = null!;

    [Params(1_000_000)]
    public int Instructions { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _machine = new Machine(new MachineOptions { MemorySize = 64 << 20 });
        CompiledWorkload.Mix.Install(_machine.Cpu, 1_000_000_000);

        // Decode every kernel and fill the TLB before measuring: one round is about 0.9 M instructions.
        _machine.Cpu.Run(5_000_000);
    }

    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    [Benchmark]
    public ulong Mix()
    {
        var cpu = _machine.Cpu;
        cpu.Run(cpu.Instructions + (ulong)Instructions);
        return cpu.Instructions;
    }
}
