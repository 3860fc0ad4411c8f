using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>VMMCALL and VMCALL in the CPU alone: #UD unless the hypervisor's exit handler is installed.</summary>
public sealed class HypercallTests
{
    private static TestGuest Guest(Action<Assembler> call)
    {
        var g = TestGuest.Long64(a =>
        {
            a.mov(rax, -1);
            call(a);
            a.mov(rbx, 0x1234);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        return g;
    }

    [Test]
    public void VmmcallThatNobodyInterceptsRaisesUd()
    {
        using var g = Guest(a => a.vmmcall());
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
        Assert.That(g.Cpu.UnimplementedSeen, Is.Empty, "VMMCALL is implemented, not a decode gap");
    }

    [Test]
    public void VmcallRaisesUdOnAnAmdProcessor()
    {
        using var g = Guest(a => a.vmcall());
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
        Assert.That(g.Cpu.UnimplementedSeen, Is.Empty);
    }

    [Test]
    public void AnInterceptedVmmcallRunsTheExitHandlerAndContinuesAfterIt()
    {
        using var g = Guest(a => a.vmmcall());
        ulong seenRip = 0;
        g.Cpu.VmmcallExit = c =>
        {
            seenRip = c.Rip;
            c.Gpr[Reg.RAX] = 42;
            return ExecStatus.Continue;
        };
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.RAX], Is.EqualTo(42UL));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x1234UL), "the instruction after VMMCALL ran");
        Assert.That(seenRip, Is.EqualTo(TestGuest.CodeBase + 10), "the exit sees RIP at VMMCALL (after the 10-byte MOV)");
    }

    [Test]
    public void AVmcallExitHandlerReplacesTheUd()
    {
        using var g = Guest(a => a.vmcall());
        int calls = 0;
        g.Cpu.VmcallUdExit = c =>
        {
            calls++;
            return ExecStatus.Continue;
        };
        g.Run();
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
    }
}
