using BenchmarkDotNet.Attributes;
using Emulator.Svm.Run;

namespace Emulator.Benchmarks;

/// <summary>
/// A benchmark that runs a built-in guest on vCPU 0 of a machine made once: the setup installs it and warms the
/// decoded-block cache and the TLB, each invocation continues it for a number of instructions.
/// </summary>
public abstract class GuestRunBenchmark
{
    private Machine _machine = null!;

    protected Machine Machine => _machine;

    /// <summary>Makes the machine, installs the guest and runs <paramref name="warmup"/> instructions.</summary>
    protected void Start(MachineOptions options, Action<Machine> install, ulong warmup)
    {
        ArgumentNullException.ThrowIfNull(install);
        _machine = new Machine(options);
        install(_machine);
        _machine.Cpu.Run(warmup);
    }

    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary>Runs <paramref name="instructions"/> more instructions; returns the count so far.</summary>
    protected ulong Continue(int instructions)
    {
        var cpu = _machine.Cpu;
        cpu.Run(cpu.Instructions + (ulong)instructions);
        return cpu.Instructions;
    }
}
