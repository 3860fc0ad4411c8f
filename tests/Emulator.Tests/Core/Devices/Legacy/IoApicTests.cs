using Emulator.Core.Devices.Apic;

namespace Emulator.Tests.Core.Devices.Legacy;

public class IoApicTests
{
    private ApicBus _bus = null!;
    private IoApic _ioApic = null!;
    private FakeApic _cpu0 = null!;
    private FakeApic _cpu1 = null!;

    [SetUp]
    public void SetUp()
    {
        _bus = new ApicBus();
        _cpu0 = new FakeApic(0);
        _cpu1 = new FakeApic(1);
        _bus.Add(_cpu0);
        _bus.Add(_cpu1);
        _ioApic = new IoApic(_bus);
    }

    private uint ReadReg(uint index)
    {
        _ioApic.Write(0x00, 4, index);
        return (uint)_ioApic.Read(0x10, 4);
    }

    private void WriteReg(uint index, uint value)
    {
        _ioApic.Write(0x00, 4, index);
        _ioApic.Write(0x10, 4, value);
    }

    private void Route(int pin, ulong entry)
    {
        WriteReg((uint)(0x10 + (2 * pin) + 1), (uint)(entry >> 32));
        WriteReg((uint)(0x10 + (2 * pin)), (uint)entry);
    }

    [Test]
    public void AnAcknowledgedVectorIsReportedForEveryPinThatUsesIt()
    {
        var acked = new List<int>();
        _ioApic.PinAcked = acked.Add;
        Route(2, 0x30); // edge
        Route(5, 0x30 | 0x1_0000); // masked, same vector
        Route(7, 0x31);
        _bus.NotifyAck(0x30);
        Assert.That(acked, Is.EqualTo(new[] { 2, 5 }));
    }

    private static ulong Entry(byte vector, uint destination, bool level = false, bool masked = false, bool logical = false, int mode = 0) =>
        vector | ((ulong)mode << 8) | (logical ? IoApic.LogicalDestination : 0) | (level ? IoApic.LevelTriggered : 0)
        | (masked ? IoApic.Masked : 0) | ((ulong)destination << 56);

    [Test]
    public void VersionAndIdRegistersAreQemusPcDefaults()
    {
        Assert.That(ReadReg(0x01), Is.EqualTo(0x0017_0020u), "version 0x20, 24 entries");
        Assert.That(ReadReg(0x00), Is.Zero);
        WriteReg(0x00, 0x0500_0000);
        Assert.That(ReadReg(0x00), Is.EqualTo(0x0500_0000u));
        Assert.That(_ioApic.Read(0x00, 4), Is.EqualTo(0x00u), "IOREGSEL reads back");
    }

    [Test]
    public void EntriesStartMaskedAndReadBack()
    {
        for (uint pin = 0; pin < 24; pin++)
        {
            Assert.That(ReadReg(0x10 + (2 * pin)), Is.EqualTo(0x0001_0000u));
        }

        Route(3, Entry(0x41, 1) | IoApic.ActiveLow);
        Assert.That(ReadReg(0x16), Is.EqualTo(0x0000_2041u));
        Assert.That(ReadReg(0x17), Is.EqualTo(0x0100_0000u));
        Assert.That(ReadReg(0x10 + 48), Is.Zero, "past the last entry");
    }

    [Test]
    public void EdgePinSendsOnEachRisingEdgeToItsDestination()
    {
        Route(5, Entry(0x40, 1));
        _ioApic.SetIrq(5, true);
        _ioApic.SetIrq(5, true);
        Assert.That(_cpu1.Received, Has.Count.EqualTo(1));
        Assert.That(_cpu0.Received, Is.Empty);
        var m = _cpu1.Received[0];
        Assert.That((m.Vector, m.Mode, m.LevelTriggered, m.LogicalDestination), Is.EqualTo(((byte)0x40, ApicDeliveryMode.Fixed, false, false)));
        _ioApic.SetIrq(5, false);
        _ioApic.SetIrq(5, true);
        Assert.That(_cpu1.Received, Has.Count.EqualTo(2));
        Assert.That(_ioApic.Deliveries, Is.EqualTo(2));
    }

    [Test]
    public void EdgeOnAMaskedPinIsLost()
    {
        Route(5, Entry(0x40, 0, masked: true));
        _ioApic.SetIrq(5, true);
        _ioApic.SetIrq(5, false);
        Route(5, Entry(0x40, 0));
        Assert.That(_cpu0.Received, Is.Empty);
    }

    [Test]
    public void LevelPinSetsRemoteIrrAndWaitsForTheEoi()
    {
        Route(9, Entry(0x51, 0, level: true));
        _ioApic.SetIrq(9, true);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(1));
        Assert.That(_cpu0.Received[0].LevelTriggered, Is.True);
        Assert.That(ReadReg(0x22) & (1u << 14), Is.Not.Zero, "remote IRR");
        _ioApic.SetIrq(9, false);
        _ioApic.SetIrq(9, true);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(1), "nothing more until the EOI");
        _bus.BroadcastEoi(0x51);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(2), "still asserted: sent again");
        _ioApic.SetIrq(9, false);
        _bus.BroadcastEoi(0x51);
        Assert.That(ReadReg(0x22) & (1u << 14), Is.Zero);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(2));
        Assert.That(_ioApic.Eois, Is.EqualTo(2));
    }

    [Test]
    public void EoiForAnotherVectorLeavesRemoteIrr()
    {
        Route(9, Entry(0x51, 0, level: true));
        _ioApic.SetIrq(9, true);
        _bus.BroadcastEoi(0x52);
        Assert.That(ReadReg(0x22) & (1u << 14), Is.Not.Zero);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(1));
    }

    [Test]
    public void EoiRegisterWorksLikeTheBroadcast()
    {
        Route(10, Entry(0x60, 0, level: true));
        _ioApic.SetIrq(10, true);
        _ioApic.Write(0x40, 4, 0x60);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(2));
    }

    [Test]
    public void UnmaskingAnAssertedLevelPinDelivers()
    {
        Route(11, Entry(0x70, 0, level: true, masked: true));
        _ioApic.SetIrq(11, true);
        Assert.That(_cpu0.Received, Is.Empty);
        Route(11, Entry(0x70, 0, level: true));
        Assert.That(_cpu0.Received, Has.Count.EqualTo(1));
    }

    [Test]
    public void RemoteIrrAndDeliveryStatusAreReadOnly()
    {
        Route(4, Entry(0x44, 0) | IoApic.RemoteIrr | IoApic.DeliveryStatus);
        Assert.That(ReadReg(0x18), Is.EqualTo(0x44u));
        Route(4, Entry(0x44, 0, level: true));
        _ioApic.SetIrq(4, true);
        Route(4, Entry(0x45, 0, level: true)); // rewriting keeps remote IRR
        Assert.That(ReadReg(0x18) & (1u << 14), Is.Not.Zero);
        Route(4, Entry(0x45, 0)); // edge: remote IRR cleared
        Assert.That(ReadReg(0x18) & (1u << 14), Is.Zero);
    }

    [Test]
    public void LogicalDestinationReachesEveryMatchingApic()
    {
        Route(6, Entry(0x48, 0x03, logical: true));
        _ioApic.SetIrq(6, true);
        Assert.That(_cpu0.Received, Has.Count.EqualTo(1));
        Assert.That(_cpu1.Received, Has.Count.EqualTo(1));
        Assert.That(_cpu1.Received[0].LogicalDestination, Is.True);
    }

    [Test]
    public void NmiDeliveryModeIsCarried()
    {
        Route(7, Entry(0, 0xFF, mode: 4));
        _ioApic.SetIrq(7, true);
        Assert.That(_cpu0.Received.Single().Mode, Is.EqualTo(ApicDeliveryMode.Nmi));
        Assert.That(_cpu1.Received.Single().Mode, Is.EqualTo(ApicDeliveryMode.Nmi), "physical broadcast");
    }

    [Test]
    public void NarrowWindowAccessesAreIgnored()
    {
        _ioApic.Write(0x00, 1, 0x01);
        Assert.That(_ioApic.Read(0x10, 1), Is.Zero);
        Assert.That(_ioApic.Read(0x10, 4), Is.EqualTo(0x0017_0020u), "a byte write to IOREGSEL works");
        _ioApic.Write(0x00, 4, 0x12);
        _ioApic.Write(0x10, 2, 0x0042);
        Assert.That(ReadReg(0x12), Is.EqualTo(0x0001_0000u));
    }

    [Test]
    public void PinsBeyondTwentyThreeAreIgnored()
    {
        _ioApic.SetIrq(24, true);
        _ioApic.SetIrq(-1, true);
        Assert.That(_ioApic.Deliveries, Is.Zero);
    }

    private sealed class FakeApic(uint id) : IApicTarget
    {
        public List<ApicMessage> Received { get; } = [];

        public uint ApicId => id;

        public bool X2ApicMode => false;

        public int ArbitrationPriority => 0;

        public bool TakesFixedInterrupts => true;

        /// <summary>Flat model: logical ID bit = 1 &lt;&lt; APIC ID.</summary>
        public bool MatchesLogical(uint destination) => (destination & (1u << (int)id)) != 0;

        public void Accept(in ApicMessage message) => Received.Add(message);
    }
}
