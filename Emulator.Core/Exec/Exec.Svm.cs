using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// The SVM instructions (APM vol. 3 "VMRUN", "VMLOAD", "VMSAVE", "STGI", "CLGI", "INVLPGA", "SKINIT"): the
/// checks every one of them makes, the intercept gate, then the world-switch unit (<see cref="SvmUnit"/>) or GIF.
/// Exceptions are checked before the intercept, as the APM lists them and KVM relies on.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSvm(HandlerTable t)
    {
        t.Add(Code.Vmrunw, &Vmrun, CostClass.Serializing);
        t.Add(Code.Vmrund, &Vmrun, CostClass.Serializing);
        t.Add(Code.Vmrunq, &Vmrun, CostClass.Serializing);
        t.Add(Code.Vmloadw, &Vmload, CostClass.Serializing);
        t.Add(Code.Vmloadd, &Vmload, CostClass.Serializing);
        t.Add(Code.Vmloadq, &Vmload, CostClass.Serializing);
        t.Add(Code.Vmsavew, &Vmsave, CostClass.Serializing);
        t.Add(Code.Vmsaved, &Vmsave, CostClass.Serializing);
        t.Add(Code.Vmsaveq, &Vmsave, CostClass.Serializing);
        t.Add(Code.Stgi, &Stgi, CostClass.Serializing);
        t.Add(Code.Clgi, &Clgi, CostClass.Serializing);
        t.Add(Code.Invlpgaw, &Invlpga, CostClass.Serializing);
        t.Add(Code.Invlpgad, &Invlpga, CostClass.Serializing);
        t.Add(Code.Invlpgaq, &Invlpga, CostClass.Serializing);
        t.Add(Code.Skinit, &Skinit, CostClass.Serializing);
    }

    /// <summary>rAX as the VMCB address: its width is the address size (EAX unless 64-bit addressing).</summary>
    private static ulong VmcbAddress(Cpu.Cpu c, ref DecodedOp op) => MaskToSize(c.Gpr[Reg.RAX], op.AddrSize);

    /// <summary>
    /// The VMCB address must be page aligned and within the physical-address width (#GP(0)); KVM's
    /// page_address_valid, which it applies to L1's VMRUN, VMLOAD and VMSAVE.
    /// </summary>
    private static bool VmcbAddressValid(ulong pa) => (pa & 0xFFF) == 0 && (pa >> Cpu.Cpu.MaxPhysAddrBits) == 0;

    public static int Vmrun(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = c.SvmInstructionChecks();
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        // L0 intercepts L1's VMRUN (vmcb01) and emulates it below; in guest mode VMRUN always exits: vmcb12's
        // intercept bit must be set for VMRUN to have succeeded.
        if ((c.GuestMode || c.Intercepted(SvmIntercept.Vmrun)) && c.InterceptEnds(SvmExit.Vmrun, out int exit))
        {
            return exit;
        }

        ulong pa = VmcbAddress(c, ref op);
        return VmcbAddressValid(pa) ? c.Svm!.Vmrun(c, pa) : c.RaiseGP();
    }

    public static int Vmload(Cpu.Cpu c, ref DecodedOp op) => VmloadVmsave(c, ref op, save: false);

    public static int Vmsave(Cpu.Cpu c, ref DecodedOp op) => VmloadVmsave(c, ref op, save: true);

    private static int VmloadVmsave(Cpu.Cpu c, ref DecodedOp op, bool save)
    {
        int st = c.SvmInstructionChecks();
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (c.Intercepted(save ? SvmIntercept.Vmsave : SvmIntercept.Vmload) && c.InterceptEnds(save ? SvmExit.Vmsave : SvmExit.Vmload, out int exit))
        {
            return exit;
        }

        ulong pa = VmcbAddress(c, ref op);
        return VmcbAddressValid(pa) ? c.Svm!.VmloadVmsave(c, pa, save) : c.RaiseGP();
    }

    public static int Stgi(Cpu.Cpu c, ref DecodedOp op) => SetGif(c, true);

    public static int Clgi(Cpu.Cpu c, ref DecodedOp op) => SetGif(c, false);

    private static int SetGif(Cpu.Cpu c, bool value)
    {
        int st = c.SvmInstructionChecks();
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (c.Intercepted(value ? SvmIntercept.Stgi : SvmIntercept.Clgi) && c.InterceptEnds(value ? SvmExit.Stgi : SvmExit.Clgi, out int exit))
        {
            return exit;
        }

        c.SetGif(value);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// INVLPGA: drops the translation of the linear address in rAX for the ASID in ECX (APM vol. 3 "INVLPGA"), in
    /// that ASID's set of the tagged TLB.
    /// </summary>
    public static int Invlpga(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = c.SvmInstructionChecks();
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (c.Intercepted(SvmIntercept.Invlpga) && c.InterceptEnds(SvmExit.Invlpga, out int exit))
        {
            return exit;
        }

        c.InvalidateAsidPage((uint)c.Gpr[Reg.RCX], VmcbAddress(c, ref op));
        return ExecStatus.Continue;
    }

    /// <summary>
    /// SKINIT: the secure-init feature is not reported, so the instruction raises #UD (APM vol. 3 "SKINIT") before
    /// any intercept is looked at: an instruction the CPU does not have cannot exit as that instruction (KVM's
    /// nested tests check an intercepted but unreported instruction gives #UD).
    /// </summary>
    public static int Skinit(Cpu.Cpu c, ref DecodedOp op) => c.RaiseUD();
}
