namespace Emulator.Core.Devices.Apic;

/// <summary>Delivery mode of an interrupt message (ICR, I/O APIC redirection entry, LVT): APM vol. 2 §16.5.</summary>
public enum ApicDeliveryMode : byte
{
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    ExtInt = 7,
}

/// <summary>ICR destination shorthand (APM vol. 2 §16.5, ICR bits 19:18).</summary>
public enum ApicShorthand : byte
{
    None = 0,
    Self = 1,
    AllIncludingSelf = 2,
    AllExcludingSelf = 3,
}

/// <summary>
/// One interrupt message on the APIC bus (from an ICR write, the I/O APIC or a device).
/// <paramref name="Destination"/> is 8 bits in xAPIC format and 32 bits in x2APIC format.
/// </summary>
public readonly record struct ApicMessage(
    byte Vector,
    ApicDeliveryMode Mode,
    bool LogicalDestination,
    uint Destination,
    ApicShorthand Shorthand = ApicShorthand.None,
    bool LevelTriggered = false,
    bool Assert = true,
    IApicTarget? Source = null);

/// <summary>A local APIC as the bus sees it.</summary>
public interface IApicTarget
{
    uint ApicId { get; }

    /// <summary>x2APIC mode: physical broadcast is 0xFFFF_FFFF and IDs are 32 bits; otherwise 0xFF and 8 bits.</summary>
    bool X2ApicMode { get; }

    /// <summary>Logical-destination match against this APIC's LDR (and DFR in xAPIC mode).</summary>
    bool MatchesLogical(uint destination);

    /// <summary>Arbitration priority for lowest-priority delivery (lower wins).</summary>
    int ArbitrationPriority { get; }

    /// <summary>Hardware- and software-enabled: fixed and lowest-priority interrupts are taken, not dropped.</summary>
    bool TakesFixedInterrupts { get; }

    /// <summary>Takes a message addressed to this APIC.</summary>
    void Accept(in ApicMessage message);
}

/// <summary>
/// The system bus between local APICs and the I/O APIC: resolves destinations (physical, logical,
/// shorthands, broadcast), picks the lowest-priority target deterministically, and carries EOI
/// broadcasts for level-triggered interrupts back to the I/O APIC.
/// </summary>
public sealed class ApicBus
{
    private readonly List<IApicTarget> _targets = [];
    private readonly List<Action<byte>> _eoiListeners = [];

    public IReadOnlyList<IApicTarget> Targets => _targets;

    public ulong Messages { get; private set; }

    public void Add(IApicTarget target) => _targets.Add(target);

    private readonly List<Action<byte>> _ackListeners = [];

    /// <summary>
    /// Registers a listener for every EOI L0's local-APIC emulation performs, edge-triggered vectors included (KVM's
    /// ack notifiers: the I/O APIC reports which pins use the vector, for the PIT's reinjection).
    /// </summary>
    public void OnAck(Action<byte> listener) => _ackListeners.Add(listener);

    public void NotifyAck(byte vector)
    {
        foreach (var l in _ackListeners)
        {
            l(vector);
        }
    }

    /// <summary>Registers an EOI-broadcast listener (the I/O APIC clears remote IRR for the vector).</summary>
    public void OnEoi(Action<byte> listener) => _eoiListeners.Add(listener);

    public void BroadcastEoi(byte vector)
    {
        foreach (var l in _eoiListeners)
        {
            l(vector);
        }
    }

    /// <summary>True when <paramref name="t"/> is addressed by <paramref name="m"/> (shorthand and destination).</summary>
    public static bool IsAddressed(IApicTarget t, in ApicMessage m)
    {
        switch (m.Shorthand)
        {
            case ApicShorthand.Self:
                return ReferenceEquals(t, m.Source);
            case ApicShorthand.AllIncludingSelf:
                return true;
            case ApicShorthand.AllExcludingSelf:
                return !ReferenceEquals(t, m.Source);
        }

        if (m.LogicalDestination)
        {
            return t.MatchesLogical(m.Destination);
        }

        uint broadcast = t.X2ApicMode ? 0xFFFF_FFFFu : 0xFFu;
        return m.Destination == broadcast || m.Destination == t.ApicId;
    }

    /// <summary>
    /// Delivers a message. Lowest priority picks one of the addressed APICs, whatever the destination form
    /// (shorthands included, as KVM does): the lowest arbitration priority (APM vol. 2 §16.6.3; Intel SDM vol. 3
    /// §10.6.2.4), ties to the lowest bus index (the APIC ID order), and only among APICs that take fixed
    /// interrupts, so a software-disabled APIC cannot win and drop the interrupt (KVM skips those too).
    /// </summary>
    public void Deliver(in ApicMessage m)
    {
        Messages++;
        if (m.Mode == ApicDeliveryMode.LowestPriority)
        {
            IApicTarget? best = null;
            foreach (var t in _targets)
            {
                if (t.TakesFixedInterrupts && IsAddressed(t, m) && (best == null || t.ArbitrationPriority < best.ArbitrationPriority))
                {
                    best = t;
                }
            }

            best?.Accept(m);
            return;
        }

        foreach (var t in _targets)
        {
            if (IsAddressed(t, m))
            {
                t.Accept(m);
            }
        }
    }
}
