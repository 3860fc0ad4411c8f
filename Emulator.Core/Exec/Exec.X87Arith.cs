using System.Numerics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// x87 arithmetic, comparisons and register operations (APM vol. 5). Operation kinds follow the ModRM
/// reg field of D8/DC/DA/DE: 0 FADD, 1 FMUL, 2 FCOM, 3 FCOMP, 4 FSUB, 5 FSUBR, 6 FDIV, 7 FDIVR.
/// </summary>
public static unsafe partial class Exec
{
    private const byte X87PopFlag = 0x10, X87QuietFlag = 0x20, X87PopTwiceFlag = 0x40;

    /// <summary>
    /// Per-Code x87 operation kind (low 3 bits) and P/U/PP flags, filled at registration. A nested holder so
    /// that it exists before Exec's own static initializer (which builds the handler table) runs.
    /// </summary>
    private static byte[] s_x87Kind => X87KindTable.Kinds;

    private static class X87KindTable
    {
        public static readonly byte[] Kinds = new byte[Enum.GetValues<Code>().Length];
    }

    private static void X87(HandlerTable t, Code code, delegate*<Cpu.Cpu, ref DecodedOp, int> h, int kind)
    {
        s_x87Kind[(int)code] = (byte)kind;
        t.Add(code, h, CostClass.X87);
    }

    private static void RegisterX87Arith(HandlerTable t)
    {
        // kind per ModRM.reg: add, mul, com, comp, sub, subr, div, divr.
        Code[] m32 = [Code.Fadd_m32fp, Code.Fmul_m32fp, Code.Fcom_m32fp, Code.Fcomp_m32fp, Code.Fsub_m32fp, Code.Fsubr_m32fp, Code.Fdiv_m32fp, Code.Fdivr_m32fp];
        Code[] m64 = [Code.Fadd_m64fp, Code.Fmul_m64fp, Code.Fcom_m64fp, Code.Fcomp_m64fp, Code.Fsub_m64fp, Code.Fsubr_m64fp, Code.Fdiv_m64fp, Code.Fdivr_m64fp];
        Code[] i16 = [Code.Fiadd_m16int, Code.Fimul_m16int, Code.Ficom_m16int, Code.Ficomp_m16int, Code.Fisub_m16int, Code.Fisubr_m16int, Code.Fidiv_m16int, Code.Fidivr_m16int];
        Code[] i32 = [Code.Fiadd_m32int, Code.Fimul_m32int, Code.Ficom_m32int, Code.Ficomp_m32int, Code.Fisub_m32int, Code.Fisubr_m32int, Code.Fidiv_m32int, Code.Fidivr_m32int];
        Code[] st0sti = [Code.Fadd_st0_sti, Code.Fmul_st0_sti, Code.Fcom_st0_sti, Code.Fcomp_st0_sti, Code.Fsub_st0_sti, Code.Fsubr_st0_sti, Code.Fdiv_st0_sti, Code.Fdivr_st0_sti];
        for (int k = 0; k < 8; k++)
        {
            X87(t, m32[k], &FArithMem, k);
            X87(t, m64[k], &FArithMem, k);
            X87(t, i16[k], &FArithMem, k);
            X87(t, i32[k], &FArithMem, k);
            X87(t, st0sti[k], &FArithSt0Sti, k);
        }

        // DC C0+i …: ST(i) ← ST(i) op ST(0); DE …: the same and pop. Intel names: FSUB ST(i),ST(0) is ST(i) − ST(0).
        X87(t, Code.Fadd_sti_st0, &FArithStiSt0, 0);
        X87(t, Code.Fmul_sti_st0, &FArithStiSt0, 1);
        X87(t, Code.Fsub_sti_st0, &FArithStiSt0, 4);
        X87(t, Code.Fsubr_sti_st0, &FArithStiSt0, 5);
        X87(t, Code.Fdiv_sti_st0, &FArithStiSt0, 6);
        X87(t, Code.Fdivr_sti_st0, &FArithStiSt0, 7);
        X87(t, Code.Faddp_sti_st0, &FArithStiSt0, 0 | X87PopFlag);
        X87(t, Code.Fmulp_sti_st0, &FArithStiSt0, 1 | X87PopFlag);
        X87(t, Code.Fsubp_sti_st0, &FArithStiSt0, 4 | X87PopFlag);
        X87(t, Code.Fsubrp_sti_st0, &FArithStiSt0, 5 | X87PopFlag);
        X87(t, Code.Fdivp_sti_st0, &FArithStiSt0, 6 | X87PopFlag);
        X87(t, Code.Fdivrp_sti_st0, &FArithStiSt0, 7 | X87PopFlag);

        // Aliases of FCOM/FCOMP, and the unordered and two-pop forms.
        X87(t, Code.Fcom_st0_sti_DCD0, &FArithSt0Sti, 2);
        X87(t, Code.Fcomp_st0_sti_DCD8, &FArithSt0Sti, 3);
        X87(t, Code.Fcomp_st0_sti_DED0, &FArithSt0Sti, 3);
        X87(t, Code.Fucom_st0_sti, &FArithSt0Sti, 2 | X87QuietFlag);
        X87(t, Code.Fucomp_st0_sti, &FArithSt0Sti, 3 | X87QuietFlag);
        X87(t, Code.Fcompp, &Fcompp, 3 | X87PopTwiceFlag);
        X87(t, Code.Fucompp, &Fcompp, 3 | X87PopTwiceFlag | X87QuietFlag);
        X87(t, Code.Fcomi_st0_sti, &Fcomi, 2);
        X87(t, Code.Fcomip_st0_sti, &Fcomi, 3);
        X87(t, Code.Fucomi_st0_sti, &Fcomi, 2 | X87QuietFlag);
        X87(t, Code.Fucomip_st0_sti, &Fcomi, 3 | X87QuietFlag);
        X87(t, Code.Ftst, &Ftst, 2);

        X87(t, Code.Fxch_st0_sti, &Fxch, 0);
        X87(t, Code.Fxch_st0_sti_DDC8, &Fxch, 0);
        X87(t, Code.Fxch_st0_sti_DFC8, &Fxch, 0);
        X87(t, Code.Fchs, &FUnary, 0);
        X87(t, Code.Fabs, &FUnary, 1);
        X87(t, Code.Fsqrt, &FUnary, 2);
        X87(t, Code.Frndint, &FUnary, 3);
        X87(t, Code.Fsin, &FUnary, 4);
        X87(t, Code.Fcos, &FUnary, 5);
        X87(t, Code.F2xm1, &FUnary, 6);
        X87(t, Code.Fxam, &Fxam, 0);
        X87(t, Code.Fscale, &Fscale, 0);
        X87(t, Code.Fxtract, &Fxtract, 0);
        X87(t, Code.Fptan, &Fptan, 0);
        X87(t, Code.Fsincos, &Fsincos, 0);
        X87(t, Code.Fpatan, &FBinaryPop, 0);
        X87(t, Code.Fyl2x, &FBinaryPop, 1);
        X87(t, Code.Fyl2xp1, &FBinaryPop, 2);
        X87(t, Code.Fprem, &Fprem, 0);
        X87(t, Code.Fprem1, &Fprem, 1);

        X87(t, Code.Fcmovb_st0_sti, &Fcmov, 0);
        X87(t, Code.Fcmove_st0_sti, &Fcmov, 1);
        X87(t, Code.Fcmovbe_st0_sti, &Fcmov, 2);
        X87(t, Code.Fcmovu_st0_sti, &Fcmov, 3);
        X87(t, Code.Fcmovnb_st0_sti, &Fcmov, 4);
        X87(t, Code.Fcmovne_st0_sti, &Fcmov, 5);
        X87(t, Code.Fcmovnbe_st0_sti, &Fcmov, 6);
        X87(t, Code.Fcmovnu_st0_sti, &Fcmov, 7);
    }

    // ---- Core arithmetic ----

    /// <summary>x87 NaN propagation (APM vol. 1 §6.4.2.3): a QNaN beats an SNaN; two of a kind: the larger significand.</summary>
    private static Float80 X87NaN(Float80 a, Float80 b)
    {
        if (a.IsNaN && b.IsNaN)
        {
            if (a.IsSignalingNaN != b.IsSignalingNaN)
            {
                return (a.IsSignalingNaN ? b : a).Quiet();
            }

            return ((a.Mantissa << 1) >= (b.Mantissa << 1) ? a : b).Quiet();
        }

        return (a.IsNaN ? a : b).Quiet();
    }

    /// <summary>
    /// Computes a ∘ b (b only for sqrt). Returns false when an unmasked invalid, denormal or zero-divide
    /// exception leaves the destination unchanged.
    /// </summary>
    private static bool X87Arith(Cpu.Cpu c, FpOp fop, Float80 a, Float80 b, out Float80 r)
    {
        uint flags = 0;
        bool unary = fop == FpOp.Sqrt;
        if (b.IsUnsupported || (!unary && a.IsUnsupported))
        {
            flags = FpFlags.IE;
            r = Float80.Indefinite;
        }
        else if (b.IsNaN || (!unary && a.IsNaN))
        {
            flags = b.IsSignalingNaN || (!unary && a.IsSignalingNaN) ? FpFlags.IE : 0;
            r = unary ? b.Quiet() : X87NaN(a, b);
        }
        else
        {
            if (b.IsDenormal || (!unary && a.IsDenormal))
            {
                flags |= FpFlags.DE;
            }

            r = X87Exact(c, fop, a, b, ref flags);
        }

        return X87Result(c, flags);
    }

    /// <summary>
    /// Exact extended-precision FADD/FSUB/FMUL/FDIV/FSQRT on non-NaN, supported operands: the special cases
    /// (infinities, zeros, invalid operations, division by zero) per APM vol. 1 §6.4, the rest through
    /// <see cref="Float80Math"/> with the control word's rounding and precision control.
    /// </summary>
    private static Float80 X87Exact(Cpu.Cpu c, FpOp fop, Float80 a, Float80 b, ref uint flags)
    {
        int rc = c.FpuRc, pc = (c.FpuCw >> 8) & 3;
        bool az = a.Mantissa == 0, bz = b.Mantissa == 0;
        ushort xsign = (ushort)((a.SignExp ^ b.SignExp) & 0x8000);
        Float80 inf = new((ushort)(xsign | Float80.ExpMask), Float80.IntegerBit);
        Float80 zero = new(xsign, 0);
        switch (fop)
        {
            case FpOp.Add:
            case FpOp.Sub:
                if (fop == FpOp.Sub)
                {
                    b = b.Negate();
                }

                if (a.IsInfinity || b.IsInfinity)
                {
                    if (a.IsInfinity && b.IsInfinity && a.Sign != b.Sign)
                    {
                        flags |= FpFlags.IE;
                        return Float80.Indefinite;
                    }

                    return a.IsInfinity ? a : b;
                }

                return Float80Math.Add(a, b, rc, pc, ref flags);

            case FpOp.Mul:
                if (a.IsInfinity || b.IsInfinity)
                {
                    if (az || bz)
                    {
                        flags |= FpFlags.IE;
                        return Float80.Indefinite;
                    }

                    return inf;
                }

                return az || bz ? zero : Float80Math.Mul(a, b, rc, pc, ref flags);

            case FpOp.Div:
                if (a.IsInfinity)
                {
                    if (b.IsInfinity)
                    {
                        flags |= FpFlags.IE;
                        return Float80.Indefinite;
                    }

                    return inf;
                }

                if (b.IsInfinity)
                {
                    return zero;
                }

                if (bz)
                {
                    flags |= az ? FpFlags.IE : FpFlags.ZE;
                    return az ? Float80.Indefinite : inf;
                }

                return az ? zero : Float80Math.Div(a, b, rc, pc, ref flags);

            default: // Sqrt of b
                if (bz)
                {
                    return b;
                }

                if (b.Sign)
                {
                    flags |= FpFlags.IE;
                    return Float80.Indefinite;
                }

                return b.IsInfinity ? b : Float80Math.Sqrt(b, rc, pc, ref flags);
        }
    }

    /// <summary>Signals <paramref name="flags"/>; false when an unmasked pre-computation exception (IE, DE, ZE) suppresses the result.</summary>
    private static bool X87Result(Cpu.Cpu c, uint flags)
    {
        X87SetC1(c, false);
        X87Signal(c, flags);
        return (flags & ~(uint)c.FpuCw & (FpFlags.IE | FpFlags.DE | FpFlags.ZE)) == 0;
    }

    private static FpOp X87Op(int kind) => kind switch
    {
        0 => FpOp.Add,
        1 => FpOp.Mul,
        4 or 5 => FpOp.Sub,
        _ => FpOp.Div,
    };

    /// <summary>dest ← dest op src, with the reversed forms (SUBR, DIVR) swapping the operands.</summary>
    private static bool X87Binary(Cpu.Cpu c, int kind, Float80 dest, Float80 src, out Float80 r)
    {
        bool reverse = kind is 5 or 7;
        return X87Arith(c, X87Op(kind), reverse ? src : dest, reverse ? dest : src, out r);
    }

    /// <summary>Reads ST(i); an empty register is a stack underflow (false when unmasked; masked gives the indefinite).</summary>
    private static bool X87Read(Cpu.Cpu c, int i, out Float80 v, out bool underflow)
    {
        if (c.StEmpty(i))
        {
            v = Float80.Indefinite;
            underflow = true;
            return X87StackFault(c, overflow: false);
        }

        v = c.St(i);
        underflow = false;
        return true;
    }

    public static int FArithMem(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong ea = c.Ea(ref op);
        Float80 src;
        uint loadFlags = 0;
        switch (op.MemorySize)
        {
            case MemorySize.Float32:
                {
                    if (!c.ReadMem(op.Seg, ea, 4, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    src = Float80.FromIeee(x, 23, 8);
                    loadFlags = (x & 0x7F800000) == 0 && (x & 0x7FFFFF) != 0 ? FpFlags.DE : 0;
                    break;
                }

            case MemorySize.Float64:
                {
                    if (!c.ReadMem(op.Seg, ea, 8, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    src = Float80.FromIeee(x, 52, 11);
                    loadFlags = (x & 0x7FF0000000000000) == 0 && (x & 0xFFFFFFFFFFFFF) != 0 ? FpFlags.DE : 0;
                    break;
                }

            case MemorySize.Int16:
                {
                    if (!c.ReadMem(op.Seg, ea, 2, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    src = Float80.FromInt64((short)x);
                    break;
                }

            default:
                {
                    if (!c.ReadMem(op.Seg, ea, 4, out ulong x))
                    {
                        return ExecStatus.Fault;
                    }

                    src = Float80.FromInt64((int)x);
                    break;
                }
        }

        X87Pointers(c, ref op, ea);
        int kind = s_x87Kind[(int)op.Code];
        if (loadFlags != 0 && !X87Result(c, loadFlags))
        {
            return ExecStatus.Continue;
        }

        if ((kind & 7) is 2 or 3)
        {
            X87CompareAndSet(c, 0, src, kind);
            return ExecStatus.Continue;
        }

        if (!X87Read(c, 0, out Float80 dest, out _))
        {
            return ExecStatus.Continue;
        }

        if (X87Binary(c, kind & 7, dest, src, out Float80 r))
        {
            X87Write(c, 0, r);
        }

        return ExecStatus.Continue;
    }

    public static int FArithSt0Sti(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int kind = s_x87Kind[(int)op.Code];
        int i = op.R1;
        if ((kind & 7) is 2 or 3)
        {
            if (c.StEmpty(i))
            {
                X87UnorderedUnderflow(c, kind);
                return ExecStatus.Continue;
            }

            X87CompareAndSet(c, 0, c.St(i), kind);
            return ExecStatus.Continue;
        }

        X87TwoRegisters(c, kind, 0, i, 0);
        return ExecStatus.Continue;
    }

    public static int FArithStiSt0(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int kind = s_x87Kind[(int)op.Code];
        X87TwoRegisters(c, kind, op.R0, 0, op.R0);
        return ExecStatus.Continue;
    }

    /// <summary>ST(dest) ← ST(a) op ST(b) (a is the destination operand); pops when the kind says so.</summary>
    private static void X87TwoRegisters(Cpu.Cpu c, int kind, int a, int b, int dest)
    {
        bool empty = c.StEmpty(a) || c.StEmpty(b);
        Float80 r;
        if (empty)
        {
            if (!X87StackFault(c, overflow: false))
            {
                return;
            }

            r = Float80.Indefinite;
        }
        else if (!X87Binary(c, kind & 7, c.St(a), c.St(b), out r))
        {
            return;
        }

        X87Write(c, dest, r);
        if ((kind & X87PopFlag) != 0)
        {
            X87Pop(c);
        }
    }

    // ---- Comparisons ----

    /// <summary>Relation of a to b: 1 greater, -1 less, 0 equal, 2 unordered. False when an unmasked exception stops the compare.</summary>
    private static bool X87Relation(Cpu.Cpu c, Float80 a, Float80 b, bool quiet, out int rel)
    {
        uint flags = 0;
        if (a.IsNaN || b.IsNaN || a.IsUnsupported || b.IsUnsupported)
        {
            if (!quiet || a.IsSignalingNaN || b.IsSignalingNaN || a.IsUnsupported || b.IsUnsupported)
            {
                flags = FpFlags.IE;
            }

            rel = 2;
        }
        else
        {
            if (a.IsDenormal || b.IsDenormal)
            {
                flags = FpFlags.DE;
            }

            rel = Float80.Compare(a, b);
        }

        X87SetC1(c, false);
        return X87Signal(c, flags);
    }

    private static void X87SetCompareCodes(Cpu.Cpu c, int rel)
    {
        ushort cc = rel switch
        {
            1 => 0,
            -1 => FpuSw.C0,
            0 => FpuSw.C3,
            _ => FpuSw.C3 | FpuSw.C2 | FpuSw.C0,
        };
        c.FpuStatus = (ushort)((c.FpuStatus & ~FpuSw.CondMask) | cc);
    }

    /// <summary>Compares ST(i) with <paramref name="b"/>, sets C3/C2/C0 and pops for FCOMP forms.</summary>
    private static void X87CompareAndSet(Cpu.Cpu c, int i, Float80 b, int kind)
    {
        if (c.StEmpty(i))
        {
            X87UnorderedUnderflow(c, kind);
            return;
        }

        if (!X87Relation(c, c.St(i), b, (kind & X87QuietFlag) != 0, out int rel))
        {
            return;
        }

        X87SetCompareCodes(c, rel);
        if ((kind & 7) == 3)
        {
            X87Pop(c);
        }
    }

    /// <summary>Compare with an empty operand: stack underflow; masked, the result is "unordered".</summary>
    private static void X87UnorderedUnderflow(Cpu.Cpu c, int kind)
    {
        if (!X87StackFault(c, overflow: false))
        {
            return;
        }

        X87SetCompareCodes(c, 2);
        X87SetC1(c, false);
        if ((kind & 7) == 3)
        {
            X87Pop(c);
        }

        if ((kind & X87PopTwiceFlag) != 0)
        {
            X87Pop(c);
        }
    }

    public static int Fcompp(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int kind = s_x87Kind[(int)op.Code];
        if (c.StEmpty(0) || c.StEmpty(1))
        {
            X87UnorderedUnderflow(c, kind);
            return ExecStatus.Continue;
        }

        if (!X87Relation(c, c.St(0), c.St(1), (kind & X87QuietFlag) != 0, out int rel))
        {
            return ExecStatus.Continue;
        }

        X87SetCompareCodes(c, rel);
        X87Pop(c);
        X87Pop(c);
        return ExecStatus.Continue;
    }

    /// <summary>(U)COMI(P): ZF, PF, CF from the comparison (111 unordered); OF, SF, AF cleared.</summary>
    public static int Fcomi(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int kind = s_x87Kind[(int)op.Code];
        int rel;
        if (c.StEmpty(0) || c.StEmpty(op.R1))
        {
            if (!X87StackFault(c, overflow: false))
            {
                return ExecStatus.Continue;
            }

            rel = 2;
        }
        else if (!X87Relation(c, c.St(0), c.St(op.R1), (kind & X87QuietFlag) != 0, out rel))
        {
            return ExecStatus.Continue;
        }

        c.SetArithFlags(rel switch
        {
            1 => 0,
            -1 => Rflags.CF,
            0 => Rflags.ZF,
            _ => Rflags.ZF | Rflags.PF | Rflags.CF,
        });
        if ((kind & 7) == 3)
        {
            X87Pop(c);
        }

        return ExecStatus.Continue;
    }

    /// <summary>FTST: compares ST(0) with +0.0 (signals IE on any NaN).</summary>
    public static int Ftst(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        X87CompareAndSet(c, 0, Float80.Zero, 2);
        return ExecStatus.Continue;
    }

    /// <summary>FXAM: C1 = sign; C3,C2,C0 = class (000 unsupported, 001 NaN, 010 normal, 011 infinity, 100 zero, 101 empty, 110 denormal).</summary>
    public static int Fxam(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        Float80 v = c.St(0);
        ushort cc;
        if (c.StEmpty(0))
        {
            cc = FpuSw.C3 | FpuSw.C0;
        }
        else if (v.IsUnsupported)
        {
            cc = 0;
        }
        else if (v.IsNaN)
        {
            cc = FpuSw.C0;
        }
        else if (v.IsInfinity)
        {
            cc = FpuSw.C2 | FpuSw.C0;
        }
        else if (v.IsZero)
        {
            cc = FpuSw.C3;
        }
        else if (v.IsDenormal)
        {
            cc = FpuSw.C3 | FpuSw.C2;
        }
        else
        {
            cc = FpuSw.C2;
        }

        if (v.Sign)
        {
            cc |= FpuSw.C1;
        }

        c.FpuStatus = (ushort)((c.FpuStatus & ~FpuSw.CondMask) | cc);
        return ExecStatus.Continue;
    }

    // ---- Register operations ----

    /// <summary>FXCH: an empty operand is a stack underflow; masked, it is treated as the indefinite.</summary>
    public static int Fxch(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int i = op.R1 != Reg.NoReg ? op.R1 : 1;
        Float80 a = c.St(0), b = c.St(i);
        if (c.StEmpty(0) || c.StEmpty(i))
        {
            if (!X87StackFault(c, overflow: false))
            {
                return ExecStatus.Continue;
            }

            if (c.StEmpty(0))
            {
                a = Float80.Indefinite;
            }

            if (c.StEmpty(i))
            {
                b = Float80.Indefinite;
            }
        }
        else
        {
            X87SetC1(c, false);
        }

        X87Write(c, 0, b);
        X87Write(c, i, a);
        return ExecStatus.Continue;
    }

    /// <summary>Unary operations on ST(0): 0 FCHS, 1 FABS, 2 FSQRT, 3 FRNDINT, 4 FSIN, 5 FCOS, 6 F2XM1.</summary>
    public static int FUnary(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        if (!X87Read(c, 0, out Float80 v, out bool underflow))
        {
            return ExecStatus.Continue;
        }

        if (underflow)
        {
            X87Write(c, 0, v);
            return ExecStatus.Continue;
        }

        int kind = s_x87Kind[(int)op.Code];
        Float80 r;
        switch (kind)
        {
            case 0:
                X87SetC1(c, false);
                r = v.Negate();
                break;
            case 1:
                X87SetC1(c, false);
                r = v.Abs();
                break;
            case 2:
                if (!X87Arith(c, FpOp.Sqrt, v, v, out r))
                {
                    return ExecStatus.Continue;
                }

                break;
            case 3:
                {
                    uint flags = 0;
                    if (v.IsNaN || v.IsUnsupported)
                    {
                        flags = v.IsSignalingNaN || v.IsUnsupported ? FpFlags.IE : 0;
                        r = v.IsUnsupported ? Float80.Indefinite : v.Quiet();
                    }
                    else
                    {
                        r = v.RoundToIntegral(c.FpuRc, out bool inexact);
                        flags = (inexact ? FpFlags.PE : 0) | (v.IsDenormal ? FpFlags.DE : 0);
                    }

                    if (!X87Result(c, flags))
                    {
                        return ExecStatus.Continue;
                    }

                    break;
                }

            default:
                if (!X87Transcendental(c, kind, v, out r))
                {
                    return ExecStatus.Continue;
                }

                break;
        }

        X87Write(c, 0, r);
        return ExecStatus.Continue;
    }
}
