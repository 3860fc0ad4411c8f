using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>NOP forms, PAUSE, fences, HLT.</summary>
public static unsafe partial class Exec
{
    private static void RegisterMisc(HandlerTable t)
    {
        t.Add(Code.Nopw, &Nop);
        t.Add(Code.Nopd, &Nop);
        t.Add(Code.Nopq, &Nop);
        t.Add(Code.Nop_rm16, &Nop);
        t.Add(Code.Nop_rm32, &Nop);
        t.Add(Code.Nop_rm64, &Nop);
        t.Add(Code.Pause, &Pause, CostClass.Branch);
        t.Add(Code.Lfence, &Nop, CostClass.Memory);
        t.Add(Code.Sfence, &Nop, CostClass.Memory);
        t.Add(Code.Mfence, &Nop, CostClass.Memory);
        t.Add(Code.Hlt, &Hlt, CostClass.System);
    }

    /// <summary>HLT: privileged (#GP(0) unless CPL 0); stops until an interrupt (APM vol. 3 "HLT").</summary>
    public static int Hlt(Cpu.Cpu c, ref DecodedOp op) => c.Cpl != 0 ? c.RaiseGP(0) : ExecStatus.Halt;

    public static int Nop(Cpu.Cpu c, ref DecodedOp op) => ExecStatus.Continue;

    /// <summary>
    /// PAUSE: a spin-wait hint. With several vCPUs, a PAUSE at the same RIP as the previous one within a few
    /// instructions is a spin loop, and the vCPU yields the rest of its slice to the others.
    /// </summary>
    public static int Pause(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.YieldOnPause)
        {
            if (c.LastPauseRip == c.Rip && c.Instructions - c.LastPauseInstructions < Cpu.Cpu.SpinWindow)
            {
                c.YieldRequested = true;
                c.ExitRequest = 1;
            }

            c.LastPauseRip = c.Rip;
            c.LastPauseInstructions = c.Instructions;
        }

        return ExecStatus.Continue;
    }
}
