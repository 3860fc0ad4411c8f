using System.Runtime.CompilerServices;
using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Shadow;
using Emulator.Mmu.Walk;
using MmuPageFault = Emulator.Mmu.Fault.PageFault;
using NpfErr = Emulator.Mmu.Fault.PfErr;
using Spte = Emulator.Mmu.Spte.Spte;

namespace Emulator.Core.Cpu;

/// <summary>
/// The vCPU's translation root for guest-physical addresses (DESIGN.md, "Flow of one nested-paging fault"):
/// L0's TDP MMU while the vCPU runs L1, and the shadow of L1's nested page tables (<see cref="ShadowNptMmu"/>)
/// while it runs an L2 guest with nested paging enabled. The SVM layer switches the root at VMRUN and
/// #VMEXIT with <see cref="EnterNestedPaging"/> and <see cref="LeaveNestedPaging"/>; a translation that L1's
/// tables do not allow leaves an #NPF pending, which <see cref="NestedPageFaultExit"/> turns into the #VMEXIT.
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>The shadow NPT while this vCPU runs L2 with nested paging; null while it runs L1.</summary>
    private ShadowNptMmu? _nestedNpt;

    // L1's nested paging state from VMRUN (vmcb12 N_CR3, L1's paging mode and EFER.NXE).
    private ulong _nestedCr3;
    private PagingMode _l1Mode;
    private bool _l1Nxe;

    /// <summary>Nested-paging faults of L2 this vCPU took to L0's shadow MMU (each run of its handler).</summary>
    public ulong NestedPageFaults;

    /// <summary>Faults of L2 that became an #NPF for L1 (ReflectToGuest).</summary>
    public ulong NestedPageFaultsReflected;

    /// <summary>True while guest-physical addresses are L2 addresses translated through the shadow NPT.</summary>
    public bool InNestedPaging => _nestedNpt != null;

    /// <summary>EXITINFO1/EXITINFO2 of the pending (or last) #NPF for L1: error code and faulting L2 GPA.</summary>
    public ulong NpfExitInfo1, NpfExitInfo2;

    /// <summary>
    /// The event the vCPU was delivering when the #NPF happened (for EXITINTINFO), or -1 when the #NPF came
    /// from an instruction's own access.
    /// </summary>
    public int NpfEventVector = -1;
    public EventKind NpfEventKind;
    public uint NpfEventError;
    public bool NpfEventHasError;

    /// <summary>True when the pending event is an #NPF for L1 (<see cref="RaiseNpf"/>).</summary>
    public bool PendingNpf => PendingVector == Vector.NestedPageFault;

    /// <summary>
    /// Called when a pending #NPF is taken (the SVM layer performs #VMEXIT(NPF) to L1 with <see cref="NpfExitInfo1"/>,
    /// <see cref="NpfExitInfo2"/> and, when set, the interrupted event). Without a hook the vCPU shuts down.
    /// </summary>
    public Action<Cpu>? NestedPageFaultExit;

    /// <summary>
    /// Switches this vCPU's guest-physical addresses to L2's: translated through L1's nested page tables at
    /// <paramref name="nCr3"/> (format <paramref name="l1Mode"/>, NX honoured when <paramref name="l1Nxe"/>) by the
    /// VM's shadow NPT. The software TLB is flushed: its entries belong to the other address space. A world switch
    /// that flushes anyway (<see cref="LoadState"/> next to this call, with no access in between) passes
    /// <paramref name="flush"/> false.
    /// </summary>
    public void EnterNestedPaging(ulong nCr3, PagingMode l1Mode, bool l1Nxe, bool l1Smep = false, bool flush = true)
    {
        _l1Smep = l1Smep;
        var shadow = Phys.ShadowNpt ?? throw new InvalidOperationException("nested paging for L2 needs L0's MMU");
        _nestedCr3 = nCr3;
        _l1Mode = l1Mode;
        _l1Nxe = l1Nxe;
        _nestedNpt = shadow;
        // A root that cannot be allocated (table arena full) is retried by the next translation.
        shadow.Load(nCr3, l1Mode, l1Nxe);
        if (flush)
        {
            FlushTlb();
        }
    }

    private bool _l1Smep;

    /// <summary>Back to L1's addresses (TDP); the software TLB is flushed unless <paramref name="flush"/> is false (as for <see cref="EnterNestedPaging"/>).</summary>
    public void LeaveNestedPaging(bool flush = true)
    {
        if (_nestedNpt != null)
        {
            _nestedNpt = null;
            if (flush)
            {
                FlushTlb();
            }
        }
    }

    /// <summary>
    /// Translates guest-physical <paramref name="gpa"/> of this vCPU's current address space for an access of
    /// kind <paramref name="access"/> (<see cref="NpfErr"/> bits: Write, Fetch, GuestPage for a table access of
    /// the guest's own page walk). Continue/Fixed/Spurious: mapped at host offset <paramref name="hpa"/>.
    /// Emulate: complete the access with <see cref="PhysicalMemory.EmulatedRead"/>/<see cref="PhysicalMemory.EmulatedWrite"/>
    /// at L1 guest-physical <paramref name="l1Gpa"/> (the same address outside L2). ReflectToGuest (only in L2):
    /// L1's tables do not allow the access; an #NPF is pending (<see cref="PendingNpf"/>) and the access must fail
    /// as it does for an exception.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public RetPf TranslateGpa(ulong gpa, ulong access, out ulong hpa, out ulong l1Gpa)
    {
        if (_nestedNpt == null)
        {
            l1Gpa = gpa;
            if (GuestMode && (gpa >> 12) == Emulator.Mmu.Fault.MmuContext.ApicAccessGfn.Value)
            {
                // L2 without nested paging uses L1's addresses, but in KVM under its own MMU root (role.guest_mode), where
                // private memslots do not exist: the APIC-access page is MMIO there, and the access is emulated (L1's
                // local APIC answers), never served from the page L0 maps for L1's AVIC.
                return Phys.PrivatePageFromL2(gpa, access, out hpa);
            }

            return Phys.TranslateGpa(gpa, access, out hpa);
        }

        return TranslateL2(gpa, access, out hpa, out l1Gpa);
    }

    /// <summary>An L1 guest-physical address with nothing behind it: emulating at it reads all ones and drops writes.</summary>
    private const ulong UnbackedGpa = ulong.MaxValue & ~0xFFFUL;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RetPf TranslateL2(ulong gpa, ulong access, out ulong hpa, out ulong l1Gpa)
    {
        var shadow = _nestedNpt!;
        // One shadow MMU per VM with a cache of roots: switch back to ours if another vCPU loaded its own
        // (a compare when it is ours, a cache hit otherwise; no rebuild).
        shadow.Load(_nestedCr3, _l1Mode, _l1Nxe);
        shadow.ReportFetch = _l1Nxe || _l1Smep;
        if ((access & NpfErr.GuestPage) != 0)
        {
            // The guest's page-table accesses are checked as user writes in the nested tables, since the CPU
            // may set A/D bits in them; the #NPF reports W=1 even for a read (APM vol. 2 §15.25.5).
            access |= NpfErr.Write;
        }

        var l2 = new L2Gpa(gpa);
        l1Gpa = UnbackedGpa;
        RetPf r = RetPf.Retry;
        for (int attempt = 0; ; attempt++)
        {
            ulong spte = shadow.Lookup(l2.Gfn, out int level);
            if (AllowsL2(spte, access))
            {
                hpa = (Spte.Pfn(spte) << 12) + (gpa & ((Emulator.Mmu.Tdp.TdpMmu.PagesAt(level) << 12) - 1));
                if (attempt == 0)
                {
                    return RetPf.Continue;
                }

                ChargeL0NestedFault();
                return r;
            }

            if (attempt == PhysicalMemory.MaxFaultAttempts || r == RetPf.Invalid)
            {
                break;
            }

            ulong err = PhysicalMemory.NpfErrorCode(spte, access);

            var pf = MmuPageFault.ForL2(l2, err);
            r = shadow.Handle(ref pf);
            NestedPageFaults++;
            if (r == RetPf.Spurious && !AllowsL2(shadow.Lookup(l2.Gfn, out _), access))
            {
                // The shadow already holds this leaf and it still refuses the write: the L1 page is write-tracked
                // (it holds L1 nested tables). Emulate the write; the write notifier then drops the shadow built
                // from that page, as KVM's page-track emulation does.
                r = RetPf.Emulate;
            }

            if (r == RetPf.Emulate)
            {
                // pf.Gfn is the L1 frame L1's tables map the L2 address to: the access is L1's MMIO (or read-only
                // or write-tracked memory) and is emulated there.
                hpa = 0;
                l1Gpa = pf.Gfn.ToGpa().Value | (gpa & 0xFFF);
                ChargeL0NestedFault();
                return r;
            }

            if (r == RetPf.ReflectToGuest)
            {
                hpa = 0;
                NestedPageFaultsReflected++;
                RaiseNpf(pf.ExitInfo1, pf.ExitInfo2);
                ChargeNestedFault();
                return r;
            }

            // Fixed or Spurious: the next lookup finds the mapping. Retry: walk and fault again. Invalid (no
            // root: the table arena is full): give up below.
        }

        Diagnostic?.Invoke($"emu: L2 nested-paging fault at gpa 0x{gpa:X} unresolved (last {r}); the access reads all ones");
        hpa = 0;
        ChargeL0NestedFault();
        return RetPf.Emulate;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool AllowsL2(ulong spte, ulong access) =>
        Spte.IsShadowPresent(spte)
        && ((access & NpfErr.Write) == 0 || (spte & Spte.Writable) != 0)
        && ((access & NpfErr.Fetch) == 0 || (spte & Spte.NoExecute) == 0);

    /// <summary>One #NPF of L2 handled by L0 (round trip and handler), charged once per faulting access.</summary>
    private void ChargeNestedFault() => Cycles += Costs.VmexitRoundTrip + Costs.FaultHandling;

    /// <summary><see cref="ChargeNestedFault"/> for a fault L0 resolved itself, which is also one of L0's exits.</summary>
    private void ChargeL0NestedFault()
    {
        ChargeNestedFault();
        Svm?.NestedPageFaultHandled(this);
    }

    /// <summary>Takes a pending #NPF: the SVM layer's #VMEXIT, or shutdown when nothing handles it.</summary>
    private void TakeNestedPageFault()
    {
        if (NestedPageFaultExit is { } exit)
        {
            exit(this);
            return;
        }

        Diagnostic?.Invoke($"emu: nested page fault for L1 (exitinfo1 0x{NpfExitInfo1:X}, exitinfo2 0x{NpfExitInfo2:X}) with no #VMEXIT handler: shutdown at RIP 0x{Rip:X}");
        Shutdown = true;
    }

    /// <summary>An #NPF while delivering an event: L1 sees the event in EXITINTINFO of the #VMEXIT (APM vol. 2 §15.7.2).</summary>
    private void TakeNestedPageFaultDuringDelivery(int vector, EventKind kind, uint error, bool hasError)
    {
        NpfEventVector = vector;
        NpfEventKind = kind;
        NpfEventError = error;
        NpfEventHasError = hasError;
        TakeNestedPageFault();
    }
}
