using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// x87 floating point (APM vol. 1 §6, vol. 5): availability, the register stack, exceptions, loads and
/// stores. Arithmetic and comparisons are in Exec.X87Arith.cs, environment save/restore in Exec.X87Env.cs.
/// Exactness: every load and store (m32/m64/m80/integers, with the control word's rounding), every
/// register move, comparison, FABS/FCHS/FRNDINT/FSCALE/FXAM, and the basic arithmetic FADD/FSUB(R)/FMUL/
/// FDIV(R)/FSQRT (all forms) are exact in extended precision, rounded once under the control word's
/// rounding and precision control (Float80Math). The transcendental and remainder instructions (FSIN, FCOS,
/// FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X, FYL2XP1, FPREM, FPREM1) are computed in double precision: their
/// results carry at most 53 significant bits and their PE/UE/OE reporting is approximate.
/// The last-instruction opcode (FOP) is not tracked and saves as zero.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterX87(HandlerTable t)
    {
        t.Add(Code.Fninit, &Fninit, CostClass.X87);
        t.Add(Code.Finit, &Finit, CostClass.X87);
        t.Add(Code.Wait, &Fwait, CostClass.X87);
        t.Add(Code.Fnop, &Fnop, CostClass.X87);
        t.Add(Code.Fnclex, &Fnclex, CostClass.X87);
        t.Add(Code.Fclex, &Fclex, CostClass.X87);
        t.Add(Code.Fnstsw_AX, &FnstswAx, CostClass.X87);
        t.Add(Code.Fstsw_AX, &FnstswAx, CostClass.X87);
        t.Add(Code.Fnstsw_m2byte, &FnstswMem, CostClass.X87);
        t.Add(Code.Fstsw_m2byte, &FnstswMem, CostClass.X87);
        t.Add(Code.Fnstcw_m2byte, &Fnstcw, CostClass.X87);
        t.Add(Code.Fstcw_m2byte, &Fnstcw, CostClass.X87);
        t.Add(Code.Fldcw_m2byte, &Fldcw, CostClass.X87);
        t.Add(Code.Ffree_sti, &Ffree, CostClass.X87);
        t.Add(Code.Ffreep_sti, &Ffree, CostClass.X87);
        t.Add(Code.Fincstp, &Fincstp, CostClass.X87);
        t.Add(Code.Fdecstp, &Fdecstp, CostClass.X87);
        t.Add(Code.Emms, &Emms, CostClass.X87);

        t.Add(Code.Fld_m32fp, &FldMem, CostClass.X87);
        t.Add(Code.Fld_m64fp, &FldMem, CostClass.X87);
        t.Add(Code.Fld_m80fp, &FldMem, CostClass.X87);
        t.Add(Code.Fild_m16int, &FldMem, CostClass.X87);
        t.Add(Code.Fild_m32int, &FldMem, CostClass.X87);
        t.Add(Code.Fild_m64int, &FldMem, CostClass.X87);
        t.Add(Code.Fld_sti, &FldSt, CostClass.X87);
        t.Add(Code.Fld1, &FldConst, CostClass.X87);
        t.Add(Code.Fldz, &FldConst, CostClass.X87);
        t.Add(Code.Fldpi, &FldConst, CostClass.X87);
        t.Add(Code.Fldl2e, &FldConst, CostClass.X87);
        t.Add(Code.Fldl2t, &FldConst, CostClass.X87);
        t.Add(Code.Fldlg2, &FldConst, CostClass.X87);
        t.Add(Code.Fldln2, &FldConst, CostClass.X87);

        t.Add(Code.Fst_m32fp, &FstMem, CostClass.X87);
        t.Add(Code.Fstp_m32fp, &FstMem, CostClass.X87);
        t.Add(Code.Fst_m64fp, &FstMem, CostClass.X87);
        t.Add(Code.Fstp_m64fp, &FstMem, CostClass.X87);
        t.Add(Code.Fstp_m80fp, &FstMem, CostClass.X87);
        t.Add(Code.Fist_m16int, &FstMem, CostClass.X87);
        t.Add(Code.Fistp_m16int, &FstMem, CostClass.X87);
        t.Add(Code.Fist_m32int, &FstMem, CostClass.X87);
        t.Add(Code.Fistp_m32int, &FstMem, CostClass.X87);
        t.Add(Code.Fistp_m64int, &FstMem, CostClass.X87);
        t.Add(Code.Fst_sti, &FstSt, CostClass.X87);
        t.Add(Code.Fstp_sti, &FstSt, CostClass.X87);
        t.Add(Code.Fstp_sti_DFD0, &FstSt, CostClass.X87);
        t.Add(Code.Fstp_sti_DFD8, &FstSt, CostClass.X87);
        t.Add(Code.Fstpnce_sti, &FstSt, CostClass.X87);

        RegisterX87Arith(t);
        RegisterX87Env(t);
    }

    // ---- Availability and exceptions ----

    /// <summary>
    /// Entry checks of an x87 instruction: #NM when CR0.EM or CR0.TS is set; for a waiting instruction,
    /// #MF when an unmasked exception is pending (FSW.ES) and CR0.NE is set (with NE clear the external
    /// FERR# path is not modelled and the instruction proceeds). Returns ExecStatus.Continue when it may run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int X87Enter(Cpu.Cpu c, bool waiting = true)
    {
        if ((c.Cr0 & (Cr0Bits.EM | Cr0Bits.TS)) != 0)
        {
            return c.RaiseNM();
        }

        if (waiting && (c.FpuStatus & FpuSw.ES) != 0 && (c.Cr0 & Cr0Bits.NE) != 0)
        {
            return c.Raise(Vector.MF);
        }

        return ExecStatus.Continue;
    }

    /// <summary>Records CS:RIP (and DS:offset for a memory operand) as the last x87 instruction/data pointers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void X87Pointers(Cpu.Cpu c, ref DecodedOp op, ulong ea = 0)
    {
        c.FpuIp = c.Rip;
        c.FpuCs = c.Seg[SegReg.CS].Selector;
        if (op.MemOp != Reg.NoReg)
        {
            c.FpuDp = ea;
            c.FpuDs = c.Seg[op.Seg].Selector;
        }
    }

    /// <summary>
    /// Signals x87 exceptions: sets the flags; an unmasked one also sets ES and B and makes the caller
    /// leave its destination untouched (returns false). The #MF itself comes at the next waiting instruction.
    /// </summary>
    private static bool X87Signal(Cpu.Cpu c, uint flags)
    {
        if (flags == 0)
        {
            return true;
        }

        ushort sw = (ushort)(c.FpuStatus | (flags & FpFlags.All));
        bool unmasked = (flags & ~(uint)c.FpuCw & FpFlags.All) != 0;
        if (unmasked)
        {
            sw |= FpuSw.ES | FpuSw.B;
        }

        c.FpuStatus = sw;
        return !unmasked;
    }

    /// <summary>Stack fault (APM vol. 1 §6.4.2.1): IE + SF, C1 = 1 for overflow, 0 for underflow.</summary>
    private static bool X87StackFault(Cpu.Cpu c, bool overflow)
    {
        c.FpuStatus = (ushort)((c.FpuStatus & ~FpuSw.C1) | FpuSw.SF | (overflow ? FpuSw.C1 : 0));
        return X87Signal(c, FpFlags.IE);
    }

    /// <summary>Sets C1 (round-up indicator / cleared by most instructions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void X87SetC1(Cpu.Cpu c, bool v) => c.FpuStatus = (ushort)((c.FpuStatus & ~FpuSw.C1) | (v ? FpuSw.C1 : 0));

    /// <summary>Pushes a value; on overflow (ST(7) not empty) the masked response pushes the indefinite QNaN.</summary>
    private static bool X87Push(Cpu.Cpu c, Float80 v)
    {
        int top = (c.FpuTop - 1) & 7;
        if ((c.FpuEmpty & (1 << top)) == 0)
        {
            if (!X87StackFault(c, overflow: true))
            {
                return false;
            }

            v = Float80.Indefinite;
        }
        else
        {
            X87SetC1(c, false);
        }

        c.FpuTop = top;
        c.Fpr[top] = v;
        c.FpuEmpty &= (byte)~(1 << top);
        return true;
    }

    private static void X87Pop(Cpu.Cpu c)
    {
        c.FpuEmpty |= (byte)(1 << c.FpuTop);
        c.FpuTop = (c.FpuTop + 1) & 7;
    }

    /// <summary>Writes ST(i) and tags it valid.</summary>
    private static void X87Write(Cpu.Cpu c, int i, Float80 v)
    {
        int p = c.StPhys(i);
        c.Fpr[p] = v;
        c.FpuEmpty &= (byte)~(1 << p);
    }

    // ---- Control ----

    public static int Fninit(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, waiting: false);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.FpuInit();
        return ExecStatus.Continue;
    }

    public static int Finit(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.FpuInit();
        return ExecStatus.Continue;
    }

    /// <summary>WAIT/FWAIT: #NM only when CR0.TS and CR0.MP are both set; then pending unmasked exceptions → #MF.</summary>
    public static int Fwait(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Cr0 & (Cr0Bits.TS | Cr0Bits.MP)) == (Cr0Bits.TS | Cr0Bits.MP))
        {
            return c.RaiseNM();
        }

        if ((c.FpuStatus & FpuSw.ES) != 0 && (c.Cr0 & Cr0Bits.NE) != 0)
        {
            return c.Raise(Vector.MF);
        }

        return ExecStatus.Continue;
    }

    public static int Fnop(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st == ExecStatus.Continue)
        {
            X87Pointers(c, ref op);
        }

        return st;
    }

    private static int ClearExceptions(Cpu.Cpu c, bool waiting)
    {
        int st = X87Enter(c, waiting);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.FpuStatus &= unchecked((ushort)~(FpFlags.All | FpuSw.SF | FpuSw.ES | FpuSw.B));
        return ExecStatus.Continue;
    }

    public static int Fnclex(Cpu.Cpu c, ref DecodedOp op) => ClearExceptions(c, false);

    public static int Fclex(Cpu.Cpu c, ref DecodedOp op) => ClearExceptions(c, true);

    public static int FnstswAx(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, op.Code == Code.Fstsw_AX);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.SetReg(Reg.RAX, 2, c.FpuSwFull);
        return ExecStatus.Continue;
    }

    public static int FnstswMem(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, op.Code == Code.Fstsw_m2byte);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), 2, c.FpuSwFull) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    public static int Fnstcw(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, op.Code == Code.Fstcw_m2byte);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), 2, c.FpuCw) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>FLDCW: a newly unmasked pending exception sets ES/B (its #MF comes at the next waiting instruction).</summary>
    public static int Fldcw(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, waiting: false);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!c.ReadMem(op.Seg, c.Ea(ref op), 2, out ulong v))
        {
            return ExecStatus.Fault;
        }

        SetControlWord(c, (ushort)v);
        return ExecStatus.Continue;
    }

    /// <summary>Loads the control word: reserved bits 7 and 13–15 read as zero, reserved bit 6 as one.</summary>
    private static void SetControlWord(Cpu.Cpu c, ushort cw)
    {
        c.FpuCw = (ushort)((cw & 0x1F3F) | 0x0040);
        RecomputeSummary(c);
    }

    /// <summary>ES and B follow "an unmasked exception flag is set" after loads of the control or status word.</summary>
    private static void RecomputeSummary(Cpu.Cpu c)
    {
        if ((c.FpuStatus & ~c.FpuCw & FpFlags.All) != 0)
        {
            c.FpuStatus |= FpuSw.ES | FpuSw.B;
        }
        else
        {
            c.FpuStatus &= unchecked((ushort)~(FpuSw.ES | FpuSw.B));
        }
    }

    public static int Ffree(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        c.FpuEmpty |= (byte)(1 << c.StPhys(op.R0));
        if (op.Code == Code.Ffreep_sti)
        {
            X87Pop(c);
        }

        return ExecStatus.Continue;
    }

    /// <summary>EMMS (MMX): every x87 register tag becomes empty; #UD with CR0.EM, #NM with CR0.TS, pending x87 exception → #MF.</summary>
    public static int Emms(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Cr0 & Cr0Bits.EM) != 0)
        {
            return c.RaiseUD();
        }

        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.FpuEmpty = 0xFF;
        return ExecStatus.Continue;
    }

    public static int Fincstp(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        c.FpuTop = (c.FpuTop + 1) & 7;
        X87SetC1(c, false);
        return ExecStatus.Continue;
    }

    public static int Fdecstp(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        c.FpuTop = (c.FpuTop - 1) & 7;
        X87SetC1(c, false);
        return ExecStatus.Continue;
    }

    // ---- Loads ----

    /// <summary>FLD m32/m64/m80, FILD m16/m32/m64: all exact; an SNaN from m32/m64 is IE and loads quieted.</summary>
    public static int FldMem(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong ea = c.Ea(ref op);
        Float80 v;
        uint flags = 0;
        switch (op.Code)
        {
            case Code.Fld_m32fp:
                {
                    if (!c.ReadMem(op.Seg, ea, 4, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    v = Float80.FromIeee(x, 23, 8);
                    flags = LoadFlags(ref v, (x & 0x7F800000) == 0 && (x & 0x7FFFFF) != 0);
                    break;
                }

            case Code.Fld_m64fp:
                {
                    if (!c.ReadMem(op.Seg, ea, 8, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    v = Float80.FromIeee(x, 52, 11);
                    flags = LoadFlags(ref v, (x & 0x7FF0000000000000) == 0 && (x & 0xFFFFFFFFFFFFF) != 0);
                    break;
                }

            case Code.Fld_m80fp:
                {
                    if (!c.ReadMem(op.Seg, ea, 8, out ulong m) || !c.ReadMem(op.Seg, ea + 8, 2, out ulong se))
                    {
                        return ExecStatus.Fault;
                    }

                    v = new Float80((ushort)se, m);
                    break;
                }

            case Code.Fild_m16int:
                {
                    if (!c.ReadMem(op.Seg, ea, 2, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    v = Float80.FromInt64((short)x);
                    break;
                }

            case Code.Fild_m32int:
                {
                    if (!c.ReadMem(op.Seg, ea, 4, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    v = Float80.FromInt64((int)x);
                    break;
                }

            default:
                {
                    if (!c.ReadMem(op.Seg, ea, 8, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    v = Float80.FromInt64((long)x);
                    break;
                }
        }

        X87Pointers(c, ref op, ea);
        if (!X87Signal(c, flags))
        {
            return ExecStatus.Continue;
        }

        X87Push(c, v);
        return ExecStatus.Continue;
    }

    /// <summary>Exceptions of a float/double load: SNaN → IE (value quieted), denormal source → DE.</summary>
    private static uint LoadFlags(ref Float80 v, bool denormalSource)
    {
        if (v.IsSignalingNaN)
        {
            v = v.Quiet();
            return FpFlags.IE;
        }

        return denormalSource ? FpFlags.DE : 0;
    }

    public static int FldSt(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        Float80 v = c.St(op.R0);
        if (c.StEmpty(op.R0))
        {
            if (!X87StackFault(c, overflow: false))
            {
                return ExecStatus.Continue;
            }

            v = Float80.Indefinite;
        }

        X87Push(c, v);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// FLD1/FLDZ/FLDPI/FLDL2E/FLDL2T/FLDLG2/FLDLN2: the 64-bit-significand constants rounded to nearest;
    /// under round-down/toward-zero the constants whose nearest value was rounded up lose one ulp, and under
    /// round-up L2T (rounded down to nearest) gains one.
    /// </summary>
    public static int FldConst(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int rc = c.FpuRc;
        bool down = rc is 1 or 3;
        Float80 v = op.Code switch
        {
            Code.Fld1 => Float80.One,
            Code.Fldz => Float80.Zero,
            Code.Fldpi => new Float80(0x4000, down ? 0xC90FDAA22168C234 : 0xC90FDAA22168C235),
            Code.Fldl2e => new Float80(0x3FFF, down ? 0xB8AA3B295C17F0BB : 0xB8AA3B295C17F0BC),
            Code.Fldl2t => new Float80(0x4000, rc == 2 ? 0xD49A784BCD1B8AFF : 0xD49A784BCD1B8AFE),
            Code.Fldlg2 => new Float80(0x3FFD, down ? 0x9A209A84FBCFF798 : 0x9A209A84FBCFF799),
            _ => new Float80(0x3FFE, down ? 0xB17217F7D1CF79AB : 0xB17217F7D1CF79AC), // FLDLN2
        };
        X87Push(c, v);
        return ExecStatus.Continue;
    }

    // ---- Stores ----

    /// <summary>
    /// FST/FSTP m32/m64, FSTP m80, FIST/FISTP m16/m32, FISTP m64: rounding by the control word, exactly.
    /// An empty ST(0) (masked) stores the format's indefinite; an unmasked IE/OE/UE leaves memory and the
    /// stack unchanged.
    /// </summary>
    public static int FstMem(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong ea = c.Ea(ref op);
        Code code = op.Code;
        bool pop = code is Code.Fstp_m32fp or Code.Fstp_m64fp or Code.Fstp_m80fp or Code.Fistp_m16int or Code.Fistp_m32int or Code.Fistp_m64int;
        bool empty = c.StEmpty(0);
        Float80 v = c.St(0);
        int size;
        ulong bits;
        ushort hi = 0;
        uint flags = 0;
        switch (code)
        {
            case Code.Fst_m32fp:
            case Code.Fstp_m32fp:
                size = 4;
                bits = empty ? 0xFFC00000 : v.ToIeee(23, 8, c.FpuRc, ref flags);
                break;
            case Code.Fst_m64fp:
            case Code.Fstp_m64fp:
                size = 8;
                bits = empty ? 0xFFF8000000000000 : v.ToIeee(52, 11, c.FpuRc, ref flags);
                break;
            case Code.Fstp_m80fp:
                size = 10;
                if (empty)
                {
                    v = Float80.Indefinite;
                }

                bits = v.Mantissa;
                hi = v.SignExp;
                break;
            default:
                {
                    size = code is Code.Fist_m16int or Code.Fistp_m16int ? 2 : code == Code.Fistp_m64int ? 8 : 4;
                    bits = empty ? IntegerIndefinite(size) : ToInteger(v, size, c.FpuRc, ref flags);
                    break;
                }
        }

        if (empty)
        {
            flags |= FpFlags.IE;
            c.FpuStatus |= FpuSw.SF;
        }

        X87Pointers(c, ref op, ea);
        uint unmasked = flags & ~(uint)c.FpuCw & (FpFlags.IE | FpFlags.OE | FpFlags.UE | FpFlags.DE);
        if (unmasked != 0)
        {
            X87Signal(c, flags);
            return ExecStatus.Continue;
        }

        if (size == 10)
        {
            if (!ProbeWrite(c, op.Seg, ea, 10) || !c.WriteMem(op.Seg, ea, 8, bits) || !c.WriteMem(op.Seg, ea + 8, 2, hi))
            {
                return ExecStatus.Fault;
            }
        }
        else if (!c.WriteMem(op.Seg, ea, size, bits))
        {
            return ExecStatus.Fault;
        }

        X87SetC1(c, false);
        X87Signal(c, flags);
        if (pop)
        {
            X87Pop(c);
        }

        return ExecStatus.Continue;
    }

    private static ulong IntegerIndefinite(int size) => size switch
    {
        2 => 0x8000,
        4 => 0x80000000,
        _ => 0x8000000000000000,
    };

    /// <summary>FIST: round by RC; NaN, infinity or out of range → IE and the integer indefinite.</summary>
    private static ulong ToInteger(Float80 v, int size, int rc, ref uint flags)
    {
        if (v.IsUnsupported || !v.RoundToInteger(rc, out ulong mag, out bool inexact))
        {
            flags |= FpFlags.IE;
            return IntegerIndefinite(size);
        }

        ulong limit = 1UL << ((size * 8) - 1); // magnitude limit: 2^(n−1) − 1 positive, 2^(n−1) negative
        if (v.Sign ? mag > limit : mag >= limit)
        {
            flags |= FpFlags.IE;
            return IntegerIndefinite(size);
        }

        if (inexact)
        {
            flags |= FpFlags.PE;
        }

        if (v.IsDenormal)
        {
            flags |= FpFlags.DE;
        }

        ulong r = v.Sign ? (ulong)-(long)mag : mag;
        return size == 8 ? r : r & ((1UL << (size * 8)) - 1);
    }

    /// <summary>FST/FSTP ST(i): copy ST(0) (the masked underflow response copies the indefinite).</summary>
    public static int FstSt(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        Float80 v = c.St(0);
        if (c.StEmpty(0))
        {
            if (!X87StackFault(c, overflow: false))
            {
                return ExecStatus.Continue;
            }

            v = Float80.Indefinite;
        }
        else
        {
            X87SetC1(c, false);
        }

        X87Write(c, op.R0, v);
        if (op.Code != Code.Fst_sti)
        {
            X87Pop(c);
        }

        return ExecStatus.Continue;
    }
}
