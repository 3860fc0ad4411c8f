using Emulator.Core.Cpu;
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
    /// VMMCALL (APM vol. 3 "VMMCALL"): exits to the hypervisor when the current VMCB intercepts it, which L0's vmcb01
    /// always does for L1 (its hypercalls); otherwise #UD.
    /// </summary>
    public static int Vmmcall(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Intercepted(SvmIntercept.Vmmcall) && c.InterceptEnds(SvmExit.Vmmcall, out int exit))
        {
            return exit;
        }

        return c.RaiseUD();
    }

    /// <summary>
    /// VMCALL is a VMX instruction; an AMD processor raises #UD for it. L0 intercepts #UD (vmcb01), sees the VMCALL
    /// and completes it instead of re-injecting the #UD.
    /// </summary>
    public static int Vmcall(Cpu.Cpu c, ref DecodedOp op) => c.RaiseUD();
}
