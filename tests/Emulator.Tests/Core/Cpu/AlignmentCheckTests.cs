using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// Alignment checking (APM vol. 2 §8.2.17 "#AC"): with CR0.AM, RFLAGS.AC and CPL 3, a data access of 2, 4 or 8
/// bytes that is not aligned to its size raises #AC(0) instead of completing.
/// </summary>
public class AlignmentCheckTests
{
    private const ulong Data = TestGuest.DataBase;

    /// <summary>A 32-bit protected-mode guest (no paging) at <paramref name="cpl"/> with CR0.AM and RFLAGS.AC as given.</summary>
    private static TestGuest Guest(int cpl, bool am, bool ac)
    {
        var g = TestGuest.Protected32(a => a.nop());
        if (am)
        {
            g.Cpu.Cr0 |= Cr0Bits.AM;
        }

        if (ac)
        {
            g.Cpu.FlagsBits |= Rflags.AC;
        }

        g.Cpu.SetCpl(cpl);
        g.Cpu.PendingVector = -1;
        return g;
    }

    private static void AssertAlignmentCheck(TestGuest g)
    {
        Assert.That(g.Cpu.PendingVector, Is.EqualTo(Vector.AC));
        Assert.That(g.Cpu.PendingHasError, Is.True);
        Assert.That(g.Cpu.PendingError, Is.Zero);
    }

    [TestCase(2, 1UL)]
    [TestCase(4, 2UL)]
    [TestCase(8, 4UL)]
    [TestCase(8, 0xFFCUL)] // page-crossing as well
    public void MisalignedWriteAtCpl3Faults(int size, ulong offset)
    {
        using var g = Guest(cpl: 3, am: true, ac: true);
        Assert.That(g.Cpu.WriteMem(SegReg.DS, Data + offset, size, 0x1122_3344_5566_7788), Is.False);
        AssertAlignmentCheck(g);
        Assert.That(g.ReadPhys(Data + offset, size), Is.Zero, "the faulting write must not happen");
    }

    [Test]
    public void MisalignedReadAtCpl3Faults()
    {
        using var g = Guest(cpl: 3, am: true, ac: true);
        Assert.That(g.Cpu.ReadMem(SegReg.DS, Data + 6, 4, out _), Is.False);
        AssertAlignmentCheck(g);
    }

    [TestCase(3, true, true, 8UL, 8)]
    [TestCase(3, true, true, 3UL, 1)] // bytes are always aligned
    [TestCase(0, true, true, 4UL, 8)] // CPL 0 is never checked
    [TestCase(3, false, true, 4UL, 8)] // CR0.AM clear
    [TestCase(3, true, false, 4UL, 8)] // RFLAGS.AC clear
    public void AccessCompletesWhenNotChecked(int cpl, bool am, bool ac, ulong offset, int size)
    {
        using var g = Guest(cpl, am, ac);
        Assert.That(g.Cpu.WriteMem(SegReg.DS, Data + offset, size, 0x5A), Is.True);
        Assert.That(g.Cpu.ReadMem(SegReg.DS, Data + offset, size, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(0x5A));
        Assert.That(g.Cpu.PendingVector, Is.EqualTo(-1));
    }

    /// <summary>
    /// POPF at CPL 3 that sets AC turns checking on for the very next access, even to a page whose translation was
    /// cached while AC was clear.
    /// </summary>
    [Test]
    public void PopfSettingAcAtCpl3ChecksPagesUsedBefore()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(__dword_ptr[Data + 0x10], eax); // caches the data page while AC is clear
            a.push(0x4_0002);
            a.popfd();
        });
        g.Cpu.Cr0 |= Cr0Bits.AM;
        g.Cpu.SetCpl(3);
        g.Run(3);
        Assert.That(g.Cpu.FlagsBits & Rflags.AC, Is.Not.Zero);
        g.Cpu.PendingVector = -1;
        Assert.That(g.Cpu.WriteMem(SegReg.DS, Data + 0x12, 4, 1), Is.False);
        AssertAlignmentCheck(g);
    }

    /// <summary>Descriptor-table reads are implicit supervisor accesses and are never alignment-checked.</summary>
    [Test]
    public void ImplicitSupervisorAccessIsNotChecked()
    {
        using var g = Guest(cpl: 3, am: true, ac: true);
        g.Mem.Write(Data + 2, 4, 0xCAFE);
        Assert.That(g.Cpu.ReadLinearSystem(Data + 2, 4, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(0xCAFE));
    }
}
