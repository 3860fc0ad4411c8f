using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using static Iced.Intel.AssemblerRegisters;

// Not "...Core.Cpu": that namespace would hide the Cpu class from the tests' shared helpers.
namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// Page walks for each paging format (AMD64 APM vol. 2 ch. 5), built in guest memory: translations,
/// accessed/dirty bits, reserved-bit checks, protection, and the #PF error code and CR2.
/// </summary>
public sealed class PagingTests
{
    private const ulong P = 1, RW = 2, US = 4, PWT = 8, A = 0x20, D = 0x40, PS = 0x80, NX = 1UL << 63;
    private const ulong Root = 0x10000;

    private PhysicalMemory _mem = null!;
    private Emulator.Core.Cpu.Cpu _c = null!;
    private ulong _nextTable;

    [SetUp]
    public void SetUp()
    {
        _mem = PhysicalMemory.Create(16 << 20);
        _c = new Emulator.Core.Cpu.Cpu(_mem);
        BootState.EnterLong64(_c, 0x1000, 0x8000);
        _nextTable = Root + 0x1000;
    }

    [TearDown]
    public void TearDown() => _mem.Dispose();

    private void LongMode(bool nxe = true)
    {
        _c.Efer = EferBits.LME | EferBits.LMA | (nxe ? EferBits.NXE : 0);
        _c.Cr4 = Cr4Bits.PAE;
        _c.Cr0 = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.PG | Cr0Bits.WP;
        _c.Cr3 = Root;
        _c.FlushTranslations();
    }

    private ulong Read(ulong gpa) => _mem.Read(gpa, 8);

    private void Write(ulong gpa, ulong v, int size = 8) => _mem.Write(gpa, size, v);

    /// <summary>Maps <paramref name="lin"/> with 4-level (or <paramref name="levels"/>-level) tables; the leaf is at <paramref name="leafLevel"/> (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB).</summary>
    private ulong[] MapLong(ulong lin, ulong pa, ulong leafFlags, ulong upperFlags = P | RW | US, int leafLevel = 1, int levels = 4)
    {
        var entries = new List<ulong>();
        ulong table = Root;
        for (int level = levels; level > leafLevel; level--)
        {
            ulong addr = table + (((lin >> (12 + (9 * (level - 1)))) & 0x1FF) * 8);
            ulong e = Read(addr);
            if ((e & P) == 0)
            {
                e = _nextTable | upperFlags;
                _nextTable += 0x1000;
                Write(addr, e);
            }

            entries.Add(addr);
            table = e & 0xFFFF_FFFF_F000;
        }

        ulong leaf = table + (((lin >> (12 + (9 * (leafLevel - 1)))) & 0x1FF) * 8);
        Write(leaf, pa | leafFlags | (leafLevel > 1 ? PS : 0));
        entries.Add(leaf);
        return [.. entries];
    }

    private bool Translate(ulong lin, int access, out ulong gpa)
    {
        _c.PendingVector = -1;
        return _c.Translate(lin, access, out gpa);
    }

    private void AssertPageFault(ulong lin, ulong error)
    {
        Assert.That(_c.PendingVector, Is.EqualTo(Vector.PF));
        Assert.That(_c.PendingError, Is.EqualTo(error), $"error code 0x{_c.PendingError:X}");
        Assert.That(_c.Cr2, Is.EqualTo(lin));
    }

    [TestCase(1, 0x0000_7F00_0040_3123UL, 0x50_0000UL, 0x50_0123UL)]
    [TestCase(2, 0x0000_7F00_0054_3123UL, 0x60_0000UL, 0x74_3123UL)]
    [TestCase(3, 0xFFFF_8000_4123_4567UL, 0x4000_0000UL, 0x4123_4567UL)]
    public void LongModeTranslatesEachPageSize(int leafLevel, ulong lin, ulong pa, ulong expected)
    {
        LongMode();
        MapLong(lin, pa, P | RW, leafLevel: leafLevel);
        Assert.That(Translate(lin, Access.Read, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(expected));
    }

    // ---- 5-level paging (CR4.LA57) ----

    /// <summary>An address whose bits 56:47 are not all equal: canonical only with 5-level paging.</summary>
    private const ulong Lin57 = 0x00AB_CDEF_1234_5678;

    [Test]
    public void FiveLevelWalkTranslatesA57BitAddress()
    {
        _c.Features[CpuFeature.La57] = true;
        LongMode();
        _c.Cr4 |= Cr4Bits.LA57;
        ulong[] entries = MapLong(Lin57, 0x70_0000, P | RW, levels: 5);
        Assert.That(entries, Has.Length.EqualTo(5));
        Assert.That(Translate(Lin57, Access.Read, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x70_0678UL));
        Assert.That(Read(entries[0]) & A, Is.EqualTo(A), "PML5E accessed");

        _c.PendingVector = -1;
        Assert.That(_c.WriteMem(SegReg.DS, Lin57, 8, 0x1122_3344_5566_7788), Is.True, "canonical with LA57");
        Assert.That(_mem.Read(0x70_0678, 8), Is.EqualTo(0x1122_3344_5566_7788UL));
        Assert.That(_c.ReadMem(SegReg.DS, Lin57, 8, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(0x1122_3344_5566_7788UL));
        Assert.That(_c.ReadMem(SegReg.DS, Lin57 ^ (1UL << 63), 8, out _), Is.False, "bits 63:56 must still agree");
        Assert.That(_c.PendingVector, Is.EqualTo(Vector.GP));
    }

    [Test]
    public void FourLevelPagingRejectsA57BitAddress()
    {
        LongMode();
        Assert.That(_c.ReadMem(SegReg.DS, Lin57, 8, out _), Is.False);
        Assert.That(_c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(_c.IsCanonicalNow(Lin57), Is.False);
        Assert.That(_c.IsCanonical(Lin57), Is.False, "LA57 not reported");
        _c.Features[CpuFeature.La57] = true;
        Assert.That(_c.IsCanonical(Lin57), Is.True, "loaded bases follow the reported width");
        Assert.That(_c.IsCanonicalNow(Lin57), Is.False, "accesses follow the paging mode");
    }

    [Test]
    public void La57ChangesOnlyOutsideLongModeAndOnlyWhenReported()
    {
        LongMode();
        Assert.That(_c.WriteCr4(_c.Cr4 | Cr4Bits.LA57), Is.False, "not reported");
        _c.Features[CpuFeature.La57] = true;
        Assert.That(_c.WriteCr4(_c.Cr4 | Cr4Bits.LA57), Is.False, "long mode active");
        _c.Efer = 0;
        _c.Cr0 = Cr0Bits.PE | Cr0Bits.ET;
        Assert.That(_c.WriteCr4(Cr4Bits.PAE | Cr4Bits.LA57), Is.True);
        Assert.That(_c.Cr4 & Cr4Bits.LA57, Is.EqualTo(Cr4Bits.LA57));
    }

    [Test]
    public void ReadSetsAccessedOnEveryLevelWriteSetsDirtyOnTheLeaf()
    {
        LongMode();
        ulong lin = 0x0000_0040_0020_1000;
        ulong[] e = MapLong(lin, 0x50_0000, P | RW);
        Assert.That(Translate(lin, Access.Read, out _), Is.True);
        foreach (ulong addr in e)
        {
            Assert.That(Read(addr) & (A | D), Is.EqualTo(A), $"entry at 0x{addr:X}");
        }

        Assert.That(Translate(lin, Access.Write, out _), Is.True);
        Assert.That(Read(e[^1]) & (A | D), Is.EqualTo(A | D));
        Assert.That(Read(e[^2]) & D, Is.EqualTo(0), "non-leaf entries have no dirty bit");
    }

    [Test]
    public void LargePageWriteSetsDirtyOnThePde()
    {
        LongMode();
        ulong lin = 0x0000_0040_0060_0000;
        ulong[] e = MapLong(lin, 0x60_0000, P | RW, leafLevel: 2);
        Assert.That(Translate(lin + 0x1234, Access.Write, out _), Is.True);
        Assert.That(Read(e[^1]) & (A | D | PS), Is.EqualTo(A | D | PS));
    }

    [Test]
    public void FaultLeavesAccessedBitsUntouched()
    {
        LongMode();
        ulong lin = 0x0000_0040_0020_1000;
        ulong[] e = MapLong(lin, 0x50_0000, P); // read-only
        Assert.That(Translate(lin, Access.Write, out _), Is.False);
        AssertPageFault(lin, PfErr.Present | PfErr.Write);
        foreach (ulong addr in e)
        {
            Assert.That(Read(addr) & A, Is.EqualTo(0));
        }
    }

    [TestCase(4)]
    [TestCase(3)]
    [TestCase(2)]
    [TestCase(1)]
    public void NotPresentAtAnyLevel(int level)
    {
        LongMode();
        ulong lin = 0x0000_1234_5678_9000;
        ulong[] e = MapLong(lin, 0x50_0000, P | RW);
        Write(e[4 - level], Read(e[4 - level]) & ~P);
        Assert.That(Translate(lin + 0xAB, Access.Read, out _), Is.False);
        AssertPageFault(lin + 0xAB, 0);
    }

    [TestCase(1, 1UL << 51, TestName = "PteBit51AboveMaxPhys")]
    [TestCase(1, 1UL << 48, TestName = "PteBit48AboveMaxPhys")]
    [TestCase(4, PS, TestName = "Pml4ePs")]
    [TestCase(4, 1UL << 8, TestName = "Pml4eBit8")]
    [TestCase(2, PS | (1UL << 13), TestName = "TwoMegPageBit13")]
    [TestCase(3, PS | (1UL << 29), TestName = "OneGigPageBit29")]
    public void ReservedBitsFaultWithRsvd(int level, ulong bits)
    {
        LongMode();
        ulong lin = 0x0000_0040_4020_1000;
        ulong[] e = MapLong(lin, 0x50_0000, P | RW);
        Write(e[4 - level], Read(e[4 - level]) | bits);
        Assert.That(Translate(lin, Access.Write, out _), Is.False);
        AssertPageFault(lin, PfErr.Present | PfErr.Write | PfErr.Rsvd);
    }

    [Test]
    public void AvailableHighBitsAreIgnoredInLongMode()
    {
        LongMode();
        ulong lin = 0x0000_0040_4020_1000;
        MapLong(lin, 0x50_0000, P | RW | (0x7FFUL << 52));
        Assert.That(Translate(lin, Access.Read, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x50_0000));
    }

    [Test]
    public void NxBitIsReservedWithoutNxe()
    {
        LongMode(nxe: false);
        ulong lin = 0x0000_0040_4020_1000;
        MapLong(lin, 0x50_0000, P | RW | NX);
        Assert.That(Translate(lin, Access.Read, out _), Is.False);
        AssertPageFault(lin, PfErr.Present | PfErr.Rsvd);
    }

    [Test]
    public void OneGigPagesNeedPdpe1Gb()
    {
        LongMode();
        _c.Features[CpuFeature.Page1Gb] = false;
        ulong lin = 0x0000_0080_0000_0000;
        MapLong(lin, 0x4000_0000, P | RW, leafLevel: 3);
        Assert.That(Translate(lin, Access.Read, out _), Is.False);
        AssertPageFault(lin, PfErr.Present | PfErr.Rsvd);
    }

    // Protection: (user, access, leaf flags, upper flags, WP, expected error or -1 for success).
    [TestCase(true, Access.Read, P | RW, P | RW | US, true, (int)(PfErr.Present | PfErr.User), TestName = "UserReadSupervisorLeaf")]
    [TestCase(true, Access.Read, P | RW | US, P | RW, true, (int)(PfErr.Present | PfErr.User), TestName = "UserReadSupervisorUpperLevel")]
    [TestCase(true, Access.Write, P | US, P | RW | US, false, (int)(PfErr.Present | PfErr.Write | PfErr.User), TestName = "UserWriteReadOnlyIgnoresWp")]
    [TestCase(true, Access.Write, P | RW | US, P | US, true, (int)(PfErr.Present | PfErr.Write | PfErr.User), TestName = "UserWriteReadOnlyUpperLevel")]
    [TestCase(true, Access.Write, P | RW | US, P | RW | US, true, -1, TestName = "UserWriteUserPage")]
    [TestCase(false, Access.Write, P, P | RW, true, (int)(PfErr.Present | PfErr.Write), TestName = "SupervisorWriteReadOnlyWithWp")]
    [TestCase(false, Access.Write, P, P | RW, false, -1, TestName = "SupervisorWriteReadOnlyWithoutWp")]
    [TestCase(false, Access.Fetch, P | NX, P | RW, true, (int)(PfErr.Present | PfErr.Fetch), TestName = "SupervisorFetchNx")]
    [TestCase(false, Access.Fetch, P, P | RW | NX, true, (int)(PfErr.Present | PfErr.Fetch), TestName = "SupervisorFetchNxUpperLevel")]
    [TestCase(true, Access.Fetch, P | US | NX, P | RW | US, true, (int)(PfErr.Present | PfErr.User | PfErr.Fetch), TestName = "UserFetchNx")]
    [TestCase(false, Access.Read, P | NX, P | RW, true, -1, TestName = "ReadOfNxPage")]
    public void Protection(bool user, int access, ulong leaf, ulong upper, bool wp, int expected)
    {
        LongMode();
        if (!wp)
        {
            _c.Cr0 &= ~Cr0Bits.WP;
        }

        _c.SetCpl(user ? 3 : 0);
        ulong lin = 0x0000_0040_4020_1008;
        MapLong(lin, 0x50_0000, leaf, upper);
        bool ok = Translate(lin, access, out ulong gpa);
        if (expected < 0)
        {
            Assert.That(ok, Is.True);
            Assert.That(gpa, Is.EqualTo(0x50_0008));
        }
        else
        {
            Assert.That(ok, Is.False);
            AssertPageFault(lin, (uint)expected);
        }
    }

    [TestCase(true, (int)(PfErr.Present | PfErr.Fetch))]
    [TestCase(false, (int)(PfErr.Present | PfErr.Fetch))]
    public void SmepForbidsSupervisorFetchFromUserPage(bool nxe, int error)
    {
        LongMode(nxe);
        _c.Cr4 |= Cr4Bits.SMEP;
        ulong lin = 0x0000_0040_4020_1000;
        MapLong(lin, 0x50_0000, P | RW | US);
        Assert.That(Translate(lin, Access.Fetch, out _), Is.False);
        AssertPageFault(lin, (uint)error);
        Assert.That(Translate(lin, Access.Read, out _), Is.True, "SMEP does not restrict data accesses");
    }

    [Test]
    public void FetchFaultHasNoInstructionBitWithoutNxeOrSmep()
    {
        LongMode(nxe: false);
        ulong lin = 0x0000_0040_4020_1000;
        Assert.That(Translate(lin, Access.Fetch, out _), Is.False);
        AssertPageFault(lin, 0);
    }

    [Test]
    public void SmapHonoursAcForExplicitAccessesOnly()
    {
        LongMode();
        _c.Cr4 |= Cr4Bits.SMAP;
        ulong lin = 0x0000_0040_4020_1000;
        MapLong(lin, 0x50_0000, P | RW | US);
        Write(0x50_0000, 0x1122_3344_5566_7788);

        Assert.That(Translate(lin, Access.Read, out _), Is.False);
        AssertPageFault(lin, PfErr.Present);

        _c.MaterializeFlags();
        _c.FlagsBits |= Rflags.AC;
        _c.PendingVector = -1;
        Assert.That(_c.ReadMem(SegReg.DS, lin, 8, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(0x1122_3344_5566_7788));
        Assert.That(_c.ReadLinearSystem(lin, 8, out _), Is.False, "implicit supervisor accesses ignore AC");
        AssertPageFault(lin, PfErr.Present);

        // CLAC: the next access must fault again, so the AC-permitted translation was not cached.
        _c.FlagsBits &= ~Rflags.AC;
        _c.PendingVector = -1;
        Assert.That(_c.ReadMem(SegReg.DS, lin, 8, out _), Is.False);
        AssertPageFault(lin, PfErr.Present);
    }

    [Test]
    public void InvlpgDropsTheCachedTranslation()
    {
        LongMode();
        ulong lin = 0x0000_0040_4020_1000;
        ulong[] e = MapLong(lin, 0x50_0000, P | RW);
        Write(0x50_0000, 1);
        Write(0x51_0000, 2);
        Assert.That(_c.ReadMem(SegReg.DS, lin, 8, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(1));
        Write(e[^1], 0x51_0000 | P | RW);
        Assert.That(_c.ReadMem(SegReg.DS, lin, 8, out v), Is.True);
        Assert.That(v, Is.EqualTo(1), "the software TLB still holds the old translation");
        _c.Gpr[Reg.RAX] = lin;
        Assert.That(VectorCatcher.Step(_c, a => a.invlpg(__[rax])), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(_c.ReadMem(SegReg.DS, lin, 8, out v), Is.True);
        Assert.That(v, Is.EqualTo(2));
    }

    [Test]
    public void InvlpgOfALargePageDropsEveryPieceOfIt()
    {
        LongMode();
        ulong lin = 0x0000_0040_4020_0000;
        ulong[] e = MapLong(lin, 0x60_0000, P | RW, leafLevel: 2);
        Write(0x60_5000, 1);
        Write(0x80_5000, 2);
        Assert.That(_c.ReadMem(SegReg.DS, lin + 0x5000, 8, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(1));
        Write(e[^1], 0x80_0000 | P | RW | PS);
        _c.Gpr[Reg.RAX] = lin;
        VectorCatcher.Step(_c, a => a.invlpg(__[rax]));
        Assert.That(_c.ReadMem(SegReg.DS, lin + 0x5000, 8, out v), Is.True);
        Assert.That(v, Is.EqualTo(2));
    }

    // ---- Legacy 32-bit paging ----

    private void Legacy(bool pse)
    {
        BootState.EnterProtected32(_c, 0x1000);
        _c.Cr4 = pse ? Cr4Bits.PSE : 0;
        _c.Cr0 |= Cr0Bits.PG | Cr0Bits.WP;
        _c.Cr3 = Root;
        _c.FlushTranslations();
    }

    [Test]
    public void Legacy4KTranslationAndAccessedDirty()
    {
        Legacy(pse: false);
        uint lin = 0xC012_3456;
        Write(Root + ((lin >> 22) * 4), 0x20000 | P | RW | US, 4);
        Write(0x20000 + (((lin >> 12) & 0x3FF) * 4), 0x0077_7000 | P | RW, 4);
        Assert.That(Translate(lin, Access.Write, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x77_7456));
        Assert.That(_mem.Read(Root + ((lin >> 22) * 4), 4) & (A | D), Is.EqualTo(A));
        Assert.That(_mem.Read(0x20000 + (((lin >> 12) & 0x3FF) * 4), 4) & (A | D), Is.EqualTo(A | D));
    }

    [Test]
    public void LegacyFourMegPageWithPse40HighBits()
    {
        Legacy(pse: true);
        uint lin = 0x8012_3456;
        // PA bits 39:32 come from PDE bits 20:13: 0x01 → 4 GiB + 0x00C0_0000.
        Write(Root + ((lin >> 22) * 4), 0x00C0_0000 | (1UL << 13) | P | RW | PS, 4);
        Assert.That(Translate(lin, Access.Read, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x1_00C0_0000UL | 0x12_3456));
    }

    [Test]
    public void LegacyFourMegPageBit21IsReserved()
    {
        Legacy(pse: true);
        uint lin = 0x8012_3456;
        Write(Root + ((lin >> 22) * 4), 0x00C0_0000 | (1UL << 21) | P | RW | PS, 4);
        Assert.That(Translate(lin, Access.Read, out _), Is.False);
        AssertPageFault(lin, PfErr.Present | PfErr.Rsvd);
    }

    [Test]
    public void LegacyPsIgnoredWithoutCr4Pse()
    {
        Legacy(pse: false);
        uint lin = 0x8012_3456;
        Write(Root + ((lin >> 22) * 4), 0x20000 | P | RW | PS, 4);
        Write(0x20000 + (((lin >> 12) & 0x3FF) * 4), 0x0077_7000 | P, 4);
        Assert.That(Translate(lin, Access.Read, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x77_7456));
    }

    [Test]
    public void LegacyUserWriteToReadOnlyPage()
    {
        Legacy(pse: false);
        _c.SetCpl(3);
        uint lin = 0x0040_1000;
        Write(Root + ((lin >> 22) * 4), 0x20000 | P | RW | US, 4);
        Write(0x20000 + (((lin >> 12) & 0x3FF) * 4), 0x0077_7000 | P | US, 4);
        Assert.That(Translate(lin, Access.Write, out _), Is.False);
        AssertPageFault(lin, PfErr.Present | PfErr.Write | PfErr.User);
    }

    // ---- PAE ----

    private void Pae(bool nxe)
    {
        BootState.EnterProtected32(_c, 0x1000);
        _c.Cr4 = Cr4Bits.PAE;
        _c.Efer = nxe ? EferBits.NXE : 0;
        _c.Cr0 |= Cr0Bits.PG | Cr0Bits.WP;
        _c.Cr3 = Root;
        _c.FlushTranslations();
    }

    /// <summary>PAE map of <paramref name="lin"/>: PDPTE at Root, PD at 0x20000, PT at 0x21000.</summary>
    private (ulong Pdpte, ulong Pde, ulong Pte) MapPae(uint lin, ulong pa, ulong leafFlags, bool large = false)
    {
        ulong pdpte = Root + ((lin >> 30) * 8);
        ulong pde = 0x20000 + (((lin >> 21) & 0x1FF) * 8);
        ulong pte = 0x21000 + (((lin >> 12) & 0x1FF) * 8);
        Write(pdpte, 0x20000 | P);
        if (large)
        {
            Write(pde, pa | leafFlags | PS);
        }
        else
        {
            Write(pde, 0x21000 | P | RW | US);
            Write(pte, pa | leafFlags);
        }

        return (pdpte, pde, pte);
    }

    [Test]
    public void PaeTranslatesFourKAndTwoMeg()
    {
        Pae(nxe: true);
        MapPae(0xC000_3123, 0x1_2345_6000, P | RW);
        Assert.That(Translate(0xC000_3123, Access.Read, out ulong gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x1_2345_6123UL));
        MapPae(0x4060_0000, 0x80_0000, P | RW, large: true);
        Assert.That(Translate(0x4074_5678, Access.Read, out gpa), Is.True);
        Assert.That(gpa, Is.EqualTo(0x94_5678UL));
    }

    [TestCase(1UL << 1, TestName = "PdpteRw")]
    [TestCase(1UL << 2, TestName = "PdpteUs")]
    [TestCase(1UL << 5, TestName = "PdpteBit5")]
    [TestCase(1UL << 8, TestName = "PdpteBit8")]
    [TestCase(NX, TestName = "PdpteNx")]
    [TestCase(1UL << 50, TestName = "PdpteAboveMaxPhys")]
    public void PaePdpteReservedBits(ulong bit)
    {
        Pae(nxe: true);
        (ulong pdpte, _, _) = MapPae(0xC000_3000, 0x50_0000, P | RW);
        Write(pdpte, Read(pdpte) | bit);
        Assert.That(Translate(0xC000_3000, Access.Read, out _), Is.False);
        AssertPageFault(0xC000_3000, PfErr.Present | PfErr.Rsvd);
    }

    [TestCase(1UL << 52, true, TestName = "PaePteBit52")]
    [TestCase(1UL << 62, true, TestName = "PaePteBit62")]
    [TestCase(NX, false, TestName = "PaePteNxWithoutNxe")]
    public void PaeLeafReservedBits(ulong bit, bool nxe)
    {
        Pae(nxe);
        MapPae(0xC000_3000, 0x50_0000, P | RW | bit);
        Assert.That(Translate(0xC000_3000, Access.Read, out _), Is.False);
        AssertPageFault(0xC000_3000, PfErr.Present | PfErr.Rsvd);
    }

    [Test]
    public void PaeNxForbidsFetch()
    {
        Pae(nxe: true);
        MapPae(0xC000_3000, 0x50_0000, P | RW | NX);
        Assert.That(Translate(0xC000_3000, Access.Read, out _), Is.True);
        Assert.That(Translate(0xC000_3000, Access.Fetch, out _), Is.False);
        AssertPageFault(0xC000_3000, PfErr.Present | PfErr.Fetch);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void AnAccessAcrossPagesMappedApartReadsAndWritesBothPagesEveryTime(bool write)
    {
        // Linear 0x400000 (PD entry 2 of BootState's first PD at 0x72000) is remapped to physical 0x800000, so the two
        // pages an access at 0x3FFFFC spans are not next to each other in guest (or host) memory. With the first
        // page's TLB entry filled, the access (twice) must not take that entry for the whole access: a TLB hit is only
        // for an access that stays in the page.
        using var g = TestGuest.Long64(a =>
        {
            // An access inside the first page fills its TLB entry first.
            if (write)
            {
                a.mov(__qword_ptr[rbx - 0x10], rcx);
                a.mov(__qword_ptr[rbx], rcx);
                a.mov(__qword_ptr[rbx], rdx);
            }
            else
            {
                a.mov(r9, __qword_ptr[rbx - 0x10]);
                a.mov(rax, __qword_ptr[rbx]);
                a.mov(r8, __qword_ptr[rbx]);
            }

            a.hlt();
        });
        g.Mem.Write(0x72000 + (2 * 8), 8, 0x80_0000 | 0x83);
        g.Mem.Write(0x3F_FFFC, 4, 0x4433_2211);
        g.Mem.Write(0x80_0000, 4, 0x8877_6655);
        g.Mem.Write(0x40_0000, 4, 0xDEAD_BEEF);
        g.Cpu.Gpr[Reg.RBX] = 0x3F_FFFC;
        g.Cpu.Gpr[Reg.RCX] = 0x1111_1111_2222_2222;
        g.Cpu.Gpr[Reg.RDX] = 0x0102_0304_0506_0708;
        g.Run();
        if (write)
        {
            Assert.That(g.ReadPhys(0x3F_FFFC, 4), Is.EqualTo(0x0506_0708));
            Assert.That(g.ReadPhys(0x80_0000, 4), Is.EqualTo(0x0102_0304));
            Assert.That(g.ReadPhys(0x40_0000, 4), Is.EqualTo(0xDEAD_BEEF), "the physical page after the first is not the second");
        }
        else
        {
            Assert.That(g.Cpu.Gpr[Reg.RAX], Is.EqualTo(0x8877_6655_4433_2211));
            Assert.That(g.Cpu.Gpr[Reg.R8], Is.EqualTo(0x8877_6655_4433_2211));
        }
    }

    // ---- Delivery through the IDT ----

    [Test]
    public void PageFaultIsDeliveredWithErrorCodeAndCr2()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.smsw(__word_ptr[rbx]);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        // Remove the 2 MiB identity mapping of 0x400000 (PD entry 2 of BootState's first PD at 0x72000).
        g.Mem.Write(0x72000 + (2 * 8), 8, 0);
        g.Cpu.Gpr[Reg.RBX] = 0x40_0ABC;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.PF));
        Assert.That(g.Cpu.Cr2, Is.EqualTo(0x40_0ABC));
        Assert.That(g.ReadPhys(g.Cpu.Gpr[Reg.RSP], 8), Is.EqualTo(PfErr.Write));
        Assert.That(g.ReadPhys(g.Cpu.Gpr[Reg.RSP] + 8, 8), Is.EqualTo(TestGuest.CodeBase), "RIP of the faulting instruction");
    }

    [Test]
    public void PageFaultIsDeliveredThroughA32BitGate()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.smsw(__word_ptr[ebx]);
            a.hlt();
        });
        VectorCatcher.Install32(g);
        // 4 MiB identity pages for 0–16 MiB except 4–8 MiB, which is not present.
        const ulong dir = 0x10000;
        for (ulong i = 0; i < 4; i++)
        {
            g.Mem.Write(dir + (i * 4), 4, i == 1 ? 0 : (i << 22) | P | RW | PS);
        }

        g.Cpu.Cr4 = Cr4Bits.PSE;
        g.Cpu.Cr3 = dir;
        g.Cpu.Cr0 |= Cr0Bits.PG;
        g.Cpu.FlushTranslations();
        g.Cpu.Gpr[Reg.RBX] = 0x40_0ABC;
        g.Run(100);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.PF));
        Assert.That(g.Cpu.Cr2, Is.EqualTo(0x40_0ABC));
        ulong esp = g.Cpu.Gpr[Reg.RSP];
        Assert.That(g.ReadPhys(esp, 4), Is.EqualTo(PfErr.Write));
        Assert.That(g.ReadPhys(esp + 4, 4), Is.EqualTo(TestGuest.CodeBase), "EIP of the faulting instruction");
    }
}
