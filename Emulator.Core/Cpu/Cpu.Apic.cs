using Emulator.Core.Devices.Apic;

namespace Emulator.Core.Cpu;

/// <summary>
/// What the local APIC and the other vCPUs reach inside a CPU: the task priority (CR8 aliases TPR[7:4],
/// APM vol. 2 §16.6.4), NMI with its blocking until IRET (§8.2.3), and the INIT / Startup-IPI protocol
/// that brings an application processor from wait-for-SIPI to real mode at vector·0x1000 (§16.5).
/// </summary>
public sealed partial class Cpu
{
    /// <summary>This vCPU's local APIC, when the platform has one.</summary>
    public LocalApic? Apic;

    private byte _tpr;

    /// <summary>
    /// The APIC task-priority register; MOV CR8 reads and writes bits 7:4. With a local APIC it is the TPR in that
    /// APIC's register page (the one copy, as KVM keeps it; see <see cref="LocalApic.TaskPriority"/>). A new
    /// priority can make a requested vector deliverable: every write asks the loop to look at the controller at the
    /// next block boundary.
    /// </summary>
    public byte Tpr
    {
        get => Apic is { } apic ? apic.TaskPriority : _tpr;
        set
        {
            if (Apic is { } apic)
            {
                apic.TaskPriority = value;
            }
            else
            {
                _tpr = value;
            }

            MakeRequest(VcpuRequest.Interrupt);
        }
    }

    public ulong Cr8 => (ulong)(Tpr >> 4);

    private bool _nmiPending;
    private bool _nmiBlocked;

    /// <summary>An NMI is latched and waits for delivery; latching one requests <see cref="VcpuRequest.Nmi"/>.</summary>
    public bool NmiPending
    {
        get => _nmiPending;
        set
        {
            _nmiPending = value;
            if (value)
            {
                MakeRequest(VcpuRequest.Nmi);
            }
        }
    }

    /// <summary>
    /// An NMI handler is running: further NMIs wait until the next IRET. The loop drops the NMI request while
    /// blocked; unblocking with an NMI latched requests it again.
    /// </summary>
    public bool NmiBlocked
    {
        get => _nmiBlocked;
        set
        {
            _nmiBlocked = value;
            if (!value && _nmiPending)
            {
                MakeRequest(VcpuRequest.Nmi);
            }
        }
    }

    /// <summary>Several vCPUs share the host thread: a spinning PAUSE yields the slice (<see cref="RunExit.Yielded"/>).</summary>
    public bool YieldOnPause;

    /// <summary>Instructions between two PAUSEs at one RIP that make a spin loop.</summary>
    public const ulong SpinWindow = 64;

    internal ulong LastPauseRip = ulong.MaxValue;
    internal ulong LastPauseInstructions;

    public ulong NmisDelivered;
    public ulong InitsReceived;
    public ulong StartupsReceived;

    /// <summary>Latches an NMI (edge): it is delivered when not blocked, ahead of maskable interrupts.</summary>
    public void RaiseNmi()
    {
        NmiPending = true;
        MakeRequestAndKick(VcpuRequest.Nmi);
    }

    /// <summary>
    /// INIT: processor state as after RESET (APM vol. 2 §14.1.3), except that an application processor then
    /// waits for a Startup IPI instead of running. The x87/SSE state and most MSRs are kept, as INIT does.
    /// </summary>
    public void Init()
    {
        InitsReceived++;
        for (int i = 0; i < 16; i++)
        {
            Gpr[i] = 0;
        }

        ResetToRealMode();
        // Reset vector F000:FFF0 with CS base FFFF0000.
        Seg[SegReg.CS] = SegmentCache.RealMode(0xF000, 0x9B);
        Seg[SegReg.CS].Base = 0xFFFF_0000;
        Rip = 0xFFF0;
        Gpr[Reg.RDX] = 0xA00F11; // family/model/stepping signature left in EDX after reset (family 19h)
        Halted = false;
        NmiPending = false;
        NmiBlocked = false;
        InterruptShadow = false;
        PendingVector = -1;
        WaitingForSipi = !IsBsp;
        FlushAllTlbs();
        Apic?.Reset();
        ExitRequest = 1;
    }

    /// <summary>Startup IPI: a vCPU waiting for SIPI starts in real mode at CS = vector·0x100, IP = 0; otherwise ignored.</summary>
    public void StartUp(byte vector)
    {
        StartupsReceived++;
        if (!WaitingForSipi)
        {
            return;
        }

        WaitingForSipi = false;
        Halted = false;
        Seg[SegReg.CS] = SegmentCache.RealMode((ushort)(vector << 8), 0x9B);
        Rip = 0;
        BumpCodeEpoch();
        ExitRequest = 1;
    }
}
