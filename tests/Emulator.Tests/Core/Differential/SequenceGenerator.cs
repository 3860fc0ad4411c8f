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
    String,
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

    public static IReadOnlyList<Code> Codes(DiffGroup g) => s_codes[g];

    /// <summary>Every code <see cref="Generate"/> emitted as a counted instruction so far (coverage check).</summary>
    public HashSet<Code> Emitted { get; } = [];

    /// <summary>How many memory operands were rewritten to base/index form.</summary>
    public int RegisterAddressed { get; private set; }

    /// <summary>A sequence of <paramref name="count"/> counted instructions of <paramref name="group"/> (plus guards).</summary>
    public List<Step> Generate(DiffGroup group, int count)
    {
        _steps.Clear();
        _poison = 0;
        Code[] codes = s_codes[group];
        int made = 0;
        while (made < count)
        {
            if (group == DiffGroup.String)
            {
                EmitString();
                made++;
                continue;
            }

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

    private static readonly Code[] s_stringCodes =
    [
        Code.Movsb_m8_m8, Code.Movsw_m16_m16, Code.Movsd_m32_m32, Code.Movsq_m64_m64,
        Code.Cmpsb_m8_m8, Code.Cmpsw_m16_m16, Code.Cmpsd_m32_m32, Code.Cmpsq_m64_m64,
        Code.Scasb_AL_m8, Code.Scasw_AX_m16, Code.Scasd_EAX_m32, Code.Scasq_RAX_m64,
        Code.Lodsb_AL_m8, Code.Lodsw_AX_m16, Code.Lodsd_EAX_m32, Code.Lodsq_RAX_m64,
        Code.Stosb_m8_AL, Code.Stosw_m16_AX, Code.Stosd_m32_EAX, Code.Stosq_m64_RAX,
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

        foreach (Code code in s_stringCodes)
        {
            if (global::Emulator.Core.Exec.Exec.Table.IsImplemented(code))
            {
                lists[DiffGroup.String].Add(code);
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
        if (counted)
        {
            Emitted.Add(ins.Code);
        }
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

        if (_rng.Next(100) < 30 && !TryRegisterAddressing(ref ins))
        {
            return false;
        }

        Emit(ins, true, shiftCount);
        return true;
    }

    // Base/index registers for register-relative addressing: never RSP, and not RAX/RCX/RDX, which
    // the guards (dividend, CL count) set.
    private static readonly Register[] s_addressRegs =
    [
        Register.RBX, Register.RBP, Register.RSI, Register.RDI, Register.R8, Register.R9, Register.R10,
        Register.R11, Register.R12, Register.R13, Register.R14, Register.R15,
    ];

    /// <summary>
    /// Rewrites the absolute memory operand of <paramref name="ins"/> as [base + index·scale + disp]
    /// with registers the instruction does not otherwise use, set right before it.
    /// </summary>
    private bool TryRegisterAddressing(ref Instruction ins)
    {
        int memOp = -1;
        for (int i = 0; i < ins.OpCount; i++)
        {
            if (ins.GetOpKind(i) == OpKind.Memory)
            {
                memOp = i;
            }
        }

        if (memOp < 0)
        {
            return true;
        }

        Span<Register> used = stackalloc Register[4];
        int n = 0;
        for (int i = 0; i < ins.OpCount && n < 4; i++)
        {
            if (ins.GetOpKind(i) == OpKind.Register)
            {
                used[n++] = ins.GetOpRegister(i).GetFullRegister();
            }
        }

        Register b = s_addressRegs[_rng.Next(s_addressRegs.Length)];
        Register x = s_addressRegs[_rng.Next(s_addressRegs.Length)];
        if (used[..n].Contains(b) || used[..n].Contains(x) || b == x)
        {
            return true; // keep the absolute form
        }

        // Implicit register users must not see their inputs changed: MUL/DIV/CMPXCHG use RAX/RDX only.
        long target = (long)ins.MemoryDisplacement64;
        int scale = 1 << _rng.Next(4);
        long index = _rng.Next(-8, 8);
        long disp = _rng.Next(3) switch { 0 => 0, 1 => _rng.Next(-128, 128), _ => _rng.Next(-100_000, 100_000) };
        bool useIndex = _rng.Next(2) == 0;
        long baseValue = target - disp - (useIndex ? index * scale : 0);
        var mem = new MemoryOperand(b, useIndex ? x : Register.None, useIndex ? scale : 1, disp, disp == 0 ? 0 : (disp is >= -128 and < 128 ? 1 : 4));
        Instruction copy = ins;
        copy.MemoryBase = b;
        copy.MemoryIndex = useIndex ? x : Register.None;
        copy.MemoryIndexScale = useIndex ? scale : 1;
        copy.MemoryDisplacement64 = (ulong)disp;
        copy.MemoryDisplSize = mem.DisplSize;
        if (!Encodable(copy))
        {
            return true;
        }

        SetValue(RegOp(b), 8, baseValue);
        if (useIndex)
        {
            SetValue(RegOp(x), 8, index);
        }

        ins = copy;
        RegisterAddressed++;
        return true;
    }

    /// <summary>A string instruction, often with REP/REPE/REPNE, over the data region in either direction.</summary>
    private void EmitString()
    {
        Code code = s_codes[DiffGroup.String][_rng.Next(s_codes[DiffGroup.String].Length)];
        Mnemonic m = code.Mnemonic();
        int size = code.ToOpCode().OperandSize / 8;
        if (size == 0)
        {
            size = 1;
        }

        bool down = _rng.Next(2) == 0;
        Emit(Instruction.Create(down ? Code.Std : Code.Cld), false);
        int rep = _rng.Next(3); // 0 none, 1 REP/REPE, 2 REPNE (CMPS/SCAS only)
        if (rep == 2 && m is not (Mnemonic.Cmpsb or Mnemonic.Cmpsw or Mnemonic.Cmpsd or Mnemonic.Cmpsq
            or Mnemonic.Scasb or Mnemonic.Scasw or Mnemonic.Scasd or Mnemonic.Scasq))
        {
            rep = 1;
        }

        int count = _rng.Next(4) == 0 ? 0 : _rng.Next(1, 17);
        long Pointer()
        {
            int span = 17 * size;
            long lo = 64 + (down ? span : 0), hi = HostCpu.DataSize - 64 - (down ? 0 : span);
            return (long)_data + lo + _rng.Next((int)(hi - lo));
        }

        SetValue(RegOp(Register.RSI), 8, Pointer());
        SetValue(RegOp(Register.RDI), 8, Pointer());
        if (rep != 0)
        {
            SetValue(RegOp(Register.RCX), 8, count);
        }

        var kind = rep switch { 1 => RepPrefixKind.Repe, 2 => RepPrefixKind.Repne, _ => RepPrefixKind.None };
        Instruction ins = m switch
        {
            Mnemonic.Movsb => Instruction.CreateMovsb(64, Register.None, kind),
            Mnemonic.Movsw => Instruction.CreateMovsw(64, Register.None, kind),
            Mnemonic.Movsd => Instruction.CreateMovsd(64, Register.None, kind),
            Mnemonic.Movsq => Instruction.CreateMovsq(64, Register.None, kind),
            Mnemonic.Cmpsb => Instruction.CreateCmpsb(64, Register.None, kind),
            Mnemonic.Cmpsw => Instruction.CreateCmpsw(64, Register.None, kind),
            Mnemonic.Cmpsd => Instruction.CreateCmpsd(64, Register.None, kind),
            Mnemonic.Cmpsq => Instruction.CreateCmpsq(64, Register.None, kind),
            Mnemonic.Scasb => Instruction.CreateScasb(64, kind),
            Mnemonic.Scasw => Instruction.CreateScasw(64, kind),
            Mnemonic.Scasd => Instruction.CreateScasd(64, kind),
            Mnemonic.Scasq => Instruction.CreateScasq(64, kind),
            Mnemonic.Lodsb => Instruction.CreateLodsb(64, Register.None, kind),
            Mnemonic.Lodsw => Instruction.CreateLodsw(64, Register.None, kind),
            Mnemonic.Lodsd => Instruction.CreateLodsd(64, Register.None, kind),
            Mnemonic.Lodsq => Instruction.CreateLodsq(64, Register.None, kind),
            Mnemonic.Stosb => Instruction.CreateStosb(64, kind),
            Mnemonic.Stosw => Instruction.CreateStosw(64, kind),
            Mnemonic.Stosd => Instruction.CreateStosd(64, kind),
            _ => Instruction.CreateStosq(64, kind),
        };

        // A REP string op with RCX = 0 changes no flags; otherwise CMPS/SCAS set all six like CMP.
        Emit(ins, true, rep != 0 ? count : 1);
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
