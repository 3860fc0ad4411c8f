using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// The local APIC's register page (the AVIC backing-page layout): registers at their xAPIC offsets, IRR/ISR/TMR
/// bits, PPR following TPR and ISR, bits posted into the page then rescanned, and trapped writes committed with
/// exactly the MMIO path's result.
/// </summary>
public sealed unsafe class RegisterPageTests
{
    private ApicRig _r = null!;

    [SetUp]
    public void SetUp() => _r = new ApicRig(2);

    [TearDown]
    public void TearDown() => _r.Dispose();

    private static uint Page(LocalApic apic, int offset) => *(uint*)(apic.RegisterPage + offset);

    private static void Poke(LocalApic apic, int offset, uint value) => *(uint*)(apic.RegisterPage + offset) = value;

    private static bool PageBit(LocalApic apic, int bank, int vector) =>
        (Page(apic, bank + 0x10 * (vector / 32)) & (1u << (vector % 32))) != 0;

    /// <summary>Every register offset below 0x400 except the current count holds what an MMIO read returns.</summary>
    private static void AssertPageMatchesMmioReads(LocalApic apic)
    {
        for (int offset = 0; offset < 0x400; offset += 0x10)
        {
            if (offset != ApicReg.TimerCurrent)
            {
                Assert.That(Page(apic, offset), Is.EqualTo((uint)apic.ReadMmio((ulong)offset, 4)), $"offset 0x{offset:X3}");
            }
        }
    }

    [Test]
    public void PageIsOneAlignedNativePageFreedOnDispose()
    {
        var rig = new ApicRig(1);
        var apic = rig[0];
        Assert.That((nuint)apic.RegisterPage, Is.Not.EqualTo((nuint)0));
        Assert.That((nuint)apic.RegisterPage % 4096, Is.EqualTo((nuint)0));
        rig.Dispose();
        Assert.That((nuint)apic.RegisterPage, Is.EqualTo((nuint)0));
    }

    [Test]
    public void ResetValuesAreInThePage()
    {
        Assert.That(Page(_r[1], ApicReg.Id), Is.EqualTo(1u << 24));
        Assert.That(Page(_r[0], ApicReg.Version), Is.EqualTo(LocalApic.VersionValue));
        Assert.That(Page(_r[0], ApicReg.Dfr), Is.EqualTo(0xFFFF_FFFFu));
        Assert.That(Page(_r[0], ApicReg.Svr), Is.EqualTo(0xFFu));
        Assert.That(Page(_r[0], ApicReg.LvtLint0), Is.EqualTo(0x700u));
        Assert.That(Page(_r[1], ApicReg.LvtLint0), Is.EqualTo(0x1_0000u));
        AssertPageMatchesMmioReads(_r[0]);
        AssertPageMatchesMmioReads(_r[1]);
    }

    [Test]
    public void MmioWritesLandAtTheirOffsets()
    {
        var a = _r[0];
        _r.Enable(0);
        _r.Write(0, ApicReg.Tpr, 0x35);
        _r.Write(0, ApicReg.Ldr, 0x0400_0000);
        _r.Write(0, ApicReg.Dfr, 0x0FFF_FFFF);
        _r.Write(0, ApicReg.LvtTimer, 0x2_0031);
        _r.Write(0, ApicReg.LvtThermal, 0x32);
        _r.Write(0, ApicReg.LvtPerf, 0x433);
        _r.Write(0, ApicReg.LvtLint0, 0x1_0034);
        _r.Write(0, ApicReg.LvtLint1, 0x400);
        _r.Write(0, ApicReg.LvtError, 0x36);
        _r.Write(0, ApicReg.TimerDivide, 0xB);
        _r.Write(0, ApicReg.TimerInitial, 5000);
        _r.SendIcr(0, 0x4041, destination: 1);

        Assert.That(Page(a, ApicReg.Tpr), Is.EqualTo(0x35u));
        Assert.That(Page(a, ApicReg.Ldr), Is.EqualTo(0x0400_0000u));
        Assert.That(Page(a, ApicReg.Dfr), Is.EqualTo(0x0FFF_FFFFu));
        Assert.That(Page(a, ApicReg.Svr), Is.EqualTo(0x1FFu));
        Assert.That(Page(a, ApicReg.LvtTimer), Is.EqualTo(0x2_0031u));
        Assert.That(Page(a, ApicReg.LvtThermal), Is.EqualTo(0x32u));
        Assert.That(Page(a, ApicReg.LvtPerf), Is.EqualTo(0x433u));
        Assert.That(Page(a, ApicReg.LvtLint0), Is.EqualTo(0x1_0034u));
        Assert.That(Page(a, ApicReg.LvtLint1), Is.EqualTo(0x400u));
        Assert.That(Page(a, ApicReg.LvtError), Is.EqualTo(0x36u));
        Assert.That(Page(a, ApicReg.TimerDivide), Is.EqualTo(0xBu));
        Assert.That(Page(a, ApicReg.TimerInitial), Is.EqualTo(5000u));
        Assert.That(Page(a, ApicReg.IcrLow), Is.EqualTo(0x4041u));
        Assert.That(Page(a, ApicReg.IcrHigh), Is.EqualTo(1u << 24));
        Assert.That(Page(a, ApicReg.TimerCurrent), Is.EqualTo(0u), "the current count is computed on read");
        AssertPageMatchesMmioReads(a);
        AssertPageMatchesMmioReads(_r[1]);
    }

    [Test]
    public void IdWriteAndX2ApicModeUseTheirForms()
    {
        _r.Write(1, ApicReg.Id, 0x0700_0000);
        Assert.That(Page(_r[1], ApicReg.Id), Is.EqualTo(0x0700_0000u));
        Assert.That(_r[1].ApicId, Is.EqualTo(7u));

        Assert.That(_r.EnterX2Apic(0), Is.True);
        Assert.That(_r.EnterX2Apic(1), Is.True);
        Assert.That(Page(_r[1], ApicReg.Id), Is.EqualTo(1u), "x2APIC: the full 32-bit ID, as KVM stores it");
        Assert.That(Page(_r[1], ApicReg.Ldr), Is.EqualTo(0x0000_0002u), "cluster 0, bit 1");
        for (uint msr = 0x802; msr <= 0x83E; msr++)
        {
            if (msr != 0x830 && msr != 0x839 && _r.Cpus[1].ReadMsr(msr, out ulong v))
            {
                Assert.That(Page(_r[1], (int)(msr - 0x800) << 4), Is.EqualTo((uint)v), $"MSR 0x{msr:X}");
            }
        }

        // INIT keeps the x2APIC ID and its logical ID.
        _r.Cpus[1].Init();
        Assert.That(Page(_r[1], ApicReg.Id), Is.EqualTo(1u));
        Assert.That(Page(_r[1], ApicReg.Ldr), Is.EqualTo(0x0000_0002u));
    }

    [Test]
    public void VectorBitsSitAtTheirOffsets()
    {
        var a = _r[1];
        _r.Enable(1);
        a.Accept(new ApicMessage(0x65, ApicDeliveryMode.Fixed, false, 1, LevelTriggered: true));
        a.Accept(new ApicMessage(0x21, ApicDeliveryMode.Fixed, false, 1));
        Assert.That(Page(a, ApicReg.Irr + 0x30), Is.EqualTo(1u << 5), "0x65: IRR word 3, bit 5");
        Assert.That(Page(a, ApicReg.Irr + 0x10), Is.EqualTo(1u << 1), "0x21: IRR word 1, bit 1");
        Assert.That(Page(a, ApicReg.Tmr + 0x30), Is.EqualTo(1u << 5), "level-triggered: TMR");
        Assert.That(Page(a, ApicReg.Tmr + 0x10), Is.EqualTo(0u), "edge-triggered");

        Assert.That(a.Acknowledge(), Is.EqualTo(0x65));
        Assert.That(PageBit(a, ApicReg.Irr, 0x65), Is.False);
        Assert.That(Page(a, ApicReg.Isr + 0x30), Is.EqualTo(1u << 5));
        Assert.That(PageBit(a, ApicReg.Irr, 0x21), Is.True);
        AssertPageMatchesMmioReads(a);
    }

    [Test]
    public void PprAndAprFollowTprIsrAndIrr()
    {
        var a = _r[1];
        _r.Enable(1);
        _r.Write(1, ApicReg.Tpr, 0x20);
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x20u));

        a.Accept(new ApicMessage(0x65, ApicDeliveryMode.Fixed, false, 1));
        Assert.That(Page(a, ApicReg.Apr), Is.EqualTo(0x60u), "APR: the requested class above TPR");
        Assert.That(a.Acknowledge(), Is.EqualTo(0x65));
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x60u), "PPR: the in-service class above TPR");

        Assert.That(_r.Cpus[1].WriteCr8(7), Is.True);
        Assert.That(Page(a, ApicReg.Tpr), Is.EqualTo(0x70u), "MOV CR8 writes the page's TPR");
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x70u));

        _r.Write(1, ApicReg.Tpr, 0);
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x60u));
        Assert.That(_r.Cpus[1].Cr8, Is.EqualTo(0UL));
        _r.Write(1, ApicReg.Eoi, 0);
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0u), "EOI retires the in-service vector");
        AssertPageMatchesMmioReads(a);
    }

    [Test]
    public void TprWrittenInThePageIsTheCpusTpr()
    {
        Poke(_r[1], ApicReg.Tpr, 0x90);
        Assert.That(_r.Cpus[1].Cr8, Is.EqualTo(9UL));
    }

    [Test]
    public void IrrBitPostedInThePageIsDeliverableAfterRescan()
    {
        var a = _r[1];
        _r.Enable(1);
        var cpu = _r.Cpus[1];
        cpu.Requests = 0;
        Poke(a, ApicReg.Irr + 0x20, 1u << 0x15); // vector 0x55
        Assert.That(a.HasPendingInterrupt, Is.False, "not seen until rescanned");

        a.RescanIrr();
        Assert.That(cpu.Requests & VcpuRequest.Interrupt, Is.Not.Zero, "the vCPU is asked to evaluate interrupts");
        Assert.That(a.HighestRequested, Is.EqualTo(0x55));
        Assert.That(a.HasPendingInterrupt, Is.True);
        Assert.That(Page(a, ApicReg.Apr), Is.EqualTo(0x50u));
        Assert.That(a.Acknowledge(), Is.EqualTo(0x55));
        Assert.That(PageBit(a, ApicReg.Isr, 0x55), Is.True);
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x50u));
    }

    [Test]
    public void IsrAndTprChangedInThePageAreRescanned()
    {
        var a = _r[1];
        _r.Enable(1);
        a.Accept(new ApicMessage(0x45, ApicDeliveryMode.Fixed, false, 1));
        Assert.That(a.HasPendingInterrupt, Is.True);

        // Delivered by someone else: the vector moves from IRR to ISR in the page.
        Poke(a, ApicReg.Irr + 0x20, 0);
        Poke(a, ApicReg.Isr + 0x20, 1u << 5);
        a.RescanIrr();
        Assert.That(a.HasPendingInterrupt, Is.False);
        Assert.That(a.HighestInService, Is.EqualTo(0x45));
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x40u));

        Poke(a, ApicReg.Isr + 0x20, 0);
        Poke(a, ApicReg.Tpr, 0x30);
        a.RescanIrr();
        Assert.That(a.HighestInService, Is.EqualTo(-1));
        Assert.That(Page(a, ApicReg.Ppr), Is.EqualTo(0x30u));
    }

    /// <summary>
    /// A state with something in every register a trapped write can touch: both APICs enabled, APIC 0 with a
    /// level-triggered LINT0 awaiting its EOI (remote IRR set), a level-triggered vector in service, a periodic timer
    /// running, ICR high naming APIC 1, and an error latched.
    /// </summary>
    private static void Prepare(ApicRig r)
    {
        r.Enable(0);
        r.Enable(1);
        r.Write(0, ApicReg.LvtLint0, 0x8051); // fixed, level-triggered, vector 0x51
        r[0].SetLint(0, true);
        r[0].Accept(new ApicMessage(0x62, ApicDeliveryMode.Fixed, false, 0, LevelTriggered: true));
        r[0].Acknowledge(); // 0x62 in service, TMR set
        r.Write(0, ApicReg.LvtTimer, 0x2_0040);
        r.Write(0, ApicReg.TimerInitial, 10_000);
        r.Write(0, ApicReg.IcrHigh, 1u << 24);
        r.Write(1, ApicReg.Ldr, 0x0200_0000);
        r.SendIcr(0, 0x03, destination: 1); // illegal vector: ESR send-illegal-vector latched
        r.Advance(1234);
    }

    private static void AssertSameState(ApicRig mmio, ApicRig trap)
    {
        for (int i = 0; i < mmio.Cpus.Count; i++)
        {
            var m = mmio[i];
            var t = trap[i];
            Assert.That(
                new ReadOnlySpan<byte>(t.RegisterPage, 4096).SequenceEqual(new ReadOnlySpan<byte>(m.RegisterPage, 4096)),
                Is.True,
                $"APIC {i}: register pages differ");
            Assert.That(t.HighestRequested, Is.EqualTo(m.HighestRequested));
            Assert.That(t.HighestInService, Is.EqualTo(m.HighestInService));
            Assert.That(t.TimerDeadline, Is.EqualTo(m.TimerDeadline), $"APIC {i}: timer");
            Assert.That(t.TimerDivide, Is.EqualTo(m.TimerDivide));
            Assert.That(t.IpisSent, Is.EqualTo(m.IpisSent));
            Assert.That(t.Eois, Is.EqualTo(m.Eois));
            Assert.That(t.InterruptsAccepted, Is.EqualTo(m.InterruptsAccepted));
            Assert.That(t.ApicId, Is.EqualTo(m.ApicId));
            Assert.That(t.ReadMmio(ApicReg.TimerCurrent, 4), Is.EqualTo(m.ReadMmio(ApicReg.TimerCurrent, 4)));
            for (uint dest = 1; dest < 0x100; dest <<= 1)
            {
                Assert.That(t.MatchesLogical(dest), Is.EqualTo(m.MatchesLogical(dest)), $"APIC {i}: logical 0x{dest:X2}");
            }
        }

        Assert.That(trap.EoiBroadcasts, Is.EqualTo(mmio.EoiBroadcasts));
        Assert.That(trap.Platform.ApicBus.Messages, Is.EqualTo(mmio.Platform.ApicBus.Messages));
    }

    private static void WriteBothWays(int offset, uint value, Action<ApicRig>? then = null)
    {
        using var mmio = new ApicRig(2);
        using var trap = new ApicRig(2);
        Prepare(mmio);
        Prepare(trap);

        mmio.Write(0, offset, value);
        Poke(trap[0], offset, value);
        trap[0].CommitTrappedWrite(offset);
        AssertSameState(mmio, trap);

        if (then != null)
        {
            then(mmio);
            then(trap);
            AssertSameState(mmio, trap);
        }
    }

    [TestCase(ApicReg.Id, 0x0900_00FFu)]
    [TestCase(ApicReg.Tpr, 0x7Fu)]
    [TestCase(ApicReg.Eoi, 0u)]
    [TestCase(ApicReg.Rrd, 0x1234u)]
    [TestCase(ApicReg.Ldr, 0x0800_1234u)]
    [TestCase(ApicReg.Dfr, 0x0000_0000u)]
    [TestCase(ApicReg.Svr, 0x1FFu)]
    [TestCase(ApicReg.Svr, 0xF0FFu)]
    [TestCase(ApicReg.Esr, 0u)]
    [TestCase(ApicReg.IcrLow, 0x4050u)]
    [TestCase(ApicReg.IcrLow, 0x8_4050u)]
    [TestCase(ApicReg.IcrLow, 0x05u)]
    [TestCase(ApicReg.IcrHigh, 0x0300_00FFu)]
    [TestCase(ApicReg.LvtTimer, 0xFFFF_FFFFu)]
    [TestCase(ApicReg.LvtTimer, 0x4_0040u)]
    [TestCase(ApicReg.LvtThermal, 0x0000_0444u)]
    [TestCase(ApicReg.LvtPerf, 0x0000_0455u)]
    [TestCase(ApicReg.LvtLint0, 0x0000_8051u)]
    [TestCase(ApicReg.LvtLint0, 0x0001_0000u)]
    [TestCase(ApicReg.LvtLint1, 0x0000_0400u)]
    [TestCase(ApicReg.LvtError, 0x0000_0066u)]
    [TestCase(ApicReg.TimerInitial, 300u)]
    [TestCase(ApicReg.TimerInitial, 0u)]
    [TestCase(ApicReg.TimerDivide, 0xBu)]
    [TestCase(ApicReg.TimerDivide, 0xFFFF_FFF8u)]
    [TestCase(ApicReg.Version, 0u)]
    [TestCase(ApicReg.Ppr, 0xFFu)]
    public void TrappedWriteEndsAsTheMmioWrite(int offset, uint value) =>
        WriteBothWays(offset, value, r => r.Advance(50_000));

    [Test]
    public void TrappedIcrWriteSendsTheIpi()
    {
        WriteBothWays(ApicReg.IcrLow, 0x4077, r => Assert.That(r.Irr(1, 0x77), Is.True));
    }

    [Test]
    public void TrappedLdrWriteChangesLogicalMatching()
    {
        WriteBothWays(ApicReg.Ldr, 0x1000_0000, r => Assert.That(r[0].MatchesLogical(0x10), Is.True));
    }

    [Test]
    public void TrappedSvrWriteSoftwareDisables()
    {
        WriteBothWays(ApicReg.Svr, 0xFF, r =>
        {
            Assert.That(r[0].SoftwareEnabled, Is.False);
            Assert.That(r.Read(0, ApicReg.LvtLint0) & 0x1_0000, Is.Not.Zero, "every LVT masked");
        });
    }

    [Test]
    public void TrappedTimerInitialCountStartsTheTimer()
    {
        WriteBothWays(ApicReg.TimerInitial, 777, r =>
        {
            Assert.That(r[0].TimerDeadline, Is.Not.EqualTo(ulong.MaxValue));
            r.Advance(777 * 2);
            Assert.That(r.Irr(0, 0x40), Is.True, "the periodic timer fired");
        });
    }

    [Test]
    public void TrappedLevelEoiIsBroadcast()
    {
        WriteBothWays(ApicReg.Eoi, 0, r => Assert.That(r.EoiBroadcasts, Is.EqualTo(new byte[] { 0x62 })));
    }

    [Test]
    public void TrappedInitialCountInTscDeadlineModeIsIgnored()
    {
        using var rig = new ApicRig(1);
        rig.Enable(0);
        rig.Write(0, ApicReg.LvtTimer, 0x4_0040);
        Poke(rig[0], ApicReg.TimerInitial, 1000);
        rig[0].CommitTrappedWrite(ApicReg.TimerInitial);
        Assert.That(Page(rig[0], ApicReg.TimerInitial), Is.EqualTo(0u));
        Assert.That(rig[0].TimerDeadline, Is.EqualTo(ulong.MaxValue));
    }

    [Test]
    public void TrappedWritesInX2ApicModeFollowWrmsr()
    {
        using var rig = new ApicRig(2);
        Assert.That(rig.EnterX2Apic(0), Is.True);
        Assert.That(rig.EnterX2Apic(1), Is.True);
        Assert.That(rig.Cpus[0].WriteMsr(0x80F, 0x1FF), Is.True);
        Assert.That(rig.Cpus[1].WriteMsr(0x80F, 0x1FF), Is.True);

        // The 64-bit ICR: low at 0x300, the 32-bit destination at 0x310.
        Poke(rig[0], ApicReg.IcrHigh, 1);
        Poke(rig[0], ApicReg.IcrLow, 0x4066);
        rig[0].CommitTrappedWrite(ApicReg.IcrLow);
        Assert.That(rig[1].HighestRequested, Is.EqualTo(0x66));
        Assert.That(rig.Cpus[0].ReadMsr(0x830, out ulong icr), Is.True);
        Assert.That(icr, Is.EqualTo(0x1_0000_4066UL));

        // A value WRMSR would refuse (#GP: reserved SVR bits) leaves the register as it was.
        Poke(rig[0], ApicReg.Svr, 0x10FF);
        rig[0].CommitTrappedWrite(ApicReg.Svr);
        Assert.That(Page(rig[0], ApicReg.Svr), Is.EqualTo(0x1FFu));

        // LDR is read-only in x2APIC mode.
        Poke(rig[0], ApicReg.Ldr, 0x5555);
        rig[0].CommitTrappedWrite(ApicReg.Ldr);
        Assert.That(Page(rig[0], ApicReg.Ldr), Is.EqualTo(0x1u));
    }

    [Test]
    public void TrappedWriteToADisabledApicIsDropped()
    {
        using var rig = new ApicRig(1);
        Assert.That(rig.Cpus[0].WriteMsr(Msr.ApicBase, rig.Cpus[0].ApicBase & ~Emulator.Core.Cpu.Cpu.ApicBaseEnable), Is.True);
        Poke(rig[0], ApicReg.Svr, 0x1FF);
        rig[0].CommitTrappedWrite(ApicReg.Svr);
        Assert.That(Page(rig[0], ApicReg.Svr), Is.EqualTo(0xFFu));
    }

    [TestCase(0x24)]
    [TestCase(0x400)]
    [TestCase(-16)]
    public void TrappedWriteOutsideTheRegistersIsIgnored(int offset)
    {
        _r[1].CommitTrappedWrite(offset);
        AssertPageMatchesMmioReads(_r[1]);
    }
}
