using Emulator.Core.Devices;

namespace Emulator.Tests.Core.Devices;

/// <summary>PCI configuration mechanism #1 through the port offsets of 0xCF8–0xCFF.</summary>
public class PciHostTests
{
    private const ushort Address = 0, Rcr = 1, Data = 4;

    private int _resets;
    private PciHost _pci = null!;

    [SetUp]
    public void SetUp()
    {
        _resets = 0;
        _pci = new PciHost(1UL << 30, () => _resets++);
    }

    private static uint ConfigAddress(int bus, int device, int function, int register) =>
        PciHost.AddressEnable | ((uint)bus << 16) | ((uint)device << 11) | ((uint)function << 8) | (uint)register;

    private uint Read(int bus, int device, int function, int register, int size = 4)
    {
        _pci.Out(Address, 4, ConfigAddress(bus, device, function, register & ~3));
        return _pci.In((ushort)(Data + (register & 3)), size);
    }

    private void Write(int register, uint value, int size = 4)
    {
        _pci.Out(Address, 4, ConfigAddress(0, 0, 0, register & ~3));
        _pci.Out((ushort)(Data + (register & 3)), size, value);
    }

    [Test]
    public void HostBridgeIdentifiesAsTheI440fx()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Read(0, 0, 0, 0x00), Is.EqualTo(0x1237_8086), "device, vendor");
            Assert.That(Read(0, 0, 0, 0x08), Is.EqualTo(0x0600_0002), "class 06/00/00, revision 2");
            Assert.That(Read(0, 0, 0, 0x0E, 1), Is.Zero, "header type 0, single function");
            Assert.That(Read(0, 0, 0, 0x2C), Is.EqualTo(0x1100_1AF4), "QEMU's subsystem IDs");
            Assert.That(Read(0, 0, 0, 0x04), Is.Zero, "command and status");
            Assert.That(Read(0, 0, 0, 0x10), Is.Zero, "no BARs");
            Assert.That(Read(0, 0, 0, 0x57, 1), Is.EqualTo(128), "RAM in 8 MiB units");
            Assert.That(Read(0, 0, 0, 0x72, 1), Is.EqualTo(2), "SMRAM");
        });
    }

    [Test]
    public void DataLanesReadBytesAndWordsOfTheSelectedDword()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Read(0, 0, 0, 0x00, 1), Is.EqualTo(0x86));
            Assert.That(Read(0, 0, 0, 0x01, 1), Is.EqualTo(0x80));
            Assert.That(Read(0, 0, 0, 0x02, 2), Is.EqualTo(0x1237));
            Assert.That(Read(0, 0, 0, 0x03, 1), Is.EqualTo(0x12));
            Assert.That(Read(0, 0, 0, 0x0B, 1), Is.EqualTo(0x06));
        });
    }

    [TestCase(0, 1, 0)]
    [TestCase(0, 0, 1)]
    [TestCase(1, 0, 0)]
    [TestCase(0, 31, 7)]
    public void AbsentFunctionsReadAllOnes(int bus, int device, int function)
    {
        Assert.That(Read(bus, device, function, 0), Is.EqualTo(0xFFFF_FFFF));
        Assert.That(Read(bus, device, function, 2, 2), Is.EqualTo(0xFFFF));
        Assert.That(Read(bus, device, function, 3, 1), Is.EqualTo(0xFF));
    }

    [Test]
    public void DataReadsAllOnesWhenTheEnableBitIsClear()
    {
        _pci.Out(Address, 4, 0x0000_0000);
        Assert.That(_pci.In(Data, 4), Is.EqualTo(0xFFFF_FFFF));
        Assert.That(_pci.In(Data + 2, 2), Is.EqualTo(0xFFFF));
    }

    [Test]
    public void ConfigAddressTakesOnlyDwordWritesAndReadsBack()
    {
        _pci.Out(Address, 4, 0x8000_1234);
        Assert.That(_pci.In(Address, 4), Is.EqualTo(0x8000_1234));
        _pci.Out(Address, 2, 0xFFFF);
        _pci.Out(Address, 1, 0xFF);
        Assert.That(_pci.In(Address, 4), Is.EqualTo(0x8000_1234), "narrow writes are ignored");
        Assert.That(_pci.In(Address, 1), Is.EqualTo(0x34));
    }

    [Test]
    public void ReadOnlyFieldsIgnoreWritesAndWritableOnesKeepTheirBits()
    {
        Write(0x00, 0xFFFF_FFFF);
        Write(0x08, 0xFFFF_FFFF);
        Assert.That(Read(0, 0, 0, 0x00), Is.EqualTo(0x1237_8086));
        Assert.That(Read(0, 0, 0, 0x08), Is.EqualTo(0x0600_0002));

        Write(0x04, 0xFFFF_FFFF);
        Assert.That(Read(0, 0, 0, 0x04), Is.EqualTo(0x0000_0507), "command: I/O, memory, master, SERR#, INTx disable");
        Write(0x0C, 0xFFFF_FFFF);
        Assert.That(Read(0, 0, 0, 0x0C), Is.EqualTo(0x0000_00FF), "cache line size only; latency timer and header type fixed");
        Write(0x59, 0x33, 1);
        Assert.That(Read(0, 0, 0, 0x59, 1), Is.EqualTo(0x33), "device-specific registers are kept");
    }

    [Test]
    public void WritesToAbsentFunctionsGoNowhere()
    {
        _pci.Out(Address, 4, ConfigAddress(0, 1, 0, 0x40));
        _pci.Out(Data, 4, 0x1234_5678);
        Assert.That(Read(0, 0, 0, 0x40), Is.Zero);
    }

    [Test]
    public void ResetControlRequestsAResetOnlyWithBit2()
    {
        _pci.Out(Rcr, 1, 0x0A);
        Assert.That(_pci.In(Rcr, 1), Is.EqualTo(0x02), "only the system-reset bit is kept");
        Assert.That(_resets, Is.Zero);
        _pci.Out(Rcr, 1, 0x06);
        Assert.That(_resets, Is.EqualTo(1));
        Assert.That(_pci.In(Address, 4), Is.Zero, "the reset control port is not CONFIG_ADDRESS");
    }
}
