using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>
/// SSE/SSE2 instructions. Values are checked against the host CPU (System.Runtime.Intrinsics computes the
/// same instruction on the x86-64 host) for random and special operands; MXCSR flags, rounding modes and
/// faults against the rules of APM vol. 4.
/// </summary>
public class SseTests
{
    private const int Vectors = 48;

    private static readonly uint[] s_specialSingles =
    [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FA00001, 0xFF812345,
        0x00000001, 0x807FFFFF, 0x00400000, 0x7F7FFFFF, 0xFF7FFFFF, 0x00800000, 0x3F800000, 0xBF800000,
    ];

    private static readonly ulong[] s_specialDoubles =
    [
        0, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000,
        0x7FF4000000000001, 0x0000000000000001, 0x800FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0x0010000000000000, 0x3FF0000000000000,
    ];

    private static uint RandomSingle(Random r)
    {
        int k = r.Next(10);
        if (k < 3)
        {
            return s_specialSingles[r.Next(s_specialSingles.Length)];
        }

        // Mostly moderate exponents so that results are meaningful, sometimes anything.
        uint sign = (uint)r.Next(2) << 31;
        uint exp = k < 8 ? (uint)r.Next(100, 155) : (uint)r.Next(0, 256);
        return sign | (exp << 23) | (uint)r.Next(1 << 23);
    }

    private static ulong RandomDouble(Random r)
    {
        int k = r.Next(10);
        if (k < 3)
        {
            return s_specialDoubles[r.Next(s_specialDoubles.Length)];
        }

        ulong sign = (ulong)r.Next(2) << 63;
        ulong exp = k < 8 ? (ulong)r.Next(900, 1150) : (ulong)r.Next(0, 2048);
        return sign | (exp << 52) | ((ulong)r.NextInt64() & 0xFFFFFFFFFFFFF);
    }

    private static Vector128<byte> RandomVector(Random r, bool doubles) => doubles
        ? Vector128.Create(RandomDouble(r), RandomDouble(r)).AsByte()
        : Vector128.Create(RandomSingle(r), RandomSingle(r), RandomSingle(r), RandomSingle(r)).AsByte();

    /// <summary>
    /// Runs <paramref name="emit"/>(xmm0 ← op(xmm0, xmm1/[mem])) over random vectors; the first operand is at
    /// Data + 48·i, the second at +16, the result is stored at +32 and compared with the host.
    /// </summary>
    private static void CheckAgainstHost(Action<Assembler, AssemblerMemoryOperand?> emit, Func<Vector128<byte>, Vector128<byte>, Vector128<byte>> host, bool doubles, bool memorySource, int seed)
    {
        var r = new Random(seed);
        var a = new Vector128<byte>[Vectors];
        var b = new Vector128<byte>[Vectors];
        for (int i = 0; i < Vectors; i++)
        {
            a[i] = RandomVector(r, doubles);
            b[i] = RandomVector(r, doubles);
        }

        using var g = FpGuest.Create(asm =>
        {
            for (int i = 0; i < Vectors; i++)
            {
                int o = i * 48;
                asm.movups(xmm0, __xmmword_ptr[rbx + o]);
                if (memorySource)
                {
                    emit(asm, __xmmword_ptr[rbx + o + 16]);
                }
                else
                {
                    asm.movups(xmm1, __xmmword_ptr[rbx + o + 16]);
                    emit(asm, null);
                }

                asm.movups(__xmmword_ptr[rbx + o + 32], xmm0);
            }

            asm.hlt();
        });
        for (int i = 0; i < Vectors; i++)
        {
            FpGuest.WriteVec(g, FpGuest.Data + (ulong)(i * 48), a[i]);
            FpGuest.WriteVec(g, FpGuest.Data + (ulong)(i * 48) + 16, b[i]);
        }

        FpGuest.RunOk(g);
        for (int i = 0; i < Vectors; i++)
        {
            Vector128<byte> got = FpGuest.ReadVec(g, FpGuest.Data + (ulong)(i * 48) + 32);
            Vector128<byte> want = host(a[i], b[i]);
            Assert.That(got, Is.EqualTo(want), $"vector {i}: a={a[i].AsUInt64()} b={b[i].AsUInt64()}");
        }
    }

    public static IEnumerable<TestCaseData> FloatOps()
    {
        TestCaseData C(string name, Action<Assembler> reg, Action<Assembler, AssemblerMemoryOperand> mem, Func<Vector128<byte>, Vector128<byte>, Vector128<byte>> host, bool dbl) =>
            new TestCaseData(reg, mem, host, dbl).SetName(name);

        yield return C("addps", a => a.addps(xmm0, xmm1), (a, m) => a.addps(xmm0, m), (x, y) => Sse.Add(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("subps", a => a.subps(xmm0, xmm1), (a, m) => a.subps(xmm0, m), (x, y) => Sse.Subtract(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("mulps", a => a.mulps(xmm0, xmm1), (a, m) => a.mulps(xmm0, m), (x, y) => Sse.Multiply(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("divps", a => a.divps(xmm0, xmm1), (a, m) => a.divps(xmm0, m), (x, y) => Sse.Divide(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("minps", a => a.minps(xmm0, xmm1), (a, m) => a.minps(xmm0, m), (x, y) => Sse.Min(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("maxps", a => a.maxps(xmm0, xmm1), (a, m) => a.maxps(xmm0, m), (x, y) => Sse.Max(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("sqrtps", a => a.sqrtps(xmm0, xmm1), (a, m) => a.sqrtps(xmm0, m), (x, y) => Sse.Sqrt(y.AsSingle()).AsByte(), false);
        yield return C("addss", a => a.addss(xmm0, xmm1), (a, m) => a.addss(xmm0, m), (x, y) => Sse.AddScalar(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("divss", a => a.divss(xmm0, xmm1), (a, m) => a.divss(xmm0, m), (x, y) => Sse.DivideScalar(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("minss", a => a.minss(xmm0, xmm1), (a, m) => a.minss(xmm0, m), (x, y) => Sse.MinScalar(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("sqrtss", a => a.sqrtss(xmm0, xmm1), (a, m) => a.sqrtss(xmm0, m), (x, y) => Sse.SqrtScalar(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("cmpps_lt", a => a.cmpps(xmm0, xmm1, 1), (a, m) => a.cmpps(xmm0, m, 1), (x, y) => Sse.CompareLessThan(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("cmpps_neq", a => a.cmpps(xmm0, xmm1, 4), (a, m) => a.cmpps(xmm0, m, 4), (x, y) => Sse.CompareNotEqual(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("cmpps_nle", a => a.cmpps(xmm0, xmm1, 6), (a, m) => a.cmpps(xmm0, m, 6), (x, y) => Sse.CompareNotLessThanOrEqual(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("cmpps_unord", a => a.cmpps(xmm0, xmm1, 3), (a, m) => a.cmpps(xmm0, m, 3), (x, y) => Sse.CompareUnordered(x.AsSingle(), y.AsSingle()).AsByte(), false);
        yield return C("cmpss_le", a => a.cmpss(xmm0, xmm1, 2), (a, m) => a.cmpss(xmm0, m, 2), (x, y) => Sse.CompareScalarLessThanOrEqual(x.AsSingle(), y.AsSingle()).AsByte(), false);

        yield return C("addpd", a => a.addpd(xmm0, xmm1), (a, m) => a.addpd(xmm0, m), (x, y) => Sse2.Add(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("subpd", a => a.subpd(xmm0, xmm1), (a, m) => a.subpd(xmm0, m), (x, y) => Sse2.Subtract(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("mulpd", a => a.mulpd(xmm0, xmm1), (a, m) => a.mulpd(xmm0, m), (x, y) => Sse2.Multiply(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("divpd", a => a.divpd(xmm0, xmm1), (a, m) => a.divpd(xmm0, m), (x, y) => Sse2.Divide(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("minpd", a => a.minpd(xmm0, xmm1), (a, m) => a.minpd(xmm0, m), (x, y) => Sse2.Min(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("maxpd", a => a.maxpd(xmm0, xmm1), (a, m) => a.maxpd(xmm0, m), (x, y) => Sse2.Max(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("sqrtpd", a => a.sqrtpd(xmm0, xmm1), (a, m) => a.sqrtpd(xmm0, m), (x, y) => Sse2.Sqrt(y.AsDouble()).AsByte(), true);
        yield return C("mulsd", a => a.mulsd(xmm0, xmm1), (a, m) => a.mulsd(xmm0, m), (x, y) => Sse2.MultiplyScalar(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("subsd", a => a.subsd(xmm0, xmm1), (a, m) => a.subsd(xmm0, m), (x, y) => Sse2.SubtractScalar(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("maxsd", a => a.maxsd(xmm0, xmm1), (a, m) => a.maxsd(xmm0, m), (x, y) => Sse2.MaxScalar(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("cmppd_eq", a => a.cmppd(xmm0, xmm1, 0), (a, m) => a.cmppd(xmm0, m, 0), (x, y) => Sse2.CompareEqual(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("cmppd_nlt", a => a.cmppd(xmm0, xmm1, 5), (a, m) => a.cmppd(xmm0, m, 5), (x, y) => Sse2.CompareNotLessThan(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("cmppd_ord", a => a.cmppd(xmm0, xmm1, 7), (a, m) => a.cmppd(xmm0, m, 7), (x, y) => Sse2.CompareOrdered(x.AsDouble(), y.AsDouble()).AsByte(), true);
        yield return C("cmpsd_lt", a => a.cmpsd(xmm0, xmm1, 1), (a, m) => a.cmpsd(xmm0, m, 1), (x, y) => Sse2.CompareScalarLessThan(x.AsDouble(), y.AsDouble()).AsByte(), true);

        // Conversions (the first operand only matters for the scalar forms' upper parts).
        yield return C("cvtps2pd", a => a.cvtps2pd(xmm0, xmm1), (a, m) => a.cvtps2pd(xmm0, m), (x, y) => Sse2.ConvertToVector128Double(y.AsSingle()).AsByte(), false);
        yield return C("cvtpd2ps", a => a.cvtpd2ps(xmm0, xmm1), (a, m) => a.cvtpd2ps(xmm0, m), (x, y) => Sse2.ConvertToVector128Single(y.AsDouble()).AsByte(), true);
        yield return C("cvtsd2ss", a => a.cvtsd2ss(xmm0, xmm1), (a, m) => a.cvtsd2ss(xmm0, m), (x, y) => Sse2.ConvertScalarToVector128Single(x.AsSingle(), y.AsDouble()).AsByte(), true);
        yield return C("cvtss2sd", a => a.cvtss2sd(xmm0, xmm1), (a, m) => a.cvtss2sd(xmm0, m), (x, y) => Sse2.ConvertScalarToVector128Double(x.AsDouble(), y.AsSingle()).AsByte(), false);
        yield return C("cvtps2dq", a => a.cvtps2dq(xmm0, xmm1), (a, m) => a.cvtps2dq(xmm0, m), (x, y) => Sse2.ConvertToVector128Int32(y.AsSingle()).AsByte(), false);
        yield return C("cvttps2dq", a => a.cvttps2dq(xmm0, xmm1), (a, m) => a.cvttps2dq(xmm0, m), (x, y) => Sse2.ConvertToVector128Int32WithTruncation(y.AsSingle()).AsByte(), false);
        yield return C("cvtpd2dq", a => a.cvtpd2dq(xmm0, xmm1), (a, m) => a.cvtpd2dq(xmm0, m), (x, y) => Sse2.ConvertToVector128Int32(y.AsDouble()).AsByte(), true);
        yield return C("cvttpd2dq", a => a.cvttpd2dq(xmm0, xmm1), (a, m) => a.cvttpd2dq(xmm0, m), (x, y) => Sse2.ConvertToVector128Int32WithTruncation(y.AsDouble()).AsByte(), true);
        yield return C("cvtdq2ps", a => a.cvtdq2ps(xmm0, xmm1), (a, m) => a.cvtdq2ps(xmm0, m), (x, y) => Sse2.ConvertToVector128Single(y.AsInt32()).AsByte(), false);
        yield return C("cvtdq2pd", a => a.cvtdq2pd(xmm0, xmm1), (a, m) => a.cvtdq2pd(xmm0, m), (x, y) => Sse2.ConvertToVector128Double(y.AsInt32()).AsByte(), false);
        yield return C("rcpps", a => a.rcpps(xmm0, xmm1), (a, m) => a.rcpps(xmm0, m), (x, y) => Sse.Reciprocal(y.AsSingle()).AsByte(), false);
        yield return C("rsqrtss", a => a.rsqrtss(xmm0, xmm1), (a, m) => a.rsqrtss(xmm0, m), (x, y) => Sse.ReciprocalSqrtScalar(x.AsSingle(), y.AsSingle()).AsByte(), false);
    }

    [TestCaseSource(nameof(FloatOps))]
    public void FloatingPointMatchesHost(Action<Assembler> reg, Action<Assembler, AssemblerMemoryOperand> mem, Func<Vector128<byte>, Vector128<byte>, Vector128<byte>> host, bool doubles)
    {
        CheckAgainstHost((a, m) => reg(a), host, doubles, memorySource: false, seed: 1);
        CheckAgainstHost((a, m) => mem(a, m!.Value), host, doubles, memorySource: true, seed: 2);
    }

    public static IEnumerable<TestCaseData> IntegerOps()
    {
        TestCaseData C(string name, Action<Assembler> reg, Func<Vector128<byte>, Vector128<byte>, Vector128<byte>> host) =>
            new TestCaseData(reg, host).SetName(name);

        yield return C("paddb", a => a.paddb(xmm0, xmm1), (x, y) => Sse2.Add(x, y));
        yield return C("psubw", a => a.psubw(xmm0, xmm1), (x, y) => Sse2.Subtract(x.AsInt16(), y.AsInt16()).AsByte());
        yield return C("psubq", a => a.psubq(xmm0, xmm1), (x, y) => Sse2.Subtract(x.AsInt64(), y.AsInt64()).AsByte());
        yield return C("paddsw", a => a.paddsw(xmm0, xmm1), (x, y) => Sse2.AddSaturate(x.AsInt16(), y.AsInt16()).AsByte());
        yield return C("psubusb", a => a.psubusb(xmm0, xmm1), (x, y) => Sse2.SubtractSaturate(x, y));
        yield return C("pmulhw", a => a.pmulhw(xmm0, xmm1), (x, y) => Sse2.MultiplyHigh(x.AsInt16(), y.AsInt16()).AsByte());
        yield return C("pmuludq", a => a.pmuludq(xmm0, xmm1), (x, y) => Sse2.Multiply(x.AsUInt32(), y.AsUInt32()).AsByte());
        yield return C("pmaddwd", a => a.pmaddwd(xmm0, xmm1), (x, y) => Sse2.MultiplyAddAdjacent(x.AsInt16(), y.AsInt16()).AsByte());
        yield return C("psadbw", a => a.psadbw(xmm0, xmm1), (x, y) => Sse2.SumAbsoluteDifferences(x, y).AsByte());
        yield return C("pcmpgtd", a => a.pcmpgtd(xmm0, xmm1), (x, y) => Sse2.CompareGreaterThan(x.AsInt32(), y.AsInt32()).AsByte());
        yield return C("packsswb", a => a.packsswb(xmm0, xmm1), (x, y) => Sse2.PackSignedSaturate(x.AsInt16(), y.AsInt16()).AsByte());
        yield return C("packuswb", a => a.packuswb(xmm0, xmm1), (x, y) => Sse2.PackUnsignedSaturate(x.AsInt16(), y.AsInt16()));
        yield return C("punpckhbw", a => a.punpckhbw(xmm0, xmm1), (x, y) => Sse2.UnpackHigh(x, y));
        yield return C("unpcklps", a => a.unpcklps(xmm0, xmm1), (x, y) => Sse.UnpackLow(x.AsSingle(), y.AsSingle()).AsByte());
        yield return C("unpckhpd", a => a.unpckhpd(xmm0, xmm1), (x, y) => Sse2.UnpackHigh(x.AsDouble(), y.AsDouble()).AsByte());
        yield return C("andnps", a => a.andnps(xmm0, xmm1), (x, y) => Sse.AndNot(x.AsSingle(), y.AsSingle()).AsByte());
        yield return C("pxor", a => a.pxor(xmm0, xmm1), (x, y) => Sse2.Xor(x, y));
        yield return C("psllw_xmm", a => a.psllw(xmm0, xmm1), (x, y) => Sse2.ShiftLeftLogical(x.AsInt16(), y.AsInt16()).AsByte());
        yield return C("psrad_xmm", a => a.psrad(xmm0, xmm1), (x, y) => Sse2.ShiftRightArithmetic(x.AsInt32(), y.AsInt32()).AsByte());
        yield return C("psrlq_big", a => a.psrlq(xmm0, xmm1), (x, y) => Sse2.ShiftRightLogical(x.AsInt64(), y.AsInt64()).AsByte());
        yield return C("pshufd_1B", a => a.pshufd(xmm0, xmm1, 0x1B), (x, y) => Sse2.Shuffle(y.AsInt32(), 0x1B).AsByte());
        yield return C("pshufd_E4", a => a.pshufd(xmm0, xmm1, 0xE4), (x, y) => Sse2.Shuffle(y.AsInt32(), 0xE4).AsByte());
        yield return C("pshufd_00", a => a.pshufd(xmm0, xmm1, 0x00), (x, y) => Sse2.Shuffle(y.AsInt32(), 0x00).AsByte());
        yield return C("pshufd_self_B1", a => a.pshufd(xmm0, xmm0, 0xB1), (x, y) => Sse2.Shuffle(x.AsInt32(), 0xB1).AsByte());
        yield return C("pshufhw_9C", a => a.pshufhw(xmm0, xmm1, 0x9C), (x, y) => Sse2.ShuffleHigh(y.AsInt16(), 0x9C).AsByte());
        yield return C("pshuflw_E4", a => a.pshuflw(xmm0, xmm1, 0x72), (x, y) => Sse2.ShuffleLow(y.AsInt16(), 0x72).AsByte());
        yield return C("shufps_B1", a => a.shufps(xmm0, xmm1, 0xB1), (x, y) => Sse.Shuffle(x.AsSingle(), y.AsSingle(), 0xB1).AsByte());
        yield return C("shufpd_2", a => a.shufpd(xmm0, xmm1, 2), (x, y) => Sse2.Shuffle(x.AsDouble(), y.AsDouble(), 2).AsByte());
        yield return C("pslldq_5", a => a.pslldq(xmm0, 5), (x, y) => Sse2.ShiftLeftLogical128BitLane(x, 5));
        yield return C("psrldq_11", a => a.psrldq(xmm0, 11), (x, y) => Sse2.ShiftRightLogical128BitLane(x, 11));
        yield return C("psraw_imm", a => a.psraw(xmm0, 3), (x, y) => Sse2.ShiftRightArithmetic(x.AsInt16(), 3).AsByte());
        yield return C("pslld_imm_big", a => a.pslld(xmm0, 40), (x, y) => Vector128<byte>.Zero);
    }

    [TestCaseSource(nameof(IntegerOps))]
    public void IntegerMatchesHost(Action<Assembler> reg, Func<Vector128<byte>, Vector128<byte>, Vector128<byte>> host)
    {
        CheckAgainstHost((a, m) => reg(a), host, doubles: false, memorySource: false, seed: 3);
    }

    private static TestGuest Run(Action<Assembler> body, Action<TestGuest>? setup = null)
    {
        var g = FpGuest.Create(body);
        setup?.Invoke(g);
        return g;
    }

    [TestCase(0u, 0x3F800000u)] // nearest: 1 + 2^-30 rounds to 1
    [TestCase(1u, 0x3F800000u)] // down
    [TestCase(2u, 0x3F800001u)] // up
    [TestCase(3u, 0x3F800000u)] // toward zero
    public void AddssHonoursRoundingControl(uint rc, uint expected)
    {
        using var g = Run(a => { a.addss(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default | (rc << 13);
            g.Cpu.Xmm[0] = Vector128.CreateScalar(1.0f).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(MathF.ScaleB(1, -30)).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsUInt32().ToScalar(), Is.EqualTo(expected));
        Assert.That(g.Cpu.Mxcsr & FpFlags.All, Is.EqualTo(FpFlags.PE));
    }

    [TestCase(0u, -1.0 / 3)]
    [TestCase(3u, -0.33333333333333331)]
    public void DivsdDirectedRoundingMovesOneUlp(uint rc, double nearest)
    {
        using var g = Run(a => { a.divsd(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default | (rc << 13);
            g.Cpu.Xmm[0] = Vector128.CreateScalar(-1.0).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(3.0).AsByte();
        });
        FpGuest.RunOk(g);
        // −1/3 is −0x3FD5555555555555 rounded to nearest; toward zero keeps the same magnitude (the tail is below one half and RN rounded down in magnitude).
        Assert.That(g.Cpu.Xmm[0].AsDouble().ToScalar(), Is.EqualTo(nearest));
    }

    [Test]
    public void RoundDownOfNegativeQuotientGrowsMagnitude()
    {
        using var g = Run(a => { a.divsd(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default | (1u << 13);
            g.Cpu.Xmm[0] = Vector128.CreateScalar(-1.0).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(3.0).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsDouble().ToScalar(), Is.EqualTo(Math.BitDecrement(-1.0 / 3)));
    }

    [Test]
    public void InvalidOperationGivesNegativeDefaultNaNAndIe()
    {
        using var g = Run(a => { a.subss(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Xmm[0] = Vector128.CreateScalar(float.PositiveInfinity).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(float.PositiveInfinity).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsUInt32().ToScalar(), Is.EqualTo(0xFFC00000u));
        Assert.That(g.Cpu.Mxcsr & FpFlags.All, Is.EqualTo(FpFlags.IE));
    }

    [Test]
    public void DenormalOperandSetsDeUnlessDaz()
    {
        float den = BitConverter.UInt32BitsToSingle(0x00000010);
        using var g = Run(a => { a.addss(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Xmm[0] = Vector128.CreateScalar(den).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(0f).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsSingle().ToScalar(), Is.EqualTo(den));
        Assert.That(g.Cpu.Mxcsr & FpFlags.All, Is.EqualTo(FpFlags.DE));

        using var d = Run(a => { a.addss(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default | MxcsrBits.DAZ;
            g.Cpu.Xmm[0] = Vector128.CreateScalar(den).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(0f).AsByte();
        });
        FpGuest.RunOk(d);
        Assert.That(d.Cpu.Xmm[0].AsUInt32().ToScalar(), Is.EqualTo(0u));
        Assert.That(d.Cpu.Mxcsr & FpFlags.All, Is.EqualTo(0u));
    }

    [Test]
    public void FlushToZeroGivesZeroWithUnderflowAndPrecision()
    {
        using var g = Run(a => { a.mulss(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default | MxcsrBits.FZ;
            g.Cpu.Xmm[0] = Vector128.CreateScalar(1e-20f).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(1e-20f).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsUInt32().ToScalar(), Is.EqualTo(0u));
        Assert.That(g.Cpu.Mxcsr & FpFlags.All, Is.EqualTo(FpFlags.UE | FpFlags.PE));
    }

    [Test]
    public void OverflowSetsOeAndPe()
    {
        using var g = Run(a => { a.mulsd(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Xmm[0] = Vector128.CreateScalar(1e300).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(1e300).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsDouble().ToScalar(), Is.EqualTo(double.PositiveInfinity));
        Assert.That(g.Cpu.Mxcsr & FpFlags.All, Is.EqualTo(FpFlags.OE | FpFlags.PE));
    }

    [TestCase(true, Vector.XF)]
    [TestCase(false, Vector.UD)]
    public void UnmaskedZeroDivideFaultsAndLeavesDestination(bool osxmmexcpt, int vector)
    {
        using var g = Run(a => { a.divps(xmm0, xmm1); a.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default & ~(FpFlags.ZE << 7);
            if (!osxmmexcpt)
            {
                g.Cpu.Cr4 &= ~Cr4Bits.OSXMMEXCPT;
            }

            g.Cpu.Xmm[0] = Vector128.Create(1f, 2f, 3f, 4f).AsByte();
            g.Cpu.Xmm[1] = Vector128.Create(1f, 0f, 1f, 1f).AsByte();
        });
        Assert.That(FpGuest.Run(g), Is.EqualTo(vector));
        Assert.That(g.Cpu.Xmm[0].AsSingle(), Is.EqualTo(Vector128.Create(1f, 2f, 3f, 4f)));
        Assert.That(g.Cpu.Mxcsr & FpFlags.ZE, Is.EqualTo(FpFlags.ZE));
    }

    [TestCase(1.0f, 2.0f, Rflags.CF)]
    [TestCase(2.0f, 1.0f, 0UL)]
    [TestCase(2.0f, 2.0f, Rflags.ZF)]
    [TestCase(float.NaN, 2.0f, Rflags.ZF | Rflags.PF | Rflags.CF)]
    public void UcomissSetsZfPfCfAndClearsOthers(float a, float b, ulong expected)
    {
        using var g = Run(asm => { asm.ucomiss(xmm0, xmm1); asm.hlt(); }, g =>
        {
            g.Cpu.SetArithFlags(Rflags.OF | Rflags.SF | Rflags.AF);
            g.Cpu.Xmm[0] = Vector128.CreateScalar(a).AsByte();
            g.Cpu.Xmm[1] = Vector128.CreateScalar(b).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Rflags64 & Rflags.Arith, Is.EqualTo(expected));
        Assert.That(g.Cpu.Mxcsr & FpFlags.IE, Is.EqualTo(0u), "UCOMISS on a QNaN does not signal");
    }

    [Test]
    public void ComissSignalsInvalidOnQnan()
    {
        using var g = Run(asm => { asm.comiss(xmm0, xmm1); asm.hlt(); }, g =>
        {
            g.Cpu.Xmm[0] = Vector128.CreateScalar(float.NaN).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Mxcsr & FpFlags.IE, Is.EqualTo(FpFlags.IE));
    }

    [TestCase(3e9f, 0x80000000UL)]
    [TestCase(-2.5f, 0xFFFFFFFEUL)]
    [TestCase(float.NaN, 0x80000000UL)]
    [TestCase(2147483520f, 2147483520UL)]
    public void Cvttss2siTruncatesOrGivesIndefinite(float v, ulong expected)
    {
        using var g = Run(asm => { asm.cvttss2si(eax, xmm0); asm.hlt(); }, g =>
        {
            g.Cpu.Gpr[Reg.RAX] = ulong.MaxValue;
            g.Cpu.Xmm[0] = Vector128.CreateScalar(v).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g[Reg.RAX], Is.EqualTo(expected));
    }

    [TestCase(2.5, 0u, 2L)]
    [TestCase(2.5, 2u, 3L)]
    [TestCase(-2.5, 1u, -3L)]
    [TestCase(-2.5, 3u, -2L)]
    [TestCase(1e19, 0u, long.MinValue)]
    public void Cvtsd2siRoundsByMxcsr(double v, uint rc, long expected)
    {
        using var g = Run(asm => { asm.cvtsd2si(rax, xmm0); asm.hlt(); }, g =>
        {
            g.Cpu.Mxcsr = MxcsrBits.Default | (rc << 13);
            g.Cpu.Xmm[0] = Vector128.CreateScalar(v).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That((long)g[Reg.RAX], Is.EqualTo(expected));
    }

    [TestCase(long.MaxValue)]
    [TestCase(-123456789012345L)]
    [TestCase(16777217L)]
    public void Cvtsi2ssMatchesHost(long v)
    {
        using var g = Run(asm => { asm.cvtsi2ss(xmm0, rax); asm.cvtsi2sd(xmm1, rax); asm.hlt(); }, g => g.Cpu.Gpr[Reg.RAX] = (ulong)v);
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsSingle().ToScalar(), Is.EqualTo(Sse.X64.ConvertScalarToVector128Single(Vector128<float>.Zero, v).ToScalar()));
        Assert.That(g.Cpu.Xmm[1].AsDouble().ToScalar(), Is.EqualTo(Sse2.X64.ConvertScalarToVector128Double(Vector128<double>.Zero, v).ToScalar()));
    }

    [Test]
    public void MovssRegisterMergesAndLoadZeroes()
    {
        using var g = Run(asm =>
        {
            asm.movss(xmm0, xmm1);
            asm.movss(xmm2, __dword_ptr[rbx]);
            asm.movsd(xmm3, __qword_ptr[rbx]);
            asm.movq(xmm4, xmm5);
            asm.hlt();
        }, g =>
        {
            g.Cpu.Xmm[0] = Vector128.Create(1u, 2u, 3u, 4u).AsByte();
            g.Cpu.Xmm[1] = Vector128.Create(9u, 8u, 7u, 6u).AsByte();
            g.Cpu.Xmm[2] = Vector128.Create(1u, 2u, 3u, 4u).AsByte();
            g.Cpu.Xmm[3] = Vector128.Create(1u, 2u, 3u, 4u).AsByte();
            g.Cpu.Xmm[4] = Vector128.Create(1u, 2u, 3u, 4u).AsByte();
            g.Cpu.Xmm[5] = Vector128.Create(5u, 6u, 7u, 8u).AsByte();
            FpGuest.Write64(g, FpGuest.Data, 0x1122334455667788);
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsUInt32(), Is.EqualTo(Vector128.Create(9u, 2u, 3u, 4u)));
        Assert.That(g.Cpu.Xmm[2].AsUInt32(), Is.EqualTo(Vector128.Create(0x55667788u, 0u, 0u, 0u)));
        Assert.That(g.Cpu.Xmm[3].AsUInt64(), Is.EqualTo(Vector128.Create(0x1122334455667788UL, 0UL)));
        Assert.That(g.Cpu.Xmm[4].AsUInt32(), Is.EqualTo(Vector128.Create(5u, 6u, 0u, 0u)));
    }

    [Test]
    public void MovdMovqAndMaskMoves()
    {
        using var g = Run(asm =>
        {
            asm.movd(xmm0, eax);
            asm.movq(xmm1, rcx);
            asm.movd(edx, xmm1);
            asm.movq(rsi, xmm1);
            asm.movmskps(edi, xmm2);
            asm.pmovmskb(r8d, xmm2);
            asm.movmskpd(r9d, xmm2);
            asm.pextrw(r10d, xmm1, 3);
            asm.pinsrw(xmm3, ecx, 7);
            asm.movhlps(xmm4, xmm2);
            asm.movlhps(xmm5, xmm2);
            asm.hlt();
        }, g =>
        {
            g.Cpu.Gpr[Reg.RAX] = 0xFFFFFFFF_12345678;
            g.Cpu.Gpr[Reg.RCX] = 0xAABBCCDD_EEFF0011;
            g.Cpu.Gpr[Reg.RDX] = ulong.MaxValue;
            g.Cpu.Xmm[0] = Vector128<byte>.AllBitsSet;
            g.Cpu.Xmm[2] = Vector128.Create(0x80000000u, 1u, 0x80000001u, 0xFFFFFFFFu).AsByte();
            g.Cpu.Xmm[4] = Vector128.Create(1UL, 2UL).AsByte();
            g.Cpu.Xmm[5] = Vector128.Create(1UL, 2UL).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsUInt64(), Is.EqualTo(Vector128.Create(0x12345678UL, 0UL)));
        Assert.That(g.Cpu.Xmm[1].AsUInt64(), Is.EqualTo(Vector128.Create(0xAABBCCDD_EEFF0011UL, 0UL)));
        Assert.That(g[Reg.RDX], Is.EqualTo(0xEEFF0011UL));
        Assert.That(g[Reg.RSI], Is.EqualTo(0xAABBCCDD_EEFF0011UL));
        Assert.That(g[Reg.RDI], Is.EqualTo(0b1101UL));
        Assert.That(g[Reg.R8], Is.EqualTo((ulong)Sse2.MoveMask(g.Cpu.Xmm[2])));
        Assert.That(g[Reg.R9], Is.EqualTo(0b10UL));
        Assert.That(g[Reg.R10], Is.EqualTo(0xAABBUL));
        Assert.That(g.Cpu.Xmm[3].AsUInt16().GetElement(7), Is.EqualTo((ushort)0x0011));
        Assert.That(g.Cpu.Xmm[4].AsUInt64(), Is.EqualTo(Vector128.Create(0xFFFFFFFF80000001UL, 2UL)));
        Assert.That(g.Cpu.Xmm[5].AsUInt64(), Is.EqualTo(Vector128.Create(1UL, 0x0000000180000000UL)));
    }

    [TestCase(3UL, (ushort)0x8008, (ushort)0x0040)]
    [TestCase(16UL, (ushort)0x8008, (ushort)0)]
    [TestCase(0x100000003UL, (ushort)0x8008, (ushort)0)]
    public void ShiftByRegisterUsesTheWholeLowQuadword(ulong count, ushort value, ushort expected)
    {
        using var g = Run(asm => { asm.psllw(xmm0, xmm1); asm.hlt(); }, g =>
        {
            g.Cpu.Xmm[0] = Vector128.Create(value).AsByte();
            g.Cpu.Xmm[1] = Vector128.Create(count, 0UL).AsByte();
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[0].AsUInt16(), Is.EqualTo(Vector128.Create(expected)));
    }

    [Test]
    public void MisalignedMovapsIsGeneralProtection()
    {
        using var g = Run(asm => { asm.movaps(xmm0, __xmmword_ptr[rbx + 8]); asm.hlt(); });
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void MisalignedMovupsIsFine()
    {
        using var g = Run(asm => { asm.movups(xmm0, __xmmword_ptr[rbx + 8]); asm.movups(__xmmword_ptr[rbx + 0x41], xmm0); asm.hlt(); },
            g => FpGuest.WriteVec(g, FpGuest.Data + 8, Vector128.Create(7UL, 9UL).AsByte()));
        FpGuest.RunOk(g);
        Assert.That(FpGuest.ReadVec(g, FpGuest.Data + 0x41).AsUInt64(), Is.EqualTo(Vector128.Create(7UL, 9UL)));
    }

    [TestCase(Cr0Bits.TS, 0UL, Vector.NM)]
    [TestCase(Cr0Bits.EM, 0UL, Vector.UD)]
    [TestCase(0UL, Cr4Bits.OSFXSR, Vector.UD)]
    [TestCase(Cr0Bits.TS, Cr4Bits.OSFXSR, Vector.UD)]
    public void AvailabilityRules(ulong cr0Set, ulong cr4Clear, int vector)
    {
        using var g = Run(asm => { asm.addps(xmm0, xmm1); asm.hlt(); }, g =>
        {
            g.Cpu.Cr0 |= cr0Set;
            g.Cpu.Cr4 &= ~cr4Clear;
        });
        Assert.That(FpGuest.Run(g), Is.EqualTo(vector));
    }

    [Test]
    public void LdmxcsrReservedBitIsGeneralProtection()
    {
        using var g = Run(asm => { asm.ldmxcsr(__dword_ptr[rbx]); asm.hlt(); }, g => FpGuest.Write64(g, FpGuest.Data, 0x10000 | 0x1F80));
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Mxcsr, Is.EqualTo(MxcsrBits.Default));
    }

    [Test]
    public void LdmxcsrStmxcsrRoundTrip()
    {
        using var g = Run(asm => { asm.ldmxcsr(__dword_ptr[rbx]); asm.stmxcsr(__dword_ptr[rbx + 4]); asm.hlt(); }, g => FpGuest.Write64(g, FpGuest.Data, 0xFFC0));
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(FpGuest.Data + 4, 4), Is.EqualTo(0xFFC0UL));
    }
}
