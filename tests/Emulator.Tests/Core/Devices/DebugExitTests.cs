using Emulator.Core.Devices;

namespace Emulator.Tests.Core.Devices;

public class DebugExitTests
{
    // QEMU's isa-debug-exit exits with (value << 1) | 1; the shell sees the low 8 bits.
    [TestCase(0u, 1)]
    [TestCase(1u, 3)]
    [TestCase(38u, 77)]
    [TestCase(0x7Fu, 0xFF)]
    public void WriteEndsTheRunWithTheShiftedStatus(uint value, int status)
    {
        var seen = new List<int>();
        var dev = new DebugExit(seen.Add);
        dev.Out(0, 4, value);
        Assert.That(seen, Is.EqualTo(new[] { status }));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    public void AnyWidthEndsTheRun(int size)
    {
        var seen = new List<int>();
        new DebugExit(seen.Add).Out(0, size, 0);
        Assert.That(seen, Is.EqualTo(new[] { 1 }));
    }

    private static List<int> Shutdown(string bytes)
    {
        var seen = new List<int>();
        var dev = new BochsShutdown(seen.Add);
        foreach (char ch in bytes)
        {
            dev.Out(0, 1, ch);
        }

        return seen;
    }

    [TestCase("Shutdown", 1)]
    [TestCase("SShutdown", 1)]
    [TestCase("xxShutdownShutdown", 2)]
    [TestCase("Shutdow", 0)]
    [TestCase("ShutXdown", 0)]
    [TestCase("shutdown", 0)]
    public void BochsShutdownStopsOnTheWholeWord(string bytes, int stops)
    {
        var seen = Shutdown(bytes);
        Assert.That(seen, Has.Count.EqualTo(stops));
        Assert.That(seen, Is.All.Zero);
    }

    [Test]
    public void DebugConsolePrintsBytesAsIsAndReadsBackE9()
    {
        using var ms = new MemoryStream();
        var con = new DebugConsole(new ConsoleSink(ms));
        foreach (byte b in "a\rb\n"u8)
        {
            con.Out(0, 1, b);
        }

        Assert.That(ms.ToArray(), Is.EqualTo("a\rb\n"u8.ToArray()));
        Assert.That(con.In(0, 1), Is.EqualTo(0xE9));
    }
}
