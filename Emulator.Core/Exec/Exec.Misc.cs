using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>NOP forms, PAUSE, fences, HLT, RSM.</summary>
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
        t.Add(Code.Rsm, &Rsm, CostClass.Serializing);

        // 0F 0D and 0F 18–0F 1F are hint NOPs on a CPU that gives them no other meaning (APM vol. 3
        // "NOP": "reserved for future hints"): prefetches, CLDEMOTE, and CET's ENDBR32/ENDBR64/RDSSP, which
        // a CPU without CET executes as NOPs. Compilers emit ENDBR64 at every function entry (-fcf-protection),
        // so this is on the path of every such guest. None of them touches memory or faults.
        foreach (Code code in HintNops)
        {
            t.Add(code, &Nop);
        }

        // UD0/UD1/UD2 are defined to raise #UD; they are implemented, not gaps.
        t.Add(Code.Ud0, &Ud);
        t.Add(Code.Ud0_r16_rm16, &Ud);
        t.Add(Code.Ud0_r32_rm32, &Ud);
        t.Add(Code.Ud0_r64_rm64, &Ud);
        t.Add(Code.Ud1_r16_rm16, &Ud);
        t.Add(Code.Ud1_r32_rm32, &Ud);
        t.Add(Code.Ud1_r64_rm64, &Ud);
        t.Add(Code.Ud2, &Ud);
    }

    /// <summary>The Iced codes of the hint-NOP opcode space (0F 0D, 0F 18–0F 1F) as a CPU without CET decodes it.</summary>
    internal static ReadOnlySpan<Code> HintNops =>
    [
        Code.Reservednop_rm16_r16_0F0D, Code.Reservednop_rm32_r32_0F0D, Code.Reservednop_rm64_r64_0F0D,
        Code.Reservednop_rm16_r16_0F18, Code.Reservednop_rm32_r32_0F18, Code.Reservednop_rm64_r64_0F18,
        Code.Reservednop_rm16_r16_0F19, Code.Reservednop_rm32_r32_0F19, Code.Reservednop_rm64_r64_0F19,
        Code.Reservednop_rm16_r16_0F1A, Code.Reservednop_rm32_r32_0F1A, Code.Reservednop_rm64_r64_0F1A,
        Code.Reservednop_rm16_r16_0F1B, Code.Reservednop_rm32_r32_0F1B, Code.Reservednop_rm64_r64_0F1B,
        Code.Reservednop_rm16_r16_0F1C, Code.Reservednop_rm32_r32_0F1C, Code.Reservednop_rm64_r64_0F1C,
        Code.Reservednop_rm16_r16_0F1D, Code.Reservednop_rm32_r32_0F1D, Code.Reservednop_rm64_r64_0F1D,
        Code.Reservednop_rm16_r16_0F1E, Code.Reservednop_rm32_r32_0F1E, Code.Reservednop_rm64_r64_0F1E,
        Code.Reservednop_rm16_r16_0F1F, Code.Reservednop_rm32_r32_0F1F, Code.Reservednop_rm64_r64_0F1F,
        Code.Prefetch_m8, Code.Prefetchw_m8, Code.Prefetchwt1_m8,
        Code.Prefetchnta_m8, Code.Prefetcht0_m8, Code.Prefetcht1_m8, Code.Prefetcht2_m8,
        Code.Prefetchreserved3_m8, Code.Prefetchreserved4_m8, Code.Prefetchreserved5_m8,
        Code.Prefetchreserved6_m8, Code.Prefetchreserved7_m8, Code.Prefetchit0_m8, Code.Prefetchit1_m8,
        Code.Cldemote_m8, Code.Endbr32, Code.Endbr64, Code.Rdsspd_r32, Code.Rdsspq_r64,
    ];

    /// <summary>UD0, UD1, UD2: #UD by definition (APM vol. 3 "UD0, UD1, UD2").</summary>
    public static int Ud(Cpu.Cpu c, ref DecodedOp op) => c.RaiseUD();

    /// <summary>HLT: privileged (#GP(0) unless CPL 0); stops until an interrupt (APM vol. 3 "HLT").</summary>
    public static int Hlt(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        if (c.Intercepted(SvmIntercept.Hlt) && c.InterceptEnds(SvmExit.Hlt, out int exit))
        {
            return exit;
        }

        return ExecStatus.Halt;
    }

    /// <summary>
    /// RSM: there is no system-management mode, so the processor is never in SMM and RSM is #UD (APM vol. 3
    /// "RSM") — but a hypervisor that intercepts RSM sees it first (APM vol. 2 §15.9: the RSM intercept).
    /// </summary>
    public static int Rsm(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Intercepted(SvmIntercept.Rsm) && c.InterceptEnds(SvmExit.Rsm, out int exit))
        {
            return exit;
        }

        return c.RaiseUD();
    }

    public static int Nop(Cpu.Cpu c, ref DecodedOp op) => ExecStatus.Continue;

    /// <summary>
    /// PAUSE: a spin-wait hint. With several vCPUs, a PAUSE at the same RIP as the previous one within a few
    /// instructions is a spin loop, and the vCPU yields the rest of its slice to the others.
    /// </summary>
    public static int Pause(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Intercepted(SvmIntercept.Pause) && PauseFilterExpired(c) && c.InterceptEnds(SvmExit.Pause, out int exit))
        {
            return exit;
        }

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

    /// <summary>
    /// The pause filter (APM vol. 2 §15.14.4) for an intercepted PAUSE; true when it exits. With a non-zero count
    /// each PAUSE decrements it and only the one that brings it to zero exits; with a zero count every one exits.
    /// With a non-zero threshold, a PAUSE that comes more than threshold cycles (the modeled cycle counter) after
    /// the previous one is not part of the same spin: the count is first reloaded from vmcb12's value. A zero
    /// threshold leaves the count alone.
    /// </summary>
    private static bool PauseFilterExpired(Cpu.Cpu c)
    {
        if (c.PauseFilterThreshold != 0)
        {
            ulong now = c.Cycles;
            if (now - c.LastPauseCycle > c.PauseFilterThreshold)
            {
                c.PauseFilterCount = c.PauseFilterInitialCount;
            }

            c.LastPauseCycle = now;
        }

        return c.PauseFilterCount == 0 || --c.PauseFilterCount == 0;
    }
}
