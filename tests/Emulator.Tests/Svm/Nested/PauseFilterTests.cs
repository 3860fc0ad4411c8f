using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;
using Emulator.Tests.Core;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Nested;

/// <summary>The PAUSE filter count and threshold of an intercepted PAUSE (APM vol. 2 §15.14.4).</summary>
public class PauseFilterTests
{
    /// <summary>L2: <paramref name="first"/> PAUSEs, a <paramref name="wait"/>-iteration empty loop, <paramref name="second"/> PAUSEs, VMMCALL.</summary>
    private static NestedGuest Guest(int first, int wait, int second, ushort count, ushort threshold)
    {
        var n = new NestedGuest((a, l) =>
        {
            Loop(a, first, pause: true);
            Loop(a, wait, pause: false);
            Loop(a, second, pause: true);
            a.vmmcall();
        });
        n.V.U32(VmcbOffset.InterceptMisc1) = 1u << SvmIntercept.Pause;
        n.V.U16(VmcbOffset.PauseFilterCount) = count;
        n.V.U16(VmcbOffset.PauseFilterThreshold) = threshold;
        return n;
    }

    private static void Loop(Assembler a, int iterations, bool pause)
    {
        if (iterations == 0)
        {
            return;
        }

        var top = a.CreateLabel();
        a.mov(ecx, iterations);
        a.Label(ref top);
        if (pause)
        {
            a.pause();
        }

        a.dec(ecx);
        a.jnz(top);
    }

    private static ulong ExitAfterRun(NestedGuest n)
    {
        n.Run();
        return n.V.U64(VmcbOffset.ExitCode);
    }

    [Test]
    public void CountReachedExitsOnThePauseThatBringsItToZero()
    {
        using var n = Guest(10, 0, 0, count: 9, threshold: 0);
        Assert.That(ExitAfterRun(n), Is.EqualTo(SvmExit.Pause));
        Assert.That(n[Reg.RCX], Is.EqualTo(2UL), "8 iterations done, the 9th PAUSE exits");
    }

    [Test]
    public void CountNotReachedDoesNotExit()
    {
        using var n = Guest(20, 0, 0, count: 21, threshold: 0);
        Assert.That(ExitAfterRun(n), Is.EqualTo(SvmExit.Vmmcall));
    }

    [Test]
    public void ZeroCountExitsOnEveryPause()
    {
        using var n = Guest(5, 0, 0, count: 0, threshold: 0);
        Assert.That(ExitAfterRun(n), Is.EqualTo(SvmExit.Pause));
        Assert.That(n[Reg.RCX], Is.EqualTo(5UL));
    }

    [Test]
    public void GapLongerThanTheThresholdReloadsTheCount()
    {
        using var n = Guest(20, 1000, 20, count: 21, threshold: 10);
        Assert.That(ExitAfterRun(n), Is.EqualTo(SvmExit.Vmmcall));
    }

    [Test]
    public void GapsWithinTheThresholdKeepCounting()
    {
        using var n = Guest(20, 10, 20, count: 21, threshold: 1000);
        Assert.That(ExitAfterRun(n), Is.EqualTo(SvmExit.Pause));
    }

    [Test]
    public void ThresholdIsIgnoredWhenNotReported()
    {
        using var n = Guest(20, 1000, 20, count: 21, threshold: 10);
        n.Cpu.Features[CpuFeature.PauseFilterThreshold] = false;
        Assert.That(ExitAfterRun(n), Is.EqualTo(SvmExit.Pause));
    }
}
