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
public class MixBenchmarks : GuestRunBenchmark
{
    [Params(1_000_000)]
    public int Instructions { get; set; }

    // Decode every kernel and fill the TLB before measuring: one round is about 0.9 M instructions.
    [GlobalSetup]
    public void Setup() => Start(new MachineOptions { MemorySize = 64 << 20 }, m => CompiledWorkload.Mix.Install(m.Cpu, 1_000_000_000), 5_000_000);

    [Benchmark]
    public ulong Mix() => Continue(Instructions);
}
