using Emulator.Mmu.Fault;
using Emulator.Mmu.Memslots;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Tests.Mmu;

/// <summary>The seed behaviour of the page-fault handler (issue 3, item 8).</summary>
public class FaultHandlerTests
{
    private const ulong HostSize = 64UL << 20;
    private const ulong ApicBacking = 60UL << 20;
    private const int ApicvReasonIrqWindow = 6;

    private static MmuContext NewVm(ApicvToggle toggle = ApicvToggle.Zap)
    {
        var mmu = new MmuContext(HostSize, toggle, tableCapacity: 4096);
        mmu.Memslots.Create(0, 0, 32UL << 20, 0);
        mmu.CreateApicAccessSlot(ApicBacking);
        return mmu;
    }

    private static RetPf Fault(MmuContext mmu, ulong gpa, ulong err = 0, bool guestMode = false)
    {
        var pf = PageFault.For(gpa, err, guestMode);
        return mmu.Handle(ref pf);
    }

    [Test]
    public void A_L1FaultOnApicAccessSlotWithApicvActiveMapsThePrivatePage()
    {
        using var mmu = NewVm();
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa + 0x300), Is.EqualTo(RetPf.Fixed));
        ulong spte = mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out int level);
        Assert.That(IsShadowPresent(spte), Is.True);
        Assert.That(level, Is.EqualTo(1));
        Assert.That(Pfn(spte), Is.EqualTo(ApicBacking >> 12));
    }

    [Test]
    public void B_ApicvInhibitedFaultEmulatesWithoutCreatingAnMmioSpte()
    {
        using var mmu = NewVm();
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, true);
        ulong mmioBefore = mmu.Stats.MmioSptesCreated;
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa + 0x80, PfErr.Write), Is.EqualTo(RetPf.Emulate));
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa + 0x80), Is.EqualTo(RetPf.Emulate));
        Assert.That(mmu.Stats.MmioSptesCreated, Is.EqualTo(mmioBefore));
        Assert.That(mmu.Tdp.CountMmio(), Is.Zero);
        Assert.That(mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out _), Is.Zero);
        Assert.That(mmu.Stats.ApicEmulations, Is.EqualTo(2));
    }

    [Test]
    public void C_InhibitAfterMappingZapsExactlyThatSpteAndTheNextAccessEmulates()
    {
        using var mmu = NewVm();
        // Map a few RAM pages (4 KiB and huge) and an MMIO gfn, then the APIC page.
        Assert.That(Fault(mmu, 0x1000), Is.EqualTo(RetPf.Fixed));
        Assert.That(Fault(mmu, 0x400000), Is.EqualTo(RetPf.Fixed));
        Assert.That(Fault(mmu, 0xFEC00000), Is.EqualTo(RetPf.Emulate));
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa), Is.EqualTo(RetPf.Fixed));
        ulong leaves = mmu.Tdp.CountLeaves();
        ulong mmio = mmu.Tdp.CountMmio();
        ulong zappedBefore = mmu.Stats.SptesZapped;

        mmu.SetApicvInhibit(ApicvReasonIrqWindow, true);

        Assert.That(mmu.Stats.SptesZapped - zappedBefore, Is.EqualTo(1));
        Assert.That(mmu.Tdp.CountLeaves(), Is.EqualTo(leaves - 1));
        Assert.That(mmu.Tdp.CountMmio(), Is.EqualTo(mmio));
        Assert.That(mmu.Memslots.Current.ById(Memslot.ApicAccessPrivate), Is.Not.Null, "the memslot stays");
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa + 0xB0, PfErr.Write), Is.EqualTo(RetPf.Emulate));

        // Uninhibit: no zap, and the next fault maps the page again.
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, false);
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa), Is.EqualTo(RetPf.Fixed));
    }

    [Test]
    public void D_L2AccessToTheApicAccessGpaNeverReachesThePrivatePage()
    {
        using var mmu = NewVm();
        // In guest mode (L2) the private slot is treated as no slot: an MMIO SPTE, emulation.
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa, guestMode: true), Is.EqualTo(RetPf.Emulate));
        ulong spte = mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out _);
        Assert.That(IsMmio(spte), Is.True);
        Assert.That(IsShadowPresent(spte), Is.False);
        Assert.That(Pfn(spte) == ApicBacking >> 12, Is.False);
    }

    [Test]
    public void E_FaultOnAnInvalidSlotRetries()
    {
        using var mmu = NewVm();
        mmu.Memslots.Create(5, 0x4000000, 0x10000, 0x3000000);
        RetPf during = RetPf.Continue;
        var zap = mmu.Memslots.SlotInvalidated;
        mmu.Memslots.SlotInvalidated = s =>
        {
            zap!(s);
            // A vCPU faulting while the delete is in flight sees the INVALID slot.
            during = Fault(mmu, 0x4001000);
        };
        mmu.Memslots.Delete(5);
        Assert.That(during, Is.EqualTo(RetPf.Retry));
        Assert.That(mmu.Stats.Of(RetPf.Retry), Is.EqualTo(1));
        // After the delete the gfn has no memory: MMIO.
        Assert.That(Fault(mmu, 0x4001000), Is.EqualTo(RetPf.Emulate));
    }

    [Test]
    public void F_StaleMmioSpteAfterAMemslotUpdateRefaults()
    {
        using var mmu = NewVm();
        const ulong gpa = 0x8000000;
        Assert.That(Fault(mmu, gpa), Is.EqualTo(RetPf.Emulate));
        Assert.That(IsMmio(mmu.Tdp.Lookup(gpa >> 12, out _)), Is.True);
        // Same generation: the hardware reports RSVD on the MMIO SPTE and the handler emulates.
        Assert.That(Fault(mmu, gpa, PfErr.Present | PfErr.Rsvd), Is.EqualTo(RetPf.Emulate));

        // Now memory appears at that gfn: the MMIO SPTE's generation is stale and must refault as new.
        mmu.Memslots.Create(7, gpa, 0x200000, 0x2000000);
        Assert.That(Fault(mmu, gpa, PfErr.Present | PfErr.Rsvd), Is.EqualTo(RetPf.Fixed));
        Assert.That(mmu.Stats.StaleMmioRefaults, Is.EqualTo(1));
        ulong spte = mmu.Tdp.Lookup(gpa >> 12, out _);
        Assert.That(IsShadowPresent(spte), Is.True);
        Assert.That(Pfn(spte), Is.EqualTo(0x2000000UL >> 12));
    }

    [Test]
    public void MemslotToggleDeletesAndRecreatesThePrivateSlot()
    {
        using var mmu = NewVm(ApicvToggle.Memslot);
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa), Is.EqualTo(RetPf.Fixed));
        ulong gen = mmu.Memslots.Current.Generation;
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, true);
        Assert.That(mmu.Memslots.Current.ById(Memslot.ApicAccessPrivate), Is.Null);
        Assert.That(mmu.Memslots.Current.Generation, Is.GreaterThan(gen));
        // With the slot gone the page is plain MMIO: an MMIO SPTE is cached.
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa), Is.EqualTo(RetPf.Emulate));
        Assert.That(IsMmio(mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out _)), Is.True);
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, false);
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa, PfErr.Present | PfErr.Rsvd), Is.EqualTo(RetPf.Fixed));
    }

    [Test]
    public void RamIsMappedWithTheLargestLevelTheSlotAllows()
    {
        using var mmu = new MmuContext(HostSize, tableCapacity: 4096);
        mmu.Memslots.Create(0, 0, 8UL << 20, 0);
        mmu.Memslots.Create(1, 0x1000000, 0x3000, 0x1000000);
        var pf = PageFault.For(0x201000, 0);
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(2));
        pf = PageFault.For(0x1001000, PfErr.Write);
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(1));
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Spurious));
    }

    [Test]
    public void DirtyLoggingWriteProtectsAndHarvests()
    {
        using var mmu = new MmuContext(HostSize, tableCapacity: 4096);
        mmu.Memslots.Create(0, 0, 4UL << 20, 0);
        Assert.That(Fault(mmu, 0x3000, PfErr.Write), Is.EqualTo(RetPf.Fixed));
        mmu.Memslots.SetFlags(0, MemslotFlags.LogDirtyPages);
        // The huge mapping was write-protected; a write takes the slow path and maps 4 KiB.
        var pf = PageFault.For(0x5000, PfErr.Write | PfErr.Present);
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(1));
        ulong[] dirty = mmu.Memslots.HarvestDirty(0);
        Assert.That(dirty[0], Is.EqualTo(1UL << 5));
        // Harvest write-protected the page again: the next write is fixed by the fast path and logged.
        Assert.That(Fault(mmu, 0x5000, PfErr.Write | PfErr.Present), Is.EqualTo(RetPf.Fixed));
        Assert.That(mmu.Stats.FastPathFixes, Is.EqualTo(1));
        Assert.That(mmu.Memslots.HarvestDirty(0)[0], Is.EqualTo(1UL << 5));
    }
}
