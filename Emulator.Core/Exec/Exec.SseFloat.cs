using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>Selects the element operation of a floating-point handler: 0–4 <see cref="FpOp"/>, 5 MIN, 6 MAX.</summary>
public interface IFpKind
{
    static abstract int Kind { get; }
}

/// <summary>
/// SSE/SSE2 floating-point arithmetic, MIN/MAX, comparisons and approximations (APM vol. 4), packed and
/// scalar, single and double. Values, NaN rules and MXCSR flags come from <see cref="SimdFp"/>; an unmasked
/// exception leaves the destination unchanged and raises #XM (or #UD without CR4.OSXMMEXCPT).
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSseFloat(HandlerTable t)
    {
        Fp<KAdd>(t, Code.Addps_xmm_xmmm128, Code.Addpd_xmm_xmmm128, Code.Addss_xmm_xmmm32, Code.Addsd_xmm_xmmm64);
        Fp<KSub>(t, Code.Subps_xmm_xmmm128, Code.Subpd_xmm_xmmm128, Code.Subss_xmm_xmmm32, Code.Subsd_xmm_xmmm64);
        Fp<KMul>(t, Code.Mulps_xmm_xmmm128, Code.Mulpd_xmm_xmmm128, Code.Mulss_xmm_xmmm32, Code.Mulsd_xmm_xmmm64);
        Fp<KDiv>(t, Code.Divps_xmm_xmmm128, Code.Divpd_xmm_xmmm128, Code.Divss_xmm_xmmm32, Code.Divsd_xmm_xmmm64);
        Fp<KSqrt>(t, Code.Sqrtps_xmm_xmmm128, Code.Sqrtpd_xmm_xmmm128, Code.Sqrtss_xmm_xmmm32, Code.Sqrtsd_xmm_xmmm64);
        Fp<KMin>(t, Code.Minps_xmm_xmmm128, Code.Minpd_xmm_xmmm128, Code.Minss_xmm_xmmm32, Code.Minsd_xmm_xmmm64);
        Fp<KMax>(t, Code.Maxps_xmm_xmmm128, Code.Maxpd_xmm_xmmm128, Code.Maxss_xmm_xmmm32, Code.Maxsd_xmm_xmmm64);

        t.Add(Code.Cmpps_xmm_xmmm128_imm8, &Cmpps, CostClass.Sse);
        t.Add(Code.Cmppd_xmm_xmmm128_imm8, &Cmppd, CostClass.Sse);
        t.Add(Code.Cmpss_xmm_xmmm32_imm8, &Cmpss, CostClass.Sse);
        t.Add(Code.Cmpsd_xmm_xmmm64_imm8, &Cmpsd, CostClass.Sse);
        t.Add(Code.Comiss_xmm_xmmm32, &Comiss, CostClass.Sse);
        t.Add(Code.Ucomiss_xmm_xmmm32, &Comiss, CostClass.Sse);
        t.Add(Code.Comisd_xmm_xmmm64, &Comisd, CostClass.Sse);
        t.Add(Code.Ucomisd_xmm_xmmm64, &Comisd, CostClass.Sse);

        t.Add(Code.Rcpps_xmm_xmmm128, &Rcpps, CostClass.Sse);
        t.Add(Code.Rcpss_xmm_xmmm32, &Rcpss, CostClass.Sse);
        t.Add(Code.Rsqrtps_xmm_xmmm128, &Rsqrtps, CostClass.Sse);
        t.Add(Code.Rsqrtss_xmm_xmmm32, &Rsqrtss, CostClass.Sse);
    }

    private static void Fp<K>(HandlerTable t, Code ps, Code pd, Code ss, Code sd)
        where K : struct, IFpKind
    {
        t.Add(ps, &FpPs<K>, CostClass.Sse);
        t.Add(pd, &FpPd<K>, CostClass.Sse);
        t.Add(ss, &FpSs<K>, CostClass.Sse);
        t.Add(sd, &FpSd<K>, CostClass.Sse);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T FpElement<T>(int kind, T a, T b, uint mxcsr, ref uint flags)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T> => kind switch
        {
            5 => SimdFp.MinMax(false, a, b, mxcsr, ref flags),
            6 => SimdFp.MinMax(true, a, b, mxcsr, ref flags),
            _ => SimdFp.Arith((FpOp)kind, a, b, mxcsr, ref flags),
        };

    public static int FpPs<K>(Cpu.Cpu c, ref DecodedOp op)
        where K : struct, IFpKind
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> dr = ref X(c, op.R0);
        Vector128<float> d = dr.AsSingle(), s = sv.AsSingle(), r = default;
        uint mx = c.Mxcsr, flags = 0;
        for (int i = 0; i < 4; i++)
        {
            r = r.WithElement(i, FpElement(K.Kind, d.GetElement(i), s.GetElement(i), mx, ref flags));
        }

        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = r.AsByte();
        return ExecStatus.Continue;
    }

    public static int FpPd<K>(Cpu.Cpu c, ref DecodedOp op)
        where K : struct, IFpKind
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> dr = ref X(c, op.R0);
        Vector128<double> d = dr.AsDouble(), s = sv.AsDouble();
        uint mx = c.Mxcsr, flags = 0;
        double r0 = FpElement(K.Kind, d.GetElement(0), s.GetElement(0), mx, ref flags);
        double r1 = FpElement(K.Kind, d.GetElement(1), s.GetElement(1), mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = Vector128.Create(r0, r1).AsByte();
        return ExecStatus.Continue;
    }

    public static int FpSs<K>(Cpu.Cpu c, ref DecodedOp op)
        where K : struct, IFpKind
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong sv))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> dr = ref X(c, op.R0);
        uint flags = 0;
        float r = FpElement(K.Kind, dr.AsSingle().ToScalar(), BitConverter.UInt32BitsToSingle((uint)sv), c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = dr.AsSingle().WithElement(0, r).AsByte();
        return ExecStatus.Continue;
    }

    public static int FpSd<K>(Cpu.Cpu c, ref DecodedOp op)
        where K : struct, IFpKind
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong sv))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> dr = ref X(c, op.R0);
        uint flags = 0;
        double r = FpElement(K.Kind, dr.AsDouble().ToScalar(), BitConverter.UInt64BitsToDouble(sv), c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = dr.AsDouble().WithElement(0, r).AsByte();
        return ExecStatus.Continue;
    }

    // ---- Comparisons ----

    public static int Cmpps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        int pred = (int)(op.Imm & 7);
        ref Vector128<byte> dr = ref X(c, op.R0);
        Vector128<float> d = dr.AsSingle(), s = sv.AsSingle();
        Vector128<uint> r = default;
        uint mx = c.Mxcsr, flags = 0;
        for (int i = 0; i < 4; i++)
        {
            r = r.WithElement(i, SimdFp.Compare(pred, d.GetElement(i), s.GetElement(i), mx, ref flags) ? uint.MaxValue : 0u);
        }

        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = r.AsByte();
        return ExecStatus.Continue;
    }

    public static int Cmppd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        int pred = (int)(op.Imm & 7);
        ref Vector128<byte> dr = ref X(c, op.R0);
        Vector128<double> d = dr.AsDouble(), s = sv.AsDouble();
        uint mx = c.Mxcsr, flags = 0;
        ulong r0 = SimdFp.Compare(pred, d.GetElement(0), s.GetElement(0), mx, ref flags) ? ulong.MaxValue : 0;
        ulong r1 = SimdFp.Compare(pred, d.GetElement(1), s.GetElement(1), mx, ref flags) ? ulong.MaxValue : 0;
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = Vector128.Create(r0, r1).AsByte();
        return ExecStatus.Continue;
    }

    public static int Cmpss(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong sv))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> dr = ref X(c, op.R0);
        uint flags = 0;
        bool r = SimdFp.Compare((int)(op.Imm & 7), dr.AsSingle().ToScalar(), BitConverter.UInt32BitsToSingle((uint)sv), c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = dr.AsUInt32().WithElement(0, r ? uint.MaxValue : 0u).AsByte();
        return ExecStatus.Continue;
    }

    public static int Cmpsd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong sv))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> dr = ref X(c, op.R0);
        uint flags = 0;
        bool r = SimdFp.Compare((int)(op.Imm & 7), dr.AsDouble().ToScalar(), BitConverter.UInt64BitsToDouble(sv), c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        dr = dr.AsUInt64().WithElement(0, r ? ulong.MaxValue : 0UL).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>
    /// (U)COMISS/(U)COMISD (APM vol. 4): ZF, PF, CF = 111 unordered, 000 greater, 001 less, 100 equal;
    /// OF, SF, AF cleared. COMIS* signals IE on any NaN, UCOMIS* only on an SNaN.
    /// </summary>
    private static int CompareOrdered<T>(Cpu.Cpu c, T a, T b, bool signalOnQnan)
        where T : IBinaryFloatingPointIeee754<T>, IMinMaxValue<T>
    {
        uint flags = 0;
        ulong f;
        if (T.IsNaN(a) || T.IsNaN(b))
        {
            if (signalOnQnan || SimdFp.IsSignaling(a) || SimdFp.IsSignaling(b))
            {
                flags |= FpFlags.IE;
            }

            f = Rflags.ZF | Rflags.PF | Rflags.CF;
        }
        else
        {
            a = SimdFp.Denormal(a, c.Mxcsr, ref flags);
            b = SimdFp.Denormal(b, c.Mxcsr, ref flags);
            f = a > b ? 0 : a < b ? Rflags.CF : Rflags.ZF;
        }

        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        c.SetArithFlags(f);
        return ExecStatus.Continue;
    }

    public static int Comiss(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong sv))
        {
            return ExecStatus.Fault;
        }

        return CompareOrdered(c, X(c, op.R0).AsSingle().ToScalar(), BitConverter.UInt32BitsToSingle((uint)sv), op.Code == Code.Comiss_xmm_xmmm32);
    }

    public static int Comisd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong sv))
        {
            return ExecStatus.Fault;
        }

        return CompareOrdered(c, X(c, op.R0).AsDouble().ToScalar(), BitConverter.UInt64BitsToDouble(sv), op.Code == Code.Comisd_xmm_xmmm64);
    }

    // ---- Approximations: the host's RCPPS/RSQRTPS (an AMD host gives AMD's tables); no flags ----

    public static int Rcpps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Sse.Reciprocal(s.AsSingle()).AsByte();
        return ExecStatus.Continue;
    }

    public static int Rsqrtps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Sse.ReciprocalSqrt(s.AsSingle()).AsByte();
        return ExecStatus.Continue;
    }

    public static int Rcpss(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong s))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = Sse.ReciprocalScalar(d.AsSingle(), Vector128.CreateScalar((uint)s).AsSingle()).AsByte();
        return ExecStatus.Continue;
    }

    public static int Rsqrtss(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong s))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = Sse.ReciprocalSqrtScalar(d.AsSingle(), Vector128.CreateScalar((uint)s).AsSingle()).AsByte();
        return ExecStatus.Continue;
    }

    private struct KAdd : IFpKind { public static int Kind => (int)FpOp.Add; }

    private struct KSub : IFpKind { public static int Kind => (int)FpOp.Sub; }

    private struct KMul : IFpKind { public static int Kind => (int)FpOp.Mul; }

    private struct KDiv : IFpKind { public static int Kind => (int)FpOp.Div; }

    private struct KSqrt : IFpKind { public static int Kind => (int)FpOp.Sqrt; }

    private struct KMin : IFpKind { public static int Kind => 5; }

    private struct KMax : IFpKind { public static int Kind => 6; }
}
