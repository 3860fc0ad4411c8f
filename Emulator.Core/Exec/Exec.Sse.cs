using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// SSE/SSE2 (APM vol. 4): availability rules, XMM/memory operand access, data movement and MXCSR.
/// Arithmetic lives in Exec.SseInt.cs, Exec.SseFloat.cs and Exec.SseConvert.cs; FXSAVE/FXRSTOR in Exec.FxSave.cs.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSse(HandlerTable t)
    {
        // Aligned loads and stores (#GP on a misaligned memory operand).
        t.Add(Code.Movaps_xmm_xmmm128, &MovLoadAligned, CostClass.Sse);
        t.Add(Code.Movapd_xmm_xmmm128, &MovLoadAligned, CostClass.Sse);
        t.Add(Code.Movdqa_xmm_xmmm128, &MovLoadAligned, CostClass.Sse);
        t.Add(Code.Movaps_xmmm128_xmm, &MovStoreAligned, CostClass.Sse);
        t.Add(Code.Movapd_xmmm128_xmm, &MovStoreAligned, CostClass.Sse);
        t.Add(Code.Movdqa_xmmm128_xmm, &MovStoreAligned, CostClass.Sse);
        t.Add(Code.Movntps_m128_xmm, &MovStoreAligned, CostClass.Sse);
        t.Add(Code.Movntpd_m128_xmm, &MovStoreAligned, CostClass.Sse);
        t.Add(Code.Movntdq_m128_xmm, &MovStoreAligned, CostClass.Sse);

        // Unaligned.
        t.Add(Code.Movups_xmm_xmmm128, &MovLoadUnaligned, CostClass.Sse);
        t.Add(Code.Movupd_xmm_xmmm128, &MovLoadUnaligned, CostClass.Sse);
        t.Add(Code.Movdqu_xmm_xmmm128, &MovLoadUnaligned, CostClass.Sse);
        t.Add(Code.Movups_xmmm128_xmm, &MovStoreUnaligned, CostClass.Sse);
        t.Add(Code.Movupd_xmmm128_xmm, &MovStoreUnaligned, CostClass.Sse);
        t.Add(Code.Movdqu_xmmm128_xmm, &MovStoreUnaligned, CostClass.Sse);

        t.Add(Code.Movss_xmm_xmmm32, &MovssLoad, CostClass.Sse);
        t.Add(Code.Movss_xmmm32_xmm, &MovssStore, CostClass.Sse);
        t.Add(Code.Movsd_xmm_xmmm64, &MovsdLoad, CostClass.Sse);
        t.Add(Code.Movsd_xmmm64_xmm, &MovsdStore, CostClass.Sse);

        t.Add(Code.Movd_xmm_rm32, &MovdToXmm, CostClass.Sse);
        t.Add(Code.Movq_xmm_rm64, &MovdToXmm, CostClass.Sse);
        t.Add(Code.Movd_rm32_xmm, &MovdFromXmm, CostClass.Sse);
        t.Add(Code.Movq_rm64_xmm, &MovdFromXmm, CostClass.Sse);
        t.Add(Code.Movq_xmm_xmmm64, &MovqLoad, CostClass.Sse);
        t.Add(Code.Movq_xmmm64_xmm, &MovqStore, CostClass.Sse);

        t.Add(Code.Movlps_xmm_m64, &MovlpLoad, CostClass.Sse);
        t.Add(Code.Movlpd_xmm_m64, &MovlpLoad, CostClass.Sse);
        t.Add(Code.Movhps_xmm_m64, &MovhpLoad, CostClass.Sse);
        t.Add(Code.Movhpd_xmm_m64, &MovhpLoad, CostClass.Sse);
        t.Add(Code.Movlps_m64_xmm, &MovlpStore, CostClass.Sse);
        t.Add(Code.Movlpd_m64_xmm, &MovlpStore, CostClass.Sse);
        t.Add(Code.Movhps_m64_xmm, &MovhpStore, CostClass.Sse);
        t.Add(Code.Movhpd_m64_xmm, &MovhpStore, CostClass.Sse);
        t.Add(Code.Movhlps_xmm_xmm, &Movhlps, CostClass.Sse);
        t.Add(Code.Movlhps_xmm_xmm, &Movlhps, CostClass.Sse);

        t.Add(Code.Movmskps_r32_xmm, &Movmskps, CostClass.Sse);
        t.Add(Code.Movmskps_r64_xmm, &Movmskps, CostClass.Sse);
        t.Add(Code.Movmskpd_r32_xmm, &Movmskpd, CostClass.Sse);
        t.Add(Code.Movmskpd_r64_xmm, &Movmskpd, CostClass.Sse);
        t.Add(Code.Pmovmskb_r32_xmm, &Pmovmskb, CostClass.Sse);
        t.Add(Code.Pmovmskb_r64_xmm, &Pmovmskb, CostClass.Sse);
        t.Add(Code.Movnti_m32_r32, &Movnti, CostClass.Memory);
        t.Add(Code.Movnti_m64_r64, &Movnti, CostClass.Memory);
        t.Add(Code.Maskmovdqu_rDI_xmm_xmm, &Maskmovdqu, CostClass.Sse);

        t.Add(Code.Ldmxcsr_m32, &Ldmxcsr, CostClass.Sse);
        t.Add(Code.Stmxcsr_m32, &Stmxcsr, CostClass.Sse);

        RegisterSseInt(t);
        RegisterSseFloat(t);
        RegisterSseConvert(t);
        RegisterFxSave(t);
        RegisterMmx(t);
    }

    // ---- Availability (APM vol. 4 §"Exceptions" tables, vol. 2 §11.3) ----

    /// <summary>True when SSE instructions may run: CR0.EM = 0, CR0.TS = 0, CR4.OSFXSR = 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SseUsable(Cpu.Cpu c) => (c.Cr0 & (Cr0Bits.EM | Cr0Bits.TS)) == 0 && (c.Cr4 & Cr4Bits.OSFXSR) != 0;

    /// <summary>The fault an unusable SSE instruction takes: #UD for EM=1 or OSFXSR=0 (checked first), else #NM for TS=1.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int SseUnusable(Cpu.Cpu c) =>
        (c.Cr0 & Cr0Bits.EM) != 0 || (c.Cr4 & Cr4Bits.OSFXSR) == 0 ? c.RaiseUD() : c.RaiseNM();

    /// <summary>
    /// Records SIMD floating-point exception flags in MXCSR. An unmasked one faults (#XM with
    /// CR4.OSXMMEXCPT, else #UD; APM vol. 4 §"SIMD floating-point exceptions"): the caller then leaves the
    /// destination unchanged. Returns false when it raised.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SimdFlags(Cpu.Cpu c, uint flags)
    {
        if (flags == 0)
        {
            return true;
        }

        c.Mxcsr |= flags;
        uint unmasked = flags & ~(c.Mxcsr >> MxcsrBits.MaskShift) & FpFlags.All;
        if (unmasked == 0)
        {
            return true;
        }

        if ((c.Cr4 & Cr4Bits.OSXMMEXCPT) != 0)
        {
            c.Raise(Vector.XF);
        }
        else
        {
            c.RaiseUD();
        }

        return false;
    }

    // ---- Operand access ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref Vector128<byte> X(Cpu.Cpu c, int r) => ref c.Xmm[r];

    /// <summary>Reads 16 bytes; <paramref name="aligned"/> forms take #GP(0) on a linear address not 16-byte aligned.</summary>
    public static bool ReadM128(Cpu.Cpu c, int seg, ulong off, bool aligned, out Vector128<byte> v)
    {
        v = default;
        if (aligned)
        {
            if (!c.Linear(seg, off, 16, Access.Read, out ulong lin))
            {
                return false;
            }

            if ((lin & 15) != 0)
            {
                c.RaiseGP(0);
                return false;
            }
        }

        if (!c.ReadMem(seg, off, 8, out ulong lo) || !c.ReadMem(seg, off + 8, 8, out ulong hi))
        {
            return false;
        }

        v = Vector128.Create(lo, hi).AsByte();
        return true;
    }

    /// <summary>Writes 16 bytes with no partial store on a fault: the upper half is probed for write first.</summary>
    public static bool WriteM128(Cpu.Cpu c, int seg, ulong off, bool aligned, Vector128<byte> v)
    {
        if (!c.Linear(seg, off, 16, Access.Write, out ulong lin))
        {
            return false;
        }

        if (aligned && (lin & 15) != 0)
        {
            c.RaiseGP(0);
            return false;
        }

        Vector128<ulong> q = v.AsUInt64();
        return c.ReadMemForWrite(seg, off + 8, 8, out _)
            && c.WriteMem(seg, off, 8, q.GetElement(0))
            && c.WriteMem(seg, off + 8, 8, q.GetElement(1));
    }

    /// <summary>Checks that [off, off+len) is writable (segment limit and both pages) before a multi-part store.</summary>
    public static bool ProbeWrite(Cpu.Cpu c, int seg, ulong off, int len) =>
        c.Linear(seg, off, len, Access.Write, out _)
        && c.ReadMemForWrite(seg, off, 1, out _)
        && c.ReadMemForWrite(seg, off + (ulong)len - 1, 1, out _);

    /// <summary>Source operand 1 of an "xmm, xmm/m128" form.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Src128(Cpu.Cpu c, ref DecodedOp op, bool aligned, out Vector128<byte> v)
    {
        if (op.R1 != Reg.NoReg)
        {
            v = c.Xmm[op.R1];
            return true;
        }

        return ReadM128(c, op.Seg, c.Ea(ref op), aligned, out v);
    }

    /// <summary>Source operand 1 of an "xmm, xmm/m64" or "xmm, xmm/m32" form: the low <paramref name="size"/> bytes, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SrcLow(Cpu.Cpu c, ref DecodedOp op, int size, out ulong v)
    {
        if (op.R1 != Reg.NoReg)
        {
            ulong x = c.Xmm[op.R1].AsUInt64().ToScalar();
            v = size == 8 ? x : (uint)x;
            return true;
        }

        return c.ReadMem(op.Seg, c.Ea(ref op), size, out v);
    }

    // ---- Moves ----

    public static int MovLoadAligned(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, true, out Vector128<byte> v))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = v;
        return ExecStatus.Continue;
    }

    public static int MovLoadUnaligned(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!Src128(c, ref op, false, out Vector128<byte> v))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = v;
        return ExecStatus.Continue;
    }

    private static int MovStore(Cpu.Cpu c, ref DecodedOp op, bool aligned)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        Vector128<byte> v = X(c, op.R1);
        if (op.R0 != Reg.NoReg)
        {
            X(c, op.R0) = v;
            return ExecStatus.Continue;
        }

        return WriteM128(c, op.Seg, c.Ea(ref op), aligned, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    public static int MovStoreAligned(Cpu.Cpu c, ref DecodedOp op) => MovStore(c, ref op, true);

    public static int MovStoreUnaligned(Cpu.Cpu c, ref DecodedOp op) => MovStore(c, ref op, false);

    /// <summary>MOVSS/MOVSD load: register source merges the low element; memory source zeroes the rest.</summary>
    private static int MovScalarLoad(Cpu.Cpu c, ref DecodedOp op, int size)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        if (op.R1 != Reg.NoReg)
        {
            Vector128<byte> s = X(c, op.R1);
            d = size == 4
                ? d.AsUInt32().WithElement(0, s.AsUInt32().ToScalar()).AsByte()
                : d.AsUInt64().WithElement(0, s.AsUInt64().ToScalar()).AsByte();
            return ExecStatus.Continue;
        }

        if (!c.ReadMem(op.Seg, c.Ea(ref op), size, out ulong v))
        {
            return ExecStatus.Fault;
        }

        d = Vector128.CreateScalar(v).AsByte();
        return ExecStatus.Continue;
    }

    private static int MovScalarStore(Cpu.Cpu c, ref DecodedOp op, int size)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        Vector128<byte> s = X(c, op.R1);
        if (op.R0 != Reg.NoReg)
        {
            ref Vector128<byte> d = ref X(c, op.R0);
            d = size == 4
                ? d.AsUInt32().WithElement(0, s.AsUInt32().ToScalar()).AsByte()
                : d.AsUInt64().WithElement(0, s.AsUInt64().ToScalar()).AsByte();
            return ExecStatus.Continue;
        }

        ulong v = s.AsUInt64().ToScalar();
        return c.WriteMem(op.Seg, c.Ea(ref op), size, size == 4 ? (uint)v : v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    public static int MovssLoad(Cpu.Cpu c, ref DecodedOp op) => MovScalarLoad(c, ref op, 4);

    public static int MovsdLoad(Cpu.Cpu c, ref DecodedOp op) => MovScalarLoad(c, ref op, 8);

    public static int MovssStore(Cpu.Cpu c, ref DecodedOp op) => MovScalarStore(c, ref op, 4);

    public static int MovsdStore(Cpu.Cpu c, ref DecodedOp op) => MovScalarStore(c, ref op, 8);

    /// <summary>MOVD/MOVQ xmm, r/m32/64: zero-extends into the whole register.</summary>
    public static int MovdToXmm(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        int size = op.Code == Code.Movq_xmm_rm64 ? 8 : 4;
        ulong v;
        if (op.R1 != Reg.NoReg)
        {
            v = c.GetReg(op.R1, size);
        }
        else if (!c.ReadMem(op.Seg, c.Ea(ref op), size, out v))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Vector128.CreateScalar(v).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>MOVD/MOVQ r/m32/64, xmm (a 32-bit register destination is zero-extended to 64 bits).</summary>
    public static int MovdFromXmm(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        int size = op.Code == Code.Movq_rm64_xmm ? 8 : 4;
        ulong v = X(c, op.R1).AsUInt64().ToScalar();
        if (size == 4)
        {
            v = (uint)v;
        }

        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, size, v);
            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), size, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>MOVQ xmm, xmm/m64: low quadword, upper quadword zeroed.</summary>
    public static int MovqLoad(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!SrcLow(c, ref op, 8, out ulong v))
        {
            return ExecStatus.Fault;
        }

        X(c, op.R0) = Vector128.CreateScalar(v).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>MOVQ xmm/m64, xmm: to a register it zeroes the upper quadword.</summary>
    public static int MovqStore(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        ulong v = X(c, op.R1).AsUInt64().ToScalar();
        if (op.R0 != Reg.NoReg)
        {
            X(c, op.R0) = Vector128.CreateScalar(v).AsByte();
            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), 8, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    private static int MovHalfLoad(Cpu.Cpu c, ref DecodedOp op, int half)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!c.ReadMem(op.Seg, c.Ea(ref op), 8, out ulong v))
        {
            return ExecStatus.Fault;
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsUInt64().WithElement(half, v).AsByte();
        return ExecStatus.Continue;
    }

    private static int MovHalfStore(Cpu.Cpu c, ref DecodedOp op, int half)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        ulong v = X(c, op.R1).AsUInt64().GetElement(half);
        return c.WriteMem(op.Seg, c.Ea(ref op), 8, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    public static int MovlpLoad(Cpu.Cpu c, ref DecodedOp op) => MovHalfLoad(c, ref op, 0);

    public static int MovhpLoad(Cpu.Cpu c, ref DecodedOp op) => MovHalfLoad(c, ref op, 1);

    public static int MovlpStore(Cpu.Cpu c, ref DecodedOp op) => MovHalfStore(c, ref op, 0);

    public static int MovhpStore(Cpu.Cpu c, ref DecodedOp op) => MovHalfStore(c, ref op, 1);

    /// <summary>MOVHLPS: destination low quadword ← source high quadword.</summary>
    public static int Movhlps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsUInt64().WithElement(0, X(c, op.R1).AsUInt64().GetElement(1)).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>MOVLHPS: destination high quadword ← source low quadword.</summary>
    public static int Movlhps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        ref Vector128<byte> d = ref X(c, op.R0);
        d = d.AsUInt64().WithElement(1, X(c, op.R1).AsUInt64().GetElement(0)).AsByte();
        return ExecStatus.Continue;
    }

    /// <summary>Sign bits of the source elements into a GPR (32-bit write zero-extends).</summary>
    private static int MoveMask(Cpu.Cpu c, ref DecodedOp op, uint mask)
    {
        c.Gpr[op.R0] = mask;
        return ExecStatus.Continue;
    }

    public static int Movmskps(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        Vector128<uint> s = X(c, op.R1).AsUInt32();
        return MoveMask(c, ref op, (s >> 31).ToScalar() | ((s.GetElement(1) >> 31) << 1) | ((s.GetElement(2) >> 31) << 2) | ((s.GetElement(3) >> 31) << 3));
    }

    public static int Movmskpd(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        Vector128<ulong> s = X(c, op.R1).AsUInt64();
        return MoveMask(c, ref op, (uint)(s.GetElement(0) >> 63) | (uint)((s.GetElement(1) >> 63) << 1));
    }

    public static int Pmovmskb(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        return MoveMask(c, ref op, X(c, op.R1).ExtractMostSignificantBits());
    }

    /// <summary>MOVNTI m32/m64, r: a plain store (the non-temporal hint has no architectural effect).</summary>
    public static int Movnti(Cpu.Cpu c, ref DecodedOp op)
    {
        return c.WriteMem(op.Seg, c.Ea(ref op), op.OpSize, c.GetReg(op.R1, op.OpSize)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>MASKMOVDQU: stores the bytes of xmm1 whose mask byte (xmm2) has its top bit set, at DS:rDI.</summary>
    public static int Maskmovdqu(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        Vector128<byte> data = X(c, op.R1);
        uint mask = X(c, op.R2).ExtractMostSignificantBits();
        if (mask == 0)
        {
            return ExecStatus.Continue;
        }

        ulong di = MaskToSize(c.Gpr[Reg.RDI], op.AddrSize);
        int seg = op.Seg;
        if (!ProbeWrite(c, seg, di, 16))
        {
            return ExecStatus.Fault;
        }

        for (int i = 0; i < 16; i++)
        {
            if ((mask & (1u << i)) != 0 && !c.WriteMem(seg, di + (ulong)i, 1, data.GetElement(i)))
            {
                return ExecStatus.Fault;
            }
        }

        return ExecStatus.Continue;
    }

    /// <summary>LDMXCSR: #GP(0) when a reserved bit (outside MXCSR_MASK) is set.</summary>
    public static int Ldmxcsr(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        if (!c.ReadMem(op.Seg, c.Ea(ref op), 4, out ulong v))
        {
            return ExecStatus.Fault;
        }

        if ((v & ~(ulong)MxcsrBits.Supported) != 0)
        {
            return c.RaiseGP(0);
        }

        c.Mxcsr = (uint)v;
        return ExecStatus.Continue;
    }

    public static int Stmxcsr(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!SseUsable(c))
        {
            return SseUnusable(c);
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), 4, c.Mxcsr) ? ExecStatus.Continue : ExecStatus.Fault;
    }
}
