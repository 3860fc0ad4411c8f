using Emulator.Core.Timing;

namespace Emulator.Core.Devices.Apic;

/// <summary>
/// The APIC timer (APM vol. 2 §16.4.2; TSC-deadline mode from Intel SDM vol. 3 §10.5.4.1, which KVM
/// emulates on AMD). The timer's bus clock is the cycle clock: one count every <c>divide</c> cycles, so
/// a period lasts initial count × divide cycles. The current count is computed from <see cref="EventQueue.Now"/>
/// and expiry is one <see cref="TimerEvent"/>; a periodic timer re-arms from its previous deadline, so
/// periods do not drift with the latency of the event check.
/// </summary>
public sealed partial class LocalApic
{
    private readonly TimerEvent _timer;

    // Initial count (0x380) and divide configuration (0x3E0) are in the register page; the divisor is derived.
    private uint _timerDivide;
    private ulong _timerPeriod;
    private ulong _timerDeadline;
    private bool _timerArmed;
    private ulong _tscDeadline;

    /// <summary>Timer mode from LVT timer bits 18:17 (3 is reserved: the timer does not run).</summary>
    private int TimerMode => (int)((Lvt(LvtTimer) >> TimerModeShift) & 3);

    /// <summary>
    /// Shortest period of a periodic timer, in cycles; 0 (a bare LAPIC) for none. L0 sets KVM's limit
    /// (min_timer_period_us, 200 µs): KVM's LAPIC emulation raises shorter periods to it, so a guest cannot make its
    /// hypervisor spend all its time delivering timer interrupts (each costs it an exit).
    /// </summary>
    public ulong MinPeriodCycles { get; set; }

    /// <summary>The period of the timer in its current mode: a periodic one is raised to <see cref="MinPeriodCycles"/>.</summary>
    private ulong LimitedPeriod(ulong period) => TimerMode == TimerPeriodic ? Math.Max(period, MinPeriodCycles) : period;

    /// <summary>Cycles per timer count: divide configuration bits 3, 1:0 → 2, 4, 8, …, 128, 1.</summary>
    public uint TimerDivide => _timerDivide;

    /// <summary>Cycle at which the armed timer next expires (one-shot, periodic or TSC-deadline); ulong.MaxValue when idle.</summary>
    public ulong TimerDeadline => _timer.Pending ? _timer.Deadline : ulong.MaxValue;

    private static uint DivideOf(uint config)
    {
        uint code = ((config & 3) | ((config & 8) >> 1)) + 1;
        return 1u << (int)(code & 7);
    }

    private void ResetTimer()
    {
        _timer.Cancel();
        Set(ApicReg.TimerInitial, 0);
        Set(ApicReg.TimerDivide, 0);
        _timerDivide = DivideOf(0);
        _timerPeriod = 0;
        _timerDeadline = 0;
        _timerArmed = false;
        _tscDeadline = 0;
    }

    /// <summary>
    /// Initial-count write: (re)starts the count-down; ignored in TSC-deadline mode, where the initial count stays 0
    /// (entering the mode cleared it).
    /// </summary>
    private void WriteInitialCount(uint v)
    {
        if (TimerMode == TimerTscDeadline)
        {
            return;
        }

        Set(ApicReg.TimerInitial, v);
        _timer.Cancel();
        _timerArmed = false;
        _timerPeriod = (ulong)v * _timerDivide;
        if (v == 0 || TimerMode is not (TimerOneShot or TimerPeriodic))
        {
            return;
        }

        _timerPeriod = LimitedPeriod(_timerPeriod);
        _timerDeadline = _events.Now + _timerPeriod;
        _timerArmed = true;
        _timer.Schedule(_timerDeadline);
    }

    /// <summary>Divide-configuration write: a running count keeps its progress, rescaled to the new divisor (as KVM).</summary>
    private void WriteDivide(uint config)
    {
        uint old = _timerDivide;
        Set(ApicReg.TimerDivide, config);
        _timerDivide = DivideOf(config);
        if (old == _timerDivide || !_timerArmed)
        {
            return;
        }

        ulong now = _events.Now;
        ulong remaining = _timerDeadline > now ? _timerDeadline - now : 0;
        remaining = (ulong)((UInt128)remaining * _timerDivide / old);
        _timerPeriod = LimitedPeriod((ulong)Reg(ApicReg.TimerInitial) * _timerDivide);
        _timerDeadline = now + remaining;
        _timer.Schedule(_timerDeadline);
    }

    /// <summary>Switching into or out of TSC-deadline mode stops the timer and clears both count sources.</summary>
    private void TimerLvtChanged(uint old, uint now)
    {
        bool wasDeadline = ((old >> TimerModeShift) & 3) == TimerTscDeadline;
        bool isDeadline = ((now >> TimerModeShift) & 3) == TimerTscDeadline;
        if (wasDeadline != isDeadline)
        {
            _timer.Cancel();
            _timerArmed = false;
            Set(ApicReg.TimerInitial, 0);
            _timerPeriod = 0;
            _tscDeadline = 0;
        }
    }

    /// <summary>
    /// Current count: what is left of the period in counts (rounded down); 0 when the timer is idle, after a
    /// one-shot expired, and in TSC-deadline mode.
    /// </summary>
    private uint CurrentCount()
    {
        if (!_timerArmed || TimerMode == TimerTscDeadline)
        {
            return 0;
        }

        ulong now = _events.Now;
        return now >= _timerDeadline ? 0 : (uint)((_timerDeadline - now) / _timerDivide);
    }

    /// <summary>IA32_TSC_DEADLINE read: the armed deadline, 0 when idle or not in TSC-deadline mode.</summary>
    private ulong ReadTscDeadline() => HardwareEnabled && TimerMode == TimerTscDeadline ? _tscDeadline : 0;

    /// <summary>
    /// IA32_TSC_DEADLINE write: arms the timer for the cycle at which the vCPU's TSC (cycles + TSC offset)
    /// reaches the value; 0 disarms. Ignored outside TSC-deadline mode (Intel SDM vol. 3 §10.5.4.1).
    /// </summary>
    private void WriteTscDeadline(ulong v)
    {
        if (!HardwareEnabled || TimerMode != TimerTscDeadline)
        {
            return;
        }

        _timer.Cancel();
        _tscDeadline = v;
        if (v == 0)
        {
            return;
        }

        // Distance from the vCPU's TSC now (modular, as the TSC is cycles + offset); a deadline already passed
        // fires at the next event check.
        ulong tscNow = unchecked(Cpu.Cycles + Cpu.TscOffset);
        long ahead = unchecked((long)(v - tscNow));
        _timer.Schedule(ahead <= 0 ? _events.Now : Cpu.Cycles + (ulong)ahead);
    }

    /// <summary>
    /// Expiry at <paramref name="deadline"/>: the LVT timer interrupt (unless masked: the timer counts on,
    /// silently), then a periodic timer re-arms one period after the deadline it just reached. Periods the
    /// event check overslept are skipped rather than replayed (IRR holds one request per vector anyway).
    /// </summary>
    private void TimerExpired(ulong deadline)
    {
        TimerFires++;
        switch (TimerMode)
        {
            case TimerTscDeadline:
                _tscDeadline = 0;
                break;
            case TimerPeriodic when _timerArmed && _timerPeriod != 0:
                _timerPeriod = LimitedPeriod(_timerPeriod);
                ulong next = deadline + _timerPeriod;
                ulong now = _events.Now;
                if (next <= now)
                {
                    next += ((now - next) / _timerPeriod + 1) * _timerPeriod;
                }

                _timerDeadline = next;
                _timer.Schedule(next);
                break;
            default:
                _timerArmed = false;
                break;
        }

        DeliverLocal(LvtTimer);
    }
}
