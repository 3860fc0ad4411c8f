using System.Runtime.CompilerServices;

namespace Emulator.Core.Cpu;

/// <summary>Exception vectors (AMD64 APM vol. 2 §8.2).</summary>
public static class Vector
{
    public const int DE = 0, DB = 1, NMI = 2, BP = 3, OF = 4, BR = 5, UD = 6, NM = 7, DF = 8;
    public const int TS = 10, NP = 11, SS = 12, GP = 13, PF = 14, MF = 16, AC = 17, MC = 18, XF = 19, SX = 30;

    /// <summary>
    /// Not an IDT vector: the value of <see cref="Cpu.PendingVector"/> for a pending #NPF that L1 must see
    /// (<see cref="Cpu.RaiseNpf"/>). Outside 0–255, and non-negative so every "a fault is pending" check sees it.
    /// </summary>
    public const int NestedPageFault = 0x100;
}

/// <summary>
/// Raising exceptions: a handler calls one of these and returns the result (ExecStatus.Fault).
/// The loop then delivers the pending event. Nothing here throws.
/// </summary>
public sealed partial class Cpu
{
    public int PendingVector = -1;
    public uint PendingError;
    public bool PendingHasError;
    /// <summary>Trap-like software interrupts (INT n, INT3, INTO) return to the next instruction.</summary>
    public bool PendingIsSoftware;
    /// <summary>INT n (not INT3/INTO/INT1): the gate DPL is checked against CPL.</summary>
    public bool PendingIsIntN;

    /// <summary>The linear address of the last #PF raised (CR2's value, or EXITINFO2 when the #PF exits).</summary>
    public ulong PendingFaultAddress;

    [MethodImpl(MethodImplOptions.NoInlining)]
    public int Raise(int vector)
    {
        PendingVector = vector;
        PendingHasError = false;
        PendingError = 0;
        PendingIsSoftware = false;
        PendingIsIntN = false;
        return ExecStatus.Fault;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public int Raise(int vector, uint error)
    {
        PendingVector = vector;
        PendingHasError = true;
        PendingError = error;
        PendingIsSoftware = false;
        PendingIsIntN = false;
        return ExecStatus.Fault;
    }

    public int RaiseGP(uint error = 0) => Raise(Vector.GP, error);

    public int RaiseSS(uint error = 0) => Raise(Vector.SS, error);

    public int RaiseUD() => Raise(Vector.UD);

    public int RaiseDE() => Raise(Vector.DE);

    public int RaiseNM() => Raise(Vector.NM);

    [MethodImpl(MethodImplOptions.NoInlining)]
    public int RaisePF(ulong linear, uint error)
    {
        // An intercepted #PF leaves CR2 alone: the address goes to EXITINFO2 instead (APM vol. 2 §15.12).
        PendingFaultAddress = linear;
        if (!ExceptionIntercepted(Vector.PF))
        {
            Cr2 = linear;
        }

        return Raise(Vector.PF, error);
    }

    /// <summary>
    /// An access of L2 that L1's nested page tables do not allow (APM vol. 2 §15.25.6): leaves an #NPF pending with
    /// its EXITINFO1 (error code) and EXITINFO2 (faulting L2 guest-physical address). It fails the access like an
    /// exception; taking it is the #VMEXIT to L1 (Cpu.Npt.cs), not an IDT delivery.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public int RaiseNpf(ulong exitInfo1, ulong exitInfo2)
    {
        NpfExitInfo1 = exitInfo1;
        NpfExitInfo2 = exitInfo2;
        NpfEventVector = -1;
        PendingVector = Vector.NestedPageFault;
        PendingHasError = false;
        PendingError = 0;
        PendingIsSoftware = false;
        PendingIsIntN = false;
        return ExecStatus.Fault;
    }

    /// <summary>INT n / INT3 / INTO / INT1: delivered after RIP moved past the instruction.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public int RaiseSoftware(int vector, bool isIntN)
    {
        PendingVector = vector;
        PendingHasError = false;
        PendingError = 0;
        PendingIsSoftware = true;
        PendingIsIntN = isIntN;
        return ExecStatus.Fault;
    }
}
