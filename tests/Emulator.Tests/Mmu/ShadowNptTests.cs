using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Shadow;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Tests.Mmu;

/// <summary>
/// Shadow NPT for L2: L1's nested tables are built in L1 memory by the test (4-level, long mode), and
/// L2 faults are resolved through them. Expected EXITINFO1 values are the bare-metal ones
/// (spec/kvm-mmu.md §5.3, svm-avic.md §4.4).
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed unsafe class ShadowNptTests : IDisposable
{
    private const ulong HostSize = 64UL << 20;
    private const ulong L1Ram = 32UL << 20;
    private const ulong Ncr3 = 0x100000;       // L1 GPA of L1's PML4 (nested)
    private const ulong Pdpt = 0x101000, Pd = 0x102000, Pt = 0x103000;
    private const ulong L2Data = 0x4000;        // L2 GPA that the test maps
    private const ulong L1Target = 0x600000;    // L1 GPA it maps to
    private const ulong NptRwu = 0x7;           // P | W | U

    private readonly HostMemoryArena _host = new(HostSize);
    private readonly MmuContext _mmu;
    private readonly ShadowNptMmu _shadow;

    public ShadowNptTests()
    {
        _mmu = new MmuContext(HostSize, tableCapacity: 4096, host: _host);
        _mmu.Memslots.Create(0, new Gpa(0), L1Ram, new Hpa(0));
        _mmu.CreateApicAccessSlot(new Hpa(60UL << 20));
        _shadow = new ShadowNptMmu(_mmu);
        Write(Ncr3, Pdpt | NptRwu);
        Write(Pdpt, Pd | NptRwu);
        Write(Pd, Pt | NptRwu);
        Write(Pt + ((L2Data >> 12) * 8), L1Target | NptRwu);
        _shadow.Load(Ncr3, l1Nxe: true);
    }

    public void Dispose()
    {
        _mmu.Dispose();
        _host.Dispose();
    }

    // L1 GPA == HPA here (slot 0 maps L1 GPA 0.. at host offset 0).
    private void Write(ulong l1Gpa, ulong value) => *(ulong*)_host.Pointer(l1Gpa) = value;

    private ulong Read(ulong l1Gpa) => *(ulong*)_host.Pointer(l1Gpa);

    private RetPf L2Fault(ulong l2Gpa, ulong err, out PageFault pf)
    {
        pf = PageFault.ForL2(new L2Gpa(l2Gpa), err);
        return _shadow.Handle(ref pf);
    }

    [Test]
    public void L2FaultMapsTheHostPageL1Chose()
    {
        Assert.That(L2Fault(L2Data + 0x10, PfErr.Write, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Gfn, Is.EqualTo(new Gfn(L1Target >> 12)));
        ulong spte = _shadow.Lookup(new L2Gfn(L2Data >> 12), out int level);
        Assert.That(level, Is.EqualTo(1));
        Assert.That(Pfn(spte), Is.EqualTo(L1Target >> 12));
        Assert.That(spte & Writable, Is.Not.Zero);
        // The walk set A and (for the write) D in L1's leaf, as the hardware would.
        Assert.That(Read(Pt + ((L2Data >> 12) * 8)) & 0x60, Is.EqualTo(0x60UL));
    }

    [Test]
    public void ReadOfACleanL1LeafIsShadowedReadOnlyUntilTheFirstWrite()
    {
        Assert.That(L2Fault(L2Data, 0, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _) & Writable, Is.Zero);
        Assert.That(L2Fault(L2Data, PfErr.Write | PfErr.Present, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _) & Writable, Is.Not.Zero);
    }

    [TestCase(0x7000UL, 0UL, 0x1_0000_0004UL, TestName = "FinalPageNotPresentRead")]
    [TestCase(0x7000UL, PfErr.Write, 0x1_0000_0006UL, TestName = "FinalPageNotPresentWrite")]
    [TestCase(0x7000UL, PfErr.Write | PfErr.GuestPage, 0x2_0000_0006UL, TestName = "GuestTablePageNotPresent")]
    public void MissInL1NptIsReflectedWithHardwareExitInfo(ulong l2Gpa, ulong err, ulong exitInfo1)
    {
        Assert.That(L2Fault(l2Gpa, err, out var pf), Is.EqualTo(RetPf.ReflectToGuest));
        Assert.That(pf.ExitInfo1, Is.EqualTo(exitInfo1));
        Assert.That(pf.ExitInfo2, Is.EqualTo(l2Gpa));
    }

    [Test]
    public void WriteToReadOnlyL1LeafIsReflected()
    {
        Write(Pt + ((L2Data >> 12) * 8), L1Target | 0x5); // P | U, no W
        Assert.That(L2Fault(L2Data, PfErr.Write, out var pf), Is.EqualTo(RetPf.ReflectToGuest));
        Assert.That(pf.ExitInfo1, Is.EqualTo(0x1_0000_0007UL));
        Assert.That(L2Fault(L2Data, PfErr.Write | PfErr.GuestPage, out pf), Is.EqualTo(RetPf.ReflectToGuest));
        Assert.That(pf.ExitInfo1, Is.EqualTo(0x2_0000_0007UL));
    }

    [Test]
    public void D_L2AccessThatL1PointsAtTheApicPageNeverReachesThePrivatePage()
    {
        // L1's NPT maps L2 GPA 0x5000 to L1 GPA 0xFEE00000, where the APIC-access private slot lives.
        Write(Pt + (5 * 8), MmuContext.ApicAccessGpa.Value | NptRwu);
        Assert.That(L2Fault(0x5000, PfErr.Write, out var pf), Is.EqualTo(RetPf.Emulate));
        Assert.That(pf.Gfn, Is.EqualTo(MmuContext.ApicAccessGfn), "emulated against L1's APIC GPA");
        ulong spte = _shadow.Lookup(new L2Gfn(5), out _);
        Assert.That(IsMmio(spte), Is.True);
        Assert.That(IsShadowPresent(spte), Is.False);
        // The MMIO SPTE is used on the next access (RSVD fault) and still emulates.
        Assert.That(L2Fault(0x5000, PfErr.Present | PfErr.Rsvd, out pf), Is.EqualTo(RetPf.Emulate));
        Assert.That(pf.Gfn, Is.EqualTo(MmuContext.ApicAccessGfn));
    }

    [Test]
    public void L1NptPagesAreWriteTrackedAndAWriteDropsTheirShadow()
    {
        Assert.That(L2Fault(L2Data, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_mmu.IsWriteTracked(new Gfn(Pt >> 12)), Is.True);
        // L1 writes its PT page: the TDP fault on the tracked gfn asks for emulation.
        var l1 = PageFault.For(new Gpa(Pt + 0x20), PfErr.Write | PfErr.Present);
        Assert.That(_mmu.Handle(ref l1), Is.EqualTo(RetPf.Emulate));
        // The emulated write changes the mapping, and the write notifier zaps the shadow built from it.
        Write(Pt + ((L2Data >> 12) * 8), 0x700000 | NptRwu);
        _mmu.NotifyTrackedWrite(new Gpa(Pt + ((L2Data >> 12) * 8)));
        Assert.That(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _), Is.Zero);
        Assert.That(L2Fault(L2Data, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(Pfn(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _)), Is.EqualTo(0x700000UL >> 12));
    }

    /// <summary>A second L1 NPT (its own PML4..PT) mapping <see cref="L2Data"/> to <paramref name="target"/>.</summary>
    private const ulong Ncr3B = 0x110000;

    private void BuildSecondNpt(ulong target)
    {
        Write(Ncr3B, (Ncr3B + 0x1000) | NptRwu);
        Write(Ncr3B + 0x1000, (Ncr3B + 0x2000) | NptRwu);
        Write(Ncr3B + 0x2000, (Ncr3B + 0x3000) | NptRwu);
        Write(Ncr3B + 0x3000 + ((L2Data >> 12) * 8), target | NptRwu);
    }

    /// <summary>
    /// Switching between two nCR3s (two vCPUs running different L2s, or one L1 alternating) takes the earlier root
    /// back with the shadow it built: no fault is needed again, and each root keeps its own translation.
    /// </summary>
    [Test]
    public void SwitchingBackToAnEarlierNestedCr3KeepsItsShadow()
    {
        BuildSecondNpt(0x700000);
        Assert.That(L2Fault(L2Data, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        int rootA = _shadow.Root;
        Assert.That(_shadow.Load(Ncr3B, l1Nxe: true), Is.True);
        Assert.That(_shadow.Root, Is.Not.EqualTo(rootA));
        Assert.That(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _), Is.Zero, "B's shadow starts empty");
        Assert.That(L2Fault(L2Data, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(Pfn(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _)), Is.EqualTo(0x700000UL >> 12));

        Assert.That(_shadow.Load(Ncr3, l1Nxe: true), Is.True);
        Assert.That(_shadow.Root, Is.EqualTo(rootA));
        Assert.That(Pfn(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _)), Is.EqualTo(L1Target >> 12), "A's shadow survived B's use");
    }

    /// <summary>A write to an L1 table page drops the shadow built from it under a cached root too.</summary>
    [Test]
    public void WriteToATablePageOfACachedRootDropsItsShadow()
    {
        BuildSecondNpt(0x700000);
        Assert.That(L2Fault(L2Data, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(_shadow.Load(Ncr3B, l1Nxe: true), Is.True);
        Write(Pt + ((L2Data >> 12) * 8), 0x500000 | NptRwu);
        _mmu.NotifyTrackedWrite(new Gpa(Pt + ((L2Data >> 12) * 8)));
        Assert.That(_shadow.Load(Ncr3, l1Nxe: true), Is.True);
        Assert.That(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _), Is.Zero);
        Assert.That(L2Fault(L2Data, PfErr.Write, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(Pfn(_shadow.Lookup(new L2Gfn(L2Data >> 12), out _)), Is.EqualTo(0x500000UL >> 12));
    }

    /// <summary>More distinct nCR3s than the cache holds: the oldest root's tables are freed, none leak.</summary>
    [Test]
    public void RootsBeyondTheCacheAreFreed()
    {
        ulong before = _shadow.ShadowTables;
        for (int i = 0; i < ShadowNptMmu.CachedRoots + 4; i++)
        {
            Assert.That(_shadow.Load(0x200000 + ((ulong)i << 12), l1Nxe: true), Is.True);
        }

        Assert.That(_shadow.ShadowTables, Is.EqualTo(before + ShadowNptMmu.CachedRoots), "the current root, plus the cached ones, minus the first root");
        _shadow.Unload();
        Assert.That(_shadow.ShadowTables, Is.Zero);
    }

    [Test]
    public void L1HugeLeafIsShadowedHugeWhenTheHostAllows()
    {
        // L2 GPA 0x200000 (2 MiB) -> L1 GPA 0x800000 as a 2 MiB leaf.
        Write(Pd + 8, 0x800000 | 0x80 | NptRwu);
        Assert.That(L2Fault(0x201000, PfErr.Write, out var pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(2));
        Assert.That(Pfn(_shadow.Lookup(new L2Gfn(0x201), out int level)), Is.EqualTo(0x800000UL >> 12));
        Assert.That(level, Is.EqualTo(2));
    }
}
