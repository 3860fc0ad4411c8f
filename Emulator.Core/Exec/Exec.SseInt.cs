using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>An element-wise "xmm ← op(xmm, xmm/m128)" operation (specialized per struct, no virtual call).</summary>
public interface IVecBinary
{
    static abstract Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s);
}

/// <summary>A shift of the destination by a count held in the low quadword of a vector.</summary>
public interface IVecShift
{
    static abstract Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> count);
}

/// <summary>
/// SSE2 packed-integer, bitwise, shuffle and unpack instructions (APM vol. 4). The results come from
/// the host's own SSE2 instructions (System.Runtime.Intrinsics.X86.Sse2): the host is an x86-64, so
/// it is the reference implementation, bit for bit.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSseInt(HandlerTable t)
    {
        // Bitwise (the PS/PD forms are bitwise too).
        Bin<And>(t, Code.Andps_xmm_xmmm128, Code.Andpd_xmm_xmmm128, Code.Pand_xmm_xmmm128);
        Bin<AndNot>(t, Code.Andnps_xmm_xmmm128, Code.Andnpd_xmm_xmmm128, Code.Pandn_xmm_xmmm128);
        Bin<Or>(t, Code.Orps_xmm_xmmm128, Code.Orpd_xmm_xmmm128, Code.Por_xmm_xmmm128);
        Bin<Xor>(t, Code.Xorps_xmm_xmmm128, Code.Xorpd_xmm_xmmm128, Code.Pxor_xmm_xmmm128);

        Bin<Paddb>(t, Code.Paddb_xmm_xmmm128);
        Bin<Paddw>(t, Code.Paddw_xmm_xmmm128);
        Bin<Paddd>(t, Code.Paddd_xmm_xmmm128);
        Bin<Paddq>(t, Code.Paddq_xmm_xmmm128);
        Bin<Psubb>(t, Code.Psubb_xmm_xmmm128);
        Bin<Psubw>(t, Code.Psubw_xmm_xmmm128);
        Bin<Psubd>(t, Code.Psubd_xmm_xmmm128);
        Bin<Psubq>(t, Code.Psubq_xmm_xmmm128);
        Bin<Paddsb>(t, Code.Paddsb_xmm_xmmm128);
        Bin<Paddsw>(t, Code.Paddsw_xmm_xmmm128);
        Bin<Paddusb>(t, Code.Paddusb_xmm_xmmm128);
        Bin<Paddusw>(t, Code.Paddusw_xmm_xmmm128);
        Bin<Psubsb>(t, Code.Psubsb_xmm_xmmm128);
        Bin<Psubsw>(t, Code.Psubsw_xmm_xmmm128);
        Bin<Psubusb>(t, Code.Psubusb_xmm_xmmm128);
        Bin<Psubusw>(t, Code.Psubusw_xmm_xmmm128);
        Bin<Pmullw>(t, Code.Pmullw_xmm_xmmm128);
        Bin<Pmulhw>(t, Code.Pmulhw_xmm_xmmm128);
        Bin<Pmulhuw>(t, Code.Pmulhuw_xmm_xmmm128);
        Bin<Pmuludq>(t, Code.Pmuludq_xmm_xmmm128);
        Bin<Pmaddwd>(t, Code.Pmaddwd_xmm_xmmm128);
        Bin<Pavgb>(t, Code.Pavgb_xmm_xmmm128);
        Bin<Pavgw>(t, Code.Pavgw_xmm_xmmm128);
        Bin<Pminub>(t, Code.Pminub_xmm_xmmm128);
        Bin<Pmaxub>(t, Code.Pmaxub_xmm_xmmm128);
        Bin<Pminsw>(t, Code.Pminsw_xmm_xmmm128);
        Bin<Pmaxsw>(t, Code.Pmaxsw_xmm_xmmm128);
        Bin<Psadbw>(t, Code.Psadbw_xmm_xmmm128);
        Bin<Pcmpeqb>(t, Code.Pcmpeqb_xmm_xmmm128);
        Bin<Pcmpeqw>(t, Code.Pcmpeqw_xmm_xmmm128);
        Bin<Pcmpeqd>(t, Code.Pcmpeqd_xmm_xmmm128);
        Bin<Pcmpgtb>(t, Code.Pcmpgtb_xmm_xmmm128);
        Bin<Pcmpgtw>(t, Code.Pcmpgtw_xmm_xmmm128);
        Bin<Pcmpgtd>(t, Code.Pcmpgtd_xmm_xmmm128);
        Bin<Packsswb>(t, Code.Packsswb_xmm_xmmm128);
        Bin<Packssdw>(t, Code.Packssdw_xmm_xmmm128);
        Bin<Packuswb>(t, Code.Packuswb_xmm_xmmm128);
        Bin<Punpcklbw>(t, Code.Punpcklbw_xmm_xmmm128);
        Bin<Punpcklwd>(t, Code.Punpcklwd_xmm_xmmm128);
        Bin<Punpckldq>(t, Code.Punpckldq_xmm_xmmm128, Code.Unpcklps_xmm_xmmm128);
        Bin<Punpcklqdq>(t, Code.Punpcklqdq_xmm_xmmm128, Code.Unpcklpd_xmm_xmmm128);
        Bin<Punpckhbw>(t, Code.Punpckhbw_xmm_xmmm128);
        Bin<Punpckhwd>(t, Code.Punpckhwd_xmm_xmmm128);
        Bin<Punpckhdq>(t, Code.Punpckhdq_xmm_xmmm128, Code.Unpckhps_xmm_xmmm128);
        Bin<Punpckhqdq>(t, Code.Punpckhqdq_xmm_xmmm128, Code.Unpckhpd_xmm_xmmm128);

        Shift<Psllw>(t, Code.Psllw_xmm_xmmm128, Code.Psllw_xmm_imm8);
        Shift<Pslld>(t, Code.Pslld_xmm_xmmm128, Code.Pslld_xmm_imm8);
        Shift<Psllq>(t, Code.Psllq_xmm_xmmm128, Code.Psllq_xmm_imm8);
        Shift<Psrlw>(t, Code.Psrlw_xmm_xmmm128, Code.Psrlw_xmm_imm8);
        Shift<Psrld>(t, Code.Psrld_xmm_xmmm128, Code.Psrld_xmm_imm8);
        Shift<Psrlq>(t, Code.Psrlq_xmm_xmmm128, Code.Psrlq_xmm_imm8);
        Shift<Psraw>(t, Code.Psraw_xmm_xmmm128, Code.Psraw_xmm_imm8);
        Shift<Psrad>(t, Code.Psrad_xmm_xmmm128, Code.Psrad_xmm_imm8);
        t.Add(Code.Pslldq_xmm_imm8, &Pslldq, CostClass.Sse);
        t.Add(Code.Psrldq_xmm_imm8, &Psrldq, CostClass.Sse);

        t.Add(Code.Pshufd_xmm_xmmm128_imm8, &Pshufd, CostClass.Sse);
        t.Add(Code.Pshuflw_xmm_xmmm128_imm8, &Pshuflw, CostClass.Sse);
        t.Add(Code.Pshufhw_xmm_xmmm128_imm8, &Pshufhw, CostClass.Sse);
        t.Add(Code.Shufps_xmm_xmmm128_imm8, &Shufps, CostClass.Sse);
        t.Add(Code.Shufpd_xmm_xmmm128_imm8, &Shufpd, CostClass.Sse);
        t.Add(Code.Pinsrw_xmm_r32m16_imm8, &Pinsrw, CostClass.Sse);
        t.Add(Code.Pinsrw_xmm_r64m16_imm8, &Pinsrw, CostClass.Sse);
        t.Add(Code.Pextrw_r32_xmm_imm8, &Pextrw, CostClass.Sse);
        t.Add(Code.Pextrw_r64_xmm_imm8, &Pextrw, CostClass.Sse);
    }

    private static void Bin<T>(HandlerTable t, params ReadOnlySpan<Code> codes)
        where T : struct, IVecBinary
    {
        foreach (Code code in codes)
        {
            t.Add(code, &VecBinary<T>, CostClass.Sse);
        }
    }

    private static void Shift<T>(HandlerTable t, Code byVector, Code byImm)
        where T : struct, IVecShift
    {
        t.Add(byVector, &VecShiftVector<T>, CostClass.Sse);
        t.Add(byImm, &VecShiftImm<T>, CostClass.Sse);
    }

    /// <summary>xmm ← T(xmm, xmm/m128); the memory operand must be 16-byte aligned.</summary>
    public static int VecBinary<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecBinary
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = T.Apply(d, s);
        return ExecStatus.Continue;
    }

    public static int VecShiftVector<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecShift
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = T.Apply(d, s);
        return ExecStatus.Continue;
    }

    public static int VecShiftImm<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IVecShift
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = T.Apply(d, Vector128.CreateScalar(op.Imm & 0xFF).AsByte());
        return ExecStatus.Continue;
    }

    /// <summary>PSLLDQ: byte shift left of the whole register; counts above 15 clear it.</summary>
    public static int Pslldq(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        int n = (int)(op.Imm & 0xFF);
        ref Vector128<byte> d = ref X(c, op.R0);
        Vector128<byte> v = d;
        Vector128<byte> r = default;
        for (int i = n; i < 16; i++)
        {
            r = r.WithElement(i, v.GetElement(i - n));
        }

        d = r;
        return ExecStatus.Continue;
    }

    /// <summary>PSRLDQ: byte shift right of the whole register.</summary>
    public static int Psrldq(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        int n = (int)(op.Imm & 0xFF);
        ref Vector128<byte> d = ref X(c, op.R0);
        Vector128<byte> v = d;
        Vector128<byte> r = default;
        for (int i = 0; i + n < 16; i++)
        {
            r = r.WithElement(i, v.GetElement(i + n));
        }

        d = r;
        return ExecStatus.Continue;
    }

    public static int Pshufd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        // Each 2-bit field of imm8 picks a source doubleword: one host shuffle by those four indices.
        uint imm = (uint)op.Imm;
        var picks = Vector128.Create(imm, imm >> 2, imm >> 4, imm >> 6) & Vector128.Create(3u);
        X(c, op.R0) = Vector128.Shuffle(s.AsUInt32(), picks).AsByte();
        return ExecStatus.Continue;
    }

    private static int ShuffleWords(Cpu.Cpu c, ref DecodedOp op, int baseWord)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        int imm = (int)op.Imm;
        Vector128<ushort> v = s.AsUInt16();
        Vector128<ushort> r = v;
        for (int i = 0; i < 4; i++)
        {
            r = r.WithElement(baseWord + i, v.GetElement(baseWord + ((imm >> (i * 2)) & 3)));
        }

        X(c, op.R0) = r.AsByte();
        return ExecStatus.Continue;
    }

    public static int Pshuflw(Cpu.Cpu c, ref DecodedOp op) => ShuffleWords(c, ref op, 0);

    public static int Pshufhw(Cpu.Cpu c, ref DecodedOp op) => ShuffleWords(c, ref op, 4);

    /// <summary>SHUFPS: low two elements from the destination, high two from the source, selected by imm8.</summary>
    public static int Shufps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        int imm = (int)op.Imm;
        ref Vector128<byte> dr = ref X(c, op.R0);
        Vector128<uint> d = dr.AsUInt32(), v = s.AsUInt32();
        dr = Vector128.Create(d.GetElement(imm & 3), d.GetElement((imm >> 2) & 3), v.GetElement((imm >> 4) & 3), v.GetElement((imm >> 6) & 3)).AsByte();
        return ExecStatus.Continue;
    }

    public static int Shufpd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> s))
        {
            return ExecStatus.Fault;
        }

        int imm = (int)op.Imm;
        ref Vector128<byte> dr = ref X(c, op.R0);
        Vector128<ulong> d = dr.AsUInt64(), v = s.AsUInt64();
        dr = Vector128.Create(d.GetElement(imm & 1), v.GetElement((imm >> 1) & 1)).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>PINSRW xmm, r32/m16, imm8: word (imm & 7) ← the low word of the source.</summary>
    public static int Pinsrw(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
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

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsUInt16().WithElement((int)(op.Imm & 7), (ushort)v).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>PEXTRW r32, xmm, imm8: zero-extended word (imm & 7).</summary>
    public static int Pextrw(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        c.Gpr[op.R0] = X(c, op.R1).AsUInt16().GetElement((int)(op.Imm & 7));
        return ExecStatus.Continue;
    }

    // ---- Operations (one struct per instruction; the host SSE2 instruction of the same name) ----

    private struct And : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => d & s; }

    /// <summary>ANDN: destination ← NOT destination AND source.</summary>
    private struct AndNot : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Vector128.AndNot(s, d); }

    private struct Or : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => d | s; }

    private struct Xor : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => d ^ s; }

    private struct Paddb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Add(d, s); }

    private struct Paddw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Add(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Paddd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Add(d.AsUInt32(), s.AsUInt32()).AsByte(); }

    private struct Paddq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Add(d.AsUInt64(), s.AsUInt64()).AsByte(); }

    private struct Psubb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Subtract(d, s); }

    private struct Psubw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Subtract(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Psubd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Subtract(d.AsUInt32(), s.AsUInt32()).AsByte(); }

    private struct Psubq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Subtract(d.AsUInt64(), s.AsUInt64()).AsByte(); }

    private struct Paddsb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.AddSaturate(d.AsSByte(), s.AsSByte()).AsByte(); }

    private struct Paddsw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.AddSaturate(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Paddusb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.AddSaturate(d, s); }

    private struct Paddusw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.AddSaturate(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Psubsb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.SubtractSaturate(d.AsSByte(), s.AsSByte()).AsByte(); }

    private struct Psubsw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.SubtractSaturate(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Psubusb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.SubtractSaturate(d, s); }

    private struct Psubusw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.SubtractSaturate(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Pmullw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.MultiplyLow(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Pmulhw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.MultiplyHigh(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Pmulhuw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.MultiplyHigh(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Pmuludq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Multiply(d.AsUInt32(), s.AsUInt32()).AsByte(); }

    private struct Pmaddwd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.MultiplyAddAdjacent(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Pavgb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Average(d, s); }

    private struct Pavgw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Average(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Pminub : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Min(d, s); }

    private struct Pmaxub : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Max(d, s); }

    private struct Pminsw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Min(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Pmaxsw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.Max(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Psadbw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.SumAbsoluteDifferences(d, s).AsByte(); }

    private struct Pcmpeqb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.CompareEqual(d, s); }

    private struct Pcmpeqw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.CompareEqual(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Pcmpeqd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.CompareEqual(d.AsUInt32(), s.AsUInt32()).AsByte(); }

    private struct Pcmpgtb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.CompareGreaterThan(d.AsSByte(), s.AsSByte()).AsByte(); }

    private struct Pcmpgtw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.CompareGreaterThan(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Pcmpgtd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.CompareGreaterThan(d.AsInt32(), s.AsInt32()).AsByte(); }

    private struct Packsswb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.PackSignedSaturate(d.AsInt16(), s.AsInt16()).AsByte(); }

    private struct Packssdw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.PackSignedSaturate(d.AsInt32(), s.AsInt32()).AsByte(); }

    private struct Packuswb : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.PackUnsignedSaturate(d.AsInt16(), s.AsInt16()); }

    private struct Punpcklbw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackLow(d, s); }

    private struct Punpcklwd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackLow(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Punpckldq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackLow(d.AsUInt32(), s.AsUInt32()).AsByte(); }

    private struct Punpcklqdq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackLow(d.AsUInt64(), s.AsUInt64()).AsByte(); }

    private struct Punpckhbw : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackHigh(d, s); }

    private struct Punpckhwd : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackHigh(d.AsUInt16(), s.AsUInt16()).AsByte(); }

    private struct Punpckhdq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackHigh(d.AsUInt32(), s.AsUInt32()).AsByte(); }

    private struct Punpckhqdq : IVecBinary { public static Vector128<byte> Apply(Vector128<byte> d, Vector128<byte> s) => Sse2.UnpackHigh(d.AsUInt64(), s.AsUInt64()).AsByte(); }

    private struct Psllw : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftLeftLogical(v.AsUInt16(), n.AsUInt16()).AsByte(); }

    private struct Pslld : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftLeftLogical(v.AsUInt32(), n.AsUInt32()).AsByte(); }

    private struct Psllq : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftLeftLogical(v.AsUInt64(), n.AsUInt64()).AsByte(); }

    private struct Psrlw : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftRightLogical(v.AsUInt16(), n.AsUInt16()).AsByte(); }

    private struct Psrld : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftRightLogical(v.AsUInt32(), n.AsUInt32()).AsByte(); }

    private struct Psrlq : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftRightLogical(v.AsUInt64(), n.AsUInt64()).AsByte(); }

    private struct Psraw : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftRightArithmetic(v.AsInt16(), n.AsInt16()).AsByte(); }

    private struct Psrad : IVecShift { public static Vector128<byte> Apply(Vector128<byte> v, Vector128<byte> n) => Sse2.ShiftRightArithmetic(v.AsInt32(), n.AsInt32()).AsByte(); }
}
