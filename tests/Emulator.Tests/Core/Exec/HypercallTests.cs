using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>VMMCALL and VMCALL in the CPU alone: #UD unless the current VMCB intercepts them (VMMCALL, or #UD).</summary>
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

    /// <summary>A hypervisor whose every #VMEXIT runs <paramref name="exit"/> (code, vCPU).</summary>
    private sealed class StubHypervisor(Func<Cpu, ulong, int> exit) : SvmUnit
    {
        public override int Vmrun(Cpu cpu, ulong vmcbPa) => throw new NotSupportedException();

        public override int VmloadVmsave(Cpu cpu, ulong vmcbPa, bool save) => throw new NotSupportedException();

        public override int Exit(Cpu cpu, ulong exitCode, ulong exitInfo1, ulong exitInfo2) => exit(cpu, exitCode);
    }

    [Test]
    public void AnInterceptedVmmcallRunsTheExitHandlerAndContinuesAfterIt()
    {
        using var g = Guest(a => a.vmmcall());
        ulong seenRip = 0, seenCode = 0;
        g.Cpu.Svm = new StubHypervisor((c, code) =>
        {
            seenRip = c.Rip;
            seenCode = code;
            c.Gpr[Reg.RAX] = 42;
            return ExecStatus.EndBlock;
        });
        g.Cpu.Intercepts.Misc = 1UL << SvmIntercept.Vmmcall;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(seenCode, Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(g[Reg.RAX], Is.EqualTo(42UL));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x1234UL), "the instruction after VMMCALL ran");
        Assert.That(seenRip, Is.EqualTo(TestGuest.CodeBase + 10), "the exit sees RIP at VMMCALL (after the 10-byte MOV)");
    }

    [Test]
    public void AVmcallExitsThroughTheUdInterceptAndTheHypervisorMayCompleteIt()
    {
        using var g = Guest(a => a.vmcall());
        var codes = new List<ulong>();
        g.Cpu.Svm = new StubHypervisor((c, code) =>
        {
            codes.Add(code);
            c.Rip += 3;
            return ExecStatus.EndBlock;
        });
        g.Cpu.Intercepts.Exceptions = 1u << Vector.UD;
        g.Run();
        Assert.That(codes, Is.EqualTo(new[] { SvmExit.Exception0 + Vector.UD }));
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x1234UL), "the instruction after VMCALL ran");
    }

    [Test]
    public void AnExitTheHypervisorLetsRunGoesOnAsIfNotIntercepted()
    {
        using var g = Guest(a => a.vmcall());
        int exits = 0;
        g.Cpu.Svm = new StubHypervisor((c, code) =>
        {
            exits++;
            return ExecStatus.Continue;
        });
        g.Cpu.Intercepts.Exceptions = 1u << Vector.UD;
        g.Run();
        Assert.That(exits, Is.EqualTo(1));
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD), "re-injected: delivered through the IDT");
    }
}
