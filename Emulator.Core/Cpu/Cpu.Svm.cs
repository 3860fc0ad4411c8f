using System.Runtime.CompilerServices;
using Emulator.Core.Memory;
using Emulator.Core.Svm;

namespace Emulator.Core.Cpu;

/// <summary>
/// The world-switch side of SVM that the hardware implements and the hypervisor (Emulator.Svm) programs: VMRUN,
/// #VMEXIT, VMLOAD and VMSAVE move state between the vCPU and VMCBs whose layout Core does not know. One
/// implementation per vCPU is installed by the machine; Core calls it only on SVM instructions and exits, never
/// per instruction. (An abstract class rather than delegates: the four operations share the per-vCPU nested state.)
/// </summary>
public abstract class SvmUnit
{
    /// <summary>
    /// VMRUN with the VMCB at guest-physical <paramref name="vmcbPa"/> (checks done: SVME, CPL, alignment, VMRUN
    /// intercept). Returns an <see cref="ExecStatus"/>; on entry into the guest the vCPU's RIP/NextRip are the guest's.
    /// </summary>
    public abstract int Vmrun(Cpu cpu, ulong vmcbPa);

    /// <summary>VMLOAD (<paramref name="save"/> false) or VMSAVE of FS, GS, TR, LDTR and the syscall MSRs.</summary>
    public abstract int VmloadVmsave(Cpu cpu, ulong vmcbPa, bool save);

    /// <summary>
    /// #VMEXIT with <paramref name="exitCode"/> from the code running under the current VMCB (L1 under L0's
    /// vmcb01, or L2 under vmcb02). The hypervisor either reflects it to L1 (L2's state and the exit information
    /// go to vmcb12 and L1 continues after its VMRUN: EndBlock) or handles it itself and enters the guest again.
    /// Returns an <see cref="ExecStatus"/> for the gate that intercepted: <see cref="ExecStatus.Continue"/> means
    /// the hypervisor emulates the instruction or event with the CPU's own implementation (the gate goes on as if
    /// nothing intercepted, as KVM's handlers re-run the instruction's semantics); anything else ends the instruction
    /// (EndBlock: it completed and RIP is NextRip; Fault: an exception is pending).
    /// </summary>
    public abstract int Exit(Cpu cpu, ulong exitCode, ulong exitInfo1, ulong exitInfo2);

    /// <summary>
    /// An #NPF exit that L0's MMU handled (the fault handler runs in Mmu, not through <see cref="Exit"/>): for the
    /// exit counts only. Not called for an #NPF reflected to L1, which goes through the nested #VMEXIT.
    /// </summary>
    public virtual void NestedPageFaultHandled(Cpu cpu)
    {
    }

    /// <summary>The vCPU's <see cref="VcpuRequest.ApicvUpdate"/>: bring its APIC virtualization up to the VM's state before it runs on.</summary>
    public virtual void ApicvUpdate(Cpu cpu)
    {
    }

    /// <summary>
    /// L1 has an interrupt pending behind IF that the hypervisor must inject (<paramref name="requested"/> true), or
    /// the window it asked for opened (false): KVM's enable_irq_window and interrupt_window_interception.
    /// </summary>
    public virtual void InterruptWindow(Cpu cpu, bool requested)
    {
    }

    /// <summary>The vCPU blocks in HLT (<paramref name="blocked"/> true) or runs again after it (KVM's vcpu_blocking/unblocking).</summary>
    public virtual void VcpuBlocking(Cpu cpu, bool blocked)
    {
    }
}

/// <summary>SVM state of the vCPU (APM vol. 2 ch. 15) and the intercept gate.</summary>
public sealed unsafe partial class Cpu
{
    /// <summary>
    /// The world-switch unit: L0, which the machine installs on every vCPU (the SVM instructions still raise #UD
    /// unless SVM is reported). Null for a bare CPU, which has no intercepts and runs everything directly.
    /// </summary>
    public SvmUnit? Svm;

    /// <summary>True while the vCPU runs a guest that its software started with VMRUN (L2 for an L1 hypervisor).</summary>
    public bool GuestMode;

    /// <summary>Global interrupt flag (APM vol. 2 §15.17): clear, it holds INTR, NMI, SMI and INIT pending.</summary>
    public bool Gif = true;

    /// <summary>
    /// The intercepts of the VMCB the vCPU runs under now: L0's vmcb01 while L1 runs, the merged vmcb02 (vmcb01's
    /// and vmcb12's) while L2 runs; empty for a bare CPU. The permission-map addresses in it are host addresses.
    /// </summary>
    public InterceptVector Intercepts;

    /// <summary>
    /// The VMCB's int_ctl while in guest mode (V_TPR, V_IRQ, V_GIF, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING,
    /// V_GIF_ENABLE; APM vol. 2 §15.21), and V_INTR_VECTOR.
    /// </summary>
    public uint VIntCtl;
    public byte VIntVector;

    /// <summary>The host's RFLAGS.IF at VMRUN: with V_INTR_MASKING it, not the guest's IF, masks physical interrupts.</summary>
    public bool HostIf;

    /// <summary>The running guest's TSC offset over its hypervisor's (vmcb12's TSC_OFFSET); 0 outside guest mode.</summary>
    public ulong NestedTscOffset;

    /// <summary>Pause-filter count left before an intercepted PAUSE exits (APM vol. 2 §15.14.4); 0: every PAUSE exits.</summary>
    public ushort PauseFilterCount;

    /// <summary>
    /// The pause-filter threshold (APM vol. 2 §15.14.4): when non-zero, an intercepted PAUSE more than this many
    /// cycles after the previous one first reloads <see cref="PauseFilterCount"/> with <see cref="PauseFilterInitialCount"/>.
    /// </summary>
    public ushort PauseFilterThreshold;

    /// <summary>vmcb12's PAUSE_FILTER_COUNT as VMRUN loaded it: what the threshold reloads.</summary>
    public ushort PauseFilterInitialCount;

    /// <summary>Cycle counter at the last intercepted PAUSE (or at VMRUN), for the pause-filter threshold.</summary>
    public ulong LastPauseCycle;

    /// <summary>An SMI is pending (<see cref="VcpuRequest.Smi"/>).</summary>
    public bool SmiPending => (Requests & VcpuRequest.Smi) != 0;

    /// <summary>
    /// An SMI arrives (an SMI IPI or LVT entry). System-management mode is not modelled, so an SMI has one visible
    /// effect: in a guest whose hypervisor intercepts SMI it causes #VMEXIT(SMI) (APM vol. 2 §15.13.3). Like NMI
    /// and INTR it is held while GIF is clear (§15.17); see <see cref="TakeSmi"/>.
    /// </summary>
    public void RaiseSmi() => MakeRequestAndKick(VcpuRequest.Smi);

    /// <summary>
    /// The <see cref="VcpuRequest.Smi"/> request at an instruction boundary. Held (request kept) while GIF is clear,
    /// behind an interrupt shadow or a debug trap. With GIF set: in a guest that intercepts SMI it exits to the
    /// hypervisor and stays pending, as the hardware leaves it for the host to take once GIF is set again;
    /// anywhere else it is dropped, which stands for entering and leaving SMM (not modelled: no SMRAM, no RSM).
    /// True when it caused a #VMEXIT.
    /// </summary>
    private bool TakeSmi(bool trapPending)
    {
        if (!Gif || InterruptShadow || trapPending)
        {
            return false;
        }

        if (Intercepted(SvmIntercept.Smi))
        {
            Halted = false;
            if (Svm!.Exit(this, SvmExit.Smi, 0, 0) != ExecStatus.Continue)
            {
                // Reflected to L1: the SMI stays pending for L1's side, where L0's own intercept takes it.
                return true;
            }
        }

        // Not intercepted, or L0's exit (vmcb01 intercepts SMI, as KVM's does): dropped, standing for SMM.
        Requests &= ~VcpuRequest.Smi;
        return false;
    }

    public const uint VIntCtlTpr = 0xFF, VIntCtlIrq = 1 << 8, VIntCtlGif = 1 << 9, VIntCtlIgnTpr = 1 << 20;
    public const uint VIntCtlMasking = 1 << 24, VIntCtlGifEnable = 1 << 25;
    public const int VIntCtlPrioShift = 16;

    /// <summary>True when the current VMCB intercepts misc intercept <paramref name="bit"/> (<see cref="SvmIntercept"/>): one bit test.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Intercepted(int bit) => Intercepts.Has(bit);

    /// <summary>
    /// #VMEXIT for an intercepted instruction (RIP at the instruction, NextRip after it). Continue: the hypervisor
    /// lets the instruction run (see <see cref="SvmUnit.Exit"/>).
    /// </summary>
    public int InterceptExit(ulong exitCode, ulong exitInfo1 = 0, ulong exitInfo2 = 0) => Svm!.Exit(this, exitCode, exitInfo1, exitInfo2);

    /// <summary>
    /// The instruction gates' form of <see cref="InterceptExit"/> (no exit information): true when the instruction ends
    /// here with <paramref name="status"/>, false when the hypervisor hands it back to run (Continue).
    /// </summary>
    public bool InterceptEnds(ulong exitCode, out int status)
    {
        status = Svm!.Exit(this, exitCode, 0, 0);
        return status != ExecStatus.Continue;
    }

    /// <summary>True when an exception on <paramref name="vector"/> exits instead of being delivered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool ExceptionIntercepted(int vector) => ((Intercepts.Exceptions >> vector) & 1) != 0;

    /// <summary>GIF as the running code sees it: V_GIF when a guest runs with VGIF enabled.</summary>
    public bool EffectiveGif => GuestMode && (VIntCtl & VIntCtlGifEnable) != 0 ? (VIntCtl & VIntCtlGif) != 0 : Gif;

    /// <summary>
    /// Writes the global interrupt flag for STGI/CLGI: the guest's V_GIF under VGIF, else GIF. Setting it may
    /// release held events, so the loop looks again.
    /// </summary>
    public void SetGif(bool value)
    {
        if (GuestMode && (VIntCtl & VIntCtlGifEnable) != 0)
        {
            VIntCtl = value ? VIntCtl | VIntCtlGif : VIntCtl & ~VIntCtlGif;
        }
        else
        {
            Gif = value;
        }

        // Setting GIF may release a held NMI or interrupt.
        MakeRequestAndKick(VcpuRequest.Nmi | VcpuRequest.Interrupt);
    }

    /// <summary>
    /// Whether a physical (INTR) interrupt may be taken now: GIF set, and RFLAGS.IF — except in a guest with
    /// V_INTR_MASKING, where the host's IF at VMRUN masks physical interrupts and the guest's IF only virtual ones
    /// (APM vol. 2 §15.21.1).
    /// </summary>
    public bool PhysicalInterruptsEnabled
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Gif && (GuestMode && (VIntCtl & VIntCtlMasking) != 0 ? HostIf : (FlagsBits & Rflags.IF) != 0);
    }

    /// <summary>
    /// A virtual interrupt (V_IRQ) can be taken: V_IRQ set, the guest's IF set, no interrupt shadow, V_GIF (with
    /// VGIF) or GIF set, and its priority above V_TPR unless V_IGN_TPR (APM vol. 2 §15.21.4).
    /// </summary>
    public bool VirtualInterruptReady =>
        (VIntCtl & VIntCtlIrq) != 0 && (FlagsBits & Rflags.IF) != 0 && !InterruptShadow && EffectiveGif
        && ((VIntCtl & VIntCtlIgnTpr) != 0 || ((VIntCtl >> VIntCtlPrioShift) & 0xF) > (VIntCtl & 0xF));

    /// <summary>
    /// Takes a ready virtual interrupt: the VINTR intercept exits at the point where it would be taken (KVM's
    /// interrupt window); otherwise V_INTR_VECTOR is delivered through the guest's IDT and V_IRQ cleared.
    /// </summary>
    private bool TryVirtualInterrupt()
    {
        if (!VirtualInterruptReady)
        {
            return false;
        }

        Halted = false;
        if (Intercepted(SvmIntercept.Vintr) && Svm!.Exit(this, SvmExit.Vintr, 0, 0) != ExecStatus.Continue)
        {
            return true;
        }

        VIntCtl &= ~VIntCtlIrq;
        InterruptsDelivered++;
        DeliverEvent(VIntVector, EventKind.External, 0, false);
        return true;
    }

    /// <summary>
    /// EXITINTINFO of the next #VMEXIT: the event that was being delivered when the exit happened (format of
    /// EVENTINJ), and its error code. The world-switch unit writes and clears them.
    /// </summary>
    public uint ExitIntInfo, ExitIntInfoError;

    /// <summary>An event in EVENTINJ/EXITINTINFO form: vector, type, error-code valid, valid (APM vol. 2 §15.20).</summary>
    public static uint EventInfo(int vector, EventKind kind, bool hasError)
    {
        uint type = kind switch
        {
            EventKind.External => 0,
            EventKind.Nmi => 2,
            EventKind.SoftwareIntN => 4,
            _ => 3,
        };
        return (uint)vector | (type << 8) | (hasError ? 1u << 11 : 0) | (1u << 31);
    }

    /// <summary>
    /// An exception (vectors 0–31, including INT3/INTO/INT1 as #BP/#OF/#DB) whose bit is set in the current VMCB's
    /// exception intercepts exits with code 0x40 + vector instead of being delivered (APM vol. 2 §15.12): EXITINFO1
    /// is the error code, EXITINFO2 the faulting address for #PF. A software exception exits with RIP at its
    /// instruction and nRIP after it. INT n is not an exception (its intercept is SWINT, in its handler). False also
    /// when the hypervisor handled the exit by re-injecting the exception (KVM's handlers for #AC, #MC and a #UD that
    /// is no VMCALL): it is then delivered as if not intercepted.
    /// </summary>
    private bool TryInterceptException(int vector, EventKind kind, uint error, bool hasError, ulong softwareRip, uint interrupted, uint interruptedError)
    {
        if (kind is EventKind.External or EventKind.Nmi or EventKind.SoftwareIntN || vector >= 32 || !ExceptionIntercepted(vector))
        {
            return false;
        }

        ulong rip = Rip, nextRip = NextRip;
        if (softwareRip != NoSoftwareEvent && kind is EventKind.SoftwareException or EventKind.PrivilegedSoftware)
        {
            NextRip = Rip;
            Rip = softwareRip;
        }

        ExitIntInfo = interrupted;
        ExitIntInfoError = interruptedError;
        PendingVector = -1;
        if (Svm!.Exit(this, SvmExit.Exception0 + (ulong)vector, hasError ? error : 0, vector == Vector.PF ? PendingFaultAddress : 0) != ExecStatus.Continue)
        {
            return true;
        }

        // Re-injected: delivered through the guest's IDT as it would have been without the intercept.
        Rip = rip;
        NextRip = nextRip;
        ExitIntInfo = ExitIntInfoError = 0;
        return false;
    }

    /// <summary>
    /// The common checks of VMRUN, VMLOAD, VMSAVE, STGI, CLGI and INVLPGA (APM vol. 3 "VMRUN" etc.): #UD without
    /// EFER.SVME, or (as KVM checks for L1) without paging, #GP(0) at CPL &gt; 0.
    /// Returns Continue when the instruction may go on to its intercept check.
    /// </summary>
    public int SvmInstructionChecks()
    {
        if (Svm == null || !Features.Has(CpuFeature.Svm) || (Efer & EferBits.SVME) == 0 || (Cr0 & Cr0Bits.PG) == 0 || Mode == CpuMode.Virtual8086)
        {
            return RaiseUD();
        }

        return Cpl != 0 ? RaiseGP() : ExecStatus.Continue;
    }
}
