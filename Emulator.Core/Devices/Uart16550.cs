namespace Emulator.Core.Devices;

/// <summary>
/// A 16550A UART as QEMU's "serial" device shows it to a guest (COM1 at 0x3F8, IRQ4). Transmission is
/// instantaneous: LSR always reports THR empty and transmitter empty, and a byte written to THR goes
/// straight to the console sink (or, in loopback mode, back into the receiver). Register map and
/// interrupt priorities: National Semiconductor PC16550D datasheet, Table II and Table IV.
/// </summary>
public sealed class Uart16550 : IPortDevice
{
    public const ushort Com1Base = 0x3F8;
    public const int Com1Irq = 4;

    // Register offsets.
    public const ushort Data = 0, Ier = 1, Iir = 2, Fcr = 2, Lcr = 3, Mcr = 4, Lsr = 5, Msr = 6, Scr = 7;

    // Bits.
    public const byte LcrDlab = 0x80;
    public const byte IerRxData = 0x01, IerThrEmpty = 0x02, IerLineStatus = 0x04, IerModemStatus = 0x08;
    public const byte IirNoInterrupt = 0x01, IirThrEmpty = 0x02, IirRxData = 0x04, IirFifoEnabled = 0xC0;
    public const byte LsrDataReady = 0x01, LsrThrEmpty = 0x20, LsrTxEmpty = 0x40;
    public const byte McrDtr = 0x01, McrRts = 0x02, McrOut1 = 0x04, McrOut2 = 0x08, McrLoop = 0x10;
    public const byte MsrCts = 0x10, MsrDsr = 0x20, MsrRi = 0x40, MsrDcd = 0x80;

    private readonly ConsoleSink _sink;
    private readonly Queue<byte> _rx = new();
    private byte _ier, _lcr, _mcr = McrOut2, _scr, _fcr;
    private ushort _divisor = 12; // 9600 baud from the 1.8432 MHz clock
    private bool _thrPending;
    private bool _irq;

    public Uart16550(ConsoleSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
    }

    /// <summary>The level of the UART's interrupt output (IRQ4 for COM1), for the PIC/IOAPIC.</summary>
    public bool IrqLevel => _irq;

    /// <summary>Called when <see cref="IrqLevel"/> changes.</summary>
    public Action<bool>? IrqChanged { get; set; }

    public ushort Divisor => _divisor;

    public byte LineControl => _lcr;

    /// <summary>Queues a byte for the guest to read from RBR (host keyboard input, tests).</summary>
    public void Receive(byte b)
    {
        _rx.Enqueue(b);
        UpdateIrq();
    }

    public uint In(ushort offset, int size)
    {
        byte v = offset switch
        {
            Data => (_lcr & LcrDlab) != 0 ? (byte)_divisor : ReadRbr(),
            Ier => (_lcr & LcrDlab) != 0 ? (byte)(_divisor >> 8) : _ier,
            Iir => ReadIir(),
            Lcr => _lcr,
            Mcr => _mcr,
            Lsr => (byte)(LsrThrEmpty | LsrTxEmpty | (_rx.Count > 0 ? LsrDataReady : 0)),
            Msr => ModemStatus(),
            Scr => _scr,
            _ => 0xFF,
        };
        return v;
    }

    public void Out(ushort offset, int size, uint value)
    {
        byte v = (byte)value;
        switch (offset)
        {
            case Data:
                if ((_lcr & LcrDlab) != 0)
                {
                    _divisor = (ushort)((_divisor & 0xFF00) | v);
                }
                else
                {
                    Transmit(v);
                }

                break;
            case Ier:
                if ((_lcr & LcrDlab) != 0)
                {
                    _divisor = (ushort)((_divisor & 0x00FF) | (v << 8));
                }
                else
                {
                    // Enabling the THR-empty interrupt while THR is empty raises it at once (the THR is
                    // always empty here).
                    if ((v & IerThrEmpty) != 0 && (_ier & IerThrEmpty) == 0)
                    {
                        _thrPending = true;
                    }

                    _ier = (byte)(v & 0x0F);
                    UpdateIrq();
                }

                break;
            case Fcr:
                _fcr = (byte)(v & 0xC9);
                if ((v & 0x02) != 0)
                {
                    _rx.Clear();
                }

                UpdateIrq();
                break;
            case Lcr:
                _lcr = v;
                break;
            case Mcr:
                _mcr = (byte)(v & 0x1F);
                break;
            case Scr:
                _scr = v;
                break;
        }
    }

    private void Transmit(byte b)
    {
        if ((_mcr & McrLoop) != 0)
        {
            _rx.Enqueue(b);
        }
        else
        {
            _sink.Put(b);
        }

        // The byte left THR at once, so THR is empty again: a THRE interrupt is due if enabled.
        _thrPending = true;
        UpdateIrq();
    }

    private byte ReadRbr()
    {
        byte b = _rx.Count > 0 ? _rx.Dequeue() : (byte)0;
        UpdateIrq();
        return b;
    }

    private byte ReadIir()
    {
        byte iir = CurrentIir();
        if ((iir & 0x0F) == IirThrEmpty)
        {
            // Reading IIR while it reports THR empty clears that interrupt (datasheet Table IV).
            _thrPending = false;
            UpdateIrq();
        }

        return (byte)(iir | ((_fcr & 0x01) != 0 ? IirFifoEnabled : 0));
    }

    private byte CurrentIir()
    {
        if ((_ier & IerRxData) != 0 && _rx.Count > 0)
        {
            return IirRxData;
        }

        if ((_ier & IerThrEmpty) != 0 && _thrPending)
        {
            return IirThrEmpty;
        }

        return IirNoInterrupt;
    }

    private byte ModemStatus()
    {
        if ((_mcr & McrLoop) == 0)
        {
            // No modem attached: carrier, data-set-ready and clear-to-send asserted, as QEMU reports.
            return MsrDcd | MsrDsr | MsrCts;
        }

        // Loopback: the outputs of MCR appear on the modem-status inputs.
        int m = _mcr;
        return (byte)(((m & McrRts) != 0 ? MsrCts : 0) | ((m & McrDtr) != 0 ? MsrDsr : 0)
            | ((m & McrOut1) != 0 ? MsrRi : 0) | ((m & McrOut2) != 0 ? MsrDcd : 0));
    }

    private void UpdateIrq()
    {
        bool level = CurrentIir() != IirNoInterrupt;
        if (level != _irq)
        {
            _irq = level;
            IrqChanged?.Invoke(level);
        }
    }
}
