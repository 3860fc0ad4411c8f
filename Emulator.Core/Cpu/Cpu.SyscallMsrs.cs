namespace Emulator.Core.Cpu;

/// <summary>
/// MSR state used by SYSCALL/SYSRET, SYSENTER/SYSEXIT and SWAPGS (APM vol. 2 §6.1). The MSR instructions
/// (Cpu.Msr.cs) read and write these fields; the instructions that use them live in Exec.Interrupt.cs.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>STAR: [31:0] legacy SYSCALL EIP, [47:32] SYSCALL CS/SS base selector, [63:48] SYSRET CS/SS base selector.</summary>
    public ulong Star;

    /// <summary>LSTAR / CSTAR: SYSCALL target RIP from 64-bit / compatibility mode.</summary>
    public ulong Lstar, Cstar;

    /// <summary>SFMASK: RFLAGS bits that SYSCALL clears in long mode.</summary>
    public ulong Sfmask;

    /// <summary>KernelGSbase: swapped with GS.base by SWAPGS.</summary>
    public ulong KernelGsBase;

    public ulong SysenterCs, SysenterEsp, SysenterEip;
}
