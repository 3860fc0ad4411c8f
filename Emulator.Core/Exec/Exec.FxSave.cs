using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// FXSAVE/FXRSTOR (APM vol. 4/5 "FXSAVE", "FXRSTOR"): the 512-byte x87+SSE image. Layout: FCW, FSW,
/// abridged FTW (bit i = physical register i not empty), FOP, then FIP/FCS/FDP/FDS (32-bit form) or
/// 64-bit FIP/FDP (REX.W form), MXCSR, MXCSR_MASK, ST0–ST7 at 32 + 16·i, XMM0–XMM7 (XMM0–XMM15 in 64-bit
/// mode) at 160 + 16·i. Bytes 464–511 are left to software and never written.
/// AMD behaviour kept: FIP/FDP/FOP are saved (and restored) only when FSW.ES is set, else stored as zero;
/// with CR4.OSFXSR = 0, and with EFER.FFXSR in 64-bit mode at CPL 0, the XMM registers are neither
/// saved nor restored (MXCSR always is).
/// The same image is the legacy region of an XSAVE area (Exec.Xsave.cs), which builds and loads it with the
/// helpers here: x87 part in bytes 0–23 and 32–159, MXCSR and MXCSR_MASK in 24–31, XMM from 160.
/// </summary>
public static unsafe partial class Exec
{
    private const int FxAreaSize = 512;

    private static void RegisterFxSave(HandlerTable t)
    {
        t.Add(Code.Fxsave_m512byte, &Fxsave, CostClass.Serializing);
        t.Add(Code.Fxsave64_m512byte, &Fxsave, CostClass.Serializing);
        t.Add(Code.Fxrstor_m512byte, &Fxrstor, CostClass.Serializing);
        t.Add(Code.Fxrstor64_m512byte, &Fxrstor, CostClass.Serializing);
        RegisterXsave(t);
    }

    /// <summary>How many XMM registers FXSAVE/FXRSTOR transfer in the current state (0, 8 or 16).</summary>
    private static int FxXmmCount(Cpu.Cpu c)
    {
        if ((c.Cr4 & Cr4Bits.OSFXSR) == 0)
        {
            return 0;
        }

        if (c.Is64 && c.Cpl == 0 && (c.Efer & EferBits.FFXSR) != 0)
        {
            return 0;
        }

        return c.Is64 ? 16 : 8;
    }

    /// <summary>Common checks: #UD on CR0.EM (checked first), #NM on CR0.TS, #GP(0) on a misaligned area.</summary>
    private static bool FxCheck(Cpu.Cpu c, ref DecodedOp op, int access, out ulong off)
    {
        off = 0;
        if ((c.Cr0 & Cr0Bits.EM) != 0)
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
        if (!c.Linear(op.Seg, off, FxAreaSize, access, out ulong lin))
        {
            return false;
        }

        if ((lin & 15) != 0)
        {
            c.RaiseGP(0);
            return false;
        }

        return true;
    }

    /// <summary>Builds the FXSAVE image of the current state (also used by tests and save/restore code).</summary>
    public static int BuildFxImage(Cpu.Cpu c, Span<byte> area, bool rexW) => BuildFxImage(c, area, rexW, FxXmmCount(c));

    /// <summary>
    /// Builds the 512-byte legacy image with <paramref name="xmmCount"/> XMM registers; returns the bytes
    /// that hold state (through the last XMM register, or the x87 part when there is none).
    /// </summary>
    public static int BuildFxImage(Cpu.Cpu c, Span<byte> area, bool rexW, int xmmCount)
    {
        area[..FxAreaSize].Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(area, c.FpuCw);
        BinaryPrimitives.WriteUInt16LittleEndian(area[2..], c.FpuSwFull);
        area[4] = (byte)~c.FpuEmpty;
        if ((c.FpuStatus & FpuSw.ES) != 0)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(area[6..], c.FpuFop);
            if (rexW)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(area[8..], c.FpuIp);
                BinaryPrimitives.WriteUInt64LittleEndian(area[16..], c.FpuDp);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(area[8..], (uint)c.FpuIp);
                BinaryPrimitives.WriteUInt16LittleEndian(area[12..], c.FpuCs);
                BinaryPrimitives.WriteUInt32LittleEndian(area[16..], (uint)c.FpuDp);
                BinaryPrimitives.WriteUInt16LittleEndian(area[20..], c.FpuDs);
            }
        }

        BinaryPrimitives.WriteUInt32LittleEndian(area[24..], c.Mxcsr);
        BinaryPrimitives.WriteUInt32LittleEndian(area[28..], MxcsrBits.Supported);
        for (int i = 0; i < 8; i++)
        {
            Float80 v = c.St(i);
            BinaryPrimitives.WriteUInt64LittleEndian(area[(32 + (16 * i))..], v.Mantissa);
            BinaryPrimitives.WriteUInt16LittleEndian(area[(40 + (16 * i))..], v.SignExp);
        }

        int n = xmmCount;
        for (int i = 0; i < n; i++)
        {
            c.Xmm[i].CopyTo(area[(160 + (16 * i))..]);
        }

        // Bytes written: through the last XMM register transferred (or the x87 part).
        return n == 0 ? 160 : 160 + (16 * n);
    }

    public static int Fxsave(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!FxCheck(c, ref op, Access.Write, out ulong off))
        {
            return ExecStatus.Fault;
        }

        Span<byte> area = stackalloc byte[FxAreaSize];
        int len = BuildFxImage(c, area, op.Code == Code.Fxsave64_m512byte);
        if (!ProbeWrite(c, op.Seg, off, len))
        {
            return ExecStatus.Fault;
        }

        ReadOnlySpan<ulong> q = MemoryMarshal.Cast<byte, ulong>(area);
        for (int i = 0; i < len / 8; i++)
        {
            if (!c.WriteMem(op.Seg, off + (ulong)(i * 8), 8, q[i]))
            {
                return ExecStatus.Fault;
            }
        }

        return ExecStatus.Continue;
    }

    public static int Fxrstor(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!FxCheck(c, ref op, Access.Read, out ulong off))
        {
            return ExecStatus.Fault;
        }

        int n = FxXmmCount(c);
        int len = 160 + (16 * n);
        Span<ulong> q = stackalloc ulong[FxAreaSize / 8];
        for (int i = 0; i < len / 8; i++)
        {
            if (!c.ReadMem(op.Seg, off + (ulong)(i * 8), 8, out q[i]))
            {
                return ExecStatus.Fault;
            }
        }

        ReadOnlySpan<byte> area = MemoryMarshal.AsBytes(q);
        uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(area[24..]);
        if ((mxcsr & ~MxcsrBits.Supported) != 0)
        {
            return c.RaiseGP(0);
        }

        LoadFxImage(c, area, op.Code == Code.Fxrstor64_m512byte, n);
        return ExecStatus.Continue;
    }

    /// <summary>Loads a checked FXSAVE image (MXCSR already validated).</summary>
    public static void LoadFxImage(Cpu.Cpu c, ReadOnlySpan<byte> area, bool rexW, int xmmCount)
    {
        LoadFxX87(c, area, rexW);
        c.Mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(area[24..]);
        LoadFxXmm(c, area, xmmCount);
    }

    /// <summary>Loads the x87 part of a legacy image: control, status, abridged tags, pointers, ST0–ST7.</summary>
    private static void LoadFxX87(Cpu.Cpu c, ReadOnlySpan<byte> area, bool rexW)
    {
        c.FpuCw = BinaryPrimitives.ReadUInt16LittleEndian(area);
        c.SetFpuSw(BinaryPrimitives.ReadUInt16LittleEndian(area[2..]));
        c.FpuEmpty = (byte)~area[4];
        if ((c.FpuStatus & FpuSw.ES) != 0)
        {
            c.FpuFop = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(area[6..]) & 0x7FF);
            if (rexW)
            {
                c.FpuIp = BinaryPrimitives.ReadUInt64LittleEndian(area[8..]);
                c.FpuDp = BinaryPrimitives.ReadUInt64LittleEndian(area[16..]);
            }
            else
            {
                c.FpuIp = BinaryPrimitives.ReadUInt32LittleEndian(area[8..]);
                c.FpuCs = BinaryPrimitives.ReadUInt16LittleEndian(area[12..]);
                c.FpuDp = BinaryPrimitives.ReadUInt32LittleEndian(area[16..]);
                c.FpuDs = BinaryPrimitives.ReadUInt16LittleEndian(area[20..]);
            }
        }
        else
        {
            c.FpuFop = 0;
            c.FpuIp = c.FpuDp = 0;
            c.FpuCs = c.FpuDs = 0;
        }

        for (int i = 0; i < 8; i++)
        {
            c.St(i) = new Float80(
                BinaryPrimitives.ReadUInt16LittleEndian(area[(40 + (16 * i))..]),
                BinaryPrimitives.ReadUInt64LittleEndian(area[(32 + (16 * i))..]));
        }
    }

    /// <summary>Loads XMM0..XMM(count-1) from a legacy image.</summary>
    private static void LoadFxXmm(Cpu.Cpu c, ReadOnlySpan<byte> area, int xmmCount)
    {
        for (int i = 0; i < xmmCount; i++)
        {
            c.Xmm[i] = Vector128.Create(area.Slice(160 + (16 * i), 16));
        }
    }
}
