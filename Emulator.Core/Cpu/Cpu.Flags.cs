using System.Numerics;
using System.Runtime.CompilerServices;

namespace Emulator.Core.Cpu;

/// <summary>Which instruction family produced the lazily kept status flags.</summary>
public enum LazyFlags : byte
{
    /// <summary>RFLAGS' arithmetic bits in <see cref="Cpu.FlagsBits"/> are current.</summary>
    None = 0,
    /// <summary>res = dst + src + carry-in (carry-in in LazyCin): ADD, ADC.</summary>
    Add,
    /// <summary>res = dst − src − borrow-in: SUB, SBB, CMP, NEG (dst = 0).</summary>
    Sub,
    /// <summary>INC: as Add with src = 1, CF kept from FlagsBits.</summary>
    Inc,
    /// <summary>DEC: as Sub with src = 1, CF kept from FlagsBits.</summary>
    Dec,
    /// <summary>ZF, SF, PF from res; CF, AF, OF from FlagsBits (logic ops, shifts, multiplies).</summary>
    Result,
}

/// <summary>
/// Lazy flags: arithmetic handlers record operands and result instead of computing the six status
/// flags; the flags are computed only when something reads them (Jcc, PUSHF, ADC …).
/// Invariant: when <see cref="LazyOp"/> is not None, the arithmetic bits of FlagsBits that the op
/// defines are stale and must be read through the getters.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>RFLAGS; the arithmetic bits are stale while LazyOp != None.</summary>
    public ulong FlagsBits = Rflags.Reserved1;
    public LazyFlags LazyOp;
    /// <summary>Operand size of the lazy op in bytes: 1, 2, 4 or 8.</summary>
    public byte LazySize;
    public byte LazyCin;
    public ulong LazyRes, LazyDst, LazySrc;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetFlagsAdd(int size, ulong dst, ulong src, ulong res, uint carryIn = 0)
    {
        LazyOp = LazyFlags.Add; LazySize = (byte)size; LazyCin = (byte)carryIn;
        LazyDst = dst; LazySrc = src; LazyRes = res;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetFlagsSub(int size, ulong dst, ulong src, ulong res, uint borrowIn = 0)
    {
        LazyOp = LazyFlags.Sub; LazySize = (byte)size; LazyCin = (byte)borrowIn;
        LazyDst = dst; LazySrc = src; LazyRes = res;
    }

    /// <summary>INC/DEC: CF is preserved, so it is made current before the op is recorded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetFlagsIncDec(bool dec, int size, ulong dst, ulong res)
    {
        ulong cf = GetCF() ? Rflags.CF : 0;
        FlagsBits = (FlagsBits & ~Rflags.CF) | cf;
        LazyOp = dec ? LazyFlags.Dec : LazyFlags.Inc; LazySize = (byte)size; LazyCin = 0;
        LazyDst = dst; LazySrc = 1; LazyRes = res;
    }

    /// <summary>Logic ops: CF = OF = 0, AF undefined (0 as on AMD), ZF/SF/PF from the result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetFlagsLogic(int size, ulong res)
    {
        FlagsBits &= ~(Rflags.CF | Rflags.OF | Rflags.AF);
        LazyOp = LazyFlags.Result; LazySize = (byte)size; LazyRes = res;
    }

    /// <summary>ZF/SF/PF from the result; CF, OF and AF given explicitly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetFlagsResult(int size, ulong res, bool cf, bool of, bool af = false)
    {
        ulong f = FlagsBits & ~(Rflags.CF | Rflags.OF | Rflags.AF);
        if (cf) f |= Rflags.CF;
        if (of) f |= Rflags.OF;
        if (af) f |= Rflags.AF;
        FlagsBits = f;
        LazyOp = LazyFlags.Result; LazySize = (byte)size; LazyRes = res;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SizeMask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SignBit(int size) => 1UL << ((size * 8) - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool GetCF() => CarryAfter(LazyOp, LazySize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool GetZF() => LazyOp == LazyFlags.None ? (FlagsBits & Rflags.ZF) != 0 : ResultZero(LazySize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool GetSF() => LazyOp == LazyFlags.None ? (FlagsBits & Rflags.SF) != 0 : ResultSign(LazySize);

    public bool GetPF() => LazyOp == LazyFlags.None ? (FlagsBits & Rflags.PF) != 0 : ResultParity();

    public bool GetAF() => LazyOp switch
    {
        LazyFlags.Add or LazyFlags.Sub or LazyFlags.Inc or LazyFlags.Dec => ((LazyRes ^ LazyDst ^ LazySrc) & 0x10) != 0,
        _ => (FlagsBits & Rflags.AF) != 0,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool GetOF() => OverflowAfter(LazyOp, LazySize);

    /// <summary>CF as the lazy op <paramref name="kind"/> at <paramref name="size"/> bytes left it (or FlagsBits' CF for the others).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool CarryAfter(LazyFlags kind, int size)
    {
        ulong m = SizeMask(size);
        switch (kind)
        {
            case LazyFlags.Add:
                {
                    ulong r = LazyRes & m, d = LazyDst & m;
                    return LazyCin != 0 ? r <= d : r < d;
                }
            case LazyFlags.Sub:
                {
                    ulong d = LazyDst & m, s = LazySrc & m;
                    return LazyCin != 0 ? d <= s : d < s;
                }
            default:
                return (FlagsBits & Rflags.CF) != 0;
        }
    }

    /// <summary>OF as the lazy op <paramref name="kind"/> at <paramref name="size"/> bytes left it (or FlagsBits' OF for the others).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool OverflowAfter(LazyFlags kind, int size)
    {
        ulong sb = SignBit(size);
        return kind switch
        {
            LazyFlags.Add or LazyFlags.Inc => ((LazyDst ^ LazyRes) & (LazySrc ^ LazyRes) & sb) != 0,
            LazyFlags.Sub or LazyFlags.Dec => ((LazyDst ^ LazySrc) & (LazyDst ^ LazyRes) & sb) != 0,
            _ => (FlagsBits & Rflags.OF) != 0,
        };
    }

    // ZF, SF and PF of a lazy op: from its result at its size (PF from the low byte whatever the size).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ResultZero(int size) => (LazyRes & SizeMask(size)) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ResultSign(int size) => (LazyRes & SignBit(size)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ResultParity() => (BitOperations.PopCount((uint)(LazyRes & 0xFF)) & 1) == 0;

    /// <summary>
    /// Condition <paramref name="cc"/> (0–15 in the order of the Jcc opcodes: O, NO, B, AE, E, NE, BE, A, S, NS, P,
    /// NP, L, GE, LE, G) when the lazy state is known to have been left by <paramref name="kind"/> at
    /// <paramref name="size"/> bytes (ADD, SUB, CMP, NEG, the logic ops, INC, DEC): the getters' formulas without
    /// their tests of LazyOp and LazySize. Compiled blocks know which op set the flags last and pass all three as
    /// constants, so only the formula of the one condition remains.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool ConditionAfter(int cc, LazyFlags kind, int size)
    {
        bool holds = (cc >> 1) switch
        {
            0 => OverflowAfter(kind, size),
            1 => CarryAfter(kind, size),
            2 => ResultZero(size),
            3 => CarryAfter(kind, size) || ResultZero(size),
            4 => ResultSign(size),
            5 => ResultParity(),
            6 => ResultSign(size) != OverflowAfter(kind, size),
            _ => ResultZero(size) || ResultSign(size) != OverflowAfter(kind, size),
        };
        return (cc & 1) == 0 ? holds : !holds;
    }

    /// <summary>Full RFLAGS with the status flags made current (does not change the lazy state).</summary>
    public ulong Rflags64
    {
        get
        {
            if (LazyOp == LazyFlags.None)
            {
                return FlagsBits;
            }

            ulong f = FlagsBits & ~Emulator.Core.Cpu.Rflags.Arith;
            if (GetCF()) f |= Emulator.Core.Cpu.Rflags.CF;
            if (GetPF()) f |= Emulator.Core.Cpu.Rflags.PF;
            if (GetAF()) f |= Emulator.Core.Cpu.Rflags.AF;
            if (GetZF()) f |= Emulator.Core.Cpu.Rflags.ZF;
            if (GetSF()) f |= Emulator.Core.Cpu.Rflags.SF;
            if (GetOF()) f |= Emulator.Core.Cpu.Rflags.OF;
            return f;
        }
    }

    /// <summary>Writes the status flags (and nothing else) from <paramref name="value"/>; ends the lazy state.</summary>
    public void SetArithFlags(ulong value)
    {
        FlagsBits = Rflags64;
        FlagsBits = (FlagsBits & ~Emulator.Core.Cpu.Rflags.Arith) | (value & Emulator.Core.Cpu.Rflags.Arith);
        LazyOp = LazyFlags.None;
    }

    /// <summary>Makes FlagsBits current and clears the lazy state.</summary>
    public void MaterializeFlags()
    {
        if (LazyOp != LazyFlags.None)
        {
            FlagsBits = Rflags64;
            LazyOp = LazyFlags.None;
        }
    }

    /// <summary>Evaluates condition code <paramref name="cc"/> (the low nibble of Jcc/SETcc/CMOVcc opcodes).</summary>
    public bool Condition(int cc)
    {
        if (LazyOp == LazyFlags.Sub && LazyCin == 0)
        {
            return CompareCondition(cc);
        }

        bool r = (cc >> 1) switch
        {
            0 => GetOF(),
            1 => GetCF(),
            2 => GetZF(),
            3 => GetCF() || GetZF(),
            4 => GetSF(),
            5 => GetPF(),
            6 => GetSF() != GetOF(),
            _ => GetZF() || (GetSF() != GetOF()),
        };
        return r ^ ((cc & 1) != 0);
    }

    /// <summary>Fast path after SUB/CMP/NEG without borrow-in: the conditions are plain compares of the operands.</summary>
    private bool CompareCondition(int cc)
    {
        int sh = 64 - (LazySize * 8);
        ulong d = LazyDst << sh, s = LazySrc << sh;
        bool r = (cc >> 1) switch
        {
            0 => GetOF(),
            1 => d < s,
            2 => d == s,
            3 => d <= s,
            4 => (long)(d - s) < 0,
            5 => GetPF(),
            6 => (long)d < (long)s,
            _ => (long)d <= (long)s,
        };
        return r ^ ((cc & 1) != 0);
    }
}
