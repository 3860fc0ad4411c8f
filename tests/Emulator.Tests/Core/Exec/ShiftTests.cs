using Emulator.Core.Cpu;
using static Emulator.Tests.Core.Exec.IntegerGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>Shifts and rotates; expected values worked from APM vol. 3 (undefined flags masked out).</summary>
public class ShiftTests
{
    private const ulong NoAf = Rflags.Arith & ~Rflags.AF;
    private const ulong CfOf = Rflags.CF | Rflags.OF;

    [TestCase("shl", 0x80UL, 0x00UL, "C P Z O")]
    [TestCase("shl", 0x40UL, 0x80UL, "S O")]
    [TestCase("shr", 0x81UL, 0x40UL, "C O")]
    [TestCase("sar", 0x81UL, 0xC0UL, "C P S")]
    public void ShiftByOne(string op, ulong x, ulong result, string flags)
    {
        using var g = Run(a =>
        {
            switch (op)
            {
                case "shl": a.shl(al, 1); break;
                case "shr": a.shr(al, 1); break;
                default: a.sar(al, 1); break;
            }
        }, rax: x);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g, NoAf), Is.EqualTo(flags));
    }

    [Test]
    public void ZeroCountChangesNoFlagsButZeroExtends32()
    {
        using var g = Run(a => a.shl(eax, cl), rax: 0xFFFF_FFFF_0000_0001, rcx: 0x20, flags: Rflags.CF | Rflags.OF | Rflags.ZF);
        Assert.That(g[Reg.RAX], Is.EqualTo(1));
        Assert.That(FlagString(g), Is.EqualTo("C Z O"));
    }

    [TestCase(33, 0x2UL)]   // 32-bit counts are masked to 5 bits: 33 → 1
    [TestCase(31, 0x8000_0000UL)]
    public void Count32IsMaskedTo5Bits(int count, ulong result)
    {
        using var g = Run(a => a.shl(eax, cl), rax: 1, rcx: (ulong)count);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
    }

    [Test]
    public void Count64IsMaskedTo6Bits()
    {
        using var g = Run(a => a.shr(rax, cl), rax: 0x8000_0000_0000_0000, rcx: 0x7F);
        Assert.That(g[Reg.RAX], Is.EqualTo(1));
        Assert.That(FlagString(g, Rflags.CF | Rflags.ZF), Is.EqualTo(""));
    }

    [Test]
    public void Sar64ByLargeCountFillsWithSign()
    {
        using var g = Run(a => a.sar(rax, 63), rax: 0x8000_0000_0000_0000);
        Assert.That(g[Reg.RAX], Is.EqualTo(ulong.MaxValue));
        Assert.That(FlagString(g, Rflags.CF | Rflags.SF | Rflags.ZF), Is.EqualTo("S"));
    }

    [TestCase("rol", 0x81UL, 0UL, 0x03UL, "C O")]
    [TestCase("ror", 0x01UL, 0UL, 0x80UL, "C O")]
    [TestCase("rcl", 0x80UL, 1UL, 0x01UL, "C O")]
    [TestCase("rcr", 0x01UL, 0UL, 0x00UL, "C")]
    [TestCase("rcr", 0x00UL, 1UL, 0x80UL, "O")]
    public void RotateByOne(string op, ulong x, ulong cf, ulong result, string flags)
    {
        using var g = Run(a =>
        {
            switch (op)
            {
                case "rol": a.rol(al, 1); break;
                case "ror": a.ror(al, 1); break;
                case "rcl": a.rcl(al, 1); break;
                default: a.rcr(al, 1); break;
            }
        }, rax: x, flags: (cf != 0 ? Rflags.CF : 0) | Rflags.ZF | Rflags.SF);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g, CfOf), Is.EqualTo(flags));
        Assert.That(FlagString(g, Rflags.ZF | Rflags.SF), Is.EqualTo("Z S"), "rotates change only CF and OF");
    }

    [Test]
    public void Rcl8CountIsModulo9()
    {
        using var g = Run(a => a.rcl(al, cl), rax: 0x55, rcx: 9, flags: Rflags.CF);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x55));
        Assert.That(g.Cpu.GetCF(), Is.True);
    }

    [Test]
    public void Rcr16CountIsModulo17()
    {
        // 18 mod 17 = 1: CF (0) enters bit 15, bit 0 (1) goes to CF.
        using var g = Run(a => a.rcr(ax, cl), rax: 0x8001, rcx: 18);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x4000));
        Assert.That(g.Cpu.GetCF(), Is.True);
    }

    [Test]
    public void Rol8ByEightSetsCarryFromBit0()
    {
        using var g = Run(a => a.rol(al, 8), rax: 0x01);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x01));
        Assert.That(g.Cpu.GetCF(), Is.True);
    }

    [Test]
    public void Shld32()
    {
        using var g = Run(a => a.shld(eax, ebx, 4), rax: 0x1234_5678, rbx: 0x9ABC_DEF0);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x2345_6789));
        Assert.That(FlagString(g, NoAf & ~Rflags.OF), Is.EqualTo("C"));
    }

    [Test]
    public void Shrd32()
    {
        using var g = Run(a => a.shrd(eax, ebx, 4), rax: 0x1234_5678, rbx: 0x9ABC_DEF1);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1123_4567));
        Assert.That(FlagString(g, NoAf & ~Rflags.OF), Is.EqualTo("C"));
    }

    [Test]
    public void Shld64ByClIntoMemory()
    {
        using var g = Run(a => a.shld(__qword_ptr[rdx], rbx, cl), rbx: 0xF000_0000_0000_0000, rcx: 4, rdx: TestGuest.DataBase,
            setup: t => t.Mem.TryLoad(TestGuest.DataBase, BitConverter.GetBytes(0x0123_4567_89AB_CDEFUL)));
        Assert.That(g.ReadPhys(TestGuest.DataBase, 8), Is.EqualTo(0x1234_5678_9ABC_DEFFUL));
        Assert.That(g.Cpu.GetCF(), Is.False);
    }

    [Test]
    public void ShrdOneSetsOverflowOnSignChange()
    {
        using var g = Run(a => a.shrd(ax, bx, 1), rax: 0x0002, rbx: 0x0001);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x8001));
        Assert.That(FlagString(g, NoAf), Is.EqualTo("S O"));
    }
}
