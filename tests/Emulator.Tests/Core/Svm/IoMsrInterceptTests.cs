using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Iced.Intel;
using NUnit.Framework;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Svm;

/// <summary>IOIO_PROT and MSR_PROT in the handlers (APM vol. 2 §15.10, §15.11): the maps, EXITINFO1/2, order.</summary>
[TestFixture]
public class IoMsrInterceptTests
{
    private static TestGuest Guest(Action<Assembler> body, int bit, out RecordingSvmUnit svm) =>
        InterceptGuest.Long64(
            a =>
            {
                body(a);
                a.hlt();
            },
            out svm,
            misc: InterceptGuest.Bit(bit));

    private static void SetIoBit(TestGuest g, int port)
    {
        ulong at = InterceptGuest.IopmBase + (ulong)(port >> 3);
        g.Mem.Write(at, 1, g.Mem.Read(at, 1) | (1UL << (port & 7)));
    }

    [Test]
    public void OutToAnInterceptedPortExitsWithItsInfoAndTheNextRip()
    {
        using var g = Guest(a => a.@out(0x80, al), SvmIntercept.IoioProt, out var svm);
        SetIoBit(g, 0x80);
        g.Run(100);
        Assert.That(svm.Exits, Has.Count.EqualTo(1));
        var e = svm.Exits[0];
        Assert.That(e.Code, Is.EqualTo(SvmExit.Ioio));
        Assert.That(e.Info1, Is.EqualTo((0x80UL << 16) | (1 << 4) | (1 << 9)), "OUT, SZ8, A64, port");
        Assert.That(e.Info2, Is.EqualTo(TestGuest.CodeBase + 2), "RIP after OUT imm8 (2 bytes)");
    }

    [Test]
    public void AWordInOverlappingAnInterceptedPortExits()
    {
        using (var g = Guest(a => a.@in(ax, dx), SvmIntercept.IoioProt, out var svm))
        {
            SetIoBit(g, 0x80);
            g.Cpu.Gpr[Reg.RDX] = 0x7F;
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Info1), Is.EqualTo(new[] { (0x7FUL << 16) | 1 | (1 << 5) | (1 << 9) }));
        }

        using (var g = Guest(a => a.@in(ax, dx), SvmIntercept.IoioProt, out var svm))
        {
            SetIoBit(g, 0x80);
            g.Cpu.Gpr[Reg.RDX] = 0x7E;
            g.Run(100);
            Assert.That(svm.Exits, Is.Empty);
        }
    }

    [Test]
    public void ARepOutsExitsBeforeItsFirstIterationWithStrRepAndItsSegment()
    {
        using var g = Guest(a =>
            {
                a.db(0x64); // FS: the segment field names the override
                a.rep.outsb();
            }, SvmIntercept.IoioProt, out var svm);
        SetIoBit(g, 0x3F8);
        g.Cpu.Gpr[Reg.RDX] = 0x3F8;
        g.Cpu.Gpr[Reg.RCX] = 3;
        g.Cpu.Gpr[Reg.RSI] = TestGuest.DataBase;
        g.Run(100);
        Assert.That(svm.Exits, Has.Count.EqualTo(1));
        Assert.That(svm.Exits[0].Info1, Is.EqualTo((0x3F8UL << 16) | 4 | 8 | (1 << 4) | (1 << 9) | ((ulong)SegReg.FS << 10)));
        Assert.That(g[Reg.RCX], Is.EqualTo(3UL));
        Assert.That(g[Reg.RSI], Is.EqualTo(TestGuest.DataBase));
    }

    [Test]
    public void InsExitsAsAnInputStringThroughEs()
    {
        using var g = Guest(a => a.insw(), SvmIntercept.IoioProt, out var svm);
        SetIoBit(g, 0x60);
        g.Cpu.Gpr[Reg.RDX] = 0x60;
        g.Cpu.Gpr[Reg.RDI] = TestGuest.DataBase;
        g.Run(100);
        Assert.That(svm.Exits.Select(e => e.Info1), Is.EqualTo(new[] { (0x60UL << 16) | 1 | 4 | (1 << 5) | (1 << 9) }));
    }

    [Test]
    public void AMissingIopmInterceptsEveryPort()
    {
        // The current VMCB's maps are host memory L0 owns; address 0 stands for "no map" (vmcb12's map beyond L1's
        // memory is L0's reflect decision, NestedSvm.L1Intercepts).
        using var g = Guest(a => a.@out(0x70, al), SvmIntercept.IoioProt, out var svm);
        g.Cpu.Intercepts.IopmBase = 0;
        g.Run(100);
        Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.Ioio }));
    }

    private static void SetMsrBit(TestGuest g, int byteOffset, int bit)
    {
        ulong at = InterceptGuest.MsrpmBase + (ulong)byteOffset;
        g.Mem.Write(at, 1, g.Mem.Read(at, 1) | (1UL << bit));
    }

    // KERNEL_GS_BASE (0xC0000102): MSRPM byte 0x840, read bit 4, write bit 5.
    private const uint KernelGsBase = 0xC000_0102;

    [Test]
    public void RdmsrOfAnInterceptedMsrExitsWithInfo0()
    {
        using var g = Guest(a => a.rdmsr(), SvmIntercept.MsrProt, out var svm);
        g.Cpu.Gpr[Reg.RCX] = KernelGsBase;
        g.Cpu.Gpr[Reg.RAX] = 0x77;
        SetMsrBit(g, 0x840, 4);
        g.Run(100);
        Assert.That(svm.Exits.Select(e => (e.Code, e.Info1)), Is.EqualTo(new[] { (SvmExit.Msr, 0UL) }));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x77UL), "the read did not happen");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void WrmsrExitsWithInfo1OnlyWhenTheWriteBitIsSet(bool writeBit)
    {
        using var g = Guest(a => a.wrmsr(), SvmIntercept.MsrProt, out var svm);
        g.Cpu.Gpr[Reg.RCX] = KernelGsBase;
        g.Cpu.Gpr[Reg.RAX] = 0x5678;
        SetMsrBit(g, 0x840, writeBit ? 5 : 4);
        g.Run(100);
        Assert.That(svm.Exits.Select(e => (e.Code, e.Info1)), Is.EqualTo(writeBit ? new[] { (SvmExit.Msr, 1UL) } : []));
        Assert.That(g.Cpu.ReadMsr(KernelGsBase, out ulong v) ? v : 1, Is.EqualTo(writeBit ? 0UL : 0x5678UL));
    }

    [Test]
    public void AnMsrOutsideTheMapExitsBeforeItsOwnGp()
    {
        using var g = Guest(a => a.rdmsr(), SvmIntercept.MsrProt, out var svm);
        g.Cpu.Gpr[Reg.RCX] = 0x4000_1234;
        g.Run(100);
        Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.Msr }));
    }
}
