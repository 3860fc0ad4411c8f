using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;
using Emulator.Tests.Core;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Nested;

/// <summary>
/// LBR virtualization (APM vol. 2 §15.23): with VIRT_EXT bit 0, VMRUN loads L2's DebugCtl and LBR MSRs from vmcb12
/// and #VMEXIT saves them there and gives L1 its own back; without it L1 and L2 share them.
/// </summary>
public class LbrVirtualizationTests
{
    private const ulong L1From = 0x1111, L1To = 0x2222, L2From = 0x3333, L2To = 0x4444;

    /// <summary>L2: r8 = LastBranchFromIP and r9 = DebugCtl as it starts, then LBR on, a taken JMP, VMMCALL.</summary>
    private static void L2(Assembler a, MarkedCode l)
    {
        a.mov(ecx, (int)Msr.LastBranchFromIp);
        a.rdmsr();
        a.mov(r8d, eax);
        a.mov(ecx, (int)Msr.DebugCtl);
        a.rdmsr();
        a.mov(r9d, eax);
        a.mov(eax, 1);
        a.xor(edx, edx);
        a.wrmsr();
        l.Place("from");
        a.jmp(l["to"]);
        a.nop();
        l.Place("to");
        a.vmmcall();
    }

    private static NestedGuest Guest(bool virtualize)
    {
        var n = new NestedGuest(L2);
        n.V.U64(VmcbOffset.VirtExt) = virtualize ? VirtExt.LbrVirtualization : 0;
        n.V.U64(VmcbOffset.DbgCtl) = 0;
        n.V.U64(VmcbOffset.BrFrom) = L2From;
        n.V.U64(VmcbOffset.BrTo) = L2To;
        // L1 records with LBR on; its code up to VMRUN has no taken branch, so its record stays this one.
        n.Cpu.DebugCtl = Cpu.DebugCtlLbr;
        n.Cpu.LastBranchFromIp = L1From;
        n.Cpu.LastBranchToIp = L1To;
        return n;
    }

    [Test]
    public void WithLbrVirtualizationL1AndL2KeepTheirOwnRecords()
    {
        using var n = Guest(virtualize: true);
        n.Run();
        Assert.That(n.V.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(n[Reg.R8], Is.EqualTo(L2From), "L2 starts with vmcb12's BR_FROM");
        Assert.That(n[Reg.R9], Is.Zero, "L2 starts with vmcb12's DBGCTL");
        Assert.That(n.V.U64(VmcbOffset.DbgCtl), Is.EqualTo(Cpu.DebugCtlLbr), "L2's DebugCtl saved");
        Assert.That((n.V.U64(VmcbOffset.BrFrom), n.V.U64(VmcbOffset.BrTo)), Is.EqualTo((n.At["from"], n.At["to"])));
        Assert.That(n.Cpu.DebugCtl, Is.EqualTo(Cpu.DebugCtlLbr), "L1's DebugCtl back");
        Assert.That((n.Cpu.LastBranchFromIp, n.Cpu.LastBranchToIp), Is.EqualTo((L1From, L1To)), "L1's record back");
    }

    [Test]
    public void WithoutLbrVirtualizationL1AndL2ShareDebugCtlAndTheRecord()
    {
        using var n = Guest(virtualize: false);
        n.Run();
        Assert.That(n.V.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(n[Reg.R8], Is.EqualTo(L1From), "L2 reads L1's record");
        Assert.That(n[Reg.R9], Is.EqualTo(Cpu.DebugCtlLbr), "L2 runs with L1's DebugCtl");
        Assert.That(n.V.U64(VmcbOffset.BrFrom), Is.EqualTo(L2From), "vmcb12 untouched");
        Assert.That((n.Cpu.LastBranchFromIp, n.Cpu.LastBranchToIp), Is.EqualTo((n.At["from"], n.At["to"])), "L1 sees L2's branch");
    }

    [Test]
    public void LbrVirtualizationNotReportedIsIgnored()
    {
        using var n = Guest(virtualize: true);
        n.Cpu.Features[CpuFeature.LbrVirt] = false;
        n.Run();
        Assert.That(n[Reg.R8], Is.EqualTo(L1From));
        Assert.That((n.Cpu.LastBranchFromIp, n.Cpu.LastBranchToIp), Is.EqualTo((n.At["from"], n.At["to"])));
    }
}
