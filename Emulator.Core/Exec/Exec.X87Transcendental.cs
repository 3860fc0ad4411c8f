using System.Numerics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// x87 transcendental, scaling, extraction, remainder and conditional-move instructions (APM vol. 5).
/// FSCALE and FXTRACT are exact; the transcendental and remainder instructions compute in double precision.
/// </summary>
public static unsafe partial class Exec
{
    /// <summary>
    /// FSIN/FCOS/F2XM1 in double precision. |x| ≥ 2^63 for FSIN/FCOS sets C2 and leaves ST(0) unchanged.
    /// </summary>
    private static bool X87Transcendental(Cpu.Cpu c, int kind, Float80 v, out Float80 r)
    {
        r = v;
        uint flags = 0;
        if (v.IsNaN || v.IsUnsupported)
        {
            r = v.IsUnsupported ? Float80.Indefinite : v.Quiet();
            return X87Result(c, v.IsSignalingNaN || v.IsUnsupported ? FpFlags.IE : 0);
        }

        c.FpuStatus &= unchecked((ushort)~FpuSw.C2);
        if (kind is 4 or 5 && v.Exponent - Float80.Bias >= 63)
        {
            c.FpuStatus |= FpuSw.C2;
            return v.IsInfinity ? X87InvalidResult(c, out r) : false;
        }

        double x = v.ToDouble();
        double d = kind switch
        {
            4 => Math.Sin(x),
            5 => Math.Cos(x),
            _ => Math.Pow(2, x) - 1,
        };
        if (v.IsDenormal)
        {
            flags |= FpFlags.DE;
        }

        if (d != x || kind != 4)
        {
            flags |= FpFlags.PE;
        }

        r = Float80.FromDouble(d);
        return X87Result(c, flags);
    }

    private static bool X87InvalidResult(Cpu.Cpu c, out Float80 r)
    {
        r = Float80.Indefinite;
        return X87Result(c, FpFlags.IE);
    }

    /// <summary>FSCALE: ST(0) · 2^trunc(ST(1)), exact while the result is representable.</summary>
    public static int Fscale(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        if (c.StEmpty(0) || c.StEmpty(1))
        {
            if (X87StackFault(c, overflow: false))
            {
                X87Write(c, 0, Float80.Indefinite);
            }

            return ExecStatus.Continue;
        }

        Float80 a = c.St(0), b = c.St(1);
        Float80 r;
        uint flags = 0;
        if (a.IsNaN || b.IsNaN || a.IsUnsupported || b.IsUnsupported)
        {
            flags = a.IsSignalingNaN || b.IsSignalingNaN || a.IsUnsupported || b.IsUnsupported ? FpFlags.IE : 0;
            r = a.IsUnsupported || b.IsUnsupported ? Float80.Indefinite : X87NaN(a, b);
        }
        else if (b.IsInfinity)
        {
            bool invalid = b.Sign ? a.IsInfinity : a.IsZero;
            if (invalid)
            {
                flags = FpFlags.IE;
                r = Float80.Indefinite;
            }
            else
            {
                r = b.Sign ? new Float80((ushort)(a.SignExp & 0x8000), 0) : (a.IsZero ? a : new Float80((ushort)((a.SignExp & 0x8000) | Float80.ExpMask), Float80.IntegerBit));
            }
        }
        else
        {
            b.RoundToInteger(3, out ulong mag, out _);
            long n = mag > 1_000_000 || b.Exponent - Float80.Bias > 62 ? 1_000_000 : (long)mag;
            r = a.Scale(b.Sign ? -n : n, ref flags);
        }

        if (X87Result(c, flags))
        {
            X87Write(c, 0, r);
        }

        return ExecStatus.Continue;
    }

    /// <summary>FXTRACT: ST(0) ← unbiased exponent, then push the significand (exponent 0x3FFF); zero → ZE and −∞.</summary>
    public static int Fxtract(Cpu.Cpu c, ref DecodedOp op)
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

        if (c.StEmpty(7) && !underflow)
        {
            Float80 exp, sig;
            uint flags = 0;
            if (v.IsNaN || v.IsUnsupported)
            {
                flags = v.IsSignalingNaN || v.IsUnsupported ? FpFlags.IE : 0;
                exp = sig = v.IsUnsupported ? Float80.Indefinite : v.Quiet();
            }
            else if (v.IsZero)
            {
                flags = FpFlags.ZE;
                exp = new Float80(0xFFFF, Float80.IntegerBit);
                sig = v;
            }
            else if (v.IsInfinity)
            {
                exp = new Float80(Float80.ExpMask, Float80.IntegerBit);
                sig = v;
            }
            else
            {
                int lz = BitOperations.LeadingZeroCount(v.Mantissa);
                int e = (v.Exponent == 0 ? 1 : v.Exponent) - Float80.Bias - lz;
                exp = Float80.FromInt64(e);
                sig = new Float80((ushort)((v.SignExp & 0x8000) | Float80.Bias), v.Mantissa << lz);
                flags = v.IsDenormal ? FpFlags.DE : 0;
            }

            if (X87Result(c, flags))
            {
                X87Write(c, 0, exp);
                X87Push(c, sig);
            }

            return ExecStatus.Continue;
        }

        // Underflow (empty ST(0)) or overflow (ST(7) in use): masked response leaves indefinites.
        if (!underflow && !X87StackFault(c, overflow: true))
        {
            return ExecStatus.Continue;
        }

        X87Write(c, 0, Float80.Indefinite);
        X87Push(c, Float80.Indefinite);
        return ExecStatus.Continue;
    }

    /// <summary>FPTAN: ST(0) ← tan(ST(0)), then push 1.0 (double precision; C2 set when |x| ≥ 2^63).</summary>
    public static int Fptan(Cpu.Cpu c, ref DecodedOp op) => PushingTranscendental(c, ref op, tan: true);

    /// <summary>FSINCOS: ST(0) ← sin, then push cos.</summary>
    public static int Fsincos(Cpu.Cpu c, ref DecodedOp op) => PushingTranscendental(c, ref op, tan: false);

    private static int PushingTranscendental(Cpu.Cpu c, ref DecodedOp op, bool tan)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        if (c.StEmpty(0) || !c.StEmpty(7))
        {
            if (X87StackFault(c, overflow: !c.StEmpty(0)))
            {
                X87Write(c, 0, Float80.Indefinite);
                X87Push(c, Float80.Indefinite);
            }

            return ExecStatus.Continue;
        }

        Float80 v = c.St(0);
        c.FpuStatus &= unchecked((ushort)~FpuSw.C2);
        if (v.IsNaN || v.IsUnsupported || v.IsInfinity)
        {
            Float80 n = v.IsNaN ? v.Quiet() : Float80.Indefinite;
            if (X87Result(c, v.IsSignalingNaN || !v.IsNaN ? FpFlags.IE : 0))
            {
                X87Write(c, 0, n);
                X87Push(c, n);
            }

            return ExecStatus.Continue;
        }

        if (v.Exponent - Float80.Bias >= 63)
        {
            c.FpuStatus |= FpuSw.C2;
            return ExecStatus.Continue;
        }

        double x = v.ToDouble();
        if (!X87Result(c, FpFlags.PE | (v.IsDenormal ? FpFlags.DE : 0)))
        {
            return ExecStatus.Continue;
        }

        X87Write(c, 0, Float80.FromDouble(tan ? Math.Tan(x) : Math.Sin(x)));
        X87Push(c, tan ? Float80.One : Float80.FromDouble(Math.Cos(x)));
        return ExecStatus.Continue;
    }

    /// <summary>FPATAN (0), FYL2X (1), FYL2XP1 (2): ST(1) ← f(ST(1), ST(0)), pop; double precision.</summary>
    public static int FBinaryPop(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        if (c.StEmpty(0) || c.StEmpty(1))
        {
            if (X87StackFault(c, overflow: false))
            {
                X87Write(c, 1, Float80.Indefinite);
                X87Pop(c);
            }

            return ExecStatus.Continue;
        }

        Float80 a = c.St(0), b = c.St(1);
        Float80 r;
        uint flags = 0;
        if (a.IsNaN || b.IsNaN || a.IsUnsupported || b.IsUnsupported)
        {
            flags = a.IsSignalingNaN || b.IsSignalingNaN || a.IsUnsupported || b.IsUnsupported ? FpFlags.IE : 0;
            r = a.IsUnsupported || b.IsUnsupported ? Float80.Indefinite : X87NaN(a, b);
        }
        else
        {
            double x = a.ToDouble(), y = b.ToDouble();
            int kind = s_x87Kind[(int)op.Code];
            double d = kind switch
            {
                0 => Math.Atan2(y, x),
                1 => y * Math.Log2(x),
                _ => y * Math.Log2(1 + x),
            };
            if (double.IsNaN(d))
            {
                flags |= FpFlags.IE;
                r = Float80.Indefinite;
            }
            else
            {
                if (kind == 1 && x == 0 && y != 0)
                {
                    flags |= FpFlags.ZE;
                }

                flags |= FpFlags.PE;
                r = Float80.FromDouble(d);
            }
        }

        if (X87Result(c, flags))
        {
            X87Write(c, 1, r);
            X87Pop(c);
        }

        return ExecStatus.Continue;
    }

    /// <summary>
    /// FPREM (truncating quotient) and FPREM1 (IEEE remainder), in double precision, always complete (C2 = 0);
    /// C0, C3, C1 receive quotient bits 2, 1, 0.
    /// </summary>
    public static int Fprem(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        if (c.StEmpty(0) || c.StEmpty(1))
        {
            if (X87StackFault(c, overflow: false))
            {
                X87Write(c, 0, Float80.Indefinite);
            }

            return ExecStatus.Continue;
        }

        Float80 a = c.St(0), b = c.St(1);
        Float80 r;
        uint flags = 0;
        ushort cc = 0;
        if (a.IsNaN || b.IsNaN || a.IsUnsupported || b.IsUnsupported)
        {
            flags = a.IsSignalingNaN || b.IsSignalingNaN || a.IsUnsupported || b.IsUnsupported ? FpFlags.IE : 0;
            r = a.IsUnsupported || b.IsUnsupported ? Float80.Indefinite : X87NaN(a, b);
        }
        else if (a.IsInfinity || b.IsZero)
        {
            flags = FpFlags.IE;
            r = Float80.Indefinite;
        }
        else if (b.IsInfinity || a.IsZero)
        {
            r = a;
        }
        else
        {
            double x = a.ToDouble(), y = b.ToDouble();
            double rem = s_x87Kind[(int)op.Code] == 0 ? x % y : Math.IEEERemainder(x, y);
            double q = Math.Round((x - rem) / y);
            ulong qi = (ulong)Math.Abs(q % 8);
            cc = (ushort)(((qi & 4) != 0 ? FpuSw.C0 : 0) | ((qi & 2) != 0 ? FpuSw.C3 : 0) | ((qi & 1) != 0 ? FpuSw.C1 : 0));
            r = Float80.FromDouble(rem == 0 ? Math.CopySign(0, x) : rem);
            flags = a.IsDenormal || b.IsDenormal ? FpFlags.DE : 0;
        }

        if (X87Result(c, flags))
        {
            c.FpuStatus = (ushort)((c.FpuStatus & ~FpuSw.CondMask) | cc);
            X87Write(c, 0, r);
        }

        return ExecStatus.Continue;
    }

    /// <summary>FCMOVcc: 0 B (CF), 1 E (ZF), 2 BE (CF|ZF), 3 U (PF); 4–7 the negations.</summary>
    public static int Fcmov(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X87Pointers(c, ref op);
        int kind = s_x87Kind[(int)op.Code];
        int i = op.R1;
        if (c.StEmpty(0) || c.StEmpty(i))
        {
            if (X87StackFault(c, overflow: false))
            {
                X87Write(c, 0, Float80.Indefinite);
            }

            return ExecStatus.Continue;
        }

        bool cond = (kind & 3) switch
        {
            0 => c.GetCF(),
            1 => c.GetZF(),
            2 => c.GetCF() || c.GetZF(),
            _ => c.GetPF(),
        };
        X87SetC1(c, false);
        if (cond != (kind >= 4))
        {
            X87Write(c, 0, c.St(i));
        }

        return ExecStatus.Continue;
    }
}
