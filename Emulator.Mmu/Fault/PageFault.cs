using Emulator.Mmu.Memory;

namespace Emulator.Mmu.Fault;

/// <summary>Result of one page fault (KVM's RET_PF_*, with Continue = 0 in front as later kernels have it).</summary>
public enum RetPf
{
    Continue = 0,
    /// <summary>Nothing more to do now: resume the guest and let it fault again if needed.</summary>
    Retry,
    /// <summary>Emulate the faulting instruction (MMIO, read-only slot, APIC page while APICv is inhibited).</summary>
    Emulate,
    /// <summary>The fast/MMIO path cannot use the SPTE: run the full fault handler.</summary>
    Invalid,
    /// <summary>An SPTE was installed or repaired.</summary>
    Fixed,
    /// <summary>The SPTE already allowed the access.</summary>
    Spurious,
    /// <summary>L1's nested page tables do not allow the access: L1 must see an #NPF.</summary>
    ReflectToGuest,
}

/// <summary>
/// Page-fault error-code bits (APM vol. 2 §8.4.2, KVM's PFERR_* names): the #PF error code the CPU pushes
/// (bits 5:0, held in 32 bits there), and the #NPF EXITINFO1, which adds bits 32 and 33 (§15.25.6).
/// </summary>
public static class PfErr
{
    public const ulong Present = 1UL << 0;
    public const ulong Write = 1UL << 1;
    public const ulong User = 1UL << 2;
    public const ulong Rsvd = 1UL << 3;
    /// <summary>I/D: the access was an instruction fetch (reported by #PF only when EFER.NXE or CR4.SMEP is set).</summary>
    public const ulong Fetch = 1UL << 4;
    /// <summary>Protection-key violation (PKU; not modelled, named for completeness).</summary>
    public const ulong Pk = 1UL << 5;
    /// <summary>#NPF: the fault was on the final guest-physical address.</summary>
    public const ulong GuestFinal = 1UL << 32;
    /// <summary>#NPF: the fault was on a guest page-table access of the guest's own walk.</summary>
    public const ulong GuestPage = 1UL << 33;
}

/// <summary>
/// One fault, passed by ref through the handler: inputs, then what the handler derived, then its
/// outputs. A struct on the caller's stack, so handling a fault allocates nothing.
/// </summary>
public struct PageFault
{
    // Inputs
    /// <summary>The faulting L1 guest-physical address (TDP faults of L1).</summary>
    public Gpa Gpa;
    /// <summary>
    /// The faulting L2 guest-physical address (shadow-NPT faults while L2 runs). A separate field and type:
    /// the shadow MMU translates it through L1's NPT and reports the L1 address it reached in Gfn.
    /// </summary>
    public L2Gpa L2Gpa;
    public ulong ErrorCode;
    /// <summary>The vCPU is running L2 (nested guest): private memslots are invisible.</summary>
    public bool IsGuestMode;
    /// <summary>Largest mapping level allowed by the caller (L1's NPT leaf size for shadow faults); 0 = no limit.</summary>
    public int MaxLevel;

    // Derived
    /// <summary>The L1 frame of the fault (for a shadow fault: the L1 frame L1's NPT maps L2Gpa to).</summary>
    public Gfn Gfn;
    public int SlotId;

    // Outputs
    public RetPf Result;
    public int Level;
    /// <summary>The host frame the installed leaf maps.</summary>
    public Hfn Pfn;
    public ulong Spte;
    public ulong ExitInfo1;
    public ulong ExitInfo2;

    public static PageFault For(Gpa gpa, ulong errorCode, bool guestMode = false) => new()
    {
        Gpa = gpa,
        ErrorCode = errorCode,
        IsGuestMode = guestMode,
        SlotId = -1,
    };

    /// <summary>A fault of L2 at <paramref name="l2Gpa"/>, for the shadow-NPT MMU.</summary>
    public static PageFault ForL2(L2Gpa l2Gpa, ulong errorCode) => new()
    {
        L2Gpa = l2Gpa,
        ErrorCode = errorCode,
        IsGuestMode = true,
        SlotId = -1,
    };

    public readonly bool IsWrite => (ErrorCode & PfErr.Write) != 0;
    public readonly bool IsPresent => (ErrorCode & PfErr.Present) != 0;
    public readonly bool IsRsvd => (ErrorCode & PfErr.Rsvd) != 0;
    public readonly bool IsFetch => (ErrorCode & PfErr.Fetch) != 0;
}
