using Emulator.Core.Cpu;
using Emulator.Svm.Run;
using Emulator.Svm.Vmcb;
using Emulator.Tests.Core;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Nested;

/// <summary>
/// L2's translations are tagged by its ASID (APM vol. 2 §15.16): they survive the round trip through L1, and go when L1
/// asks with TLB_CONTROL, when vmcb12 names another ASID, or when L0 is set to flush at every nested transition.
/// </summary>
public sealed class NestedTlbTests
{
    // L2 reads Data, which the boot identity map sends to physical Data; the test then points that 2 MiB page at Moved.
    private const ulong Data = 0x600000, Moved = 0x800000;
    private const ulong BootPdEntryOfData = 0x72000 + ((Data >> 21) * 8);

    private static ulong RunL2(TestGuest g, VmcbView v)
    {
        g.Cpu.Rip = TestGuest.CodeBase;
        g.Cpu.Halted = false;
        v.U64(VmcbOffset.Rip) = 0x180000;
        g.Run();
        return g[Reg.RBX];
    }

    [TestCase(0, 1u, false, 0x1111UL, TestName = "NoFlushKeepsL2sTranslation")]
    [TestCase(1, 1u, false, 0x2222UL, TestName = "TlbControl1FlushesEveryAsid")]
    [TestCase(3, 1u, false, 0x2222UL, TestName = "TlbControl3FlushesL2sAsid")]
    [TestCase(7, 1u, false, 0x2222UL, TestName = "TlbControl7FlushesL2sNonGlobalEntries")]
    [TestCase(0, 2u, false, 0x2222UL, TestName = "AnotherAsidDoesNotSeeTheFirstOnesEntries")]
    [TestCase(0, 1u, true, 0x2222UL, TestName = "L0FlushingAtEveryTransitionAsKvm6xDoes")]
    public void L1ChangesL2sPageTableWithoutInvlpg(int tlbControl, uint secondAsid, bool flushOnTransition, ulong expected)
    {
        using var g = NestedSvmTests.L1();
        var v = NestedSvmTests.Prepare(g, a =>
        {
            a.mov(rbx, __qword_ptr[Data]);
            a.vmmcall();
        });
        ((L0Svm)g.Cpu.Svm!).Nested.FlushOnTransition = flushOnTransition;
        g.Mem.Write(Data, 8, 0x1111);
        g.Mem.Write(Moved, 8, 0x2222);
        Assert.That(RunL2(g, v), Is.EqualTo(0x1111UL));

        // The page table entry changes behind the TLB (no INVLPG, no MOV CR3): only a flush makes L2 see it.
        g.Mem.Write(BootPdEntryOfData, 8, Moved | 0x83);
        v.U8(VmcbOffset.TlbControl) = (byte)tlbControl;
        v.U32(VmcbOffset.Asid) = secondAsid;
        Assert.That(RunL2(g, v), Is.EqualTo(expected));
    }
}
