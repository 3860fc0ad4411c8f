namespace Emulator.Core.Devices.Apic;

/// <summary>
/// The I/O APIC at 0xFEC00000 as QEMU's pc machine presents it: version 0x20 (82093AA register layout plus
/// the EOI register at offset 0x40), 24 pins, ID 0. That is QEMU's own I/O APIC (TCG, or KVM with a split
/// irqchip); KVM's in-kernel one reads version 0x11 and has no EOI register. Since the local APICs do not report
/// EOI-broadcast suppression, a guest never needs the EOI register: the broadcast clears remote IRR either way. IOREGSEL (offset 0x00) selects a register that IOWIN
/// (offset 0x10) reads or writes. Each pin's redirection entry turns its input into an interrupt message on
/// the APIC bus: edge-triggered pins send on a rising edge when unmasked (edges on masked pins are lost, as
/// in QEMU); level-triggered pins send while asserted and remote IRR is clear, set remote IRR, and send again
/// after the EOI for their vector if still asserted. Input polarity is stored but, as in QEMU, not applied.
/// </summary>
public sealed class IoApic : IMmioDevice, IIrqSink
{
    public const ulong DefaultBase = 0xFEC0_0000;
    public const ulong Size = 0x1000;
    public const int Pins = 24;
    public const byte Version = 0x20;

    public const ulong RegisterSelect = 0x00, Window = 0x10, EoiRegister = 0x40;

    public const int IdRegister = 0x00, VersionRegister = 0x01, ArbitrationRegister = 0x02, RedirectionBase = 0x10;

    // Redirection entry fields (82093AA data sheet, "I/O Redirection Table Registers").
    public const ulong VectorMask = 0xFF;
    public const ulong LogicalDestination = 1UL << 11;
    public const ulong DeliveryStatus = 1UL << 12;
    public const ulong ActiveLow = 1UL << 13;
    public const ulong RemoteIrr = 1UL << 14;
    public const ulong LevelTriggered = 1UL << 15;
    public const ulong Masked = 1UL << 16;

    private const ulong ReadOnlyBits = DeliveryStatus | RemoteIrr;

    private readonly ApicBus _bus;
    private readonly ulong[] _redirection = new ulong[Pins];
    private uint _inputs;
    private uint _select;

    public IoApic(ApicBus bus)
    {
        _bus = bus;
        bus.OnEoi(Eoi);
        bus.OnAck(Ack);
        Reset();
    }

    /// <summary>I/O APIC ID (register 0 bits 27:24).</summary>
    public byte Id { get; private set; }

    /// <summary>Interrupt messages sent on the bus.</summary>
    public ulong Deliveries { get; private set; }

    /// <summary>EOIs (broadcast or through the EOI register) that cleared a remote IRR.</summary>
    public ulong Eois { get; private set; }

    public IReadOnlyList<(string Name, ulong Value)> Counters() =>
    [
        ("irq.ioapic.deliveries", Deliveries),
        ("irq.ioapic.eois", Eois),
    ];

    /// <summary>The redirection entry of <paramref name="pin"/> (for tests and diagnostics).</summary>
    public ulong Redirection(int pin) => _redirection[pin];

    /// <summary>Every entry masked and edge-triggered, ID 0, nothing selected.</summary>
    public void Reset()
    {
        Array.Fill(_redirection, Masked);
        Id = 0;
        _select = 0;
    }

    public ulong Read(ulong offset, int size)
    {
        if (offset == RegisterSelect)
        {
            return _select;
        }

        // IOWIN is a 32-bit register; narrower reads see nothing (QEMU).
        if (offset == Window && size == 4)
        {
            return ReadRegister(_select);
        }

        return 0;
    }

    public void Write(ulong offset, int size, ulong value)
    {
        switch (offset)
        {
            case RegisterSelect:
                _select = (uint)value & 0xFF;
                break;
            case Window when size == 4:
                WriteRegister(_select, (uint)value);
                break;
            case EoiRegister:
                Eoi((byte)value);
                break;
        }
    }

    public void SetIrq(int line, bool level)
    {
        if ((uint)line >= Pins)
        {
            return;
        }

        uint bit = 1u << line;
        bool was = (_inputs & bit) != 0;
        _inputs = level ? _inputs | bit : _inputs & ~bit;
        ulong entry = _redirection[line];
        if ((entry & LevelTriggered) != 0)
        {
            if (level)
            {
                Service(line);
            }
        }
        else if (level && !was && (entry & Masked) == 0)
        {
            Send(line, entry);
        }
    }

    private uint ReadRegister(uint index)
    {
        switch (index)
        {
            case IdRegister:
            case ArbitrationRegister:
                return (uint)(Id & 0xF) << 24;
            case VersionRegister:
                return Version | ((uint)(Pins - 1) << 16);
        }

        int pin = (int)(index - RedirectionBase) >> 1;
        if (index < RedirectionBase || pin >= Pins)
        {
            return 0;
        }

        ulong entry = _redirection[pin];
        return (index & 1) == 0 ? (uint)entry : (uint)(entry >> 32);
    }

    private void WriteRegister(uint index, uint value)
    {
        if (index == IdRegister)
        {
            Id = (byte)((value >> 24) & 0xF);
            return;
        }

        int pin = (int)(index - RedirectionBase) >> 1;
        if (index < RedirectionBase || pin >= Pins)
        {
            return;
        }

        ulong entry = _redirection[pin];
        if ((index & 1) != 0)
        {
            entry = (entry & 0xFFFF_FFFFUL) | ((ulong)value << 32);
        }
        else
        {
            entry = (entry & (0xFFFF_FFFF_0000_0000UL | ReadOnlyBits)) | (value & ~ReadOnlyBits & 0xFFFF_FFFFUL);
            if ((entry & LevelTriggered) == 0)
            {
                // Remote IRR means nothing for an edge-triggered pin.
                entry &= ~RemoteIrr;
            }
        }

        _redirection[pin] = entry;

        // Unmasking (or switching to level) with the input asserted delivers now.
        if ((entry & LevelTriggered) != 0)
        {
            Service(pin);
        }
    }

    /// <summary>A level-triggered pin: sends if asserted, unmasked and not waiting for an EOI.</summary>
    private void Service(int pin)
    {
        ulong entry = _redirection[pin];
        if ((entry & (Masked | RemoteIrr)) != 0 || (_inputs & (1u << pin)) == 0)
        {
            return;
        }

        _redirection[pin] = entry | RemoteIrr;
        Send(pin, entry);
    }

    private void Send(int pin, ulong entry)
    {
        var mode = (ApicDeliveryMode)((entry >> 8) & 7);
        if ((int)mode is 3 or 6)
        {
            return; // reserved delivery modes
        }

        Deliveries++;
        _bus.Deliver(new ApicMessage(
            (byte)(entry & VectorMask),
            mode,
            (entry & LogicalDestination) != 0,
            (uint)(entry >> 56),
            ApicShorthand.None,
            (entry & LevelTriggered) != 0));
    }

    /// <summary>Called with every pin whose vector a local APIC acknowledged (edge or level, masked or not, as KVM's ack notifiers).</summary>
    public Action<int>? PinAcked { get; set; }

    private void Ack(byte vector)
    {
        if (PinAcked is not { } acked)
        {
            return;
        }

        for (int pin = 0; pin < Pins; pin++)
        {
            if ((byte)(_redirection[pin] & VectorMask) == vector)
            {
                acked(pin);
            }
        }
    }

    /// <summary>EOI for <paramref name="vector"/>: clears remote IRR of the entries using it and re-sends any still asserted.</summary>
    private void Eoi(byte vector)
    {
        for (int pin = 0; pin < Pins; pin++)
        {
            ulong entry = _redirection[pin];
            if ((entry & RemoteIrr) == 0 || (byte)(entry & VectorMask) != vector)
            {
                continue;
            }

            Eois++;
            _redirection[pin] = entry & ~RemoteIrr;
            Service(pin);
        }
    }
}
