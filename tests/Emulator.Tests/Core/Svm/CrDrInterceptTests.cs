using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Iced.Intel;
using NUnit.Framework;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Svm;

/// <summary>CR and DR intercepts and the selective CR0 write intercept (APM vol. 2 §15.9, §15.9.1).</summary>
[TestFixture]
public class CrDrInterceptTests
{
    private static uint Read(int n) => 1u << n;

    private static uint Write(int n) => 1u << (16 + n);

    [Test]
    public void MovFromCr3ExitsAsACr3Read()
    {
        using var g = InterceptGuest.Long64(a => { a.mov(rbx, cr3); a.hlt(); }, out var svm, cr: Read(3));
        g.Run(100);
        Assert.That(svm.Exits.Select(e => (e.Code, e.Info1)), Is.EqualTo(new[] { (SvmExit.CrRead0 + 3, 0UL) }));
        Assert.That(g[Reg.RBX], Is.Zero, "the read did not happen");
    }

    [Test]
    public void MovToCr3ExitsOnlyWithTheWriteBit()
    {
        using (var g = InterceptGuest.Long64(a => { a.mov(cr3, rbx); a.hlt(); }, out var svm, cr: Write(3)))
        {
            ulong cr3 = g.Cpu.Cr3;
            g.Cpu.Gpr[Reg.RBX] = 0x5000;
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.CrWrite0 + 3 }));
            Assert.That(g.Cpu.Cr3, Is.EqualTo(cr3));
        }

        using (var g = InterceptGuest.Long64(a => { a.mov(rbx, cr3); a.mov(cr3, rbx); a.hlt(); }, out var svm, cr: Read(4) | Write(4)))
        {
            g.Run(100);
            Assert.That(svm.Exits, Is.Empty);
        }
    }

    [Test]
    public void MovToCr8ExitsAsACr8Write()
    {
        using var g = InterceptGuest.Long64(a => { a.mov(cr8, rbx); a.hlt(); }, out var svm, cr: Write(8));
        g.Cpu.Gpr[Reg.RBX] = 5;
        g.Run(100);
        Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.CrWrite0 + 8 }));
    }

    [Test]
    public void SmswIsACr0ReadAndClts_LmswAreCr0Writes()
    {
        using (var g = InterceptGuest.Long64(a => { a.smsw(bx); a.hlt(); }, out var svm, cr: Read(0)))
        {
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.CrRead0 }));
        }

        using (var g = InterceptGuest.Long64(a => { a.clts(); a.hlt(); }, out var svm, cr: Write(0)))
        {
            g.Cpu.Cr0 |= Cr0Bits.TS;
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.CrWrite0 }));
            Assert.That(g.Cpu.Cr0 & Cr0Bits.TS, Is.Not.Zero);
        }

        using (var g = InterceptGuest.Long64(a => { a.lmsw(bx); a.hlt(); }, out var svm, cr: Write(0)))
        {
            g.Cpu.Gpr[Reg.RBX] = 1;
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.CrWrite0 }));
        }
    }

    private static TestGuest Cr0Guest(Action<Assembler> write, ulong newCr0Xor, uint cr, out RecordingSvmUnit svm)
    {
        var g = InterceptGuest.Long64(
            a =>
            {
                write(a);
                a.hlt();
            },
            out svm,
            misc: InterceptGuest.Bit(SvmIntercept.Cr0SelectiveWrite),
            cr: cr);
        g.Cpu.Gpr[Reg.RBX] = g.Cpu.Cr0 ^ newCr0Xor;
        return g;
    }

    [Test]
    public void ASelectiveCr0WriteExitsWhenABitOtherThanTsOrMpChanges()
    {
        using (var g = Cr0Guest(a => a.mov(cr0, rbx), Cr0Bits.CD, 0, out var svm))
        {
            ulong cr0 = g.Cpu.Cr0;
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.Cr0SelectiveWrite }));
            Assert.That(g.Cpu.Cr0, Is.EqualTo(cr0));
        }

        using (var g = Cr0Guest(a => a.mov(cr0, rbx), Cr0Bits.TS | Cr0Bits.MP, 0, out var svm))
        {
            g.Run(100);
            Assert.That(svm.Exits, Is.Empty);
            Assert.That(g.Cpu.Cr0 & Cr0Bits.TS, Is.Not.Zero, "the write was done");
        }
    }

    [Test]
    public void TheCr0WriteInterceptHasPriorityOverTheSelectiveOne()
    {
        using var g = Cr0Guest(a => a.mov(cr0, rbx), Cr0Bits.CD, Write(0), out var svm);
        g.Run(100);
        Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.CrWrite0 }));
    }

    [Test]
    public void LmswChangingEmOrMpIsASelectiveWriteAndCltsNeverIs()
    {
        foreach (ulong bit in new[] { Cr0Bits.EM, Cr0Bits.MP })
        {
            using var g = Cr0Guest(a => a.lmsw(bx), bit, 0, out var svm);
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.Cr0SelectiveWrite }), $"CR0 bit {bit:x}");
        }

        using (var g = Cr0Guest(a => a.clts(), 0, 0, out var svm))
        {
            g.Cpu.Cr0 |= Cr0Bits.TS;
            g.Run(100);
            Assert.That(svm.Exits, Is.Empty);
            Assert.That(g.Cpu.Cr0 & Cr0Bits.TS, Is.Zero);
        }
    }

    [Test]
    public void MovDrExitsWithTheDrWordsBits()
    {
        using (var g = InterceptGuest.Long64(a => { a.mov(rbx, dr3); a.hlt(); }, out var svm, dr: Read(3)))
        {
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.DrRead0 + 3 }));
        }

        using (var g = InterceptGuest.Long64(a => { a.mov(dr7, rbx); a.hlt(); }, out var svm, dr: Write(7)))
        {
            g.Cpu.Gpr[Reg.RBX] = 0x401;
            ulong dr7 = g.Cpu.Dr7;
            g.Run(100);
            Assert.That(svm.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.DrWrite0 + 7 }));
            Assert.That(g.Cpu.Dr7, Is.EqualTo(dr7));
        }

        using (var g = InterceptGuest.Long64(a => { a.mov(rbx, dr3); a.mov(dr3, rbx); a.hlt(); }, out var svm, dr: Read(2) | Write(2)))
        {
            g.Run(100);
            Assert.That(svm.Exits, Is.Empty);
        }
    }
}
