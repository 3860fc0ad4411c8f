using Emulator.Core.Cpu;
using static Emulator.Tests.Core.Exec.IntegerGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>MUL, IMUL, DIV, IDIV; expected values worked from APM vol. 3.</summary>
public class MulDivTests
{
    private const ulong CfOf = Rflags.CF | Rflags.OF;

    [Test]
    public void Mul8WritesAx()
    {
        using var g = Run(a => a.mul(bl), rax: 0xFFFF_0080, rbx: 2);
        Assert.That(g[Reg.RAX], Is.EqualTo(0xFFFF_0100));
        Assert.That(FlagString(g, CfOf), Is.EqualTo("C O"));
    }

    [Test]
    public void Mul8SmallProductClearsCarry()
    {
        using var g = Run(a => a.mul(bl), rax: 0x10, rbx: 0x0F, flags: CfOf);
        Assert.That(g[Reg.RAX], Is.EqualTo(0xF0));
        Assert.That(FlagString(g, CfOf), Is.EqualTo(""));
    }

    [Test]
    public void Mul64Gives128Bits()
    {
        using var g = Run(a => a.mul(rbx), rax: 0x8000_0000_0000_0000, rbx: 4);
        Assert.That(g[Reg.RDX], Is.EqualTo(2));
        Assert.That(g[Reg.RAX], Is.Zero);
        Assert.That(FlagString(g, CfOf), Is.EqualTo("C O"));
    }

    [Test]
    public void Mul32ZeroExtendsBothHalves()
    {
        using var g = Run(a => a.mul(ebx), rax: 0xAAAA_AAAA_FFFF_FFFF, rbx: 2, rdx: 0xBBBB_BBBB_0000_0000);
        Assert.That(g[Reg.RAX], Is.EqualTo(0xFFFF_FFFE));
        Assert.That(g[Reg.RDX], Is.EqualTo(1));
    }

    [Test]
    public void Imul32OneOperandSigned()
    {
        using var g = Run(a => a.imul(ebx), rax: 0xFFFF_FFFF, rbx: 0xFFFF_FFFF);
        Assert.That(g[Reg.RAX], Is.EqualTo(1));
        Assert.That(g[Reg.RDX], Is.Zero);
        Assert.That(FlagString(g, CfOf), Is.EqualTo(""));
    }

    [Test]
    public void Imul64OneOperandNegative()
    {
        using var g = Run(a => a.imul(rbx), rax: unchecked((ulong)-3L), rbx: 0x4000_0000_0000_0000);
        // −3 × 2^62 = −3·2^62: high = −1, low = 0x4000_0000_0000_0000 → does not fit in 64 bits.
        Assert.That(g[Reg.RAX], Is.EqualTo(0x4000_0000_0000_0000));
        Assert.That(g[Reg.RDX], Is.EqualTo(ulong.MaxValue));
        Assert.That(FlagString(g, CfOf), Is.EqualTo("C O"));
    }

    [TestCase(0x4000_0000UL, 0x8000_0000UL, "")]
    [TestCase(0x4000_0001UL, 0x7FFF_FFFEUL, "C O")]
    public void Imul32ThreeOperand(ulong src, ulong result, string flags)
    {
        using var g = Run(a => a.imul(eax, ebx, -2), rax: 0xDEAD_BEEF_0000_0000, rbx: src);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g, CfOf), Is.EqualTo(flags));
    }

    [Test]
    public void Imul16TwoOperandTruncates()
    {
        using var g = Run(a => a.imul(ax, bx), rax: 0x1111_0100, rbx: 0x0100);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1111_0000));
        Assert.That(FlagString(g, CfOf), Is.EqualTo("C O"));
    }

    [Test]
    public void Div8QuotientAlRemainderAh()
    {
        using var g = Run(a => a.div(bl), rax: 0x1234, rbx: 0x56);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1036)); // 4660 = 54 × 86 + 16
    }

    [Test]
    public void Div64Uses128BitDividend()
    {
        using var g = Run(a => a.div(rbx), rax: 1, rdx: 1, rbx: 2);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x8000_0000_0000_0000));
        Assert.That(g[Reg.RDX], Is.EqualTo(1));
    }

    [Test]
    public void Div64WithClearedRdx()
    {
        using var g = Run(a => a.div(rbx), rax: 0xFFFF_FFFF_FFFF_FFF1, rdx: 0, rbx: 0x10);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x0FFF_FFFF_FFFF_FFFF));
        Assert.That(g[Reg.RDX], Is.EqualTo(1));
    }

    [Test]
    public void Idiv64PositiveDividendBeyondRax()
    {
        // RDX:RAX = 2^63 (RDX is not RAX's sign): the dividend is positive, though RAX alone reads as negative.
        using var g = Run(a => a.idiv(rbx), rax: 0x8000_0000_0000_0000, rdx: 0, rbx: 4);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x2000_0000_0000_0000));
        Assert.That(g[Reg.RDX], Is.Zero);
    }

    [Test]
    public void Imul64TwoOperandOverflows()
    {
        using var g = Run(a => a.imul(rax, rbx), rax: 0x4000_0000_0000_0000, rbx: unchecked((ulong)-3L), rdx: 0x55);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x4000_0000_0000_0000));
        Assert.That(g[Reg.RDX], Is.EqualTo(0x55), "two-operand IMUL writes no high half");
        Assert.That(FlagString(g, CfOf), Is.EqualTo("C O"));
    }

    [Test]
    public void Idiv64TruncatesTowardZero()
    {
        using var g = Run(a => a.idiv(rbx), rax: unchecked((ulong)-7L), rdx: ulong.MaxValue, rbx: 2);
        Assert.That((long)g[Reg.RAX], Is.EqualTo(-3));
        Assert.That((long)g[Reg.RDX], Is.EqualTo(-1));
    }

    [Test]
    public void Idiv8()
    {
        using var g = Run(a => a.idiv(bl), rax: 0xFFF9, rbx: 2);
        Assert.That(g[Reg.RAX], Is.EqualTo(0xFFFD));
    }

    [Test]
    public void DivideByZeroRaisesDe()
    {
        using var g = RunCatching(a => a.div(ebx), rax: 1234, rbx: 0);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.DE));
        Assert.That(g[Reg.RAX], Is.EqualTo(1234));
    }

    [Test]
    public void QuotientOverflowRaisesDe()
    {
        using var g = RunCatching(a => a.div(bl), rax: 0x1000, rbx: 0x10);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.DE));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1000));
    }

    [TestCase(4)]
    [TestCase(8)]
    public void IntMinByMinusOneRaisesDe(int size)
    {
        using var g = size == 4
            ? RunCatching(a => a.idiv(ebx), rax: 0x8000_0000, rdx: 0xFFFF_FFFF, rbx: 0xFFFF_FFFF)
            : RunCatching(a => a.idiv(rbx), rax: 0x8000_0000_0000_0000, rdx: ulong.MaxValue, rbx: ulong.MaxValue);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.DE));
    }
}
