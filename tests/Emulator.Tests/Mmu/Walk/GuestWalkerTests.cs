using Emulator.Mmu.Fault;
using Emulator.Mmu.Walk;

namespace Emulator.Tests.Mmu.Walk;

/// <summary>
/// The one page-table walker on tables held in a dictionary: the A/D rule, the reader's abort, the rules
/// of <see cref="WalkRules"/> and the formats' reserved bits (AMD64 APM vol. 2 ch. 5).
/// </summary>
public class GuestWalkerTests
{
    private const ulong P = 1, RW = 2, US = 4, A = 0x20, D = 0x40, PS = 0x80, NX = 1UL << 63;
    private const ulong Root = 0x10000;
    private const ulong Lin = 0x0000_0040_4020_1008;
    private const WalkRules Npt = WalkRules.Page1Gb | WalkRules.Pse36 | WalkRules.ReportFetch | WalkRules.Nxe;

    private TableMemory _mem = null!;

    [SetUp]
    public void SetUp() => _mem = new TableMemory();

    /// <summary>Guest memory as 8-byte words (4-byte entries are the low or high half of a word).</summary>
    private sealed class TableMemory
    {
        public readonly Dictionary<ulong, ulong> Words = [];
        public bool FailReads, FailSets;
        public int Sets;

        public ulong Read(ulong addr, int bytes)
        {
            ulong w = Words.GetValueOrDefault(addr & ~7UL);
            return bytes == 8 ? w : (uint)(w >> (int)((addr & 4) * 8));
        }

        public void Write(ulong addr, int bytes, ulong v)
        {
            if (bytes == 8)
            {
                Words[addr] = v;
                return;
            }

            int shift = (int)((addr & 4) * 8);
            ulong w = Words.GetValueOrDefault(addr & ~7UL);
            Words[addr & ~7UL] = (w & ~(0xFFFF_FFFFUL << shift)) | ((ulong)(uint)v << shift);
        }
    }

    private readonly struct Reader(TableMemory mem) : ITableReader
    {
        public bool TryRead(ulong address, int bytes, out ulong value)
        {
            value = mem.FailReads ? 0 : mem.Read(address, bytes);
            return !mem.FailReads;
        }

        public bool TrySetBits(ulong address, int bytes, ulong expected, ulong bits)
        {
            if (mem.FailSets)
            {
                return false;
            }

            if (mem.Read(address, bytes) == expected)
            {
                mem.Sets++;
                mem.Write(address, bytes, expected | bits);
            }

            return true;
        }
    }

    /// <summary>4-level (or 5-level) tables for <see cref="Lin"/>: leaf flags, the same flags above. Returns entry addresses, root first.</summary>
    private ulong[] MapLong(ulong leaf, ulong upper = P | RW | US, int levels = 4, ulong lin = Lin)
    {
        var entries = new ulong[levels];
        ulong table = Root;
        for (int level = levels; level >= 1; level--)
        {
            ulong addr = table + (((lin >> (12 + (9 * (level - 1)))) & 511) * 8);
            ulong next = Root + ((ulong)(levels - level + 1) * 0x1000);
            _mem.Write(addr, 8, level == 1 ? 0x50_0000 | leaf : next | upper);
            entries[levels - level] = addr;
            table = next;
        }

        return entries;
    }

    private bool Walk<TFormat>(ulong address, ulong access, WalkRules rules, out WalkResult r)
        where TFormat : struct, IPagingFormat
    {
        var reader = new Reader(_mem);
        r = default;
        return GuestWalker<TFormat, Reader>.Walk(ref reader, Root, address, access, rules, ref r);
    }

    [Test]
    public void SuccessSetsAccessedOnEveryLevelAndDirtyOnTheWrittenLeaf()
    {
        ulong[] e = MapLong(P | RW | US);
        Assert.That(Walk<LongMode4>(Lin, PfErr.User, Npt, out var r), Is.True);
        Assert.That(r.Address, Is.EqualTo(0x50_0008UL));
        Assert.That(e.Select(a => _mem.Read(a, 8) & (A | D)), Is.All.EqualTo(A));
        Assert.That(r.Dirty, Is.False);

        Assert.That(Walk<LongMode4>(Lin, PfErr.User | PfErr.Write, Npt, out r), Is.True);
        Assert.That(_mem.Read(e[^1], 8) & (A | D), Is.EqualTo(A | D));
        Assert.That(_mem.Read(e[0], 8) & D, Is.EqualTo(0UL), "non-leaf entries get no dirty bit");
        Assert.That(r.Dirty, Is.True);
    }

    // APM vol. 2 §5.4.2: the rule shared by the CPU and the NPT walk (shadow MMU) is that a faulting walk
    // leaves every entry as it was; the NPT walk used to set A in the upper levels before faulting.
    [TestCase(PfErr.User | PfErr.Write, P | US, TestName = "WriteToReadOnlyLeaf")]
    [TestCase(PfErr.User, P | RW, TestName = "UserAccessToSupervisorLeaf")]
    [TestCase(PfErr.User | PfErr.Fetch, P | US | NX, TestName = "FetchFromNxLeaf")]
    [TestCase(PfErr.User, P | US | (1UL << 50), TestName = "ReservedBitInLeaf")]
    public void FaultingWalkLeavesTheTablesUntouched(ulong access, ulong leaf)
    {
        ulong[] e = MapLong(leaf);
        var before = new Dictionary<ulong, ulong>(_mem.Words);
        Assert.That(Walk<LongMode4>(Lin, access, Npt, out var r), Is.False);
        Assert.That(r.Aborted, Is.False);
        Assert.That(r.FaultLevel, Is.EqualTo(1));
        Assert.That(_mem.Words, Is.EquivalentTo(before));
        Assert.That(_mem.Sets, Is.Zero);
    }

    [Test]
    public void LeafIsUpdatedFirstSoASelfMappedEntryGetsDirty()
    {
        // Legacy 32-bit tables where the PDE for the address points at the PD itself: the PTE the walk then
        // reads is that same PDE. A write must leave it with A and D.
        ulong lin = (5UL << 22) | (5UL << 12);
        ulong pde = Root + (5 * 4);
        _mem.Write(pde, 4, Root | P | RW | US);
        Assert.That(Walk<Legacy32>(lin, PfErr.Write, WalkRules.WriteProtect, out var r), Is.True);
        Assert.That(r.Address, Is.EqualTo(Root));
        Assert.That(_mem.Read(pde, 4) & (A | D), Is.EqualTo(A | D));
    }

    [Test]
    public void ReaderFailureAbortsTheWalkWithoutAnError()
    {
        MapLong(P | RW | US);
        _mem.FailReads = true;
        Assert.That(Walk<LongMode4>(Lin, PfErr.Write, WalkRules.None, out var r), Is.False);
        Assert.That(r.Aborted, Is.True);
        Assert.That(r.ErrorCode & (PfErr.Present | PfErr.Rsvd), Is.Zero);

        _mem.FailReads = false;
        _mem.FailSets = true;
        Assert.That(Walk<LongMode4>(Lin, PfErr.Write, WalkRules.None, out r), Is.False);
        Assert.That(r.Aborted, Is.True);

        _mem.FailSets = false;
        Assert.That(Walk<LongMode4>(Lin, PfErr.Write, WalkRules.None, out r), Is.True);
        Assert.That(r.Aborted, Is.False);
    }

    [Test]
    public void SmapAllowsExplicitAccessWithAcAndSaysSo()
    {
        MapLong(P | RW | US);
        Assert.That(Walk<LongMode4>(Lin, 0, WalkRules.Smap, out _), Is.False);
        Assert.That(Walk<LongMode4>(Lin, 0, WalkRules.Smap | WalkRules.Ac, out var r), Is.True);
        Assert.That(r.AcOverride, Is.True);
        Assert.That(Walk<LongMode4>(Lin, 0, WalkRules.Smap | WalkRules.Ac | WalkRules.Implicit, out r), Is.False);
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present));
        Assert.That(Walk<LongMode4>(Lin, PfErr.Fetch, WalkRules.Smap, out r), Is.True, "SMAP leaves fetches alone");
        Assert.That(r.AcOverride, Is.False);
    }

    [Test]
    public void FetchErrorCodeHasIdOnlyWhenReported()
    {
        MapLong(P | RW | US | NX);
        Assert.That(Walk<LongMode4>(Lin, PfErr.Fetch, WalkRules.Nxe, out var r), Is.False);
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present));
        Assert.That(Walk<LongMode4>(Lin, PfErr.Fetch, WalkRules.Nxe | WalkRules.ReportFetch, out r), Is.False);
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present | PfErr.Fetch));
    }

    [Test]
    public void Pml4eBit8IsReservedForBothUsers()
    {
        ulong[] e = MapLong(P | RW | US);
        _mem.Write(e[0], 8, _mem.Read(e[0], 8) | (1UL << 8));
        Assert.That(Walk<LongMode4>(Lin, PfErr.User, Npt, out var r), Is.False);
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present | PfErr.User | PfErr.Rsvd));
        Assert.That(r.FaultLevel, Is.EqualTo(4));
    }

    [Test]
    public void OneGigPagesNeedTheirRule()
    {
        ulong pdpte = Root + (((Lin >> 39) & 511) * 8);
        _mem.Write(pdpte, 8, (Root + 0x1000) | P | RW | US);
        _mem.Write(Root + 0x1000 + (((Lin >> 30) & 511) * 8), 8, 0x4000_0000 | P | RW | US | PS);
        Assert.That(Walk<LongMode4>(Lin, 0, WalkRules.Page1Gb, out var r), Is.True);
        Assert.That(r.Level, Is.EqualTo(3));
        Assert.That(r.Address, Is.EqualTo(0x4000_0000 | (Lin & 0x3FFF_FFFF)));
        Assert.That(Walk<LongMode4>(Lin, 0, WalkRules.None, out r), Is.False);
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present | PfErr.Rsvd));
    }

    [TestCase(WalkRules.Pse36, 1UL << 13, true, TestName = "Pse36HighBitsArePhysicalAddress")]
    [TestCase(WalkRules.None, 1UL << 13, false, TestName = "WithoutPse36Bits20To13AreReserved")]
    [TestCase(WalkRules.Pse36, 1UL << 21, false, TestName = "Bit21IsReservedWithPse36")]
    public void FourMegPages(WalkRules rules, ulong bit, bool ok)
    {
        _mem.Write(Root + (3 * 4), 4, 0x40_0000 | bit | P | RW | PS);
        Assert.That(Walk<Legacy32Pse>((3UL << 22) | 0x1234, 0, rules, out var r), Is.EqualTo(ok));
        if (ok)
        {
            Assert.That(r.Address, Is.EqualTo(0x1_0040_1234UL));
        }
    }

    [Test]
    public void FiveLevelWalkUsesThePml5()
    {
        ulong lin = 0x00AB_0040_4020_1008;
        ulong[] e = MapLong(P | RW | US, levels: 5, lin: lin);
        Assert.That(Walk<LongMode5>(lin, 0, WalkRules.None, out var r), Is.True);
        Assert.That(r.Address, Is.EqualTo(0x50_0008UL));
        Assert.That(_mem.Read(e[0], 8) & A, Is.EqualTo(A));
        _mem.Write(e[0], 8, _mem.Read(e[0], 8) | PS);
        Assert.That(Walk<LongMode5>(lin, 0, WalkRules.None, out r), Is.False);
        Assert.That(r.FaultLevel, Is.EqualTo(5));
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present | PfErr.Rsvd));
    }

    [Test]
    public void PaePdpteHasNoPermissionsOrAccessedBit()
    {
        ulong pdpte = Root + (1 * 8);
        _mem.Write(pdpte, 8, 0x20000 | P);
        _mem.Write(0x20000 + (2 * 8), 8, 0x30000 | P | RW | US);
        _mem.Write(0x30000 + (3 * 8), 8, 0x50_0000 | P | RW | US);
        ulong lin = (1UL << 30) | (2UL << 21) | (3UL << 12) | 0x10;
        Assert.That(Walk<Pae>(lin, PfErr.User | PfErr.Write, WalkRules.None, out var r), Is.True);
        Assert.That(r.Address, Is.EqualTo(0x50_0010UL));
        Assert.That(_mem.Read(pdpte, 8), Is.EqualTo(0x20000 | P), "no A bit in a PDPTE");
        _mem.Write(pdpte, 8, 0x20000 | P | RW);
        Assert.That(Walk<Pae>(lin, 0, WalkRules.None, out r), Is.False);
        Assert.That(r.ErrorCode, Is.EqualTo(PfErr.Present | PfErr.Rsvd));
    }
}
