using Emulator.Core.Cpu;
using static Emulator.Tests.Core.Exec.IntegerGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>SETcc and CMOVcc for all 16 conditions (APM vol. 3 "Condition codes"), SALC.</summary>
public class CondTests
{
    // CMP EAX, EBX then SETcc CL (0F 90+cc C1). Expected values per condition o,no,b,ae,e,ne,be,a,s,ns,p,np,l,ge,le,g.
    // 1 − 2 = 0xFFFFFFFF: CF=1 ZF=0 SF=1 OF=0 PF=1.
    [TestCase(1UL, 2UL, "0110011010101010")]
    // 0x80000000 − 1 = 0x7FFFFFFF: CF=0 ZF=0 SF=0 OF=1 PF=1; signed MIN < 1, unsigned above.
    [TestCase(0x8000_0000UL, 1UL, "1001010101101010")]
    // 5 − 5 = 0: ZF=1 PF=1.
    [TestCase(5UL, 5UL, "0101101001100110")]
    public void SetccAfterCmp(ulong x, ulong y, string expected)
    {
        for (int cc = 0; cc < 16; cc++)
        {
            int c = cc;
            using var g = Run(a =>
            {
                a.cmp(eax, ebx);
                a.db(0x0F, (byte)(0x90 + c), 0xC1);
            }, rax: x, rbx: y, rcx: 0xFFFF_FF55);
            Assert.That(g[Reg.RCX], Is.EqualTo(0xFFFF_FF00 | (ulong)(expected[c] - '0')), $"condition {c:X}");
        }
    }

    [Test]
    public void SetccAfterSbbUsesTheGeneralPath()
    {
        // SBB with borrow-in: 0 − 0 − 1 = 0xFF (8-bit): CF=1, SF=1.
        using var g = Run(a =>
        {
            a.sbb(al, bl);
            a.setb(cl);
            a.sets(dl);
        }, rax: 0, rbx: 0, flags: Rflags.CF);
        Assert.That(g[Reg.RCX], Is.EqualTo(1));
        Assert.That(g[Reg.RDX], Is.EqualTo(1));
    }

    [Test]
    public void SetccToMemory()
    {
        using var g = Run(a =>
        {
            a.stc();
            a.setc(__byte_ptr[rdx]);
        }, rdx: TestGuest.DataBase, setup: t => t.Mem.TryLoad(TestGuest.DataBase, new byte[] { 0xAA, 0xBB }));
        Assert.That(g.ReadPhys(TestGuest.DataBase, 2), Is.EqualTo(0xBB01));
    }

    [Test]
    public void CmovTakenAndNotTaken()
    {
        using var g = Run(a =>
        {
            a.cmp(eax, eax);
            a.cmove(rcx, rbx);
            a.cmovne(rdx, rbx);
        }, rbx: 0x1122_3344_5566_7788, rcx: 1, rdx: 2);
        Assert.That(g[Reg.RCX], Is.EqualTo(0x1122_3344_5566_7788));
        Assert.That(g[Reg.RDX], Is.EqualTo(2));
    }

    [Test]
    public void Cmov32ZeroExtendsEvenWhenFalse()
    {
        using var g = Run(a =>
        {
            a.cmp(ebx, ebx);
            a.cmovne(eax, ebx);
        }, rax: 0xFFFF_FFFF_8765_4321, rbx: 7);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x8765_4321));
    }

    [Test]
    public void Cmov16KeepsUpperBits()
    {
        using var g = Run(a =>
        {
            a.stc();
            a.cmovb(ax, bx);
        }, rax: 0xFFFF_FFFF_FFFF_0000, rbx: 0x1234);
        Assert.That(g[Reg.RAX], Is.EqualTo(0xFFFF_FFFF_FFFF_1234));
    }

    [Test]
    public void SalcOutside64BitMode()
    {
        using var g = Run(a =>
        {
            a.stc();
            a.db(0xD6); // SALC
            a.xchg(eax, ebx);
            a.clc();
            a.db(0xD6);
        }, rax: 0x1200, rbx: 0x3400, bitness: 32);
        Assert.That(g[Reg.RBX], Is.EqualTo(0x12FF));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x3400));
    }
}
