namespace Emulator.Core.Cpu;

/// <summary>
/// An instruction the hypervisor (L0) intercepts and completes outside the guest: the handler updates the vCPU
/// (registers, RIP through <see cref="Cpu.NextRip"/>, cycles) and returns an <see cref="ExecStatus"/>, as an
/// instruction handler does.
/// </summary>
public delegate int InterceptedInstruction(Cpu cpu);

/// <summary>
/// The exits to L0 that a guest causes on purpose. The CPU only knows that the exit happens; what L0 does with it
/// is installed by the machine (Emulator.Svm), so Core stays free of the hypervisor's rules.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>
    /// L0's VMMCALL intercept (SVM exit VMMCALL, APM vol. 2 §15.9). Null when no hypervisor runs this vCPU:
    /// VMMCALL that nobody intercepts raises #UD (APM vol. 3 "VMMCALL").
    /// </summary>
    public InterceptedInstruction? VmmcallExit;

    /// <summary>
    /// L0's #UD intercept for VMCALL, Intel's hypercall instruction, which an AMD processor does not implement
    /// (#UD). Null: the guest takes the #UD.
    /// </summary>
    public InterceptedInstruction? VmcallUdExit;
}
