using Emulator.Core.Cpu;
using Emulator.Core.Memory;
using Emulator.Core.Svm;
using Emulator.Mmu.Walk;
using Emulator.Svm.Vmcb;

namespace Emulator.Svm.Nested;

/// <summary>Counters of one vCPU's nested SVM (<c>--stats</c>: svm.*).</summary>
public sealed class SvmStats
{
    /// <summary>L2's exits reflected to L1, per exit code.</summary>
    private readonly ExitCounts _exits = new();

    public ulong Vmrun;
    public ulong VmrunFailed;
    public ulong Reflected;
    public ulong Vmload, Vmsave;

    internal void CountExit(ulong code) => _exits.Count(code);

    /// <summary>(exit code, count) for every exit that happened, in code order.</summary>
    public IEnumerable<(ulong Code, ulong Count)> Exits() => _exits.Nonzero();
}

/// <summary>Counts per exit code: 0x000–0x0FF directly, then NPF, the AVIC exits and VMEXIT_INVALID.</summary>
public sealed class ExitCounts
{
    private readonly ulong[] _counts = new ulong[0x104];

    internal void Count(ulong code) => _counts[Slot(code)]++;

    /// <summary>The count of <paramref name="code"/>.</summary>
    public ulong this[ulong code] => _counts[Slot(code)];

    private static int Slot(ulong code) => code switch
    {
        < 0x100 => (int)code,
        SvmExit.Npf => 0x100,
        SvmExit.AvicIncompleteIpi => 0x101,
        SvmExit.AvicNoAccel => 0x102,
        _ => 0x103,
    };

    /// <summary>(exit code, count) for every exit that happened, in code order.</summary>
    public IEnumerable<(ulong Code, ulong Count)> Nonzero()
    {
        for (int i = 0; i < _counts.Length; i++)
        {
            if (_counts[i] != 0)
            {
                ulong code = i < 0x100 ? (ulong)i : i switch { 0x100 => SvmExit.Npf, 0x101 => SvmExit.AvicIncompleteIpi, 0x102 => SvmExit.AvicNoAccel, _ => SvmExit.Invalid };
                yield return (code, _counts[i]);
            }
        }
    }
}

/// <summary>
/// L0's nested SVM for one vCPU (KVM's nested.c), owned by <see cref="Run.L0Svm"/>: L1's VMRUN exits to L0, which
/// checks L1's VMCB (vmcb12), keeps L1's state aside (vmcb01's save area in KVM; here a <see cref="CpuState"/>), and
/// runs L2 with vmcb12's state under vmcb02's intercepts (vmcb01's merged with vmcb12's, KVM's recalc_intercepts).
/// An L2 exit that vmcb12 intercepts (<see cref="L1Intercepts"/>) is reflected to L1 as a #VMEXIT: L2's state and
/// the exit information are written to vmcb12 and L1 resumes after its VMRUN with GIF clear, under vmcb01 again.
/// The other L2 exits are L0's (its exit-handler table).
/// </summary>
public sealed unsafe class NestedSvm
{
    private readonly PhysicalMemory _memory;
    private readonly Run.Vmcb01 _vmcb01;
    private CpuState _l1;
    private ulong _vmcb12;
    private bool _nestedPaging;

    /// <summary>vmcb12 enables LBR virtualization; then L1's DebugCtl and LBR MSRs are kept here while L2 runs.</summary>
    private bool _lbrVirtualized;
    private ulong _l1DebugCtl, _l1BranchFrom, _l1BranchTo, _l1ExceptionFrom, _l1ExceptionTo;

    /// <summary>vmcb12's own intercepts (map addresses are L1 guest-physical), kept for the reflect decision.</summary>
    private InterceptVector _vmcb12Intercepts;

    internal NestedSvm(PhysicalMemory memory, Run.Vmcb01 vmcb01)
    {
        _memory = memory;
        _vmcb01 = vmcb01;
    }

    public SvmStats Stats { get; } = new();

    /// <summary>
    /// Flush the TLB of the world entered at every VMRUN and #VMEXIT, as KVM through Linux 6.x does
    /// (nested_svm_transition_tlb_flush, whose TODO lists what a conditional flush must honour). Off by default: L0
    /// then flushes L2's ASID only when that list asks (L1's TLB_CONTROL, a new vmcb12 ASID or N_CR3, L1's nested
    /// tables changing, remote flushes), and L1's entries survive L2's run.
    /// </summary>
    public bool FlushOnTransition { get; set; }

    /// <summary>
    /// TLB_CONTROL (APM vol. 2 §15.16; low three bits, as KVM masks it): 1 flushes every ASID, 3 and 7 L2's. Other values
    /// are reserved and do nothing.
    /// </summary>
    private static void ApplyTlbControl(Cpu cpu, byte control)
    {
        switch (control & 7)
        {
            case 1:
                cpu.FlushAllTlbs();
                break;
            case 3:
            case 7:
                cpu.FlushGuestTlb();
                break;
        }
    }

    /// <summary>The tagged-TLB space L2 runs in: vmcb12's ASID and, with nested paging, L1's tables as the walk reads them.</summary>
    private TlbSpace GuestSpace(VmcbView v) => _nestedPaging
        ? new TlbSpace(v.U32(VmcbOffset.Asid), true, v.U64(VmcbOffset.NestedCr3), PagingModes.FromControlRegisters(_l1.Cr4, _l1.Efer),
            (_l1.Efer & EferBits.NXE) != 0, (_l1.Cr4 & Cr4Bits.SMEP) != 0)
        : new TlbSpace(v.U32(VmcbOffset.Asid), false, 0, default, false, false);

    /// <summary>
    /// Linux 5.19's per-vCPU NESTED inhibit (Machine's <c>--apicv-nested vcpu</c>): entering and leaving guest mode ask
    /// for the vCPU's APICv update (enter_svm_guest_mode requests KVM_REQ_APICV_UPDATE while the vCPU's APICv is
    /// active; nested_svm_vmexit updates at once when the VM's is), so L1's AVIC is off exactly while L2 runs.
    /// </summary>
    internal bool ApicvUpdateOnTransition { get; set; }

    /// <summary>L1 GPA of the VMCB that L2 runs under (valid in guest mode).</summary>
    public ulong Vmcb12 => _vmcb12;

    /// <summary>
    /// The VMCB page at L1 guest-physical <paramref name="pa"/> as L0 maps it (KVM's kvm_vcpu_map): RAM only.
    /// </summary>
    private VmcbView Map(ulong pa) => new(_memory.RamPointer(pa, 4096));

    /// <summary>L1's VMRUN, which L0 emulates after its VMRUN exit (the exit charged the round trip).</summary>
    internal int Vmrun(Cpu cpu, ulong vmcbPa)
    {
        VmcbView v = Map(vmcbPa);
        if (v.IsNull)
        {
            // KVM cannot map L1's VMCB: #GP(0).
            return cpu.RaiseGP();
        }

        cpu.Cycles += cpu.Costs.HypervisorExit;
        Stats.Vmrun++;
        if (!VmrunChecks.Valid(cpu, v))
        {
            // VMRUN completes with EXITCODE VMEXIT_INVALID; L1 continues after it (APM vol. 2 §15.5.1).
            Stats.VmrunFailed++;
            Stats.CountExit(SvmExit.Invalid);
            v.U64(VmcbOffset.ExitCode) = SvmExit.Invalid;
            v.U64(VmcbOffset.ExitInfo1) = 0;
            v.U64(VmcbOffset.ExitInfo2) = 0;
            return ExecStatus.Continue;
        }

        _vmcb12 = vmcbPa;
        cpu.SaveState(out _l1, cpu.NextRip);

        // The guest's state (APM vol. 2 §15.5.1 "VMRUN"): FS, GS, TR, LDTR and the syscall MSRs stay as they are
        // (VMLOAD's business).
        CpuState g = _l1;
        g.Seg[SegReg.ES] = Canonical(v.GetSegment(VmcbOffset.Es));
        g.Seg[SegReg.CS] = Canonical(v.GetSegment(VmcbOffset.Cs));
        g.Seg[SegReg.SS] = Canonical(v.GetSegment(VmcbOffset.Ss));
        g.Seg[SegReg.DS] = Canonical(v.GetSegment(VmcbOffset.Ds));
        g.Gdtr = v.GetTable(VmcbOffset.Gdtr);
        g.Idtr = v.GetTable(VmcbOffset.Idtr);
        g.Gdtr.Base = CanonicalBase(g.Gdtr.Base);
        g.Idtr.Base = CanonicalBase(g.Idtr.Base);
        g.Efer = v.U64(VmcbOffset.Efer);
        g.Cr0 = v.U64(VmcbOffset.Cr0);
        g.Cr2 = v.U64(VmcbOffset.Cr2);
        g.Cr3 = v.U64(VmcbOffset.Cr3);
        g.Cr4 = v.U64(VmcbOffset.Cr4);
        g.Dr6 = (v.U64(VmcbOffset.Dr6) & 0xFFFF_FFFF) | 0xFFFF_0FF0;
        g.Dr7 = (v.U64(VmcbOffset.Dr7) & 0xFFFF_FFFF) | 0x400;
        g.Rflags = v.U64(VmcbOffset.Rflags);
        g.Rip = v.U64(VmcbOffset.Rip);
        g.Rsp = v.U64(VmcbOffset.Rsp);
        g.Rax = v.U64(VmcbOffset.Rax);
        g.Cpl = v.U8(VmcbOffset.Cpl) & 3;

        // EFER.LMA follows LME and CR0.PG, as the processor would have set it.
        g.Efer = (g.Efer & ~EferBits.LMA) | ((g.Efer & EferBits.LME) != 0 && (g.Cr0 & Cr0Bits.PG) != 0 ? EferBits.LMA : 0);

        _nestedPaging = (v.U64(VmcbOffset.NestedCtl) & 1) != 0 && cpu.Features.Has(CpuFeature.Npt);
        if (_nestedPaging)
        {
            g.Pat = v.U64(VmcbOffset.GPat);
        }

        _vmcb12Intercepts = Run.Vmcb01.ReadIntercepts(v);
        cpu.Intercepts = _vmcb01.MergeForL2(_vmcb12Intercepts, _memory);
        cpu.VIntCtl = v.U32(VmcbOffset.IntCtl);
        cpu.VIntVector = (byte)v.U32(VmcbOffset.IntVector);
        cpu.HostIf = (_l1.Rflags & Rflags.IF) != 0;
        cpu.PauseFilterCount = cpu.Features.Has(CpuFeature.PauseFilter) ? v.U16(VmcbOffset.PauseFilterCount) : (ushort)0;
        cpu.PauseFilterInitialCount = cpu.PauseFilterCount;
        cpu.PauseFilterThreshold = cpu.Features.Has(CpuFeature.PauseFilterThreshold) ? v.U16(VmcbOffset.PauseFilterThreshold) : (ushort)0;
        cpu.LastPauseCycle = cpu.Cycles;
        cpu.NestedTscOffset = v.U64(VmcbOffset.TscOffset);
        cpu.TscOffset += cpu.NestedTscOffset;
        cpu.GuestMode = true;
        cpu.Gif = true;
        if (ApicvUpdateOnTransition && cpu.Avic != null)
        {
            // Handled before L2's first instruction (the request ends the block).
            cpu.MakeRequestAndKick(VcpuRequest.ApicvUpdate);
        }

        LoadLbr(cpu, v);
        ApplyTlbControl(cpu, v.U8(VmcbOffset.TlbControl));
        cpu.LoadState(g, GuestSpace(v));
        if (FlushOnTransition)
        {
            cpu.FlushTranslations();
        }

        cpu.InterruptShadow = (v.U32(VmcbOffset.IntState) & 1) != 0;
        if (_nestedPaging)
        {
            EnterNestedPaging(cpu, v.U64(VmcbOffset.NestedCr3));
        }

        uint inj = v.U32(VmcbOffset.EventInj);
        if ((inj & EventInj.Valid) != 0)
        {
            Inject(cpu, inj, v.U32(VmcbOffset.EventInjErr), v.U64(VmcbOffset.NextRip));
        }

        return ExecStatus.EndBlock;
    }

    /// <summary>
    /// Delivers vmcb12's EVENTINJ through L2's IDT before its first instruction (APM vol. 2 §15.20). A software
    /// interrupt returns to nRIP when the CPU reports NRIPS (L1 put the next instruction's address there).
    /// </summary>
    private static void Inject(Cpu cpu, uint inj, uint error, ulong nextRip)
    {
        int vector = (int)(inj & EventInj.VectorMask);
        uint type = (inj & EventInj.TypeMask) >> (int)EventInj.TypeShift;
        bool hasError = (inj & EventInj.ErrorValid) != 0;
        switch (type)
        {
            case EventInj.TypeNmi:
                cpu.DeliverEvent(Vector.NMI, EventKind.Nmi, 0, false);
                break;
            case EventInj.TypeException:
                cpu.DeliverEvent(vector, EventKind.Exception, error, hasError);
                break;
            case EventInj.TypeSoftInt:
                if (cpu.Features.Has(CpuFeature.NRips))
                {
                    cpu.Rip = nextRip;
                }

                cpu.DeliverEvent(vector, EventKind.SoftwareIntN, 0, false);
                break;
            default:
                cpu.DeliverEvent(vector, EventKind.External, 0, false);
                break;
        }

        cpu.NextRip = cpu.Rip;
    }

    /// <summary>Segment bases loaded by VMRUN are made canonical, not checked (APM vol. 2 §15.5.1).</summary>
    private static SegmentCache Canonical(SegmentCache s)
    {
        s.Base = CanonicalBase(s.Base);
        return s;
    }

    private static ulong CanonicalBase(ulong b) => (ulong)((long)(b << 16) >> 16);

    /// <summary>
    /// True when vmcb12 intercepts the L2 exit (KVM's nested_svm_exit_handled): its intercept bit, and for IOIO and
    /// MSR exits also its I/O or MSR permission map (read in L1's memory; an unreadable byte counts as set). A nested
    /// #NPF is always L1's: it comes from L1's nested tables.
    /// </summary>
    internal bool L1Intercepts(Cpu cpu, ulong exitCode, ulong exitInfo1)
    {
        ref readonly InterceptVector i = ref _vmcb12Intercepts;
        var reader = new GuestRamReader(_memory);
        return exitCode switch
        {
            < SvmExit.CrWrite0 => ((i.Cr >> (int)exitCode) & 1) != 0,
            < SvmExit.DrRead0 => ((i.Cr >> (int)(exitCode - SvmExit.CrWrite0 + 16)) & 1) != 0,
            < SvmExit.DrWrite0 => ((i.Dr >> (int)(exitCode - SvmExit.DrRead0)) & 1) != 0,
            < SvmExit.Exception0 => ((i.Dr >> (int)(exitCode - SvmExit.DrWrite0 + 16)) & 1) != 0,
            < SvmExit.Intr => ((i.Exceptions >> (int)(exitCode - SvmExit.Exception0)) & 1) != 0,
            SvmExit.Ioio => i.Has(SvmIntercept.IoioProt)
                && PermissionMaps.IoIntercepted(ref reader, i.IopmBase, (ushort)(exitInfo1 >> 16), (int)((exitInfo1 >> 4) & 7)),
            SvmExit.Msr => i.Has(SvmIntercept.MsrProt)
                && PermissionMaps.MsrIntercepted(ref reader, i.MsrpmBase, (uint)cpu.Gpr[Reg.RCX], exitInfo1 != 0),
            <= SvmExit.Rdpru => i.Has((int)(exitCode - SvmExit.Intr)),
            >= 0xA0 and < 0xC0 => ((i.Misc3 >> (int)(exitCode - 0xA0)) & 1) != 0,
            _ => true,
        };
    }

    /// <summary>Reflects an L2 exit that vmcb12 intercepts to L1 (the #VMEXIT L1 sees).</summary>
    internal int Reflect(Cpu cpu, ulong exitCode, ulong exitInfo1, ulong exitInfo2)
    {
        VmcbView v = Map(_vmcb12);
        Stats.CountExit(exitCode);
        Stats.Reflected++;
        cpu.Cycles += cpu.Costs.VmexitRoundTrip + cpu.Costs.HypervisorExit;
        if (_nestedPaging)
        {
            LeaveNestedPaging(cpu);
        }

        if (!v.IsNull)
        {
            cpu.SaveState(out CpuState g, cpu.Rip);
            v.SetSegment(VmcbOffset.Es, g.Seg[SegReg.ES]);
            v.SetSegment(VmcbOffset.Cs, g.Seg[SegReg.CS]);
            v.SetSegment(VmcbOffset.Ss, g.Seg[SegReg.SS]);
            v.SetSegment(VmcbOffset.Ds, g.Seg[SegReg.DS]);
            v.SetTable(VmcbOffset.Gdtr, g.Gdtr);
            v.SetTable(VmcbOffset.Idtr, g.Idtr);
            v.U64(VmcbOffset.Efer) = g.Efer;
            v.U64(VmcbOffset.Cr0) = g.Cr0;
            v.U64(VmcbOffset.Cr2) = g.Cr2;
            v.U64(VmcbOffset.Cr3) = g.Cr3;
            v.U64(VmcbOffset.Cr4) = g.Cr4;
            v.U64(VmcbOffset.Dr6) = g.Dr6;
            v.U64(VmcbOffset.Dr7) = g.Dr7;
            v.U64(VmcbOffset.Rflags) = g.Rflags;
            v.U64(VmcbOffset.Rip) = g.Rip;
            v.U64(VmcbOffset.Rsp) = g.Rsp;
            v.U64(VmcbOffset.Rax) = g.Rax;
            v.U8(VmcbOffset.Cpl) = (byte)g.Cpl;
            if (_nestedPaging)
            {
                v.U64(VmcbOffset.GPat) = g.Pat;
            }

            // int_ctl: the CPU writes back V_TPR and V_IRQ, and V_GIF under VGIF.
            uint writeBack = IntCtl.VTprMask | IntCtl.VIrq | ((cpu.VIntCtl & IntCtl.VGifEnable) != 0 ? IntCtl.VGif : 0);
            v.U32(VmcbOffset.IntCtl) = (v.U32(VmcbOffset.IntCtl) & ~writeBack) | (cpu.VIntCtl & writeBack);
            v.U32(VmcbOffset.IntState) = cpu.InterruptShadow ? 1u : 0u;
            v.U64(VmcbOffset.ExitCode) = exitCode;
            v.U64(VmcbOffset.ExitInfo1) = exitInfo1;
            v.U64(VmcbOffset.ExitInfo2) = exitInfo2;
            v.U32(VmcbOffset.ExitIntInfo) = cpu.ExitIntInfo;
            v.U32(VmcbOffset.ExitIntInfoErr) = cpu.ExitIntInfoError;
            v.U32(VmcbOffset.EventInj) &= ~EventInj.Valid;
            v.U64(VmcbOffset.NextRip) = cpu.Features.Has(CpuFeature.NRips) && IsInstructionExit(exitCode) ? cpu.NextRip : 0;
        }

        SaveLbr(cpu, v);

        // Back to L1 after its VMRUN (APM vol. 2 §15.7.2): CR0.PE forced, breakpoints disabled, CPL 0, GIF clear.
        CpuState h = _l1;
        h.Cr0 |= Cr0Bits.PE;
        h.Dr7 = 0x400;
        h.Cpl = 0;
        h.Cr2 = cpu.Cr2;
        h.Dr6 = cpu.Dr6;
        cpu.ExitIntInfo = cpu.ExitIntInfoError = 0;
        cpu.GuestMode = false;
        if (ApicvUpdateOnTransition)
        {
            // Back in L1: its AVIC comes back on (if the VM's APICv is active) before L1's next instruction.
            cpu.MakeRequestAndKick(VcpuRequest.ApicvUpdate);
        }

        cpu.Intercepts = _vmcb01.Intercepts;
        cpu.VIntCtl = 0;
        cpu.Gif = false;
        cpu.TscOffset -= cpu.NestedTscOffset;
        cpu.NestedTscOffset = 0;
        cpu.LoadState(h, TlbSpace.Host);
        if (FlushOnTransition)
        {
            cpu.FlushTranslations();
        }

        cpu.SingleStepAfterVmexit();
        return ExecStatus.EndBlock;
    }

    /// <summary>
    /// LBR virtualization (APM vol. 2 §15.23): with VIRT_EXT bit 0 set, VMRUN keeps L1's DebugCtl and LBR MSRs and
    /// loads L2's from vmcb12's save area, so neither sees the other's branches. Without it they are shared: L2
    /// starts with L1's DebugCtl and L1 finds what L2 recorded.
    /// </summary>
    private void LoadLbr(Cpu cpu, VmcbView v)
    {
        _lbrVirtualized = cpu.Features.Has(CpuFeature.LbrVirt) && (v.U64(VmcbOffset.VirtExt) & VirtExt.LbrVirtualization) != 0;
        if (!_lbrVirtualized)
        {
            return;
        }

        _l1DebugCtl = cpu.DebugCtl;
        _l1BranchFrom = cpu.LastBranchFromIp;
        _l1BranchTo = cpu.LastBranchToIp;
        _l1ExceptionFrom = cpu.LastExceptionFromIp;
        _l1ExceptionTo = cpu.LastExceptionToIp;
        // Bits DebugCtl does not implement are dropped, as a WRMSR could not have set them.
        cpu.DebugCtl = v.U64(VmcbOffset.DbgCtl) & Cpu.DebugCtlValidBits;
        cpu.LastBranchFromIp = v.U64(VmcbOffset.BrFrom);
        cpu.LastBranchToIp = v.U64(VmcbOffset.BrTo);
        cpu.LastExceptionFromIp = v.U64(VmcbOffset.LastExcpFrom);
        cpu.LastExceptionToIp = v.U64(VmcbOffset.LastExcpTo);
    }

    /// <summary>#VMEXIT under LBR virtualization: L2's DebugCtl and LBR MSRs go to vmcb12, L1's come back.</summary>
    private void SaveLbr(Cpu cpu, VmcbView v)
    {
        if (!_lbrVirtualized)
        {
            return;
        }

        _lbrVirtualized = false;
        if (!v.IsNull)
        {
            v.U64(VmcbOffset.DbgCtl) = cpu.DebugCtl;
            v.U64(VmcbOffset.BrFrom) = cpu.LastBranchFromIp;
            v.U64(VmcbOffset.BrTo) = cpu.LastBranchToIp;
            v.U64(VmcbOffset.LastExcpFrom) = cpu.LastExceptionFromIp;
            v.U64(VmcbOffset.LastExcpTo) = cpu.LastExceptionToIp;
        }

        cpu.DebugCtl = _l1DebugCtl;
        cpu.LastBranchFromIp = _l1BranchFrom;
        cpu.LastBranchToIp = _l1BranchTo;
        cpu.LastExceptionFromIp = _l1ExceptionFrom;
        cpu.LastExceptionToIp = _l1ExceptionTo;
    }

    /// <summary>Exits caused by an instruction, for which the CPU reports the next instruction's RIP (NRIPS).</summary>
    private static bool IsInstructionExit(ulong code) =>
        code is (< 0x40) or (>= SvmExit.Rdtsc and <= SvmExit.Invlpga) or SvmExit.Ioio or SvmExit.Msr
            or (>= SvmExit.Vmrun and <= SvmExit.Rdpru) or SvmExit.Cr0SelectiveWrite or (>= SvmExit.IdtrRead and <= SvmExit.TrWrite);

    /// <summary>VMLOAD/VMSAVE, which L0 emulates after their exit (the exit charged the round trip).</summary>
    internal int VmloadVmsave(Cpu cpu, ulong vmcbPa, bool save)
    {
        VmcbView v = Map(vmcbPa);
        if (v.IsNull)
        {
            return cpu.RaiseGP();
        }

        cpu.Cycles += cpu.Costs.HypervisorExit;
        if (save)
        {
            Stats.Vmsave++;
            v.SetSegment(VmcbOffset.Fs, cpu.Seg[SegReg.FS]);
            v.SetSegment(VmcbOffset.Gs, cpu.Seg[SegReg.GS]);
            v.SetSegment(VmcbOffset.Tr, cpu.Seg[Cpu.TrIndex]);
            v.SetSegment(VmcbOffset.Ldtr, cpu.Seg[Cpu.LdtrIndex]);
            v.U64(VmcbOffset.KernelGsBase) = cpu.KernelGsBase;
            v.U64(VmcbOffset.Star) = cpu.Star;
            v.U64(VmcbOffset.Lstar) = cpu.Lstar;
            v.U64(VmcbOffset.Cstar) = cpu.Cstar;
            v.U64(VmcbOffset.Sfmask) = cpu.Sfmask;
            v.U64(VmcbOffset.SysenterCs) = cpu.SysenterCs;
            v.U64(VmcbOffset.SysenterEsp) = cpu.SysenterEsp;
            v.U64(VmcbOffset.SysenterEip) = cpu.SysenterEip;
            return ExecStatus.Continue;
        }

        // VMLOAD makes the bases canonical (APM vol. 2 §15.5.2).
        Stats.Vmload++;
        cpu.Seg[SegReg.FS] = Canonical(v.GetSegment(VmcbOffset.Fs));
        cpu.Seg[SegReg.GS] = Canonical(v.GetSegment(VmcbOffset.Gs));
        cpu.Seg[Cpu.TrIndex] = Canonical(v.GetSegment(VmcbOffset.Tr));
        cpu.Seg[Cpu.LdtrIndex] = Canonical(v.GetSegment(VmcbOffset.Ldtr));
        cpu.KernelGsBase = CanonicalBase(v.U64(VmcbOffset.KernelGsBase));
        cpu.Star = v.U64(VmcbOffset.Star);
        cpu.Lstar = v.U64(VmcbOffset.Lstar);
        cpu.Cstar = v.U64(VmcbOffset.Cstar);
        cpu.Sfmask = v.U64(VmcbOffset.Sfmask);
        cpu.SysenterCs = v.U64(VmcbOffset.SysenterCs);
        cpu.SysenterEsp = v.U64(VmcbOffset.SysenterEsp);
        cpu.SysenterEip = v.U64(VmcbOffset.SysenterEip);
        cpu.SegmentLoaded(SegReg.FS);
        cpu.SegmentLoaded(SegReg.GS);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// L2 under vmcb12's nested paging runs on the shadow of L1's nested tables (DESIGN: "Flow of one
    /// nested-paging fault"); their format is L1's paging mode at VMRUN and NX follows L1's EFER.NXE (APM vol. 2
    /// §15.25.3). The root changes inside the world switch, whose LoadState flushes the software TLB once (just
    /// before entry, just after exit, with no access in between), so these do not flush again.
    /// </summary>
    private void EnterNestedPaging(Cpu cpu, ulong nestedCr3) =>
        cpu.EnterNestedPaging(nestedCr3, PagingModes.FromControlRegisters(_l1.Cr4, _l1.Efer), (_l1.Efer & EferBits.NXE) != 0, (_l1.Cr4 & Cr4Bits.SMEP) != 0, flush: false);

    private static void LeaveNestedPaging(Cpu cpu) => cpu.LeaveNestedPaging(flush: false);

    /// <summary>
    /// The #NPF that L1's nested tables give L2 (<see cref="Cpu.NestedPageFaultExit"/>): a #VMEXIT with the
    /// hardware's EXITINFO1/2, and the event being delivered, if any, in EXITINTINFO.
    /// </summary>
    public void NestedPageFault(Cpu cpu)
    {
        if (cpu.NpfEventVector >= 0)
        {
            cpu.ExitIntInfo = Cpu.EventInfo(cpu.NpfEventVector, cpu.NpfEventKind, cpu.NpfEventHasError);
            cpu.ExitIntInfoError = cpu.NpfEventError;
            cpu.NpfEventVector = -1;
        }

        Reflect(cpu, SvmExit.Npf, cpu.NpfExitInfo1, cpu.NpfExitInfo2);
    }
}

/// <summary>Reads a permission map of L1's (vmcb12's) in L1's guest-physical memory, as KVM reads it: RAM only.</summary>
internal readonly unsafe struct GuestRamReader(PhysicalMemory memory) : IPermissionMapReader
{
    public bool ReadByte(ulong address, out byte value)
    {
        byte* p = memory.RamPointer(address, 1);
        value = p == null ? (byte)0 : *p;
        return p != null;
    }
}
