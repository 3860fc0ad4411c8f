using Emulator.Core.Devices;
using Emulator.Core.Memory;

namespace Emulator.Tests.Core.Devices;

/// <summary>pc-testdev reached through the real buses, at the ports and addresses test kernels use.</summary>
public class PcTestDevTests
{
    private PhysicalMemory _mem = null!;
    private PcTestDev _dev = null!;
    private MemoryStream _console = null!;

    [SetUp]
    public void SetUp()
    {
        _mem = PhysicalMemory.Create(16 << 20);
        _console = new MemoryStream();
        _dev = new PcTestDev(new DebugConsole(new ConsoleSink(_console)));
        _dev.Attach(_mem.Io, _mem.Mmio);
    }

    [TearDown]
    public void TearDown()
    {
        _mem.Dispose();
        _console.Dispose();
    }

    [TestCase(0xE0, 4, 0x12345678u, 0xE0, 4, 0x12345678u)]
    [TestCase(0xE0, 4, 0x12345678u, 0xE2, 2, 0x1234u)]
    [TestCase(0xE0, 4, 0x12345678u, 0xE3, 1, 0x12u)]
    [TestCase(0xE0, 4, 0x12345678u, 0xE8, 1, 0x78u)]
    [TestCase(0xE0, 4, 0x12345678u, 0xEA, 2, 0x1234u)]
    [TestCase(0xE0, 4, 0x12345678u, 0xE3, 2, 0x12u)]
    public void ScratchRegisterHasByteLanesByPortOffset(int wport, int wsize, uint value, int rport, int rsize, uint expected)
    {
        _mem.Io.Out((ushort)wport, wsize, value);
        Assert.That(_mem.Io.In((ushort)rport, rsize), Is.EqualTo(expected));
    }

    [Test]
    public void NarrowWritesMergeIntoTheRegister()
    {
        _mem.Io.Out(0xE0, 4, 0xAABBCCDD);
        _mem.Io.Out(0xE1, 1, 0x11);
        _mem.Io.Out(0xEB, 1, 0x22);
        Assert.That(_mem.Io.In(0xE0, 4), Is.EqualTo(0x22BB11DD));
    }

    [Test]
    public void ByteWritesToE9PrintAndReadBackTheConsoleSignature()
    {
        _mem.Io.Out(0xE9, 1, 'h');
        _mem.Io.Out(0xE9, 1, 'i');
        Assert.That(_console.ToArray(), Is.EqualTo("hi"u8.ToArray()));
        Assert.That(_mem.Io.In(0xE9, 1), Is.EqualTo(0xE9));
    }

    [Test]
    public void FlushPageAcceptsWritesWithoutEffect()
    {
        _mem.Io.Out(0xE0, 4, 7);
        _mem.Io.Out(0xE4, 4, 0x1000);
        Assert.That(_mem.Io.In(0xE0, 4), Is.EqualTo(7));
        Assert.That(_mem.Io.UnhandledAccesses, Is.Zero);
    }

    [Test]
    public void IrqPortsSetAndClearLines()
    {
        var changes = new List<(int, bool)>();
        _dev.IrqChanged = (line, level) => changes.Add((line, level));
        _mem.Io.Out(0x2000 + 10, 1, 1);
        _mem.Io.Out(0x2000 + 23, 1, 0xFF);
        Assert.That(_dev.IrqLevels[10], Is.True);
        Assert.That(_dev.IrqLevels[23], Is.True);
        _mem.Io.Out(0x2000 + 10, 1, 0);
        Assert.That(_dev.IrqLevels[10], Is.False);
        Assert.That(changes, Is.EqualTo(new[] { (10, true), (23, true), (10, false) }));
    }

    [TestCase(1, 0xABUL)]
    [TestCase(2, 0xABCDUL)]
    [TestCase(4, 0xDEADBEEFUL)]
    [TestCase(8, 0x0123456789ABCDEFUL)]
    public void MemoryWindowIsStorageBehindMmio(int size, ulong value)
    {
        ulong before = _mem.MmioAccesses;
        _mem.Write(0xFF000000 + 0x100, size, value);
        Assert.That(_mem.Read(0xFF000000 + 0x100, size), Is.EqualTo(value));
        Assert.That(_mem.Read(0xFF00FFFF, 1), Is.Zero);
        Assert.That(_mem.MmioAccesses - before, Is.EqualTo(3));
    }

    [Test]
    public void MemoryWindowEndsAt64KiB() => Assert.That(_mem.Read(0xFF010000, 4), Is.EqualTo(0xFFFFFFFF));
}
