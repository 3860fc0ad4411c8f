using System.Text;
using Emulator.Cli.Workloads;
using Emulator.Svm.Run;

namespace Emulator.Tests.Cli.Workloads;

/// <summary>The gcc-compiled workload "mix" (issue 11, item 2) on a machine of its own, against the host's reference.</summary>
public class CompiledWorkloadTests
{
    private static CompiledWorkload Mix
    {
        get
        {
            if (!CompiledWorkload.Mix.IsBuilt)
            {
                Assert.Ignore(CompiledWorkload.Mix.NotBuiltMessage);
            }

            return CompiledWorkload.Mix;
        }
    }

    private static (RunResult Result, string Console, ulong Cycles, ulong Instructions) Run(ulong rounds)
    {
        using var console = new MemoryStream();
        using var m = new Machine(new MachineOptions { MemorySize = 64 << 20, ConsoleOutput = console });
        Mix.Install(m.Cpu, rounds);
        var r = m.Run(new RunLimits { MaxInstructions = 100_000_000 });
        m.Console.Flush();
        return (r, Encoding.ASCII.GetString(console.ToArray()), m.Cpu.Cycles, m.Cpu.Instructions);
    }

    [Test]
    public void EveryRoundVariantPrintsTheReferenceChecksum()
    {
        // 16 rounds go through every size the kernels vary by (round mod 16, 8 and 5).
        var (result, console, _, _) = Run(16);
        Assert.That(result.Reason, Is.EqualTo(StopReason.DebugExit), result.Message);
        Assert.That(result.ExitStatus, Is.EqualTo(CompiledWorkload.ExitStatus));
        Assert.That(console, Is.EqualTo($"{CompiledWorkload.ChecksumLabel}{Mix.ExpectedChecksum(16):x16}\n"));
    }

    [Test]
    public void RoundsChangeTheChecksum() =>
        Assert.That(Mix.ExpectedChecksum(1), Is.Not.EqualTo(Mix.ExpectedChecksum(2)));

    [Test]
    public void ARunIsRepeatableToTheCycle()
    {
        var first = Run(2);
        var second = Run(2);
        Assert.That(first.Result.Reason, Is.EqualTo(StopReason.DebugExit), first.Result.Message);
        Assert.That((second.Cycles, second.Instructions, second.Console), Is.EqualTo((first.Cycles, first.Instructions, first.Console)));
    }

    [Test]
    public void TheChecksumLineIsParsedAndJudged()
    {
        ulong right = CompiledWorkload.Mix.ExpectedChecksum(3);
        Assert.That(CompiledWorkload.Mix.CheckOutput($"noise\nchecksum: 0x{right:x16}\n", 3, out string ok), Is.True);
        Assert.That(ok, Is.EqualTo($"checksum 0x{right:x16} ok"));
        Assert.That(CompiledWorkload.Mix.CheckOutput($"checksum: 0x{right ^ 1:x16}\n", 3, out string wrong), Is.False);
        Assert.That(wrong, Does.Contain("is wrong").And.Contain($"expected 0x{right:x16}"));
        Assert.That(CompiledWorkload.Mix.CheckOutput("", 3, out string none), Is.False);
        Assert.That(none, Does.StartWith("printed no checksum line"));
    }

    [Test]
    public void TooLittleRamIsRefused()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 1 << 20 });
        Assert.That(() => Mix.Install(m.Cpu, 1), Throws.TypeOf<Emulator.Core.Loaders.LoaderException>().With.Message.Contains("too small"));
    }

    [Test]
    public void AWorkloadThatWasNotBuiltSaysSo() =>
        Assert.That(CompiledWorkload.Mix.NotBuiltMessage, Is.EqualTo("workload 'mix' was not built: gcc not found"));
}
