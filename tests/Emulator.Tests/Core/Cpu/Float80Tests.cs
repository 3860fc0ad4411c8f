using Emulator.Core.Cpu;
using Emulator.Core.Exec;

namespace Emulator.Tests.Core;

/// <summary>Float80 conversions and exact arithmetic, against IEEE double/float (host) where the formats overlap.</summary>
public class Float80Tests
{
    [TestCase(1.0)]
    [TestCase(-0.0)]
    [TestCase(double.Epsilon)]
    [TestCase(-2.2250738585072009E-308)] // largest denormal
    [TestCase(double.MaxValue)]
    [TestCase(double.NegativeInfinity)]
    [TestCase(0.1)]
    public void DoubleRoundTripsExactly(double d)
    {
        uint flags = 0;
        Assert.That(BitConverter.DoubleToUInt64Bits(Float80.FromDouble(d).ToDouble(0, ref flags)), Is.EqualTo(BitConverter.DoubleToUInt64Bits(d)));
        Assert.That(flags & ~FpFlags.DE, Is.EqualTo(0u));
    }

    [Test]
    public void NarrowingToFloatMatchesTheHostForRandomDoubles()
    {
        var r = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            double d = BitConverter.UInt64BitsToDouble((ulong)r.NextInt64() & 0x7FFFFFFFFFFFFFFF);
            d = Math.ScaleB(d, -Math.ILogB(d) + r.Next(-160, 140)); // around float's range, denormals included
            if (double.IsNaN(d) || double.IsInfinity(d))
            {
                continue;
            }

            uint flags = 0;
            float got = Float80.FromDouble(d).ToSingle(0, ref flags);
            Assert.That(BitConverter.SingleToUInt32Bits(got), Is.EqualTo(BitConverter.SingleToUInt32Bits((float)d)), $"{d:R}");
        }
    }

    [TestCase(0, 0x3F800000u)]
    [TestCase(1, 0x3F800000u)]
    [TestCase(2, 0x3F800001u)]
    [TestCase(3, 0x3F800000u)]
    public void DirectedRoundingToFloat(int rc, uint expected)
    {
        uint flags = 0;
        Float80 v = new(0x3FFF, 0x8000000000000001); // 1 + 2^-63
        Assert.That(BitConverter.SingleToUInt32Bits(v.ToSingle(rc, ref flags)), Is.EqualTo(expected));
        Assert.That(flags, Is.EqualTo(FpFlags.PE));
    }

    [Test]
    public void OverflowToDoubleHonoursRounding()
    {
        Float80 big = new(0x7000, 0x8000000000000000);
        uint f = 0;
        Assert.That(big.ToDouble(0, ref f), Is.EqualTo(double.PositiveInfinity));
        Assert.That(f, Is.EqualTo(FpFlags.OE | FpFlags.PE));
        f = 0;
        Assert.That(big.ToDouble(3, ref f), Is.EqualTo(double.MaxValue));
    }

    [TestCase(2.5, 0, 2UL, true)]
    [TestCase(3.5, 0, 4UL, true)]
    [TestCase(-0.5, 1, 1UL, true)]
    [TestCase(7.0, 0, 7UL, false)]
    public void RoundToInteger(double v, int rc, ulong magnitude, bool inexact)
    {
        Assert.That(Float80.FromDouble(v).RoundToInteger(rc, out ulong mag, out bool ix), Is.True);
        Assert.That(mag, Is.EqualTo(magnitude));
        Assert.That(ix, Is.EqualTo(inexact));
    }

    [Test]
    public void CompareOrdersByValue()
    {
        Assert.That(Float80.Compare(Float80.FromDouble(-0.0), Float80.Zero), Is.EqualTo(0));
        Assert.That(Float80.Compare(new Float80(0, 1), Float80.Zero), Is.EqualTo(1));
        Assert.That(Float80.Compare(new Float80(0, 0x8000000000000000), new Float80(1, 0x8000000000000000)), Is.EqualTo(0), "pseudo-denormal equals the smallest normal");
        Assert.That(Float80.Compare(Float80.FromDouble(-2), Float80.FromDouble(-1)), Is.EqualTo(-1));
    }

    /// <summary>
    /// Two independent implementations must agree: the 128-bit integer arithmetic of Float80Math with
    /// precision control "double", and SimdFp's host-double arithmetic with error-term directed rounding
    /// (itself checked against the host CPU in SseTests), in all four rounding modes.
    /// </summary>
    [Test]
    public void ExactArithmeticAgreesWithSimdDoubleArithmetic()
    {
        var r = new Random(11);
        for (int i = 0; i < 5000; i++)
        {
            double a = Math.ScaleB(r.NextDouble() + 0.5, r.Next(-300, 300)) * (r.Next(2) == 0 ? 1 : -1);
            double b = Math.ScaleB(r.NextDouble() + 0.5, r.Next(-300, 300)) * (r.Next(2) == 0 ? 1 : -1);
            int rc = r.Next(4);
            uint mx = MxcsrBits.Default | ((uint)rc << MxcsrBits.RcShift);
            uint f = 0, g = 0;
            Float80 fa = Float80.FromDouble(a), fb = Float80.FromDouble(b);
            Assert.That(Float80Math.Add(fa, fb, rc, 2, ref f), Is.EqualTo(Float80.FromDouble(SimdFp.Arith(FpOp.Add, a, b, mx, ref g))), $"{a:R} + {b:R} rc{rc}");
            Assert.That(Float80Math.Mul(fa, fb, rc, 2, ref f), Is.EqualTo(Float80.FromDouble(SimdFp.Arith(FpOp.Mul, a, b, mx, ref g))), $"{a:R} * {b:R} rc{rc}");
            Assert.That(Float80Math.Div(fa, fb, rc, 2, ref f), Is.EqualTo(Float80.FromDouble(SimdFp.Arith(FpOp.Div, a, b, mx, ref g))), $"{a:R} / {b:R} rc{rc}");
            Assert.That(Float80Math.Sqrt(fa.Abs(), rc, 2, ref f), Is.EqualTo(Float80.FromDouble(SimdFp.Arith(FpOp.Sqrt, 0, Math.Abs(a), mx, ref g))), $"sqrt {a:R} rc{rc}");
            Assert.That(f, Is.EqualTo(g), "same exception flags");
        }
    }
}
