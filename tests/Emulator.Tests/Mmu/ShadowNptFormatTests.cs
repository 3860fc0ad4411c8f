using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Shadow;
using Emulator.Mmu.Walk;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Tests.Mmu;

/// <summary>
/// Shadow NPT for L2 when L1 runs in a legacy paging mode, so its nested tables are PAE (3-level, 8-byte
/// entries, 4-entry PDPT) or legacy 32-bit (2-level, 1024 4-byte entries). The tests build L1's tables in
/// L1 memory; expected EXITINFO1 values are the bare-metal ones (spec/kvm-mmu.md §5.3): the walker's
/// error code (P, W, U, RSVD, ID; U always set for the nested walk) with bit 32 for the final address or
/// bit 33 for L2's own table walk, and EXITINFO2 the faulting L2 GPA.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed unsafe class ShadowNptFormatTests : IDisposable
{
    private const ulong HostSize = 64UL << 20;
    private const ulong L1Ram = 32UL << 20;
    private const ulong Ncr3 = 0x100000;        // L1 GPA of L1's root table (legacy PD)
    private const ulong PaeNcr3 = 0x100020;     // a PAE PDPT is 32-byte aligned: not at the page start
    private const ulong TablesStart = 0x110000; // further L1 tables are taken from here
    private const ulong Rwu = 0x7;              // P | W | U
    private const ulong Final = PfErr.GuestFinal, Page = PfErr.GuestPage;

    private readonly HostMemoryArena _host = new(HostSize);
    private readonly MmuContext _mmu;
    private readonly ShadowNptMmu _shadow;
    private ulong _nextTable = TablesStart;

    public ShadowNptFormatTests()
    {
        _mmu = new MmuContext(HostSize, tableCapacity: 4096, host: _host);
        _mmu.Memslots.Create(0, new Gpa(0), L1Ram, new Hpa(0));
        _mmu.CreateApicAccessSlot(new Hpa(60UL << 20));
        _shadow = new ShadowNptMmu(_mmu);
    }

    public void Dispose()
    {
        _mmu.Dispose();
        _host.Dispose();
    }

    // L1 GPA == HPA here (slot 0 maps L1 GPA 0.. at host offset 0).
    private void Write64(ulong l1Gpa, ulong value) => *(ulong*)_host.Pointer(l1Gpa) = value;

    private ulong Read64(ulong l1Gpa) => *(ulong*)_host.Pointer(l1Gpa);

    private void Write32(ulong l1Gpa, ulong value) => *(uint*)_host.Pointer(l1Gpa) = (uint)value;

    private uint Read32(ulong l1Gpa) => *(uint*)_host.Pointer(l1Gpa);

    private ulong NewTable()
    {
        ulong t = _nextTable;
        _nextTable += 0x1000;
        return t;
    }

    // ---- PAE: PDPTE (P only: bits 1, 2, 5..8 are reserved) -> PD -> PT ----

    private ulong PdpteAddr(ulong l2Gpa) => PaeNcr3 + (((l2Gpa >> 30) & 3) * 8);

    private ulong PaePd(ulong l2Gpa)
    {
        ulong pdpte = Read64(PdpteAddr(l2Gpa));
        if ((pdpte & 1) == 0)
        {
            pdpte = NewTable() | 1;
            Write64(PdpteAddr(l2Gpa), pdpte);
        }

        return pdpte & ~0xFFFUL;
    }

    private ulong PaePdeAddr(ulong l2Gpa) => PaePd(l2Gpa) + (((l2Gpa >> 21) & 511) * 8);

    private ulong PaePteAddr(ulong l2Gpa)
    {
        ulong pdeAddr = PaePdeAddr(l2Gpa);
        ulong pde = Read64(pdeAddr);
        if ((pde & 1) == 0)
        {
            pde = NewTable() | Rwu;
            Write64(pdeAddr, pde);
        }

        return (pde & ~0xFFFUL) + (((l2Gpa >> 12) & 511) * 8);
    }

    private ulong MapPae(ulong l2Gpa, ulong l1Gpa, ulong flags = Rwu)
    {
        ulong pte = PaePteAddr(l2Gpa);
        Write64(pte, l1Gpa | flags);
        return pte;
    }

    // ---- Legacy 32-bit: PDE -> PT, 1024 4-byte entries each ----

    private static ulong PdeAddr(ulong l2Gpa) => Ncr3 + (((l2Gpa >> 22) & 1023) * 4);

    private ulong LegacyPteAddr(ulong l2Gpa)
    {
        uint pde = Read32(PdeAddr(l2Gpa));
        if ((pde & 1) == 0)
        {
            pde = (uint)(NewTable() | Rwu);
            Write32(PdeAddr(l2Gpa), pde);
        }

        return (pde & 0xFFFFF000UL) + (((l2Gpa >> 12) & 1023) * 4);
    }

    private ulong MapLegacy(ulong l2Gpa, ulong l1Gpa, ulong flags = Rwu)
    {
        ulong pte = LegacyPteAddr(l2Gpa);
        Write32(pte, l1Gpa | flags);
        return pte;
    }

    private RetPf L2Fault(ulong l2Gpa, ulong err, out PageFault pf)
    {
        pf = PageFault.ForL2(new L2Gpa(l2Gpa), err);
        return _shadow.Handle(ref pf);
    }

    private void AssertMapped(ulong l2Gpa, ulong l1Gpa, int level)
    {
        ulong spte = _shadow.Lookup(new L2Gfn(l2Gpa >> 12), out int l);
        Assert.That(IsShadowPresent(spte), Is.True, $"L2 GPA {l2Gpa:x} is mapped");
        Assert.That(l, Is.EqualTo(level), $"level of L2 GPA {l2Gpa:x}");
        Assert.That(Pfn(spte), Is.EqualTo(l1Gpa >> 12), $"host page of L2 GPA {l2Gpa:x}");
    }

    private void AssertReflected(ulong l2Gpa, ulong err, ulong exitInfo1)
    {
        Assert.That(L2Fault(l2Gpa, err, out var pf), Is.EqualTo(RetPf.ReflectToGuest));
        Assert.That(pf.ExitInfo1, Is.EqualTo(exitInfo1), $"EXITINFO1 for L2 GPA {l2Gpa:x}");
        Assert.That(pf.ExitInfo2, Is.EqualTo(l2Gpa));
    }

    /// <summary>An L1 write to one of its NPT pages: emulated (the page is write-tracked), then the notifier runs.</summary>
    private void L1WritesTable(ulong l1Gpa, Action write)
    {
        Assert.That(_mmu.IsWriteTracked(new Gfn(l1Gpa >> 12)), Is.True, $"L1 table page {l1Gpa:x} is write-tracked");
        var l1 = PageFault.For(new Gpa(l1Gpa), PfErr.Write | PfErr.Present);
        Assert.That(_mmu.Handle(ref l1), Is.EqualTo(RetPf.Emulate));
        write();
        _mmu.NotifyTrackedWrite(new Gpa(l1Gpa));
    }

    // CR4: PSE = 0x10, PAE = 0x20. EFER: LME = 0x100, LMA = 0x400, NXE = 0x800.
    [TestCase(0x20UL, 0x500UL, PagingMode.LongMode4, TestName = "ModeLongWhenEferLma")]
    [TestCase(0x20UL, 0UL, PagingMode.Pae, TestName = "ModePaeWhenCr4Pae")]
    [TestCase(0x30UL, 0x100UL, PagingMode.Pae, TestName = "ModePaeWithPseAndLmeWithoutLma")]
    [TestCase(0x10UL, 0UL, PagingMode.Legacy32Pse, TestName = "ModeLegacyPseWhenCr4Pse")]
    [TestCase(0UL, 0x800UL, PagingMode.Legacy32, TestName = "ModeLegacyWithoutPse")]
    public void NestedTableFormatFollowsL1PagingMode(ulong cr4, ulong efer, PagingMode mode)
        => Assert.That(PagingModes.FromControlRegisters(cr4, efer), Is.EqualTo(mode));

    // ================================ PAE ================================

    [Test]
    public void PaeFaultMapsTheHostPageL1Chose()
    {
        ulong pte = MapPae(0x4000, 0x600000);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(L2Fault(0x4010, PfErr.Write, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Gfn, Is.EqualTo(new Gfn(0x600UL)));
        AssertMapped(0x4000, 0x600000, 1);
        Assert.That(_shadow.Lookup(new L2Gfn(4), out _) & Writable, Is.Not.Zero);
        // A and D set in L1's 8-byte PTE; the PDPTE has no A bit and stays as written.
        Assert.That(Read64(pte) & 0x60, Is.EqualTo(0x60UL));
        Assert.That(Read64(PaeNcr3) & 0xFFF, Is.EqualTo(1UL));
        // Every L1 table page used is write-tracked: the PDPT page, the PD and the PT; nothing else.
        Assert.That(_mmu.IsWriteTracked(new Gfn(PaeNcr3 >> 12)), Is.True, "PDPT page");
        Assert.That(_mmu.IsWriteTracked(new Gfn(PaePdeAddr(0x4000) >> 12)), Is.True, "PD");
        Assert.That(_mmu.IsWriteTracked(new Gfn(pte >> 12)), Is.True, "PT");
        Assert.That(_mmu.IsWriteTracked(new Gfn(0)), Is.False);
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void PaeGfnBehindEachPdptSlotMapsWhereL1Chose(int slot)
    {
        // Every slot is populated with a different target, so a mix-up between slots shows.
        for (int s = 0; s < 4; s++)
        {
            MapPae(((ulong)s << 30) | 0x3000, 0x700000 + ((ulong)s * 0x1000));
        }

        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        ulong l2 = ((ulong)slot << 30) | 0x3000;
        Assert.That(L2Fault(l2, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(l2, 0x700000 + ((ulong)slot * 0x1000), 1);
    }

    [Test]
    public void PaeTwoMiBLeafIsShadowedHuge()
    {
        // L2 0x40200000 (PDPT slot 1, PDE 1) -> L1 0x800000 as a 2 MiB leaf.
        Write64(PaePdeAddr(0x4020_0000), 0x800000 | 0x80 | Rwu);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(L2Fault(0x4020_5000, PfErr.Write, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(2));
        AssertMapped(0x4020_5000, 0x800000, 2);
        Assert.That(pf.Gfn, Is.EqualTo(new Gfn(0x805UL)));
    }

    [Test]
    public void PaeMissesReflectWithHardwareExitInfo()
    {
        MapPae(0x4000, 0x600000);                   // slot 0: PD and PT exist
        Write64(PaePdeAddr(0x4000_0000), 0);        // slot 1: PD exists, PDE 0 not present
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);

        // PDPTE not present (slot 2): no P; U always; W for a write.
        AssertReflected(0x8000_1000, 0, Final | 0x4);
        AssertReflected(0x8000_1000, PfErr.Write, Final | 0x6);
        // PDE not present; then L2's own table walk (bit 33) through it.
        AssertReflected(0x4000_1000, PfErr.Write, Final | 0x6);
        AssertReflected(0x4000_1000, PfErr.Write | Page, Page | 0x6);
        // PTE not present in an existing PT.
        AssertReflected(0x7000, 0, Final | 0x4);
        AssertReflected(0x7000, PfErr.Write | Page, Page | 0x6);
        Assert.That(_shadow.Lookup(new L2Gfn(0x7), out _), Is.Zero, "nothing shadowed for a reflected fault");
    }

    [TestCase(1UL << 1, TestName = "PdpteRwBitIsReserved")]
    [TestCase(1UL << 2, TestName = "PdpteUsBitIsReserved")]
    [TestCase(1UL << 5, TestName = "PdpteAccessedBitIsReserved")]
    [TestCase(1UL << 8, TestName = "PdpteBit8IsReserved")]
    [TestCase(1UL << 63, TestName = "PdpteNxIsReservedEvenWithNxe")]
    [TestCase(1UL << 52, TestName = "PdpteBit52IsReserved")]
    [TestCase(1UL << 50, TestName = "PdpteAddressAboveMaxPhysIsReserved")]
    public void PaePdpteWithReservedBitsReflectsRsvd(ulong bit)
    {
        MapPae(0x4000, 0x600000);
        Write64(PaeNcr3, Read64(PaeNcr3) | bit);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        AssertReflected(0x4000, 0, Final | 0xD);                     // P | U | RSVD
        AssertReflected(0x4000, PfErr.Write | Page, Page | 0xF);     // P | W | U | RSVD
    }

    [TestCase(1UL << 52, true, TestName = "PaePteBit52IsReserved")]
    [TestCase(1UL << 62, true, TestName = "PaePteBit62IsReserved")]
    [TestCase(1UL << 63, false, TestName = "PaePteNxIsReservedWithoutNxe")]
    public void PaeEntryWithReservedBitsReflectsRsvd(ulong bit, bool nxe)
    {
        MapPae(0x4000, 0x600000 | bit);
        _shadow.Load(PaeNcr3, PagingMode.Pae, nxe);
        AssertReflected(0x4000, 0, Final | 0xD);
    }

    [Test]
    public void PaeLargePdeWithLowFrameBitsReflectsRsvd()
    {
        Write64(PaePdeAddr(0x20_0000), 0x800000 | (1UL << 13) | 0x80 | Rwu);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        AssertReflected(0x20_0000, PfErr.Write, Final | 0xF);
    }

    [Test]
    public void PaeNxWithNxeForbidsFetches()
    {
        MapPae(0x4000, 0x600000 | (1UL << 63));
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        AssertReflected(0x4000, PfErr.Fetch, Final | 0x15);          // P | U | ID
        Assert.That(L2Fault(0x4000, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_shadow.Lookup(new L2Gfn(4), out _) & NoExecute, Is.Not.Zero);
    }

    [Test]
    public void PaeReadOnlyLeafWriteIsReflected()
    {
        MapPae(0x4000, 0x600000, 0x5); // P | U, no W
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        AssertReflected(0x4000, PfErr.Write, Final | 0x7);
        AssertReflected(0x4000, PfErr.Write | Page, Page | 0x7);
        // A read is allowed and shadowed read-only.
        Assert.That(L2Fault(0x4000, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_shadow.Lookup(new L2Gfn(4), out _) & Writable, Is.Zero);
    }

    [Test]
    public void PaeReadOnlyPdeWriteIsReflected()
    {
        MapPae(0x4000, 0x600000);
        Write64(PaePdeAddr(0x4000), Read64(PaePdeAddr(0x4000)) & ~2UL);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        AssertReflected(0x4000, PfErr.Write, Final | 0x7);
    }

    [Test]
    public void PaeL1WriteToThePdptPageDropsTheShadowAndTheNextAccessRewalks()
    {
        MapPae(0x4000_4000, 0x600000);                  // slot 1
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(L2Fault(0x4000_4000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x4000_4000, 0x600000, 1);
        ulong pdptPage = PaeNcr3 & ~0xFFFUL;

        // L1 points PDPTE 1 at another PD, whose path maps the same L2 GPA elsewhere.
        ulong otherPd = NewTable(), otherPt = NewTable();
        Write64(otherPd, otherPt | Rwu);
        Write64(otherPt + (4 * 8), 0x900000 | Rwu);
        L1WritesTable(pdptPage, () => Write64(PdpteAddr(0x4000_0000), otherPd | 1));

        Assert.That(_shadow.Lookup(new L2Gfn(0x40004), out _), Is.Zero, "shadow built from the PDPT is gone");
        Assert.That(L2Fault(0x4000_4000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x4000_4000, 0x900000, 1);
    }

    [Test]
    public void PaeL1WriteToAPageTableDropsTheShadow()
    {
        ulong pte = MapPae(0x4000, 0x600000);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(L2Fault(0x4000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        L1WritesTable(pte, () => Write64(pte, 0x700000 | Rwu));
        Assert.That(_shadow.Lookup(new L2Gfn(4), out _), Is.Zero);
        Assert.That(L2Fault(0x4000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x4000, 0x700000, 1);
    }

    // ============================ Legacy 32-bit ============================

    [Test]
    public void LegacyFaultMapsTheHostPageL1Chose()
    {
        ulong pte = MapLegacy(0x4000, 0x600000);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: true);
        Assert.That(L2Fault(0x4010, PfErr.Write, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Gfn, Is.EqualTo(new Gfn(0x600UL)));
        AssertMapped(0x4000, 0x600000, 1);
        Assert.That(_shadow.Lookup(new L2Gfn(4), out _) & Writable, Is.Not.Zero);
        // A and D in the 4-byte PTE, A in the PDE; the neighbouring PTE is untouched.
        Assert.That(Read32(pte) & 0x60, Is.EqualTo(0x60u));
        Assert.That(Read32(PdeAddr(0x4000)) & 0x20, Is.EqualTo(0x20u));
        Assert.That(Read32(pte + 4), Is.Zero);
        Assert.That(_mmu.IsWriteTracked(new Gfn(Ncr3 >> 12)), Is.True, "PD");
        Assert.That(_mmu.IsWriteTracked(new Gfn(pte >> 12)), Is.True, "PT");
        Assert.That(_mmu.IsWriteTracked(new Gfn(0)), Is.False);
    }

    [Test]
    public void LegacyGfnsInBothHalvesOfATableAndInTheUpperPdQuadrant()
    {
        // One PT: entry 5 (lower half) and entry 837 (upper half, address bit 21 set).
        MapLegacy(0x5000, 0x600000);
        MapLegacy(0x34_5000, 0x601000);
        // PD entry 768 and up (quadrant 3, address bits 31:30 = 3).
        MapLegacy(0xC012_3000, 0x602000);
        _shadow.Load(Ncr3, PagingMode.Legacy32, l1Nxe: false);
        Assert.That(L2Fault(0x5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(L2Fault(0x34_5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(L2Fault(0xC012_3000, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x5000, 0x600000, 1);
        AssertMapped(0x34_5000, 0x601000, 1);
        AssertMapped(0xC012_3000, 0x602000, 1);
        // The unmapped neighbour in the upper half of the first PT is still a miss.
        AssertReflected(0x34_6000, 0, Final | 0x4);
    }

    [Test]
    public void LegacyFourMiBLeafIsShadowedByTwoMiBPages()
    {
        // L2 0x800000 (PDE 2) -> L1 0x1000000, 4 MiB.
        Write32(PdeAddr(0x80_0000), 0x100_0000 | 0x80 | Rwu);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(L2Fault(0xA0_1000, PfErr.Write, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Gfn, Is.EqualTo(new Gfn(0x1201UL)));
        Assert.That(pf.Level, Is.EqualTo(2));
        AssertMapped(0xA0_1000, 0x120_0000, 2);          // upper 2 MiB half
        Assert.That(_shadow.Lookup(new L2Gfn(0x800), out _), Is.Zero, "the lower half is shadowed on its own fault");
        Assert.That(L2Fault(0x80_0000, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x80_0000, 0x100_0000, 2);
        Assert.That(Read32(PdeAddr(0x80_0000)) & 0x60, Is.EqualTo(0x60u), "A and D in the 4 MiB PDE");
    }

    [Test]
    public void LegacyFourMiBLeafIsSplitWhereTheHostCannotMapTwoMiB()
    {
        // L2 0x400000 -> L1 0x0 as 4 MiB. L1's own PD (0x100000) lies in the lower 2 MiB and is
        // write-tracked once shadowed, so that half can only be mapped with 4 KiB pages.
        Write32(PdeAddr(0x40_0000), 0x80 | Rwu);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(L2Fault(0x40_3000, 0, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(1));
        AssertMapped(0x40_3000, 0x3000, 1);
        Assert.That(L2Fault(0x60_3000, 0, out pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(2));
        AssertMapped(0x60_3000, 0x20_0000, 2);
    }

    [Test]
    public void LegacyPdePsIsIgnoredWithoutCr4Pse()
    {
        MapLegacy(0x4000, 0x600000);
        Write32(PdeAddr(0x4000), Read32(PdeAddr(0x4000)) | 0x80);
        _shadow.Load(Ncr3, PagingMode.Legacy32, l1Nxe: false);
        Assert.That(L2Fault(0x4000, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x4000, 0x600000, 1);
    }

    [Test]
    public void LegacyFourMiBLeafUsesPse36FrameBits()
    {
        // PDE bits 20:13 are PA bits 39:32; the L1 GPA lands above 4 GiB where no memory is: MMIO.
        Write32(PdeAddr(0x80_0000), 0x100_0000 | (1UL << 13) | 0x80 | Rwu);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(L2Fault(0x80_1000, 0, out var pf), Is.EqualTo(RetPf.Emulate));
        Assert.That(pf.Gfn, Is.EqualTo(new Gfn(0x1_0100_1000UL >> 12)));
    }

    [Test]
    public void LegacyMissesAndPermissionFailuresReflectWithHardwareExitInfo()
    {
        MapLegacy(0x4000, 0x600000);
        MapLegacy(0x5000, 0x601000, 0x5);             // read-only
        MapLegacy(0x6000, 0x602000, 0x3);             // supervisor-only
        Write32(PdeAddr(0x80_0000), 0x100_0000 | (1UL << 21) | 0x80 | Rwu); // bit 21 reserved
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: true);

        AssertReflected(0xC000_0000, 0, Final | 0x4);             // PDE not present
        AssertReflected(0xC000_0000, PfErr.Write | Page, Page | 0x6);
        AssertReflected(0x7000, PfErr.Write, Final | 0x6);        // PTE not present
        AssertReflected(0x5000, PfErr.Write, Final | 0x7);        // read-only leaf
        AssertReflected(0x5000, PfErr.Write | Page, Page | 0x7);
        AssertReflected(0x6000, 0, Final | 0x5);                  // U clear: the nested walk is a user access
        AssertReflected(0x80_0000, 0, Final | 0xD);               // RSVD
        AssertReflected(0x80_0000, PfErr.Write | Page, Page | 0xF);
    }

    [Test]
    public void LegacyHasNoNx()
    {
        // Bit 31 of a 4-byte PTE is a frame bit; no entry bit forbids fetches, even with L1's EFER.NXE.
        MapLegacy(0x4000, 0x600000);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: true);
        Assert.That(L2Fault(0x4000, PfErr.Fetch, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_shadow.Lookup(new L2Gfn(4), out _) & NoExecute, Is.Zero);
    }

    [Test]
    public void LegacyL1WriteToTheUpperHalfOfATableDropsTheShadowOfBothHalves()
    {
        MapLegacy(0x5000, 0x600000);
        ulong upper = MapLegacy(0x34_5000, 0x601000);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(L2Fault(0x5000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(L2Fault(0x34_5000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        ulong tables = _shadow.ShadowTables;

        L1WritesTable(upper, () => Write32(upper, 0x700000 | Rwu));

        Assert.That(_shadow.Lookup(new L2Gfn(0x345), out _), Is.Zero);
        Assert.That(_shadow.Lookup(new L2Gfn(0x5), out _), Is.Zero, "both shadows of the PT page are dropped");
        Assert.That(_shadow.ShadowTables, Is.EqualTo(tables - 2));
        Assert.That(L2Fault(0x34_5000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x34_5000, 0x700000, 1);
        Assert.That(L2Fault(0x5000, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x5000, 0x600000, 1);
    }

    [Test]
    public void LegacyL1WriteToThePdDropsEveryQuadrant()
    {
        MapLegacy(0x5000, 0x600000);
        MapLegacy(0xC012_3000, 0x602000);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(L2Fault(0x5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(L2Fault(0xC012_3000, 0, out _), Is.EqualTo(RetPf.Fixed));
        ulong pde = PdeAddr(0xC012_3000);
        L1WritesTable(pde, () => Write32(pde, 0));
        Assert.That(_shadow.Lookup(new L2Gfn(0x5), out _), Is.Zero);
        Assert.That(_shadow.Lookup(new L2Gfn(0xC0123), out _), Is.Zero);
        Assert.That(_shadow.ShadowTables, Is.EqualTo(1UL), "only the root is left");
        AssertReflected(0xC012_3000, 0, Final | 0x4);
        Assert.That(L2Fault(0x5000, 0, out _), Is.EqualTo(RetPf.Fixed));
    }

    [Test]
    public void LegacyIgnoresL2GpaBitsAbove31()
    {
        // The 32-bit walk translates address bits 31:0 only; the shadow is built at the full L2 GPA.
        MapLegacy(0x5000, 0x600000);
        _shadow.Load(Ncr3, PagingMode.Legacy32, l1Nxe: false);
        Assert.That(L2Fault(0x1_0000_5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x1_0000_5000, 0x600000, 1);
        Assert.That(_shadow.Lookup(new L2Gfn(0x5), out _), Is.Zero);
    }

    // ========================== Switching formats ==========================

    [Test]
    public void SwitchingTheRootBetweenFormatsDoesNotReuseTables()
    {
        // One nCR3 value, two readings: as a legacy CR3 it names the PD at 0x100000 (bits 31:12), as a PAE
        // CR3 the PDPT at 0x100020. L2 0x5000 goes to 0x600000 through the legacy tables and to 0x900000
        // through the PAE ones, which live in the same root page (legacy PDEs 8..15 are the PDPT).
        MapLegacy(0x5000, 0x600000);
        MapPae(0x5000, 0x900000);

        _shadow.Load(PaeNcr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(_shadow.NestedCr3, Is.EqualTo(new Gpa(Ncr3)));
        Assert.That(L2Fault(0x5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x5000, 0x600000, 1);
        int legacyRoot = _shadow.Root;
        ulong legacyTables = _shadow.ShadowTables;

        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: false);
        Assert.That(_shadow.Mode, Is.EqualTo(PagingMode.Pae));
        Assert.That(_shadow.Root, Is.Not.EqualTo(legacyRoot));
        Assert.That(_shadow.ShadowTables, Is.EqualTo(legacyTables + 1), "a fresh root only; the legacy tree is cached, not shared");
        Assert.That(_shadow.Lookup(new L2Gfn(0x5), out _), Is.Zero);
        Assert.That(L2Fault(0x5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        AssertMapped(0x5000, 0x900000, 1);

        // Same address and format, other NXE: a new shadow too (NXE is part of the role).
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(_shadow.Lookup(new L2Gfn(0x5), out _), Is.Zero);

        // Back to the legacy reading: its own root comes back from the cache with its translation.
        _shadow.Load(PaeNcr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(_shadow.Root, Is.EqualTo(legacyRoot));
        AssertMapped(0x5000, 0x600000, 1);
    }

    [Test]
    public void ReloadingTheSameRootAndFormatKeepsTheShadow()
    {
        MapPae(0x5000, 0x900000);
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(L2Fault(0x5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        ulong tables = _shadow.ShadowTables;
        _shadow.Load(PaeNcr3, PagingMode.Pae, l1Nxe: true);
        Assert.That(_shadow.ShadowTables, Is.EqualTo(tables));
        AssertMapped(0x5000, 0x900000, 1);
    }

    [Test]
    public void UnloadingReleasesEveryTableAndItsWriteTracking()
    {
        ulong pte = MapLegacy(0x34_5000, 0x601000);
        _shadow.Load(Ncr3, PagingMode.Legacy32Pse, l1Nxe: false);
        Assert.That(L2Fault(0x34_5000, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_mmu.IsWriteTracked(new Gfn(pte >> 12)), Is.True);
        _shadow.Unload();
        Assert.That(_shadow.ShadowTables, Is.Zero);
        Assert.That(_mmu.IsWriteTracked(new Gfn(pte >> 12)), Is.False);
        Assert.That(_mmu.IsWriteTracked(new Gfn(Ncr3 >> 12)), Is.False);
    }
}
