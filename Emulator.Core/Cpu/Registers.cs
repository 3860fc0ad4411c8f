using System.Runtime.CompilerServices;

namespace Emulator.Core.Cpu;

/// <summary>The sixteen general-purpose registers, in encoding order (RAX=0 … R15=15).</summary>
[InlineArray(16)]
public struct GprFile
{
    private ulong _element0;
}

/// <summary>Segment register numbers in encoding order (as Iced's and the ModRM sreg field).</summary>
public static class SegReg
{
    public const int ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5, None = 6;
}

/// <summary>GPR numbers in encoding order.</summary>
public static class Reg
{
    public const int RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7;
    public const int R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15;

    /// <summary>8-bit register numbers 16–19 name AH, CH, DH, BH (bits 15:8 of registers 0–3).</summary>
    public const int AH = 16, CH = 17, DH = 18, BH = 19;

    /// <summary>Register-number value meaning "this operand is not a register".</summary>
    public const byte NoReg = 0xFF;

    /// <summary>Base-register value meaning RIP-relative addressing.</summary>
    public const byte Rip = 16;
}

/// <summary>
/// Hidden part of a segment register (AMD64 APM vol. 2 §4.5.3): the descriptor cache.
/// Attributes use the layout of descriptor bytes 5..6: type(3:0) S(4) DPL(6:5) P(7) AVL(12) L(13) D/B(14) G(15).
/// </summary>
public struct SegmentCache
{
    public ulong Base;
    public uint Limit;     // expanded byte-granular limit
    public ushort Selector;
    public ushort Attr;

    public const ushort AttrS = 1 << 4;
    public const ushort AttrP = 1 << 7;
    public const ushort AttrL = 1 << 13;
    public const ushort AttrDB = 1 << 14;
    public const ushort AttrG = 1 << 15;

    public readonly int Dpl => (Attr >> 5) & 3;
    public readonly int Type => Attr & 0xF;
    public readonly bool Present => (Attr & AttrP) != 0;
    public readonly bool IsCode => (Attr & (AttrS | 0x8)) == (AttrS | 0x8);
    public readonly bool Big => (Attr & AttrDB) != 0;
    public readonly bool Long => (Attr & AttrL) != 0;

    /// <summary>A real-mode segment: base = selector·16, limit 64 KiB, data read/write present.</summary>
    public static SegmentCache RealMode(ushort selector, ushort attr = 0x93) => new()
    {
        Selector = selector,
        Base = (ulong)selector << 4,
        Limit = 0xFFFF,
        Attr = attr,
    };
}

/// <summary>GDTR/IDTR.</summary>
public struct TableRegister
{
    public ulong Base;
    public ushort Limit;
}

[InlineArray(8)]
public struct SegmentFile
{
    private SegmentCache _element0;
}
