using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Svm;
using Emulator.Svm.Avic;
using Emulator.Svm.Vmcb;

namespace Emulator.Svm.Run;

/// <summary>
/// L0's AVIC for one vCPU (KVM's avic.c): it programs vmcb01's AVIC fields and the VM's tables, turns the unit on or
/// off when the VM's APICv state changes (<see cref="ApicvUpdate"/>, on the vCPU's own request bit), keeps the vCPU's
/// IsRunning bit as it blocks in HLT and runs again, and handles the two AVIC exits.
/// </summary>
public sealed unsafe partial class L0Svm
{
    private AvicTables? _avicTables;
    private int _apicId, _hostId;

    /// <summary>The logical-table entry this vCPU holds now, or -1 (KVM's ldr_reg bookkeeping).</summary>
    private int _logicalIndex = -1;

    /// <summary>The vCPU's AVIC hardware, once L0 has set AVIC up for it (null: AVIC never used on this vCPU).</summary>
    internal AvicUnit? Avic { get; private set; }

    /// <summary>True when the VM's APICv is active (no inhibit reason); L0 asks the VM (the MMU holds the reasons).</summary>
    internal Func<bool>? ApicvActive { get; set; }

    /// <summary>
    /// Linux 5.19's per-vCPU NESTED inhibit (<see cref="ApicvNestedInhibit.Vcpu"/>): this vCPU's AVIC is off while it is
    /// in guest mode, whatever the VM's state (avic_vcpu_get_apicv_inhibit_reasons returns NESTED for is_guest_mode).
    /// </summary>
    internal bool NestedInhibitsVcpu { get; set; }

    /// <summary>
    /// Gives the vCPU AVIC (KVM's avic_init_vcpu and avic_init_vmcb): its physical-table entry (backing page, valid)
    /// and vmcb01's APIC_BAR, backing page and table pointers. The unit is turned on by the next <see cref="ApicvUpdate"/>.
    /// </summary>
    internal void SetUpAvic(Cpu cpu, AvicTables tables, IAvicBacking apic, int apicId, int hostId)
    {
        _avicTables = tables;
        _apicId = apicId;
        _hostId = hostId;
        Avic = new AvicUnit(tables) { Apic = apic };
        tables.Physical[apicId] = ((ulong)apic.Page & AvicTables.BackingMask) | AvicTables.Valid;
        tables.SetVcpu(apicId, apic);
        var v = Vmcb01.View;
        v.U64(VmcbOffset.AvicApicBar) = 0xFEE0_0000;
        v.U64(VmcbOffset.AvicBackingPage) = (ulong)apic.Page;
        v.U64(VmcbOffset.AvicLogicalTable) = tables.LogicalAddress;
        v.U64(VmcbOffset.AvicPhysicalTable) = tables.PhysicalAddress | AvicTables.MaxXAvicIndex;
        cpu.MakeRequestAndKick(VcpuRequest.ApicvUpdate);
    }

    /// <summary>
    /// KVM_REQ_APICV_UPDATE (kvm_vcpu_update_apicv, then avic_refresh_apicv_exec_ctrl): AVIC_ENABLE in vmcb01 follows
    /// the VM's state, and with it the unit and this vCPU's IsRunning (avic_vcpu_load/put). L2 never runs with AVIC
    /// (vmcb02 has none, as KVM never gives L2 AVIC), so only vmcb01 changes.
    /// </summary>
    public override void ApicvUpdate(Cpu cpu)
    {
        if (Avic is not { } unit || _avicTables is not { } tables)
        {
            return;
        }

        // Per vCPU, AVIC also needs the APIC enabled in xAPIC mode (KVM deactivates APICv on a vCPU whose APIC is
        // disabled since 5.17; 5.15's AVIC has no x2APIC mode). Off on one vCPU only, the APIC-access page stays
        // mapped, so that vCPU's accesses reach the page itself, as memory.
        // Under 5.19's rule a vCPU running L2 also has its own NESTED reason (kvm_vcpu_update_apicv ORs the vCPU's
        // reasons into the VM's): its AVIC is off and its physical entry not running, so IPIs from other vCPUs end in
        // INCOMPLETE_IPI and L0 delivers them the emulated way. The VM-wide state is untouched (no SPTE zapped: L2
        // never maps the APIC-access page, so there is nothing to hide).
        bool active = (ApicvActive?.Invoke() ?? false)
            && !(NestedInhibitsVcpu && cpu.GuestMode)
            && (cpu.ApicBase & (Cpu.ApicBaseEnable | Cpu.ApicBaseExtd)) == Cpu.ApicBaseEnable;
        var v = Vmcb01.View;
        uint intCtl = v.U32(VmcbOffset.IntCtl);
        bool was = (intCtl & IntCtl.AvicEnable) != 0;
        if (active == was)
        {
            return;
        }

        v.U32(VmcbOffset.IntCtl) = active ? intCtl | IntCtl.AvicEnable : intCtl & ~IntCtl.AvicEnable;
        SetRunning(tables, active && !cpu.Halted);
        if (active)
        {
            // (While L2 runs the unit stays off by itself: the memory path only routes L1's accesses to it.)
            unit.Load(v);
            UpdateLogicalEntry(tables, unit.Apic!);
            cpu.SetAvic(unit, unit.ApicBar);

            // Interrupts requested while AVIC was off are in the same page: evaluate them under AVIC now.
            unit.Apic?.RescanIrr();
        }
        else
        {
            cpu.SetAvic(null, 0);
        }
    }

    /// <summary>L0 wants an interrupt window (true) or got it (false); the machine turns it into the IRQWIN inhibit.</summary>
    internal Action<bool>? IrqWindow { get; set; }

    /// <summary>
    /// KVM 5.15's svm_enable_irq_window inhibits APICv (IRQWIN) because it injects through V_IRQ, which AVIC ignores,
    /// and interrupt_window_interception lifts the inhibit. One VM-wide bit, as in 5.15 (later kernels count requests).
    /// </summary>
    public override void InterruptWindow(Cpu cpu, bool requested) => IrqWindow?.Invoke(requested);

    /// <summary>avic_vcpu_blocking / unblocking: a vCPU halted in HLT is not running, so IPIs to it exit and L0 wakes it.</summary>
    public override void VcpuBlocking(Cpu cpu, bool blocked)
    {
        if (_avicTables is { } tables && (Vmcb01.View.U32(VmcbOffset.IntCtl) & IntCtl.AvicEnable) != 0)
        {
            SetRunning(tables, !blocked);
        }
    }

    /// <summary>
    /// Points this vCPU's logical APIC ID table entry at its APIC ID (KVM's avic_ldr_write): the index is derived from
    /// the logical ID in LDR bits 31:24, flat (DFR model 0xF: the set bit, 0–7) or cluster (cluster · 4 + the set bit of
    /// the low nibble, cluster 15 being broadcast). An ID that names no single entry (zero, or several bits) leaves the
    /// vCPU without one, as in KVM; IPIs to it then exit as invalid targets and L0 emulates them.
    /// </summary>
    private void UpdateLogicalEntry(AvicTables tables, IAvicBacking apic)
    {
        if (_logicalIndex >= 0)
        {
            tables.Logical[_logicalIndex] = 0;
            _logicalIndex = -1;
        }

        uint id = *(uint*)(apic.Page + ApicReg.Ldr) >> 24;
        bool flat = *(uint*)(apic.Page + ApicReg.Dfr) >> 28 == 0xF;
        uint bits = flat ? id : id & 0xF;
        if (bits == 0 || (bits & (bits - 1)) != 0 || (!flat && id >> 4 == 0xF))
        {
            return;
        }

        int bit = System.Numerics.BitOperations.TrailingZeroCount(bits);
        _logicalIndex = flat ? bit : (int)((id >> 4) * 4) + bit;
        tables.Logical[_logicalIndex] = AvicTables.LogicalValid | (uint)_apicId;
    }

    private void SetRunning(AvicTables tables, bool running)
    {
        ref ulong e = ref tables.Physical[_apicId];
        e = running
            ? (e & ~AvicTables.HostIdMask) | (uint)_hostId | AvicTables.IsRunning
            : e & ~AvicTables.IsRunning;
        tables.SetCore(_hostId, running ? Avic!.Apic : null);
    }

    /// <summary>
    /// AVIC_NOACCEL (KVM's avic_unaccelerated_access_interception): a trapped write already sits in the backing page
    /// and L0 does its side effects; a faulted access is emulated (the local APIC's MMIO path, charged as emulation).
    /// </summary>
    private static int AvicNoAccel(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2)
    {
        if (l0.Avic is not { Apic: { } apic } unit)
        {
            return l0.Unknown(cpu, SvmExit.AvicNoAccel);
        }

        if (!unit.PendingIsFault && (exitInfo1 >> 32 & 1) != 0)
        {
            int offset = (int)(exitInfo1 & 0xFF0);
            apic.CommitWrite(offset);
            if (offset is ApicReg.Ldr or ApicReg.Dfr && l0._avicTables is { } tables)
            {
                // avic_handle_ldr_update / dfr update: the logical table follows the guest's LDR and DFR.
                l0.UpdateLogicalEntry(tables, apic);
            }
        }
        else
        {
            unit.EmulatePending();
        }

        return ExecStatus.EndBlock;
    }

    /// <summary>
    /// AVIC_INCOMPLETE_IPI (KVM's avic_incomplete_ipi_interception): an IPI the unit could not deliver (cause 0, 2) is
    /// sent by L0's APIC emulation from the ICR in the backing page; targets that were not running (cause 1) already
    /// have their IRR bits and are woken; an invalid vector (4) or backing page (3) is dropped.
    /// </summary>
    private static int AvicIncompleteIpi(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2)
    {
        if (l0.Avic is not { Apic: { } apic } unit || l0._avicTables is not { } tables)
        {
            return l0.Unknown(cpu, SvmExit.AvicIncompleteIpi);
        }

        switch ((uint)(exitInfo2 >> 32))
        {
            case AvicUnit.InvalidIntType or AvicUnit.InvalidTarget:
                apic.CommitWrite(ApicReg.IcrLow);
                break;
            case AvicUnit.TargetNotRunning:
                for (int id = 0; id <= AvicTables.MaxXAvicIndex; id++)
                {
                    if (unit.WasNotRunning(id))
                    {
                        tables.Vcpu(id)?.RescanIrr();
                    }
                }

                break;
        }

        return ExecStatus.EndBlock;
    }
}
