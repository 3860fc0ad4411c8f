using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// SSE/SSE2 conversions (APM vol. 4 "CVT…"): rounding follows MXCSR.RC (the CVTT forms truncate);
/// NaN or out-of-range float → integer gives the integer indefinite 0x80000000 / 0x8000000000000000 with IE.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSseConvert(HandlerTable t)
    {
        t.Add(Code.Cvtsi2ss_xmm_rm32, &Cvtsi2ss, CostClass.Sse);
        t.Add(Code.Cvtsi2ss_xmm_rm64, &Cvtsi2ss, CostClass.Sse);
        t.Add(Code.Cvtsi2sd_xmm_rm32, &Cvtsi2sd, CostClass.Sse);
        t.Add(Code.Cvtsi2sd_xmm_rm64, &Cvtsi2sd, CostClass.Sse);
        t.Add(Code.Cvtss2si_r32_xmmm32, &Cvtss2si, CostClass.Sse);
        t.Add(Code.Cvtss2si_r64_xmmm32, &Cvtss2si, CostClass.Sse);
        t.Add(Code.Cvttss2si_r32_xmmm32, &Cvtss2si, CostClass.Sse);
        t.Add(Code.Cvttss2si_r64_xmmm32, &Cvtss2si, CostClass.Sse);
        t.Add(Code.Cvtsd2si_r32_xmmm64, &Cvtsd2si, CostClass.Sse);
        t.Add(Code.Cvtsd2si_r64_xmmm64, &Cvtsd2si, CostClass.Sse);
        t.Add(Code.Cvttsd2si_r32_xmmm64, &Cvtsd2si, CostClass.Sse);
        t.Add(Code.Cvttsd2si_r64_xmmm64, &Cvtsd2si, CostClass.Sse);
        t.Add(Code.Cvtss2sd_xmm_xmmm32, &Cvtss2sd, CostClass.Sse);
        t.Add(Code.Cvtsd2ss_xmm_xmmm64, &Cvtsd2ss, CostClass.Sse);
        t.Add(Code.Cvtps2pd_xmm_xmmm64, &Cvtps2pd, CostClass.Sse);
        t.Add(Code.Cvtpd2ps_xmm_xmmm128, &Cvtpd2ps, CostClass.Sse);
        t.Add(Code.Cvtdq2ps_xmm_xmmm128, &Cvtdq2ps, CostClass.Sse);
        t.Add(Code.Cvtps2dq_xmm_xmmm128, &Cvtps2dq, CostClass.Sse);
        t.Add(Code.Cvttps2dq_xmm_xmmm128, &Cvtps2dq, CostClass.Sse);
        t.Add(Code.Cvtdq2pd_xmm_xmmm64, &Cvtdq2pd, CostClass.Sse);
        t.Add(Code.Cvtpd2dq_xmm_xmmm128, &Cvtpd2dq, CostClass.Sse);
        t.Add(Code.Cvttpd2dq_xmm_xmmm128, &Cvtpd2dq, CostClass.Sse);
    }

    /// <summary>Integer source of CVTSI2SS/SD: a GPR or memory at the operand size, sign-extended.</summary>
    private static bool IntSource(Cpu.Cpu c, ref DecodedOp op, out long v)
    {
        bool is64 = op.Code is Code.Cvtsi2ss_xmm_rm64 or Code.Cvtsi2sd_xmm_rm64;
        int size = is64 ? 8 : 4;
        ulong x;
        if (op.R1 != Reg.NoReg)
        {
            x = c.GetReg(op.R1, size);
        }
        else if (!c.ReadMem(op.Seg, c.Ea(ref op), size, out x))
        {
            v = 0;
            return false;
        }

        v = is64 ? (long)x : (int)(uint)x;
        return true;
    }

    public static int Cvtsi2ss(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!IntSource(c, ref op, out long v))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0;
        float r = SimdFp.FromInt<float>(v, c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsSingle().WithElement(0, r).AsByte();
        return ExecStatus.Continue;
    }

    public static int Cvtsi2sd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!IntSource(c, ref op, out long v))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0;
        double r = SimdFp.FromInt<double>(v, c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsDouble().WithElement(0, r).AsByte();
        return ExecStatus.Continue;
    }

    private static bool IsTruncating(Code code) => code is Code.Cvttss2si_r32_xmmm32 or Code.Cvttss2si_r64_xmmm32
        or Code.Cvttsd2si_r32_xmmm64 or Code.Cvttsd2si_r64_xmmm64 or Code.Cvttps2dq_xmm_xmmm128 or Code.Cvttpd2dq_xmm_xmmm128;

    private static int ToGpr(Cpu.Cpu c, ref DecodedOp op, long r, uint flags)
    {
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        // The destination size is the GPR's (32-bit writes zero-extend).
        c.SetReg(op.R0, op.OpSize, (ulong)r);
        return ExecStatus.Continue;
    }

    public static int Cvtss2si(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong s))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0;
        int rc = IsTruncating(op.Code) ? 3 : c.SseRc;
        long r = SimdFp.ToInt(BitConverter.UInt32BitsToSingle((uint)s), op.OpSize * 8, rc, c.Mxcsr, ref flags);
        return ToGpr(c, ref op, r, flags);
    }

    public static int Cvtsd2si(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong s))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0;
        int rc = IsTruncating(op.Code) ? 3 : c.SseRc;
        long r = SimdFp.ToInt(BitConverter.UInt64BitsToDouble(s), op.OpSize * 8, rc, c.Mxcsr, ref flags);
        return ToGpr(c, ref op, r, flags);
    }

    public static int Cvtss2sd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 4, out ulong s))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0;
        double r = SimdFp.Widen(BitConverter.UInt32BitsToSingle((uint)s), c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsDouble().WithElement(0, r).AsByte();
        return ExecStatus.Continue;
    }

    public static int Cvtsd2ss(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong s))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0;
        float r = SimdFp.Narrow(BitConverter.UInt64BitsToDouble(s), c.Mxcsr, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsSingle().WithElement(0, r).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>CVTPS2PD: the two low singles of xmm/m64 → two doubles.</summary>
    public static int Cvtps2pd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong s))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0, mx = c.Mxcsr;
        double r0 = SimdFp.Widen(BitConverter.UInt32BitsToSingle((uint)s), mx, ref flags);
        double r1 = SimdFp.Widen(BitConverter.UInt32BitsToSingle((uint)(s >> 32)), mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Vector128.Create(r0, r1).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>CVTPD2PS: two doubles → two singles in the low quadword; the high quadword is zeroed.</summary>
    public static int Cvtpd2ps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0, mx = c.Mxcsr;
        Vector128<double> s = sv.AsDouble();
        float r0 = SimdFp.Narrow(s.GetElement(0), mx, ref flags);
        float r1 = SimdFp.Narrow(s.GetElement(1), mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Vector128.Create(r0, r1, 0f, 0f).AsByte();
        return ExecStatus.Continue;
    }

    public static int Cvtdq2ps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0, mx = c.Mxcsr;
        Vector128<int> s = sv.AsInt32();
        Vector128<float> r = default;
        for (int i = 0; i < 4; i++)
        {
            r = r.WithElement(i, SimdFp.FromInt<float>(s.GetElement(i), mx, ref flags));
        }

        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = r.AsByte();
        return ExecStatus.Continue;
    }

    public static int Cvtps2dq(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0, mx = c.Mxcsr;
        int rc = IsTruncating(op.Code) ? 3 : c.SseRc;
        Vector128<float> s = sv.AsSingle();
        Vector128<int> r = default;
        for (int i = 0; i < 4; i++)
        {
            r = r.WithElement(i, (int)SimdFp.ToInt(s.GetElement(i), 32, rc, mx, ref flags));
        }

        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = r.AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>CVTDQ2PD: the two low int32 of xmm/m64 → two doubles (exact).</summary>
    public static int Cvtdq2pd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong s))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Vector128.Create((double)(int)(uint)s, (int)(uint)(s >> 32)).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>CVT(T)PD2DQ: two doubles → two int32 in the low quadword; the high quadword is zeroed.</summary>
    public static int Cvtpd2dq(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        uint flags = 0, mx = c.Mxcsr;
        int rc = IsTruncating(op.Code) ? 3 : c.SseRc;
        Vector128<double> s = sv.AsDouble();
        int r0 = (int)SimdFp.ToInt(s.GetElement(0), 32, rc, mx, ref flags);
        int r1 = (int)SimdFp.ToInt(s.GetElement(1), 32, rc, mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Vector128.Create(r0, r1, 0, 0).AsByte();
        return ExecStatus.Continue;
    }
}
