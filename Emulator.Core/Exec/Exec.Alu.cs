using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Integer ALU group (APM vol. 3 "ADD" … "XOR"): ADD ADC SUB SBB AND OR XOR CMP TEST, INC DEC NEG NOT,
/// and the flag instructions CLC STC CMC CLD STD. Every legacy encoding Iced has is registered by
/// mnemonic, so r/m,r · r,r/m · r/m,imm · r/m,imm8 (sign-extended) · rAX,imm forms all share one
/// handler per operation, specialised over a struct type. An invalid LOCK prefix (register
/// destination, non-lockable instruction) is already turned into <see cref="Code.INVALID"/> (#UD) by
/// Iced's decoder, so the handlers accept LOCK on memory forms without further checks.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterAlu(HandlerTable t)
    {
        foreach (Code code in LegacyCodes)
        {
            switch (code.Mnemonic())
            {
                case Mnemonic.Add: t.Add(code, &Binary<AddOp>); t.AddForms(code, &PickBinary<AddOp>); break;
                case Mnemonic.Adc: t.Add(code, &Binary<AdcOp>); t.AddForms(code, &PickBinary<AdcOp>); break;
                case Mnemonic.Sub: t.Add(code, &Binary<SubOp>); t.AddForms(code, &PickBinary<SubOp>); break;
                case Mnemonic.Sbb: t.Add(code, &Binary<SbbOp>); t.AddForms(code, &PickBinary<SbbOp>); break;
                case Mnemonic.And: t.Add(code, &Binary<AndOp>); t.AddForms(code, &PickBinary<AndOp>); break;
                case Mnemonic.Or: t.Add(code, &Binary<OrOp>); t.AddForms(code, &PickBinary<OrOp>); break;
                case Mnemonic.Xor: t.Add(code, &Binary<XorOp>); t.AddForms(code, &PickBinary<XorOp>); break;
                case Mnemonic.Cmp: t.Add(code, &Binary<CmpOp>); t.AddForms(code, &PickBinary<CmpOp>); break;
                case Mnemonic.Test: t.Add(code, &Binary<TestOp>); t.AddForms(code, &PickBinary<TestOp>); break;
                case Mnemonic.Inc: t.Add(code, &Unary<IncOp>); t.AddForms(code, &PickUnary<IncOp>); break;
                case Mnemonic.Dec: t.Add(code, &Unary<DecOp>); t.AddForms(code, &PickUnary<DecOp>); break;
                case Mnemonic.Neg: t.Add(code, &Unary<NegOp>); t.AddForms(code, &PickUnary<NegOp>); break;
                case Mnemonic.Not: t.Add(code, &Unary<NotOp>); t.AddForms(code, &PickUnary<NotOp>); break;
            }
        }

        t.Add(Code.Clc, &Clc);
        t.Add(Code.Stc, &Stc);
        t.Add(Code.Cmc, &Cmc);
        t.Add(Code.Cld, &Cld);
        t.Add(Code.Std, &Std);
    }

    private static Code[]? s_legacyCodes;

    /// <summary>Every legacy-encoded (non-VEX/EVEX/XOP/3DNow!) Iced code; startup only.</summary>
    internal static Code[] LegacyCodes => s_legacyCodes ??= BuildLegacyCodes();

    private static Code[] BuildLegacyCodes()
    {
        var list = new List<Code>();
        foreach (Code code in Enum.GetValues<Code>())
        {
            if (code != Code.INVALID && code.Encoding() == EncodingKind.Legacy)
            {
                list.Add(code);
            }
        }

        return [.. list];
    }

    /// <summary>
    /// Cycles a memory form costs over its register form: codes are registered as Simple (their
    /// register form) and the memory path adds the difference, so both forms are charged as the cost
    /// table says.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ChargeMemoryForm(Cpu.Cpu c) => c.Cycles += c.MemoryFormCycles;

    /// <summary>A two-operand ALU operation: computes the result and records the flags.</summary>
    internal interface IBinaryOp
    {
        /// <summary>False for CMP and TEST, which only set flags.</summary>
        static abstract bool Writes { get; }

        static abstract ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src);
    }

    /// <summary>
    /// A binary op whose flags depend on nothing but its operands and result (no carry-in), so it can be computed
    /// without them: a compiled block does so where a later op of the block sets every flag again before anything
    /// can read them (docs/cpu.md, "Dead flags").
    /// </summary>
    internal interface IPlainBinaryOp : IBinaryOp
    {
        /// <summary>The result, unmasked, as <see cref="IBinaryOp.Apply"/> returns it.</summary>
        static abstract ulong Result(ulong dst, ulong src);
    }

    /// <summary>ADD/ADC/SUB/SBB/AND/OR/XOR/CMP/TEST in every form: operand 0 is r/m or a register,
    /// operand 1 a register, memory or an immediate (already sign-extended by the decoder).</summary>
    internal static int Binary<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBinaryOp
    {
        int size = op.OpSize;
        ulong src;
        if (op.R1 != Reg.NoReg)
        {
            src = c.GetReg(op.R1, size);
        }
        else if (op.MemOp == 1)
        {
            ChargeMemoryForm(c);
            if (!c.ReadMem(op.Seg, c.Ea(ref op), size, out src))
            {
                return ExecStatus.Fault;
            }
        }
        else
        {
            src = op.Imm & Cpu.Cpu.SizeMask(size);
        }

        if (op.R0 != Reg.NoReg)
        {
            ulong r = T.Apply(c, size, c.GetReg(op.R0, size), src);
            if (T.Writes)
            {
                c.SetReg(op.R0, size, r);
            }

            return ExecStatus.Continue;
        }

        ChargeMemoryForm(c);
        ulong ea = c.Ea(ref op);
        if (!T.Writes)
        {
            if (!c.ReadMem(op.Seg, ea, size, out ulong d))
            {
                return ExecStatus.Fault;
            }

            T.Apply(c, size, d, src);
            return ExecStatus.Continue;
        }

        // ReadMemForWrite checks write access, so the write below cannot fault after the flags changed.
        if (!c.ReadMemForWrite(op.Seg, ea, size, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        return c.WriteMem(op.Seg, ea, size, T.Apply(c, size, dst, src)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>A one-operand read-modify-write operation on r/m.</summary>
    internal interface IUnaryOp
    {
        static abstract ulong Apply(Cpu.Cpu c, int size, ulong dst);
    }

    /// <summary>INC, DEC, NEG: a unary op with flags a compiled block may leave out (<see cref="IPlainBinaryOp"/>).</summary>
    internal interface IPlainUnaryOp : IUnaryOp
    {
        /// <summary>The result, unmasked, as <see cref="IUnaryOp.Apply"/> returns it.</summary>
        static abstract ulong Result(ulong dst);
    }

    internal static int Unary<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IUnaryOp
    {
        int size = op.OpSize;
        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, size, T.Apply(c, size, c.GetReg(op.R0, size)));
            return ExecStatus.Continue;
        }

        ChargeMemoryForm(c);
        ulong ea = c.Ea(ref op);
        if (!c.ReadMemForWrite(op.Seg, ea, size, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        return c.WriteMem(op.Seg, ea, size, T.Apply(c, size, dst)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    // ---- Forms: Binary and Unary specialised per operand kinds, size and addressing (same semantics, fewer tests) ----

    /// <summary>Form selector for the two-operand ALU codes; high-byte registers (AH…BH) keep the general handler.</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickBinary<T>(ref DecodedOp op)
        where T : struct, IBinaryOp
    {
        int size = op.OpSize;
        if (op.R0 < 16)
        {
            if (op.R1 < 16)
            {
                return ByWidth(size, &AluRR<T, Dw8>, &AluRR<T, Dw16>, &AluRR<T, Dw32>, &AluRR<T, Dw64>);
            }

            if (op.R1 == Reg.NoReg && op.MemOp == Reg.NoReg)
            {
                return ByWidth(size, &AluRI<T, Dw8>, &AluRI<T, Dw16>, &AluRI<T, Dw32>, &AluRI<T, Dw64>);
            }

            if (op.R1 == Reg.NoReg && op.MemOp == 1)
            {
                return size switch
                {
                    1 => ByAddressing(ref op, &AluRM<T, Dw8, AddrBase64>, &AluRM<T, Dw8, AddrBaseIndex64>, &AluRM<T, Dw8, AddrRip64>, &AluRM<T, Dw8, AddrAny>),
                    2 => ByAddressing(ref op, &AluRM<T, Dw16, AddrBase64>, &AluRM<T, Dw16, AddrBaseIndex64>, &AluRM<T, Dw16, AddrRip64>, &AluRM<T, Dw16, AddrAny>),
                    4 => ByAddressing(ref op, &AluRM<T, Dw32, AddrBase64>, &AluRM<T, Dw32, AddrBaseIndex64>, &AluRM<T, Dw32, AddrRip64>, &AluRM<T, Dw32, AddrAny>),
                    8 => ByAddressing(ref op, &AluRM<T, Dw64, AddrBase64>, &AluRM<T, Dw64, AddrBaseIndex64>, &AluRM<T, Dw64, AddrRip64>, &AluRM<T, Dw64, AddrAny>),
                    _ => null,
                };
            }

            return null;
        }

        if (op.R0 != Reg.NoReg || op.MemOp != 0)
        {
            return null;
        }

        if (op.R1 < 16)
        {
            return size switch
            {
                1 => ByAddressing(ref op, &AluMR<T, Dw8, AddrBase64>, &AluMR<T, Dw8, AddrBaseIndex64>, &AluMR<T, Dw8, AddrRip64>, &AluMR<T, Dw8, AddrAny>),
                2 => ByAddressing(ref op, &AluMR<T, Dw16, AddrBase64>, &AluMR<T, Dw16, AddrBaseIndex64>, &AluMR<T, Dw16, AddrRip64>, &AluMR<T, Dw16, AddrAny>),
                4 => ByAddressing(ref op, &AluMR<T, Dw32, AddrBase64>, &AluMR<T, Dw32, AddrBaseIndex64>, &AluMR<T, Dw32, AddrRip64>, &AluMR<T, Dw32, AddrAny>),
                8 => ByAddressing(ref op, &AluMR<T, Dw64, AddrBase64>, &AluMR<T, Dw64, AddrBaseIndex64>, &AluMR<T, Dw64, AddrRip64>, &AluMR<T, Dw64, AddrAny>),
                _ => null,
            };
        }

        if (op.R1 == Reg.NoReg)
        {
            return size switch
            {
                1 => ByAddressing(ref op, &AluMI<T, Dw8, AddrBase64>, &AluMI<T, Dw8, AddrBaseIndex64>, &AluMI<T, Dw8, AddrRip64>, &AluMI<T, Dw8, AddrAny>),
                2 => ByAddressing(ref op, &AluMI<T, Dw16, AddrBase64>, &AluMI<T, Dw16, AddrBaseIndex64>, &AluMI<T, Dw16, AddrRip64>, &AluMI<T, Dw16, AddrAny>),
                4 => ByAddressing(ref op, &AluMI<T, Dw32, AddrBase64>, &AluMI<T, Dw32, AddrBaseIndex64>, &AluMI<T, Dw32, AddrRip64>, &AluMI<T, Dw32, AddrAny>),
                8 => ByAddressing(ref op, &AluMI<T, Dw64, AddrBase64>, &AluMI<T, Dw64, AddrBaseIndex64>, &AluMI<T, Dw64, AddrRip64>, &AluMI<T, Dw64, AddrAny>),
                _ => null,
            };
        }

        return null;
    }

    /// <summary>Form selector for INC/DEC/NEG/NOT.</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickUnary<T>(ref DecodedOp op)
        where T : struct, IUnaryOp
    {
        if (op.R0 < 16)
        {
            return ByWidth(op.OpSize, &UnaryR<T, Dw8>, &UnaryR<T, Dw16>, &UnaryR<T, Dw32>, &UnaryR<T, Dw64>);
        }

        if (op.MemOp != 0)
        {
            return null;
        }

        return op.OpSize switch
        {
            1 => ByAddressing(ref op, &UnaryM<T, Dw8, AddrBase64>, &UnaryM<T, Dw8, AddrBaseIndex64>, &UnaryM<T, Dw8, AddrRip64>, &UnaryM<T, Dw8, AddrAny>),
            2 => ByAddressing(ref op, &UnaryM<T, Dw16, AddrBase64>, &UnaryM<T, Dw16, AddrBaseIndex64>, &UnaryM<T, Dw16, AddrRip64>, &UnaryM<T, Dw16, AddrAny>),
            4 => ByAddressing(ref op, &UnaryM<T, Dw32, AddrBase64>, &UnaryM<T, Dw32, AddrBaseIndex64>, &UnaryM<T, Dw32, AddrRip64>, &UnaryM<T, Dw32, AddrAny>),
            8 => ByAddressing(ref op, &UnaryM<T, Dw64, AddrBase64>, &UnaryM<T, Dw64, AddrBaseIndex64>, &UnaryM<T, Dw64, AddrRip64>, &UnaryM<T, Dw64, AddrAny>),
            _ => null,
        };
    }

    /// <summary><see cref="Binary{T}"/>, register ← register.</summary>
    internal static int AluRR<T, TW>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
    {
        AluV<T, TW>(c, ref c.GprUnchecked(op.R0), c.GprUnchecked(op.R1));
        return ExecStatus.Continue;
    }

    /// <summary>
    /// <see cref="AluRR{T, TW}"/> and <see cref="AluRI{T, TW}"/> on a register's value: <paramref name="dst"/> op=
    /// <paramref name="src"/> (a register's value or the immediate), flags recorded. Compiled blocks pass the
    /// registers they hold in locals (docs/cpu.md, "Registers in locals").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void AluV<T, TW>(Cpu.Cpu c, ref ulong dst, ulong src)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
    {
        ulong r = T.Apply(c, TW.Bytes, Narrow<TW>(dst), Narrow<TW>(src));
        if (T.Writes)
        {
            Store<TW>(ref dst, r);
        }
    }

    /// <summary><see cref="Binary{T}"/>, register ← immediate.</summary>
    internal static int AluRI<T, TW>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
    {
        AluV<T, TW>(c, ref c.GprUnchecked(op.R0), op.Imm);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// <see cref="AluV{T, TW}"/> without the flags, for a compiled block where a later op sets them all before
    /// anything can read them: CMP and TEST then do nothing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void AluQuietV<T, TW>(Cpu.Cpu c, ref ulong dst, ulong src)
        where T : struct, IPlainBinaryOp
        where TW : struct, IDataWidth
    {
        if (T.Writes)
        {
            Store<TW>(ref dst, T.Result(Narrow<TW>(dst), Narrow<TW>(src)));
        }
    }

    /// <summary><see cref="Binary{T}"/>, register ← memory.</summary>
    internal static int AluRM<T, TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => AluRMAt<T, TW>(c, ref c.GprUnchecked(op.R0), op.Seg, TA.Ea(c, ref op));

    /// <summary>
    /// <see cref="AluRM{T, TW, TA}"/> once the address is known, on the register <paramref name="dst"/> (compiled
    /// blocks pass a local and the rest as constants); the register is written only when the read succeeded.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int AluRMAt<T, TW>(Cpu.Cpu c, ref ulong dst, int seg, ulong ea)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
    {
        ChargeMemoryForm(c);
        if (!c.ReadMemInline(seg, ea, TW.Bytes, out ulong src))
        {
            return ExecStatus.Fault;
        }

        ulong r = T.Apply(c, TW.Bytes, Narrow<TW>(dst), src);
        if (T.Writes)
        {
            Store<TW>(ref dst, r);
        }

        return ExecStatus.Continue;
    }

    /// <summary><see cref="Binary{T}"/>, memory ← register.</summary>
    internal static int AluMR<T, TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => AluMRAt<T, TW>(c, c.GprUnchecked(op.R1), op.Seg, TA.Ea(c, ref op));

    /// <summary><see cref="AluMR{T, TW, TA}"/> once the address is known, with the source register's value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int AluMRAt<T, TW>(Cpu.Cpu c, ulong src, int seg, ulong ea)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
        => AluMemory<T, TW>(c, seg, ea, Narrow<TW>(src));

    /// <summary><see cref="Binary{T}"/>, memory ← immediate.</summary>
    internal static int AluMI<T, TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => AluMIAt<T, TW>(c, op.Imm, op.Seg, TA.Ea(c, ref op));

    /// <summary><see cref="AluMI{T, TW, TA}"/> once the address is known.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int AluMIAt<T, TW>(Cpu.Cpu c, ulong imm, int seg, ulong ea)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
        => AluMemory<T, TW>(c, seg, ea, Narrow<TW>(imm));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int AluMemory<T, TW>(Cpu.Cpu c, int seg, ulong ea, ulong src)
        where T : struct, IBinaryOp
        where TW : struct, IDataWidth
    {
        ChargeMemoryForm(c);
        if (!T.Writes)
        {
            if (!c.ReadMemInline(seg, ea, TW.Bytes, out ulong d))
            {
                return ExecStatus.Fault;
            }

            T.Apply(c, TW.Bytes, d, src);
            return ExecStatus.Continue;
        }

        // As in Binary: the write-checked read means the write below cannot fault after the flags changed.
        if (!c.ReadMemForWriteInline(seg, ea, TW.Bytes, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        return c.WriteMemInline(seg, ea, TW.Bytes, T.Apply(c, TW.Bytes, dst, src)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary><see cref="Unary{T}"/> on a register.</summary>
    internal static int UnaryR<T, TW>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IUnaryOp
        where TW : struct, IDataWidth
    {
        UnaryV<T, TW>(c, ref c.GprUnchecked(op.R0));
        return ExecStatus.Continue;
    }

    /// <summary><see cref="UnaryR{T, TW}"/> on a register's value (<see cref="AluV{T, TW}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnaryV<T, TW>(Cpu.Cpu c, ref ulong dst)
        where T : struct, IUnaryOp
        where TW : struct, IDataWidth
        => Store<TW>(ref dst, T.Apply(c, TW.Bytes, Narrow<TW>(dst)));

    /// <summary><see cref="UnaryV{T, TW}"/> without the flags (<see cref="AluQuietV{T, TW}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnaryQuietV<T, TW>(Cpu.Cpu c, ref ulong dst)
        where T : struct, IPlainUnaryOp
        where TW : struct, IDataWidth
        => Store<TW>(ref dst, T.Result(Narrow<TW>(dst)));

    /// <summary><see cref="Unary{T}"/> on memory.</summary>
    internal static int UnaryM<T, TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IUnaryOp
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => UnaryMAt<T, TW>(c, op.Seg, TA.Ea(c, ref op));

    /// <summary><see cref="UnaryM{T, TW, TA}"/> once the address is known.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int UnaryMAt<T, TW>(Cpu.Cpu c, int seg, ulong ea)
        where T : struct, IUnaryOp
        where TW : struct, IDataWidth
    {
        ChargeMemoryForm(c);
        if (!c.ReadMemForWriteInline(seg, ea, TW.Bytes, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        return c.WriteMemInline(seg, ea, TW.Bytes, T.Apply(c, TW.Bytes, dst)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    internal struct AddOp : IPlainBinaryOp
    {
        public static bool Writes => true;

        public static ulong Result(ulong dst, ulong src) => dst + src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsAdd(size, dst, src, r);
            return r;
        }
    }

    internal struct AdcOp : IBinaryOp
    {
        public static bool Writes => true;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            uint cin = c.GetCF() ? 1u : 0u;
            ulong r = dst + src + cin;
            c.SetFlagsAdd(size, dst, src, r, cin);
            return r;
        }
    }

    internal struct SubOp : IPlainBinaryOp
    {
        public static bool Writes => true;

        public static ulong Result(ulong dst, ulong src) => dst - src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsSub(size, dst, src, r);
            return r;
        }
    }

    internal struct SbbOp : IBinaryOp
    {
        public static bool Writes => true;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            uint bin = c.GetCF() ? 1u : 0u;
            ulong r = dst - src - bin;
            c.SetFlagsSub(size, dst, src, r, bin);
            return r;
        }
    }

    internal struct CmpOp : IPlainBinaryOp
    {
        public static bool Writes => false;

        public static ulong Result(ulong dst, ulong src) => dst - src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsSub(size, dst, src, r);
            return r;
        }
    }

    internal struct AndOp : IPlainBinaryOp
    {
        public static bool Writes => true;

        public static ulong Result(ulong dst, ulong src) => dst & src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsLogic(size, r);
            return r;
        }
    }

    internal struct TestOp : IPlainBinaryOp
    {
        public static bool Writes => false;

        public static ulong Result(ulong dst, ulong src) => dst & src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsLogic(size, r);
            return r;
        }
    }

    internal struct OrOp : IPlainBinaryOp
    {
        public static bool Writes => true;

        public static ulong Result(ulong dst, ulong src) => dst | src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsLogic(size, r);
            return r;
        }
    }

    internal struct XorOp : IPlainBinaryOp
    {
        public static bool Writes => true;

        public static ulong Result(ulong dst, ulong src) => dst ^ src;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src)
        {
            ulong r = Result(dst, src);
            c.SetFlagsLogic(size, r);
            return r;
        }
    }

    internal struct IncOp : IPlainUnaryOp
    {
        public static ulong Result(ulong dst) => dst + 1;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst)
        {
            ulong r = Result(dst);
            c.SetFlagsIncDec(false, size, dst, r);
            return r;
        }
    }

    internal struct DecOp : IPlainUnaryOp
    {
        public static ulong Result(ulong dst) => dst - 1;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst)
        {
            ulong r = Result(dst);
            c.SetFlagsIncDec(true, size, dst, r);
            return r;
        }
    }

    /// <summary>NEG: 0 − dst; CF = (dst ≠ 0), which the Sub record gives (APM vol. 3 "NEG").</summary>
    internal struct NegOp : IPlainUnaryOp
    {
        public static ulong Result(ulong dst) => 0 - dst;

        public static ulong Apply(Cpu.Cpu c, int size, ulong dst)
        {
            ulong r = Result(dst);
            c.SetFlagsSub(size, 0, dst, r);
            return r;
        }
    }

    /// <summary>NOT changes no flags.</summary>
    internal struct NotOp : IUnaryOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst) => ~dst;
    }

    public static int Clc(Cpu.Cpu c, ref DecodedOp op)
    {
        c.MaterializeFlags();
        c.FlagsBits &= ~Rflags.CF;
        return ExecStatus.Continue;
    }

    public static int Stc(Cpu.Cpu c, ref DecodedOp op)
    {
        c.MaterializeFlags();
        c.FlagsBits |= Rflags.CF;
        return ExecStatus.Continue;
    }

    public static int Cmc(Cpu.Cpu c, ref DecodedOp op)
    {
        c.MaterializeFlags();
        c.FlagsBits ^= Rflags.CF;
        return ExecStatus.Continue;
    }

    /// <summary>DF is not an arithmetic flag, so FlagsBits holds it current even while flags are lazy.</summary>
    public static int Cld(Cpu.Cpu c, ref DecodedOp op)
    {
        c.FlagsBits &= ~Rflags.DF;
        return ExecStatus.Continue;
    }

    public static int Std(Cpu.Cpu c, ref DecodedOp op)
    {
        c.FlagsBits |= Rflags.DF;
        return ExecStatus.Continue;
    }
}
