using System.Numerics;
using System.Runtime.InteropServices;

namespace Emulator.Core.Cpu;

/// <summary>
/// x87 double-extended-precision value (APM vol. 1 §6.2): 64-bit significand with an explicit integer
/// bit, 15-bit biased exponent (bias 16383) and sign in bit 15 of <see cref="SignExp"/>.
/// What is exact: the raw bit copy (FLD/FSTP m80, FXSAVE/FXRSTOR round-trip every encoding, including
/// unnormals and pseudo-denormals), conversions from float/double/integers, conversions to
/// float/double/integers under every rounding-control mode (<see cref="ToIeee"/>, <see cref="RoundToInteger"/>),
/// comparisons, sign operations and FRNDINT. Arithmetic is done elsewhere in double precision.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 2)]
public struct Float80 : IEquatable<Float80>
{
    public ulong Mantissa;
    public ushort SignExp;

    public const int Bias = 16383;
    public const ushort ExpMask = 0x7FFF;
    public const ulong IntegerBit = 1UL << 63;
    public const ulong QuietBit = 1UL << 62;

    public Float80(ushort signExp, ulong mantissa)
    {
        SignExp = signExp;
        Mantissa = mantissa;
    }

    /// <summary>The "real indefinite" QNaN the x87 produces for masked invalid operations.</summary>
    public static Float80 Indefinite => new(0xFFFF, 0xC000000000000000);

    public static Float80 Zero => default;

    public static Float80 One => new(0x3FFF, IntegerBit);

    public readonly bool Sign => (SignExp & 0x8000) != 0;

    public readonly int Exponent => SignExp & ExpMask;

    public readonly bool IsNaN => Exponent == ExpMask && (Mantissa << 1) != 0;

    /// <summary>SNaN: the quiet bit (62) clear. Invalid encodings are treated as SNaN-like operands.</summary>
    public readonly bool IsSignalingNaN => IsNaN && (Mantissa & QuietBit) == 0;

    public readonly bool IsInfinity => Exponent == ExpMask && (Mantissa << 1) == 0;

    public readonly bool IsZero => Exponent == 0 && Mantissa == 0;

    /// <summary>Denormal (or pseudo-denormal) encoding: exponent 0, nonzero significand.</summary>
    public readonly bool IsDenormal => Exponent == 0 && Mantissa != 0;

    /// <summary>Unsupported encodings (APM vol. 1 §6.2.3): nonzero exponent with the integer bit clear.</summary>
    public readonly bool IsUnsupported => Exponent != 0 && (Mantissa & IntegerBit) == 0;

    public readonly Float80 Negate() => new((ushort)(SignExp ^ 0x8000), Mantissa);

    public readonly Float80 Abs() => new((ushort)(SignExp & ExpMask), Mantissa);

    public readonly Float80 Quiet() => new(SignExp, Mantissa | QuietBit);

    public readonly bool Equals(Float80 other) => Mantissa == other.Mantissa && SignExp == other.SignExp;

    public override readonly bool Equals(object? obj) => obj is Float80 f && Equals(f);

    public override readonly int GetHashCode() => HashCode.Combine(Mantissa, SignExp);

    public static bool operator ==(Float80 a, Float80 b) => a.Equals(b);

    public static bool operator !=(Float80 a, Float80 b) => !a.Equals(b);

    /// <summary>Exact conversion from an IEEE binary format given by its field widths (float: 23/8, double: 52/11).</summary>
    public static Float80 FromIeee(ulong bits, int mantBits, int expBits)
    {
        int bias = (1 << (expBits - 1)) - 1;
        int expMax = (1 << expBits) - 1;
        ushort sign = (ushort)((bits >> (mantBits + expBits)) != 0 ? 0x8000 : 0);
        int exp = (int)((bits >> mantBits) & (ulong)expMax);
        ulong frac = bits & ((1UL << mantBits) - 1);
        if (exp == expMax)
        {
            // Infinity or NaN: the payload moves to the top of the significand, quiet bit stays the quiet bit.
            return new Float80((ushort)(sign | ExpMask), IntegerBit | (frac << (63 - mantBits)));
        }

        if (exp == 0)
        {
            if (frac == 0)
            {
                return new Float80(sign, 0);
            }

            // Denormal in the source format: normalize (extended precision has the range).
            int lz = BitOperations.LeadingZeroCount(frac);
            ulong m = frac << lz;
            int e = 1 - bias - mantBits + 63 - lz + Bias;
            return new Float80((ushort)(sign | e), m);
        }

        return new Float80((ushort)(sign | (exp - bias + Bias)), IntegerBit | (frac << (63 - mantBits)));
    }

    public static Float80 FromDouble(double d) => FromIeee(BitConverter.DoubleToUInt64Bits(d), 52, 11);

    public static Float80 FromSingle(float f) => FromIeee(BitConverter.SingleToUInt32Bits(f), 23, 8);

    /// <summary>Exact conversion from a signed 64-bit integer (FILD).</summary>
    public static Float80 FromInt64(long v)
    {
        if (v == 0)
        {
            return default;
        }

        ushort sign = (ushort)(v < 0 ? 0x8000 : 0);
        ulong mag = v < 0 ? (ulong)-v : (ulong)v; // -long.MinValue wraps to 2^63, which is right as unsigned.
        int lz = BitOperations.LeadingZeroCount(mag);
        return new Float80((ushort)(sign | (Bias + 63 - lz)), mag << lz);
    }

    /// <summary>
    /// Rounds to an IEEE binary format (mantBits/expBits) under rounding control <paramref name="rc"/>
    /// (0 nearest-even, 1 down, 2 up, 3 toward zero). <paramref name="flags"/> gets the x87/MXCSR exception
    /// bits it raises: IE (SNaN, unsupported), DE (denormal source), OE, UE, PE. Exact in every case.
    /// </summary>
    public readonly ulong ToIeee(int mantBits, int expBits, int rc, ref uint flags)
    {
        int bias = (1 << (expBits - 1)) - 1;
        ulong expMax = (1UL << expBits) - 1;
        ulong sign = Sign ? 1UL << (mantBits + expBits) : 0;
        ulong infBits = sign | (expMax << mantBits);
        ulong maxBits = sign | ((expMax - 1) << mantBits) | ((1UL << mantBits) - 1);
        int e = Exponent;
        if (e == ExpMask)
        {
            if ((Mantissa << 1) == 0)
            {
                return infBits;
            }

            if ((Mantissa & QuietBit) == 0)
            {
                flags |= FpFlags.IE;
            }

            // NaN: keep the top payload bits, force quiet.
            return infBits | ((Mantissa | QuietBit) << 1 >> (64 - mantBits)) | (1UL << (mantBits - 1));
        }

        if (IsUnsupported)
        {
            flags |= FpFlags.IE;
            return infBits | (1UL << (mantBits - 1)) | (1UL << (mantBits + expBits)); // default NaN
        }

        if (Mantissa == 0)
        {
            return sign;
        }

        if (e == 0)
        {
            flags |= FpFlags.DE;
        }

        // Normalize: value = m · 2^(ue − 63) with m's top bit set.
        int lz = BitOperations.LeadingZeroCount(Mantissa);
        ulong m = Mantissa << lz;
        int ue = (e == 0 ? 1 : e) - Bias - lz;
        int targetExp = ue + bias;

        // Number of low bits of m to drop: 63 − mantBits for normal results, more when the result is denormal.
        int drop = 63 - mantBits;
        if (targetExp <= 0)
        {
            drop += 1 - targetExp;
        }

        bool tiny = targetExp <= 0;
        ulong kept = RoundShift(m, drop, rc, Sign, out bool inexact);
        if (inexact)
        {
            flags |= FpFlags.PE;
            if (tiny)
            {
                flags |= FpFlags.UE;
            }
        }

        if (targetExp <= 0)
        {
            // Denormal result (kept has no implicit bit unless rounding carried into the normal range).
            return sign | kept;
        }

        // kept holds 1.mantissa (mantBits+1 bits) or carried to 2.0.
        if (kept >> (mantBits + 1) != 0)
        {
            kept >>= 1;
            targetExp++;
        }

        if ((ulong)targetExp >= expMax)
        {
            flags |= FpFlags.OE | FpFlags.PE;
            return OverflowResult(rc, Sign) ? infBits : maxBits;
        }

        return sign | ((ulong)targetExp << mantBits) | (kept & ((1UL << mantBits) - 1));
    }

    /// <summary>Whether an overflow under <paramref name="rc"/> gives infinity (else the largest finite value).</summary>
    public static bool OverflowResult(int rc, bool negative) => rc switch
    {
        0 => true,
        1 => negative,
        2 => !negative,
        _ => false,
    };

    /// <summary>Shifts <paramref name="m"/> right by <paramref name="drop"/> bits, rounding under rc.</summary>
    public static ulong RoundShift(ulong m, int drop, int rc, bool negative, out bool inexact)
    {
        if (drop <= 0)
        {
            inexact = false;
            return m;
        }

        ulong kept;
        ulong rest;
        ulong half;
        if (drop >= 64)
        {
            kept = 0;
            rest = m;
            half = drop == 64 ? 1UL << 63 : 0; // drop > 64: the rest is below one half
            if (drop > 64)
            {
                inexact = m != 0;
                return inexact && ((rc == 1 && negative) || (rc == 2 && !negative)) ? 1UL : 0;
            }
        }
        else
        {
            kept = m >> drop;
            rest = m & ((1UL << drop) - 1);
            half = 1UL << (drop - 1);
        }

        inexact = rest != 0;
        if (!inexact)
        {
            return kept;
        }

        bool up = rc switch
        {
            0 => rest > half || (rest == half && (kept & 1) != 0),
            1 => negative,
            2 => !negative,
            _ => false,
        };
        return up ? kept + 1 : kept;
    }

    public readonly double ToDouble(int rc, ref uint flags) => BitConverter.UInt64BitsToDouble(ToIeee(52, 11, rc, ref flags));

    public readonly float ToSingle(int rc, ref uint flags) => BitConverter.UInt32BitsToSingle((uint)ToIeee(23, 8, rc, ref flags));

    /// <summary>Round-to-nearest conversion to double, ignoring exceptions (for arithmetic operands).</summary>
    public readonly double ToDouble()
    {
        uint f = 0;
        return ToDouble(0, ref f);
    }

    /// <summary>
    /// Rounds to an integer under rc (FRNDINT, FIST): magnitude in <paramref name="mag"/>; false when the
    /// magnitude does not fit in 64 bits (or the value is NaN/infinity).
    /// </summary>
    public readonly bool RoundToInteger(int rc, out ulong mag, out bool inexact)
    {
        mag = 0;
        inexact = false;
        if (Exponent == ExpMask)
        {
            return false;
        }

        if (Mantissa == 0)
        {
            return true;
        }

        int ue = (Exponent == 0 ? 1 : Exponent) - Bias; // value = Mantissa · 2^(ue − 63)
        if (ue > 63)
        {
            return false;
        }

        mag = RoundShift(Mantissa, 63 - ue, rc, Sign, out inexact);
        return true;
    }

    /// <summary>FRNDINT: rounds to an integral value in extended precision, exactly.</summary>
    public readonly Float80 RoundToIntegral(int rc, out bool inexact)
    {
        inexact = false;
        if (Exponent == ExpMask || Mantissa == 0 || Exponent - Bias >= 63)
        {
            return this;
        }

        RoundToInteger(rc, out ulong mag, out inexact);
        if (mag == 0)
        {
            return new Float80((ushort)(SignExp & 0x8000), 0);
        }

        int lz = BitOperations.LeadingZeroCount(mag);
        return new Float80((ushort)((SignExp & 0x8000) | (Bias + 63 - lz)), mag << lz);
    }

    /// <summary>
    /// Compares two non-NaN values exactly: −1, 0, +1. Zeros of either sign are equal; denormals and
    /// pseudo-denormals compare by value.
    /// </summary>
    public static int Compare(Float80 a, Float80 b)
    {
        bool az = a.Mantissa == 0 && a.Exponent != ExpMask, bz = b.Mantissa == 0 && b.Exponent != ExpMask;
        if (az && bz)
        {
            return 0;
        }

        if (a.Sign != b.Sign)
        {
            return a.Sign ? -1 : 1;
        }

        int mag = CompareMagnitude(a, b);
        return a.Sign ? -mag : mag;
    }

    private static int CompareMagnitude(Float80 a, Float80 b)
    {
        if (a.IsInfinity || b.IsInfinity)
        {
            return a.IsInfinity == b.IsInfinity ? 0 : a.IsInfinity ? 1 : -1;
        }

        if (a.Mantissa == 0 || b.Mantissa == 0)
        {
            return a.Mantissa == 0 ? (b.Mantissa == 0 ? 0 : -1) : 1;
        }

        int la = BitOperations.LeadingZeroCount(a.Mantissa), lb = BitOperations.LeadingZeroCount(b.Mantissa);
        int ea = (a.Exponent == 0 ? 1 : a.Exponent) - la, eb = (b.Exponent == 0 ? 1 : b.Exponent) - lb;
        if (ea != eb)
        {
            return ea > eb ? 1 : -1;
        }

        ulong ma = a.Mantissa << la, mb = b.Mantissa << lb;
        return ma == mb ? 0 : ma > mb ? 1 : -1;
    }

    /// <summary>Multiplies by 2^<paramref name="n"/> exactly while the result stays normal (FSCALE).</summary>
    public readonly Float80 Scale(long n, ref uint flags)
    {
        if (Exponent == ExpMask || Mantissa == 0)
        {
            return this;
        }

        int lz = BitOperations.LeadingZeroCount(Mantissa);
        long e = (Exponent == 0 ? 1 : Exponent) - lz + n;
        ulong m = Mantissa << lz;
        ushort sign = (ushort)(SignExp & 0x8000);
        if (e >= ExpMask)
        {
            flags |= FpFlags.OE | FpFlags.PE;
            return new Float80((ushort)(sign | ExpMask), IntegerBit);
        }

        if (e <= 0)
        {
            // Denormal result: shift the significand right, rounding to nearest.
            ulong kept = RoundShift(m, (int)Math.Min(1 - e, 65), 0, Sign, out bool inexact);
            if (inexact)
            {
                flags |= FpFlags.UE | FpFlags.PE;
            }

            return new Float80(sign, kept);
        }

        return new Float80((ushort)(sign | e), m);
    }
}

/// <summary>Floating-point exception bits, laid out as in both the x87 status word and MXCSR (bits 0–5).</summary>
public static class FpFlags
{
    public const uint IE = 1, DE = 2, ZE = 4, OE = 8, UE = 16, PE = 32, All = 63;
}
