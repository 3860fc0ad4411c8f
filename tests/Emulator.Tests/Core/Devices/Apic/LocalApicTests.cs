using Emulator.Core.Devices.Apic;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>xAPIC register semantics through the MMIO page, interrupt acceptance, priority and EOI.</summary>
public sealed class LocalApicTests
{
    private ApicRig _r = null!;

    [SetUp]
    public void SetUp() => _r = new ApicRig(4);

    [TearDown]
    public void TearDown() => _r.Dispose();

    [Test]
    public void ResetValues()
    {
        Assert.That(_r.Read(0, ApicReg.Id), Is.EqualTo(0u));
        Assert.That(_r.Read(2, ApicReg.Id), Is.EqualTo(2u << 24));
        Assert.That(_r.Read(0, ApicReg.Version), Is.EqualTo(0x0005_0014u), "version 0x14, max LVT entry 5, no directed EOI");
        Assert.That(_r.Read(0, ApicReg.Svr), Is.EqualTo(0xFFu));
        Assert.That(_r.Read(0, ApicReg.Dfr), Is.EqualTo(0xFFFF_FFFFu));
        Assert.That(_r.Read(0, ApicReg.Ldr), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.Tpr), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.Ppr), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.TimerDivide), Is.EqualTo(0u));
        Assert.That(_r[0].TimerDivide, Is.EqualTo(2u), "divide configuration 0 divides by 2");
        foreach (int lvt in new[] { ApicReg.LvtTimer, ApicReg.LvtThermal, ApicReg.LvtPerf, ApicReg.LvtLint1, ApicReg.LvtError })
        {
            Assert.That(_r.Read(0, lvt), Is.EqualTo(0x1_0000u), $"LVT 0x{lvt:X} masked");
        }

        Assert.That(_r.Read(0, ApicReg.LvtLint0), Is.EqualTo(0x700u), "BSP LINT0: ExtINT, unmasked (QEMU/KVM pc reset)");
        Assert.That(_r.Read(1, ApicReg.LvtLint0), Is.EqualTo(0x1_0000u), "AP LINT0 masked");
        Assert.That(_r.Cpus[3].ApicId, Is.EqualTo(3), "CPUID 1 EBX[31:24] = initial APIC ID");
    }

    [TestCase(0x00UL, 4)]
    [TestCase(0x10UL, 4)]
    [TestCase(0x40UL, 4)]
    [TestCase(0xB0UL, 4, TestName = "EoiIsWriteOnly")]
    [TestCase(0xC0UL, 4, TestName = "RemoteReadIsNotImplemented")]
    [TestCase(0x2F0UL, 4, TestName = "NoCmciLvt")]
    [TestCase(0x3F0UL, 4, TestName = "NoSelfIpiInXapicMode")]
    [TestCase(0x3A0UL, 4)]
    [TestCase(0x400UL, 4)]
    [TestCase(0xFFCUL, 4)]
    [TestCase(0x34UL, 4, TestName = "SecondDwordOfARegister")]
    [TestCase(0x32UL, 4, TestName = "CrossesTheDword")]
    [TestCase(0x30UL, 8, TestName = "QwordRead")]
    public void ReservedOrMisalignedReadsReturnZero(ulong offset, int size)
    {
        _r.Enable(0);
        Assert.That(_r[0].ReadMmio(offset, size), Is.EqualTo(0UL));
    }

    [Test]
    public void NarrowReadsReturnTheRegistersBytes()
    {
        Assert.That(_r[0].ReadMmio(0x30, 1), Is.EqualTo(0x14UL));
        Assert.That(_r[0].ReadMmio(0x32, 1), Is.EqualTo(0x05UL));
        Assert.That(_r[0].ReadMmio(0x32, 2), Is.EqualTo(0x0005UL));
        Assert.That(_r[2].ReadMmio(0x23, 1), Is.EqualTo(2UL), "ID byte 3");
    }

    [Test]
    public void OnlyAlignedDwordWritesReachARegister()
    {
        _r[0].WriteMmio(0x80, 1, 0x30);
        _r[0].WriteMmio(0x80, 8, 0x30);
        _r[0].WriteMmio(0x84, 4, 0x30);
        Assert.That(_r.Read(0, ApicReg.Tpr), Is.EqualTo(0u));
        _r[0].WriteMmio(0x80, 4, 0x30);
        Assert.That(_r.Read(0, ApicReg.Tpr), Is.EqualTo(0x30u));
    }

    [Test]
    public void ReadOnlyRegistersIgnoreWrites()
    {
        _r.Write(0, ApicReg.Version, 0x1234);
        _r.Write(0, ApicReg.Ppr, 0x40);
        _r.Write(0, ApicReg.Apr, 0x40);
        _r.Write(0, ApicReg.Irr + 0x10, ~0u);
        _r.Write(0, ApicReg.Isr + 0x10, ~0u);
        _r.Write(0, ApicReg.TimerCurrent, 5);
        Assert.That(_r.Read(0, ApicReg.Version), Is.EqualTo(LocalApic.VersionValue));
        Assert.That(_r.Read(0, ApicReg.Ppr), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.Irr + 0x10), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.Isr + 0x10), Is.EqualTo(0u));
        Assert.That(_r.Read(0, ApicReg.TimerCurrent), Is.EqualTo(0u));
    }

    [Test]
    public void TprAliasesCr8()
    {
        _r.Write(0, ApicReg.Tpr, 0x1A7);
        Assert.That(_r.Read(0, ApicReg.Tpr), Is.EqualTo(0xA7u), "bits 7:0");
        Assert.That(_r.Cpus[0].Cr8, Is.EqualTo(0xAUL));
        Assert.That(_r.Cpus[0].WriteCr8(3), Is.True);
        Assert.That(_r.Read(0, ApicReg.Tpr), Is.EqualTo(0x30u));
        Assert.That(_r.Read(0, ApicReg.Ppr), Is.EqualTo(0x30u));
    }

    [Test]
    public void IdLdrDfrFields()
    {
        _r.Write(1, ApicReg.Id, 0x0712_3456);
        Assert.That(_r.Read(1, ApicReg.Id), Is.EqualTo(0x0700_0000u), "ID in bits 31:24");
        Assert.That(_r[1].ApicId, Is.EqualTo(7u));
        _r.Write(1, ApicReg.Ldr, 0x8812_3456);
        Assert.That(_r.Read(1, ApicReg.Ldr), Is.EqualTo(0x8800_0000u));
        _r.Write(1, ApicReg.Dfr, 0x0000_0001);
        Assert.That(_r.Read(1, ApicReg.Dfr), Is.EqualTo(0x0FFF_FFFFu), "bits 27:0 read as ones");
        _r.Write(1, ApicReg.Svr, 0xFFFF_F3AB);
        Assert.That(_r.Read(1, ApicReg.Svr), Is.EqualTo(0x3ABu), "vector, enable, focus; no EOI-broadcast suppression");
    }

    [Test]
    public void SoftwareDisableMasksTheLvtsAndKeepsThemMasked()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtLint1, 0x400);
        _r.Write(0, ApicReg.LvtTimer, 0x40);
        Assert.That(_r.Read(0, ApicReg.LvtLint1), Is.EqualTo(0x400u));
        _r.Write(0, ApicReg.Svr, 0xFF);
        Assert.That(_r.Read(0, ApicReg.LvtLint1), Is.EqualTo(0x1_0400u));
        Assert.That(_r.Read(0, ApicReg.LvtTimer), Is.EqualTo(0x1_0040u));
        _r.Write(0, ApicReg.LvtTimer, 0x41);
        Assert.That(_r.Read(0, ApicReg.LvtTimer), Is.EqualTo(0x1_0041u), "mask cannot be cleared while software-disabled");
    }

    [Test]
    public void LvtReadOnlyAndReservedBitsAreDropped()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtError, 0xFFFF_FFFF);
        Assert.That(_r.Read(0, ApicReg.LvtError), Is.EqualTo(0x1_00FFu));
        _r.Write(0, ApicReg.LvtLint0, 0xFFFF_FFFF);
        Assert.That(_r.Read(0, ApicReg.LvtLint0), Is.EqualTo(0x1_A7FFu), "vector, mode, polarity, trigger, mask");
        _r.Write(0, ApicReg.LvtTimer, 0xFFFF_FFFF);
        Assert.That(_r.Read(0, ApicReg.LvtTimer), Is.EqualTo(0x7_00FFu), "vector, mask, timer mode 18:17");
        _r.Write(0, ApicReg.LvtPerf, 0xFFFF_FFFF);
        Assert.That(_r.Read(0, ApicReg.LvtPerf), Is.EqualTo(0x1_07FFu));
    }

    [Test]
    public void SelfIpiIsAcceptedAndDeliveredByPriority()
    {
        _r.Enable(0);
        _r.SendIcr(0, 0x4_0035); // fixed, shorthand self
        _r.SendIcr(0, 0x4_0052);
        Assert.That(_r.Irr(0, 0x35) && _r.Irr(0, 0x52), Is.True);
        Assert.That(_r.Read(0, ApicReg.IcrLow) & (1u << 12), Is.EqualTo(0u), "delivery status reads idle");
        Assert.That(_r[0].HasPendingInterrupt, Is.True);
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x52));
        Assert.That(_r.Isr(0, 0x52) && !_r.Irr(0, 0x52), Is.True);
        Assert.That(_r.Read(0, ApicReg.Ppr), Is.EqualTo(0x50u), "PPR = class of the in-service vector");
        Assert.That(_r[0].HasPendingInterrupt, Is.False, "0x35 is below the in-service class");
        _r.Write(0, ApicReg.Eoi, 0);
        Assert.That(_r.Isr(0, 0x52), Is.False);
        Assert.That(_r.Read(0, ApicReg.Ppr), Is.EqualTo(0u));
        Assert.That(_r[0].HasPendingInterrupt, Is.True);
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x35));
        Assert.That(_r[0].IpisSent, Is.EqualTo(2UL));
        Assert.That(_r[0].InterruptsAccepted, Is.EqualTo(2UL));
        Assert.That(_r[0].Eois, Is.EqualTo(1UL));
    }

    [Test]
    public void HigherVectorPreemptsTheInServiceClassOnly()
    {
        _r.Enable(0);
        _r.SendIcr(0, 0x4_0055);
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x55));
        _r.SendIcr(0, 0x4_005F);
        Assert.That(_r[0].HasPendingInterrupt, Is.False, "same class as in service");
        _r.SendIcr(0, 0x4_0060);
        Assert.That(_r[0].HasPendingInterrupt, Is.True);
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x60));
        _r.Write(0, ApicReg.Eoi, 0);
        Assert.That(_r.Isr(0, 0x60), Is.False, "EOI retires the highest in-service vector");
        Assert.That(_r.Isr(0, 0x55), Is.True);
    }

    [Test]
    public void TprBlocksClassesAtOrBelowIt()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.Tpr, 0x4F);
        _r.SendIcr(0, 0x4_0045);
        Assert.That(_r[0].HasPendingInterrupt, Is.False);
        _r.Cpus[0].WriteCr8(3);
        Assert.That(_r[0].HasPendingInterrupt, Is.True);
    }

    [Test]
    public void AcknowledgeWithNothingDeliverableGivesTheSpuriousVector()
    {
        _r.Write(0, ApicReg.Svr, 0x1E7);
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0xE7));
        Assert.That(_r[0].SpuriousInterrupts, Is.EqualTo(1UL));
        Assert.That(_r.Isr(0, 0xE7), Is.False);
    }

    [Test]
    public void LevelTriggeredVectorSetsTmrAndItsEoiIsBroadcast()
    {
        _r.Enable(1);
        _r.Platform.ApicBus.Deliver(new ApicMessage(0x61, ApicDeliveryMode.Fixed, false, 1, LevelTriggered: true));
        _r.Platform.ApicBus.Deliver(new ApicMessage(0x62, ApicDeliveryMode.Fixed, false, 1));
        Assert.That(_r.Tmr(1, 0x61) && !_r.Tmr(1, 0x62), Is.True);
        Assert.That(_r[1].Acknowledge(), Is.EqualTo(0x62));
        _r.Write(1, ApicReg.Eoi, 0);
        Assert.That(_r.EoiBroadcasts, Is.Empty, "edge-triggered: no broadcast");
        Assert.That(_r[1].Acknowledge(), Is.EqualTo(0x61));
        _r.Write(1, ApicReg.Eoi, 0);
        Assert.That(_r.EoiBroadcasts, Is.EqualTo(new byte[] { 0x61 }));
    }

    [Test]
    public void LevelDeassertMessageCarriesNoInterrupt()
    {
        _r.Enable(1);
        _r.Platform.ApicBus.Deliver(new ApicMessage(0x61, ApicDeliveryMode.Fixed, false, 1, LevelTriggered: true, Assert: false));
        Assert.That(_r.Irr(1, 0x61), Is.False);
    }

    [Test]
    public void EsrIsWriteThenRead()
    {
        _r.Enable(0);
        _r.Enable(1);
        _r.SendIcr(0, 0x0005, 1); // fixed vector 5: illegal
        Assert.That(_r.Irr(1, 5), Is.False, "not sent");
        Assert.That(_r.Read(0, ApicReg.Esr), Is.EqualTo(0u), "not visible before an ESR write");
        _r.Write(0, ApicReg.Esr, 0);
        Assert.That(_r.Read(0, ApicReg.Esr), Is.EqualTo(LocalApic.EsrSendIllegalVector));
        _r.Write(0, ApicReg.Esr, 0);
        Assert.That(_r.Read(0, ApicReg.Esr), Is.EqualTo(0u), "the write started a new collection");

        _r.Platform.ApicBus.Deliver(new ApicMessage(3, ApicDeliveryMode.Fixed, false, 1));
        Assert.That(_r.Irr(1, 3), Is.False);
        _r.Write(1, ApicReg.Esr, 0);
        Assert.That(_r.Read(1, ApicReg.Esr), Is.EqualTo(LocalApic.EsrReceiveIllegalVector));
    }

    [Test]
    public void ErrorLvtRaisesItsInterrupt()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtError, 0xEE);
        _r.SendIcr(0, 0x4_000F);
        Assert.That(_r.Irr(0, 0xEE), Is.True);
    }

    [Test]
    public void PhysicalLogicalAndShorthandDestinations()
    {
        for (int i = 0; i < 4; i++)
        {
            _r.Enable(i);
            _r.Write(i, ApicReg.Ldr, (1u << i) << 24); // flat: bit i
        }

        _r.SendIcr(0, 0x0040, 2);
        Assert.That(_r.Irr(2, 0x40) && !_r.Irr(1, 0x40) && !_r.Irr(0, 0x40), Is.True, "physical");
        _r.SendIcr(0, 0x0841, 0b1010);
        Assert.That(_r.Irr(1, 0x41) && _r.Irr(3, 0x41) && !_r.Irr(2, 0x41), Is.True, "logical flat");
        _r.SendIcr(1, 0xC_0042);
        Assert.That(_r.Irr(0, 0x42) && _r.Irr(2, 0x42) && _r.Irr(3, 0x42) && !_r.Irr(1, 0x42), Is.True, "all excluding self");
        _r.SendIcr(1, 0x8_0043);
        Assert.That(_r.Irr(0, 0x43) && _r.Irr(1, 0x43) && _r.Irr(3, 0x43), Is.True, "all including self");
        _r.SendIcr(3, 0x0044, 0xFF);
        Assert.That(_r.Irr(0, 0x44) && _r.Irr(1, 0x44) && _r.Irr(2, 0x44) && _r.Irr(3, 0x44), Is.True, "physical broadcast");
    }

    [Test]
    public void ClusterLogicalDestination()
    {
        for (int i = 0; i < 4; i++)
        {
            _r.Enable(i);
            _r.Write(i, ApicReg.Dfr, 0x0FFF_FFFF);
        }

        // Cluster 1 holds APICs 0 and 1 (bits 0, 1), cluster 2 holds APICs 2 and 3.
        _r.Write(0, ApicReg.Ldr, 0x11u << 24);
        _r.Write(1, ApicReg.Ldr, 0x12u << 24);
        _r.Write(2, ApicReg.Ldr, 0x21u << 24);
        _r.Write(3, ApicReg.Ldr, 0x22u << 24);
        _r.SendIcr(0, 0x0850, 0x13);
        Assert.That(_r.Irr(0, 0x50) && _r.Irr(1, 0x50) && !_r.Irr(2, 0x50) && !_r.Irr(3, 0x50), Is.True);
        _r.SendIcr(0, 0x0851, 0x22);
        Assert.That(_r.Irr(3, 0x51) && !_r.Irr(2, 0x51) && !_r.Irr(1, 0x51), Is.True);
        Assert.That(_r[1].MatchesLogical(0x21), Is.False, "other cluster");
    }

    [Test]
    public void LowestPriorityPicksTheLowestArbitrationPriority()
    {
        for (int i = 0; i < 4; i++)
        {
            _r.Enable(i);
            _r.Write(i, ApicReg.Ldr, 0x01u << 24);
            _r.Write(i, ApicReg.Tpr, i == 2 ? 0x10u : 0x80u);
        }

        Assert.That(_r.Read(2, ApicReg.Apr), Is.EqualTo(0x10u));
        _r.SendIcr(0, 0x0970, 0x01); // lowest priority, logical
        Assert.That(_r.Irr(2, 0x70), Is.True);
        Assert.That(_r.Irr(0, 0x70) || _r.Irr(1, 0x70) || _r.Irr(3, 0x70), Is.False);
    }

    [Test]
    public void ArbitrationPriorityFollowsIrrAndIsr()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.Tpr, 0x25);
        Assert.That(_r.Read(0, ApicReg.Apr), Is.EqualTo(0x25u));
        _r.SendIcr(0, 0x4_0061);
        Assert.That(_r.Read(0, ApicReg.Apr), Is.EqualTo(0x60u), "highest requested class above TPR");
    }

    [Test]
    public void NmiInitStartupAndSmiMessages()
    {
        _r.Enable(0);
        _r.SendIcr(0, 0x0400, 1); // NMI
        Assert.That(_r.Cpus[1].NmiPending, Is.True);

        _r.Cpus[1].WaitingForSipi = false;
        _r.Write(1, ApicReg.Tpr, 0x40);
        _r.SendIcr(0, 0x8500, 1); // INIT level de-assert (trigger level, level 0): ignored
        Assert.That(_r.Cpus[1].InitsReceived, Is.EqualTo(0UL));
        _r.SendIcr(0, 0x4500, 1); // INIT assert
        Assert.That(_r.Cpus[1].InitsReceived, Is.EqualTo(1UL));
        Assert.That(_r.Cpus[1].WaitingForSipi, Is.True);
        Assert.That(_r.Read(1, ApicReg.Tpr), Is.EqualTo(0u), "INIT resets the APIC");
        _r.SendIcr(0, 0x4609, 1); // Startup, vector 9
        Assert.That(_r.Cpus[1].WaitingForSipi, Is.False);
        Assert.That(_r.Cpus[1].Seg[Emulator.Core.Cpu.SegReg.CS].Base, Is.EqualTo(0x9000UL));
        Assert.That(_r.Cpus[1].Rip, Is.EqualTo(0UL));

        _r.SendIcr(0, 0x0200, 3); // SMI
        Assert.That(_r[3].SmisReceived, Is.EqualTo(1UL));
    }

    [Test]
    public void SoftwareDisabledApicDropsFixedButTakesNmi()
    {
        _r.Enable(0);
        _r.SendIcr(0, 0x0040, 1);
        Assert.That(_r.Irr(1, 0x40), Is.False);
        _r.SendIcr(0, 0x0400, 1);
        Assert.That(_r.Cpus[1].NmiPending, Is.True);
        _r.SendIcr(1, 0x0041, 0); // a software-disabled APIC still sends
        Assert.That(_r.Irr(0, 0x41), Is.True);
    }

    [Test]
    public void InitKeepsTheIdAndResetsTheRest()
    {
        _r.Enable(1);
        _r.Write(1, ApicReg.Id, 9u << 24);
        _r.Write(1, ApicReg.Ldr, 0x40u << 24);
        _r.Write(1, ApicReg.LvtLint1, 0x400);
        _r.Write(1, ApicReg.TimerInitial, 1000);
        _r.SendIcr(1, 0x4_0050);
        _r.Cpus[1].Init();
        Assert.That(_r.Read(1, ApicReg.Id), Is.EqualTo(9u << 24));
        Assert.That(_r.Read(1, ApicReg.Ldr), Is.EqualTo(0u));
        Assert.That(_r.Read(1, ApicReg.Svr), Is.EqualTo(0xFFu));
        Assert.That(_r.Read(1, ApicReg.LvtLint1), Is.EqualTo(0x1_0000u));
        Assert.That(_r.Read(1, ApicReg.TimerInitial), Is.EqualTo(0u));
        Assert.That(_r.Irr(1, 0x50), Is.False);
        Assert.That(_r[1].TimerDeadline, Is.EqualTo(ulong.MaxValue), "timer stopped");
        Assert.That(_r.Cpus[1].ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseEnable, Is.Not.Zero, "APIC_BASE kept");
    }

    [Test]
    public void Lint1ProgrammedAsNmiDeliversNmi()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtLint1, 0x400);
        _r[0].SetLint(1, true);
        Assert.That(_r.Cpus[0].NmiPending, Is.True);
    }

    [Test]
    public void MaskedLint1DeliversNothing()
    {
        _r[0].SetLint(1, true);
        Assert.That(_r.Cpus[0].NmiPending, Is.False);
    }

    [Test]
    public void LevelTriggeredLintRedeliversAfterEoiWhileActive()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtLint1, 0x8000 | 0x66); // fixed, level
        _r[0].SetLint(1, true);
        Assert.That(_r.Irr(0, 0x66) && _r.Tmr(0, 0x66), Is.True);
        Assert.That(_r.Read(0, ApicReg.LvtLint1) & (1u << 14), Is.Not.Zero, "remote IRR");
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x66));
        _r.Write(0, ApicReg.Eoi, 0);
        Assert.That(_r.Irr(0, 0x66), Is.True, "pin still active: taken again");
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x66));
        _r[0].SetLint(1, false);
        _r.Write(0, ApicReg.Eoi, 0);
        Assert.That(_r.Irr(0, 0x66), Is.False);
        Assert.That(_r.Read(0, ApicReg.LvtLint1) & (1u << 14), Is.Zero);
    }

    [Test]
    public void PicReachesTheBspThroughLint0ExtInt()
    {
        var pic = new IntrLine { Vector = 0x21, ExtIntPending = true };
        _r[0].ExtInt = pic;
        _r[1].ExtInt = pic;
        Assert.That(_r[1].HasPendingInterrupt, Is.False, "AP LINT0 masked");
        Assert.That(_r[0].HasPendingInterrupt, Is.True, "even while software-disabled: LINT0 is unmasked");
        _r.Write(0, ApicReg.Tpr, 0xF0);
        Assert.That(_r[0].HasPendingInterrupt, Is.True, "ExtINT bypasses the priority check");
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x21));
        Assert.That(_r[0].HasPendingInterrupt, Is.False);
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtLint0, 0x1_0700);
        pic.ExtIntPending = true;
        Assert.That(_r[0].HasPendingInterrupt, Is.False, "LINT0 masked");
    }

    [Test]
    public void ExtIntMessageMakesThePicsInterruptDeliverable()
    {
        var pic = new IntrLine { Vector = 0x23, ExtIntPending = true };
        _r[2].ExtInt = pic;
        Assert.That(_r[2].HasPendingInterrupt, Is.False);
        _r.Enable(0);
        _r.SendIcr(0, 0x0700, 2);
        Assert.That(_r[2].HasPendingInterrupt, Is.True);
        Assert.That(_r[2].Acknowledge(), Is.EqualTo(0x23));
        Assert.That(_r[2].HasPendingInterrupt, Is.False);
    }
    [Test]
    public void DirectedEoiIsNotReportedSoSvrBit12IsIgnoredAndLevelEoisAreBroadcast()
    {
        // QEMU's pc machine reports no EOI-broadcast suppression (TCG: APIC version 0x14; KVM: only with a
        // split irqchip), so SVR bit 12 is not writable and every level-triggered EOI reaches the I/O APIC.
        Assert.That(_r.Read(1, ApicReg.Version) & (1u << 24), Is.Zero, "version bit 24 clear");
        _r.Write(1, ApicReg.Svr, 0x11FF);
        Assert.That(_r.Read(1, ApicReg.Svr), Is.EqualTo(0x1FFu));
        _r.Platform.ApicBus.Deliver(new ApicMessage(0x71, ApicDeliveryMode.Fixed, false, 1, LevelTriggered: true));
        Assert.That(_r[1].Acknowledge(), Is.EqualTo(0x71));
        _r.Write(1, ApicReg.Eoi, 0);
        Assert.That(_r.EoiBroadcasts, Is.EqualTo(new byte[] { 0x71 }));
    }

    [Test]
    public void TimerLvtWithAnIllegalVectorSetsReceiveIllegalVector()
    {
        // An illegal vector generated locally from the LVT is dropped and logged as a receive error (Intel SDM
        // vol. 3 §10.5.3, ESR bit 6); the error LVT then raises its own interrupt.
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtError, 0xE3);
        _r.Write(0, ApicReg.LvtTimer, 0x07);
        _r.Write(0, ApicReg.TimerInitial, 10);
        _r.Advance(1_000);
        Assert.That(_r[0].TimerFires, Is.EqualTo(1UL));
        Assert.That(_r.Irr(0, 0x07), Is.False, "no IRR bit below 16");
        Assert.That(_r.Irr(0, 0xE3), Is.True, "error interrupt");
        _r.Write(0, ApicReg.Esr, 0);
        Assert.That(_r.Read(0, ApicReg.Esr), Is.EqualTo(LocalApic.EsrReceiveIllegalVector));
    }

    [Test]
    public void IllegalLowestPriorityVectorIsASendError()
    {
        _r.Enable(0);
        _r.Enable(1);
        _r.SendIcr(0, 0x0109, 1); // lowest priority, vector 9
        Assert.That(_r[1].HighestRequested, Is.EqualTo(-1));
        _r.Write(0, ApicReg.Esr, 0);
        Assert.That(_r.Read(0, ApicReg.Esr), Is.EqualTo(LocalApic.EsrSendIllegalVector));
    }

    [Test]
    public void LowestPriorityTieGoesToTheLowestApicAndAPendingHigherClassLoses()
    {
        for (int i = 0; i < 4; i++)
        {
            _r.Enable(i);
            _r.Write(i, ApicReg.Ldr, 0x01u << 24);
        }

        _r.SendIcr(3, 0x0972, 0x01);
        Assert.That(_r.Irr(0, 0x72), Is.True, "equal arbitration priorities: the lowest APIC ID wins");
        Assert.That(_r.Irr(1, 0x72) || _r.Irr(2, 0x72) || _r.Irr(3, 0x72), Is.False, "delivered once");

        // APIC 0 now has class 7 requested: its arbitration priority is 0x70, the others' 0.
        Assert.That(_r.Read(0, ApicReg.Apr), Is.EqualTo(0x70u));
        _r.SendIcr(3, 0x0973, 0x01);
        Assert.That(_r.Irr(1, 0x73) && !_r.Irr(0, 0x73), Is.True);
    }

    [Test]
    public void LogicalBroadcastReachesEveryApicInBothModels()
    {
        for (int i = 0; i < 4; i++)
        {
            _r.Enable(i);
            _r.Write(i, ApicReg.Ldr, (0x10u | (1u << i)) << 24);
            if (i >= 2)
            {
                _r.Write(i, ApicReg.Dfr, 0x0FFF_FFFF); // cluster model on APICs 2 and 3
            }
        }

        _r.SendIcr(0, 0x0858, 0xFF);
        for (int i = 0; i < 4; i++)
        {
            Assert.That(_r.Irr(i, 0x58), Is.True, $"APIC {i}");
        }

        // Destination 0x12: the flat APICs 0 (LDR 0x11) and 1 (0x12) share a bit with it; in the cluster model it
        // names cluster 1, member bit 1, which neither APIC 2 (0x14) nor APIC 3 (0x18) holds.
        _r.SendIcr(0, 0x0859, 0x12);
        Assert.That(_r.Irr(0, 0x59) && _r.Irr(1, 0x59), Is.True, "flat: any common bit");
        Assert.That(_r.Irr(2, 0x59) || _r.Irr(3, 0x59), Is.False, "cluster 1: no member bit 1");
    }

    [Test]
    public void ExtIntMessageToAnApTakesThePicsVector()
    {
        // The firmware handoff leaves the master PIC at vector 8 with IRQ 1 open. The AP's LINT0 is masked, so the
        // PIC's INTR does not reach it until an ExtINT message makes it run one INTA cycle (Intel SDM vol. 3
        // §10.11.2 delivery mode 111b: the vector comes from the 8259's INTA).
        _r.Platform.Isa.SetIrq(1, true);
        Assert.That(_r[1].HasPendingInterrupt, Is.False, "AP LINT0 masked");
        _r.Enable(0);
        _r.SendIcr(0, 0x0700, 1);
        Assert.That(_r[1].HasPendingInterrupt, Is.True);
        Assert.That(_r[1].Acknowledge(), Is.EqualTo(0x09));
        Assert.That(_r[0].HasPendingInterrupt, Is.False, "the AP's INTA took the request from the BSP's LINT0 too");
        Assert.That(_r.Platform.Pic.Acknowledges, Is.EqualTo(1UL));
    }

    [Test]
    public void ApWithLint0InExtIntModeReceivesThePicsInterrupts()
    {
        // As on QEMU's pc machine, the PIC's INTR reaches every APIC whose LINT0 is unmasked in ExtINT mode.
        _r.Enable(2);
        _r.Write(2, ApicReg.LvtLint0, 0x700);
        _r.Write(0, ApicReg.LvtLint0, 0x1_0700); // BSP: masked
        _r.Platform.Isa.SetIrq(1, true);
        Assert.That(_r[0].HasPendingInterrupt || _r[1].HasPendingInterrupt, Is.False);
        Assert.That(_r[2].HasPendingInterrupt, Is.True);
        Assert.That(_r[2].Acknowledge(), Is.EqualTo(0x09));
    }

    [Test]
    public void ExtIntMessageWithNothingPendingGetsThePicsSpuriousIrq7()
    {
        _r.Enable(0);
        _r.Write(0, ApicReg.LvtLint0, 0x1_0700);
        _r.SendIcr(0, 0x4_0700); // ExtINT to self
        Assert.That(_r[0].HasPendingInterrupt, Is.True);
        Assert.That(_r[0].Acknowledge(), Is.EqualTo(0x0F), "master IR7 at vector base 8, no in-service bit");
        Assert.That(_r.Platform.Pic.SpuriousInterrupts, Is.EqualTo(1UL));
        Assert.That(_r[0].HasPendingInterrupt, Is.False, "one INTA per message");
    }

    [Test]
    public void SmiIsCountedAndOtherwiseIgnored()
    {
        // No SMM in this model (QEMU would enter SeaBIOS's SMM handler and resume): the SMI changes nothing but
        // the apic.smis counter, whatever the vector field holds.
        _r.Enable(0);
        _r.Enable(1);
        _r.SendIcr(0, 0x0233, 1);
        _r.SendIcr(0, 0x8_0200); // all including self
        Assert.That(_r[1].SmisReceived, Is.EqualTo(2UL));
        Assert.That(_r[0].SmisReceived, Is.EqualTo(1UL));
        Assert.That(_r[1].HighestRequested, Is.EqualTo(-1));
        Assert.That(_r.Cpus[1].NmiPending, Is.False);
    }
    [Test]
    public void LowestPrioritySkipsSoftwareDisabledApicsAndArbitratesShorthands()
    {
        // APIC 0 is software-disabled with the lowest TPR: it would drop the interrupt, so it does not compete.
        for (int i = 0; i < 4; i++)
        {
            _r.Write(i, ApicReg.Ldr, 0x01u << 24);
            if (i != 0)
            {
                _r.Enable(i);
                _r.Write(i, ApicReg.Tpr, i == 3 ? 0x10u : 0x30u);
            }
        }

        _r.SendIcr(1, 0x0974, 0x01); // lowest priority, logical: all four match
        Assert.That(_r.Irr(3, 0x74), Is.True);
        Assert.That(_r.Irr(0, 0x74) || _r.Irr(1, 0x74) || _r.Irr(2, 0x74), Is.False);

        _r.SendIcr(3, 0xC_0175); // lowest priority, all excluding self: one of APICs 1 and 2 (0 is disabled)
        Assert.That(_r.Irr(1, 0x75), Is.True, "tie between 1 and 2: the lower ID");
        Assert.That(_r.Irr(2, 0x75) || _r.Irr(3, 0x75) || _r.Irr(0, 0x75), Is.False, "one target only");
    }
}
