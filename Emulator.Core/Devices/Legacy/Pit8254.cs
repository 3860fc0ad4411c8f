using Emulator.Core.Timing;

namespace Emulator.Core.Devices.Legacy;

/// <summary>
/// The 8254 programmable interval timer at 0x40–0x43 (Intel 8254 data sheet), clocked at 1.193182 MHz, and
/// the system control port 0x61 (channel 2 gate, speaker enable, refresh toggle, channel 2 output).
/// Nothing ticks: every counter value and output is computed from the cycle clock (<see cref="EventQueue.Now"/>)
/// when it is read, and channel 0's output drives ISA IRQ 0 through one timer armed at its next transition.
/// </summary>
public sealed class Pit8254 : IPortDevice
{
    public const ushort BasePort = 0x40;
    public const int PortCount = 4;
    public const ushort SystemControlPort = 0x61;

    /// <summary>Input clock of every channel.</summary>
    public const ulong Frequency = 1_193_182;

    /// <summary>
    /// PIT ticks per half period of port 0x61 bit 4: BIOSes program channel 1 (DRAM refresh) with 18, a
    /// 15.09 µs request rate; the bit follows that rate, derived from the clock as QEMU does.
    /// </summary>
    public const ulong RefreshTicks = 18;

    private readonly EventQueue _events;
    private readonly Action<bool> _out0;
    private readonly Channel[] _channels = [new(), new(), new()];
    private readonly TimerEvent _timer;
    private bool _out0Level;

    /// <param name="events">Timer queue on the cycle clock.</param>
    /// <param name="out0">Channel 0's OUT pin, wired to ISA IRQ 0.</param>
    public Pit8254(EventQueue events, Action<bool> out0)
    {
        _events = events;
        _out0 = out0;
        _timer = events.Create("pit.ch0", OnTimer);
        _channels[0].Gate = true;
        _channels[1].Gate = true;
        SystemControl = new SystemControlPorts(this);
    }

    /// <summary>Port 0x61.</summary>
    public IPortDevice SystemControl { get; }

    /// <summary>Port 0x61 bit 1: speaker data enable (stored; there is no speaker).</summary>
    public bool SpeakerEnabled { get; private set; }

    /// <summary>Rising edges of channel 0's output (timer interrupts requested on IRQ 0).</summary>
    public ulong Fires { get; private set; }

    public void Attach(IoBus io)
    {
        io.Register(BasePort, PortCount, this);
        io.Register(SystemControlPort, 1, SystemControl);
    }

    public IReadOnlyList<(string Name, ulong Value)> Counters() => [("irq.pit.fires", Fires)];

    private ulong NowTick => GuestClock.ToTicks(_events.Now, Frequency);

    /// <summary>Channel 2's gate (port 0x61 bit 0); channels 0 and 1 are gated on permanently.</summary>
    public bool Channel2Gate => _channels[2].Gate;

    /// <summary>The OUT pin of channel <paramref name="channel"/> now.</summary>
    public bool Output(int channel) => _channels[channel].Out(NowTick);

    public uint In(ushort offset, int size)
    {
        uint value = 0;
        for (int i = 0; i < size; i++)
        {
            int port = offset + i;
            uint b = port < 3 ? ReadCounter(port) : port == 3 ? 0u : 0xFFu;
            value |= b << (8 * i);
        }

        return value;
    }

    public void Out(ushort offset, int size, uint value)
    {
        for (int i = 0; i < size && offset + i < PortCount; i++)
        {
            byte b = (byte)(value >> (8 * i));
            if (offset + i == 3)
            {
                WriteControl(b);
            }
            else
            {
                WriteCounter(offset + i, b);
            }
        }
    }

    private byte ReadCounter(int index)
    {
        var ch = _channels[index];
        ulong t = NowTick;
        ch.Normalize(t);
        if (ch.StatusLatched)
        {
            ch.StatusLatched = false;
            return ch.LatchedStatus;
        }

        if (ch.CountLatched)
        {
            byte b;
            if (ch.Access == Access.Word && !ch.LatchHighNext)
            {
                b = (byte)ch.LatchedCount;
                ch.LatchHighNext = true;
                return b;
            }

            b = ch.Access == Access.Low ? (byte)ch.LatchedCount : (byte)(ch.LatchedCount >> 8);
            ch.CountLatched = false;
            ch.LatchHighNext = false;
            return b;
        }

        ushort count = ch.ReadableCount(t);
        switch (ch.Access)
        {
            case Access.Low:
                return (byte)count;
            case Access.High:
                return (byte)(count >> 8);
            default:
                bool high = ch.ReadHighNext;
                ch.ReadHighNext = !high;
                return high ? (byte)(count >> 8) : (byte)count;
        }
    }

    private void WriteControl(byte value)
    {
        int select = value >> 6;
        ulong t = NowTick;
        if (select == 3)
        {
            // Read-back (data sheet, "Read-Back Command"): bit 5 clear latches counts, bit 4 clear latches
            // status, bits 3:1 select the channels.
            for (int i = 0; i < 3; i++)
            {
                if ((value & (2 << i)) == 0)
                {
                    continue;
                }

                var ch = _channels[i];
                ch.Normalize(t);
                if ((value & 0x20) == 0)
                {
                    ch.LatchCount(t);
                }

                if ((value & 0x10) == 0 && !ch.StatusLatched)
                {
                    ch.StatusLatched = true;
                    ch.LatchedStatus = ch.Status(t);
                }
            }

            return;
        }

        var c = _channels[select];
        c.Normalize(t);
        var access = (Access)((value >> 4) & 3);
        if (access == Access.Latch)
        {
            c.LatchCount(t);
            return;
        }

        c.Program(access, (value >> 1) & 7, (value & 1) != 0);
        if (select == 0)
        {
            Resync(t);
        }
    }

    private void WriteCounter(int index, byte value)
    {
        var ch = _channels[index];
        ulong t = NowTick;
        ch.Normalize(t);
        ch.WriteCountByte(value, t);
        if (index == 0)
        {
            Resync(t);
        }
    }

    private void SetGate2(bool level)
    {
        ulong t = NowTick;
        var ch = _channels[2];
        ch.Normalize(t);
        ch.SetGate(level, t);
    }

    /// <summary>Drives IRQ 0 to channel 0's output at <paramref name="t"/> and arms the timer at its next change.</summary>
    private void Resync(ulong t)
    {
        var ch = _channels[0];
        Drive(ch.Out(t));
        ulong next = ch.NextTransition(t);
        if (next == ulong.MaxValue)
        {
            _timer.Cancel();
        }
        else
        {
            _timer.Schedule(GuestClock.ToCycles(next, Frequency));
        }
    }

    /// <summary>
    /// A transition of OUT0 is due. The output is evaluated at the deadline, not at the (possibly later)
    /// current time, so every edge happens at its exact tick even when events are serviced late.
    /// </summary>
    private void OnTimer(ulong deadline)
    {
        ulong t = GuestClock.ToTicks(deadline, Frequency);
        _channels[0].Normalize(t);
        Resync(t);
    }

    private void Drive(bool level)
    {
        if (level == _out0Level)
        {
            return;
        }

        _out0Level = level;
        if (level)
        {
            Fires++;
        }

        _out0(level);
    }

    private enum Access
    {
        Latch = 0,
        Low = 1,
        High = 2,
        Word = 3,
    }

    /// <summary>
    /// One counter. Time is in PIT ticks; <see cref="Origin"/> is the tick at which the current count was
    /// loaded (or the trigger/reload happened), so the counting element is a function of the elapsed ticks.
    /// </summary>
    private sealed class Channel
    {
        public Access Access = Access.Low;

        /// <summary>Mode bits as written (0–7; 6 and 7 behave as 2 and 3 but read back as written).</summary>
        public int ModeBits;
        public bool Bcd;

        /// <summary>Reload value N: 1–65536 (binary) or 1–10000 (BCD); a written 0 is the maximum.</summary>
        public uint Count;

        /// <summary>A count has been loaded since the last control word (the counter runs or waits for a trigger).</summary>
        public bool Armed;

        public ulong Origin;

        public bool Gate;

        /// <summary>Modes 1 and 5: a gate rising edge has started the count.</summary>
        public bool Triggered;

        /// <summary>Gate is low in a mode where that suspends counting: the elapsed ticks are held.</summary>
        public bool Frozen;
        public ulong FrozenElapsed;

        /// <summary>Modes 2 and 3: a count written while running, loaded at the end of the current period.</summary>
        public bool ReloadPending;
        public uint PendingCount;
        public ulong PendingAt;

        public bool NullCount;
        public bool WriteHighNext;
        public byte WriteLow;
        public bool ReadHighNext;

        public bool CountLatched;
        public ushort LatchedCount;
        public bool LatchHighNext;
        public bool StatusLatched;
        public byte LatchedStatus;

        public int Mode => ModeBits switch { 6 => 2, 7 => 3, _ => ModeBits };

        private uint Modulus => Bcd ? 10000u : 65536u;

        /// <summary>Applies a pending mode 2/3 reload whose period boundary has passed.</summary>
        public void Normalize(ulong t)
        {
            if (ReloadPending && !Frozen && t >= PendingAt)
            {
                Origin = PendingAt;
                Count = PendingCount;
                ReloadPending = false;
                NullCount = false;
            }
        }

        /// <summary>Ticks counted since <see cref="Origin"/>, or null while the counter does not count.</summary>
        private ulong? Elapsed(ulong t)
        {
            if (!Armed)
            {
                return null;
            }

            if (Mode is 1 or 5 && !Triggered)
            {
                return null;
            }

            return Frozen ? FrozenElapsed : t - Origin;
        }

        public bool Out(ulong t)
        {
            ulong? e = Elapsed(t);
            int mode = Mode;
            if (e is not { } d)
            {
                // Initial state after the control word: low in mode 0, high otherwise.
                return mode != 0;
            }

            ulong n = Count;
            switch (mode)
            {
                case 0:
                case 1:
                    // Interrupt on terminal count / one-shot: OUT rises when the count reaches zero.
                    return d >= n;
                case 2:
                    // Rate generator: low for the one tick at count 1, high again at the reload.
                    return Frozen || n < 2 || d % n != n - 1;
                case 3:
                    // Square wave: high for the first ceil(N/2) ticks of each period.
                    return Frozen || d % n < (n + 1) / 2;
                default:
                    // Strobes (4, 5): one low tick when the count reaches zero.
                    return d != n;
            }
        }

        /// <summary>The first tick after <paramref name="t"/> at which <see cref="Out"/> changes, or MaxValue.</summary>
        public ulong NextTransition(ulong t)
        {
            if (Elapsed(t) is not { } d || Frozen)
            {
                return ulong.MaxValue;
            }

            ulong n = Count;
            ulong next;
            switch (Mode)
            {
                case 0:
                case 1:
                    return d < n ? t + (n - d) : ulong.MaxValue;
                case 2:
                    if (n < 2)
                    {
                        return ulong.MaxValue;
                    }

                    ulong p2 = d % n;
                    next = p2 < n - 1 ? t + (n - 1 - p2) : t + 1;
                    break;
                case 3:
                    if (n < 2)
                    {
                        return ulong.MaxValue;
                    }

                    ulong p3 = d % n, half = (n + 1) / 2;
                    next = p3 < half ? t + (half - p3) : t + (n - p3);
                    break;
                default:
                    return d < n ? t + (n - d) : d == n ? t + 1 : ulong.MaxValue;
            }

            // A reload at the period boundary starts a new sequence there; re-evaluate at that tick.
            return ReloadPending && PendingAt < next ? PendingAt : next;
        }

        /// <summary>The counting element as a guest reads it (binary, or BCD digits in BCD mode).</summary>
        public ushort ReadableCount(ulong t)
        {
            uint value;
            if (Elapsed(t) is not { } d)
            {
                value = Armed ? Count % Modulus : 0;
            }
            else
            {
                ulong n = Count;
                value = Mode switch
                {
                    2 => (uint)(n - (d % n)),
                    3 => (uint)(n - ((2 * d) % n)),
                    _ => (uint)((n + Modulus - (d % Modulus)) % Modulus),
                } % Modulus;
            }

            return Bcd ? ToBcd(value) : (ushort)value;
        }

        public byte Status(ulong t) =>
            (byte)((Out(t) ? 0x80 : 0) | (NullCount ? 0x40 : 0) | ((int)Access << 4) | (ModeBits << 1) | (Bcd ? 1 : 0));

        public void LatchCount(ulong t)
        {
            if (!CountLatched)
            {
                CountLatched = true;
                LatchHighNext = false;
                LatchedCount = ReadableCount(t);
            }
        }

        /// <summary>Control word for this channel: resets its control logic and waits for a count.</summary>
        public void Program(Access access, int modeBits, bool bcd)
        {
            Access = access;
            ModeBits = modeBits;
            Bcd = bcd;
            Armed = false;
            Triggered = false;
            Frozen = false;
            ReloadPending = false;
            NullCount = true;
            WriteHighNext = false;
            ReadHighNext = false;
            CountLatched = false;
            StatusLatched = false;
        }

        public void WriteCountByte(byte value, ulong t)
        {
            uint raw;
            switch (Access)
            {
                case Access.Low:
                    raw = value;
                    break;
                case Access.High:
                    raw = (uint)value << 8;
                    break;
                default:
                    if (!WriteHighNext)
                    {
                        WriteLow = value;
                        WriteHighNext = true;

                        // Mode 0: writing the first byte stops the count (and OUT stays low).
                        if (Mode == 0)
                        {
                            Armed = false;
                        }

                        return;
                    }

                    WriteHighNext = false;
                    raw = WriteLow | ((uint)value << 8);
                    break;
            }

            Load(Bcd ? FromBcd(raw) : raw, t);
        }

        private void Load(uint written, ulong t)
        {
            uint n = written == 0 ? Modulus : written;
            NullCount = true;
            switch (Mode)
            {
                case 2:
                case 3:
                    if (Armed && Gate && !Frozen)
                    {
                        // A running rate generator / square wave finishes its period with the old count.
                        ulong d = t - Origin;
                        PendingAt = Origin + (((d / Count) + 1) * Count);
                        PendingCount = n;
                        ReloadPending = true;
                        return;
                    }

                    break;
                case 1:
                case 5:
                    // Loaded, then started by the next gate rising edge.
                    Count = n;
                    Armed = true;
                    Triggered = false;
                    return;
            }

            Count = n;
            Armed = true;
            ReloadPending = false;
            NullCount = false;
            Origin = t;
            Frozen = !Gate;
            FrozenElapsed = 0;
        }

        public void SetGate(bool level, ulong t)
        {
            if (level == Gate)
            {
                return;
            }

            Gate = level;
            switch (Mode)
            {
                case 0:
                case 4:
                    // Gate low suspends counting; high resumes where it stopped.
                    if (!Armed)
                    {
                        return;
                    }

                    if (!level)
                    {
                        FrozenElapsed = t - Origin;
                        Frozen = true;
                    }
                    else if (Frozen)
                    {
                        Origin = t - FrozenElapsed;
                        Frozen = false;
                    }

                    break;
                case 1:
                case 5:
                    // A rising edge (re)triggers the count.
                    if (level && Armed)
                    {
                        Origin = t;
                        Triggered = true;
                        NullCount = false;
                    }

                    break;
                default:
                    // Modes 2, 3: gate low stops counting with OUT high; the rising edge reloads the count.
                    if (!Armed)
                    {
                        return;
                    }

                    if (!level)
                    {
                        FrozenElapsed = t - Origin;
                        Frozen = true;
                    }
                    else
                    {
                        if (ReloadPending)
                        {
                            Count = PendingCount;
                            ReloadPending = false;
                            NullCount = false;
                        }

                        Origin = t;
                        Frozen = false;
                    }

                    break;
            }
        }

        private static ushort ToBcd(uint v) =>
            (ushort)((v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) | ((v / 1000 % 10) << 12));

        /// <summary>BCD count digits to binary; invalid digits count as their nibble value (no fault).</summary>
        private static uint FromBcd(uint v) =>
            (v & 0xF) + ((v >> 4) & 0xF) * 10 + ((v >> 8) & 0xF) * 100 + ((v >> 12) & 0xF) * 1000;
    }

    /// <summary>
    /// Port 0x61 (QEMU's pcspk): bit 0 channel 2 gate, bit 1 speaker data enable (read/write), bit 4 refresh
    /// toggle and bit 5 channel 2 output (read-only). The other bits read 0 and are ignored on write.
    /// </summary>
    private sealed class SystemControlPorts(Pit8254 pit) : IPortDevice
    {
        public uint In(ushort offset, int size)
        {
            ulong t = pit.NowTick;
            var ch2 = pit._channels[2];
            ch2.Normalize(t);
            uint value = (ch2.Gate ? 1u : 0) | (pit.SpeakerEnabled ? 2u : 0)
                | ((t / RefreshTicks & 1) != 0 ? 0x10u : 0) | (ch2.Out(t) ? 0x20u : 0);
            for (int i = 1; i < size; i++)
            {
                value |= 0xFFu << (8 * i);
            }

            return value;
        }

        public void Out(ushort offset, int size, uint value)
        {
            pit.SpeakerEnabled = (value & 2) != 0;
            pit.SetGate2((value & 1) != 0);
        }
    }
}
