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
public class CpuBenchmarks
{
    private Machine _machine = null!;

    [Params(1_000_000)]
    public int Instructions { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _machine = new Machine(new MachineOptions { MemorySize = 64 << 20 });
        WorkloadGuest.Install(_machine.Cpu);

        // Decode the loop and fill the TLB before measuring.
        _machine.Cpu.Run(10_000);
    }

    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    [Benchmark]
    public ulong Workload()
    {
        var cpu = _machine.Cpu;
        cpu.Run(cpu.Instructions + (ulong)Instructions);
        return cpu.Instructions;
    }
}
