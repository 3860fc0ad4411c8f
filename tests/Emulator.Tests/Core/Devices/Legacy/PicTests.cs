using Emulator.Core.Devices;
using Emulator.Core.Devices.Legacy;

namespace Emulator.Tests.Core.Devices.Legacy;

public class PicTests
{
    private Pic8259 _pic = null!;
    private IoBus _io = null!;

    [SetUp]
    public void SetUp()
    {
        _pic = new Pic8259();
        _io = new IoBus();
        _pic.Attach(_io);
    }

    private void Out(int port, int value) => _io.Out((ushort)port, 1, (uint)value);

    private int In(int port) => (int)_io.In((ushort)port, 1);

    /// <summary>The usual remap: master vectors 0x20, slave 0x28, cascade on IR2, 8086 mode, everything unmasked.</summary>
    private void Init(int icw4 = 0x01, int icw1 = 0x11)
    {
        Out(0x20, icw1);
        Out(0xA0, icw1);
        Out(0x21, 0x20);
        Out(0xA1, 0x28);
        Out(0x21, 0x04);
        Out(0xA1, 0x02);
        if ((icw1 & 1) != 0)
        {
            Out(0x21, icw4);
            Out(0xA1, icw4);
        }

        Out(0x21, 0x00);
        Out(0xA1, 0x00);
    }

    private int ReadIsr(int cmd)
    {
        Out(cmd, 0x0B);
        int v = In(cmd);
        Out(cmd, 0x0A);
        return v;
    }

    private void Pulse(int irq)
    {
        _pic.SetIrq(irq, true);
        _pic.SetIrq(irq, false);
    }

    [Test]
    public void InitializedPicDeliversTheProgrammedVectorAndEoiClearsInService()
    {
        Init();
        Assert.That(_pic.ExtIntPending, Is.False);
        Pulse(1);
        Assert.That(_pic.ExtIntPending, Is.True);
        Assert.That(In(0x20), Is.EqualTo(0x02), "IRR after the edge");
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x21));
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x02));
        Assert.That(In(0x20), Is.Zero, "IRR cleared by INTA");
        Assert.That(_pic.ExtIntPending, Is.False);
        Out(0x20, 0x20); // non-specific EOI
        Assert.That(ReadIsr(0x20), Is.Zero);
        Assert.That(_pic.Acknowledges, Is.EqualTo(1));
    }

    [Test]
    public void MaskedRequestStaysInIrrUntilUnmasked()
    {
        Init();
        Out(0x21, 0x08);
        Pulse(3);
        Assert.That(_pic.ExtIntPending, Is.False);
        Assert.That(In(0x20) & 0x08, Is.EqualTo(0x08));
        Assert.That(In(0x21), Is.EqualTo(0x08), "IMR reads back");
        Out(0x21, 0x00);
        Assert.That(_pic.ExtIntPending, Is.True);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x23));
    }

    [Test]
    public void EdgeTriggeredInputRequestsOncePerRisingEdge()
    {
        Init();
        _pic.SetIrq(4, true);
        _pic.SetIrq(4, true);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x24));
        Out(0x20, 0x20);
        Assert.That(_pic.ExtIntPending, Is.False, "a held line does not request again");
        _pic.SetIrq(4, false);
        _pic.SetIrq(4, true);
        Assert.That(_pic.ExtIntPending, Is.True);
    }

    [Test]
    public void LevelTriggeredInputRequestsAgainWhileHeldAndStopsWhenDropped()
    {
        Init(icw1: 0x19); // LTIM
        _pic.SetIrq(5, true);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x25));
        Out(0x20, 0x20);
        Assert.That(_pic.ExtIntPending, Is.True, "still high: requests again after the EOI");
        _pic.SetIrq(5, false);
        Assert.That(_pic.ExtIntPending, Is.False);
        Assert.That(In(0x20), Is.Zero);
    }

    [Test]
    public void PriorityIsByInputNumberAndInServiceBlocksLowerLevels()
    {
        Init();
        Pulse(5);
        Pulse(3);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x23));
        Assert.That(_pic.ExtIntPending, Is.False, "IRQ 5 waits behind IRQ 3 in service");
        Pulse(1);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x21), "IRQ 1 nests over IRQ 3");
        Out(0x20, 0x20); // clears IRQ 1, the highest in service
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x08));
        Out(0x20, 0x20);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x25));
    }

    [Test]
    public void SpecificEoiClearsTheNamedLevel()
    {
        Init();
        Pulse(6);
        _pic.AcknowledgeExtInt();
        Pulse(0); // IRQ 0 nests
        _pic.AcknowledgeExtInt();
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x41));
        Out(0x20, 0x66); // specific EOI, level 6
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x01));
    }

    [Test]
    public void RotateOnNonSpecificEoiMakesTheServicedLevelLowest()
    {
        Init();
        Pulse(0);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x20));
        Out(0x20, 0xA0); // rotate on non-specific EOI: IRQ 0 becomes lowest, IRQ 1 highest
        Pulse(0);
        Pulse(4);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x24));
        Out(0x20, 0x20);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x20));
    }

    [Test]
    public void SetPriorityCommandChoosesTheLowestLevel()
    {
        Init();
        Out(0x20, 0xC4); // set priority: IRQ 4 lowest, IRQ 5 highest
        Pulse(3);
        Pulse(6);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x26));
    }

    [Test]
    public void AutoEoiLeavesNothingInService()
    {
        Init(icw4: 0x03);
        Pulse(3);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x23));
        Assert.That(ReadIsr(0x20), Is.Zero);
        Pulse(7);
        Assert.That(_pic.ExtIntPending, Is.True, "no in-service level blocks IRQ 7");
    }

    [Test]
    public void SlaveRequestsCascadeThroughMasterIr2()
    {
        Init();
        Pulse(10);
        Assert.That(_pic.ExtIntPending, Is.True);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x2A));
        Assert.That(ReadIsr(0xA0), Is.EqualTo(0x04), "slave IR2");
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x04), "master cascade input");
        Out(0xA0, 0x20);
        Out(0x20, 0x20);
        Assert.That(ReadIsr(0xA0) | ReadIsr(0x20), Is.Zero);
    }

    [Test]
    public void SecondSlaveRequestIsDeliveredAfterTheFirstIsDone()
    {
        Init();
        Pulse(9);
        Pulse(12);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x29));
        Assert.That(_pic.ExtIntPending, Is.False, "master IR2 in service");
        Out(0xA0, 0x20);
        Out(0x20, 0x20);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x2C));
    }

    [Test]
    public void MaskedSlaveInputDoesNotReachTheMaster()
    {
        Init();
        Out(0xA1, 0x01);
        Pulse(8);
        Assert.That(_pic.ExtIntPending, Is.False);
        Out(0xA1, 0x00);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x28));
    }

    [Test]
    public void AcknowledgeWithNothingPendingIsSpuriousIrq7()
    {
        Init();
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x27));
        Assert.That(ReadIsr(0x20), Is.Zero, "a spurious IRQ 7 sets no in-service bit");
        Assert.That(_pic.SpuriousInterrupts, Is.EqualTo(1));
        Assert.That(_pic.Acknowledges, Is.Zero);
    }

    [Test]
    public void VanishedSlaveRequestIsSpuriousIrq15WithMasterIr2InService()
    {
        Init();
        Out(0x4D1, 0x02); // IRQ 9 level-triggered
        _pic.SetIrq(9, true);
        Assert.That(_pic.ExtIntPending, Is.True);
        _pic.SetIrq(9, false); // gone before the INTA
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x2F));
        Assert.That(ReadIsr(0xA0), Is.Zero);
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x04), "the master did service its cascade input");
        Assert.That(_pic.SpuriousInterrupts, Is.EqualTo(1));
    }

    [Test]
    public void ElcrKeepsOnlyTheBitsQemuAllows()
    {
        Out(0x4D0, 0xFF);
        Out(0x4D1, 0xFF);
        Assert.That(In(0x4D0), Is.EqualTo(0xF8), "IRQ 0–2 are always edge");
        Assert.That(In(0x4D1), Is.EqualTo(0xDE), "IRQ 8 and 13 are always edge");
    }

    [Test]
    public void ElcrLevelLineFollowsItsInput()
    {
        Init();
        Out(0x4D0, 0x20);
        _pic.SetIrq(5, true);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x25));
        Assert.That(In(0x20) & 0x20, Is.EqualTo(0x20), "IRR follows the level through INTA");
        _pic.SetIrq(5, false);
        Assert.That(In(0x20), Is.Zero);
    }

    [Test]
    public void PollCommandReadsAndAcknowledgesTheHighestRequest()
    {
        Init();
        Out(0x21, 0xFF); // polling works with INTR unused
        Out(0x21, 0x00);
        Pulse(6);
        Out(0x20, 0x0C); // OCW3 poll
        Assert.That(In(0x20), Is.EqualTo(0x86));
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x40));
        Out(0x20, 0x20);
        Out(0x20, 0x0C);
        Assert.That(In(0x20), Is.Zero, "nothing pending");
    }

    [Test]
    public void SpecialMaskModeLetsLowerLevelsThroughAMaskedInServiceLevel()
    {
        Init();
        Pulse(1);
        _pic.AcknowledgeExtInt();
        Pulse(4);
        Assert.That(_pic.ExtIntPending, Is.False);
        Out(0x21, 0x02); // mask IRQ 1 (in service)
        Out(0x20, 0x68); // OCW3: set special mask mode
        Assert.That(_pic.ExtIntPending, Is.True);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x24));
        Out(0x20, 0x48); // clear special mask mode
        Out(0x20, 0x20);
        Assert.That(ReadIsr(0x20), Is.EqualTo(0x10), "a non-specific EOI clears the highest level in service, IRQ 1");
    }

    [Test]
    public void Icw1ResetsMaskAndEdgeSense()
    {
        Init();
        Out(0x21, 0xFF);
        _pic.SetIrq(3, true);
        Init();
        Assert.That(In(0x21), Is.Zero, "IMR cleared");
        Assert.That(In(0x20), Is.Zero, "the latched edge is gone");
        Assert.That(_pic.ExtIntPending, Is.False, "a line held high must fall and rise again");
        _pic.SetIrq(3, false);
        _pic.SetIrq(3, true);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x23));
    }

    [Test]
    public void WordAccessReachesBothPortsOfAChip()
    {
        Init();
        Out(0x21, 0x5A);
        Assert.That(_io.In(0x20, 2) >> 8, Is.EqualTo(0x5A));
        _io.Out(0xA0, 2, 0xC30B); // OCW3 (read ISR) to 0xA0, IMR 0xC3 to 0xA1
        Assert.That(In(0xA1), Is.EqualTo(0xC3));
    }
    [Test]
    public void IntrRaisedSignalsEachRisingEdgeOfTheMastersOutput()
    {
        int raised = 0;
        _pic.IntrRaised = () => raised++;
        Init();
        Out(0x21, 0x02); // IRQ 1 masked
        _pic.SetIrq(1, true);
        Assert.That(raised, Is.Zero, "masked: INTR stays low");
        Out(0x21, 0x00);
        Assert.That(raised, Is.EqualTo(1), "unmasking raises INTR");
        _pic.SetIrq(3, true);
        Assert.That(raised, Is.EqualTo(1), "already high");
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x21));
        Assert.That(raised, Is.EqualTo(1), "IRQ 3 is below the in-service IRQ 1: INTR low");
        Out(0x20, 0x20);
        Assert.That(raised, Is.EqualTo(2), "the EOI lets IRQ 3 through");
        Pulse(12);
        Assert.That(raised, Is.EqualTo(2), "still high for IRQ 3");
    }

    [Test]
    public void ClearingAnInServiceBitIsReportedWithItsIsaIrq()
    {
        Init();
        var acked = new List<int>();
        _pic.Acked = acked.Add;
        _pic.SetIrq(0, true);
        _pic.SetIrq(12, true);
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x20));
        Out(0x20, 0x20); // non-specific EOI: IR0
        Assert.That(_pic.AcknowledgeExtInt(), Is.EqualTo(0x2C));
        Out(0xA0, 0x64); // specific EOI, slave IR4
        Out(0x20, 0x62); // specific EOI, master IR2 (the cascade)
        Out(0x20, 0x20); // nothing in service: nothing reported
        Assert.That(acked, Is.EqualTo(new[] { 0, 12, 2 }));
    }

    [Test]
    public void AnInitializationAcknowledgesTheEdgeRequestsItDrops()
    {
        Init();
        var acked = new List<int>();
        _pic.Acked = acked.Add;
        _pic.SetIrq(0, true);
        Out(0x20, 0x11); // ICW1 drops IR0's request
        Assert.That(acked, Is.EqualTo(new[] { 0 }));
    }
}
