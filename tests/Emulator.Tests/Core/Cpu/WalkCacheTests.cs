using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;

namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// The walk cache behind the software TLB (docs/cpu.md, "The walk cache") is the host's shortcut, not part of the
/// model: every scenario here runs twice, with the cache and without it, and everything the model sees (cycles, page
/// walks, TLB misses, values read, page-table contents) must be the same. The scenarios change the tables behind a
/// kept walk without INVLPG, which the modeled TLB may not notice but a walk must.
/// </summary>
public sealed class WalkCacheTests
{
    private const ulong P = 1, RW = 2, A = 0x20, D = 0x40;
    private const ulong Root = 0x10000, Pdpt = 0x11000, Pd = 0x12000, Pt0 = 0x13000;

    /// <summary>Pages mapped from <see cref="Lin"/>: eight times what the modeled TLB holds, in four page tables.</summary>
    private const int Pages = 2048;
    private const ulong Lin = 0x4000_0000, Data = 0x40_0000, Spare = 0xC0_0000;

    private sealed record Outcome(ulong Cycles, ulong Walks, ulong Misses, ulong Hits, ulong[] Values, ulong[] Tables);

    private static Outcome Run(bool cache, Action<Emulator.Core.Cpu.Cpu, PhysicalMemory, List<ulong>> script)
    {
        using var mem = PhysicalMemory.Create(16 << 20);
        var c = new Emulator.Core.Cpu.Cpu(mem) { WalkCacheEnabled = cache };
        BootState.EnterLong64(c, 0x1000, 0x8000);
        mem.Write(Root, 8, Pdpt | P | RW);
        mem.Write(Pdpt + (((Lin >> 30) & 0x1FF) * 8), 8, Pd | P | RW);
        for (int t = 0; t < Pages / 512; t++)
        {
            mem.Write(Pd + (((Lin >> 21) & 0x1FF) + (ulong)t) * 8, 8, (Pt0 + ((ulong)t * 0x1000)) | P | RW);
        }

        for (int i = 0; i < Pages; i++)
        {
            mem.Write(Pte(i), 8, (Data + ((ulong)i * 0x1000)) | P | RW);
            mem.Write(Data + ((ulong)i * 0x1000), 8, (ulong)i);
        }

        c.Cr3 = Root;
        c.FlushTranslations();
        ulong cycles = c.Cycles;
        var values = new List<ulong>();
        script(c, mem, values);
        var tables = new ulong[Pages + 8];
        for (int i = 0; i < Pages; i++)
        {
            tables[i] = mem.Read(Pte(i), 8);
        }

        for (int t = 0; t < 8; t++)
        {
            tables[Pages + t] = mem.Read(Pd + ((((Lin >> 21) & 0x1FF) + (ulong)t) * 8), 8);
        }

        return new Outcome(c.Cycles - cycles, c.PageWalks, c.TlbMisses, c.WalkCacheHits, [.. values], tables);
    }

    private static ulong Pte(int page) => Pt0 + ((ulong)page * 8);

    private static ulong Page(int i) => Lin + ((ulong)i * 0x1000);

    private static void ReadAll(Emulator.Core.Cpu.Cpu c, List<ulong> values)
    {
        for (int i = 0; i < Pages; i++)
        {
            Assert.That(c.ReadMem(SegReg.DS, Page(i), 8, out ulong v), Is.True, $"read of page {i}");
            values.Add(v);
        }
    }

    /// <summary>Runs the script with and without the cache, checks that the model saw the same, returns the cached run.</summary>
    private static Outcome Both(Action<Emulator.Core.Cpu.Cpu, PhysicalMemory, List<ulong>> script)
    {
        var with = Run(cache: true, script);
        var without = Run(cache: false, script);
        Assert.That(without.Hits, Is.Zero, "the cache is off");
        Assert.Multiple(() =>
        {
            Assert.That(with.Cycles, Is.EqualTo(without.Cycles), "modeled cycles");
            Assert.That(with.Walks, Is.EqualTo(without.Walks), "page walks");
            Assert.That(with.Misses, Is.EqualTo(without.Misses), "TLB misses");
            Assert.That(with.Values, Is.EqualTo(without.Values), "values read");
            Assert.That(with.Tables, Is.EqualTo(without.Tables), "page tables");
        });
        return with;
    }

    [Test]
    public void ASecondPassOverMorePagesThanTheTlbHoldsIsAnsweredByTheCacheWithTheSameCharges()
    {
        var o = Both((c, _, values) =>
        {
            ReadAll(c, values);
            ReadAll(c, values);
        });

        // The read bank gets its table at its AllocateAfter-th walk, which it keeps with the ones after it.
        Assert.That(o.Hits, Is.EqualTo((ulong)(Pages - WalkCache.AllocateAfter + 1)));
        Assert.That(o.Walks, Is.EqualTo(2UL * Pages));
    }

    [Test]
    public void ALeafChangedWithoutInvlpgIsSeenByTheNextMiss()
    {
        const int page = 1500;
        var o = Both((c, mem, values) =>
        {
            ReadAll(c, values);
            mem.Write(Spare, 8, 0xABCD);
            mem.Write(Pte(page), 8, Spare | P | RW);
            ReadAll(c, values);
        });

        Assert.That(o.Values[Pages + page], Is.EqualTo(0xABCDUL), "the walk's new page, not the kept one");
        Assert.That(o.Hits, Is.EqualTo((ulong)(Pages - WalkCache.AllocateAfter)), "every kept page but the changed one");
    }

    [Test]
    public void AnUpperEntryChangedWithoutInvlpgIsSeenByTheNextMiss()
    {
        // Page table 3 (pages 1536..2047) swaps with page table 2: the PDE now points at table 2's frame.
        var o = Both((c, mem, values) =>
        {
            ReadAll(c, values);
            ulong pde3 = Pd + ((((Lin >> 21) & 0x1FF) + 3) * 8);
            mem.Write(pde3, 8, (Pt0 + 0x2000) | P | RW | A);
            ReadAll(c, values);
        });

        Assert.That(o.Values[Pages + 1536], Is.EqualTo(1024UL), "page 1536 now maps table 2's first page");
        Assert.That(o.Hits, Is.EqualTo((ulong)(1536 - WalkCache.AllocateAfter + 1)), "only the region whose path is unchanged");
    }

    [Test]
    public void AnAccessedBitClearedWithoutInvlpgIsSetAgainByTheNextWalk()
    {
        const int page = 2000;
        var o = Both((c, mem, values) =>
        {
            ReadAll(c, values);
            mem.Write(Pte(page), 8, mem.Read(Pte(page), 8) & ~A);
            ReadAll(c, values);
        });

        Assert.That(o.Tables[page] & A, Is.EqualTo(A));
    }

    [Test]
    public void ADirtyBitClearedWithoutInvlpgIsSetAgainByTheNextWrite()
    {
        const int page = 1800;
        var o = Both((c, mem, values) =>
        {
            for (int pass = 0; pass < 2; pass++)
            {
                for (int i = 0; i < Pages; i++)
                {
                    Assert.That(c.WriteMem(SegReg.DS, Page(i), 8, (ulong)(pass * 10_000) + (ulong)i), Is.True);
                }

                if (pass == 0)
                {
                    mem.Write(Pte(page), 8, mem.Read(Pte(page), 8) & ~D);
                }
            }

            ReadAll(c, values);
        });

        Assert.That(o.Tables[page] & (A | D), Is.EqualTo(A | D));
        Assert.That(o.Values[page], Is.EqualTo(10_000UL + page));
        Assert.That(o.Hits, Is.GreaterThan(0UL), "the second pass of writes was answered by the cache");
    }

    [Test]
    public void AReadWalkDoesNotAnswerAWrite()
    {
        // Kept read walks left the leaves clean: the writes after them must walk and set D.
        var o = Both((c, _, values) =>
        {
            ReadAll(c, values);
            for (int i = 0; i < Pages; i++)
            {
                Assert.That(c.WriteMem(SegReg.DS, Page(i), 8, 7), Is.True);
            }
        });

        Assert.That(o.Tables[..Pages], Has.All.Matches<ulong>(e => (e & D) != 0));
        Assert.That(o.Hits, Is.Zero);
    }

    [Test]
    public void AFlushDropsTheKeptWalks()
    {
        var o = Both((c, _, values) =>
        {
            ReadAll(c, values);
            c.FlushTranslations();
            ReadAll(c, values);
            c.Cr3 = Root; // the same root, loaded again: still the same context
            c.InvalidateTranslation(Page(1700));
            ReadAll(c, values);
        });

        // After the flush nothing is kept, and the second pass keeps every page (the table exists by then); after
        // INVLPG of one page, the third pass finds all but that one.
        Assert.That(o.Hits, Is.EqualTo((ulong)(Pages - 1)));
    }

    [Test]
    public void ARingCrossingKeepsTheKeptWalksOfEachPrivilege()
    {
        // Supervisor pages (U/S clear): the user pass faults on every page; the supervisor passes around it find the
        // supervisor walks still kept, though the crossings flushed the modeled TLB.
        var o = Both((c, mem, values) =>
        {
            ReadAll(c, values);
            c.SetCpl(3);
            for (int i = 0; i < Pages; i += 64)
            {
                c.PendingVector = -1;
                values.Add(c.ReadMem(SegReg.DS, Page(i), 8, out _) ? 1UL : 0UL);
                values.Add((ulong)c.PendingVector);
            }

            c.SetCpl(0);
            c.PendingVector = -1;
            ReadAll(c, values);
        });

        Assert.That(o.Values[Pages], Is.Zero, "a user read of a supervisor page fails");
        Assert.That(o.Values[Pages + 1], Is.EqualTo((ulong)Vector.PF));
        Assert.That(o.Hits, Is.EqualTo((ulong)(Pages - WalkCache.AllocateAfter + 1)));
    }
}
