using Emulator.Core.Cpu;
using static Emulator.Tests.Core.Exec.IntegerGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>BT/BTS/BTR/BTC, BSF/BSR, BSWAP; expected values worked from APM vol. 3.</summary>
public class BitTests
{
    private const ulong Buf = TestGuest.DataBase + 0x100;

    [TestCase(3UL, true)]
    [TestCase(35UL, true)]   // register destination: offset mod 32
    [TestCase(4UL, false)]
    public void BtRegister(ulong bit, bool cf)
    {
        using var g = Run(a => a.bt(eax, ebx), rax: 8, rbx: bit, flags: Rflags.ZF);
        Assert.That(g.Cpu.GetCF(), Is.EqualTo(cf));
        Assert.That(g.Cpu.GetZF(), Is.True, "ZF is not affected");
    }

    [Test]
    public void BtsMemoryWithNegativeOffsetReachesBelowTheOperand()
    {
        using var g = Run(a => a.bts(__dword_ptr[rdx], eax), rax: 0xFFFF_FFFF, rdx: Buf);
        Assert.That(g.ReadPhys(Buf - 4, 4), Is.EqualTo(0x8000_0000));
        Assert.That(g.Cpu.GetCF(), Is.False);
    }

    [Test]
    public void BtrMemoryWithLargeOffsetReachesBeyondTheOperand()
    {
        using var g = Run(a => a.btr(__qword_ptr[rdx], rax), rax: 100, rdx: Buf,
            setup: t => t.Mem.TryLoad(Buf + 8, BitConverter.GetBytes(ulong.MaxValue)));
        Assert.That(g.ReadPhys(Buf + 8, 8), Is.EqualTo(0xFFFF_FFEF_FFFF_FFFFUL));
        Assert.That(g.Cpu.GetCF(), Is.True);
    }

    [Test]
    public void BtcImmediateIsMasked()
    {
        using var g = Run(a => a.btc(ax, 17), rax: 0x0001_0000);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x0001_0002));
    }

    [Test]
    public void BtsMemoryImmediateUsesTheOperandOnly()
    {
        using var g = Run(a => a.bts(__word_ptr[rdx], 20), rdx: Buf);
        Assert.That(g.ReadPhys(Buf, 4), Is.EqualTo(0x10));
    }

    [Test]
    public void BsfAndBsr()
    {
        using var g = Run(a =>
        {
            a.bsf(ecx, ebx);
            a.bsr(rdx, rax);
        }, rax: 0x8000_0000_0000_0001, rbx: 0x80, flags: Rflags.ZF);
        Assert.That(g[Reg.RCX], Is.EqualTo(7));
        Assert.That(g[Reg.RDX], Is.EqualTo(63));
        Assert.That(g.Cpu.GetZF(), Is.False);
    }

    [Test]
    public void BsfZeroSourceSetsZfAndKeepsTheDestination()
    {
        using var g = Run(a => a.bsf(eax, ebx), rax: 0x1234_5678_DEAD_BEEF, rbx: 0);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1234_5678_DEAD_BEEF));
        Assert.That(g.Cpu.GetZF(), Is.True);
    }

    [Test]
    public void BsrZeroSourceSetsZfAndKeepsTheDestination()
    {
        using var g = Run(a => a.bsr(ax, bx), rax: 0x5555, rbx: 0xFFFF_0000);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x5555));
        Assert.That(g.Cpu.GetZF(), Is.True);
    }

    [Test]
    public void Bswap()
    {
        using var g = Run(a =>
        {
            a.bswap(eax);
            a.bswap(rbx);
        }, rax: 0xFFFF_FFFF_1122_3344, rbx: 0x0102_0304_0506_0708);
        Assert.That(g[Reg.RAX], Is.EqualTo(0x4433_2211));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x0807_0605_0403_0201));
    }

    [Test]
    public void Bswap16ZeroesTheLowWord()
    {
        using var g = Run(a => a.db(0x66, 0x0F, 0xC8), rax: 0x1122_3344); // BSWAP AX
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1122_0000));
    }
}
