using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core;

public class LoopTests
{
    [Test]
    public void HltWithInterruptsOffEndsTheRun()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.nop();
            a.nop();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Instructions, Is.EqualTo(3));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 3));
    }

    [Test]
    public void InstructionLimitStopsExactly()
    {
        using var g = TestGuest.Long64(a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.nop();
            a.nop();
            a.nop();
            a.nop();
            a.nop();
            a.nop();
            a.hlt();
        });
        Assert.That(g.Run(4), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Instructions, Is.EqualTo(4));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 4));
    }

    [Test]
    public void UndefinedOpcodeWithoutIdtTripleFaults()
    {
        using var g = TestGuest.Long64(a => a.ud2());
        Assert.That(g.Run(), Is.EqualTo(RunExit.TripleFault));
    }

    [Test]
    public void RealModeHltRuns()
    {
        using var g = TestGuest.Real(a => a.hlt());
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Real));
    }

    [Test]
    public void SixteenBitCodeRunsPastOffset0xFFFFWhenTheLimitAllows()
    {
        // Unreal-mode CS (limit 4 GiB): sequential execution carries IP on past 0xFFFF instead of wrapping to 0.
        using var g = TestGuest.Real(a => a.hlt());
        g.Load([0x90, 0x90, 0xF4], 0x10000 + 0xFFFE);
        g.Cpu.Seg[SegReg.CS].Limit = 0xFFFF_FFFF;
        g.Cpu.Rip = 0xFFFE;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x10001UL), "HLT at offset 0x10000 ran");
    }

    [Test]
    public void ExceptionLoopThatRetiresNothingStillStopsAtTheLimit()
    {
        // Real mode, IVT entry 6 points back at the UD2 itself: #UD forever, no instruction retires.
        // (1,000 deliveries push 6,000 bytes: the stack at 0x8000 stays clear of the IVT.)
        using var g = TestGuest.Real(a => a.ud2());
        g.Mem.Write(6 * 4, 4, 0x1000_0000); // 1000:0000 = the code
        Assert.That(g.Run(1_000), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Instructions, Is.Zero);
        Assert.That(g.Cpu.ExceptionsDelivered, Is.EqualTo(1_000UL));
    }
}
