using BenchmarkDotNet.Attributes;
using Emulator.Cli.Guests;

namespace Emulator.Benchmarks;

/// <summary>
/// Nested SVM on the workloads of <c>emu bench nested</c> (<see cref="NestedGuest"/>): one operation is one L2 exit
/// round trip (L2 → L0 → L1 → VMRUN → L2), one nested #NPF that L0 resolves in the shadow NPT, or one #NPF reflected
/// to L1. Each invocation runs whole passes of the guest's loop; the memory diagnoser must show zero bytes.
/// </summary>
[MemoryDiagnoser]
public class NestedBenchmarks
{
    private const int RoundTrips = 1000;
    private const int ShadowPasses = 2;
    private const int Reflected = 200;

    private NestedWorkload _vmmcall = null!;
    private NestedWorkload _shadow = null!;
    private NestedWorkload _reflect = null!;

    [GlobalSetup]
    public void Setup()
    {
        _vmmcall = NestedWorkload.Create("vmmcall");
        _shadow = NestedWorkload.Create("npf-shadow");
        _reflect = NestedWorkload.Create("npf-reflect");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _vmmcall.Dispose();
        _shadow.Dispose();
        _reflect.Dispose();
    }

    /// <summary>L2's VMMCALL, intercepted by L1, which advances L2's RIP to nRIP and VMRUNs again (one pass each).</summary>
    [Benchmark(OperationsPerInvoke = RoundTrips)]
    public ulong VmmcallRoundTrip()
    {
        _vmmcall.Run(RoundTrips);
        return _vmmcall.Units;
    }

    /// <summary>L2 reads pages L1 maps but the shadow NPT does not (a pass: 512 faults, one round trip, one L1 write).</summary>
    [Benchmark(OperationsPerInvoke = ShadowPasses * NestedGuest.RegionPages)]
    public ulong NpfShadow()
    {
        _shadow.Run(ShadowPasses);
        return _shadow.Units;
    }

    /// <summary>L2 reads a page L1 has not mapped: #NPF to L1, which maps it and VMRUNs (one pass each).</summary>
    [Benchmark(OperationsPerInvoke = Reflected)]
    public ulong NpfReflect()
    {
        _reflect.Run(Reflected);
        return _reflect.Units;
    }
}
