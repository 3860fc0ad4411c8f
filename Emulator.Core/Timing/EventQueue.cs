namespace Emulator.Core.Timing;

/// <summary>
/// The guest clock: cycles of the cycle model at a nominal frequency. Devices that count in their own
/// units (PIT 1.193182 MHz, PM timer 3.579545 MHz, RTC seconds) convert with <see cref="ToTicks"/> and
/// <see cref="ToCycles"/>, exactly and without drift, so two runs see the same values.
/// </summary>
public static class GuestClock
{
    /// <summary>Nominal TSC frequency: 2 GHz.</summary>
    public const ulong CyclesPerSecond = 2_000_000_000;

    /// <summary>Whole ticks of a <paramref name="hz"/> clock that have elapsed after <paramref name="cycles"/>.</summary>
    public static ulong ToTicks(ulong cycles, ulong hz) => (ulong)((UInt128)cycles * hz / CyclesPerSecond);

    /// <summary>First cycle at which <paramref name="ticks"/> ticks of a <paramref name="hz"/> clock have elapsed.</summary>
    public static ulong ToCycles(ulong ticks, ulong hz) => (ulong)(((UInt128)ticks * CyclesPerSecond + hz - 1) / hz);
}

/// <summary>
/// A timer owned by a device: one pending deadline at most. Re-arming replaces the deadline.
/// </summary>
public sealed class TimerEvent
{
    internal readonly Action<ulong> Callback;
    internal ulong Sequence;

    internal TimerEvent(EventQueue queue, string name, Action<ulong> callback)
    {
        Queue = queue;
        Name = name;
        Callback = callback;
    }

    public EventQueue Queue { get; }

    public string Name { get; }

    /// <summary>Cycle at which the callback runs; meaningful only while <see cref="Pending"/>.</summary>
    public ulong Deadline { get; internal set; }

    public bool Pending { get; internal set; }

    /// <summary>Arms (or re-arms) the timer; a deadline in the past fires at the next check.</summary>
    public void Schedule(ulong deadline) => Queue.Schedule(this, deadline);

    public void Cancel() => Queue.Cancel(this);
}

/// <summary>
/// Deterministic timer queue on the cycle clock, shared by every device and vCPU of a machine.
/// Events fire in deadline order, ties in the order they were armed. Time is the running vCPU's cycle
/// counter, made monotonic: in SMP the vCPUs run in slices and may trail one another by up to a slice,
/// and a device must never see time go backwards.
/// </summary>
public sealed class EventQueue
{
    private readonly List<TimerEvent> _pending = [];
    private ulong _sequence;
    private ulong _now;

    /// <summary>Reads the current cycle count (the running vCPU's); set by the machine.</summary>
    public Func<ulong> Clock { get; set; } = static () => 0;

    /// <summary>Called when the earliest deadline moved earlier (the running vCPU must check sooner).</summary>
    public Action<ulong>? EarliestChanged { get; set; }

    /// <summary>Current guest time in cycles (monotonic).</summary>
    public ulong Now
    {
        get
        {
            ulong c = Clock();
            if (c > _now)
            {
                _now = c;
            }

            return _now;
        }
    }

    /// <summary>Earliest pending deadline, or <see cref="ulong.MaxValue"/> when nothing is armed.</summary>
    public ulong NextDeadline => _pending.Count == 0 ? ulong.MaxValue : _pending[0].Deadline;

    public int PendingCount => _pending.Count;

    public TimerEvent Create(string name, Action<ulong> callback) => new(this, name, callback);

    internal void Schedule(TimerEvent e, ulong deadline)
    {
        if (e.Pending)
        {
            _pending.Remove(e);
        }

        e.Deadline = deadline;
        e.Sequence = _sequence++;
        e.Pending = true;
        int i = _pending.Count;
        while (i > 0 && Later(_pending[i - 1], e))
        {
            i--;
        }

        _pending.Insert(i, e);
        if (i == 0)
        {
            EarliestChanged?.Invoke(deadline);
        }
    }

    internal void Cancel(TimerEvent e)
    {
        if (e.Pending)
        {
            e.Pending = false;
            _pending.Remove(e);
        }
    }

    /// <summary>Runs every event whose deadline is at or before <paramref name="now"/>; callbacks get their deadline.</summary>
    public void RunDue(ulong now)
    {
        if (now > _now)
        {
            _now = now;
        }

        while (_pending.Count != 0 && _pending[0].Deadline <= now)
        {
            var e = _pending[0];
            _pending.RemoveAt(0);
            e.Pending = false;
            e.Callback(e.Deadline);
        }
    }

    private static bool Later(TimerEvent a, TimerEvent b) =>
        a.Deadline > b.Deadline || (a.Deadline == b.Deadline && a.Sequence > b.Sequence);
}
