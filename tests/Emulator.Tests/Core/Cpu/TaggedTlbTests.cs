using Emulator.Core.Cpu;
using Emulator.Mmu.Walk;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// The software TLB is tagged by address space (host or a guest ASID, APM vol. 2 §15.16): a world switch selects the
/// entered space's set instead of flushing, and a set is only reused under the state its entries were filled in.
/// The "L1" and "L2" here are two states of one vCPU moved by <see cref="Cpu.LoadState"/>, as VMRUN and #VMEXIT do.
/// </summary>
public class TaggedTlbTests
{
    // BootState's identity map: PML4 0x70000, PDPT 0x71000, first PD 0x72000 (2 MiB pages, P | RW | PS).
    private const ulong BootPd = 0x72000;

    // L2's own tables at 0x90000: the same identity map except that linear 0x600000 maps physical 0x800000.
    private const ulong L2Pml4 = 0x90000, L2Pdpt = 0x91000, L2Pd = 0x92000;
    private const ulong Data = 0x600000, L2Data = 0x800000;
    private const ulong L1Value = 0x1111, L2Value = 0x2222;

    private static readonly TlbSpace Asid1 = new(1, false, 0, default, false, false);

    private static TestGuest ReadDataThenHalt()
    {
        var g = TestGuest.Long64(a =>
        {
            a.mov(rax, __qword_ptr[Data]);
            a.hlt();
        });
        g.Mem.Write(Data, 8, L1Value);
        g.Mem.Write(L2Data, 8, L2Value);
        g.Mem.Write(L2Pml4, 8, L2Pdpt | 3);
        g.Mem.Write(L2Pdpt, 8, L2Pd | 3);
        for (ulong j = 0; j < 512; j++)
        {
            g.Mem.Write(L2Pd + (j * 8), 8, g.Mem.Read(BootPd + (j * 8), 8));
        }

        g.Mem.Write(L2Pd + ((Data >> 21) * 8), 8, L2Data | 0x83);
        return g;
    }

    /// <summary>Loads <paramref name="s"/> in <paramref name="space"/> and runs the guest from its first instruction to HLT.</summary>
    private static ulong RunIn(TestGuest g, CpuState s, TlbSpace space)
    {
        s.Rip = TestGuest.CodeBase;
        g.Cpu.LoadState(s, space);
        g.Cpu.Halted = false;
        g.Run();
        return g[Reg.RAX];
    }

    private static (CpuState L1, CpuState L2) States(TestGuest g)
    {
        g.Cpu.SaveState(out CpuState l1, TestGuest.CodeBase);
        CpuState l2 = l1;
        l2.Cr3 = L2Pml4;
        return (l1, l2);
    }

    /// <summary>Runs L1, L2 (ASID 1) and L1 again, so both sets hold the code page and their data page.</summary>
    private static (CpuState L1, CpuState L2) Warm(TestGuest g)
    {
        var (l1, l2) = States(g);
        RunIn(g, l1, TlbSpace.Host);
        RunIn(g, l2, Asid1);
        RunIn(g, l1, TlbSpace.Host);
        return (l1, l2);
    }

    [Test]
    public void EachSpaceKeepsItsEntriesAcrossWorldSwitches()
    {
        using var g = ReadDataThenHalt();
        var (l1, l2) = States(g);
        Assert.That(RunIn(g, l1, TlbSpace.Host), Is.EqualTo(L1Value));
        Assert.That(RunIn(g, l2, Asid1), Is.EqualTo(L2Value));

        // Both sets now hold the code page and their own data page: switching back and forth refills nothing and
        // each world still reads through its own translation.
        ulong misses = g.Cpu.TlbMisses;
        Assert.That(RunIn(g, l1, TlbSpace.Host), Is.EqualTo(L1Value));
        Assert.That(RunIn(g, l2, Asid1), Is.EqualTo(L2Value));
        Assert.That(RunIn(g, l1, TlbSpace.Host), Is.EqualTo(L1Value));
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses));
        Assert.That(g.Cpu.TlbSetFlushes, Is.Zero);
    }

    [Test]
    public void AGuestSetIsNotReusedForAnotherAsidOrNestedRoot()
    {
        using var g = ReadDataThenHalt();
        var (l1, l2) = States(g);
        RunIn(g, l1, TlbSpace.Host);
        RunIn(g, l2, Asid1);
        ulong misses = g.Cpu.TlbMisses;

        // The same state under ASID 2 must not see ASID 1's entries: code and data are walked again.
        RunIn(g, l2, Asid1 with { Asid = 2 });
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses + 2));
        Assert.That(g.Cpu.TlbSetFlushes, Is.EqualTo(1));

        // Nor another nested paging root under the same ASID (checked before any translation is made).
        RunIn(g, l1, TlbSpace.Host);
        g.Cpu.LoadState(l2, new TlbSpace(2, true, 0x500000, PagingMode.LongMode4, true, false));
        Assert.That(g.Cpu.TlbSetFlushes, Is.EqualTo(2));
    }

    [TestCase(3, TestName = "L2AtCpl3")]
    [TestCase(0, TestName = "L2WithCr0WpClear")]
    public void AGuestSetFilledUnderOtherPermissionsIsFlushedOnEntry(int change)
    {
        using var g = ReadDataThenHalt();
        var (l1, l2) = Warm(g);
        if (change == 3)
        {
            l2.Cpl = 3;
        }
        else
        {
            l2.Cr0 &= ~Cr0Bits.WP;
        }

        // The entries hold a supervisor access decision made with WP set; they cannot serve another CPL or WP.
        g.Cpu.LoadState(l2, Asid1);
        Assert.That(g.Cpu.TlbSetFlushes, Is.EqualTo(1));
    }

    [Test]
    public void FlushingTheGuestSetLeavesTheHostSet()
    {
        using var g = ReadDataThenHalt();
        var (l1, l2) = Warm(g);

        ulong misses = g.Cpu.TlbMisses;
        g.Cpu.FlushGuestTlb();
        RunIn(g, l1, TlbSpace.Host);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses), "the host set survives TLB_CONTROL 3");
        RunIn(g, l2, Asid1);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses + 2), "the guest set was flushed");
    }

    [Test]
    public void ARemoteFlushRequestFlushesEverySet()
    {
        using var g = ReadDataThenHalt();
        var (l1, l2) = Warm(g);

        // L0's zap asks every vCPU for a flush; it is served while this vCPU runs L1, and L2's set must go too.
        g.Cpu.MakeRequest(VcpuRequest.TlbFlush);
        ulong misses = g.Cpu.TlbMisses;
        RunIn(g, l1, TlbSpace.Host);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses + 2));
        RunIn(g, l2, Asid1);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses + 4));
    }

    [Test]
    public void InvlpgaFromTheHostDropsOnePageOfThatAsid()
    {
        using var g = ReadDataThenHalt();
        var (l1, l2) = Warm(g);

        ulong misses = g.Cpu.TlbMisses;
        g.Cpu.InvalidateAsidPage(2, Data);
        RunIn(g, l2, Asid1);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses), "ASID 2 has no entries here");

        RunIn(g, l1, TlbSpace.Host);
        g.Cpu.InvalidateAsidPage(1, Data);
        RunIn(g, l1, TlbSpace.Host);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses), "the host's own entry stays");

        // The set holds translations through 2 MiB pages, so one INVLPGA drops all of ASID 1's (code and data).
        RunIn(g, l2, Asid1);
        Assert.That(g.Cpu.TlbMisses, Is.EqualTo(misses + 2), "ASID 1's entries are walked again");
    }

    [Test]
    public void CodeWrittenByTheGuestThroughAnEntryCachedBeforeTheHostRanItIsSeenByTheHost()
    {
        // L1 calls a routine on page F; L2 writes to page F. L2's write entry for F is cached before F holds decoded
        // code; when L1's fetch makes F a code page, the write entries of every set must go, or L2's later write would
        // bypass the code-page check and L1 would run its stale decoded copy.
        const ulong f = 0x300000;
        using var g = TestGuest.Long64(a =>
        {
            a.test(rbx, rbx);
            var l1 = a.CreateLabel();
            a.jz(l1);
            a.mov(__qword_ptr[rbx], rcx);
            a.hlt();
            a.Label(ref l1);
            a.mov(rax, f);
            a.call(rax);
            a.hlt();
        });
        g.Load([0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3], f); // mov eax, 1; ret
        g.Cpu.SaveState(out CpuState l1State, TestGuest.CodeBase);

        g.Cpu.Gpr[Reg.RBX] = f + 0x800;
        g.Cpu.Gpr[Reg.RCX] = 0;
        RunIn(g, l1State, Asid1);

        g.Cpu.Gpr[Reg.RBX] = 0;
        Assert.That(RunIn(g, l1State, TlbSpace.Host), Is.EqualTo(1UL));

        g.Cpu.Gpr[Reg.RBX] = f;
        g.Cpu.Gpr[Reg.RCX] = 0x9090_C300_0000_02B8; // mov eax, 2; ret; nop; nop
        RunIn(g, l1State, Asid1);

        g.Cpu.Gpr[Reg.RBX] = 0;
        Assert.That(RunIn(g, l1State, TlbSpace.Host), Is.EqualTo(2UL));
    }
}
