using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// MUL, IMUL (one, two and three operands), DIV, IDIV (APM vol. 3). Multiplies define CF = OF = "the
/// high half is significant"; SF, ZF, PF and AF are undefined: we set SF/ZF/PF from the low half of the
/// product (the destination register of the 2/3-operand forms) and clear AF. Divides leave all six
/// status flags undefined: we leave them unchanged. #DE on a zero divisor and on a quotient that does
/// not fit (including INT_MIN / −1), raised before anything is written.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterMulDiv(HandlerTable t)
    {
        foreach (Code code in LegacyCodes)
        {
            switch (code.Mnemonic())
            {
                case Mnemonic.Mul: t.Add(code, &Mul, CostClass.Multiply); break;
                case Mnemonic.Div: t.Add(code, &Div, CostClass.Divide); break;
                case Mnemonic.Idiv: t.Add(code, &Idiv, CostClass.Divide); break;
                case Mnemonic.Imul:
                    if (code is Code.Imul_rm8 or Code.Imul_rm16 or Code.Imul_rm32 or Code.Imul_rm64)
                    {
                        t.Add(code, &ImulWide, CostClass.Multiply);
                    }
                    else
                    {
                        t.Add(code, &Imul, CostClass.Multiply);
                        t.AddForms(code, &PickImul);
                    }

                    break;
            }
        }
    }

    /// <summary>Reads the r/m source of MUL/IMUL/DIV/IDIV (operand 0).</summary>
    private static bool ReadRmSource(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        if (op.R0 != Reg.NoReg)
        {
            v = c.GetReg(op.R0, op.OpSize);
            return true;
        }

        ChargeMemoryForm(c);
        return c.ReadMem(op.Seg, c.Ea(ref op), op.OpSize, out v);
    }

    /// <summary>MUL r/m: rDX:rAX (AX for bytes) = rAX × src, unsigned.</summary>
    public static int Mul(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadRmSource(c, ref op, out ulong src))
        {
            return ExecStatus.Fault;
        }

        int size = op.OpSize;
        ulong a = c.GetReg(Reg.RAX, size);
        ulong lo, hi;
        switch (size)
        {
            case 1:
                {
                    ulong p = a * src;
                    c.SetReg(Reg.RAX, 2, p);
                    lo = p & 0xFF;
                    hi = p >> 8;
                    break;
                }

            case 2:
            case 4:
                {
                    ulong p = a * src;
                    int w = size * 8;
                    lo = p & Cpu.Cpu.SizeMask(size);
                    hi = p >> w;
                    c.SetReg(Reg.RAX, size, lo);
                    c.SetReg(Reg.RDX, size, hi);
                    break;
                }

            default:
                hi = Math.BigMul(a, src, out lo);
                c.Gpr[Reg.RAX] = lo;
                c.Gpr[Reg.RDX] = hi;
                break;
        }

        c.SetFlagsResult(size, lo, hi != 0, hi != 0);
        return ExecStatus.Continue;
    }

    /// <summary>IMUL r/m (one operand): rDX:rAX = rAX × src, signed.</summary>
    public static int ImulWide(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadRmSource(c, ref op, out ulong src))
        {
            return ExecStatus.Fault;
        }

        int size = op.OpSize;
        long a = (long)SignExtend(c.GetReg(Reg.RAX, size), size);
        long b = (long)SignExtend(src, size);
        ulong lo;
        bool overflow;
        switch (size)
        {
            case 1:
                {
                    long p = a * b;
                    c.SetReg(Reg.RAX, 2, (ulong)p);
                    lo = (ulong)p & 0xFF;
                    overflow = p != (sbyte)p;
                    break;
                }

            case 2:
            case 4:
                {
                    long p = a * b;
                    int w = size * 8;
                    lo = (ulong)p & Cpu.Cpu.SizeMask(size);
                    c.SetReg(Reg.RAX, size, lo);
                    c.SetReg(Reg.RDX, size, (ulong)(p >> w));
                    overflow = p != (long)SignExtend((ulong)p, size);
                    break;
                }

            default:
                {
                    long hi = Math.BigMul(a, b, out long l);
                    lo = (ulong)l;
                    c.Gpr[Reg.RAX] = lo;
                    c.Gpr[Reg.RDX] = (ulong)hi;
                    overflow = hi != (l >> 63);
                    break;
                }
        }

        c.SetFlagsResult(size, lo, overflow, overflow);
        return ExecStatus.Continue;
    }

    /// <summary>IMUL reg, r/m and IMUL reg, r/m, imm: the product truncated to the register size.</summary>
    public static int Imul(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = op.OpSize;
        ulong src;
        if (op.R1 != Reg.NoReg)
        {
            src = c.GetReg(op.R1, size);
        }
        else
        {
            ChargeMemoryForm(c);
            if (!c.ReadMem(op.Seg, c.Ea(ref op), size, out src))
            {
                return ExecStatus.Fault;
            }
        }

        // Three-operand forms multiply r/m by the immediate; two-operand forms multiply into the destination.
        long a = op.OpCount == 3 ? (long)SignExtend(op.Imm, size) : (long)SignExtend(c.GetReg(op.R0, size), size);
        long b = (long)SignExtend(src, size);
        ulong lo;
        bool overflow;
        if (size == 8)
        {
            long hi = Math.BigMul(a, b, out long l);
            lo = (ulong)l;
            overflow = hi != (l >> 63);
        }
        else
        {
            long p = a * b;
            lo = (ulong)p & Cpu.Cpu.SizeMask(size);
            overflow = p != (long)SignExtend((ulong)p, size);
        }

        c.SetReg(op.R0, size, lo);
        c.SetFlagsResult(size, lo, overflow, overflow);
        return ExecStatus.Continue;
    }

    /// <summary>Form selector for IMUL reg, reg and IMUL reg, reg, imm (the register forms; memory sources keep <see cref="Imul"/>).</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickImul(ref DecodedOp op)
    {
        if (op.R0 >= 16 || op.R1 >= 16)
        {
            return null;
        }

        return op.OpCount == 3
            ? ByWidth(op.OpSize, &ImulRRI<Dw8>, &ImulRRI<Dw16>, &ImulRRI<Dw32>, &ImulRRI<Dw64>)
            : ByWidth(op.OpSize, &ImulRR<Dw8>, &ImulRR<Dw16>, &ImulRR<Dw32>, &ImulRR<Dw64>);
    }

    /// <summary><see cref="Imul"/>, reg ← reg × reg.</summary>
    internal static int ImulRR<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        ref ulong dst = ref c.GprUnchecked(op.R0);
        ImulV<TW>(c, ref dst, dst, c.GprUnchecked(op.R1));
        return ExecStatus.Continue;
    }

    /// <summary><see cref="Imul"/>, reg ← reg × imm.</summary>
    internal static int ImulRRI<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        ImulV<TW>(c, ref c.GprUnchecked(op.R0), c.GprUnchecked(op.R1), op.Imm);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// Two- and three-operand IMUL on register values: <paramref name="dst"/> = <paramref name="a"/> ×
    /// <paramref name="b"/>, both sign-extended from the width (compiled blocks pass the registers they hold in
    /// locals; docs/cpu.md, "Registers in locals").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ImulV<TW>(Cpu.Cpu c, ref ulong dst, ulong a, ulong b)
        where TW : struct, IDataWidth
        => ImulInto<TW>(c, ref dst, (long)SignExtend(a, TW.Bytes), (long)SignExtend(b, TW.Bytes));

    /// <summary>
    /// <see cref="ImulV{TW}"/> without the flags, for a compiled block where a later op sets them all before anything
    /// reads them: the low bits of a product are the same signed or unsigned.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ImulQuietV<TW>(Cpu.Cpu c, ref ulong dst, ulong a, ulong b)
        where TW : struct, IDataWidth
        => Store<TW>(ref dst, a * b);

    /// <summary>The truncated product of two sign-extended operands into <paramref name="dst"/>, flags as <see cref="Imul"/> sets them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ImulInto<TW>(Cpu.Cpu c, ref ulong dst, long a, long b)
        where TW : struct, IDataWidth
    {
        ulong lo;
        bool overflow;
        if (TW.Bytes == 8)
        {
            long hi = Math.BigMul(a, b, out long l);
            lo = (ulong)l;
            overflow = hi != (l >> 63);
        }
        else
        {
            long p = a * b;
            lo = Narrow<TW>((ulong)p);
            overflow = p != (long)SignExtend(lo, TW.Bytes);
        }

        Store<TW>(ref dst, lo);
        c.SetFlagsResult(TW.Bytes, lo, overflow, overflow);
    }

    /// <summary>DIV r/m: rDX:rAX (AX for bytes) ÷ src, unsigned; quotient to rAX (AL), remainder to rDX (AH).</summary>
    public static int Div(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadRmSource(c, ref op, out ulong src))
        {
            return ExecStatus.Fault;
        }

        if (src == 0)
        {
            return c.RaiseDE();
        }

        int size = op.OpSize;
        switch (size)
        {
            case 1:
                {
                    ulong n = c.GetReg(Reg.RAX, 2);
                    ulong q = n / src;
                    if (q > 0xFF)
                    {
                        return c.RaiseDE();
                    }

                    c.SetReg(Reg.RAX, 2, q | ((n % src) << 8));
                    return ExecStatus.Continue;
                }

            case 2:
            case 4:
                {
                    int w = size * 8;
                    ulong n = (c.GetReg(Reg.RDX, size) << w) | c.GetReg(Reg.RAX, size);
                    ulong q = n / src;
                    if (q > Cpu.Cpu.SizeMask(size))
                    {
                        return c.RaiseDE();
                    }

                    c.SetReg(Reg.RAX, size, q);
                    c.SetReg(Reg.RDX, size, n % src);
                    return ExecStatus.Continue;
                }

            default:
                {
                    ulong hi = c.Gpr[Reg.RDX];
                    if (hi >= src)
                    {
                        return c.RaiseDE();
                    }

                    if (hi == 0)
                    {
                        // The common case (RDX cleared before the divide): a 64-bit divide gives the same quotient
                        // and remainder as the 128-bit one, which the runtime does in software.
                        (c.Gpr[Reg.RAX], c.Gpr[Reg.RDX]) = Math.DivRem(c.Gpr[Reg.RAX], src);
                        return ExecStatus.Continue;
                    }

                    UInt128 n = ((UInt128)hi << 64) | c.Gpr[Reg.RAX];
                    c.Gpr[Reg.RAX] = (ulong)(n / src);
                    c.Gpr[Reg.RDX] = (ulong)(n % src);
                    return ExecStatus.Continue;
                }
        }
    }

    /// <summary>IDIV r/m: signed; the quotient truncates toward zero and the remainder has the dividend's sign.</summary>
    public static int Idiv(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadRmSource(c, ref op, out ulong s))
        {
            return ExecStatus.Fault;
        }

        if (s == 0)
        {
            return c.RaiseDE();
        }

        int size = op.OpSize;
        long d = (long)SignExtend(s, size);
        if (size == 8 && (long)c.Gpr[Reg.RDX] == ((long)c.Gpr[Reg.RAX] >> 63))
        {
            // RDX:RAX is RAX sign-extended (CQO before the divide): a 64-bit divide gives the same result, except
            // for INT64_MIN / −1, whose quotient 2^63 does not fit.
            long n64 = (long)c.Gpr[Reg.RAX];
            if (n64 == long.MinValue && d == -1)
            {
                return c.RaiseDE();
            }

            (long q64, long r64) = Math.DivRem(n64, d);
            c.Gpr[Reg.RAX] = (ulong)q64;
            c.Gpr[Reg.RDX] = (ulong)r64;
            return ExecStatus.Continue;
        }

        if (size == 8)
        {
            Int128 n = (Int128)(((UInt128)c.Gpr[Reg.RDX] << 64) | c.Gpr[Reg.RAX]);
            // INT128_MIN / −1 overflows Int128 itself: that dividend always faults (quotient 2^127).
            if (n == Int128.MinValue && d == -1)
            {
                return c.RaiseDE();
            }

            Int128 q = n / d;
            if (q > long.MaxValue || q < long.MinValue)
            {
                return c.RaiseDE();
            }

            c.Gpr[Reg.RAX] = (ulong)(long)q;
            c.Gpr[Reg.RDX] = (ulong)(long)(n % d);
            return ExecStatus.Continue;
        }

        long num;
        if (size == 1)
        {
            num = (short)c.GetReg(Reg.RAX, 2);
        }
        else
        {
            int w = size * 8;
            ulong raw = (c.GetReg(Reg.RDX, size) << w) | c.GetReg(Reg.RAX, size);
            num = (long)SignExtend(raw, size * 2);
        }

        long quot = num / d;
        long rem = num % d;
        long max = (long)(Cpu.Cpu.SizeMask(size) >> 1);
        if (quot > max || quot < -max - 1)
        {
            return c.RaiseDE();
        }

        if (size == 1)
        {
            c.SetReg(Reg.RAX, 2, ((ulong)quot & 0xFF) | (((ulong)rem & 0xFF) << 8));
        }
        else
        {
            c.SetReg(Reg.RAX, size, (ulong)quot);
            c.SetReg(Reg.RDX, size, (ulong)rem);
        }

        return ExecStatus.Continue;
    }
}
