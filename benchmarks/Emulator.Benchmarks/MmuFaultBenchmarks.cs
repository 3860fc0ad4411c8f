using BenchmarkDotNet.Attributes;
using Emulator.Mmu.Bench;

namespace Emulator.Benchmarks;

/// <summary>Fault throughput of the MMU engine; one invocation runs a workload's full pass (see FaultWorkload).</summary>
[MemoryDiagnoser]
public class MmuFaultBenchmarks
{
    private FaultWorkload _workload = null!;

    [ParamsSource(nameof(WorkloadNames))]
    public string Workload { get; set; } = "tdp-4k";

    public static IEnumerable<string> WorkloadNames => FaultWorkload.Names;

    [GlobalSetup]
    public void Setup() => _workload = FaultWorkload.Create(Workload, 1UL << 30);

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [Benchmark]
    public ulong Pass() => _workload.Run();
}
