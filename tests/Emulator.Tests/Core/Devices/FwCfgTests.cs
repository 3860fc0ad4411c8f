using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Devices;
using Emulator.Core.Loaders;

namespace Emulator.Tests.Core.Devices;

/// <summary>fw_cfg through its legacy ports, as a guest driver reads it (select with a 16-bit write, then read bytes).</summary>
public class FwCfgTests
{
    private static readonly MemoryRange[] Map =
    [
        new(0, 0xA0000, MemoryType.Ram),
        new(0xA0000, 0x60000, MemoryType.Reserved),
        new(0x100000, 0x3FF00000, MemoryType.Ram),
    ];

    private FwCfg _fw = null!;

    [SetUp]
    public void SetUp() => _fw = new FwCfg(1UL << 30, 1, 1, Map);

    private byte[] Read(ushort key, int length)
    {
        _fw.Out(FwCfg.Selector, 2, key);
        var b = new byte[length];
        for (int i = 0; i < length; i++)
        {
            b[i] = (byte)_fw.In(FwCfg.DataPort, 1);
        }

        return b;
    }

    [Test]
    public void SignatureIsQemu() => Assert.That(Encoding.ASCII.GetString(Read(0x0000, 4)), Is.EqualTo("QEMU"));

    [Test]
    public void IdSaysTraditionalInterfaceOnly() => Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(Read(0x0001, 4)), Is.EqualTo(1));

    [Test]
    public void RamSizeIs64BitLittleEndian() => Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(Read(0x0003, 8)), Is.EqualTo(1UL << 30));

    [Test]
    public void CpuCountsAre16Bit()
    {
        var fw = new FwCfg(1UL << 30, 3, 8, Map);
        fw.Out(FwCfg.Selector, 2, 0x0005);
        Assert.That(fw.In(FwCfg.DataPort, 1) | (fw.In(FwCfg.DataPort, 1) << 8), Is.EqualTo(3));
        fw.Out(FwCfg.Selector, 2, 0x000F);
        Assert.That(fw.In(FwCfg.DataPort, 1) | (fw.In(FwCfg.DataPort, 1) << 8), Is.EqualTo(8));
    }

    [Test]
    public void UnknownKeysAndReadsPastTheEndGiveZero()
    {
        Assert.That(Read(0x1234, 16), Is.All.Zero);
        Assert.That(Read(0x0000, 8)[4..], Is.All.Zero);
    }

    [Test]
    public void SelectingAgainRewindsTheItem()
    {
        Read(0x0000, 2);
        Assert.That(Encoding.ASCII.GetString(Read(0x0000, 4)), Is.EqualTo("QEMU"));
    }

    [Test]
    public void WideDataReadsTakeOneByteAndTheUndecodedPortsAfterIt()
    {
        _fw.Out(FwCfg.Selector, 2, 0x0000);
        Assert.That(_fw.In(FwCfg.DataPort, 4), Is.EqualTo(0xFFFF_FF00 | 'Q'));
        Assert.That(_fw.In(FwCfg.DataPort, 2), Is.EqualTo(0xFF00 | 'E'));
        Assert.That(_fw.In(FwCfg.DataPort, 1), Is.EqualTo((uint)'M'), "only one byte was consumed per read");
    }

    [Test]
    public void TheSelectorPortReadsDataBytesButRefusesWiderReads()
    {
        _fw.Out(FwCfg.Selector, 2, 0x0000);
        Assert.That(_fw.In(FwCfg.Selector, 2), Is.Zero);
        Assert.That(_fw.In(FwCfg.Selector, 4), Is.Zero);
        Assert.That(_fw.In(FwCfg.Selector, 1), Is.EqualTo((uint)'Q'), "refused reads consume nothing");
    }

    [Test]
    public void OnlyAWordWriteToTheSelectorSelects()
    {
        _fw.Out(FwCfg.Selector, 2, FwCfg.KeyNbCpus);
        _fw.Out(FwCfg.Selector, 1, FwCfg.KeySignature);
        _fw.Out(FwCfg.Selector, 4, FwCfg.KeySignature);
        _fw.Out(FwCfg.DataPort, 2, FwCfg.KeySignature);
        Assert.That(_fw.CurrentKey, Is.EqualTo(FwCfg.KeyNbCpus));
        Assert.That(_fw.In(FwCfg.DataPort, 1), Is.EqualTo(1));
    }

    [Test]
    public void TheSignatureIsSelectedAtReset()
    {
        var fw = new FwCfg(1UL << 30, 1, 1, Map);
        Assert.That(new[] { fw.In(FwCfg.DataPort, 1), fw.In(FwCfg.DataPort, 1) }, Is.EqualTo(new uint[] { 'Q', 'E' }));
    }

    [Test]
    public void TheWriteChannelBitSelectsTheSameItem() =>
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(Read(FwCfg.KeyWriteChannel | FwCfg.KeyNbCpus, 2)), Is.EqualTo(1));

    [Test]
    public void Irq0OverrideIsReported() =>
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(Read(FwCfg.KeyIrq0Override, 4)), Is.EqualTo(1));

    [Test]
    public void DataPortWritesChangeNothing()
    {
        _fw.Out(FwCfg.Selector, 2, 0x0000);
        _fw.Out(FwCfg.DataPort, 1, 'X');
        Assert.That(Encoding.ASCII.GetString(Read(0x0000, 4)), Is.EqualTo("QEMU"));
    }

    [Test]
    public void TheDirectoryIsSortedByNameAndKeysFollowTheOrder()
    {
        ushort z = _fw.AddFile("zz/last", [9]);
        ushort a = _fw.AddFile("aa/first", [7, 7]);
        Assert.That(a, Is.EqualTo(FwCfg.FirstFileKey));
        Assert.That(_fw.KeyOf("aa/first"), Is.EqualTo(FwCfg.FirstFileKey));
        Assert.That(_fw.KeyOf("etc/e820"), Is.EqualTo(FwCfg.FirstFileKey + 1));
        Assert.That(_fw.KeyOf("zz/last"), Is.EqualTo(FwCfg.FirstFileKey + 2), $"moved from 0x{z:X}");
        var dir = Read(FwCfg.KeyFileDir, 4 + (3 * 64));
        var names = Enumerable.Range(0, 3).Select(i => Encoding.ASCII.GetString(dir, 4 + (64 * i) + 8, 56).TrimEnd('\0')).ToArray();
        var keys = Enumerable.Range(0, 3).Select(i => BinaryPrimitives.ReadUInt16BigEndian(dir.AsSpan(4 + (64 * i) + 4))).ToArray();
        Assert.That(names, Is.EqualTo(new[] { "aa/first", "etc/e820", "zz/last" }));
        Assert.That(keys, Is.EqualTo(new ushort[] { 0x20, 0x21, 0x22 }));
        Assert.That(Read(0x22, 2), Is.EqualTo(new byte[] { 9, 0 }));
        Assert.Throws<ArgumentException>(() => _fw.AddFile("aa/first", []));
    }

    [Test]
    public void FileDirectoryListsE820AndItsContentIsTheRamMap()
    {
        var count = BinaryPrimitives.ReadUInt32BigEndian(Read(0x0019, 4));
        Assert.That(count, Is.GreaterThanOrEqualTo(1));
        var dir = Read(0x0019, 4 + (64 * (int)count));
        ushort select = 0;
        uint size = 0;
        for (int i = 0; i < count; i++)
        {
            var e = dir.AsSpan(4 + (64 * i), 64);
            string name = Encoding.ASCII.GetString(e[8..]).TrimEnd('\0');
            if (name == "etc/e820")
            {
                size = BinaryPrimitives.ReadUInt32BigEndian(e);
                select = BinaryPrimitives.ReadUInt16BigEndian(e[4..]);
            }
        }

        Assert.That(select, Is.Not.Zero, "etc/e820 is listed");
        Assert.That(size, Is.EqualTo(20 * Map.Length));
        var table = Read(select, (int)size);
        for (int i = 0; i < Map.Length; i++)
        {
            var e = table.AsSpan(20 * i);
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(e), Is.EqualTo(Map[i].Base));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(e[8..]), Is.EqualTo(Map[i].Length));
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(e[16..]), Is.EqualTo((uint)Map[i].Type));
        }
    }

    [Test]
    public void AddedFilesGetTheirOwnSelector()
    {
        ushort key = _fw.AddFile("opt/test", [1, 2, 3]);
        Assert.That(Read(key, 4), Is.EqualTo(new byte[] { 1, 2, 3, 0 }));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(Read(0x0019, 4)), Is.EqualTo(2));
    }
}
