namespace Emulator.Core.Cpu;

/// <summary>L0's answer to a CPUID leaf of the hypervisor range (0x40000000–0x400000FF).</summary>
public delegate void HypervisorCpuid(uint leaf, out uint eax, out uint ebx, out uint ecx, out uint edx);

/// <summary>L0's handler of one of its paravirtual MSRs: false when L0 has no such MSR (#GP(0)) or refuses the value.</summary>
public delegate bool ParavirtMsr(Cpu cpu, uint msr, bool write, ref ulong value);

/// <summary>
/// Hooks through which L0 (the KVM model in Emulator.Svm) presents its paravirtual interface: the hypervisor
/// CPUID range and KVM's MSRs. Both are exits to L0 on real hardware (CPUID and MSR intercepts); the CPU
/// only forwards them. Null means L0 offers nothing there: the leaves read zero and the MSRs fault.
/// </summary>
public sealed partial class Cpu
{
    public const uint HypervisorLeafFirst = 0x4000_0000, HypervisorLeafLast = 0x4000_00FF;

    /// <summary>KVM's MSR range (MSR_KVM_WALL_CLOCK_NEW = 0x4B564D00 and the rest of "KVM\0").</summary>
    public const uint ParavirtMsrFirst = 0x4B56_4D00, ParavirtMsrLast = 0x4B56_4DFF;

    public HypervisorCpuid? HypervisorLeaves;

    public ParavirtMsr? ParavirtMsrs;
}
