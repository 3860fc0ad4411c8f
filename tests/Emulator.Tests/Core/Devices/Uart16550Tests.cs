using Emulator.Core.Devices;

namespace Emulator.Tests.Core.Devices;

/// <summary>16550A register behaviour (PC16550D datasheet, Tables II and IV) as a guest driver sees it.</summary>
public class Uart16550Tests
{
    private MemoryStream _out = null!;
    private Uart16550 _uart = null!;

    [SetUp]
    public void SetUp()
    {
        _out = new MemoryStream();
        _uart = new Uart16550(new ConsoleSink(_out));
    }

    [TearDown]
    public void TearDown() => _out.Dispose();

    private byte In(ushort reg) => (byte)_uart.In(reg, 1);

    private void Out(ushort reg, byte v) => _uart.Out(reg, 1, v);

    [Test]
    public void ResetStateReportsAnIdleTransmitterAndNoInterrupt()
    {
        Assert.That(In(Uart16550.Lsr), Is.EqualTo(0x60), "THRE | TEMT");
        Assert.That(In(Uart16550.Iir), Is.EqualTo(0x01), "no interrupt pending");
        Assert.That(In(Uart16550.Ier), Is.Zero);
        Assert.That(In(Uart16550.Msr), Is.EqualTo(0xB0), "DCD | DSR | CTS");
        Assert.That(_uart.IrqLevel, Is.False);
    }

    [Test]
    public void BytesWrittenToThrReachTheSinkUnchanged()
    {
        foreach (byte b in "ok\r\n"u8)
        {
            Out(Uart16550.Data, b);
        }

        Assert.That(_out.ToArray(), Is.EqualTo("ok\r\n"u8.ToArray()));
        Assert.That(In(Uart16550.Lsr) & 0x60, Is.EqualTo(0x60), "still empty after a write");
    }

    [Test]
    public void DlabSelectsTheDivisorLatchInsteadOfThrAndIer()
    {
        Out(Uart16550.Lcr, 0x83);
        Out(Uart16550.Data, 0x01);
        Out(Uart16550.Ier, 0x02);
        Assert.That(In(Uart16550.Data), Is.EqualTo(0x01));
        Assert.That(In(Uart16550.Ier), Is.EqualTo(0x02));
        Assert.That(_uart.Divisor, Is.EqualTo(0x0201));
        Assert.That(_out.Length, Is.Zero, "divisor writes are not output");

        Out(Uart16550.Lcr, 0x03);
        Assert.That(In(Uart16550.Ier), Is.Zero, "IER was not written while DLAB was set");
        Assert.That(In(Uart16550.Lcr), Is.EqualTo(0x03));
    }

    [Test]
    public void ScratchRegisterHoldsAnyByte()
    {
        Out(Uart16550.Scr, 0xA5);
        Assert.That(In(Uart16550.Scr), Is.EqualTo(0xA5));
    }

    [Test]
    public void FifoEnableShowsInIirHighBits()
    {
        Out(Uart16550.Fcr, 0xC7);
        Assert.That(In(Uart16550.Iir), Is.EqualTo(0xC1));
    }

    [Test]
    public void EnablingThrEmptyInterruptRaisesItUntilIirIsRead()
    {
        var levels = new List<bool>();
        _uart.IrqChanged = levels.Add;
        Out(Uart16550.Ier, Uart16550.IerThrEmpty);
        Assert.That(_uart.IrqLevel, Is.True);
        Assert.That(In(Uart16550.Iir), Is.EqualTo(0x02), "THR empty");
        Assert.That(_uart.IrqLevel, Is.False, "reading IIR acknowledged it");
        Assert.That(In(Uart16550.Iir), Is.EqualTo(0x01));

        Out(Uart16550.Data, (byte)'x');
        Assert.That(_uart.IrqLevel, Is.True, "THR emptied again after the byte left");
        Assert.That(levels, Is.EqualTo(new[] { true, false, true }));
    }

    [Test]
    public void ReceivedDataSetsDataReadyAndTakesPriorityOverThrEmpty()
    {
        Out(Uart16550.Ier, Uart16550.IerRxData | Uart16550.IerThrEmpty);
        _uart.Receive((byte)'k');
        Assert.That(In(Uart16550.Lsr) & 0x01, Is.EqualTo(0x01));
        Assert.That(In(Uart16550.Iir), Is.EqualTo(0x04), "received data available");
        Assert.That(In(Uart16550.Data), Is.EqualTo((byte)'k'));
        Assert.That(In(Uart16550.Lsr) & 0x01, Is.Zero);
        Assert.That(In(Uart16550.Iir), Is.EqualTo(0x02), "then THR empty");
    }

    [Test]
    public void LoopbackSendsBytesToTheReceiverAndMirrorsModemControl()
    {
        Out(Uart16550.Mcr, Uart16550.McrLoop | Uart16550.McrDtr | Uart16550.McrOut2);
        Out(Uart16550.Data, 0x5A);
        Assert.That(_out.Length, Is.Zero);
        Assert.That(In(Uart16550.Data), Is.EqualTo(0x5A));
        Assert.That(In(Uart16550.Msr), Is.EqualTo(Uart16550.MsrDsr | Uart16550.MsrDcd));
    }

    [Test]
    public void IrqLineFollowsIerWithoutOut2AsOnQemu()
    {
        Out(Uart16550.Mcr, 0);
        Out(Uart16550.Ier, Uart16550.IerThrEmpty);
        Assert.That(_uart.IrqLevel, Is.True);
        Out(Uart16550.Ier, 0);
        Assert.That(_uart.IrqLevel, Is.False);
    }
}
