using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Emulator.Core.Cpu;

/// <summary>The sixteen 128-bit XMM registers.</summary>
[InlineArray(16)]
public struct XmmFile
{
    private Vector128<byte> _element0;
}

/// <summary>The eight physical x87 data registers R0–R7 (ST(i) is R((TOP + i) mod 8)).</summary>
[InlineArray(8)]
public struct X87File
{
    private Float80 _element0;
}

/// <summary>x87 status-word bits (APM vol. 1 §6.2.2).</summary>
public static class FpuSw
{
    public const ushort IE = 1, DE = 2, ZE = 4, OE = 8, UE = 16, PE = 32, SF = 64, ES = 128;
    public const ushort C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000, B = 0x8000;
    public const ushort TopMask = 0x3800;
    public const ushort CondMask = C0 | C1 | C2 | C3;
}

/// <summary>MXCSR bits (APM vol. 4 §4.2.2 / vol. 1 §4.2.2).</summary>
public static class MxcsrBits
{
    public const uint Flags = 0x3F, DAZ = 0x40, Masks = 0x1F80, RcMask = 0x6000, FZ = 0x8000;
    public const int MaskShift = 7, RcShift = 13;
    public const uint Default = 0x1F80;

    /// <summary>Bits software may set (MXCSR_MASK as FXSAVE reports it): bits 0–15, DAZ included; no MM.</summary>
    public const uint Supported = 0xFFFF;
}

/// <summary>XSAVE state-component bits (XCR0, XSTATE_BV, XCOMP_BV; Intel SDM vol. 1 §13.1).</summary>
public static class XFeature
{
    public const ulong X87 = 1, Sse = 2, Avx = 4;

    /// <summary>XCOMP_BV bit 63: the area is in the compacted format.</summary>
    public const ulong Compacted = 1UL << 63;
}

/// <summary>
/// x87, SSE and MXCSR state (APM vol. 1 §6, vol. 4). The x87 status word is kept without its TOP
/// field, which lives in <see cref="FpuTop"/>; tags are kept as "empty" bits per physical register
/// (the abridged FXSAVE form), the full tag word being derived from the register contents when stored.
/// </summary>
public sealed partial class Cpu
{
    public XmmFile Xmm;
    public uint Mxcsr = MxcsrBits.Default;

    public X87File Fpr;
    /// <summary>Control word; 0x0040 after reset (APM vol. 2 §14.1.3), 0x037F after FNINIT.</summary>
    public ushort FpuCw = 0x0040;
    /// <summary>Status word without TOP (bits 13:11 are always zero here).</summary>
    public ushort FpuStatus;
    public int FpuTop;
    /// <summary>Bit i set: physical register i is empty (tag 11b).</summary>
    public byte FpuEmpty = 0xFF;
    /// <summary>Last non-control instruction: opcode (11 bits), CS:RIP, and last data pointer DS:offset.</summary>
    public ushort FpuFop;
    public ushort FpuCs;
    public ushort FpuDs;
    public ulong FpuIp;
    public ulong FpuDp;

    /// <summary>XCR0, the XSAVE feature-enable mask (XSETBV/XGETBV with ECX = 0); x87 is always enabled.</summary>
    public ulong Xcr0 = XFeature.X87;

    /// <summary>The state components XSAVE manages here: x87 and SSE (CPUID 0xD.0 EDX:EAX).</summary>
    public const ulong SupportedXcr0 = XFeature.X87 | XFeature.Sse;

    /// <summary>Bytes of an XSAVE area for the supported components: the 512-byte legacy region and the 64-byte header.</summary>
    public const uint XsaveAreaSize = 576;

    /// <summary>
    /// XINUSE (Intel SDM vol. 1 §13.6): the components not in their initial configuration. x87 is initial
    /// after FNINIT-like values with zero pointers (FCW 037Fh, FSW 0, all tags empty); SSE when every XMM
    /// register is zero. Reporting "in use" for an initial component is always allowed; this never does
    /// the opposite.
    /// </summary>
    public ulong XInUse
    {
        get
        {
            ulong v = 0;
            if (FpuCw != 0x037F || FpuSwFull != 0 || FpuEmpty != 0xFF || FpuFop != 0 || FpuIp != 0 || FpuDp != 0 || FpuCs != 0 || FpuDs != 0)
            {
                v |= XFeature.X87;
            }

            for (int i = 0; i < 16; i++)
            {
                if (Xmm[i] != Vector128<byte>.Zero)
                {
                    v |= XFeature.Sse;
                    break;
                }
            }

            return v;
        }
    }

    /// <summary>Status word as FNSTSW stores it (TOP included).</summary>
    public ushort FpuSwFull => (ushort)((FpuStatus & ~FpuSw.TopMask) | ((FpuTop & 7) << 11));

    public void SetFpuSw(ushort sw)
    {
        FpuStatus = (ushort)(sw & ~FpuSw.TopMask);
        FpuTop = (sw >> 11) & 7;
    }

    /// <summary>Physical register number of ST(i).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int StPhys(int i) => (FpuTop + i) & 7;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref Float80 St(int i) => ref Fpr[(FpuTop + i) & 7];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool StEmpty(int i) => (FpuEmpty & (1 << ((FpuTop + i) & 7))) != 0;

    /// <summary>Rounding control of the x87 control word (0 nearest, 1 down, 2 up, 3 toward zero).</summary>
    public int FpuRc => (FpuCw >> 10) & 3;

    /// <summary>Rounding control of MXCSR.</summary>
    public int SseRc => (int)((Mxcsr >> MxcsrBits.RcShift) & 3);

    /// <summary>FNINIT state (APM vol. 5 "FINIT"): CW 0x037F, SW 0, all tags empty, pointers zero.</summary>
    public void FpuInit()
    {
        FpuCw = 0x037F;
        FpuStatus = 0;
        FpuTop = 0;
        FpuEmpty = 0xFF;
        FpuFop = 0;
        FpuCs = FpuDs = 0;
        FpuIp = FpuDp = 0;
    }

    /// <summary>
    /// Full 16-bit tag word (FNSTENV/FNSAVE): 00 valid, 01 zero, 10 special (NaN, infinity, denormal,
    /// unsupported), 11 empty, for physical registers 0–7.
    /// </summary>
    public ushort FpuTagWord()
    {
        int tw = 0;
        for (int i = 0; i < 8; i++)
        {
            int t;
            if ((FpuEmpty & (1 << i)) != 0)
            {
                t = 3;
            }
            else
            {
                Float80 v = Fpr[i];
                if (v.Exponent == Float80.ExpMask || v.IsUnsupported || v.IsDenormal)
                {
                    t = 2;
                }
                else if (v.IsZero)
                {
                    t = 1;
                }
                else
                {
                    t = 0;
                }
            }

            tw |= t << (i * 2);
        }

        return (ushort)tw;
    }

    /// <summary>Loads a full tag word: only "empty" versus "not empty" is kept (the rest is derived from contents).</summary>
    public void SetFpuTagWord(ushort tw)
    {
        int empty = 0;
        for (int i = 0; i < 8; i++)
        {
            if (((tw >> (i * 2)) & 3) == 3)
            {
                empty |= 1 << i;
            }
        }

        FpuEmpty = (byte)empty;
    }
}
