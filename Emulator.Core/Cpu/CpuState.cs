namespace Emulator.Core.Cpu;

/// <summary>
/// The architectural state a world switch moves as one value: what the VMCB's state-save area holds for VMRUN
/// and #VMEXIT (segments ES/CS/SS/DS, GDTR, IDTR, control and debug registers, EFER, RFLAGS materialised, RIP,
/// RSP, RAX, CPL; APM vol. 2 §15.5.1 and table B-2) plus the rest of the segment file, so that L0 can keep
/// L1's state aside while L2 runs (KVM keeps it in vmcb01's save area). GPRs other than RAX and RSP stay in the
/// vCPU across a world switch, as on hardware.
/// </summary>
public struct CpuState
{
    /// <summary>ES, CS, SS, DS, FS, GS, LDTR, TR (indices as <see cref="SegReg"/> and Cpu.LdtrIndex/TrIndex).</summary>
    public SegmentFile Seg;
    public TableRegister Gdtr, Idtr;
    public ulong Cr0, Cr2, Cr3, Cr4, Efer;
    public ulong Dr6, Dr7;
    /// <summary>RFLAGS with every status flag materialised.</summary>
    public ulong Rflags;
    public ulong Rip, Rsp, Rax;
    public int Cpl;
    public ulong Pat;
}

public sealed partial class Cpu
{
    /// <summary>Copies the architectural state into <paramref name="s"/> (flags materialised, RIP as given).</summary>
    public void SaveState(out CpuState s, ulong rip)
    {
        s = default;
        s.Seg = Seg;
        s.Gdtr = Gdtr;
        s.Idtr = Idtr;
        s.Cr0 = Cr0;
        s.Cr2 = Cr2;
        s.Cr3 = Cr3;
        s.Cr4 = Cr4;
        s.Efer = Efer;
        s.Dr6 = Dr6;
        s.Dr7 = Dr7;
        s.Rflags = Rflags64;
        s.Rip = rip;
        s.Rsp = Gpr[Reg.RSP];
        s.Rax = Gpr[Reg.RAX];
        s.Cpl = Cpl;
        s.Pat = Pat;
    }

    /// <summary>
    /// Loads <paramref name="s"/> whole, as VMRUN and #VMEXIT do: no MOV CR checks (the caller ran the
    /// consistency checks), then the derived state (mode, segment access, decoded-block lookups) is rebuilt and the
    /// software TLB moves to <paramref name="space"/>'s set (Cpu.TlbSets.cs).
    /// </summary>
    public void LoadState(in CpuState s, in TlbSpace space = default)
    {
        TlbFillState leaving = CurrentFillState();
        Seg = s.Seg;
        Gdtr = s.Gdtr;
        Idtr = s.Idtr;
        Cr0 = s.Cr0;
        Cr2 = s.Cr2;
        Cr3 = s.Cr3;
        Cr4 = s.Cr4;
        Efer = s.Efer;
        Dr6 = s.Dr6;
        Dr7 = s.Dr7;
        FlagsBits = s.Rflags | Rflags.Reserved1;
        LazyOp = LazyFlags.None;
        Rip = s.Rip;
        NextRip = s.Rip;
        Gpr[Reg.RSP] = s.Rsp;
        Gpr[Reg.RAX] = s.Rax;
        Pat = s.Pat;
        Cpl = s.Cpl;
        WorldSwitched(leaving, space);
    }

    /// <summary>Rebuilds what depends on the state a world switch replaced; the TLB moves to <paramref name="space"/>'s set.</summary>
    private void WorldSwitched(in TlbFillState leaving, in TlbSpace space)
    {
        InterruptShadow = false;

        // UpdateMode also sets CPL for real and virtual-8086 mode and recomputes the segment access rights.
        UpdateMode();
        SwitchTlb(leaving, space);

        // A new RFLAGS, GIF and interrupt masking: held events are looked at again.
        MakeRequestAndKick(VcpuRequest.Nmi | VcpuRequest.Interrupt);
    }
}
