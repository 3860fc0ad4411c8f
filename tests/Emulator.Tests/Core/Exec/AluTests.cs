using Emulator.Core.Cpu;
using static Emulator.Tests.Core.Exec.IntegerGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>ADD … XOR, INC/DEC/NEG/NOT and the flag instructions; expected values worked from APM vol. 3.</summary>
public class AluTests
{
    // Flags are "C P A Z S O"; AF after logic ops is undefined and masked out there.
    [TestCase("add", 0x7FUL, 0x01UL, 0UL, 0x80UL, "A S O")]
    [TestCase("add", 0xFFUL, 0x01UL, 0UL, 0x00UL, "C P A Z")]
    [TestCase("adc", 0xFFUL, 0x00UL, 1UL, 0x00UL, "C P A Z")]
    [TestCase("adc", 0x7FUL, 0x00UL, 1UL, 0x80UL, "A S O")]
    [TestCase("sub", 0x00UL, 0x01UL, 0UL, 0xFFUL, "C P A S")]
    [TestCase("sub", 0x80UL, 0x01UL, 0UL, 0x7FUL, "A O")]
    [TestCase("sbb", 0x00UL, 0x00UL, 1UL, 0xFFUL, "C P A S")]
    [TestCase("sbb", 0x05UL, 0x05UL, 0UL, 0x00UL, "P Z")]
    [TestCase("cmp", 0x05UL, 0x07UL, 0UL, 0x05UL, "C A S")]
    public void ByteArithmetic(string op, ulong x, ulong y, ulong cf, ulong result, string flags)
    {
        using var g = Run(a =>
        {
            switch (op)
            {
                case "add": a.add(al, bl); break;
                case "adc": a.adc(al, bl); break;
                case "sub": a.sub(al, bl); break;
                case "sbb": a.sbb(al, bl); break;
                default: a.cmp(al, bl); break;
            }
        }, rax: 0x1234_5600 | x, rbx: y, flags: cf != 0 ? Rflags.CF : 0);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1234_5600 | result), "only AL changes");
        Assert.That(FlagString(g), Is.EqualTo(flags));
    }

    [TestCase(0xFFFF_FFFF_FFFF_FFFFUL, 1UL, 0UL, "C P A Z")]
    [TestCase(0x0000_0001_7FFF_FFFFUL, 1UL, 0x8000_0000UL, "P A S O")]
    public void Add32ZeroExtendsTheDestination(ulong rax, ulong rbx, ulong result, string flags)
    {
        using var g = Run(a => a.add(eax, ebx), rax: rax, rbx: rbx);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g), Is.EqualTo(flags));
    }

    [Test]
    public void Add64SignedOverflowAndCarry()
    {
        using var g = Run(a => a.add(rax, rbx), rax: 0x8000_0000_0000_0000, rbx: 0x8000_0000_0000_0000);
        Assert.That(g[Reg.RAX], Is.Zero);
        Assert.That(FlagString(g), Is.EqualTo("C P Z O"));
    }

    [Test]
    public void Sub16WithSignExtendedImm8KeepsUpperBits()
    {
        // SUB r/m16, imm8: the immediate −1 is sign-extended to 0xFFFF.
        using var g = Run(a => a.sub(ax, -1), rax: 0xAAAA_0000_0000_0001);
        Assert.That(g[Reg.RAX], Is.EqualTo(0xAAAA_0000_0000_0002));
        Assert.That(FlagString(g), Is.EqualTo("C A"));
    }

    [Test]
    public void HighByteRegistersAreBits15To8()
    {
        using var g = Run(a => a.add(ah, bh), rax: 0x1234, rbx: 0x0100);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1334));
    }

    [TestCase("and", 0xF0UL, 0x0FUL, 0x00UL, "P Z")]
    [TestCase("or", 0xF0UL, 0x0FUL, 0xFFUL, "P S")]
    [TestCase("xor", 0xFFUL, 0x0FUL, 0xF0UL, "P S")]
    [TestCase("test", 0x80UL, 0x80UL, 0x80UL, "S")]
    public void LogicClearsCarryAndOverflow(string op, ulong x, ulong y, ulong result, string flags)
    {
        using var g = Run(a =>
        {
            switch (op)
            {
                case "and": a.and(al, bl); break;
                case "or": a.or(al, bl); break;
                case "xor": a.xor(al, bl); break;
                default: a.test(al, bl); break;
            }
        }, rax: x, rbx: y, flags: Rflags.CF | Rflags.OF);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g, Rflags.Arith & ~Rflags.AF), Is.EqualTo(flags));
    }

    [TestCase("inc", 0xFFUL, 0x00UL, "C P A Z")]
    [TestCase("inc", 0x7FUL, 0x80UL, "C A S O")]
    [TestCase("dec", 0x80UL, 0x7FUL, "C A O")]
    [TestCase("dec", 0x01UL, 0x00UL, "C P Z")]
    public void IncDecKeepCarry(string op, ulong x, ulong result, string flags)
    {
        using var g = Run(a =>
        {
            if (op == "inc") a.inc(al); else a.dec(al);
        }, rax: x, flags: Rflags.CF);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g), Is.EqualTo(flags));
    }

    [TestCase(0x00UL, 0x00UL, "P Z")]
    [TestCase(0x01UL, 0xFFUL, "C P A S")]
    [TestCase(0x80UL, 0x80UL, "C S O")]
    public void NegSetsCarryUnlessZero(ulong x, ulong result, string flags)
    {
        using var g = Run(a => a.neg(al), rax: x);
        Assert.That(g[Reg.RAX], Is.EqualTo(result));
        Assert.That(FlagString(g), Is.EqualTo(flags));
    }

    [Test]
    public void NotChangesNoFlags()
    {
        using var g = Run(a => a.not(rax), rax: 0x0F0F, flags: Rflags.CF | Rflags.ZF | Rflags.OF);
        Assert.That(g[Reg.RAX], Is.EqualTo(~0x0F0FUL));
        Assert.That(FlagString(g), Is.EqualTo("C Z O"));
    }

    [Test]
    public void LockedMemoryAddWritesMemory()
    {
        using var g = Run(a => a.@lock.add(__dword_ptr[rbx], eax), rax: 5, rbx: TestGuest.DataBase,
            setup: t => t.Mem.TryLoad(TestGuest.DataBase, BitConverter.GetBytes(0xFFFF_FFFFu)));
        Assert.That(g.ReadPhys(TestGuest.DataBase, 4), Is.EqualTo(4));
        Assert.That(FlagString(g), Is.EqualTo("C A"));
    }

    [Test]
    public void LockWithARegisterDestinationIsUndefinedOpcode()
    {
        // F0 01 D8 = LOCK ADD EAX, EBX (APM vol. 3 §1.2.5: LOCK needs a memory destination).
        using var g = RunCatching(a => a.db(0xF0, 0x01, 0xD8), rax: 1, rbx: 2);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
        Assert.That(g[Reg.RAX], Is.EqualTo(1));
    }

    [Test]
    public void LockOnCmpIsUndefinedOpcode()
    {
        // F0 39 03 = LOCK CMP [RBX], EAX: CMP is not lockable.
        using var g = RunCatching(a => a.db(0xF0, 0x39, 0x03), rbx: TestGuest.DataBase);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void FlagInstructions()
    {
        using var g = Run(a =>
        {
            a.stc();
            a.cmc();
            a.cmc();
            a.std();
        });
        Assert.That(g.Cpu.Rflags64 & (Rflags.CF | Rflags.DF), Is.EqualTo(Rflags.CF | Rflags.DF));
        using var h = Run(a =>
        {
            a.add(al, bl); // CF = 1 lazily
            a.clc();
            a.cld();
        }, rax: 0xFF, rbx: 1, flags: 0);
        Assert.That(h.Cpu.Rflags64 & (Rflags.CF | Rflags.DF | Rflags.ZF), Is.EqualTo(Rflags.ZF));
    }
}
