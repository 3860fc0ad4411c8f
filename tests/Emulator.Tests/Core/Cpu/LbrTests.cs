using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// Last-branch recording (APM vol. 2 §13.1.1.3, §13.1.1.6): DebugCtl.LBR, LastBranchFromIP/ToIP and
/// LastExceptionFromIP/ToIP.
/// </summary>
public class LbrTests
{
    /// <summary>A 64-bit guest with an IDT of HLT stubs, from code with named labels.</summary>
    private static (TestGuest G, Dictionary<string, ulong> At) Guest(Action<Assembler, MarkedCode> body)
    {
        var m = MarkedCode.Assemble(64, TestGuest.CodeBase, body);
        var g = TestGuest.Long64(x => x.nop());
        g.Load(m.Code);
        VectorCatcher.Install64(g);
        return (g, m.At);
    }

    private static void WriteDebugCtl(Assembler a, int value)
    {
        a.mov(ecx, (int)Msr.DebugCtl);
        a.mov(eax, value);
        a.xor(edx, edx);
        a.wrmsr();
    }

    /// <summary>A taken JMP, then a not-taken JZ and straight-line code: the JMP stays the last branch.</summary>
    private static void JumpOverTwoNops(Assembler a, MarkedCode l)
    {
        l.Place("from");
        a.jmp(l["to"]);
        a.nop();
        a.nop();
        l.Place("to");
        a.mov(ebx, 1);
        a.test(ebx, ebx);
        a.jz(l["to"]); // not taken
        a.add(ebx, 2);
    }

    [Test]
    public void TakenBranchIsRecordedAndNotTakenOnesAreNot()
    {
        var (g, at) = Guest((a, l) =>
        {
            WriteDebugCtl(a, 1);
            JumpOverTwoNops(a, l);
            WriteDebugCtl(a, 0);
            a.mov(ecx, (int)Msr.LastBranchFromIp);
            a.rdmsr();
            a.mov(r8d, eax);
            a.mov(ecx, (int)Msr.LastBranchToIp);
            a.rdmsr();
            a.mov(r9d, eax);
            a.hlt();
        });
        using var _ = g;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.R8], Is.EqualTo(at["from"]), "LastBranchFromIP");
        Assert.That(g[Reg.R9], Is.EqualTo(at["to"]), "LastBranchToIP");
        Assert.That(g.Cpu.DebugCtl, Is.Zero);
    }

    [Test]
    public void NothingIsRecordedWhileLbrIsClear()
    {
        var (g, _) = Guest((a, l) =>
        {
            var sub = a.CreateLabel();
            JumpOverTwoNops(a, l);
            a.call(sub);
            a.hlt();
            a.Label(ref sub);
            a.ret();
        });
        using var __ = g;
        g.Run();
        Assert.That(g.Cpu.LastBranchFromIp | g.Cpu.LastBranchToIp | g.Cpu.LastExceptionFromIp | g.Cpu.LastExceptionToIp, Is.Zero);
    }

    [Test]
    public void ExceptionMovesTheLastBranchToTheExceptionPairAndIsItselfRecorded()
    {
        var (g, at) = Guest((a, l) =>
        {
            WriteDebugCtl(a, 1);
            JumpOverTwoNops(a, l);
            l.Place("ud");
            a.ud2();
        });
        using var _ = g;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
        Assert.That((g.Cpu.LastExceptionFromIp, g.Cpu.LastExceptionToIp), Is.EqualTo((at["from"], at["to"])));
        Assert.That((g.Cpu.LastBranchFromIp, g.Cpu.LastBranchToIp), Is.EqualTo((at["ud"], VectorCatcher.HandlerBase + Vector.UD)));
    }

    [Test]
    public void DebugExceptionClearsLbrAndKeepsTheBranchThatLedToIt()
    {
        var (g, at) = Guest((a, l) =>
        {
            WriteDebugCtl(a, 1);
            JumpOverTwoNops(a, l);
            a.int1();
        });
        using var _ = g;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.DB));
        Assert.That(g.Cpu.DebugCtl & Cpu.DebugCtlLbr, Is.Zero);
        Assert.That((g.Cpu.LastBranchFromIp, g.Cpu.LastBranchToIp), Is.EqualTo((at["from"], at["to"])));
    }

    [Test]
    public void RepStringIterationsAreNotBranches()
    {
        var (g, at) = Guest((a, l) =>
        {
            a.mov(rsi, TestGuest.DataBase);
            a.mov(rdi, TestGuest.DataBase + 0x100);
            a.mov(r10d, 4);
            WriteDebugCtl(a, 1);
            JumpOverTwoNops(a, l);
            a.mov(rcx, r10);
            a.rep.movsb();
            a.hlt();
        });
        using var _ = g;
        g.Run();
        Assert.That(g[Reg.RCX], Is.Zero);
        Assert.That((g.Cpu.LastBranchFromIp, g.Cpu.LastBranchToIp), Is.EqualTo((at["from"], at["to"])));
    }
}
