using BenchmarkDotNet.Attributes;
using Emulator.Mmu.Bench;

namespace Emulator.Benchmarks;

/// <summary>
/// Cost per 4 KiB TDP fault against the size of guest-physical memory (issue target: within 1.5× between
/// 1 GiB and 64 GiB). One invocation faults in every page of the slot once, then zaps it.
/// </summary>
[MemoryDiagnoser]
public class MmuScalingBenchmarks
{
    private FaultWorkload _workload = null!;

    [Params(1, 64)]
    public int GuestGiB { get; set; } = 1;

    [GlobalSetup]
    public void Setup() => _workload = FaultWorkload.Create("tdp-4k", (ulong)GuestGiB << 30);

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    /// <summary>Returns the number of faults; divide the time by GuestGiB · 262,144 for the cost per fault.</summary>
    [Benchmark]
    public ulong Pass() => _workload.Run();
}
