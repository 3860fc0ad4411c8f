using Emulator.Core.Timing;

namespace Emulator.Core.Devices.Acpi;

/// <summary>
/// The ACPI PM I/O block at 0x600–0x63F (PLATFORM.md), as QEMU's PIIX4 power-management function presents
/// it: PM1a_EVT_BLK (status and enable, offsets 0 and 2), PM1a_CNT_BLK (offset 4) and the PM timer
/// (offset 8). Nothing else in the block is decoded: those ports read all ones and drop writes.
/// <para>
/// The PM timer counts at 3.579545 MHz from machine start (ACPI 6.5 §4.8.3.3), 24 bits wide (FADT
/// TMR_VAL_EXT clear), derived from the cycle clock, so runs are deterministic. TMR_STS is set each time
/// bit 23 of the count changes (§4.8.3.1); as on QEMU it also reads set from reset until first cleared.
/// With TMR_EN set, TMR_STS raises the SCI (ISA IRQ 9, level, active high).
/// </para>
/// <para>
/// PM1a_CNT is a plain register; SCI_EN reads set from reset because the FADT has no SMI command port
/// (the machine is always in ACPI mode, §4.8.2.5). Writing SLP_EN with SLP_TYP 0 (the DSDT's \_S5, soft
/// off) or 2 (QEMU's S4 value) powers the machine off; sleeping in S1–S3 is not modelled and ignored.
/// </para>
/// <para>
/// Access widths as QEMU's memory core carries them out (<see cref="PortPieces"/>): PM1 registers take
/// byte and word accesses, dwords split into words; the PM timer takes any width, and a narrower read of
/// any of its bytes returns the low bits of the count (QEMU does not shift by the byte lane).
/// </para>
/// </summary>
public sealed class PmTimer : IPortDevice, IPieceDevice
{
    public const ushort PortBase = 0x600;
    public const int Size = 0x40;

    /// <summary>Offsets in the block of PM1a_EVT_BLK (STS, EN), PM1a_CNT_BLK and PM_TMR_BLK.</summary>
    public const int Pm1StatusOffset = 0, Pm1EnableOffset = 2, Pm1ControlOffset = 4, TimerOffset = 8;

    public const int Pm1EventLength = 4, Pm1ControlLength = 2, TimerLength = 4;

    /// <summary>PM timer frequency, ACPI 6.5 §4.8.3.3.</summary>
    public const ulong Frequency = 3_579_545;

    public const uint TimerMask = 0xFF_FFFF;

    /// <summary>The SCI's ISA IRQ (FADT SCI_INT; QEMU's PIIX4 wires it to IRQ 9).</summary>
    public const int SciIrq = 9;

    /// <summary>PM1 status bits (ACPI 6.5 table 4.16): TMR, BM, GBL, PWRBTN, SLPBTN, RTC, WAK.</summary>
    public const ushort TmrSts = 1 << 0, GblSts = 1 << 5, PwrBtnSts = 1 << 8, RtcSts = 1 << 10, WakSts = 1 << 15;

    /// <summary>PM1 enable bits (ACPI 6.5 table 4.17): TMR, GBL, PWRBTN, SLPBTN, RTC.</summary>
    public const ushort TmrEn = 1 << 0, GblEn = 1 << 5, PwrBtnEn = 1 << 8, RtcEn = 1 << 10;

    /// <summary>PM1 control bits (ACPI 6.5 table 4.18): SCI_EN, BM_RLD, GBL_RLS, SLP_TYP (12:10), SLP_EN.</summary>
    public const ushort SciEn = 1 << 0, SlpEn = 1 << 13;
    public const int SlpTypShift = 10;

    /// <summary>Sleep types the machine implements: soft off (\_S5) and QEMU's PIIX4 S4 value, also off.</summary>
    public const int SlpTypSoftOff = 0, SlpTypS4 = 2;

    /// <summary>Status bits whose enable raises the SCI on QEMU: TMR, GBL, PWRBTN, RTC.</summary>
    private const ushort SciSources = TmrEn | GblEn | PwrBtnEn | RtcEn;

    private readonly EventQueue _events;
    private readonly IIrqSink? _sci;
    private readonly Action? _powerOff;
    private readonly TimerEvent _overflow;
    private ushort _status;
    private ushort _enable;
    private ushort _control = SciEn;
    private ulong _overflowTick;
    private bool _sciLevel;

    /// <param name="events">The machine's timer queue; its clock is the PM timer's time base.</param>
    /// <param name="sci">Where the SCI goes (the ISA router, line <see cref="SciIrq"/>); null: not wired.</param>
    /// <param name="powerOff">Called when the guest enters soft-off through PM1a_CNT.</param>
    public PmTimer(EventQueue events, IIrqSink? sci = null, Action? powerOff = null)
    {
        ArgumentNullException.ThrowIfNull(events);
        _events = events;
        _sci = sci;
        _powerOff = powerOff;
        _overflow = events.Create("acpi.pm_timer", _ => UpdateSci());
    }

    /// <summary>Whole PM timer ticks since the machine started (not masked).</summary>
    public ulong Ticks => GuestClock.ToTicks(_events.Now, Frequency);

    /// <summary>The PM_TMR register: the tick count, 24 bits.</summary>
    public uint Count => (uint)(Ticks & TimerMask);

    public ushort Status
    {
        get
        {
            if (Ticks >= _overflowTick)
            {
                _status |= TmrSts;
            }

            return _status;
        }
    }

    public ushort Enable => _enable;

    public ushort Control => _control;

    /// <summary>Level of the SCI output.</summary>
    public bool SciAsserted => _sciLevel;

    public uint In(ushort offset, int size) => PortPieces.Read(this, offset, size);

    public void Out(ushort offset, int size, uint value) => PortPieces.Write(this, offset, size, value);

    uint IPieceDevice.ReadPiece(int port, int remaining, out int n)
    {
        if (port < Pm1EventLength)
        {
            n = PortPieces.Size(port, remaining, 2);
            return port switch
            {
                Pm1StatusOffset => Status,
                Pm1EnableOffset => _enable,
                _ => 0, // the high byte on its own: QEMU's register reads 0 at odd offsets
            };
        }

        if (port < Pm1ControlOffset + Pm1ControlLength)
        {
            n = PortPieces.Size(port - Pm1ControlOffset, remaining, 2);
            return (uint)_control >> (8 * (port - Pm1ControlOffset));
        }

        if (port >= TimerOffset && port < TimerOffset + TimerLength)
        {
            n = PortPieces.Size(port - TimerOffset, remaining, 4);
            return Count;
        }

        n = 1;
        return 0xFF;
    }

    int IPieceDevice.WritePiece(int port, int remaining, uint part)
    {
        int n;
        if (port < Pm1EventLength)
        {
            n = PortPieces.Size(port, remaining, 2);
            ushort v = (ushort)(part & PortPieces.Mask(n));
            if (port == Pm1StatusOffset)
            {
                WriteStatus(v);
            }
            else if (port == Pm1EnableOffset)
            {
                _enable = v;
                UpdateSci();
            }
        }
        else if (port < Pm1ControlOffset + Pm1ControlLength)
        {
            n = PortPieces.Size(port - Pm1ControlOffset, remaining, 2);
            uint v = part & PortPieces.Mask(n);
            WriteControl(port == Pm1ControlOffset ? (ushort)v : (ushort)((v << 8) | (_control & 0xFFu)));
        }
        else if (port >= TimerOffset && port < TimerOffset + TimerLength)
        {
            n = PortPieces.Size(port - TimerOffset, remaining, 4); // read-only
        }
        else
        {
            n = 1;
        }

        return n;
    }

    /// <summary>Write-one-to-clear; clearing TMR_STS arms the next overflow (the next change of bit 23).</summary>
    private void WriteStatus(ushort v)
    {
        if ((Status & v & TmrSts) != 0)
        {
            _overflowTick = (Ticks + 0x80_0000) & ~0x7F_FFFFUL;
        }

        _status &= (ushort)~v;
        UpdateSci();
    }

    private void WriteControl(ushort v)
    {
        _control = (ushort)(v & ~SlpEn);
        if ((v & SlpEn) != 0)
        {
            int type = (v >> SlpTypShift) & 7;
            if (type is SlpTypSoftOff or SlpTypS4)
            {
                _powerOff?.Invoke();
            }
        }
    }

    /// <summary>Drives the SCI from status and enable, and arms the overflow event while TMR_EN waits for TMR_STS.</summary>
    private void UpdateSci()
    {
        ushort status = Status;
        bool level = (status & _enable & SciSources) != 0;
        if (level != _sciLevel)
        {
            _sciLevel = level;
            _sci?.SetIrq(SciIrq, level);
        }

        if ((_enable & TmrEn) != 0 && (status & TmrSts) == 0)
        {
            _overflow.Schedule(GuestClock.ToCycles(_overflowTick, Frequency));
        }
        else
        {
            _overflow.Cancel();
        }
    }
}
