using Emulator.Core.Cpu;
using static Emulator.Tests.Core.Exec.IntegerGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>DAA, DAS, AAA, AAS, AAM, AAD in 32-bit protected mode; worked from APM vol. 3.</summary>
public class BcdTests
{
    [Test]
    public void DaaAfterPackedAdd()
    {
        // 79 + 35 = 114: AL = 0xAE → DAA → 0x14 with CF (the hundreds).
        using var g = Run(a =>
        {
            a.add(al, bl);
            a.daa();
        }, rax: 0x79, rbx: 0x35, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x14));
        Assert.That(FlagString(g, Rflags.CF | Rflags.AF), Is.EqualTo("C A"));
    }

    [Test]
    public void DaaWithoutAdjust()
    {
        using var g = Run(a =>
        {
            a.add(al, bl);
            a.daa();
        }, rax: 0x12, rbx: 0x34, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x46));
        Assert.That(FlagString(g, Rflags.CF | Rflags.AF | Rflags.ZF), Is.EqualTo(""));
    }

    [Test]
    public void DasAfterPackedSubtract()
    {
        // 35 − 47 = −12: AL = 0xEE → DAS → 0x88 with CF (borrow).
        using var g = Run(a =>
        {
            a.sub(al, bl);
            a.das();
        }, rax: 0x35, rbx: 0x47, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x88));
        Assert.That(FlagString(g, Rflags.CF | Rflags.AF), Is.EqualTo("C A"));
    }

    [Test]
    public void AaaAfterUnpackedAdd()
    {
        // 8 + 6 = 14: AX = 0x0104.
        using var g = Run(a =>
        {
            a.add(al, bl);
            a.aaa();
        }, rax: 0x08, rbx: 0x06, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x0104));
        Assert.That(FlagString(g, Rflags.CF | Rflags.AF), Is.EqualTo("C A"));
    }

    [Test]
    public void AasAfterUnpackedSubtract()
    {
        // 12 − 5 = 7: AX = 0x0102 → 0x0007.
        using var g = Run(a =>
        {
            a.sub(al, bl);
            a.aas();
        }, rax: 0x0102, rbx: 0x05, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x0007));
        Assert.That(FlagString(g, Rflags.CF | Rflags.AF), Is.EqualTo("C A"));
    }

    [TestCase(10, 0x3FUL, 0x0603UL)]
    [TestCase(16, 0x3FUL, 0x030FUL)]
    public void Aam(int radix, ulong al, ulong ax)
    {
        using var g = Run(a => a.aam((sbyte)radix), rax: al, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(ax));
    }

    [Test]
    public void AamZeroRaisesDe()
    {
        using var g = RunCatching(a => a.aam(0), rax: 0x3F, bitness: 32);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.DE));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x3F));
    }

    [TestCase(10, 0x0603UL, 0x003FUL, "P")]
    [TestCase(10, 0x0000UL, 0x0000UL, "P Z")]
    public void Aad(int radix, ulong ax, ulong result, string flags)
    {
        using var g = Run(a => a.aad((sbyte)radix), rax: ax, bitness: 32);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g, Rflags.ZF | Rflags.SF | Rflags.PF), Is.EqualTo(flags));
    }

    [TestCase((byte)0x27)] // DAA
    [TestCase((byte)0x37)] // AAA
    public void InvalidIn64BitMode(byte opcode)
    {
        using var g = RunCatching(a => a.db(opcode), rax: 0x12);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
    }
}
