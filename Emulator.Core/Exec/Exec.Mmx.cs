using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// MMX and the SSE integer extensions on MMX registers (APM vol. 5 "64-bit media"). MMn is the
/// significand of physical x87 register Rn; every MMX instruction (but EMMS) sets TOP = 0 and tags all
/// registers valid, and a write to MMn sets Rn's sign and exponent to all ones. Availability: #UD with
/// CR0.EM, #NM with CR0.TS, #MF for a pending unmasked x87 exception. The element operations reuse the
/// 128-bit ones on the low quadword (lanes are independent); packs see both sources in one vector and
/// high unpacks take the upper half of the low unpack.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterMmx(HandlerTable t)
    {
        Mmx<And>(t, Code.Pand_mm_mmm64);
        Mmx<AndNot>(t, Code.Pandn_mm_mmm64);
        Mmx<Or>(t, Code.Por_mm_mmm64);
        Mmx<Xor>(t, Code.Pxor_mm_mmm64);
        Mmx<Paddb>(t, Code.Paddb_mm_mmm64);
        Mmx<Paddw>(t, Code.Paddw_mm_mmm64);
        Mmx<Paddd>(t, Code.Paddd_mm_mmm64);
        Mmx<Paddq>(t, Code.Paddq_mm_mmm64);
        Mmx<Psubb>(t, Code.Psubb_mm_mmm64);
        Mmx<Psubw>(t, Code.Psubw_mm_mmm64);
        Mmx<Psubd>(t, Code.Psubd_mm_mmm64);
        Mmx<Psubq>(t, Code.Psubq_mm_mmm64);
        Mmx<Paddsb>(t, Code.Paddsb_mm_mmm64);
        Mmx<Paddsw>(t, Code.Paddsw_mm_mmm64);
        Mmx<Paddusb>(t, Code.Paddusb_mm_mmm64);
        Mmx<Paddusw>(t, Code.Paddusw_mm_mmm64);
        Mmx<Psubsb>(t, Code.Psubsb_mm_mmm64);
        Mmx<Psubsw>(t, Code.Psubsw_mm_mmm64);
        Mmx<Psubusb>(t, Code.Psubusb_mm_mmm64);
        Mmx<Psubusw>(t, Code.Psubusw_mm_mmm64);
        Mmx<Pmullw>(t, Code.Pmullw_mm_mmm64);
        Mmx<Pmulhw>(t, Code.Pmulhw_mm_mmm64);
        Mmx<Pmulhuw>(t, Code.Pmulhuw_mm_mmm64);
        Mmx<Pmuludq>(t, Code.Pmuludq_mm_mmm64);
        Mmx<Pmaddwd>(t, Code.Pmaddwd_mm_mmm64);
        Mmx<Pavgb>(t, Code.Pavgb_mm_mmm64);
        Mmx<Pavgw>(t, Code.Pavgw_mm_mmm64);
        Mmx<Pminub>(t, Code.Pminub_mm_mmm64);
        Mmx<Pmaxub>(t, Code.Pmaxub_mm_mmm64);
        Mmx<Pminsw>(t, Code.Pminsw_mm_mmm64);
        Mmx<Pmaxsw>(t, Code.Pmaxsw_mm_mmm64);
        Mmx<Psadbw>(t, Code.Psadbw_mm_mmm64);
        Mmx<Pcmpeqb>(t, Code.Pcmpeqb_mm_mmm64);
        Mmx<Pcmpeqw>(t, Code.Pcmpeqw_mm_mmm64);
        Mmx<Pcmpeqd>(t, Code.Pcmpeqd_mm_mmm64);
        Mmx<Pcmpgtb>(t, Code.Pcmpgtb_mm_mmm64);
        Mmx<Pcmpgtw>(t, Code.Pcmpgtw_mm_mmm64);
        Mmx<Pcmpgtd>(t, Code.Pcmpgtd_mm_mmm64);
        Mmx<Punpcklbw>(t, Code.Punpcklbw_mm_mmm32);
        Mmx<Punpcklwd>(t, Code.Punpcklwd_mm_mmm32);
        Mmx<Punpckldq>(t, Code.Punpckldq_mm_mmm32);
        t.Add(Code.Punpckhbw_mm_mmm64, &MmxUnpackHigh<Punpcklbw>, CostClass.Sse);
        t.Add(Code.Punpckhwd_mm_mmm64, &MmxUnpackHigh<Punpcklwd>, CostClass.Sse);
        t.Add(Code.Punpckhdq_mm_mmm64, &MmxUnpackHigh<Punpckldq>, CostClass.Sse);
        t.Add(Code.Packsswb_mm_mmm64, &MmxPack<Packsswb>, CostClass.Sse);
        t.Add(Code.Packssdw_mm_mmm64, &MmxPack<Packssdw>, CostClass.Sse);
        t.Add(Code.Packuswb_mm_mmm64, &MmxPack<Packuswb>, CostClass.Sse);

        MmxShift<Psllw>(t, Code.Psllw_mm_mmm64, Code.Psllw_mm_imm8);
        MmxShift<Pslld>(t, Code.Pslld_mm_mmm64, Code.Pslld_mm_imm8);
        MmxShift<Psllq>(t, Code.Psllq_mm_mmm64, Code.Psllq_mm_imm8);
        MmxShift<Psrlw>(t, Code.Psrlw_mm_mmm64, Code.Psrlw_mm_imm8);
        MmxShift<Psrld>(t, Code.Psrld_mm_mmm64, Code.Psrld_mm_imm8);
        MmxShift<Psrlq>(t, Code.Psrlq_mm_mmm64, Code.Psrlq_mm_imm8);
        MmxShift<Psraw>(t, Code.Psraw_mm_mmm64, Code.Psraw_mm_imm8);
        MmxShift<Psrad>(t, Code.Psrad_mm_mmm64, Code.Psrad_mm_imm8);

        t.Add(Code.Movd_mm_rm32, &MovdToMmx, CostClass.Sse);
        t.Add(Code.Movq_mm_rm64, &MovdToMmx, CostClass.Sse);
        t.Add(Code.Movq_mm_mmm64, &MovdToMmx, CostClass.Sse);
        t.Add(Code.Movd_rm32_mm, &MovdFromMmx, CostClass.Sse);
        t.Add(Code.Movq_rm64_mm, &MovdFromMmx, CostClass.Sse);
        t.Add(Code.Movq_mmm64_mm, &MovdFromMmx, CostClass.Sse);
        t.Add(Code.Movntq_m64_mm, &MovdFromMmx, CostClass.Sse);
        t.Add(Code.Movq2dq_xmm_mm, &Movq2dq, CostClass.Sse);
        t.Add(Code.Movdq2q_mm_xmm, &Movdq2q, CostClass.Sse);
        t.Add(Code.Pshufw_mm_mmm64_imm8, &Pshufw, CostClass.Sse);
        t.Add(Code.Pinsrw_mm_r32m16_imm8, &PinsrwMmx, CostClass.Sse);
        t.Add(Code.Pinsrw_mm_r64m16_imm8, &PinsrwMmx, CostClass.Sse);
        t.Add(Code.Pextrw_r32_mm_imm8, &PextrwMmx, CostClass.Sse);
        t.Add(Code.Pextrw_r64_mm_imm8, &PextrwMmx, CostClass.Sse);
        t.Add(Code.Pmovmskb_r32_mm, &PmovmskbMmx, CostClass.Sse);
        t.Add(Code.Pmovmskb_r64_mm, &PmovmskbMmx, CostClass.Sse);
        t.Add(Code.Maskmovq_rDI_mm_mm, &Maskmovq, CostClass.Sse);
        t.Add(Code.Cvtpi2ps_xmm_mmm64, &Cvtpi2ps, CostClass.Sse);
        t.Add(Code.Cvtpi2pd_xmm_mmm64, &Cvtpi2pd, CostClass.Sse);
        t.Add(Code.Cvtps2pi_mm_xmmm64, &Cvtps2pi, CostClass.Sse);
        t.Add(Code.Cvttps2pi_mm_xmmm64, &Cvtps2pi, CostClass.Sse);
        t.Add(Code.Cvtpd2pi_mm_xmmm128, &Cvtpd2pi, CostClass.Sse);
        t.Add(Code.Cvttpd2pi_mm_xmmm128, &Cvtpd2pi, CostClass.Sse);
    }

    private static void Mmx<T>(HandlerTable t, Code code)
        where T : struct, IVecBinary => t.Add(code, &MmxBinary<T>, CostClass.Sse);

    private static void MmxShift<T>(HandlerTable t, Code byReg, Code byImm)
        where T : struct, IVecShift
    {
        t.Add(byReg, &MmxShiftReg<T>, CostClass.Sse);
        t.Add(byImm, &MmxShiftImm<T>, CostClass.Sse);
    }

    /// <summary>Entry checks of an MMX instruction, then the transition to MMX mode (TOP = 0, all tags valid).</summary>
    private static int MmxEnter(Cpu.Cpu c)
    {
        if ((c.Cr0 & Cr0Bits.EM) != 0)
        {
            return c.RaiseUD();
        }

        int st = X87Enter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.FpuTop = 0;
        c.FpuEmpty = 0;
        return ExecStatus.Continue;
    }

    private static ulong Mm(Cpu.Cpu c, int n) => c.Fpr[n].Mantissa;

    private static void SetMm(Cpu.Cpu c, int n, ulong v) => c.Fpr[n] = new Float80(0xFFFF, v);

    /// <summary>Source operand 1: MMX register or memory (8 bytes, or the op's memory size).</summary>
    private static bool MmxSrc(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        if (op.R1 != Reg.NoReg)
        {
            v = Mm(c, op.R1);
            return true;
        }

        return c.ReadMem(op.Seg, c.Ea(ref op), op.MemorySize.GetSize() == 4 ? 4 : 8, out v);
    }

    public static int MmxBinary<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecBinary
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!MmxSrc(c, ref op, out ulong s))
        {
            return ExecStatus.Fault;
        }

        ulong r = T.Apply(Vector128.CreateScalar(Mm(c, op.R0)).AsByte(), Vector128.CreateScalar(s).AsByte()).AsUInt64().ToScalar();
        SetMm(c, op.R0, r);
        return ExecStatus.Continue;
    }

    public static int MmxUnpackHigh<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecBinary
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!MmxSrc(c, ref op, out ulong s))
        {
            return ExecStatus.Fault;
        }

        ulong r = T.Apply(Vector128.CreateScalar(Mm(c, op.R0)).AsByte(), Vector128.CreateScalar(s).AsByte()).AsUInt64().GetElement(1);
        SetMm(c, op.R0, r);
        return ExecStatus.Continue;
    }

    public static int MmxPack<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecBinary
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!MmxSrc(c, ref op, out ulong s))
        {
            return ExecStatus.Fault;
        }

        ulong r = T.Apply(Vector128.Create(Mm(c, op.R0), s).AsByte(), Vector128<byte>.Zero).AsUInt64().ToScalar();
        SetMm(c, op.R0, r);
        return ExecStatus.Continue;
    }

    public static int MmxShiftReg<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecShift
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!MmxSrc(c, ref op, out ulong n))
        {
            return ExecStatus.Fault;
        }

        SetMm(c, op.R0, T.Apply(Vector128.CreateScalar(Mm(c, op.R0)).AsByte(), Vector128.CreateScalar(n).AsByte()).AsUInt64().ToScalar());
        return ExecStatus.Continue;
    }

    public static int MmxShiftImm<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecShift
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        SetMm(c, op.R0, T.Apply(Vector128.CreateScalar(Mm(c, op.R0)).AsByte(), Vector128.CreateScalar(op.Imm & 0xFF).AsByte()).AsUInt64().ToScalar());
        return ExecStatus.Continue;
    }

    /// <summary>MOVD/MOVQ mm, r/m32/64 and MOVQ mm, mm/m64 (32-bit sources zero-extend).</summary>
    public static int MovdToMmx(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong v;
        if (op.Code == Code.Movq_mm_mmm64)
        {
            if (!MmxSrc(c, ref op, out v))
            {
                return ExecStatus.Fault;
            }
        }
        else
        {
            int size = op.Code == Code.Movd_mm_rm32 ? 4 : 8;
            if (op.R1 != Reg.NoReg)
            {
                v = c.GetReg(op.R1, size);
            }
            else if (!c.ReadMem(op.Seg, c.Ea(ref op), size, out v))
            {
                return ExecStatus.Fault;
            }
        }

        SetMm(c, op.R0, v);
        return ExecStatus.Continue;
    }

    /// <summary>MOVD/MOVQ r/m32/64, mm; MOVQ mm/m64, mm; MOVNTQ m64, mm.</summary>
    public static int MovdFromMmx(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong v = Mm(c, op.R1);
        if (op.Code == Code.Movd_rm32_mm)
        {
            v = (uint)v;
        }

        if (op.R0 != Reg.NoReg)
        {
            if (op.Code == Code.Movq_mmm64_mm)
            {
                SetMm(c, op.R0, v);
            }
            else
            {
                c.SetReg(op.R0, op.Code == Code.Movd_rm32_mm ? 4 : 8, v);
            }

            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), op.Code == Code.Movd_rm32_mm ? 4 : 8, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>MOVQ2DQ xmm, mm: the MMX register zero-extended into the XMM register (SSE2: also needs OSFXSR).</summary>
    public static int Movq2dq(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X(c, op.R0) = Vector128.CreateScalar(Mm(c, op.R1)).AsByte();
        return ExecStatus.Continue;
    }

    public static int Movdq2q(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        SetMm(c, op.R0, X(c, op.R1).AsUInt64().ToScalar());
        return ExecStatus.Continue;
    }

    public static int Pshufw(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!MmxSrc(c, ref op, out ulong s))
        {
            return ExecStatus.Fault;
        }

        int imm = (int)op.Imm;
        ulong r = 0;
        for (int i = 0; i < 4; i++)
        {
            r |= ((s >> (((imm >> (i * 2)) & 3) * 16)) & 0xFFFF) << (i * 16);
        }

        SetMm(c, op.R0, r);
        return ExecStatus.Continue;
    }

    public static int PinsrwMmx(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong v;
        if (op.R1 != Reg.NoReg)
        {
            v = c.Gpr[op.R1];
        }
        else if (!c.ReadMem(op.Seg, c.Ea(ref op), 2, out v))
        {
            return ExecStatus.Fault;
        }

        int sh = (int)(op.Imm & 3) * 16;
        SetMm(c, op.R0, (Mm(c, op.R0) & ~(0xFFFFUL << sh)) | ((v & 0xFFFF) << sh));
        return ExecStatus.Continue;
    }

    public static int PextrwMmx(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.Gpr[op.R0] = (Mm(c, op.R1) >> ((int)(op.Imm & 3) * 16)) & 0xFFFF;
        return ExecStatus.Continue;
    }

    public static int PmovmskbMmx(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.Gpr[op.R0] = Vector128.CreateScalar(Mm(c, op.R1)).AsByte().ExtractMostSignificantBits() & 0xFF;
        return ExecStatus.Continue;
    }

    /// <summary>MASKMOVQ: stores the bytes of mm1 whose mask byte (mm2) has its top bit set, at DS:rDI.</summary>
    public static int Maskmovq(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong data = Mm(c, op.R1);
        uint mask = Vector128.CreateScalar(Mm(c, op.R2)).AsByte().ExtractMostSignificantBits() & 0xFF;
        if (mask == 0)
        {
            return ExecStatus.Continue;
        }

        ulong di = MaskToSize(c.Gpr[Reg.RDI], op.AddrSize);
        if (!ProbeWrite(c, op.Seg, di, 8))
        {
            return ExecStatus.Fault;
        }

        for (int i = 0; i < 8; i++)
        {
            if ((mask & (1u << i)) != 0 && !c.WriteMem(op.Seg, di + (ulong)i, 1, data >> (i * 8)))
            {
                return ExecStatus.Fault;
            }
        }

        return ExecStatus.Continue;
    }

    // ---- Conversions between MMX integers and SSE floats (an MMX register operand makes the MMX transition) ----

    /// <summary>Packed int32 source of CVTPI2PS/PD: an MMX register (with the MMX transition) or m64.</summary>
    private static int PackedIntSource(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        v = 0;
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (op.R1 != Reg.NoReg)
        {
            int st = MmxEnter(c);
            if (st != ExecStatus.Continue)
            {
                return st;
            }

            v = Mm(c, op.R1);
            return ExecStatus.Continue;
        }

        return c.ReadMem(op.Seg, c.Ea(ref op), 8, out v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>CVTPI2PS: two int32 → two singles in the low quadword (MXCSR rounding); the upper quadword is kept.</summary>
    public static int Cvtpi2ps(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = PackedIntSource(c, ref op, out ulong v);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        uint flags = 0, mx = c.Mxcsr;
        float r0 = SimdFp.FromInt<float>((int)(uint)v, mx, ref flags);
        float r1 = SimdFp.FromInt<float>((int)(uint)(v >> 32), mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsSingle().WithElement(0, r0).WithElement(1, r1).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>CVTPI2PD: two int32 → two doubles (exact).</summary>
    public static int Cvtpi2pd(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = PackedIntSource(c, ref op, out ulong v);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        X(c, op.R0) = Vector128.Create((double)(int)(uint)v, (int)(uint)(v >> 32)).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>CVT(T)PS2PI mm, xmm/m64: two singles → two int32 (indefinite 0x80000000 on NaN/overflow).</summary>
    public static int Cvtps2pi(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong s))
        {
            return ExecStatus.Fault;
        }

        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        uint flags = 0, mx = c.Mxcsr;
        int rc = op.Code == Code.Cvttps2pi_mm_xmmm64 ? 3 : c.SseRc;
        long r0 = SimdFp.ToInt(BitConverter.UInt32BitsToSingle((uint)s), 32, rc, mx, ref flags);
        long r1 = SimdFp.ToInt(BitConverter.UInt32BitsToSingle((uint)(s >> 32)), 32, rc, mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        SetMm(c, op.R0, (uint)r0 | ((ulong)(uint)r1 << 32));
        return ExecStatus.Continue;
    }

    /// <summary>CVT(T)PD2PI mm, xmm/m128: two doubles → two int32.</summary>
    public static int Cvtpd2pi(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> sv))
        {
            return ExecStatus.Fault;
        }

        int st = MmxEnter(c);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        uint flags = 0, mx = c.Mxcsr;
        int rc = op.Code == Code.Cvttpd2pi_mm_xmmm128 ? 3 : c.SseRc;
        Vector128<double> s = sv.AsDouble();
        long r0 = SimdFp.ToInt(s.GetElement(0), 32, rc, mx, ref flags);
        long r1 = SimdFp.ToInt(s.GetElement(1), 32, rc, mx, ref flags);
        if (!SimdFlags(c, flags))
        {
            return ExecStatus.Fault;
        }

        SetMm(c, op.R0, (uint)r0 | ((ulong)(uint)r1 << 32));
        return ExecStatus.Continue;
    }
}
