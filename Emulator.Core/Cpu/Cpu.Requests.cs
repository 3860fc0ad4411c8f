namespace Emulator.Core.Cpu;

/// <summary>
/// Bits of <see cref="Cpu.Requests"/>, the one word the interpreter loop tests after each block (KVM's
/// <c>vcpu-&gt;requests</c> with its KVM_REQ_* bits). A set bit keeps the vCPU out of the fast path until
/// <see cref="Cpu.Run"/> has looked at it.
/// <para>
/// Two kinds share the word. Requests are raised by a producer and cleared by <see cref="Cpu.Run"/> once
/// handled (<see cref="Nmi"/>, <see cref="Interrupt"/>, <see cref="TlbFlush"/>, <see cref="Event"/>,
/// <see cref="ApicvUpdate"/>, <see cref="Smi"/>). Conditions are vCPU states that stay set for as long as they hold and have a
/// bool view on <see cref="Cpu"/> (<see cref="Stop"/>, <see cref="Shutdown"/>, <see cref="WaitForSipi"/>,
/// <see cref="Yield"/>, <see cref="InterruptShadow"/>).
/// </para>
/// </summary>
public static class VcpuRequest
{
    /// <summary>A device asked the machine to stop (<see cref="Cpu.StopRequested"/>).</summary>
    public const int Stop = 1 << 0;

    /// <summary>The vCPU shut down on a triple fault (<see cref="Cpu.Shutdown"/>).</summary>
    public const int Shutdown = 1 << 1;

    /// <summary>The vCPU took INIT and waits for a Startup IPI (<see cref="Cpu.WaitingForSipi"/>).</summary>
    public const int WaitForSipi = 1 << 2;

    /// <summary>A spinning PAUSE gives the rest of the slice away.</summary>
    public const int Yield = 1 << 3;

    /// <summary>STI, MOV SS or POP SS blocks interrupts for the next instruction (<see cref="Cpu.InterruptShadow"/>).</summary>
    public const int InterruptShadow = 1 << 4;

    /// <summary>The NMI latch or NMI blocking changed: look at <see cref="Cpu.NmiPending"/> (KVM_REQ_NMI).</summary>
    public const int Nmi = 1 << 5;

    /// <summary>
    /// The interrupt controller may have something for this vCPU (KVM_REQ_EVENT): an interrupt was accepted, the
    /// priority or the routing changed, or RFLAGS.IF opened a window on a parked interrupt. The loop asks the
    /// controller; a hint that finds nothing is dropped.
    /// </summary>
    public const int Interrupt = 1 << 6;

    /// <summary>L0's NPT lost entries (zap): flush the software TLB (KVM_REQ_TLB_FLUSH).</summary>
    public const int TlbFlush = 1 << 7;

    /// <summary>A timer deadline moved earlier than the one the running block was given (<see cref="Cpu.NextEventCycle"/>).</summary>
    public const int Event = 1 << 8;

    /// <summary>APICv was inhibited or uninhibited VM-wide (KVM_REQ_APICV_UPDATE): the vCPU's hypervisor updates its AVIC state.</summary>
    public const int ApicvUpdate = 1 << 9;

    /// <summary>
    /// An SMI is pending (KVM_REQ_SMI); the bit is the latch (<see cref="Cpu.SmiPending"/>). GIF clear holds it;
    /// then it exits an L2 whose hypervisor intercepts SMI, and is otherwise dropped (<see cref="Cpu.RaiseSmi"/>).
    /// </summary>
    public const int Smi = 1 << 10;
}

/// <summary>The request word and the producers' side of it (see <see cref="VcpuRequest"/>).</summary>
public sealed partial class Cpu
{
    /// <summary>
    /// <see cref="VcpuRequest"/> bits. Zero on the fast path: <see cref="RunBlocks"/> keeps chaining blocks only
    /// while it is. All vCPUs of a machine run on one host thread, so plain read-modify-writes suffice. A new
    /// vCPU starts with <see cref="VcpuRequest.Interrupt"/>, so it asks its controller, whatever was wired in
    /// before it first runs.
    /// </summary>
    internal int Requests = VcpuRequest.Interrupt;

    /// <summary>
    /// Sets request bits without a kick (KVM's kvm_make_request): the vCPU sees them at its next block boundary.
    /// For producers inside an instruction that ends its block anyway, and for those the loop used to poll at
    /// block boundaries (the boundaries, and so the modeled cycle counts, stay where they were).
    /// </summary>
    public void MakeRequest(int request) => Requests |= request;

    /// <summary>
    /// Sets request bits and kicks the vCPU (KVM's kvm_make_request_and_kick): if it is the one running, its
    /// block ends after the current instruction; otherwise it sees the bits when it next runs.
    /// </summary>
    public void MakeRequestAndKick(int request)
    {
        Requests |= request;
        ExitRequest = 1;
    }

    private void SetCondition(int bit, bool on)
    {
        if (on)
        {
            Requests |= bit;
        }
        else
        {
            Requests &= ~bit;
        }
    }

    /// <summary>Set by a device that wants the run to end (isa-debug-exit, Bochs shutdown).</summary>
    public bool StopRequested
    {
        get => (Requests & VcpuRequest.Stop) != 0;
        set => SetCondition(VcpuRequest.Stop, value);
    }

    /// <summary>Set when the CPU shut down (triple fault).</summary>
    public bool Shutdown
    {
        get => (Requests & VcpuRequest.Shutdown) != 0;
        set => SetCondition(VcpuRequest.Shutdown, value);
    }

    /// <summary>The vCPU has taken INIT and waits for a Startup IPI (APs start here).</summary>
    public bool WaitingForSipi
    {
        get => (Requests & VcpuRequest.WaitForSipi) != 0;
        set => SetCondition(VcpuRequest.WaitForSipi, value);
    }

    internal bool YieldRequested
    {
        get => (Requests & VcpuRequest.Yield) != 0;
        set => SetCondition(VcpuRequest.Yield, value);
    }

    /// <summary>
    /// Interrupt shadow after STI / MOV SS / POP SS: the next instruction runs before any interrupt. Those
    /// instructions end their block, so the bit reaches the loop right after them.
    /// </summary>
    public bool InterruptShadow
    {
        get => (Requests & VcpuRequest.InterruptShadow) != 0;
        set => SetCondition(VcpuRequest.InterruptShadow, value);
    }

    /// <summary>
    /// An interrupt request the loop saw while RFLAGS.IF was clear: it parked it here instead of leaving every
    /// block for it (KVM's interrupt window). <see cref="InterruptWindowOpened"/> raises it again.
    /// </summary>
    private bool _interruptWindowArmed;

    /// <summary>
    /// Called by the instructions that can set RFLAGS.IF (STI, POPF, IRET, SYSRET) after they did: a parked
    /// interrupt request becomes a request again. All of them end their block, so the loop sees it before the
    /// next one (after the shadow instruction, for STI).
    /// </summary>
    internal void InterruptWindowOpened()
    {
        if (_interruptWindowArmed && (FlagsBits & Rflags.IF) != 0)
        {
            _interruptWindowArmed = false;
            Requests |= VcpuRequest.Interrupt;
        }

        if (_hypervisorWindow && (FlagsBits & Rflags.IF) != 0)
        {
            _hypervisorWindow = false;
            Svm?.InterruptWindow(this, false);
        }
    }

    /// <summary>The hypervisor was told it needs an interrupt window (<see cref="SvmUnit.InterruptWindow"/>) that has not opened yet.</summary>
    private bool _hypervisorWindow;

    /// <summary>
    /// An interrupt is pending while L1's IF is clear and L0 would have to inject it itself when IF opens: an ExtINT
    /// from the PIC, or any interrupt while AVIC is off on this vCPU (with AVIC on, the hardware delivers APIC vectors
    /// from the backing page on its own). L0 then asks for an interrupt window (KVM's enable_irq_window).
    /// </summary>
    private void RequestHypervisorWindow()
    {
        if (_hypervisorWindow || Svm == null || GuestMode || !Gif || (FlagsBits & Rflags.IF) != 0)
        {
            return;
        }

        if ((Avic == null || Apic is { ExtIntNext: true }) && Interrupts is { HasPendingInterrupt: true })
        {
            _hypervisorWindow = true;
            Svm.InterruptWindow(this, true);
        }
    }

    /// <summary>Called by L0's MMU after a zap asked for a remote TLB flush (KVM's kvm_flush_remote_tlbs).</summary>
    private void RemoteTlbFlush() => MakeRequest(VcpuRequest.TlbFlush);
}
