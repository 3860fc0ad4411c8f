using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// The XSAVE feature set (Intel SDM vol. 1 ch. 13, vol. 2 "XSAVE", "XRSTOR", "XSAVEC", "XSAVEOPT", "XSETBV",
/// "XGETBV"; AMD APM vol. 2 §11.5) for the two state components emu has: x87 (XCR0 bit 0) and SSE (bit 1).
/// Both live in the 512-byte legacy region, laid out as FXSAVE lays it out (built and loaded by the helpers
/// of Exec.FxSave.cs); the 64-byte XSAVE header follows at offset 512 (XSTATE_BV, XCOMP_BV, reserved).
/// Unlike FXSAVE, the XSAVE instructions transfer the XMM registers whatever CR4.OSFXSR and EFER.FFXSR say.
/// With only legacy-region components, the compacted format is the standard one plus XCOMP_BV.
/// </summary>
public static unsafe partial class Exec
{
    private const int XsaveHeader = 512;

    private static void RegisterXsave(HandlerTable t)
    {
        t.Add(Code.Xsave_mem, &Xsave, CostClass.Serializing);
        t.Add(Code.Xsave64_mem, &Xsave, CostClass.Serializing);
        t.Add(Code.Xsaveopt_mem, &Xsaveopt, CostClass.Serializing);
        t.Add(Code.Xsaveopt64_mem, &Xsaveopt, CostClass.Serializing);
        t.Add(Code.Xsavec_mem, &Xsavec, CostClass.Serializing);
        t.Add(Code.Xsavec64_mem, &Xsavec, CostClass.Serializing);
        t.Add(Code.Xrstor_mem, &Xrstor, CostClass.Serializing);
        t.Add(Code.Xrstor64_mem, &Xrstor, CostClass.Serializing);
        t.Add(Code.Xsetbv, &Xsetbv, CostClass.Serializing);
        t.Add(Code.Xgetbv, &Xgetbv, CostClass.System);
    }

    /// <summary>XSAVE is usable: reported in CPUID and enabled by the OS in CR4.OSXSAVE (else #UD).</summary>
    private static bool XsaveEnabled(Cpu.Cpu c) => c.Features.Has(CpuFeature.Xsave) && (c.Cr4 & Cr4Bits.OSXSAVE) != 0;

    /// <summary>
    /// Checks shared by the XSAVE-area instructions: #UD unless XSAVE (and <paramref name="extension"/>) is
    /// reported and CR4.OSXSAVE is set, #NM with CR0.TS, segment and canonical checks over the area, #GP(0)
    /// unless the linear address is 64-byte aligned. Gives the offset and RFBM = XCR0 AND EDX:EAX.
    /// </summary>
    private static bool XsaveCheck(Cpu.Cpu c, ref DecodedOp op, CpuFeature extension, int access, out ulong off, out ulong rfbm)
    {
        off = rfbm = 0;
        if (!XsaveEnabled(c) || !c.Features.Has(extension))
        {
            c.RaiseUD();
            return false;
        }

        if ((c.Cr0 & Cr0Bits.TS) != 0)
        {
            c.RaiseNM();
            return false;
        }

        off = c.Ea(ref op);
        if (!c.Linear(op.Seg, off, (int)Cpu.Cpu.XsaveAreaSize, access, out ulong lin))
        {
            return false;
        }

        if ((lin & 63) != 0)
        {
            c.RaiseGP(0);
            return false;
        }

        rfbm = c.Xcr0 & ((c.Gpr[Reg.RDX] << 32) | (uint)c.Gpr[Reg.RAX]);
        return true;
    }

    /// <summary>XSAVE and XSAVEOPT handle XMM8–XMM15 in 64-bit mode only.</summary>
    private static int XsaveXmmCount(Cpu.Cpu c) => c.Is64 ? 16 : 8;

    private static bool IsRexW(Code code) => code is Code.Xsave64_mem or Code.Xsaveopt64_mem or Code.Xsavec64_mem or Code.Xrstor64_mem;

    /// <summary>XSAVE: stores every RFBM component; XSTATE_BV keeps its other bits and gets XINUSE for RFBM's.</summary>
    public static int Xsave(Cpu.Cpu c, ref DecodedOp op) => SaveStandard(c, ref op, CpuFeature.Xsave);

    /// <summary>
    /// XSAVEOPT: the init and modified optimisations only allow skipping stores of components whose values
    /// memory already holds or that XSTATE_BV marks initial; storing them anyway is the XSAVE behaviour.
    /// </summary>
    public static int Xsaveopt(Cpu.Cpu c, ref DecodedOp op) => SaveStandard(c, ref op, CpuFeature.XsaveOpt);

    private static int SaveStandard(Cpu.Cpu c, ref DecodedOp op, CpuFeature extension)
    {
        if (!XsaveCheck(c, ref op, extension, Access.Write, out ulong off, out ulong rfbm))
        {
            return ExecStatus.Fault;
        }

        // The old XSTATE_BV is merged, so it is read (with write permission checked) before anything is stored.
        if (!c.ReadMemForWrite(op.Seg, off + XsaveHeader, 8, out ulong oldBv))
        {
            return ExecStatus.Fault;
        }

        ulong bv = (oldBv & ~rfbm) | (c.XInUse & rfbm);
        // MXCSR and MXCSR_MASK belong to SSE but are stored when RFBM names SSE or AVX.
        bool mxcsr = (rfbm & (XFeature.Sse | XFeature.Avx)) != 0;
        return StoreArea(c, ref op, off, rfbm, mxcsr, bv, compMask: null);
    }

    /// <summary>
    /// XSAVEC: stores only RFBM components that are in use (SSE also when MXCSR is not 1F80h), in the
    /// compacted format; XSTATE_BV = what was stored, XCOMP_BV = RFBM with bit 63 set.
    /// </summary>
    public static int Xsavec(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!XsaveCheck(c, ref op, CpuFeature.XsaveC, Access.Write, out ulong off, out ulong rfbm))
        {
            return ExecStatus.Fault;
        }

        ulong save = rfbm & c.XInUse;
        if ((rfbm & XFeature.Sse) != 0 && c.Mxcsr != MxcsrBits.Default)
        {
            save |= XFeature.Sse;
        }

        return StoreArea(c, ref op, off, save, (save & XFeature.Sse) != 0, save, rfbm | XFeature.Compacted);
    }

    /// <summary>
    /// Stores the components in <paramref name="save"/> (x87: bytes 0–23, 32–159; SSE: the XMM registers from
    /// 160), MXCSR with MXCSR_MASK (24–31) when <paramref name="mxcsr"/>, then XSTATE_BV and, for the compacted
    /// format, XCOMP_BV. Every byte to be written is probed first, so a fault leaves memory unchanged.
    /// </summary>
    private static int StoreArea(Cpu.Cpu c, ref DecodedOp op, ulong off, ulong save, bool mxcsr, ulong xstateBv, ulong? compMask)
    {
        int headerBytes = compMask.HasValue ? 16 : 8;
        if (!ProbeWrite(c, op.Seg, off, XsaveHeader + headerBytes))
        {
            return ExecStatus.Fault;
        }

        Span<byte> area = stackalloc byte[FxAreaSize];
        int xmm = XsaveXmmCount(c);
        BuildFxImage(c, area, IsRexW(op.Code), xmm);
        ReadOnlySpan<ulong> q = MemoryMarshal.Cast<byte, ulong>(area);
        bool ok = true;
        if ((save & XFeature.X87) != 0)
        {
            ok = StoreQwords(c, op.Seg, off, q, 0, 24) && StoreQwords(c, op.Seg, off, q, 32, 160);
        }

        if (mxcsr)
        {
            ok = ok && StoreQwords(c, op.Seg, off, q, 24, 32);
        }

        if ((save & XFeature.Sse) != 0)
        {
            ok = ok && StoreQwords(c, op.Seg, off, q, 160, 160 + (16 * xmm));
        }

        ok = ok && c.WriteMem(op.Seg, off + XsaveHeader, 8, xstateBv);
        if (ok && compMask.HasValue)
        {
            ok = c.WriteMem(op.Seg, off + XsaveHeader + 8, 8, compMask.Value);
        }

        return ok ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>Writes bytes [<paramref name="from"/>, <paramref name="to"/>) of the image (multiples of 8).</summary>
    private static bool StoreQwords(Cpu.Cpu c, int seg, ulong off, ReadOnlySpan<ulong> q, int from, int to)
    {
        for (int i = from; i < to; i += 8)
        {
            if (!c.WriteMem(seg, off + (ulong)i, 8, q[i / 8]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Reads bytes [<paramref name="from"/>, <paramref name="to"/>) of the area into the image (multiples of 8).</summary>
    private static bool LoadQwords(Cpu.Cpu c, int seg, ulong off, Span<ulong> q, int from, int to)
    {
        for (int i = from; i < to; i += 8)
        {
            if (!c.ReadMem(seg, off + (ulong)i, 8, out q[i / 8]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// XRSTOR (standard form when XCOMP_BV bit 63 is clear, compacted form otherwise): each RFBM component is
    /// loaded when XSTATE_BV has it and initialised when not. #GP(0), before any state changes, for header bits
    /// beyond XCR0, non-zero reserved header bytes, the compacted form without XSAVEC, and a reserved MXCSR bit.
    /// The standard form loads MXCSR whenever RFBM names SSE or AVX; the compacted form sets it to 1F80h when
    /// it initialises SSE.
    /// </summary>
    public static int Xrstor(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!XsaveCheck(c, ref op, CpuFeature.Xsave, Access.Read, out ulong off, out ulong rfbm))
        {
            return ExecStatus.Fault;
        }

        Span<ulong> header = stackalloc ulong[8];
        if (!LoadQwords(c, op.Seg, off + XsaveHeader, header, 0, 64))
        {
            return ExecStatus.Fault;
        }

        ulong xstateBv = header[0], xcompBv = header[1];
        ulong restore, init;
        bool loadMxcsr;
        if ((xcompBv & XFeature.Compacted) == 0)
        {
            // Standard form: bytes 8–23 of the header (XCOMP_BV and the next quadword) must be zero.
            if ((xstateBv & ~c.Xcr0) != 0 || xcompBv != 0 || header[2] != 0)
            {
                return c.RaiseGP(0);
            }

            restore = rfbm & xstateBv;
            init = rfbm & ~xstateBv;
            loadMxcsr = (rfbm & (XFeature.Sse | XFeature.Avx)) != 0;
        }
        else
        {
            ulong format = xcompBv & ~XFeature.Compacted;
            bool reservedClear = header[2] == 0 && header[3] == 0 && header[4] == 0 && header[5] == 0 && header[6] == 0 && header[7] == 0;
            if (!c.Features.Has(CpuFeature.XsaveC) || (format & ~c.Xcr0) != 0 || (xstateBv & ~format) != 0 || !reservedClear)
            {
                return c.RaiseGP(0);
            }

            restore = rfbm & format & xstateBv;
            init = (rfbm & ~xstateBv) | (rfbm & ~format);
            loadMxcsr = (restore & XFeature.Sse) != 0;
        }

        int xmm = XsaveXmmCount(c);
        Span<ulong> q = stackalloc ulong[FxAreaSize / 8];
        bool ok = true;
        if ((restore & XFeature.X87) != 0)
        {
            ok = LoadQwords(c, op.Seg, off, q, 0, 24) && LoadQwords(c, op.Seg, off, q, 32, 160);
        }

        if (loadMxcsr)
        {
            ok = ok && LoadQwords(c, op.Seg, off, q, 24, 32);
        }

        if ((restore & XFeature.Sse) != 0)
        {
            ok = ok && LoadQwords(c, op.Seg, off, q, 160, 160 + (16 * xmm));
        }

        if (!ok)
        {
            return ExecStatus.Fault;
        }

        ReadOnlySpan<byte> area = MemoryMarshal.AsBytes(q);
        uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(area[24..]);
        if (loadMxcsr && (mxcsr & ~MxcsrBits.Supported) != 0)
        {
            return c.RaiseGP(0);
        }

        if ((restore & XFeature.X87) != 0)
        {
            LoadFxX87(c, area, IsRexW(op.Code));
        }
        else if ((init & XFeature.X87) != 0)
        {
            InitX87(c);
        }

        if (loadMxcsr)
        {
            c.Mxcsr = mxcsr;
        }

        if ((restore & XFeature.Sse) != 0)
        {
            LoadFxXmm(c, area, xmm);
        }
        else if ((init & XFeature.Sse) != 0)
        {
            for (int i = 0; i < xmm; i++)
            {
                c.Xmm[i] = default;
            }

            if ((xcompBv & XFeature.Compacted) != 0)
            {
                c.Mxcsr = MxcsrBits.Default;
            }
        }

        return ExecStatus.Continue;
    }

    /// <summary>The x87 initial configuration (SDM vol. 1 §13.6): FNINIT's control state and zero data registers.</summary>
    private static void InitX87(Cpu.Cpu c)
    {
        c.FpuInit();
        for (int i = 0; i < 8; i++)
        {
            c.Fpr[i] = Float80.Zero;
        }
    }

    /// <summary>
    /// XSETBV: XCR[ECX] = EDX:EAX (RCX bits 63:32 ignored). #UD without CR4.OSXSAVE; #GP(0) above CPL 0, for
    /// any XCR but XCR0, and for an XCR0 value with x87 clear, an unsupported bit, or AVX without SSE.
    /// </summary>
    public static int Xsetbv(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!XsaveEnabled(c))
        {
            return c.RaiseUD();
        }

        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        // The XCR number and the value are operands: their #GP comes after the intercept (APM vol. 2 §15.9).
        if (c.Intercepted(SvmIntercept.Xsetbv) && c.InterceptEnds(SvmExit.Xsetbv, out int exit))
        {
            return exit;
        }

        if ((uint)c.Gpr[Reg.RCX] != 0)
        {
            return c.RaiseGP(0);
        }

        ulong v = (c.Gpr[Reg.RDX] << 32) | (uint)c.Gpr[Reg.RAX];
        if ((v & XFeature.X87) == 0 || (v & ~Cpu.Cpu.SupportedXcr0) != 0 || ((v & XFeature.Avx) != 0 && (v & XFeature.Sse) == 0))
        {
            return c.RaiseGP(0);
        }

        c.Xcr0 = v;
        return ExecStatus.Continue;
    }

    /// <summary>
    /// XGETBV: EDX:EAX = XCR[ECX] (RCX bits 63:32 ignored), at any CPL. ECX = 0 reads XCR0; ECX = 1, when
    /// CPUID 0xD.1:EAX[2] reports it, reads XCR0 AND XINUSE; anything else is #GP(0). #UD without CR4.OSXSAVE.
    /// </summary>
    public static int Xgetbv(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!XsaveEnabled(c))
        {
            return c.RaiseUD();
        }

        ulong v;
        switch ((uint)c.Gpr[Reg.RCX])
        {
            case 0:
                v = c.Xcr0;
                break;
            case 1 when c.Features.Has(CpuFeature.XgetBv1):
                v = c.Xcr0 & c.XInUse;
                break;
            default:
                return c.RaiseGP(0);
        }

        c.Gpr[Reg.RAX] = (uint)v;
        c.Gpr[Reg.RDX] = v >> 32;
        return ExecStatus.Continue;
    }
}
