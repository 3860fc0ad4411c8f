using Iced.Intel;

namespace Emulator.Tests.Core.Differential;

/// <summary>Instruction groups the differential test draws from.</summary>
public enum DiffGroup
{
    Alu,
    Shift,
    MulDiv,
    Bit,
    Cond,
    Move,
    Mixed,
}

/// <summary>One instruction of a generated sequence.</summary>
/// <param name="Ins">The instruction.</param>
/// <param name="Counted">False for set-up instructions the generator inserted (guards, flag cleansers).</param>
/// <param name="PoisonAfter">Status flags left undefined after it runs.</param>
internal readonly record struct Step(Instruction Ins, bool Counted, ulong PoisonAfter);

/// <summary>
/// Generates random user-mode integer instruction sequences that run identically on the host and in
/// the interpreter: operands are registers other than RSP, absolute addresses in the shared data
/// region, and immediates. Instructions that could fault get guards (divisor and dividend set so no
/// #DE occurs; BT's register bit offset kept small; shift counts in CL made known).
/// </summary>
internal sealed class SequenceGenerator
{
    private static Dictionary<DiffGroup, Code[]>? s_codeLists;

    private static Dictionary<DiffGroup, Code[]> s_codes => s_codeLists ??= BuildCodeLists();

    private readonly Random _rng;
    private readonly ulong _data;
    private readonly List<Step> _steps = [];
    private ulong _poison;

    public SequenceGenerator(Random rng, ulong dataAddress)
    {
        _rng = rng;
        _data = dataAddress;
    }

    public static int CodeCount(DiffGroup g) => s_codes[g].Length;

    /// <summary>A sequence of <paramref name="count"/> counted instructions of <paramref name="group"/> (plus guards).</summary>
    public List<Step> Generate(DiffGroup group, int count)
    {
        _steps.Clear();
        _poison = 0;
        Code[] codes = s_codes[group];
        int made = 0;
        while (made < count)
        {
            Code code = codes[_rng.Next(codes.Length)];
            if (group == DiffGroup.Cond && _rng.Next(2) == 0)
            {
                // Vary the flags between condition readers with a random ALU instruction.
                code = s_codes[DiffGroup.Alu][_rng.Next(s_codes[DiffGroup.Alu].Length)];
            }

            if (TryEmit(code))
            {
                made++;
            }
        }

        return [.. _steps];
    }

    // ---- code lists ----

    private static readonly Mnemonic[] s_alu =
    [
        Mnemonic.Add, Mnemonic.Adc, Mnemonic.Sub, Mnemonic.Sbb, Mnemonic.And, Mnemonic.Or, Mnemonic.Xor,
        Mnemonic.Cmp, Mnemonic.Test, Mnemonic.Inc, Mnemonic.Dec, Mnemonic.Neg, Mnemonic.Not,
        Mnemonic.Clc, Mnemonic.Stc, Mnemonic.Cmc,
    ];

    private static readonly Mnemonic[] s_shift =
    [
        Mnemonic.Shl, Mnemonic.Sal, Mnemonic.Shr, Mnemonic.Sar, Mnemonic.Rol, Mnemonic.Ror, Mnemonic.Rcl,
        Mnemonic.Rcr, Mnemonic.Shld, Mnemonic.Shrd,
    ];

    private static readonly Mnemonic[] s_mulDiv = [Mnemonic.Mul, Mnemonic.Imul, Mnemonic.Div, Mnemonic.Idiv];

    private static readonly Mnemonic[] s_bit =
    [
        Mnemonic.Bt, Mnemonic.Bts, Mnemonic.Btr, Mnemonic.Btc, Mnemonic.Bsf, Mnemonic.Bsr, Mnemonic.Bswap,
    ];

    private static readonly Mnemonic[] s_move =
    [
        Mnemonic.Mov, Mnemonic.Movzx, Mnemonic.Movsx, Mnemonic.Movsxd, Mnemonic.Xchg, Mnemonic.Lea,
        Mnemonic.Cbw, Mnemonic.Cwde, Mnemonic.Cdqe, Mnemonic.Cwd, Mnemonic.Cdq, Mnemonic.Cqo,
        Mnemonic.Xadd, Mnemonic.Cmpxchg,
    ];

    private static readonly HashSet<Mnemonic> s_lockable =
    [
        Mnemonic.Add, Mnemonic.Adc, Mnemonic.Sub, Mnemonic.Sbb, Mnemonic.And, Mnemonic.Or, Mnemonic.Xor,
        Mnemonic.Inc, Mnemonic.Dec, Mnemonic.Neg, Mnemonic.Not, Mnemonic.Bts, Mnemonic.Btr, Mnemonic.Btc,
        Mnemonic.Xadd, Mnemonic.Cmpxchg, Mnemonic.Xchg,
    ];

    private static Dictionary<DiffGroup, Code[]> BuildCodeLists()
    {
        var lists = new Dictionary<DiffGroup, List<Code>>();
        foreach (DiffGroup g in Enum.GetValues<DiffGroup>())
        {
            lists[g] = [];
        }

        foreach (Code code in Enum.GetValues<Code>())
        {
            if (code == Code.INVALID || code.Encoding() != EncodingKind.Legacy || !Supported(code))
            {
                continue;
            }

            Mnemonic m = code.Mnemonic();
            DiffGroup? group = null;
            if (Array.IndexOf(s_alu, m) >= 0) group = DiffGroup.Alu;
            else if (Array.IndexOf(s_shift, m) >= 0) group = DiffGroup.Shift;
            else if (Array.IndexOf(s_mulDiv, m) >= 0) group = DiffGroup.MulDiv;
            else if (Array.IndexOf(s_bit, m) >= 0) group = DiffGroup.Bit;
            else if (m is >= Mnemonic.Cmova and <= Mnemonic.Cmovs || (m is >= Mnemonic.Seta and <= Mnemonic.Sets && code.ConditionCode() != ConditionCode.None))
            {
                group = DiffGroup.Cond;
            }
            else if (Array.IndexOf(s_move, m) >= 0 && global::Emulator.Core.Exec.Exec.Table.IsImplemented(code))
            {
                // Another group owns these handlers: test what main has implemented.
                group = DiffGroup.Move;
            }

            if (group is { } gr)
            {
                lists[gr].Add(code);
                lists[DiffGroup.Mixed].Add(code);
            }
        }

        var result = new Dictionary<DiffGroup, Code[]>();
        foreach (var kv in lists)
        {
            result[kv.Key] = [.. kv.Value];
        }

        return result;
    }

    private static bool Supported(Code code)
    {
        OpCodeInfo info = code.ToOpCode();
        if (!info.Mode64)
        {
            return false;
        }

        for (int i = 0; i < info.OpCount; i++)
        {
            switch (info.GetOpKind(i))
            {
                case OpCodeOperandKind.r8_or_mem:
                case OpCodeOperandKind.r16_or_mem:
                case OpCodeOperandKind.r32_or_mem:
                case OpCodeOperandKind.r64_or_mem:
                case OpCodeOperandKind.r8_reg:
                case OpCodeOperandKind.r16_reg:
                case OpCodeOperandKind.r32_reg:
                case OpCodeOperandKind.r64_reg:
                case OpCodeOperandKind.r8_opcode:
                case OpCodeOperandKind.r16_opcode:
                case OpCodeOperandKind.r32_opcode:
                case OpCodeOperandKind.r64_opcode:
                case OpCodeOperandKind.al:
                case OpCodeOperandKind.cl:
                case OpCodeOperandKind.ax:
                case OpCodeOperandKind.eax:
                case OpCodeOperandKind.rax:
                case OpCodeOperandKind.imm8:
                case OpCodeOperandKind.imm8_const_1:
                case OpCodeOperandKind.imm8sex16:
                case OpCodeOperandKind.imm8sex32:
                case OpCodeOperandKind.imm8sex64:
                case OpCodeOperandKind.imm16:
                case OpCodeOperandKind.imm32:
                case OpCodeOperandKind.imm32sex64:
                case OpCodeOperandKind.imm64:
                case OpCodeOperandKind.mem:
                    break;
                default:
                    return false;
            }
        }

        return true;
    }

    // ---- operands ----

    private enum OpType : byte { Reg, Mem, Imm }

    private struct Operand
    {
        public OpType Type;
        public Register Reg;
        public MemoryOperand Mem;
        public long Imm;
        public int Size;
    }

    private Register RandomReg(int size)
    {
        while (true)
        {
            if (size == 1)
            {
                int i = _rng.Next(16);
                if (i != 8)
                {
                    return Register.AL + i; // AL..BL, AH..BH, (no SPL), BPL, SIL, DIL, R8L..R15L
                }

                continue;
            }

            int r = _rng.Next(16);
            if (r == 4)
            {
                continue;
            }

            return size switch
            {
                2 => Register.AX + r,
                4 => Register.EAX + r,
                _ => Register.RAX + r,
            };
        }
    }

    private MemoryOperand RandomMem(int size)
    {
        long off = 64 + _rng.Next(HostCpu.DataSize - 4096 - 128 + 4096 - 64);
        off = Math.Min(off, HostCpu.DataSize - 72);
        if (_rng.Next(2) == 0 && size > 1)
        {
            off &= ~(long)(size - 1);
        }

        return new MemoryOperand(Register.None, Register.None, 1, (long)_data + off, 4);
    }

    private long RandomImm(int bits, bool signed = true)
    {
        long v = _rng.Next(8) switch
        {
            0 => 0,
            1 => -1,
            2 => 1,
            3 => signed ? -(1L << (bits - 1)) : 1L << (bits - 1),
            4 => (1L << (bits - 1)) - 1,
            _ => _rng.NextInt64(),
        };
        if (bits == 64)
        {
            return v;
        }

        // Truncate and sign-extend to the field width.
        int sh = 64 - bits;
        return (v << sh) >> sh;
    }

    private bool BuildOperands(Code code, Span<Operand> ops, out int count)
    {
        OpCodeInfo info = code.ToOpCode();
        count = info.OpCount;
        bool memOk = true;
        for (int i = 0; i < count; i++)
        {
            ref Operand o = ref ops[i];
            o = default;
            switch (info.GetOpKind(i))
            {
                case OpCodeOperandKind.r8_or_mem: RegOrMem(ref o, 1, ref memOk); break;
                case OpCodeOperandKind.r16_or_mem: RegOrMem(ref o, 2, ref memOk); break;
                case OpCodeOperandKind.r32_or_mem: RegOrMem(ref o, 4, ref memOk); break;
                case OpCodeOperandKind.r64_or_mem: RegOrMem(ref o, 8, ref memOk); break;
                case OpCodeOperandKind.r8_reg: case OpCodeOperandKind.r8_opcode: Reg(ref o, RandomReg(1)); break;
                case OpCodeOperandKind.r16_reg: case OpCodeOperandKind.r16_opcode: Reg(ref o, RandomReg(2)); break;
                case OpCodeOperandKind.r32_reg: case OpCodeOperandKind.r32_opcode: Reg(ref o, RandomReg(4)); break;
                case OpCodeOperandKind.r64_reg: case OpCodeOperandKind.r64_opcode: Reg(ref o, RandomReg(8)); break;
                case OpCodeOperandKind.al: Reg(ref o, Register.AL); break;
                case OpCodeOperandKind.cl: Reg(ref o, Register.CL); break;
                case OpCodeOperandKind.ax: Reg(ref o, Register.AX); break;
                case OpCodeOperandKind.eax: Reg(ref o, Register.EAX); break;
                case OpCodeOperandKind.rax: Reg(ref o, Register.RAX); break;
                case OpCodeOperandKind.mem:
                    o.Type = OpType.Mem;
                    o.Mem = RandomMem(8);
                    break;
                case OpCodeOperandKind.imm8_const_1: Imm(ref o, 1); break;
                case OpCodeOperandKind.imm8: Imm(ref o, RandomImm(8)); break;
                case OpCodeOperandKind.imm8sex16:
                case OpCodeOperandKind.imm8sex32:
                case OpCodeOperandKind.imm8sex64:
                    Imm(ref o, RandomImm(8)); break;
                case OpCodeOperandKind.imm16: Imm(ref o, RandomImm(16)); break;
                case OpCodeOperandKind.imm32: case OpCodeOperandKind.imm32sex64: Imm(ref o, RandomImm(32)); break;
                case OpCodeOperandKind.imm64: Imm(ref o, RandomImm(64)); break;
                default: return false;
            }
        }

        return true;
    }

    private void RegOrMem(ref Operand o, int size, ref bool memOk)
    {
        o.Size = size;
        if (memOk && _rng.Next(100) < 40)
        {
            o.Type = OpType.Mem;
            o.Mem = RandomMem(size);
            memOk = false; // one memory operand per instruction
        }
        else
        {
            o.Type = OpType.Reg;
            o.Reg = RandomReg(size);
        }
    }

    private static void Reg(ref Operand o, Register r)
    {
        o.Type = OpType.Reg;
        o.Reg = r;
        o.Size = r.GetSize();
    }

    private static void Imm(ref Operand o, long v)
    {
        o.Type = OpType.Imm;
        o.Imm = v;
    }

    private static Instruction Create(Code code, ReadOnlySpan<Operand> ops, int count)
    {
        return count switch
        {
            0 => Instruction.Create(code),
            1 => ops[0].Type == OpType.Reg ? Instruction.Create(code, ops[0].Reg) : Instruction.Create(code, ops[0].Mem),
            2 => (ops[0].Type, ops[1].Type) switch
            {
                (OpType.Reg, OpType.Reg) => Instruction.Create(code, ops[0].Reg, ops[1].Reg),
                (OpType.Reg, OpType.Mem) => Instruction.Create(code, ops[0].Reg, ops[1].Mem),
                (OpType.Mem, OpType.Reg) => Instruction.Create(code, ops[0].Mem, ops[1].Reg),
                (OpType.Reg, OpType.Imm) => Instruction.Create(code, ops[0].Reg, ops[1].Imm),
                (OpType.Mem, OpType.Imm) => Instruction.Create(code, ops[0].Mem, (int)ops[1].Imm),
                _ => throw new InvalidOperationException(code.ToString()),
            },
            _ => (ops[0].Type, ops[1].Type, ops[2].Type) switch
            {
                (OpType.Reg, OpType.Reg, OpType.Imm) => Instruction.Create(code, ops[0].Reg, ops[1].Reg, (int)ops[2].Imm),
                (OpType.Reg, OpType.Mem, OpType.Imm) => Instruction.Create(code, ops[0].Reg, ops[1].Mem, (int)ops[2].Imm),
                (OpType.Mem, OpType.Reg, OpType.Imm) => Instruction.Create(code, ops[0].Mem, ops[1].Reg, (int)ops[2].Imm),
                (OpType.Reg, OpType.Reg, OpType.Reg) => Instruction.Create(code, ops[0].Reg, ops[1].Reg, ops[2].Reg),
                (OpType.Mem, OpType.Reg, OpType.Reg) => Instruction.Create(code, ops[0].Mem, ops[1].Reg, ops[2].Reg),
                _ => throw new InvalidOperationException(code.ToString()),
            },
        };
    }

    private static bool Encodable(in Instruction ins)
    {
        var enc = Encoder.Create(64, new NullWriter());
        return enc.TryEncode(ins, 0, out _, out _);
    }

    private sealed class NullWriter : CodeWriter
    {
        public override void WriteByte(byte value)
        {
        }
    }

    // ---- emission ----

    private void Emit(Instruction ins, bool counted, int shiftCount = 0)
    {
        FlagEffect e = FlagEffect.Of(ins, shiftCount);
        if ((e.Read & _poison) != 0)
        {
            // A flag this instruction reads is undefined: define all six first with a CMP.
            Register a = RandomReg(8), b = RandomReg(8);
            Emit(Instruction.Create(Code.Cmp_rm64_r64, a, b), false);
        }

        _poison = e.Apply(_poison);
        _steps.Add(new Step(ins, counted, _poison));
    }

    /// <summary>Sets a register or memory operand of <paramref name="size"/> bytes to <paramref name="v"/> with AND 0 / OR imm.</summary>
    private void SetValue(Operand target, int size, long v)
    {
        (Code and, Code or) = size switch
        {
            1 => (Code.And_rm8_imm8, Code.Or_rm8_imm8),
            2 => (Code.And_rm16_imm8, Code.Or_rm16_imm16),
            4 => (Code.And_rm32_imm8, Code.Or_rm32_imm32),
            _ => (Code.And_rm64_imm8, Code.Or_rm64_imm32),
        };
        int sh = 64 - (Math.Min(size, 4) * 8);
        int imm = (int)((v << sh) >> sh);
        if (target.Type == OpType.Reg)
        {
            Emit(Instruction.Create(and, target.Reg, 0), false);
            Emit(Instruction.Create(or, target.Reg, imm), false);
        }
        else
        {
            Emit(Instruction.Create(and, target.Mem, 0), false);
            Emit(Instruction.Create(or, target.Mem, imm), false);
        }
    }

    private static Operand RegOp(Register r) => new() { Type = OpType.Reg, Reg = r, Size = r.GetSize() };

    private bool TryEmit(Code code)
    {
        Span<Operand> ops = stackalloc Operand[3];
        if (!BuildOperands(code, ops, out int count))
        {
            return false;
        }

        Mnemonic m = code.Mnemonic();
        int size = count > 0 ? (ops[0].Type == OpType.Reg ? ops[0].Reg.GetSize() : code.ToOpCode().OperandSize / 8) : 0;
        if (count > 0 && ops[0].Type == OpType.Mem)
        {
            size = MemSize(code);
        }

        int shiftCount = 0;
        bool isShift = Array.IndexOf(s_shift, m) >= 0;
        if (isShift)
        {
            int w = size * 8;
            bool dbl16 = m is Mnemonic.Shld or Mnemonic.Shrd && size == 2;
            int PickCount()
            {
                int c = _rng.Next(4) switch
                {
                    0 => _rng.Next(256),
                    1 => _rng.Next(3),
                    _ => _rng.Next(w + 2),
                };
                if (dbl16 && (c & 31) > 16)
                {
                    c &= 15;
                }

                return c;
            }

            int countOp = m is Mnemonic.Shld or Mnemonic.Shrd ? 2 : 1;
            if (ops[countOp].Type == OpType.Reg)
            {
                // CL form: make the count known so the undefined-flag table is exact.
                shiftCount = PickCount();
                if (!ValidFor(code, ops, count))
                {
                    return false;
                }

                SetValue(RegOp(Register.CL), 1, (sbyte)shiftCount);
                shiftCount = (byte)(sbyte)shiftCount;
            }
            else if (code.ToOpCode().GetOpKind(countOp) == OpCodeOperandKind.imm8_const_1)
            {
                shiftCount = 1;
            }
            else
            {
                shiftCount = PickCount();
                ops[countOp].Imm = (sbyte)shiftCount;
                shiftCount &= 0xFF;
            }

            if (m is Mnemonic.Rcl or Mnemonic.Rcr)
            {
                int k = _rng.Next(3);
                if (k == 1) Emit(Instruction.Create(Code.Stc), false);
                if (k == 2) Emit(Instruction.Create(Code.Cmc), false);
            }
        }
        else if (m is Mnemonic.Div or Mnemonic.Idiv)
        {
            if (!GuardDivide(code, m, ops[0], size))
            {
                return false;
            }
        }
        else if (m is Mnemonic.Bt or Mnemonic.Bts or Mnemonic.Btr or Mnemonic.Btc && ops[0].Type == OpType.Mem && ops[1].Type == OpType.Reg)
        {
            // A register bit offset reaches memory around the operand: keep it within ±200 bits.
            if (!ValidFor(code, ops, count))
            {
                return false;
            }

            SetValue(ops[1], size, _rng.Next(-200, 200));
        }

        if (!ValidFor(code, ops, count))
        {
            return false;
        }

        Instruction ins = Create(code, ops, count);
        if (Excluded(ins))
        {
            return false;
        }

        if (count > 0 && ops[0].Type == OpType.Mem && s_lockable.Contains(m) && _rng.Next(4) == 0)
        {
            ins.HasLockPrefix = true;
        }

        if (!Encodable(ins))
        {
            return false;
        }

        Emit(ins, true, shiftCount);
        return true;
    }

    /// <summary>
    /// Forms left out because the host is not the reference for them (documented in the report):
    /// CMPXCHG r32, r32 that fails leaves the destination's upper half alone on the Intel host; the
    /// APM describes a write of the destination, which zero-extends it.
    /// </summary>
    private static bool Excluded(in Instruction ins) =>
        ins.Code == Code.Cmpxchg_rm32_r32 && ins.Op0Kind == OpKind.Register;

    private static int MemSize(Code code) => code.ToOpCode().GetOpKind(0) switch
    {
        OpCodeOperandKind.r8_or_mem => 1,
        OpCodeOperandKind.r16_or_mem => 2,
        OpCodeOperandKind.r32_or_mem => 4,
        _ => 8,
    };

    /// <summary>Checks (before any guard is emitted) that the operands make an encodable instruction.</summary>
    private static bool ValidFor(Code code, ReadOnlySpan<Operand> ops, int count)
    {
        try
        {
            return Encodable(Create(code, ops, count));
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private bool GuardDivide(Code code, Mnemonic m, Operand divisor, int size)
    {
        if (divisor.Type == OpType.Reg)
        {
            Register full = divisor.Reg.GetFullRegister();
            if (full is Register.RAX or Register.RDX)
            {
                return false;
            }
        }

        Span<Operand> one = [divisor];
        if (!ValidFor(code, one, 1))
        {
            return false;
        }

        int w = size * 8;
        ulong mask = size == 8 ? ulong.MaxValue : (1UL << w) - 1;
        Register hi = size switch { 1 => Register.AH, 2 => Register.DX, 4 => Register.EDX, _ => Register.RDX };
        long v;
        do
        {
            v = RandomImm(Math.Min(w, 32));
        }
        while (v == 0);

        ulong uv = (ulong)v & mask;
        if (m == Mnemonic.Div)
        {
            SetValue(divisor, size, v);
            ulong limit = Math.Min(uv, 1UL << 31);
            long h = (long)(ulong)_rng.NextInt64((long)limit);
            SetValue(RegOp(hi), size, h);
            return true;
        }

        // IDIV: the dividend is the sign extension of the low half, so |quotient| <= |low|; the one
        // overflow (MIN / -1) is excluded by making the low half non-negative when the divisor is -1.
        SetValue(divisor, size, v);
        bool negative = uv != mask && _rng.Next(2) == 0;
        SetValue(RegOp(hi), size, 0);
        Register lo = size switch { 1 or 2 => Register.AX, 4 => Register.EAX, _ => Register.RAX };
        if (negative)
        {
            Emit(Instruction.Create(size switch { 1 => Code.Not_rm8, 2 => Code.Not_rm16, 4 => Code.Not_rm32, _ => Code.Not_rm64 }, hi), false);
        }

        Code bt = (negative, size) switch
        {
            (true, 8) => Code.Bts_rm64_imm8,
            (true, 4) => Code.Bts_rm32_imm8,
            (true, _) => Code.Bts_rm16_imm8,
            (false, 8) => Code.Btr_rm64_imm8,
            (false, 4) => Code.Btr_rm32_imm8,
            (false, _) => Code.Btr_rm16_imm8,
        };
        Emit(Instruction.Create(bt, lo, w - 1), false);
        return true;
    }
}
