using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;
using Emulator.Tests.Core;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Nested;

/// <summary>The SMI intercept (APM vol. 2 §15.13.3) and GIF holding a pending SMI (§15.17).</summary>
public class SmiInterceptTests
{
    /// <summary>L2: CLGI, RBX = 1, STGI, RBX = 2 (marked "after"), VMMCALL.</summary>
    private static NestedGuest Guest(bool intercept)
    {
        var n = new NestedGuest((a, l) =>
        {
            a.clgi();
            a.mov(ebx, 1);
            a.stgi();
            l.Place("after");
            a.mov(ebx, 2);
            a.vmmcall();
        });
        n.V.U32(VmcbOffset.InterceptMisc1) = intercept ? 1u << SvmIntercept.Smi : 0;
        return n;
    }

    /// <summary>Runs one instruction at a time until L2 has set RBX to 1 (GIF clear), then raises an SMI and runs on.</summary>
    private static void RunWithSmiWhileGifClear(NestedGuest n)
    {
        while (n[Reg.RBX] != 1)
        {
            n.Cpu.Run(n.Cpu.Instructions + 1);
        }

        Assert.That(n.Cpu.Gif, Is.False);
        n.Cpu.RaiseSmi();
        n.Run();
    }

    [Test]
    public void SmiRaisedWhileGifIsClearExitsOnceStgiSetsIt()
    {
        using var n = Guest(intercept: true);
        RunWithSmiWhileGifClear(n);
        Assert.That(n.V.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Smi));
        Assert.That(n.V.U64(VmcbOffset.Rip), Is.EqualTo(n.At["after"]), "taken at the boundary after STGI");
        Assert.That(n[Reg.RBX], Is.EqualTo(1UL));
    }

    [Test]
    public void SmiWithoutTheInterceptIsDroppedAndTheGuestRunsOn()
    {
        using var n = Guest(intercept: false);
        RunWithSmiWhileGifClear(n);
        Assert.That(n.V.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(n[Reg.RBX], Is.EqualTo(2UL));
        Assert.That(n.Cpu.SmiPending, Is.False);
    }

    [Test]
    public void SmiHeldByL1sClearGifExitsAtVmrun()
    {
        using var n = Guest(intercept: true);
        n.Cpu.Gif = false; // as after L1's CLGI
        n.Cpu.RaiseSmi();
        n.Run();
        Assert.That(n.V.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Smi));
        Assert.That(n.V.U64(VmcbOffset.Rip), Is.EqualTo(NestedGuest.L2Code), "before L2's first instruction");
    }
}
