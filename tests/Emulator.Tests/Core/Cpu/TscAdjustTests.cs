using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.CpuTests;

public class TscAdjustTests
{
    private const ulong Step = 100_000_000_000;

    [Test]
    public void CpuidReportsTscAdjust()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(eax, 7);
            a.xor(ecx, ecx);
            a.cpuid();
            a.hlt();
        });
        g.Run();
        Assert.That(g[Reg.RBX] & 2, Is.EqualTo(2));
    }

    [Test]
    public void WritingTscAdjustMovesTheTsc()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r8, rax);
            a.mov(ecx, Msr.TscAdjust);
            a.mov(rax, Step);
            a.mov(rdx, Step >> 32);
            a.wrmsr();
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r9, rax);
            a.rdmsr();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r10, rax);
            a.hlt();
        });
        g.Run();
        Assert.That(g[Reg.R9] - g[Reg.R8], Is.GreaterThanOrEqualTo(Step));
        Assert.That(g[Reg.R9] - g[Reg.R8], Is.LessThan(Step + 10_000));
        Assert.That(g[Reg.R10], Is.EqualTo(Step));
    }

    [Test]
    public void WritingTheTscUpdatesTscAdjust()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r8, rax);
            a.mov(ecx, Msr.Tsc);
            a.mov(rax, Step);
            a.mov(rdx, Step >> 32);
            a.wrmsr();
            a.mov(ecx, Msr.TscAdjust);
            a.rdmsr();
            a.shl(rdx, 32);
            a.or(rax, rdx);
            a.mov(r10, rax);
            a.hlt();
        });
        g.Run();
        // TSC_ADJUST gained (new TSC - TSC just before the write), which is a little less than Step - r8.
        ulong adjust = g[Reg.R10];
        Assert.That(adjust, Is.LessThanOrEqualTo(Step - g[Reg.R8]));
        Assert.That(adjust, Is.GreaterThan(Step - g[Reg.R8] - 10_000));
        Assert.That(g.Cpu.TscAdjust, Is.EqualTo(adjust));
    }
}
