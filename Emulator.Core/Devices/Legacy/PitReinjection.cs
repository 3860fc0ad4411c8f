namespace Emulator.Core.Devices.Legacy;

/// <summary>
/// KVM's in-kernel PIT in reinject mode (the default of its PIT, which QEMU keeps for <c>lost_tick_policy=delay</c>;
/// <c>discard</c> turns it off): channel 0 ticks reach IRQ 0 as pulses, one at a time. A tick that comes while the
/// previous one is not yet acknowledged (EOI at the 8259 for IR0, or at a local APIC for the vector of I/O APIC pin 2)
/// is kept pending instead of merging into the interrupt already requested, and each acknowledgement delivers one
/// pending tick, so a guest that keeps time by counting ticks loses none. Off, OUT0 drives IRQ 0 directly.
/// Reinjection needs those EOIs to reach L0, which AVIC's accelerated EOI skips: the machine inhibits APICv while it is
/// on (PIT_REINJ).
/// </summary>
public sealed class PitReinjection
{
    private readonly Action<bool> _irq0;
    private bool _enabled;
    private bool _awaitingAck;
    private bool _out0;

    /// <param name="irq0">ISA IRQ 0.</param>
    public PitReinjection(Action<bool> irq0) => _irq0 = irq0;

    /// <summary>Ticks held back, waiting for an acknowledgement.</summary>
    public ulong Pending { get; private set; }

    /// <summary>Ticks delivered late, one per acknowledgement.</summary>
    public ulong Reinjected { get; private set; }

    /// <summary>Raised when reinjection is turned on or off.</summary>
    public Action<bool>? Changed { get; set; }

    /// <summary>
    /// Turns reinjection on or off (KVM_REINJECT_CONTROL). Either way the tick state starts afresh: nothing pending,
    /// nothing awaiting an acknowledgement; turning it off hands IRQ 0 back to OUT0's level.
    /// </summary>
    public bool Enabled
    {
        get => _enabled;
        set
        {
            if (value == _enabled)
            {
                return;
            }

            _enabled = value;
            Pending = 0;
            _awaitingAck = false;
            _irq0(!value && _out0);
            Changed?.Invoke(value);
        }
    }

    /// <summary>Channel 0's OUT pin changed.</summary>
    public void Out0(bool level)
    {
        bool rising = level && !_out0;
        _out0 = level;
        if (!_enabled)
        {
            _irq0(level);
            return;
        }

        if (!rising)
        {
            return;
        }

        if (_awaitingAck)
        {
            Pending++;
            return;
        }

        Pulse();
    }

    /// <summary>The guest acknowledged IRQ 0: the next pending tick, if any, goes out now.</summary>
    public void Acknowledged()
    {
        if (!_enabled)
        {
            return;
        }

        _awaitingAck = false;
        if (Pending > 0)
        {
            Pending--;
            Reinjected++;
            Pulse();
        }
    }

    private void Pulse()
    {
        _awaitingAck = true;
        _irq0(true);
        _irq0(false);
    }
}
