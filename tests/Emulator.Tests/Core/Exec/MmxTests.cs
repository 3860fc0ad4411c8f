using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>MMX (APM vol. 5): values worked out by hand from the manual's definitions, and the x87 aliasing.</summary>
public class MmxTests
{
    private static readonly ulong D = FpGuest.Data;
    private const ulong A = 0x0001_7FFF_8000_0002; // words 0x0002, 0x8000, 0x7FFF, 0x0001
    private const ulong B = 0x0003_0004_0005_0006;

    [Test]
    public void ArithmeticPackUnpackAndShift()
    {
        using var g = FpGuest.Create(a =>
        {
            a.movq(mm0, __qword_ptr[rbx]);
            a.movq(mm1, __qword_ptr[rbx + 8]);
            a.movq(mm2, mm0);
            a.movq(mm4, mm0);
            a.movq(mm6, mm0);
            a.paddw(mm0, mm1);
            a.packsswb(mm2, mm1);
            a.punpckhbw(mm4, __qword_ptr[rbx + 8]);
            a.psrlq(mm6, 4);
            a.movq(__qword_ptr[rbx + 16], mm0);
            a.movq(__qword_ptr[rbx + 24], mm2);
            a.movq(__qword_ptr[rbx + 32], mm4);
            a.movq(rax, mm6);
            a.pextrw(ecx, mm1, 2);
            a.hlt();
        });
        FpGuest.Write64(g, D, A);
        FpGuest.Write64(g, D + 8, B);
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + 16, 8), Is.EqualTo(0x0004_8003_8005_0008UL), "PADDW wraps");
        Assert.That(g.ReadPhys(D + 24, 8), Is.EqualTo(0x0304_0506_017F_8002UL), "PACKSSWB saturates");
        Assert.That(g.ReadPhys(D + 32, 8), Is.EqualTo(0x0000_0301_007F_04FFUL), "PUNPCKHBW interleaves the high halves");
        Assert.That(g[Reg.RAX], Is.EqualTo(A >> 4));
        Assert.That(g[Reg.RCX], Is.EqualTo(4UL));
        Assert.That(g.Cpu.FpuTop, Is.EqualTo(0));
        Assert.That(g.Cpu.FpuEmpty, Is.EqualTo(0), "MMX instructions tag every register valid");
        Assert.That(g.Cpu.Fpr[0].SignExp, Is.EqualTo((ushort)0xFFFF));
    }

    [Test]
    public void EmmsEmptiesTheTags()
    {
        using var g = FpGuest.Create(a =>
        {
            a.pxor(mm3, mm3);
            a.emms();
            a.hlt();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.FpuEmpty, Is.EqualTo(0xFF));
    }

    [Test]
    public void EmulationBitMakesMmxUndefined()
    {
        using var g = FpGuest.Create(a =>
        {
            a.paddb(mm0, mm1);
            a.hlt();
        });
        g.Cpu.Cr0 |= Cr0Bits.EM;
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void ConversionsBetweenMmxIntegersAndSseFloats()
    {
        using var g = FpGuest.Create(a =>
        {
            a.movq(mm0, __qword_ptr[rbx]);
            a.cvtpi2ps(xmm0, mm0);
            a.cvtpi2pd(xmm1, mm0);
            a.cvttps2pi(mm1, xmm2);
            a.cvtpd2pi(mm2, xmm3);
            a.movq(__qword_ptr[rbx + 8], mm1);
            a.movq(__qword_ptr[rbx + 16], mm2);
            a.hlt();
        });
        FpGuest.Write64(g, D, ((ulong)unchecked((uint)-7) << 32) | 5);
        g.Cpu.Xmm[0] = Vector128.Create(0f, 0f, 9f, 10f).AsByte();
        g.Cpu.Xmm[2] = Vector128.Create(-2.75f, 3e10f, 0f, 0f).AsByte();
        g.Cpu.Xmm[3] = Vector128.Create(2.5, -3.5).AsByte();
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsSingle(), Is.EqualTo(Vector128.Create(5f, -7f, 9f, 10f)));
        Assert.That(g.Cpu.Xmm[1].AsDouble(), Is.EqualTo(Vector128.Create(5.0, -7.0)));
        Assert.That(g.ReadPhys(D + 8, 8), Is.EqualTo(0x80000000_FFFFFFFEUL), "truncation, and the indefinite for 3e10");
        Assert.That(g.ReadPhys(D + 16, 8), Is.EqualTo(0xFFFFFFFC_00000002UL), "round to nearest even: 2.5 → 2, −3.5 → −4");
    }
}
