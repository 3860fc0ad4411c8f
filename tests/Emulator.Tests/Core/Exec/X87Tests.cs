using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>x87 instructions: known values (APM vol. 1 §6, vol. 5), exact loads/stores, stack faults, comparisons.</summary>
public class X87Tests
{
    private static readonly ulong D = FpGuest.Data;

    private static TestGuest Guest(Action<Assembler> body, Action<TestGuest>? setup = null)
    {
        var g = FpGuest.Create(a =>
        {
            a.fninit();
            body(a);
            a.hlt();
        });
        setup?.Invoke(g);
        return g;
    }

    private static void SetDouble(TestGuest g, ulong at, double v) => FpGuest.Write64(g, at, BitConverter.DoubleToUInt64Bits(v));

    private static double GetDouble(TestGuest g, ulong at) => BitConverter.UInt64BitsToDouble(g.ReadPhys(at, 8));

    [Test]
    public void OneThird()
    {
        using var g = Guest(a =>
        {
            a.fld1();
            a.fld(__qword_ptr[rbx]);
            a.fdivp(st1, st0);
            a.fstp(__qword_ptr[rbx + 8]);
        }, g => SetDouble(g, D, 3.0));
        FpGuest.RunOk(g);
        Assert.That(GetDouble(g, D + 8), Is.EqualTo(1.0 / 3.0));
        Assert.That(g.Cpu.FpuEmpty, Is.EqualTo(0xFF));
        Assert.That(g.Cpu.FpuStatus & FpuSw.PE, Is.EqualTo(FpuSw.PE));
    }

    [Test]
    public void SquareRootOfTwo()
    {
        using var g = Guest(a =>
        {
            a.fild(__dword_ptr[rbx]);
            a.fsqrt();
            a.fstp(__qword_ptr[rbx + 8]);
        }, g => FpGuest.Write64(g, D, 2));
        FpGuest.RunOk(g);
        Assert.That(GetDouble(g, D + 8), Is.EqualTo(Math.Sqrt(2)));
    }

    [Test]
    public void ArithmeticFormsAndOperandOrder()
    {
        // 10 − 4 in each form; the results are stored as doubles at +16, +24 …
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx]);          // 10
            a.fsub(__qword_ptr[rbx + 8]);     // 10 − 4 = 6
            a.fstp(__qword_ptr[rbx + 16]);
            a.fld(__qword_ptr[rbx]);
            a.fsubr(__qword_ptr[rbx + 8]);    // 4 − 10 = −6
            a.fstp(__qword_ptr[rbx + 24]);
            a.fld(__qword_ptr[rbx + 8]);      // ST1 = 4 after next push
            a.fld(__qword_ptr[rbx]);          // ST0 = 10
            a.fsub(st1, st0);                 // ST1 = 4 − 10 = −6
            a.fstp(__qword_ptr[rbx + 32]);    // 10
            a.fstp(__qword_ptr[rbx + 40]);    // −6
            a.fld(__qword_ptr[rbx + 8]);
            a.fld(__qword_ptr[rbx]);
            a.fdivrp(st1, st0);               // ST1 = ST0 / ST1 = 10 / 4, pop
            a.fstp(__qword_ptr[rbx + 48]);
            a.fld(__qword_ptr[rbx]);
            a.fimul(__word_ptr[rbx + 56]);    // 10 · 3
            a.fstp(__qword_ptr[rbx + 64]);
        }, g =>
        {
            SetDouble(g, D, 10);
            SetDouble(g, D + 8, 4);
            FpGuest.Write64(g, D + 56, 3);
        });
        FpGuest.RunOk(g);
        Assert.That(GetDouble(g, D + 16), Is.EqualTo(6.0));
        Assert.That(GetDouble(g, D + 24), Is.EqualTo(-6.0));
        Assert.That(GetDouble(g, D + 32), Is.EqualTo(10.0));
        Assert.That(GetDouble(g, D + 40), Is.EqualTo(-6.0));
        Assert.That(GetDouble(g, D + 48), Is.EqualTo(2.5));
        Assert.That(GetDouble(g, D + 64), Is.EqualTo(30.0));
    }

    [TestCase(0x3FFF, 0x8000000000000000UL)]
    [TestCase(0x0000, 0x0000000000000001UL)]  // denormal
    [TestCase(0x0000, 0x8000000000000001UL)]  // pseudo-denormal
    [TestCase(0x7FFF, 0x8000000000000001UL)]  // SNaN
    [TestCase(0x4000, 0x0000000000001234UL)]  // unnormal (unsupported)
    [TestCase(0xFFFF, 0xC000000000000000UL)]  // indefinite
    public void Extended80RoundTripsBitExactly(int signExp, ulong mantissa)
    {
        using var g = Guest(a =>
        {
            a.fld(__tword_ptr[rbx]);
            a.fstp(__tword_ptr[rbx + 16]);
        }, g =>
        {
            FpGuest.Write64(g, D, mantissa);
            FpGuest.Write64(g, D + 8, (ulong)signExp);
        });
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + 16, 8), Is.EqualTo(mantissa));
        Assert.That(g.ReadPhys(D + 24, 2), Is.EqualTo((ulong)signExp));
        Assert.That(g.Cpu.FpuStatus & FpFlags.All, Is.EqualTo(0), "FLD/FSTP m80 raise nothing");
    }

    [Test]
    public void FldpiIsTheRoundedConstant()
    {
        using var g = Guest(a => a.fldpi());
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.St(0), Is.EqualTo(new Float80(0x4000, 0xC90FDAA22168C235)));
        Assert.That(g.Cpu.St(0).ToDouble(), Is.EqualTo(Math.PI));
    }

    [Test]
    public void FloatLoadsAreExactAndSnanSignalsInvalid()
    {
        using var g = Guest(a =>
        {
            a.fld(__dword_ptr[rbx]);
            a.fld(__qword_ptr[rbx + 8]);
        }, g =>
        {
            FpGuest.Write64(g, D, 0x7F800001);               // float SNaN
            FpGuest.Write64(g, D + 8, 0x0000000000000001);   // smallest double denormal
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.St(1), Is.EqualTo(new Float80(0x7FFF, 0xC000010000000000)));
        Assert.That(g.Cpu.St(0), Is.EqualTo(new Float80((ushort)(16383 - 1074), 0x8000000000000000)));
        Assert.That(g.Cpu.FpuStatus & FpFlags.All, Is.EqualTo(FpFlags.IE | FpFlags.DE));
    }

    [Test]
    public void StackOverflowPushesIndefinite()
    {
        using var g = Guest(a =>
        {
            for (int i = 0; i < 9; i++)
            {
                a.fld1();
            }

            a.fnstsw(ax);
        });
        FpGuest.RunOk(g);
        ushort sw = (ushort)g[Reg.RAX];
        Assert.That(sw & (FpuSw.IE | FpuSw.SF | FpuSw.C1), Is.EqualTo(FpuSw.IE | FpuSw.SF | FpuSw.C1));
        Assert.That(g.Cpu.St(0), Is.EqualTo(Float80.Indefinite));
        Assert.That((sw >> 11) & 7, Is.EqualTo(7), "TOP after eight successful pushes and one faulting one");
    }

    [Test]
    public void StackUnderflowGivesIndefiniteWithC1Clear()
    {
        using var g = Guest(a =>
        {
            a.fadd(st0, st1);
            a.fnstsw(ax);
        });
        FpGuest.RunOk(g);
        ushort sw = (ushort)g[Reg.RAX];
        Assert.That(sw & (FpuSw.IE | FpuSw.SF | FpuSw.C1), Is.EqualTo(FpuSw.IE | FpuSw.SF));
    }

    [TestCase(1.0, 2.0, FpuSw.C0)]
    [TestCase(2.0, 1.0, 0)]
    [TestCase(2.0, 2.0, FpuSw.C3)]
    [TestCase(double.NaN, 1.0, FpuSw.C3 | FpuSw.C2 | FpuSw.C0)]
    public void FcomSetsConditionCodes(double st0, double src, int cc)
    {
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx]);
            a.fcom(__qword_ptr[rbx + 8]);
            a.fnstsw(ax);
        }, g =>
        {
            SetDouble(g, D, st0);
            SetDouble(g, D + 8, src);
        });
        FpGuest.RunOk(g);
        Assert.That(g[Reg.RAX] & FpuSw.CondMask, Is.EqualTo((ulong)cc));
        Assert.That(g[Reg.RAX] & FpuSw.IE, Is.EqualTo(double.IsNaN(st0) ? (ulong)FpuSw.IE : 0), "FCOM signals on a QNaN");
    }

    [Test]
    public void FucomDoesNotSignalOnQnanAndFucomppPopsTwice()
    {
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx]);
            a.fld(__qword_ptr[rbx]);
            a.fucompp();
            a.fnstsw(ax);
        }, g => SetDouble(g, D, double.NaN));
        FpGuest.RunOk(g);
        Assert.That(g[Reg.RAX] & (FpuSw.CondMask | FpuSw.IE), Is.EqualTo((ulong)(FpuSw.C3 | FpuSw.C2 | FpuSw.C0)));
        Assert.That(g.Cpu.FpuEmpty, Is.EqualTo(0xFF));
    }

    [TestCase(1.0, 2.0, Rflags.CF)]
    [TestCase(3.0, 2.0, 0UL)]
    [TestCase(2.0, 2.0, Rflags.ZF)]
    [TestCase(double.NaN, 2.0, Rflags.ZF | Rflags.PF | Rflags.CF)]
    public void FucomipSetsRflags(double x, double y, ulong flags)
    {
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx + 8]);
            a.fld(__qword_ptr[rbx]);
            a.fucomip(st0, st1);
        }, g =>
        {
            SetDouble(g, D, x);
            SetDouble(g, D + 8, y);
            g.Cpu.SetArithFlags(Rflags.OF | Rflags.SF | Rflags.AF);
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Rflags64 & Rflags.Arith, Is.EqualTo(flags));
        Assert.That(g.Cpu.FpuTop, Is.EqualTo(7), "one pop");
    }

    [TestCase(2.5, 0, 2L)]
    [TestCase(2.5, 1, 2L)]
    [TestCase(2.5, 2, 3L)]
    [TestCase(-2.5, 0, -2L)]
    [TestCase(-2.5, 1, -3L)]
    [TestCase(-2.5, 3, -2L)]
    [TestCase(3.5, 0, 4L)]
    public void FistpRoundsByControlWord(double v, int rc, long expected)
    {
        using var g = Guest(a =>
        {
            a.fldcw(__word_ptr[rbx + 16]);
            a.fld(__qword_ptr[rbx]);
            a.fistp(__qword_ptr[rbx + 8]);
        }, g =>
        {
            SetDouble(g, D, v);
            FpGuest.Write64(g, D + 16, (ulong)(0x037F | (rc << 10)));
        });
        FpGuest.RunOk(g);
        Assert.That((long)g.ReadPhys(D + 8, 8), Is.EqualTo(expected));
    }

    [TestCase(long.MaxValue)]
    [TestCase(long.MinValue)]
    [TestCase(-1L)]
    public void FildFistpInt64IsExact(long v)
    {
        using var g = Guest(a =>
        {
            a.fild(__qword_ptr[rbx]);
            a.fistp(__qword_ptr[rbx + 8]);
        }, g => FpGuest.Write64(g, D, (ulong)v));
        FpGuest.RunOk(g);
        Assert.That((long)g.ReadPhys(D + 8, 8), Is.EqualTo(v));
    }

    [Test]
    public void FistOutOfRangeStoresIntegerIndefinite()
    {
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx]);
            a.fist(__word_ptr[rbx + 8]);
        }, g => SetDouble(g, D, 40000));
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + 8, 2), Is.EqualTo(0x8000UL));
        Assert.That(g.Cpu.FpuStatus & FpuSw.IE, Is.EqualTo(FpuSw.IE));
    }

    [Test]
    public void FstRoundsToSingleByControlWord()
    {
        // 1 + 2^-30 stored as float: nearest → 1.0, up → next float above 1.
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx]);
            a.fst(__dword_ptr[rbx + 8]);
            a.fldcw(__word_ptr[rbx + 16]);
            a.fst(__dword_ptr[rbx + 12]);
        }, g =>
        {
            SetDouble(g, D, 1 + Math.ScaleB(1, -30));
            FpGuest.Write64(g, D + 16, 0x037F | (2 << 10));
        });
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + 8, 4), Is.EqualTo(0x3F800000UL));
        Assert.That(g.ReadPhys(D + 12, 4), Is.EqualTo(0x3F800001UL));
    }

    [Test]
    public void FxamClassifies()
    {
        using var g = Guest(a =>
        {
            a.fxam();
            a.fnstsw(__word_ptr[rbx]);
            a.fld(__qword_ptr[rbx + 8]);
            a.fchs();
            a.fxam();
            a.fnstsw(__word_ptr[rbx + 2]);
            a.fldz();
            a.fxam();
            a.fnstsw(__word_ptr[rbx + 4]);
            a.fld(__tword_ptr[rbx + 16]);
            a.fxam();
            a.fnstsw(__word_ptr[rbx + 6]);
        }, g =>
        {
            SetDouble(g, D + 8, double.PositiveInfinity);
            FpGuest.Write64(g, D + 16, 1);
            FpGuest.Write64(g, D + 24, 0);
        });
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D, 2) & FpuSw.CondMask, Is.EqualTo((ulong)(FpuSw.C3 | FpuSw.C0)), "empty");
        Assert.That(g.ReadPhys(D + 2, 2) & FpuSw.CondMask, Is.EqualTo((ulong)(FpuSw.C2 | FpuSw.C0 | FpuSw.C1)), "negative infinity");
        Assert.That(g.ReadPhys(D + 4, 2) & FpuSw.CondMask, Is.EqualTo((ulong)FpuSw.C3), "zero");
        Assert.That(g.ReadPhys(D + 6, 2) & FpuSw.CondMask, Is.EqualTo((ulong)(FpuSw.C3 | FpuSw.C2)), "denormal");
    }

    [Test]
    public void FrndintAndFscaleAreExact()
    {
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx + 8]);   // 3
            a.fld(__qword_ptr[rbx]);       // 2.5
            a.frndint();                   // 2
            a.fscale();                    // 2 · 2^3 = 16
            a.fstp(__qword_ptr[rbx + 16]);
        }, g =>
        {
            SetDouble(g, D, 2.5);
            SetDouble(g, D + 8, 3);
        });
        FpGuest.RunOk(g);
        Assert.That(GetDouble(g, D + 16), Is.EqualTo(16.0));
    }

    [Test]
    public void FxchSwaps()
    {
        using var g = Guest(a =>
        {
            a.fld1();
            a.fldz();
            a.fxch(st0, st1);
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.St(0), Is.EqualTo(Float80.One));
        Assert.That(g.Cpu.St(1), Is.EqualTo(Float80.Zero));
    }

    [Test]
    public void EmulationBitMakesX87RaiseNm()
    {
        using var g = Guest(a => a.fld1(), g => g.Cpu.Cr0 |= Cr0Bits.EM);
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.NM));
    }

    [TestCase(Cr0Bits.TS, -1)]
    [TestCase(Cr0Bits.TS | Cr0Bits.MP, Vector.NM)]
    public void WaitFaultsOnlyWithTsAndMp(ulong bits, int vector)
    {
        using var g = FpGuest.Create(a =>
        {
            a.wait();
            a.hlt();
        });
        g.Cpu.Cr0 |= bits;
        Assert.That(FpGuest.Run(g), Is.EqualTo(vector));
    }

    [Test]
    public void UnmaskedZeroDivideIsDeliveredAtTheNextWaitingInstruction()
    {
        using var g = Guest(a =>
        {
            a.fldcw(__word_ptr[rbx]);
            a.fld1();
            a.fldz();
            a.fdivp(st1, st0);   // ZE unmasked: flagged, ES set, no result
            a.fnstsw(__word_ptr[rbx + 8]);
            a.wait();           // #MF here
        }, g => FpGuest.Write64(g, D, 0x037B));
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.MF));
        ulong sw = g.ReadPhys(D + 8, 2);
        Assert.That(sw & (FpuSw.ZE | FpuSw.ES | FpuSw.B), Is.EqualTo((ulong)(FpuSw.ZE | FpuSw.ES | FpuSw.B)));
        Assert.That(g.Cpu.St(1), Is.EqualTo(Float80.One), "destination unchanged");
    }

    [Test]
    public void FnstenvStoresProtectedModeEnvironmentAndMasks()
    {
        using var g = Guest(a =>
        {
            a.fld1();
            a.fldcw(__word_ptr[rbx + 64]);
            a.fnstenv(__[rbx]);
        }, g => FpGuest.Write64(g, D + 64, 0x0272));
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D, 2), Is.EqualTo(0x0272UL));
        Assert.That(g.ReadPhys(D + 4, 2) >> 11 & 7, Is.EqualTo(7UL), "TOP");
        Assert.That(g.ReadPhys(D + 8, 2), Is.EqualTo(0x3FFFUL), "tag word: R7 valid, the rest empty");
        Assert.That(g.Cpu.FpuCw & 0x3F, Is.EqualTo(0x3F));
    }

    [Test]
    public void FnsaveFrstorRoundTrip()
    {
        using var g = Guest(a =>
        {
            a.fldpi();
            a.fld1();
            a.fnsave(__[rbx]);
            a.fldz();
            a.frstor(__[rbx]);
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.St(0), Is.EqualTo(Float80.One));
        Assert.That(g.Cpu.St(1), Is.EqualTo(new Float80(0x4000, 0xC90FDAA22168C235)));
        Assert.That(g.Cpu.FpuTop, Is.EqualTo(6));
        Assert.That(g.ReadPhys(D + 28, 8), Is.EqualTo(0x8000000000000000UL), "ST(0) image after the 28-byte environment");
    }

    [TestCase(0x037F, 0x3FFD, 0xAAAAAAAAAAAAAAABUL)] // extended: 64 bits, nearest
    [TestCase(0x0F7F, 0x3FFD, 0xAAAAAAAAAAAAAAAAUL)] // extended, toward zero
    [TestCase(0x027F, 0x3FFD, 0xAAAAAAAAAAAAA800UL)] // double precision
    [TestCase(0x007F, 0x3FFD, 0xAAAAAB0000000000UL)] // single precision
    public void OneThirdInEachPrecision(int cw, int signExp, ulong mantissa)
    {
        using var g = Guest(a =>
        {
            a.fldcw(__word_ptr[rbx + 8]);
            a.fld1();
            a.fild(__dword_ptr[rbx]);
            a.fdivp(st1, st0);
        }, g =>
        {
            FpGuest.Write64(g, D, 3);
            FpGuest.Write64(g, D + 8, (ulong)cw);
        });
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.St(0), Is.EqualTo(new Float80((ushort)signExp, mantissa)));
    }

    [Test]
    public void SquareRootOfTwoInExtendedPrecision()
    {
        // √2 = 1.6A09E667F3BCC908B2FB…h; 64 significant bits rounded to nearest.
        using var g = Guest(a =>
        {
            a.fild(__dword_ptr[rbx]);
            a.fsqrt();
        }, g => FpGuest.Write64(g, D, 2));
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.St(0), Is.EqualTo(new Float80(0x3FFF, 0xB504F333F9DE6484)));
    }

    [Test]
    public void ExtendedRangeDoesNotOverflowLikeDouble()
    {
        using var g = Guest(a =>
        {
            a.fld(__qword_ptr[rbx]);
            a.fmul(st0, st0);
            a.fld(__qword_ptr[rbx]);
            a.fdivp(st1, st0);
            a.fstp(__qword_ptr[rbx + 8]);
        }, g => SetDouble(g, D, 1e300));
        FpGuest.RunOk(g);
        Assert.That(GetDouble(g, D + 8), Is.EqualTo(1e300));
        Assert.That(g.Cpu.FpuStatus & FpuSw.OE, Is.EqualTo(0));
    }

    /// <summary>
    /// With precision control "double", one x87 operation on doubles rounds exactly as IEEE double
    /// arithmetic does (results kept inside double's normal range), so the host's double arithmetic is the oracle.
    /// </summary>
    [TestCase(0)]
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void DoublePrecisionControlMatchesIeeeDouble(int op)
    {
        var r = new Random(42 + op);
        const int n = 40;
        var xs = new double[n];
        var ys = new double[n];
        for (int i = 0; i < n; i++)
        {
            xs[i] = Math.ScaleB(r.NextDouble() + 0.5, r.Next(-60, 60)) * (r.Next(2) == 0 ? 1 : -1);
            ys[i] = Math.ScaleB(r.NextDouble() + 0.5, r.Next(-60, 60)) * (r.Next(2) == 0 ? 1 : -1);
            if (op == 4)
            {
                xs[i] = Math.Abs(xs[i]);
            }
        }

        using var g = Guest(a =>
        {
            a.fldcw(__word_ptr[rbx]);
            for (int i = 0; i < n; i++)
            {
                int o = 8 + (i * 24);
                a.fld(__qword_ptr[rbx + o]);
                switch (op)
                {
                    case 0: a.fadd(__qword_ptr[rbx + o + 8]); break;
                    case 1: a.fsub(__qword_ptr[rbx + o + 8]); break;
                    case 2: a.fmul(__qword_ptr[rbx + o + 8]); break;
                    case 3: a.fdiv(__qword_ptr[rbx + o + 8]); break;
                    default: a.fsqrt(); break;
                }

                a.fstp(__qword_ptr[rbx + o + 16]);
            }
        }, g =>
        {
            FpGuest.Write64(g, D, 0x027F);
            for (int i = 0; i < n; i++)
            {
                SetDouble(g, D + 8 + (ulong)(i * 24), xs[i]);
                SetDouble(g, D + 16 + (ulong)(i * 24), ys[i]);
            }
        });
        FpGuest.RunOk(g);
        for (int i = 0; i < n; i++)
        {
            double want = op switch
            {
                0 => xs[i] + ys[i],
                1 => xs[i] - ys[i],
                2 => xs[i] * ys[i],
                3 => xs[i] / ys[i],
                _ => Math.Sqrt(xs[i]),
            };
            Assert.That(GetDouble(g, D + 24 + (ulong)(i * 24)), Is.EqualTo(want), $"{xs[i]:R} op{op} {ys[i]:R}");
        }
    }
}
