using System.Numerics;

namespace Emulator.Core.Cpu;

/// <summary>
/// Exact x87 arithmetic on finite operands (APM vol. 1 §6.4): add, subtract, multiply, divide and square
/// root of double-extended values, computed with 128-bit intermediates and rounded once to the precision
/// control's width (24, 53 or 64 significant bits) under the rounding control. Special operands (NaN,
/// infinity, zero where it matters, unsupported encodings) are the caller's job.
/// Flags raised: PE (inexact), UE (tiny and inexact), OE (overflow, with PE).
/// </summary>
public static class Float80Math
{
    private const int Bias = Float80.Bias;

    /// <summary>Normalized significand (top bit set) and exponent E with value = m · 2^(E − 63).</summary>
    private static void Unpack(Float80 v, out ulong m, out int e)
    {
        int lz = BitOperations.LeadingZeroCount(v.Mantissa);
        m = v.Mantissa << lz;
        e = (v.Exponent == 0 ? 1 : v.Exponent) - Bias - lz;
    }

    private static int Precision(int pc) => pc switch
    {
        0 => 24,
        2 => 53,
        _ => 64,
    };

    /// <summary>
    /// Rounds sig · 2^(e − 127) (sig's bit 127 set, lower bits as sticky) to a Float80 under rc and pc.
    /// </summary>
    public static Float80 RoundPack(bool negative, int e, UInt128 sig, int rc, int pc, ref uint flags)
    {
        ushort sign = (ushort)(negative ? 0x8000 : 0);
        int p = Precision(pc);
        int lsb = Math.Max(e - p + 1, 1 - Bias - 63); // exponent of the result's last kept bit
        int drop = lsb - (e - 127);
        UInt128 kept;
        bool inexact;
        bool up;
        if (drop >= 128)
        {
            kept = 0;
            inexact = sig != 0;
            up = inexact && ((rc == 1 && negative) || (rc == 2 && !negative));
        }
        else
        {
            kept = sig >> drop;
            UInt128 rest = drop == 0 ? 0 : sig & ((UInt128.One << drop) - 1);
            UInt128 half = drop == 0 ? 0 : UInt128.One << (drop - 1);
            inexact = rest != 0;
            up = inexact && rc switch
            {
                0 => rest > half || (rest == half && (kept & 1) != 0),
                1 => negative,
                2 => !negative,
                _ => false,
            };
        }

        if (up)
        {
            kept++;
        }

        bool tiny = e + Bias <= 0;
        if (inexact)
        {
            flags |= FpFlags.PE;
            if (tiny)
            {
                flags |= FpFlags.UE;
            }
        }

        if (kept == 0)
        {
            return new Float80(sign, 0);
        }

        int bits = 128 - (int)UInt128.LeadingZeroCount(kept);
        int re = lsb + bits - 1; // exponent of the leading bit
        if (re + Bias >= Float80.ExpMask)
        {
            flags |= FpFlags.OE | FpFlags.PE;
            if (Float80.OverflowResult(rc, negative))
            {
                return new Float80((ushort)(sign | Float80.ExpMask), Float80.IntegerBit);
            }

            ulong max = ulong.MaxValue << (64 - p);
            return new Float80((ushort)(sign | (Float80.ExpMask - 1)), max);
        }

        if (re + Bias >= 1)
        {
            return new Float80((ushort)(sign | (re + Bias)), (ulong)(kept << (64 - bits)));
        }

        // Denormal: the last kept bit is the denormal unit 2^(1 − Bias − 63), so the significand is kept itself.
        return new Float80(sign, (ulong)kept);
    }

    /// <summary>a + b for finite operands (zeros included).</summary>
    public static Float80 Add(Float80 a, Float80 b, int rc, int pc, ref uint flags)
    {
        bool az = a.Mantissa == 0, bz = b.Mantissa == 0;
        if (az && bz)
        {
            bool neg = a.Sign == b.Sign ? a.Sign : rc == 1;
            return new Float80((ushort)(neg ? 0x8000 : 0), 0);
        }

        if (az || bz)
        {
            Float80 x = az ? b : a;
            Unpack(x, out ulong m, out int e);
            return RoundPack(x.Sign, e, (UInt128)m << 64, rc, pc, ref flags);
        }

        Unpack(a, out ulong ma, out int ea);
        Unpack(b, out ulong mb, out int eb);
        if (ea < eb || (ea == eb && ma < mb))
        {
            (a, b) = (b, a);
            (ma, mb) = (mb, ma);
            (ea, eb) = (eb, ea);
        }

        // Significands with their top bit at 126 (room for a carry), the smaller aligned with a sticky bit.
        UInt128 sa = (UInt128)ma << 63;
        UInt128 sb = (UInt128)mb << 63;
        int d = ea - eb;
        if (d >= 127)
        {
            sb = 1;
        }
        else if (d > 0)
        {
            bool sticky = (sb & ((UInt128.One << d) - 1)) != 0;
            sb = (sb >> d) | (sticky ? UInt128.One : UInt128.Zero);
        }

        UInt128 s;
        if (a.Sign == b.Sign)
        {
            s = sa + sb;
        }
        else
        {
            s = sa - sb;
            if (s == 0)
            {
                return new Float80((ushort)(rc == 1 ? 0x8000 : 0), 0);
            }
        }

        int lz = (int)UInt128.LeadingZeroCount(s);
        return RoundPack(a.Sign, ea + 1 - lz, s << lz, rc, pc, ref flags);
    }

    /// <summary>a · b for finite nonzero operands.</summary>
    public static Float80 Mul(Float80 a, Float80 b, int rc, int pc, ref uint flags)
    {
        Unpack(a, out ulong ma, out int ea);
        Unpack(b, out ulong mb, out int eb);
        UInt128 p = (UInt128)ma * mb;
        int lz = (int)UInt128.LeadingZeroCount(p);
        return RoundPack(a.Sign != b.Sign, ea + eb + 1 - lz, p << lz, rc, pc, ref flags);
    }

    /// <summary>a / b for finite nonzero operands.</summary>
    public static Float80 Div(Float80 a, Float80 b, int rc, int pc, ref uint flags)
    {
        Unpack(a, out ulong ma, out int ea);
        Unpack(b, out ulong mb, out int eb);
        int s = ma >= mb ? 63 : 64;
        UInt128 q1 = ((UInt128)ma << s) / mb;      // 64 bits, top bit set
        UInt128 r1 = ((UInt128)ma << s) % mb;
        UInt128 q2 = (r1 << 64) / mb;
        UInt128 r2 = (r1 << 64) % mb;
        UInt128 x = (q1 << 64) | q2 | (r2 != 0 ? UInt128.One : UInt128.Zero);
        return RoundPack(a.Sign != b.Sign, ea - eb + 63 - s, x, rc, pc, ref flags);
    }

    /// <summary>√a for a finite positive nonzero operand.</summary>
    public static Float80 Sqrt(Float80 a, int rc, int pc, ref uint flags)
    {
        Unpack(a, out ulong m, out int e);
        int k = e - 63;                       // value = m · 2^k
        int sh = ((k - 64) & 1) == 0 ? 64 : 63; // make the remaining exponent even
        UInt128 t = (UInt128)m << sh;
        UInt128 r = ISqrt(t);
        UInt128 rem = t - (r * r);
        bool guard = rem > r;                 // (r + ½)² ≤ t  ⇔  t − r² ≥ r + ¼
        UInt128 x = (r << 64) | (guard ? UInt128.One << 63 : UInt128.Zero) | (rem != 0 ? UInt128.One : UInt128.Zero);
        return RoundPack(false, ((k - sh) / 2) + 63, x, rc, pc, ref flags);
    }

    /// <summary>Integer square root (floor) of a 128-bit value: Newton from a double estimate, then exact correction.</summary>
    private static UInt128 ISqrt(UInt128 t)
    {
        UInt128 r = (UInt128)Math.Sqrt((double)t);
        if (r == 0)
        {
            r = 1;
        }

        for (int i = 0; i < 3; i++)
        {
            r = (r + (t / r)) >> 1;
        }

        UInt128 limit = ulong.MaxValue;
        if (r > limit)
        {
            r = limit;
        }

        while (r * r > t)
        {
            r--;
        }

        while (r < limit && (r + 1) * (r + 1) <= t)
        {
            r++;
        }

        return r;
    }
}
