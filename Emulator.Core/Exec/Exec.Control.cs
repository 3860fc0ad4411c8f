using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>Near control flow: JMP, Jcc, CALL, RET, LOOPcc, JrCXZ (APM vol. 1 §3.7, vol. 3 "Jcc", "CALL (Near)").</summary>
public static unsafe partial class Exec
{
    private static void RegisterControl(HandlerTable t)
    {
        t.Add(Code.Jmp_rel8_16, &JmpRel<Dw16>, CostClass.Branch);
        t.Add(Code.Jmp_rel8_32, &JmpRel<Dw32>, CostClass.Branch);
        t.Add(Code.Jmp_rel8_64, &JmpRel<Dw64>, CostClass.Branch);
        t.Add(Code.Jmp_rel16, &JmpRel<Dw16>, CostClass.Branch);
        t.Add(Code.Jmp_rel32_32, &JmpRel<Dw32>, CostClass.Branch);
        t.Add(Code.Jmp_rel32_64, &JmpRel<Dw64>, CostClass.Branch);
        t.Add(Code.Jmp_rm16, &JmpRm, CostClass.Branch);
        t.Add(Code.Jmp_rm32, &JmpRm, CostClass.Branch);
        t.Add(Code.Jmp_rm64, &JmpRm, CostClass.Branch);

        t.Add(Code.Call_rel16, &CallRel<Dw16>, CostClass.Branch);
        t.Add(Code.Call_rel32_32, &CallRel<Dw32>, CostClass.Branch);
        t.Add(Code.Call_rel32_64, &CallRel<Dw64>, CostClass.Branch);
        t.Add(Code.Call_rm16, &CallRm, CostClass.Branch);
        t.Add(Code.Call_rm32, &CallRm, CostClass.Branch);
        t.Add(Code.Call_rm64, &CallRm, CostClass.Branch);

        t.Add(Code.Retnw, &RetNear<Dw16>, CostClass.Branch);
        t.Add(Code.Retnd, &RetNear<Dw32>, CostClass.Branch);
        t.Add(Code.Retnq, &RetNear<Dw64>, CostClass.Branch);
        t.Add(Code.Retnw_imm16, &RetNear<Dw16>, CostClass.Branch);
        t.Add(Code.Retnd_imm16, &RetNear<Dw32>, CostClass.Branch);
        t.Add(Code.Retnq_imm16, &RetNear<Dw64>, CostClass.Branch);

        AddJcc<CcO>(t, Code.Jo_rel8_16, Code.Jo_rel8_32, Code.Jo_rel8_64, Code.Jo_rel16, Code.Jo_rel32_32, Code.Jo_rel32_64);
        AddJcc<CcNo>(t, Code.Jno_rel8_16, Code.Jno_rel8_32, Code.Jno_rel8_64, Code.Jno_rel16, Code.Jno_rel32_32, Code.Jno_rel32_64);
        AddJcc<CcB>(t, Code.Jb_rel8_16, Code.Jb_rel8_32, Code.Jb_rel8_64, Code.Jb_rel16, Code.Jb_rel32_32, Code.Jb_rel32_64);
        AddJcc<CcAe>(t, Code.Jae_rel8_16, Code.Jae_rel8_32, Code.Jae_rel8_64, Code.Jae_rel16, Code.Jae_rel32_32, Code.Jae_rel32_64);
        AddJcc<CcE>(t, Code.Je_rel8_16, Code.Je_rel8_32, Code.Je_rel8_64, Code.Je_rel16, Code.Je_rel32_32, Code.Je_rel32_64);
        AddJcc<CcNe>(t, Code.Jne_rel8_16, Code.Jne_rel8_32, Code.Jne_rel8_64, Code.Jne_rel16, Code.Jne_rel32_32, Code.Jne_rel32_64);
        AddJcc<CcBe>(t, Code.Jbe_rel8_16, Code.Jbe_rel8_32, Code.Jbe_rel8_64, Code.Jbe_rel16, Code.Jbe_rel32_32, Code.Jbe_rel32_64);
        AddJcc<CcA>(t, Code.Ja_rel8_16, Code.Ja_rel8_32, Code.Ja_rel8_64, Code.Ja_rel16, Code.Ja_rel32_32, Code.Ja_rel32_64);
        AddJcc<CcS>(t, Code.Js_rel8_16, Code.Js_rel8_32, Code.Js_rel8_64, Code.Js_rel16, Code.Js_rel32_32, Code.Js_rel32_64);
        AddJcc<CcNs>(t, Code.Jns_rel8_16, Code.Jns_rel8_32, Code.Jns_rel8_64, Code.Jns_rel16, Code.Jns_rel32_32, Code.Jns_rel32_64);
        AddJcc<CcP>(t, Code.Jp_rel8_16, Code.Jp_rel8_32, Code.Jp_rel8_64, Code.Jp_rel16, Code.Jp_rel32_32, Code.Jp_rel32_64);
        AddJcc<CcNp>(t, Code.Jnp_rel8_16, Code.Jnp_rel8_32, Code.Jnp_rel8_64, Code.Jnp_rel16, Code.Jnp_rel32_32, Code.Jnp_rel32_64);
        AddJcc<CcL>(t, Code.Jl_rel8_16, Code.Jl_rel8_32, Code.Jl_rel8_64, Code.Jl_rel16, Code.Jl_rel32_32, Code.Jl_rel32_64);
        AddJcc<CcGe>(t, Code.Jge_rel8_16, Code.Jge_rel8_32, Code.Jge_rel8_64, Code.Jge_rel16, Code.Jge_rel32_32, Code.Jge_rel32_64);
        AddJcc<CcLe>(t, Code.Jle_rel8_16, Code.Jle_rel8_32, Code.Jle_rel8_64, Code.Jle_rel16, Code.Jle_rel32_32, Code.Jle_rel32_64);
        AddJcc<CcG>(t, Code.Jg_rel8_16, Code.Jg_rel8_32, Code.Jg_rel8_64, Code.Jg_rel16, Code.Jg_rel32_32, Code.Jg_rel32_64);

        // LOOPcc / JrCXZ: the code names the operand size (target wrap) and then the counter register,
        // whose width is the address size (APM vol. 3 "LOOPcc", "JrCXZ").
        t.Add(Code.Loop_rel8_16_CX, &Loop<Dw16, Dw16, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loop_rel8_16_ECX, &Loop<Dw16, Dw32, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loop_rel8_16_RCX, &Loop<Dw16, Dw64, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loop_rel8_32_CX, &Loop<Dw32, Dw16, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loop_rel8_32_ECX, &Loop<Dw32, Dw32, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loop_rel8_64_ECX, &Loop<Dw64, Dw32, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loop_rel8_64_RCX, &Loop<Dw64, Dw64, LoopAlways>, CostClass.Branch);
        t.Add(Code.Loope_rel8_16_CX, &Loop<Dw16, Dw16, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loope_rel8_16_ECX, &Loop<Dw16, Dw32, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loope_rel8_16_RCX, &Loop<Dw16, Dw64, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loope_rel8_32_CX, &Loop<Dw32, Dw16, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loope_rel8_32_ECX, &Loop<Dw32, Dw32, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loope_rel8_64_ECX, &Loop<Dw64, Dw32, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loope_rel8_64_RCX, &Loop<Dw64, Dw64, LoopWhileZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_16_CX, &Loop<Dw16, Dw16, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_16_ECX, &Loop<Dw16, Dw32, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_16_RCX, &Loop<Dw16, Dw64, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_32_CX, &Loop<Dw32, Dw16, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_32_ECX, &Loop<Dw32, Dw32, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_64_ECX, &Loop<Dw64, Dw32, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Loopne_rel8_64_RCX, &Loop<Dw64, Dw64, LoopWhileNotZero>, CostClass.Branch);
        t.Add(Code.Jcxz_rel8_16, &JrCxz<Dw16, Dw16>, CostClass.Branch);
        t.Add(Code.Jcxz_rel8_32, &JrCxz<Dw32, Dw16>, CostClass.Branch);
        t.Add(Code.Jecxz_rel8_16, &JrCxz<Dw16, Dw32>, CostClass.Branch);
        t.Add(Code.Jecxz_rel8_32, &JrCxz<Dw32, Dw32>, CostClass.Branch);
        t.Add(Code.Jecxz_rel8_64, &JrCxz<Dw64, Dw32>, CostClass.Branch);
        t.Add(Code.Jrcxz_rel8_16, &JrCxz<Dw16, Dw64>, CostClass.Branch);
        t.Add(Code.Jrcxz_rel8_64, &JrCxz<Dw64, Dw64>, CostClass.Branch);
    }

    private static void AddJcc<TCc>(HandlerTable t, Code r8x16, Code r8x32, Code r8x64, Code r16, Code r32x32, Code r32x64)
        where TCc : struct, ICondition
    {
        t.Add(r8x16, &Jcc<TCc, Dw16>, CostClass.Branch);
        t.Add(r8x32, &Jcc<TCc, Dw32>, CostClass.Branch);
        t.Add(r8x64, &Jcc<TCc, Dw64>, CostClass.Branch);
        t.Add(r16, &Jcc<TCc, Dw16>, CostClass.Branch);
        t.Add(r32x32, &Jcc<TCc, Dw32>, CostClass.Branch);
        t.Add(r32x64, &Jcc<TCc, Dw64>, CostClass.Branch);
    }

    /// <summary>
    /// Completes a near transfer to <paramref name="target"/>: the target wraps to the operand size
    /// (IP wraps at 64 KiB), then must lie within the CS limit outside 64-bit mode, or be canonical in
    /// 64-bit mode; either failure is #GP(0) at the branch (APM vol. 3 "JMP (Near)").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool CheckNearTarget(Cpu.Cpu c, ref ulong target, int opSize)
    {
        if (opSize == 8)
        {
            // The 4-level test inline; a 5-level (CR4.LA57) target past bit 47 takes the full check.
            return (ulong)((long)target >> 47) + 1 <= 1 || c.IsCanonicalNow(target);
        }

        target &= opSize == 4 ? 0xFFFF_FFFFUL : 0xFFFFUL;
        return c.Mode == CpuMode.Long64 || target <= c.Seg[SegReg.CS].Limit;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NearJump(Cpu.Cpu c, ulong target, int opSize)
    {
        if (!CheckNearTarget(c, ref target, opSize))
        {
            return c.RaiseGP(0);
        }

        c.NextRip = target;
        return ExecStatus.EndBlock;
    }

    public static int JmpRel<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        => NearJump(c, c.NextRip + op.Imm, TW.Bytes);

    public static int JmpRm(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadOp0(c, ref op, out ulong target))
        {
            return ExecStatus.Fault;
        }

        return NearJump(c, target, op.OpSize);
    }

    public static int Jcc<TCc, TW>(Cpu.Cpu c, ref DecodedOp op)
        where TCc : struct, ICondition
        where TW : struct, IDataWidth
        => TCc.Holds(c) ? NearJump(c, c.NextRip + op.Imm, TW.Bytes) : ExecStatus.Continue;

    /// <summary><see cref="Jcc{TCc, TW}"/> with the condition already evaluated and the displacement as arguments (compiled blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int JccK<TW>(Cpu.Cpu c, bool taken, ulong disp)
        where TW : struct, IDataWidth
        => taken ? NearJump(c, c.NextRip + disp, TW.Bytes) : ExecStatus.Continue;

    /// <summary>CALL near: the target is checked before the return address is pushed, so a fault changes nothing.</summary>
    private static int NearCall(Cpu.Cpu c, ulong target, int opSize)
    {
        if (!CheckNearTarget(c, ref target, opSize))
        {
            return c.RaiseGP(0);
        }

        if (!c.Push(c.NextRip, opSize))
        {
            return ExecStatus.Fault;
        }

        c.NextRip = target;
        return ExecStatus.EndBlock;
    }

    public static int CallRel<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        => NearCall(c, c.NextRip + op.Imm, TW.Bytes);

    public static int CallRm(Cpu.Cpu c, ref DecodedOp op)
    {
        // The operand is read before rSP moves (CALL [rSP+x] addresses the old stack pointer).
        if (!ReadOp0(c, ref op, out ulong target))
        {
            return ExecStatus.Fault;
        }

        return NearCall(c, target, op.OpSize);
    }

    /// <summary>RET near [imm16]: pops the return address, then releases imm16 more bytes of stack.</summary>
    public static int RetNear<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        if (!c.PeekStack(0, size, out ulong target))
        {
            return ExecStatus.Fault;
        }

        if (!CheckNearTarget(c, ref target, size))
        {
            return c.RaiseGP(0);
        }

        ulong release = (ulong)size + (op.Imm & 0xFFFF);
        c.SetStackPointer(c.Gpr[Reg.RSP] + release, c.StackSize);
        c.NextRip = target;
        return ExecStatus.EndBlock;
    }

    /// <summary>LOOP/LOOPE/LOOPNE: decrement the counter (address-size wide, flags untouched), branch if non-zero and the condition holds.</summary>
    public static int Loop<TW, TCount, TCond>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        where TCount : struct, IDataWidth
        where TCond : struct, ICondition
    {
        ulong count = (c.GetReg(Reg.RCX, TCount.Bytes) - 1) & Cpu.Cpu.SizeMask(TCount.Bytes);
        if (count != 0 && TCond.Holds(c))
        {
            ulong target = c.NextRip + op.Imm;
            if (!CheckNearTarget(c, ref target, TW.Bytes))
            {
                return c.RaiseGP(0);
            }

            c.SetReg(Reg.RCX, TCount.Bytes, count);
            c.NextRip = target;
            return ExecStatus.EndBlock;
        }

        c.SetReg(Reg.RCX, TCount.Bytes, count);
        return ExecStatus.Continue;
    }

    public static int JrCxz<TW, TCount>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        where TCount : struct, IDataWidth
        => c.GetReg(Reg.RCX, TCount.Bytes) == 0 ? NearJump(c, c.NextRip + op.Imm, TW.Bytes) : ExecStatus.Continue;
}
