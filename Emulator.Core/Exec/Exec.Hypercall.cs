using Emulator.Core.Decode;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>VMMCALL and VMCALL: a guest's calls to its hypervisor, which exit to L0 when it intercepts them.</summary>
public static unsafe partial class Exec
{
    private static void RegisterHypercall(HandlerTable t)
    {
        t.Add(Code.Vmmcall, &Vmmcall, CostClass.Serializing);
        t.Add(Code.Vmcall, &Vmcall, CostClass.Serializing);
    }

    /// <summary>
    /// VMMCALL (APM vol. 3 "VMMCALL"): exits to the hypervisor when it intercepts the instruction, which L0 always
    /// does for L1; otherwise #UD.
    /// </summary>
    public static int Vmmcall(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.GuestMode)
        {
            // L2's VMMCALL goes to L1 when vmcb12 intercepts it; L0 does not serve hypercalls of a nested guest, so
            // otherwise it is the architectural #UD (APM vol. 3 "VMMCALL").
            return c.Intercepted(SvmIntercept.Vmmcall) ? c.InterceptExit(SvmExit.Vmmcall) : c.RaiseUD();
        }

        return c.VmmcallExit is { } exit ? exit(c) : c.RaiseUD();
    }

    /// <summary>
    /// VMCALL is a VMX instruction; an AMD processor raises #UD for it. When L0 intercepts #UD it sees the
    /// VMCALL and may complete it instead of reflecting the #UD.
    /// </summary>
    public static int Vmcall(Cpu.Cpu c, ref DecodedOp op) => c.VmcallUdExit is { } exit ? exit(c) : c.RaiseUD();
}
