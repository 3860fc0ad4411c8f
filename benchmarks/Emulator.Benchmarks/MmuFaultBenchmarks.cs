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

    /// <summary>False: the MMU as emu's machine builds it (one host thread, no lock); true: KVM's read/write mmu_lock.</summary>
    [Params(false, true)]
    public bool MmuLock { get; set; }

    [GlobalSetup]
    public void Setup() => _workload = FaultWorkload.Create(Workload, 1UL << 30, MmuLock);

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    [Benchmark]
    public ulong Pass() => _workload.Run();
}
