using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Tests.Mmu;

/// <summary>The seed behaviour of the page-fault handler (issue 3, item 8).</summary>
public class FaultHandlerTests
{
    private const ulong HostSize = 64UL << 20;
    private const ulong ApicBacking = 60UL << 20;
    private const int ApicvReasonIrqWindow = (int)Emulator.Svm.Avic.ApicvInhibitReason.IrqWindow;

    private static MmuContext NewVm(ApicvToggle toggle = ApicvToggle.Zap)
    {
        var mmu = new MmuContext(HostSize, toggle, tableCapacity: 4096);
        mmu.Memslots.Create(0, new Gpa(0), 32UL << 20, new Hpa(0));
        mmu.CreateApicAccessSlot(new Hpa(ApicBacking));
        return mmu;
    }

    private static RetPf Fault(MmuContext mmu, ulong gpa, ulong err = 0, bool guestMode = false)
    {
        var pf = PageFault.For(new Gpa(gpa), err, guestMode);
        return mmu.Handle(ref pf);
    }

    [Test]
    public void A_L1FaultOnApicAccessSlotWithApicvActiveMapsThePrivatePage()
    {
        using var mmu = NewVm();
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value + 0x300), Is.EqualTo(RetPf.Fixed));
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
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value + 0x80, PfErr.Write), Is.EqualTo(RetPf.Emulate));
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value + 0x80), Is.EqualTo(RetPf.Emulate));
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
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value), Is.EqualTo(RetPf.Fixed));
        ulong leaves = mmu.Tdp.CountLeaves();
        ulong mmio = mmu.Tdp.CountMmio();
        ulong zappedBefore = mmu.Stats.SptesZapped;

        mmu.SetApicvInhibit(ApicvReasonIrqWindow, true);

        Assert.That(mmu.Stats.SptesZapped - zappedBefore, Is.EqualTo(1));
        Assert.That(mmu.Tdp.CountLeaves(), Is.EqualTo(leaves - 1));
        Assert.That(mmu.Tdp.CountMmio(), Is.EqualTo(mmio));
        Assert.That(mmu.Memslots.Current.ById(Memslot.ApicAccessPrivate), Is.Not.Null, "the memslot stays");
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value + 0xB0, PfErr.Write), Is.EqualTo(RetPf.Emulate));

        // Uninhibit: no zap, and the next fault maps the page again.
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, false);
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value), Is.EqualTo(RetPf.Fixed));
    }

    [Test]
    public void D_L2AccessToTheApicAccessGpaNeverReachesThePrivatePage()
    {
        using var mmu = NewVm();
        // In guest mode (L2) the private slot is treated as no slot: an MMIO SPTE, emulation.
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value, guestMode: true), Is.EqualTo(RetPf.Emulate));
        ulong spte = mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out _);
        Assert.That(IsMmio(spte), Is.True);
        Assert.That(IsShadowPresent(spte), Is.False);
        Assert.That(Pfn(spte) == ApicBacking >> 12, Is.False);
    }

    [Test]
    public void E_FaultOnAnInvalidSlotRetries()
    {
        using var mmu = NewVm();
        mmu.Memslots.Create(5, new Gpa(0x4000000), 0x10000, new Hpa(0x3000000));
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
        Assert.That(IsMmio(mmu.Tdp.Lookup(new Gfn(gpa >> 12), out _)), Is.True);
        // Same generation: the hardware reports RSVD on the MMIO SPTE and the handler emulates.
        Assert.That(Fault(mmu, gpa, PfErr.Present | PfErr.Rsvd), Is.EqualTo(RetPf.Emulate));

        // Now memory appears at that gfn: the MMIO SPTE's generation is stale and must refault as new.
        mmu.Memslots.Create(7, new Gpa(gpa), 0x200000, new Hpa(0x2000000));
        Assert.That(Fault(mmu, gpa, PfErr.Present | PfErr.Rsvd), Is.EqualTo(RetPf.Fixed));
        Assert.That(mmu.Stats.StaleMmioRefaults, Is.EqualTo(1));
        ulong spte = mmu.Tdp.Lookup(new Gfn(gpa >> 12), out _);
        Assert.That(IsShadowPresent(spte), Is.True);
        Assert.That(Pfn(spte), Is.EqualTo(0x2000000UL >> 12));
    }

    /// <summary>
    /// Three vCPU threads write random pages of a dirty-logged slot (the hardware walk, then a fault
    /// whenever the SPTE does not allow the write, until it does) while this thread harvests the dirty
    /// bitmap in a loop, as KVM_GET_DIRTY_LOG does (harvest + re-write-protect).
    /// A write that starts after harvest C0 completed and ends before harvest C1 + 1 started must be
    /// reported by one of the harvests C0 + 1 … C1 + 1; every reported page must come from such a write;
    /// and whenever the MMU lock is held exclusively, a writable SPTE has its dirty bit in the bitmap.
    /// </summary>
    [Test]
    public void G_DirtyLoggingWriteProtectsAndHarvestsCorrectlyUnderConcurrentFaults()
    {
        const int Writers = 3;
        const int WritesPerWriter = 20_000;
        const int WritesBetweenHarvests = 500;
        const int SlotPages = 1024; // 4 MiB: two 2 MiB pages, mapped huge before logging starts
        using var mmu = new MmuContext(HostSize, tableCapacity: 4096);
        mmu.Memslots.Create(0, new Gpa(0), (ulong)SlotPages << 12, new Hpa(0));
        for (ulong gpa = 0; gpa < (ulong)SlotPages << 12; gpa += 1UL << 21)
        {
            Assert.That(Fault(mmu, gpa, PfErr.Write), Is.EqualTo(RetPf.Fixed));
        }

        Assert.That(mmu.Tdp.Lookup(new Gfn(0), out int hugeLevel) & Writable, Is.Not.Zero);
        Assert.That(hugeLevel, Is.EqualTo(2));
        ulong[] bitmap = mmu.Memslots.SetFlags(0, MemslotFlags.LogDirtyPages).DirtyBitmap!;
        Assert.That(mmu.Tdp.Lookup(new Gfn(0), out _) & Writable, Is.Zero, "enabling dirty logging write-protects");

        int started = 0, completed = 0, writersLeft = Writers, writes = 0, waiting = 0;
        var records = new (int Gfn, int After, int Before)[Writers][];
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var threads = new Thread[Writers];
        for (int w = 0; w < Writers; w++)
        {
            int id = w;
            records[id] = new (int, int, int)[WritesPerWriter];
            threads[id] = new Thread(() =>
            {
                try
                {
                    var rng = new Random(id + 1);
                    for (int i = 0; i < WritesPerWriter; i++)
                    {
                        if (i % WritesBetweenHarvests == 0)
                        {
                            // Let a harvest through now and then, however the two cores are shared out.
                            int next = Volatile.Read(ref completed) + 1;
                            Interlocked.Increment(ref waiting);
                            var deadline = DateTime.UtcNow.AddSeconds(30);
                            while (Volatile.Read(ref completed) < next && DateTime.UtcNow < deadline)
                            {
                                Thread.Yield();
                            }

                            Interlocked.Decrement(ref waiting);
                        }

                        int gfn = rng.Next(SlotPages);
                        int after = Volatile.Read(ref completed);
                        for (int attempt = 0; ; attempt++)
                        {
                            ulong spte = mmu.Tdp.Lookup(new Gfn((ulong)gfn), out _);
                            if (IsShadowPresent(spte) && (spte & Writable) != 0)
                            {
                                break; // the write goes through
                            }

                            ulong err = PfErr.Write | PfErr.User | (IsShadowPresent(spte) ? PfErr.Present : 0);
                            var pf = PageFault.For(new Gpa((ulong)gfn << 12), err);
                            RetPf r = mmu.Handle(ref pf);
                            if (r is not (RetPf.Fixed or RetPf.Spurious or RetPf.Retry) || attempt > 10_000)
                            {
                                throw new InvalidOperationException($"gfn {gfn:X}: {r} after {attempt} attempts");
                            }
                        }

                        records[id][i] = (gfn, after, Volatile.Read(ref started));
                        Interlocked.Increment(ref writes);
                    }
                }
                catch (Exception e)
                {
                    failures.Enqueue(e);
                }
                finally
                {
                    Interlocked.Decrement(ref writersLeft);
                }
            })
            { IsBackground = true };
        }

        var harvests = new List<ulong[]>();
        int invariantChecks = 0, writableWithoutDirtyBit = 0;
        foreach (var t in threads)
        {
            t.Start();
        }

        var sw = System.Diagnostics.Stopwatch.StartNew();
        bool last = false;
        int writesAtLastHarvest = -1;
        while (!last)
        {
            last = Volatile.Read(ref writersLeft) == 0;
            int writesNow = Volatile.Read(ref writes);
            if (!last && writesNow == writesAtLastHarvest && Volatile.Read(ref waiting) == 0)
            {
                // Harvest only after some write or when a writer waits for one: back-to-back exclusive sections
                // would starve the writers.
                Thread.Yield();
                continue;
            }

            writesAtLastHarvest = writesNow;
            Interlocked.Increment(ref started);
            harvests.Add(mmu.Memslots.HarvestDirty(0));
            Interlocked.Increment(ref completed);
            using (mmu.Lock.Write())
            {
                invariantChecks++;
                for (int gfn = 0; gfn < SlotPages; gfn++)
                {
                    ulong spte = mmu.Tdp.Lookup(new Gfn((ulong)gfn), out _);
                    if ((spte & Writable) != 0 && (Volatile.Read(ref bitmap[gfn >> 6]) & (1UL << (gfn & 63))) == 0)
                    {
                        writableWithoutDirtyBit++;
                    }
                }
            }
        }

        foreach (var t in threads)
        {
            t.Join();
        }

        TestContext.Out.WriteLine($"{sw.ElapsedMilliseconds} ms, {harvests.Count} harvests, faults {mmu.Stats.Faults}");
        Assert.That(failures, Is.Empty);
        Assert.That(writableWithoutDirtyBit, Is.Zero, $"over {invariantChecks} checks");
        Assert.That(harvests, Has.Count.GreaterThanOrEqualTo(WritesPerWriter / WritesBetweenHarvests));

        static bool Reported(ulong[] harvest, int gfn) => (harvest[gfn >> 6] & (1UL << (gfn & 63))) != 0;
        var writesByGfn = new List<(int After, int Before)>[SlotPages];
        int lost = 0;
        foreach (var perWriter in records)
        {
            foreach (var (gfn, after, before) in perWriter)
            {
                (writesByGfn[gfn] ??= []).Add((after, before));
                bool found = false;
                for (int j = after + 1; j <= before + 1 && !found; j++)
                {
                    found = Reported(harvests[j - 1], gfn);
                }

                lost += found ? 0 : 1;
            }
        }

        int spurious = 0, reports = 0;
        for (int j = 1; j <= harvests.Count; j++)
        {
            for (int gfn = 0; gfn < SlotPages; gfn++)
            {
                if (Reported(harvests[j - 1], gfn))
                {
                    reports++;
                    spurious += writesByGfn[gfn]?.Exists(w => w.After < j && j <= w.Before + 1) == true ? 0 : 1;
                }
            }
        }

        Assert.That(lost, Is.Zero, "writes missing from the harvests that follow them");
        Assert.That(spurious, Is.Zero, $"pages reported without a write before the harvest (of {reports} reports)");
        Assert.That(mmu.Stats.FastPathFixes, Is.GreaterThan(0), "harvested pages were re-protected and fixed by the fast path");
        Assert.That(mmu.Tdp.Lookup(new Gfn(0), out int level), Is.Not.Zero);
        Assert.That(level, Is.EqualTo(1), "the huge mappings were split to 4 KiB");
    }

    [Test]
    public void MemslotToggleDeletesAndRecreatesThePrivateSlot()
    {
        using var mmu = NewVm(ApicvToggle.Memslot);
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value), Is.EqualTo(RetPf.Fixed));
        ulong gen = mmu.Memslots.Current.Generation;
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, true);
        Assert.That(mmu.Memslots.Current.ById(Memslot.ApicAccessPrivate), Is.Null);
        Assert.That(mmu.Memslots.Current.Generation, Is.GreaterThan(gen));
        // With the slot gone the page is plain MMIO: an MMIO SPTE is cached.
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value), Is.EqualTo(RetPf.Emulate));
        Assert.That(IsMmio(mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out _)), Is.True);
        mmu.SetApicvInhibit(ApicvReasonIrqWindow, false);
        Assert.That(Fault(mmu, MmuContext.ApicAccessGpa.Value, PfErr.Present | PfErr.Rsvd), Is.EqualTo(RetPf.Fixed));
    }

    [Test]
    public void RamIsMappedWithTheLargestLevelTheSlotAllows()
    {
        using var mmu = new MmuContext(HostSize, tableCapacity: 4096);
        mmu.Memslots.Create(0, new Gpa(0), 8UL << 20, new Hpa(0));
        mmu.Memslots.Create(1, new Gpa(0x1000000), 0x3000, new Hpa(0x1000000));
        var pf = PageFault.For(new Gpa(0x201000), 0);
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(2));
        pf = PageFault.For(new Gpa(0x1001000), PfErr.Write);
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Fixed));
        Assert.That(pf.Level, Is.EqualTo(1));
        Assert.That(mmu.Handle(ref pf), Is.EqualTo(RetPf.Spurious));
    }

    [Test]
    public void DirtyLoggingWriteProtectsAndHarvests()
    {
        using var mmu = new MmuContext(HostSize, tableCapacity: 4096);
        mmu.Memslots.Create(0, new Gpa(0), 4UL << 20, new Hpa(0));
        Assert.That(Fault(mmu, 0x3000, PfErr.Write), Is.EqualTo(RetPf.Fixed));
        mmu.Memslots.SetFlags(0, MemslotFlags.LogDirtyPages);
        // The huge mapping was write-protected; a write takes the slow path and maps 4 KiB.
        var pf = PageFault.For(new Gpa(0x5000), PfErr.Write | PfErr.Present);
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
