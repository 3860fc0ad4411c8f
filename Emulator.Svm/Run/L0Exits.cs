using Emulator.Core.Cpu;
using Emulator.Core.Memory;
using Emulator.Core.Svm;
using Emulator.Svm.Exits;
using Emulator.Svm.Nested;

namespace Emulator.Svm.Run;

/// <summary>
/// L0 for one vCPU, the hypervisor's side of every #VMEXIT (KVM's svm.c with nested.c): L1 runs under
/// <see cref="Vmcb01"/>, L2 under vmcb02 (vmcb01's intercepts merged with vmcb12's by <see cref="NestedSvm"/>).
/// An exit is first offered to L1 when L2 caused it and vmcb12 intercepts it (reflected, KVM's
/// nested_svm_exit_handled); every other exit, L1's own and L2's that L1 does not want, goes to L0's exit-handler
/// table, indexed by exit code (KVM's svm_exit_handlers[]), and the vCPU enters the guest again.
///
/// L0 owns the nested state rather than the other way round, as in KVM: the exit path, vmcb01 and the table are
/// L0's for every vCPU, SVM or not, while nested SVM is one of the things L0 emulates (for L1's VMRUN, VMLOAD and
/// VMSAVE exits) and the first stop of an L2 exit.
///
/// A handler returns an <see cref="ExecStatus"/> (see <see cref="SvmUnit.Exit"/>): Continue when L0 emulates the
/// instruction or event with the CPU's own implementation (the gate goes on), EndBlock when it completed the
/// instruction (RIP = NextRip), Fault when it injected an exception. Each L0-handled exit charges one #VMEXIT/VMRUN
/// round trip here; the handler adds its own work (the instruction's cost, a hypercall, an emulation).
/// </summary>
public sealed unsafe partial class L0Svm : SvmUnit, IDisposable
{
    /// <summary>The exit-handler table: static function pointers, built once; null entries are unknown exits.</summary>
    private static readonly delegate*<L0Svm, Cpu, ulong, ulong, int>[] Handlers = BuildHandlers();

    private readonly Hypercalls? _hypercalls;

    /// <summary>Exit codes 0x00–0xFF already reported as unhandled (one diagnostic each).</summary>
    private readonly ulong[] _unknownLogged = new ulong[4];

    /// <summary>L0 with its vmcb01 and nested SVM over the VM's <paramref name="memory"/>; without hypercalls VMMCALL is #UD.</summary>
    public L0Svm(PhysicalMemory memory, Hypercalls? hypercalls = null)
    {
        _hypercalls = hypercalls;
        Vmcb01 = new Vmcb01();
        Nested = new NestedSvm(memory, Vmcb01);
    }

    public Vmcb01 Vmcb01 { get; }

    public NestedSvm Nested { get; }

    /// <summary>Exits L0 handled for L1 (<c>svm.exits.l1.*</c>).</summary>
    public ExitCounts L1Exits { get; } = new();

    /// <summary>Exits of L2 that vmcb12 does not intercept, handled by L0 (<c>svm.exits.l0.*</c>).</summary>
    public ExitCounts L0Exits { get; } = new();

    /// <summary>Makes this L0 the vCPU's hypervisor: L1 runs under vmcb01 from now on.</summary>
    public L0Svm Attach(Cpu cpu)
    {
        cpu.Svm = this;
        cpu.Intercepts = Vmcb01.Intercepts;
        cpu.NestedPageFaultExit = Nested.NestedPageFault;
        return this;
    }

    public override int Vmrun(Cpu cpu, ulong vmcbPa) => Nested.Vmrun(cpu, vmcbPa);

    public override int VmloadVmsave(Cpu cpu, ulong vmcbPa, bool save) => Nested.VmloadVmsave(cpu, vmcbPa, save);

    /// <summary>
    /// L0's #NPF handler is the MMU's page-fault handler (Mmu.Fault for L1 through the TDP, Mmu.Shadow for L2 through
    /// the shadow NPT), which the translation calls directly and charges the round trip; here it is counted as the exit.
    /// </summary>
    public override void NestedPageFaultHandled(Cpu cpu) => (cpu.GuestMode ? L0Exits : L1Exits).Count(SvmExit.Npf);

    public override int Exit(Cpu cpu, ulong exitCode, ulong exitInfo1, ulong exitInfo2)
    {
        if (cpu.GuestMode && Nested.L1Intercepts(cpu, exitCode, exitInfo1))
        {
            return Nested.Reflect(cpu, exitCode, exitInfo1, exitInfo2);
        }

        // L0's exit: EXITINTINFO is L0's to re-inject (the handlers re-run the event), not L1's to see.
        cpu.ExitIntInfo = cpu.ExitIntInfoError = 0;
        cpu.Cycles += cpu.Costs.VmexitRoundTrip;
        (cpu.GuestMode ? L0Exits : L1Exits).Count(exitCode);
        ulong slot = exitCode is >= SvmExit.Npf and <= SvmExit.AvicNoAccel ? 0x100 + (exitCode - SvmExit.Npf) : exitCode;
        var handler = slot < (ulong)Handlers.Length ? Handlers[slot] : null;
        return handler != null ? handler(this, cpu, exitInfo1, exitInfo2) : Unknown(cpu, exitCode);
    }

    private static delegate*<L0Svm, Cpu, ulong, ulong, int>[] BuildHandlers()
    {
        // 0x00–0xFF by code; 0x100–0x102 for #NPF (handled by the MMU, never dispatched here) and the two AVIC exits.
        var t = new delegate*<L0Svm, Cpu, ulong, ulong, int>[0x103];
        t[SvmExit.Exception0 + Vector.UD] = &UdException;
        t[SvmExit.Exception0 + Vector.AC] = &Emulate;
        t[SvmExit.Exception0 + Vector.MC] = &Emulate;
        foreach (ulong code in (ReadOnlySpan<ulong>)
            [
                SvmExit.Intr, SvmExit.Nmi, SvmExit.Smi, SvmExit.Cpuid, SvmExit.Hlt, SvmExit.Msr, SvmExit.Rdpmc,
                SvmExit.Rsm, SvmExit.Invd, SvmExit.Wbinvd, SvmExit.Xsetbv, SvmExit.TaskSwitch, SvmExit.Shutdown,
                SvmExit.Monitor, SvmExit.Mwait, SvmExit.MwaitConditional,
                SvmExit.Vmload, SvmExit.Vmsave, SvmExit.Stgi, SvmExit.Clgi, SvmExit.Invlpga,
            ])
        {
            t[code] = &Emulate;
        }

        t[SvmExit.Ioio] = &Io;
        t[SvmExit.Vmrun] = &Vmrun;
        t[SvmExit.Vmmcall] = &Vmmcall;
        t[SvmExit.Skinit] = &InjectUd;
        t[SvmExit.Rdpru] = &InjectUd;
        t[0x100 + (SvmExit.AvicIncompleteIpi - SvmExit.Npf)] = &AvicIncompleteIpi;
        t[0x100 + (SvmExit.AvicNoAccel - SvmExit.Npf)] = &AvicNoAccel;
        return t;
    }

    /// <summary>
    /// The exits whose handler is the instruction's or event's own semantics: INTR/NMI/SMI (the event is then
    /// delivered, as KVM injects it on re-entry), CPUID (L0's leaves, through the CPU's hypervisor hooks), HLT (the
    /// vCPU halts), RDMSR/WRMSR (L0's MSR code), RDPMC, RSM, INVD/WBINVD, XSETBV, task switches, MONITOR/MWAIT,
    /// SHUTDOWN (the triple fault ends the run), #AC/#MC (re-injected), and L1's VMLOAD, VMSAVE, STGI, CLGI and
    /// INVLPGA (nested SVM emulation). The instruction's own cost is charged by the interpreter.
    /// </summary>
    private static int Emulate(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2) => ExecStatus.Continue;

    /// <summary>
    /// IOIO (KVM's io_interception): IN/OUT go to the port bus here, with RAX and RIP = the next RIP (EXITINFO2);
    /// a string instruction is emulated by its own implementation, charged an instruction emulation.
    /// </summary>
    private static int Io(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2)
    {
        if ((exitInfo1 & PermissionMaps.IoString) != 0)
        {
            cpu.Cycles += cpu.Costs.InstructionEmulation;
            return ExecStatus.Continue;
        }

        ushort port = (ushort)(exitInfo1 >> 16);
        int size = (int)((exitInfo1 >> 4) & 7);
        if ((exitInfo1 & PermissionMaps.IoIn) != 0)
        {
            cpu.SetReg(Reg.RAX, size, cpu.Phys.Io.In(port, size));
        }
        else
        {
            cpu.Phys.Io.Out(port, size, (uint)cpu.GetReg(Reg.RAX, size));
        }

        cpu.NextRip = exitInfo2;
        return ExecStatus.EndBlock;
    }

    /// <summary>L1's VMRUN: nested SVM runs L2 (the instruction's implementation calls <see cref="Vmrun(Cpu, ulong)"/>).</summary>
    private static int Vmrun(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2) =>
        cpu.GuestMode ? cpu.RaiseUD() : ExecStatus.Continue;

    /// <summary>VMMCALL from L1: a KVM hypercall; the instruction is complete (RIP = NextRip).</summary>
    private static int Vmmcall(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2)
    {
        if (cpu.GuestMode || l0._hypercalls is not { } hypercalls)
        {
            return cpu.RaiseUD();
        }

        int st = hypercalls.Vmmcall(cpu);
        return st == ExecStatus.Continue ? ExecStatus.EndBlock : st;
    }

    /// <summary>
    /// #UD (KVM's ud_interception): a VMCALL at RIP is rewritten into VMMCALL and executed again; any other #UD is
    /// re-injected. When the rewrite itself faults, the guest gets the #UD.
    /// </summary>
    private static int UdException(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2)
    {
        if (l0._hypercalls is not { } hypercalls || !AtVmcall(cpu))
        {
            return ExecStatus.Continue;
        }

        int st = hypercalls.VmcallUd(cpu);
        return st == ExecStatus.Fault ? ExecStatus.Continue : st;
    }

    /// <summary>True when the bytes at CS:RIP are VMCALL (0F 01 C1), fetched as the guest would.</summary>
    private static bool AtVmcall(Cpu cpu)
    {
        ulong lin = cpu.CodeLinear;
        ReadOnlySpan<byte> vmcall = [0x0F, 0x01, 0xC1];
        for (int i = 0; i < vmcall.Length; i++)
        {
            ulong at = cpu.Mode == CpuMode.Long64 ? lin + (ulong)i : (uint)(lin + (ulong)i);

            if (!cpu.ReadLinearSlow(at, 1, Access.Fetch, out ulong b) || b != vmcall[i])
            {
                cpu.PendingVector = -1;
                return false;
            }
        }

        return true;
    }

    /// <summary>SKINIT, RDPRU: not offered to the guest, so L0 injects #UD (KVM's handlers for them).</summary>
    private static int InjectUd(L0Svm l0, Cpu cpu, ulong exitInfo1, ulong exitInfo2) => cpu.RaiseUD();

    /// <summary>An exit L0 has no handler for: reported once per code, and #UD injected, as KVM does.</summary>
    private int Unknown(Cpu cpu, ulong exitCode)
    {
        int slot = (int)Math.Min(exitCode, 0xFF);
        if ((_unknownLogged[slot >> 6] & (1UL << slot)) == 0)
        {
            _unknownLogged[slot >> 6] |= 1UL << slot;
            cpu.Diagnostic?.Invoke($"emu: L0 has no handler for exit {SvmExit.Name(exitCode)} (0x{exitCode:x}); injecting #UD");
        }

        return cpu.RaiseUD();
    }

    public void Dispose() => Vmcb01.Dispose();
}
