using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Walk;
using static Iced.Intel.AssemblerRegisters;
using NpfErr = Emulator.Mmu.Fault.PfErr;

namespace Emulator.Tests.Core.Memory;

/// <summary>
/// The vCPU's translation root (Cpu.Npt.cs): TDP while it runs L1, the shadow of L1's nested page tables while it
/// runs L2. L1's NPT is a 4-level table written into L1 RAM: L2 0–16 MiB identity-mapped with 2 MiB leaves except
/// 2–4 MiB, which a page table maps page by page (one page read-only, one missing, one to an unbacked L1 address).
/// Expected EXITINFO1 values are the bare-metal ones (svm-avic.md §4.4).
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class VcpuTranslationTests : IDisposable
{
    private const ulong Ncr3 = 0xC00000, Pdpt = 0xC01000, Pd = 0xC02000, Pt = 0xC03000;
    private const ulong Rwu = 0x7, Ru = 0x5, Huge = 0x80;
    private const ulong Fine = 0x200000;                 // L2 2–4 MiB: the page table's range
    private const ulong ReadOnlyPage = Fine + 0x3000, MissingPage = Fine + 0x5000, MmioPage = Fine + 0x6000;
    private const ulong L1Mmio = 0xFF000000;            // unbacked in L1: a device window

    private readonly PhysicalMemory _mem = PhysicalMemory.Create(16 << 20);
    private readonly Cpu _cpu;
    private readonly List<string> _diag = [];

    public VcpuTranslationTests()
    {
        _cpu = new Cpu(_mem) { Diagnostic = _diag.Add };
        Npt(Ncr3, Pdpt | Rwu);
        Npt(Pdpt, Pd | Rwu);
        for (ulong i = 0; i < 8; i++)
        {
            Npt(Pd + (i * 8), i == 1 ? Pt | Rwu : (i << 21) | Huge | Rwu);
        }

        for (ulong i = 0; i < 512; i++)
        {
            ulong l2 = Fine + (i << 12);
            ulong entry = l2 switch
            {
                ReadOnlyPage => l2 | Ru,
                MissingPage => 0,
                MmioPage => L1Mmio | Rwu,
                _ => l2 | Rwu,
            };
            Npt(Pt + (i * 8), entry);
        }
    }

    public void Dispose() => _mem.Dispose();

    private void Npt(ulong l1Gpa, ulong value) => _mem.Write(l1Gpa, 8, value);

    private RetPf Translate(ulong gpa, ulong access, out ulong hpa, out ulong l1Gpa) => _cpu.TranslateGpa(gpa, access, out hpa, out l1Gpa);

    [Test]
    public void L2AddressesMapToTheHostPagesL1Chose()
    {
        _cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        Assert.That(Translate(Fine + 0x1123, 0, out ulong hpa, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(hpa, Is.EqualTo(Fine + 0x1123UL), "L1 GPA == host offset below 3 GiB");
        Assert.That(Translate(Fine + 0x1123, 0, out hpa, out _), Is.EqualTo(RetPf.Continue), "the shadow SPTE is in place");
        Assert.That(Translate(0x700010, NpfErr.Write, out hpa, out _), Is.EqualTo(RetPf.Fixed), "2 MiB leaf of L1");
        Assert.That(hpa, Is.EqualTo(0x700010UL));
        Assert.That(Translate(ReadOnlyPage + 8, 0, out hpa, out _), Is.EqualTo(RetPf.Fixed), "reading a read-only page is allowed");
        Assert.That(_cpu.PendingNpf, Is.False);
    }

    [TestCase(ReadOnlyPage + 0x10, NpfErr.Write, 0x1_0000_0007UL, TestName = "WriteToReadOnlyNestedPage")]
    [TestCase(MissingPage + 0x20, 0UL, 0x1_0000_0004UL, TestName = "ReadOfMissingNestedPage")]
    [TestCase(MissingPage + 0x20, NpfErr.Write, 0x1_0000_0006UL, TestName = "WriteToMissingNestedPage")]
    [TestCase(MissingPage, NpfErr.GuestPage, 0x2_0000_0006UL, TestName = "GuestTableReadOfMissingNestedPageIsAWrite")]
    public void AnAccessL1DoesNotAllowLeavesAnNpfForL1(ulong gpa, ulong access, ulong exitInfo1)
    {
        _cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        ulong before = _cpu.Cycles;
        Assert.That(Translate(gpa, access, out _, out _), Is.EqualTo(RetPf.ReflectToGuest));
        Assert.That(_cpu.PendingNpf, Is.True);
        Assert.That(_cpu.NpfExitInfo1, Is.EqualTo(exitInfo1));
        Assert.That(_cpu.NpfExitInfo2, Is.EqualTo(gpa));
        Assert.That(_cpu.Cycles - before, Is.EqualTo(_cpu.Costs.VmexitRoundTrip + _cpu.Costs.FaultHandling), "charged once");
        Assert.That((_cpu.NestedPageFaults, _cpu.NestedPageFaultsReflected), Is.EqualTo((1UL, 1UL)));
    }

    [Test]
    public void AnL2AccessToL1MmioIsEmulatedAtTheL1Address()
    {
        _cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        Assert.That(Translate(MmioPage + 0x44, 0, out _, out ulong l1Gpa), Is.EqualTo(RetPf.Emulate));
        Assert.That(l1Gpa, Is.EqualTo(L1Mmio + 0x44));
        Assert.That(Translate(MmioPage + 0x48, NpfErr.Write, out _, out l1Gpa), Is.EqualTo(RetPf.Emulate), "cached MMIO SPTE");
        Assert.That(l1Gpa, Is.EqualTo(L1Mmio + 0x48));
    }

    [Test]
    public void LeavingNestedPagingTranslatesL1AddressesAgain()
    {
        _cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        Assert.That(Translate(MissingPage, 0, out _, out _), Is.EqualTo(RetPf.ReflectToGuest));
        _cpu.LeaveNestedPaging();
        Assert.That(_cpu.InNestedPaging, Is.False);
        Assert.That(PhysicalMemory.IsMapped(Translate(MissingPage, 0, out ulong hpa, out ulong l1Gpa)), Is.True);
        Assert.That(hpa, Is.EqualTo(MissingPage));
        Assert.That(l1Gpa, Is.EqualTo(MissingPage));
    }

    [Test]
    public void AnL2WriteToAPageHoldingL1TablesIsEmulatedAndDropsTheShadow()
    {
        // The identity 2 MiB leaf at 12 MiB maps L1's own NPT pages into L2.
        _cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        Assert.That(Translate(Fine + 0x1000, 0, out _, out _), Is.EqualTo(RetPf.Fixed), "builds the shadow down to L1's page table");
        var mmu = _mem.Mmu!;
        Assert.That(mmu.IsWriteTracked(new Emulator.Mmu.Memory.Gfn(Pt >> 12)), Is.True, "the shadow write-tracks L1's page table");

        ulong slot = Pt + ((MissingPage - Fine) >> 12) * 8;
        Assert.That(Translate(slot, NpfErr.Write, out _, out ulong l1Gpa), Is.EqualTo(RetPf.Emulate));
        Assert.That(l1Gpa, Is.EqualTo(slot));
        _mem.EmulatedWrite(l1Gpa, 8, MissingPage | Rwu);
        Assert.That(_mem.Read(slot, 8), Is.EqualTo(MissingPage | Rwu), "the emulated write reached L1's RAM");
        Assert.That(Translate(MissingPage, 0, out ulong hpa, out _), Is.EqualTo(RetPf.Fixed), "the new L1 entry is used");
        Assert.That(hpa, Is.EqualTo(MissingPage));
    }

    [Test]
    public void AnNpfFromAnInstructionReachesTheExitHook()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(eax, 0x55);
            a.mov(__dword_ptr[ReadOnlyPage + 0x10], eax);
            a.hlt();
        });
        Cpu? exited = null;
        g.Cpu.NestedPageFaultExit = c =>
        {
            exited = c;
            c.StopRequested = true;
        };
        WriteNpt(g.Mem);
        g.Cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        g.Run();
        Assert.That(exited, Is.SameAs(g.Cpu));
        Assert.That(g.Cpu.NpfExitInfo1, Is.EqualTo(0x1_0000_0007UL));
        Assert.That(g.Cpu.NpfExitInfo2, Is.EqualTo(ReadOnlyPage + 0x10));
        Assert.That(g.Cpu.NpfEventVector, Is.EqualTo(-1));
        Assert.That(g.Cpu.ExceptionsDelivered, Is.Zero, "not an IDT event");
        Assert.That(g.Mem.Read(ReadOnlyPage + 0x10, 4), Is.Zero, "the write did not happen");
    }

    [Test]
    public void WithoutAnExitHookAnNpfShutsTheVcpuDown()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(eax, __dword_ptr[MissingPage]);
            a.hlt();
        });
        var diag = new List<string>();
        g.Cpu.Diagnostic = diag.Add;
        WriteNpt(g.Mem);
        g.Cpu.EnterNestedPaging(Ncr3, PagingMode.LongMode4, l1Nxe: true);
        Assert.That(g.Run(), Is.EqualTo(RunExit.TripleFault));
        Assert.That(diag, Has.Some.Contains("nested page fault for L1 (exitinfo1 0x100000004"));
    }

    /// <summary>The fixture's L1 NPT, written into another memory (a TestGuest's).</summary>
    private void WriteNpt(PhysicalMemory target)
    {
        foreach (ulong table in new[] { Ncr3, Pdpt, Pd, Pt })
        {
            for (ulong i = 0; i < 512; i++)
            {
                target.Write(table + (i * 8), 8, _mem.Read(table + (i * 8), 8));
            }
        }
    }
}
