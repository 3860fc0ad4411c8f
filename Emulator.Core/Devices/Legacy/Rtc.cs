using Emulator.Core.Timing;

namespace Emulator.Core.Devices.Legacy;

/// <summary>
/// The MC146818 real-time clock and its 128 bytes of CMOS RAM at 0x70 (index; bit 7 masks NMI) and 0x71
/// (data), as on QEMU's pc machine. Time is a fixed epoch plus the seconds elapsed on the cycle clock —
/// never the host's — so runs are reproducible. Status A–D follow the MC146818 data sheet; interrupts
/// (periodic, update-ended, alarm) raise ISA IRQ 8 until status C is read.
/// </summary>
public sealed class Rtc : IPortDevice
{
    public const ushort BasePort = 0x70;
    public const int PortCount = 2;
    public const int Irq = 8;

    /// <summary>Time base of the divider chain (32.768 kHz crystal).</summary>
    public const ulong CrystalHz = 32768;

    public const int Seconds = 0x00, SecondsAlarm = 0x01, Minutes = 0x02, MinutesAlarm = 0x03;
    public const int Hours = 0x04, HoursAlarm = 0x05, DayOfWeek = 0x06, DayOfMonth = 0x07, Month = 0x08, Year = 0x09;
    public const int StatusA = 0x0A, StatusB = 0x0B, StatusC = 0x0C, StatusD = 0x0D;

    /// <summary>Century byte (IBM location, as QEMU fills it; the ACPI FADT names it).</summary>
    public const int Century = 0x32;

    public const byte AUip = 0x80;
    public const byte BSet = 0x80, BPie = 0x40, BAie = 0x20, BUie = 0x10, BSqwe = 0x08, BBinary = 0x04, B24Hour = 0x02;
    public const byte CIrqf = 0x80, CPf = 0x40, CAf = 0x20, CUf = 0x10;
    public const byte DVrt = 0x80;

    /// <summary>
    /// Update-in-progress window before each second's update (t_BUC = 244 µs, eight crystal periods),
    /// during which status A's UIP bit reads 1.
    /// </summary>
    public static readonly ulong UipCycles = GuestClock.ToCycles(8, CrystalHz);

    /// <summary>The default epoch: 2026-01-01 00:00:00.</summary>
    public static readonly DateTime DefaultEpoch = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);

    private const ulong Second = GuestClock.CyclesPerSecond;

    private readonly byte[] _cmos = new byte[128];
    private readonly EventQueue _events;
    private readonly Action<bool> _irq;
    private readonly TimerEvent _periodic;
    private readonly TimerEvent _update;
    private int _index;

    /// <summary>Seconds since 0001-01-01 00:00:00 at <see cref="_baseCycle"/>.</summary>
    private long _baseSeconds;
    private ulong _baseCycle;

    /// <summary>Cycle of the last read of status C (the lazily computed UF flag counts updates since then).</summary>
    private ulong _lastUpdateSeen;

    public Rtc(EventQueue events, Action<bool> irq8, DateTime? epoch = null)
    {
        _events = events;
        _irq = irq8;
        _periodic = events.Create("rtc.periodic", OnPeriodic);
        _update = events.Create("rtc.update", OnUpdate);
        var e = epoch ?? DefaultEpoch;
        _baseSeconds = e.Ticks / TimeSpan.TicksPerSecond;
        _baseCycle = events.Now;
        _lastUpdateSeen = _baseCycle;

        // Power-on values QEMU's mc146818 gives: 32.768 kHz divider with a 1024 Hz rate, 24-hour BCD,
        // no flags, valid RAM and time.
        _cmos[StatusA] = 0x26;
        _cmos[StatusB] = B24Hour;
        _cmos[StatusD] = DVrt;
    }

    /// <summary>Port 0x70 bit 7 as last written: NMI disabled. There is no NMI source on the ISA side yet.</summary>
    public bool NmiMasked { get; private set; }

    /// <summary>Times IRQ 8 was raised.</summary>
    public ulong Fires { get; private set; }

    public ulong PeriodicTicks { get; private set; }

    public ulong Updates { get; private set; }

    public void Attach(IoBus io) => io.Register(BasePort, PortCount, this);

    public IReadOnlyList<(string Name, ulong Value)> Counters() =>
    [
        ("irq.rtc.fires", Fires),
        ("irq.rtc.periodic", PeriodicTicks),
        ("irq.rtc.updates", Updates),
    ];

    /// <summary>
    /// The configuration bytes QEMU's pc machine stores in CMOS for firmware and kernels: base memory
    /// (0x15/0x16, KiB), extended memory (0x17/0x18 and 0x30/0x31, KiB above 1 MiB, at most 65535), memory
    /// above 16 MiB below 4 GiB (0x34/0x35, 64 KiB units), memory above 4 GiB (0x5B–0x5D, 64 KiB units),
    /// CPU count − 1 (0x5F), and the equipment byte (0x14: FPU, PS/2 mouse).
    /// </summary>
    public void StoreMachineConfiguration(ulong belowFourGiB, ulong aboveFourGiB, int cpus)
    {
        ulong baseKiB = Math.Min(belowFourGiB / 1024, 640);
        _cmos[0x15] = (byte)baseKiB;
        _cmos[0x16] = (byte)(baseKiB >> 8);
        ulong ext = belowFourGiB > (1 << 20) ? Math.Min((belowFourGiB - (1 << 20)) / 1024, 65535) : 0;
        _cmos[0x17] = _cmos[0x30] = (byte)ext;
        _cmos[0x18] = _cmos[0x31] = (byte)(ext >> 8);
        ulong above16 = belowFourGiB > (16 << 20) ? Math.Min((belowFourGiB - (16 << 20)) / 65536, 65535) : 0;
        _cmos[0x34] = (byte)above16;
        _cmos[0x35] = (byte)(above16 >> 8);
        ulong high = aboveFourGiB / 65536;
        _cmos[0x5B] = (byte)high;
        _cmos[0x5C] = (byte)(high >> 8);
        _cmos[0x5D] = (byte)(high >> 16);
        _cmos[0x5F] = (byte)(cpus - 1);
        _cmos[0x14] = 0x06;
    }

    public uint In(ushort offset, int size)
    {
        uint value = 0;
        for (int i = 0; i < size; i++)
        {
            int port = offset + i;

            // The index register is write-only; QEMU reads it as all ones.
            uint b = port == 1 ? ReadData() : 0xFFu;
            value |= b << (8 * i);
        }

        return value;
    }

    public void Out(ushort offset, int size, uint value)
    {
        for (int i = 0; i < size && offset + i < PortCount; i++)
        {
            byte b = (byte)(value >> (8 * i));
            if (offset + i == 0)
            {
                _index = b & 0x7F;
                NmiMasked = (b & 0x80) != 0;
            }
            else
            {
                WriteData(b);
            }
        }
    }

    /// <summary>CMOS byte at <paramref name="index"/> as the guest would read it (host-side view, no side effects on C).</summary>
    public byte Peek(int index) => IsClockRegister(index) && !Halted ? Format(index, Now()) : _cmos[index & 0x7F];

    private bool Halted => (_cmos[StatusB] & BSet) != 0;

    private bool Binary => (_cmos[StatusB] & BBinary) != 0;

    private static bool IsClockRegister(int index) =>
        index is Seconds or Minutes or Hours or DayOfWeek or DayOfMonth or Month or Year or Century;

    private byte ReadData()
    {
        int index = _index;
        switch (index)
        {
            case StatusA:
                return (byte)((_cmos[StatusA] & 0x7F) | (UpdateInProgress() ? AUip : 0));
            case StatusC:
                {
                    NoteUpdates();
                    byte c = _cmos[StatusC];
                    _cmos[StatusC] = 0;
                    if ((c & CIrqf) != 0)
                    {
                        _irq(false);
                    }

                    return c;
                }

            case StatusD:
                return DVrt;
        }

        return Peek(index);
    }

    private void WriteData(byte value)
    {
        int index = _index;
        switch (index)
        {
            case StatusA:
                // UIP is read-only.
                _cmos[StatusA] = (byte)((value & 0x7F) | (_cmos[StatusA] & AUip));
                ArmPeriodic();
                return;
            case StatusB:
                WriteStatusB(value);
                return;
            case StatusC:
            case StatusD:
                return;
        }

        if (IsClockRegister(index))
        {
            if (!Halted)
            {
                // Setting one field of a running clock: the other fields keep their current values.
                FreezeInto(Now());
                _cmos[index] = value;
                Rebase();
            }
            else
            {
                _cmos[index] = value;
            }

            return;
        }

        _cmos[index] = value;
    }

    private void WriteStatusB(byte value)
    {
        bool wasHalted = Halted;
        bool halt = (value & BSet) != 0;
        if (halt)
        {
            // SET stops updates and clears UIE (MC146818 data sheet, register B bit 7).
            value = (byte)(value & ~BUie);
            if (!wasHalted)
            {
                FreezeInto(Now());
            }
        }

        _cmos[StatusB] = value;
        if (wasHalted && !halt)
        {
            Rebase();
        }

        // IRQF follows the enabled flags already set (as QEMU recomputes it on a B write).
        byte c = _cmos[StatusC];
        bool irqf = (c & value & (CPf | CAf | CUf)) != 0;
        if (irqf && (c & CIrqf) == 0)
        {
            _cmos[StatusC] = (byte)(c | CIrqf);
            Raise();
        }
        else if (!irqf && (c & CIrqf) != 0)
        {
            _cmos[StatusC] = (byte)(c & ~CIrqf);
            _irq(false);
        }

        ArmPeriodic();
        ArmUpdate();
    }

    /// <summary>Current time, seconds since 0001-01-01.</summary>
    private long Now() => _baseSeconds + (long)((_events.Now - _baseCycle) / Second);

    private bool UpdateInProgress()
    {
        if (Halted)
        {
            return false;
        }

        ulong phase = (_events.Now - _baseCycle) % Second;
        return phase >= Second - UipCycles;
    }

    /// <summary>Writes the time <paramref name="seconds"/> into the clock registers in the current format.</summary>
    private void FreezeInto(long seconds)
    {
        foreach (int r in (ReadOnlySpan<int>)[Seconds, Minutes, Hours, DayOfWeek, DayOfMonth, Month, Year, Century])
        {
            _cmos[r] = Format(r, seconds);
        }
    }

    /// <summary>Restarts the clock from the values in the clock registers, the next update one second from now.</summary>
    private void Rebase()
    {
        int sec = Math.Min(Decode(_cmos[Seconds]), 59);
        int min = Math.Min(Decode(_cmos[Minutes]), 59);
        int hour = DecodeHour(_cmos[Hours]);
        int day = Math.Clamp(Decode(_cmos[DayOfMonth]), 1, 31);
        int month = Math.Clamp(Decode(_cmos[Month]), 1, 12);
        int year = (Math.Min(Decode(_cmos[Century]), 99) * 100) + Math.Min(Decode(_cmos[Year]), 99);
        long days = DaysFromCivil(Math.Max(year, 1), month, 1) + day - 1;
        _baseSeconds = (days * 86400) + (hour * 3600) + (min * 60) + sec;
        _baseCycle = _events.Now;
        _lastUpdateSeen = _baseCycle;
        ArmUpdate();
    }

    private int Decode(byte v) => Binary ? v : ((v >> 4) * 10) + (v & 0xF);

    private int DecodeHour(byte v)
    {
        if ((_cmos[StatusB] & B24Hour) != 0)
        {
            return Math.Min(Decode(v), 23);
        }

        int h12 = Math.Clamp(Decode((byte)(v & 0x7F)), 1, 12) % 12;
        return (v & 0x80) != 0 ? h12 + 12 : h12;
    }

    private byte Encode(int v) => Binary ? (byte)v : (byte)(((v / 10) << 4) | (v % 10));

    private byte Format(int register, long seconds)
    {
        long days = seconds / 86400;
        int secOfDay = (int)(seconds % 86400);
        switch (register)
        {
            case Seconds:
                return Encode(secOfDay % 60);
            case Minutes:
                return Encode(secOfDay / 60 % 60);
            case Hours:
                int hour = secOfDay / 3600;
                if ((_cmos[StatusB] & B24Hour) != 0)
                {
                    return Encode(hour);
                }

                // 12-hour mode: 1–12 with bit 7 set for PM.
                int h12 = hour % 12 == 0 ? 12 : hour % 12;
                return (byte)(Encode(h12) | (hour >= 12 ? 0x80 : 0));
            case DayOfWeek:
                // 1 = Sunday; day 0 (0001-01-01) was a Monday.
                return Encode((int)((days + 1) % 7) + 1);
        }

        CivilFromDays(days, out int year, out int month, out int day);
        return register switch
        {
            DayOfMonth => Encode(day),
            Month => Encode(month),
            Year => Encode(year % 100),
            _ => Encode(year / 100 % 100),
        };
    }

    /// <summary>Days from 0001-01-01 to the given proleptic Gregorian date.</summary>
    private static long DaysFromCivil(int year, int month, int day)
    {
        // Count from March so the leap day is the last day of the counting year.
        long y = month <= 2 ? year - 1 : year;
        long era = y / 400;
        long yoe = y - (era * 400);
        long doy = ((153 * (month + (month > 2 ? -3 : 9))) + 2) / 5 + day - 1;
        long doe = (yoe * 365) + (yoe / 4) - (yoe / 100) + doy;
        return (era * 146097) + doe - 306; // 306: days from 0000-03-01 to 0001-01-01
    }

    private static void CivilFromDays(long days, out int year, out int month, out int day)
    {
        long z = days + 306;
        long era = z / 146097;
        long doe = z - (era * 146097);
        long yoe = (doe - (doe / 1460) + (doe / 36524) - (doe / 146096)) / 365;
        long doy = doe - ((365 * yoe) + (yoe / 4) - (yoe / 100));
        long mp = ((5 * doy) + 2) / 153;
        day = (int)(doy - (((153 * mp) + 2) / 5) + 1);
        month = (int)(mp < 10 ? mp + 3 : mp - 9);
        year = (int)((era * 400) + yoe + (month <= 2 ? 1 : 0));
    }

    /// <summary>Periodic interrupt period in crystal ticks from status A's rate select, or 0 for none.</summary>
    private ulong PeriodTicks()
    {
        int rate = _cmos[StatusA] & 0x0F;
        if (rate == 0)
        {
            return 0;
        }

        // Rates 1 and 2 select the same taps as 8 and 9 (256 Hz, 128 Hz) with the 32.768 kHz time base.
        if (rate <= 2)
        {
            rate += 7;
        }

        return 1UL << (rate - 1);
    }

    /// <summary>The periodic timer runs while PIE is set (QEMU sets PF only then), on the crystal's tick grid.</summary>
    private void ArmPeriodic()
    {
        ulong period = PeriodTicks();
        if (period == 0 || (_cmos[StatusB] & BPie) == 0)
        {
            _periodic.Cancel();
            return;
        }

        ulong tick = GuestClock.ToTicks(_events.Now, CrystalHz);
        ulong next = ((tick / period) + 1) * period;
        if (!_periodic.Pending || _periodic.Deadline != GuestClock.ToCycles(next, CrystalHz))
        {
            _periodic.Schedule(GuestClock.ToCycles(next, CrystalHz));
        }
    }

    private void OnPeriodic(ulong deadline)
    {
        PeriodicTicks++;
        SetFlags(CPf);
        ulong period = PeriodTicks();
        if (period == 0 || (_cmos[StatusB] & BPie) == 0)
        {
            return;
        }

        ulong tick = GuestClock.ToTicks(deadline, CrystalHz);
        _periodic.Schedule(GuestClock.ToCycles(((tick / period) + 1) * period, CrystalHz));
    }

    /// <summary>The once-a-second update event runs only while update-ended or alarm interrupts are enabled.</summary>
    private void ArmUpdate()
    {
        if (Halted || (_cmos[StatusB] & (BUie | BAie)) == 0)
        {
            _update.Cancel();
            return;
        }

        ulong elapsed = _events.Now - _baseCycle;
        ulong next = _baseCycle + (((elapsed / Second) + 1) * Second);
        if (!_update.Pending || _update.Deadline != next)
        {
            _update.Schedule(next);
        }
    }

    private void OnUpdate(ulong deadline)
    {
        if (Halted)
        {
            return;
        }

        Updates++;
        _lastUpdateSeen = deadline;
        byte flags = CUf;
        long now = _baseSeconds + (long)((deadline - _baseCycle) / Second);
        if (AlarmMatches(now))
        {
            flags |= CAf;
        }

        SetFlags(flags);
        if ((_cmos[StatusB] & (BUie | BAie)) != 0)
        {
            _update.Schedule(deadline + Second);
        }
    }

    /// <summary>Alarm bytes match the time; 0xC0–0xFF in an alarm byte means "any" (data sheet, "Alarm").</summary>
    private bool AlarmMatches(long now)
    {
        return Match(SecondsAlarm, Seconds) && Match(MinutesAlarm, Minutes) && Match(HoursAlarm, Hours);

        bool Match(int alarm, int register)
        {
            byte a = _cmos[alarm];
            return (a & 0xC0) == 0xC0 || a == Format(register, now);
        }
    }

    /// <summary>Status C's UF for updates nobody was interrupted for: set when a second boundary passed since the last read.</summary>
    private void NoteUpdates()
    {
        if (Halted || _update.Pending)
        {
            return;
        }

        ulong now = _events.Now;
        if ((now - _baseCycle) / Second > (_lastUpdateSeen - _baseCycle) / Second)
        {
            _cmos[StatusC] |= CUf;
        }

        _lastUpdateSeen = now;
    }

    private void SetFlags(byte flags)
    {
        byte c = (byte)(_cmos[StatusC] | flags);
        if ((c & CIrqf) == 0 && (c & _cmos[StatusB] & (CPf | CAf | CUf)) != 0)
        {
            c |= CIrqf;
            _cmos[StatusC] = c;
            Raise();
            return;
        }

        _cmos[StatusC] = c;
    }

    private void Raise()
    {
        Fires++;
        _irq(true);
    }
}
