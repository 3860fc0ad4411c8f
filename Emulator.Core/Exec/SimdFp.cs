using System.Numerics;
using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;

namespace Emulator.Core.Exec;

/// <summary>Arithmetic operation selector for <see cref="SimdFp.Arith{T}"/>.</summary>
public enum FpOp : byte
{
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
}

/// <summary>
/// IEEE-754 arithmetic with x86 semantics (APM vol. 1 §4.9, vol. 4 "SIMD floating-point exceptions")
/// for float and double, under an MXCSR-style control: rounding control, DAZ, FTZ, and the six
/// exception flags.
/// How rounding modes are honoured: the host computes the round-to-nearest result; the exact error
/// of that result is obtained without loss (TwoSum for add/sub, a fused multiply-add residual for
/// mul/div/sqrt), and its sign moves the result one ulp for the directed modes. This is exact for
/// every result except products and quotients whose exact value lies far below the smallest
/// denormal's precision (the residual then underflows to zero): there PE/UE and a directed-mode
/// result may be missed. NaN propagation follows the x86 rules (first source NaN wins, quieted;
/// invalid operations give the negative "QNaN floating-point indefinite").
/// </summary>
public static class SimdFp
{
    public const uint DazBit = MxcsrBits.DAZ;
    public const uint FtzBit = MxcsrBits.FZ;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsSignaling<T>(T x)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        if (!T.IsNaN(x))
        {
            return false;
        }

        return typeof(T) == typeof(float)
            ? (BitConverter.SingleToUInt32Bits((float)(object)x) & 0x00400000) == 0
            : (BitConverter.DoubleToUInt64Bits((double)(object)x) & 0x0008000000000000) == 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Quiet<T>(T x)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        if (typeof(T) == typeof(float))
        {
            return (T)(object)BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits((float)(object)x) | 0x00400000);
        }

        return (T)(object)BitConverter.UInt64BitsToDouble(BitConverter.DoubleToUInt64Bits((double)(object)x) | 0x0008000000000000);
    }

    /// <summary>The x86 "QNaN floating-point indefinite" (sign set, quiet bit set, payload zero).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Indefinite<T>()
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        if (typeof(T) == typeof(float))
        {
            return (T)(object)BitConverter.UInt32BitsToSingle(0xFFC00000);
        }

        return (T)(object)BitConverter.UInt64BitsToDouble(0xFFF8000000000000);
    }

    /// <summary>Source denormal: DAZ turns it into a signed zero; otherwise DE is flagged.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Denormal<T>(T x, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        if (T.IsSubnormal(x))
        {
            if ((mxcsr & DazBit) != 0)
            {
                return T.CopySign(T.Zero, x);
            }

            flags |= FpFlags.DE;
        }

        return x;
    }

    /// <summary>
    /// add, sub, mul, div, sqrt (sqrt uses <paramref name="b"/> only). <paramref name="mxcsr"/> supplies
    /// RC, DAZ, FTZ and the UM mask; the raised exceptions are ORed into <paramref name="flags"/>.
    /// </summary>
    public static T Arith<T>(FpOp op, T a, T b, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        bool unary = op == FpOp.Sqrt;
        if (T.IsNaN(b) || (!unary && T.IsNaN(a)))
        {
            if (IsSignaling(b) || (!unary && IsSignaling(a)))
            {
                flags |= FpFlags.IE;
            }

            return Quiet(!unary && T.IsNaN(a) ? a : b);
        }

        b = Denormal(b, mxcsr, ref flags);
        if (!unary)
        {
            a = Denormal(a, mxcsr, ref flags);
        }

        T q;
        T err;
        switch (op)
        {
            case FpOp.Add:
            case FpOp.Sub:
                {
                    if (op == FpOp.Sub)
                    {
                        b = -b;
                    }

                    if (T.IsInfinity(a) || T.IsInfinity(b))
                    {
                        if (T.IsInfinity(a) && T.IsInfinity(b) && T.IsNegative(a) != T.IsNegative(b))
                        {
                            flags |= FpFlags.IE;
                            return Indefinite<T>();
                        }

                        return T.IsInfinity(a) ? a : b;
                    }

                    q = a + b;
                    if (T.IsInfinity(q))
                    {
                        return Overflow(q, mxcsr, ref flags);
                    }

                    // TwoSum (Knuth): exact error of the rounded sum.
                    T bv = q - a;
                    T av = q - bv;
                    err = (a - av) + (b - bv);
                    if (q == T.Zero && err == T.Zero)
                    {
                        // Exact zero sum of opposite values: +0, or −0 when rounding down (IEEE 754 §6.3).
                        bool neg = T.IsNegative(a) == T.IsNegative(b) ? T.IsNegative(a) : Rc(mxcsr) == 1;
                        return neg ? T.NegativeZero : T.Zero;
                    }

                    break;
                }

            case FpOp.Mul:
                if ((T.IsInfinity(a) && b == T.Zero) || (T.IsInfinity(b) && a == T.Zero))
                {
                    flags |= FpFlags.IE;
                    return Indefinite<T>();
                }

                q = a * b;
                if (T.IsInfinity(a) || T.IsInfinity(b) || a == T.Zero || b == T.Zero)
                {
                    return q;
                }

                if (T.IsInfinity(q))
                {
                    return Overflow(q, mxcsr, ref flags);
                }

                // The residual a·b − q; a product that rounded to zero is inexact in the product's direction.
                err = q == T.Zero ? (T.IsNegative(a) != T.IsNegative(b) ? -T.One : T.One) : T.FusedMultiplyAdd(a, b, -q);
                break;

            case FpOp.Div:
                if ((a == T.Zero && b == T.Zero) || (T.IsInfinity(a) && T.IsInfinity(b)))
                {
                    flags |= FpFlags.IE;
                    return Indefinite<T>();
                }

                if (b == T.Zero && !T.IsInfinity(a))
                {
                    flags |= FpFlags.ZE;
                    return a / b;
                }

                q = a / b;
                if (T.IsInfinity(a) || T.IsInfinity(b) || a == T.Zero)
                {
                    return q;
                }

                if (T.IsInfinity(q))
                {
                    return Overflow(q, mxcsr, ref flags);
                }

                // a − q·b exactly; the true quotient is q + r/b.
                err = q == T.Zero ? (T.IsNegative(a) != T.IsNegative(b) ? -T.One : T.One) : T.FusedMultiplyAdd(-q, b, a);
                if (q != T.Zero && T.IsNegative(b))
                {
                    err = -err;
                }

                break;

            default: // Sqrt
                if (T.IsNegative(b) && b != T.Zero)
                {
                    flags |= FpFlags.IE;
                    return Indefinite<T>();
                }

                q = T.Sqrt(b);
                if (T.IsInfinity(b) || b == T.Zero)
                {
                    return q;
                }

                err = T.FusedMultiplyAdd(-q, q, b);
                break;
        }

        return Round(q, err, mxcsr, ref flags);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Rc(uint mxcsr) => (int)((mxcsr >> MxcsrBits.RcShift) & 3);

    /// <summary>
    /// Applies the rounding mode to a round-to-nearest result <paramref name="q"/> whose exact error
    /// (true − q) has the sign of <paramref name="err"/>, then overflow, underflow, FTZ and PE.
    /// </summary>
    public static T Round<T>(T q, T err, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        if (err != T.Zero)
        {
            flags |= FpFlags.PE;
            int rc = Rc(mxcsr);
            if (rc != 0)
            {
                bool below = err < T.Zero; // the exact value is below q
                if (rc == 1 && below)
                {
                    q = T.BitDecrement(q);
                }
                else if (rc == 2 && !below)
                {
                    q = T.BitIncrement(q);
                }
                else if (rc == 3 && (below ? T.IsPositive(q) && q != T.Zero : T.IsNegative(q) && q != T.Zero))
                {
                    q = below ? T.BitDecrement(q) : T.BitIncrement(q);
                }

                if (T.IsInfinity(q))
                {
                    flags |= FpFlags.OE;
                    return q;
                }
            }
        }

        if (T.IsSubnormal(q) || (q == T.Zero && err != T.Zero))
        {
            bool um = (mxcsr & (FpFlags.UE << MxcsrBits.MaskShift)) != 0;
            if (err != T.Zero || !um)
            {
                flags |= FpFlags.UE;
            }

            if (um && (mxcsr & FtzBit) != 0)
            {
                flags |= FpFlags.UE | FpFlags.PE;
                return T.CopySign(T.Zero, q);
            }
        }

        return q;
    }

    /// <summary>The round-to-nearest result overflowed: the result the rounding mode gives, OE and PE.</summary>
    public static T Overflow<T>(T infinity, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        flags |= FpFlags.OE | FpFlags.PE;
        bool neg = T.IsNegative(infinity);
        return Float80.OverflowResult(Rc(mxcsr), neg) ? infinity : neg ? -T.MaxValue : T.MaxValue;
    }

    /// <summary>MINxx/MAXxx (APM vol. 4): a NaN in either source or two zeros give the second source; any NaN is IE.</summary>
    public static T MinMax<T>(bool max, T a, T b, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        if (T.IsNaN(a) || T.IsNaN(b))
        {
            flags |= FpFlags.IE;
            return b;
        }

        a = Denormal(a, mxcsr, ref flags);
        b = Denormal(b, mxcsr, ref flags);
        return max ? (a > b ? a : b) : (a < b ? a : b);
    }

    /// <summary>CMPxx predicates 0–7 (EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD); LT/LE/NLT/NLE signal on QNaN too.</summary>
    public static bool Compare<T>(int pred, T a, T b, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        bool unordered = T.IsNaN(a) || T.IsNaN(b);
        if (unordered)
        {
            bool signalingPredicate = (pred & 3) is 1 or 2;
            if (signalingPredicate || IsSignaling(a) || IsSignaling(b))
            {
                flags |= FpFlags.IE;
            }
        }
        else
        {
            a = Denormal(a, mxcsr, ref flags);
            b = Denormal(b, mxcsr, ref flags);
        }

        bool r = (pred & 3) switch
        {
            0 => !unordered && a == b,
            1 => !unordered && a < b,
            2 => !unordered && a <= b,
            _ => unordered,
        };
        return (pred & 4) != 0 ? !r : r;
    }

    /// <summary>
    /// Converts to a signed integer of <paramref name="bits"/> (32/64) under rounding control
    /// <paramref name="rc"/>; NaN or out of range gives the integer indefinite (0x80…0) and IE.
    /// </summary>
    public static long ToInt<T>(T x, int bits, int rc, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        long indefinite = bits == 32 ? int.MinValue : long.MinValue;
        if (T.IsNaN(x) || T.IsInfinity(x))
        {
            flags |= FpFlags.IE;
            return indefinite;
        }

        if (T.IsSubnormal(x) && (mxcsr & DazBit) != 0)
        {
            return 0;
        }

        double d = double.CreateTruncating(x); // exact for float and double
        double r = rc switch
        {
            0 => Math.Round(d, MidpointRounding.ToEven),
            1 => Math.Floor(d),
            2 => Math.Ceiling(d),
            _ => Math.Truncate(d),
        };
        bool fits = bits == 32 ? r >= -2147483648.0 && r <= 2147483647.0 : r >= -9223372036854775808.0 && r < 9223372036854775808.0;
        if (!fits)
        {
            flags |= FpFlags.IE;
            return indefinite;
        }

        if (r != d)
        {
            flags |= FpFlags.PE;
        }

        return (long)r;
    }

    /// <summary>Signed integer → float/double under MXCSR rounding (CVTSI2SS/SD, CVTDQ2PS).</summary>
    public static T FromInt<T>(long v, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        T q = T.CreateTruncating(v); // round to nearest
        // Exact error sign: compare q with v as integers (q is integral; |q| ≤ 2^63).
        int cmp;
        if (q >= T.CreateTruncating(9223372036854775808.0))
        {
            cmp = 1;
        }
        else
        {
            long back = long.CreateTruncating(q);
            cmp = back == v ? 0 : back > v ? 1 : -1;
        }

        if (cmp == 0)
        {
            return q;
        }

        // err = v − q: negative when q is above v.
        return Round(q, cmp > 0 ? -T.One : T.One, mxcsr, ref flags);
    }

    /// <summary>CVTSD2SS / CVTPD2PS: double → float under MXCSR rounding, with DAZ, FTZ and all flags.</summary>
    public static float Narrow(double d, uint mxcsr, ref uint flags)
    {
        if (double.IsNaN(d))
        {
            if (IsSignaling(d))
            {
                flags |= FpFlags.IE;
            }

            ulong bits = BitConverter.DoubleToUInt64Bits(d);
            uint sign = (uint)(bits >> 63) << 31;
            return BitConverter.UInt32BitsToSingle(sign | 0x7FC00000 | (uint)((bits >> 29) & 0x003FFFFF));
        }

        d = Denormal(d, mxcsr, ref flags);
        if (double.IsInfinity(d) || d == 0)
        {
            return (float)d;
        }

        float q = (float)d;
        if (float.IsInfinity(q))
        {
            return Overflow(q, mxcsr, ref flags);
        }

        double err = d - q; // exact: q is within one float ulp of d, which double represents
        return Round(q, (float)Math.Sign(err), mxcsr, ref flags);
    }

    /// <summary>CVTSS2SD / CVTPS2PD: exact; SNaN → IE and quieted; denormal source → DE (or zero under DAZ).</summary>
    public static double Widen(float f, uint mxcsr, ref uint flags)
    {
        if (float.IsNaN(f))
        {
            if (IsSignaling(f))
            {
                flags |= FpFlags.IE;
            }

            uint bits = BitConverter.SingleToUInt32Bits(f) | 0x00400000;
            ulong sign = (ulong)(bits >> 31) << 63;
            return BitConverter.UInt64BitsToDouble(sign | 0x7FF0000000000000 | ((ulong)(bits & 0x007FFFFF) << 29));
        }

        return Denormal(f, mxcsr, ref flags);
    }
}
