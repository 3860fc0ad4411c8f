using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.CpuTests;

/// <summary>An instruction that straddles a page runs uncached, one at a time: right, and without allocating.</summary>
public sealed class UncachedStepTests
{
    private const int Iterations = 1_000_000;
    private const uint Addend = 0x1234_5678;

    /// <summary>
    /// mov ecx, N (5 bytes); xor eax, eax (2); NOPs up to offset 0xFFD; loop: add rax, imm32 (6 bytes, 0xFFD to
    /// 0x1002, across the page boundary); dec rcx; jnz loop; hlt.
    /// </summary>
    private static TestGuest StraddlingLoop() => TestGuest.Long64(a =>
    {
        var loop = a.CreateLabel();
        a.mov(ecx, Iterations);
        a.xor(eax, eax);
        for (int i = 7; i < 0xFFD; i++)
        {
            a.nop();
        }

        a.Label(ref loop);
        a.add(rax, (int)Addend);
        a.dec(rcx);
        a.jnz(loop);
        a.hlt();
    });

    [Test]
    public void AStraddlingInstructionRunsEveryTime()
    {
        using var g = StraddlingLoop();
        Assert.That(g.Run(ulong.MaxValue), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo((ulong)Iterations * Addend));
        Assert.That(g.Cpu.Instructions, Is.EqualTo(2 + 0xFFD - 7 + (3UL * Iterations) + 1));
    }

    [Test]
    public void AStraddlingInstructionAllocatesNothing()
    {
        using var g = StraddlingLoop();
        ulong at = 20_000;
        g.Run(at);

        Assert.That(g.LeastAllocatedPerWindow(at, 30_000), Is.Zero, "bytes allocated by 10,000 straddling instructions");
    }
}
