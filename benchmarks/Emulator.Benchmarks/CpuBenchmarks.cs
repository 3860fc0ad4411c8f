using BenchmarkDotNet.Attributes;
using Emulator.Cli.Guests;
using Emulator.Svm.Run;

namespace Emulator.Benchmarks;

/// <summary>
/// Interpreter throughput on the integer workload of <c>emu bench cpu</c> (<see cref="WorkloadGuest"/>).
/// The guest loops forever, so each invocation continues it for <see cref="Instructions"/> more instructions;
/// the memory diagnoser must show zero bytes allocated per invocation.
/// </summary>
[MemoryDiagnoser]
public class CpuBenchmarks : GuestRunBenchmark
{
    [Params(1_000_000)]
    public int Instructions { get; set; }

    // Decode the loop and fill the TLB before measuring.
    [GlobalSetup]
    public void Setup() => Start(new MachineOptions { MemorySize = 64 << 20 }, m => WorkloadGuest.Install(m.Cpu), 10_000);

    [Benchmark]
    public ulong Workload() => Continue(Instructions);
}
