using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Data movement: MOV, MOVZX/MOVSX/MOVSXD, XCHG, XADD, CMPXCHG/CMPXCHG8B/CMPXCHG16B, LEA, the
/// accumulator sign extensions (CBW…CQO), LAHF/SAHF, XLAT and MOVBE (APM vol. 3).
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterDataMove(HandlerTable t)
    {
        // Every MOV form is "operand 1 → operand 0" at operand size: register, moffs and r/m forms,
        // r/m ← imm (imm32 sign-extended for 64-bit), r64 ← imm64.
        Code[] mov =
        [
            Code.Mov_rm8_r8, Code.Mov_rm16_r16, Code.Mov_rm32_r32, Code.Mov_rm64_r64,
            Code.Mov_r8_rm8, Code.Mov_r16_rm16, Code.Mov_r32_rm32, Code.Mov_r64_rm64,
            Code.Mov_AL_moffs8, Code.Mov_AX_moffs16, Code.Mov_EAX_moffs32, Code.Mov_RAX_moffs64,
            Code.Mov_moffs8_AL, Code.Mov_moffs16_AX, Code.Mov_moffs32_EAX, Code.Mov_moffs64_RAX,
            Code.Mov_r8_imm8, Code.Mov_r16_imm16, Code.Mov_r32_imm32, Code.Mov_r64_imm64,
            Code.Mov_rm8_imm8, Code.Mov_rm16_imm16, Code.Mov_rm32_imm32, Code.Mov_rm64_imm32,
        ];
        foreach (Code code in mov)
        {
            t.Add(code, &Mov, CostClass.Simple);
            t.AddForms(code, &PickMov);
        }

        AddMovx<Dw8, ZeroExtension>(t, Code.Movzx_r16_rm8, Code.Movzx_r32_rm8, Code.Movzx_r64_rm8);
        AddMovx<Dw16, ZeroExtension>(t, Code.Movzx_r16_rm16, Code.Movzx_r32_rm16, Code.Movzx_r64_rm16);
        AddMovx<Dw8, SignExtension>(t, Code.Movsx_r16_rm8, Code.Movsx_r32_rm8, Code.Movsx_r64_rm8);
        AddMovx<Dw16, SignExtension>(t, Code.Movsx_r16_rm16, Code.Movsx_r32_rm16, Code.Movsx_r64_rm16);

        // MOVSXD with a 16- or 32-bit operand size is a plain move of that size (PickMovx leaves those to Movx).
        AddMovx<Dw16, SignExtension>(t, Code.Movsxd_r16_rm16);
        AddMovx<Dw32, SignExtension>(t, Code.Movsxd_r32_rm32, Code.Movsxd_r64_rm32);

        t.Add(Code.Xchg_rm8_r8, &Xchg, CostClass.Memory);
        t.Add(Code.Xchg_rm16_r16, &Xchg, CostClass.Memory);
        t.Add(Code.Xchg_rm32_r32, &Xchg, CostClass.Memory);
        t.Add(Code.Xchg_rm64_r64, &Xchg, CostClass.Memory);
        t.Add(Code.Xchg_r16_AX, &Xchg, CostClass.Simple);
        t.Add(Code.Xchg_r32_EAX, &Xchg, CostClass.Simple);
        t.Add(Code.Xchg_r64_RAX, &Xchg, CostClass.Simple);

        t.Add(Code.Xadd_rm8_r8, &Xadd, CostClass.Memory);
        t.Add(Code.Xadd_rm16_r16, &Xadd, CostClass.Memory);
        t.Add(Code.Xadd_rm32_r32, &Xadd, CostClass.Memory);
        t.Add(Code.Xadd_rm64_r64, &Xadd, CostClass.Memory);
        t.Add(Code.Cmpxchg_rm8_r8, &Cmpxchg, CostClass.Memory);
        t.Add(Code.Cmpxchg_rm16_r16, &Cmpxchg, CostClass.Memory);
        t.Add(Code.Cmpxchg_rm32_r32, &Cmpxchg, CostClass.Memory);
        t.Add(Code.Cmpxchg_rm64_r64, &Cmpxchg, CostClass.Memory);
        t.Add(Code.Cmpxchg8b_m64, &Cmpxchg8b, CostClass.Memory);
        t.Add(Code.Cmpxchg16b_m128, &Cmpxchg16b, CostClass.Memory);

        t.Add(Code.Lea_r16_m, &Lea, CostClass.Simple);
        t.Add(Code.Lea_r32_m, &Lea, CostClass.Simple);
        t.Add(Code.Lea_r64_m, &Lea, CostClass.Simple);
        t.AddForms(Code.Lea_r16_m, &PickLea);
        t.AddForms(Code.Lea_r32_m, &PickLea);
        t.AddForms(Code.Lea_r64_m, &PickLea);

        t.Add(Code.Cbw, &SignExtendAccumulator<Dw16>, CostClass.Simple);
        t.Add(Code.Cwde, &SignExtendAccumulator<Dw32>, CostClass.Simple);
        t.Add(Code.Cdqe, &SignExtendAccumulator<Dw64>, CostClass.Simple);
        t.Add(Code.Cwd, &SignIntoRdx<Dw16>, CostClass.Simple);
        t.Add(Code.Cdq, &SignIntoRdx<Dw32>, CostClass.Simple);
        t.Add(Code.Cqo, &SignIntoRdx<Dw64>, CostClass.Simple);

        t.Add(Code.Lahf, &Lahf, CostClass.Simple);
        t.Add(Code.Movbe_r16_m16, &MovbeLoad, CostClass.Memory);
        t.Add(Code.Movbe_r32_m32, &MovbeLoad, CostClass.Memory);
        t.Add(Code.Movbe_r64_m64, &MovbeLoad, CostClass.Memory);
        t.Add(Code.Movbe_m16_r16, &MovbeStore, CostClass.Memory);
        t.Add(Code.Movbe_m32_r32, &MovbeStore, CostClass.Memory);
        t.Add(Code.Movbe_m64_r64, &MovbeStore, CostClass.Memory);
        t.Add(Code.Sahf, &Sahf, CostClass.Simple);
        t.Add(Code.Xlat_m8, &Xlat, CostClass.Memory);
    }

    /// <summary>Operand 1 read at <paramref name="size"/> bytes (for the widening moves, whose source is narrower than operand 0).</summary>
    private static bool ReadSource(Cpu.Cpu c, ref DecodedOp op, int size, out ulong v)
    {
        if (op.R1 != Reg.NoReg)
        {
            v = c.GetReg(op.R1, size);
            return true;
        }

        return c.ReadMem(op.Seg, c.Ea(ref op), size, out v);
    }

    public static int Mov(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadOp1(c, ref op, out ulong v))
        {
            return ExecStatus.Fault;
        }

        return WriteOp0(c, ref op, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>MOVZX, MOVSX and MOVSXD, each code with its general handler and its forms (<see cref="PickMovx{TSrc, TX}"/>).</summary>
    private static void AddMovx<TSrc, TX>(HandlerTable t, params ReadOnlySpan<Code> codes)
        where TSrc : struct, IDataWidth
        where TX : struct, IExtension
    {
        foreach (Code code in codes)
        {
            t.Add(code, &Movx<TSrc, TX>, CostClass.Simple);
            t.AddForms(code, &PickMovx<TSrc, TX>);
        }
    }

    /// <summary>MOVZX/MOVSX/MOVSXD, any operands: the source widened from <typeparamref name="TSrc"/> into the operand size.</summary>
    internal static int Movx<TSrc, TX>(Cpu.Cpu c, ref DecodedOp op)
        where TSrc : struct, IDataWidth
        where TX : struct, IExtension
    {
        if (!ReadSource(c, ref op, TSrc.Bytes, out ulong v))
        {
            return ExecStatus.Fault;
        }

        c.SetReg(op.R0, op.OpSize, TX.Extend(v, TSrc.Bytes));
        return ExecStatus.Continue;
    }

    /// <summary>How MOVZX and MOVSX widen their source (<see cref="MovxRR{TSrc, TW, TX}"/>).</summary>
    internal interface IExtension
    {
        static abstract ulong Extend(ulong v, int bytes);
    }

    /// <summary>MOVZX: the source's bits, zeros above.</summary>
    internal readonly struct ZeroExtension : IExtension
    {
        public static ulong Extend(ulong v, int bytes) => v;
    }

    /// <summary>MOVSX and MOVSXD: the source's sign bit copied above.</summary>
    internal readonly struct SignExtension : IExtension
    {
        public static ulong Extend(ulong v, int bytes) => SignExtend(v, bytes);
    }

    /// <summary>
    /// Form selector for MOVZX, MOVSX and MOVSXD with a wider destination: a plain register source (not AH…BH) or a
    /// memory source, by destination width and addressing; the general handler for the rest.
    /// </summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickMovx<TSrc, TX>(ref DecodedOp op)
        where TSrc : struct, IDataWidth
        where TX : struct, IExtension
    {
        if (op.R0 >= 16 || op.OpSize <= TSrc.Bytes)
        {
            return null;
        }

        if (op.R1 < 16)
        {
            return ByWidth(op.OpSize, null, &MovxRR<TSrc, Dw16, TX>, &MovxRR<TSrc, Dw32, TX>, &MovxRR<TSrc, Dw64, TX>);
        }

        if (op.R1 != Reg.NoReg || op.MemOp != 1)
        {
            return null;
        }

        return op.OpSize switch
        {
            2 => ByAddressing(ref op, &MovxRM<TSrc, Dw16, TX, AddrBase64>, &MovxRM<TSrc, Dw16, TX, AddrBaseIndex64>, &MovxRM<TSrc, Dw16, TX, AddrRip64>, &MovxRM<TSrc, Dw16, TX, AddrAny>),
            4 => ByAddressing(ref op, &MovxRM<TSrc, Dw32, TX, AddrBase64>, &MovxRM<TSrc, Dw32, TX, AddrBaseIndex64>, &MovxRM<TSrc, Dw32, TX, AddrRip64>, &MovxRM<TSrc, Dw32, TX, AddrAny>),
            8 => ByAddressing(ref op, &MovxRM<TSrc, Dw64, TX, AddrBase64>, &MovxRM<TSrc, Dw64, TX, AddrBaseIndex64>, &MovxRM<TSrc, Dw64, TX, AddrRip64>, &MovxRM<TSrc, Dw64, TX, AddrAny>),
            _ => null,
        };
    }

    /// <summary>MOVZX/MOVSX register ← register.</summary>
    internal static int MovxRR<TSrc, TW, TX>(Cpu.Cpu c, ref DecodedOp op)
        where TSrc : struct, IDataWidth
        where TW : struct, IDataWidth
        where TX : struct, IExtension
    {
        MovxV<TSrc, TW, TX>(c, ref c.GprUnchecked(op.R0), c.GprUnchecked(op.R1));
        return ExecStatus.Continue;
    }

    /// <summary>
    /// MOVZX/MOVSX on register values: the low <typeparamref name="TSrc"/> of <paramref name="src"/> widened into
    /// <paramref name="dst"/> at <typeparamref name="TW"/> (compiled blocks pass the registers they hold in locals).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void MovxV<TSrc, TW, TX>(Cpu.Cpu c, ref ulong dst, ulong src)
        where TSrc : struct, IDataWidth
        where TW : struct, IDataWidth
        where TX : struct, IExtension
        => Store<TW>(ref dst, TX.Extend(Narrow<TSrc>(src), TSrc.Bytes));

    /// <summary>MOVZX/MOVSX register ← memory.</summary>
    internal static int MovxRM<TSrc, TW, TX, TA>(Cpu.Cpu c, ref DecodedOp op)
        where TSrc : struct, IDataWidth
        where TW : struct, IDataWidth
        where TX : struct, IExtension
        where TA : struct, IAddressing
        => MovxRMAt<TSrc, TW, TX>(c, ref c.GprUnchecked(op.R0), op.Seg, TA.Ea(c, ref op));

    /// <summary><see cref="MovxRM{TSrc, TW, TX, TA}"/> once the address is known (<see cref="MovRMAt{TW}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int MovxRMAt<TSrc, TW, TX>(Cpu.Cpu c, ref ulong dst, int seg, ulong ea)
        where TSrc : struct, IDataWidth
        where TW : struct, IDataWidth
        where TX : struct, IExtension
    {
        if (!c.ReadMemInline(seg, ea, TSrc.Bytes, out ulong v))
        {
            return ExecStatus.Fault;
        }

        Store<TW>(ref dst, TX.Extend(v, TSrc.Bytes));
        return ExecStatus.Continue;
    }

    /// <summary>XCHG: both operands are read (a memory operand checked for write) before either is written.</summary>
    public static int Xchg(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = op.OpSize;
        if (!ReadOp0ForWrite(c, ref op, out ulong a))
        {
            return ExecStatus.Fault;
        }

        ulong b = c.GetReg(op.R1, size);
        if (!WriteOp0(c, ref op, b))
        {
            return ExecStatus.Fault;
        }

        c.SetReg(op.R1, size, a);
        return ExecStatus.Continue;
    }

    /// <summary>XADD: TEMP = SRC + DEST; SRC = DEST; DEST = TEMP; flags as ADD (so XADD r, r with one register leaves the sum).</summary>
    public static int Xadd(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = op.OpSize;
        if (!ReadOp0ForWrite(c, ref op, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        ulong src = c.GetReg(op.R1, size);
        ulong sum = (dst + src) & Cpu.Cpu.SizeMask(size);
        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R1, size, dst);
            c.SetReg(op.R0, size, sum);
        }
        else
        {
            if (!c.WriteMem(op.Seg, c.Ea(ref op), size, sum))
            {
                return ExecStatus.Fault;
            }

            c.SetReg(op.R1, size, dst);
        }

        c.SetFlagsAdd(size, dst, src, sum);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// CMPXCHG: flags as CMP rAX, DEST. Equal: DEST ← SRC. Not equal: rAX ← DEST, and a memory DEST is
    /// written back with its own value (it always sees a write cycle; APM vol. 3 "CMPXCHG"). A register
    /// DEST is not written on failure, so a 32-bit one keeps its upper half (as measured on hardware).
    /// </summary>
    public static int Cmpxchg(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = op.OpSize;
        if (!ReadOp0ForWrite(c, ref op, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        ulong acc = c.GetReg(Reg.RAX, size);
        bool equal = acc == dst;
        if (equal)
        {
            if (!WriteOp0(c, ref op, c.GetReg(op.R1, size)))
            {
                return ExecStatus.Fault;
            }
        }
        else if (op.R0 == Reg.NoReg && !c.WriteMem(op.Seg, c.Ea(ref op), size, dst))
        {
            return ExecStatus.Fault;
        }

        if (!equal)
        {
            c.SetReg(Reg.RAX, size, dst);
        }

        c.SetFlagsSub(size, acc, dst, (acc - dst) & Cpu.Cpu.SizeMask(size));
        return ExecStatus.Continue;
    }

    /// <summary>Sets or clears ZF alone (CMPXCHG8B/16B leave the other flags unchanged).</summary>
    private static void SetZfOnly(Cpu.Cpu c, bool zf)
    {
        c.MaterializeFlags();
        c.FlagsBits = zf ? c.FlagsBits | Rflags.ZF : c.FlagsBits & ~Rflags.ZF;
    }

    /// <summary>CMPXCHG8B m64: EDX:EAX vs m64; equal → m64 ← ECX:EBX, else EDX:EAX ← m64 (32-bit writes, so RAX/RDX are zero-extended).</summary>
    public static int Cmpxchg8b(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong ea = c.Ea(ref op);
        if (!c.ReadMemForWrite(op.Seg, ea, 8, out ulong m))
        {
            return ExecStatus.Fault;
        }

        ulong expected = ((ulong)(uint)c.Gpr[Reg.RDX] << 32) | (uint)c.Gpr[Reg.RAX];
        bool equal = m == expected;
        ulong store = equal ? ((ulong)(uint)c.Gpr[Reg.RCX] << 32) | (uint)c.Gpr[Reg.RBX] : m;
        if (!c.WriteMem(op.Seg, ea, 8, store))
        {
            return ExecStatus.Fault;
        }

        if (!equal)
        {
            c.SetReg(Reg.RAX, 4, (uint)m);
            c.SetReg(Reg.RDX, 4, m >> 32);
        }

        SetZfOnly(c, equal);
        return ExecStatus.Continue;
    }

    /// <summary>CMPXCHG16B m128: RDX:RAX vs m128, store RCX:RBX; #GP(0) unless the operand is 16-byte aligned.</summary>
    public static int Cmpxchg16b(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong ea = c.Ea(ref op);
        if (!c.Linear(op.Seg, ea, 16, Access.Write, out ulong lin))
        {
            return ExecStatus.Fault;
        }

        if ((lin & 15) != 0)
        {
            return c.RaiseGP(0);
        }

        // Aligned, so both halves sit in one page: probing both halves before writing is enough.
        if (!c.ReadMemForWrite(op.Seg, ea, 8, out ulong lo) || !c.ReadMemForWrite(op.Seg, ea + 8, 8, out ulong hi))
        {
            return ExecStatus.Fault;
        }

        bool equal = lo == c.Gpr[Reg.RAX] && hi == c.Gpr[Reg.RDX];
        ulong storeLo = equal ? c.Gpr[Reg.RBX] : lo;
        ulong storeHi = equal ? c.Gpr[Reg.RCX] : hi;
        if (!c.WriteMem(op.Seg, ea, 8, storeLo) || !c.WriteMem(op.Seg, ea + 8, 8, storeHi))
        {
            return ExecStatus.Fault;
        }

        if (!equal)
        {
            c.Gpr[Reg.RAX] = lo;
            c.Gpr[Reg.RDX] = hi;
        }

        SetZfOnly(c, equal);
        return ExecStatus.Continue;
    }

    /// <summary>LEA: the offset is computed at the address size, then truncated or zero-extended to the operand size.</summary>
    public static int Lea(Cpu.Cpu c, ref DecodedOp op)
    {
        c.SetReg(op.R0, op.OpSize, c.Ea(ref op));
        return ExecStatus.Continue;
    }

    // ---- Forms: MOV and LEA specialised per operand kinds, size and addressing ----

    /// <summary>Form selector for MOV (every MOV code here moves between GPRs, memory and immediates).</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickMov(ref DecodedOp op)
    {
        int size = op.OpSize;
        if (op.R0 < 16)
        {
            if (op.R1 < 16)
            {
                return ByWidth(size, &MovRR<Dw8>, &MovRR<Dw16>, &MovRR<Dw32>, &MovRR<Dw64>);
            }

            if (op.R1 == Reg.NoReg && op.MemOp == Reg.NoReg)
            {
                return ByWidth(size, &MovRI<Dw8>, &MovRI<Dw16>, &MovRI<Dw32>, &MovRI<Dw64>);
            }

            if (op.R1 == Reg.NoReg && op.MemOp == 1)
            {
                return size switch
                {
                    1 => ByAddressing(ref op, &MovRM<Dw8, AddrBase64>, &MovRM<Dw8, AddrBaseIndex64>, &MovRM<Dw8, AddrRip64>, &MovRM<Dw8, AddrAny>),
                    2 => ByAddressing(ref op, &MovRM<Dw16, AddrBase64>, &MovRM<Dw16, AddrBaseIndex64>, &MovRM<Dw16, AddrRip64>, &MovRM<Dw16, AddrAny>),
                    4 => ByAddressing(ref op, &MovRM<Dw32, AddrBase64>, &MovRM<Dw32, AddrBaseIndex64>, &MovRM<Dw32, AddrRip64>, &MovRM<Dw32, AddrAny>),
                    8 => ByAddressing(ref op, &MovRM<Dw64, AddrBase64>, &MovRM<Dw64, AddrBaseIndex64>, &MovRM<Dw64, AddrRip64>, &MovRM<Dw64, AddrAny>),
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
                1 => ByAddressing(ref op, &MovMR<Dw8, AddrBase64>, &MovMR<Dw8, AddrBaseIndex64>, &MovMR<Dw8, AddrRip64>, &MovMR<Dw8, AddrAny>),
                2 => ByAddressing(ref op, &MovMR<Dw16, AddrBase64>, &MovMR<Dw16, AddrBaseIndex64>, &MovMR<Dw16, AddrRip64>, &MovMR<Dw16, AddrAny>),
                4 => ByAddressing(ref op, &MovMR<Dw32, AddrBase64>, &MovMR<Dw32, AddrBaseIndex64>, &MovMR<Dw32, AddrRip64>, &MovMR<Dw32, AddrAny>),
                8 => ByAddressing(ref op, &MovMR<Dw64, AddrBase64>, &MovMR<Dw64, AddrBaseIndex64>, &MovMR<Dw64, AddrRip64>, &MovMR<Dw64, AddrAny>),
                _ => null,
            };
        }

        if (op.R1 == Reg.NoReg)
        {
            return size switch
            {
                1 => ByAddressing(ref op, &MovMI<Dw8, AddrBase64>, &MovMI<Dw8, AddrBaseIndex64>, &MovMI<Dw8, AddrRip64>, &MovMI<Dw8, AddrAny>),
                2 => ByAddressing(ref op, &MovMI<Dw16, AddrBase64>, &MovMI<Dw16, AddrBaseIndex64>, &MovMI<Dw16, AddrRip64>, &MovMI<Dw16, AddrAny>),
                4 => ByAddressing(ref op, &MovMI<Dw32, AddrBase64>, &MovMI<Dw32, AddrBaseIndex64>, &MovMI<Dw32, AddrRip64>, &MovMI<Dw32, AddrAny>),
                8 => ByAddressing(ref op, &MovMI<Dw64, AddrBase64>, &MovMI<Dw64, AddrBaseIndex64>, &MovMI<Dw64, AddrRip64>, &MovMI<Dw64, AddrAny>),
                _ => null,
            };
        }

        return null;
    }

    internal static int MovRR<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        MovV<TW>(c, ref c.GprUnchecked(op.R0), c.GprUnchecked(op.R1));
        return ExecStatus.Continue;
    }

    internal static int MovRI<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        MovV<TW>(c, ref c.GprUnchecked(op.R0), op.Imm);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// MOV to a register's value, and LEA's write of its address: <paramref name="v"/> at the width (compiled blocks
    /// pass the registers they hold in locals; docs/cpu.md, "Registers in locals").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void MovV<TW>(Cpu.Cpu c, ref ulong dst, ulong v)
        where TW : struct, IDataWidth
        => Store<TW>(ref dst, v);

    internal static int MovRM<TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => MovRMAt<TW>(c, ref c.GprUnchecked(op.R0), op.Seg, TA.Ea(c, ref op));

    /// <summary>
    /// <see cref="MovRM{TW, TA}"/> once the address is known, into the register <paramref name="dst"/> (compiled
    /// blocks pass a local and the rest as constants); the register is written only when the read succeeded.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int MovRMAt<TW>(Cpu.Cpu c, ref ulong dst, int seg, ulong ea)
        where TW : struct, IDataWidth
    {
        if (!c.ReadMemInline(seg, ea, TW.Bytes, out ulong v))
        {
            return ExecStatus.Fault;
        }

        Store<TW>(ref dst, v);
        return ExecStatus.Continue;
    }

    internal static int MovMR<TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => MovMRAt<TW>(c, c.GprUnchecked(op.R1), op.Seg, TA.Ea(c, ref op));

    /// <summary><see cref="MovMR{TW, TA}"/> once the address is known, with the source register's value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int MovMRAt<TW>(Cpu.Cpu c, ulong src, int seg, ulong ea)
        where TW : struct, IDataWidth
        => c.WriteMemInline(seg, ea, TW.Bytes, src) ? ExecStatus.Continue : ExecStatus.Fault;

    internal static int MovMI<TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
        => MovMIAt<TW>(c, op.Imm, op.Seg, TA.Ea(c, ref op));

    /// <summary><see cref="MovMI{TW, TA}"/> once the address is known.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int MovMIAt<TW>(Cpu.Cpu c, ulong imm, int seg, ulong ea)
        where TW : struct, IDataWidth
        => c.WriteMemInline(seg, ea, TW.Bytes, imm) ? ExecStatus.Continue : ExecStatus.Fault;

    /// <summary>Form selector for LEA: the addressing kind of the source; the operand size of the destination.</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickLea(ref DecodedOp op)
    {
        if (op.R0 >= 16)
        {
            return null;
        }

        return op.OpSize switch
        {
            2 => ByAddressing(ref op, &LeaR<Dw16, AddrBase64>, &LeaR<Dw16, AddrBaseIndex64>, &LeaR<Dw16, AddrRip64>, &LeaR<Dw16, AddrAny>),
            4 => ByAddressing(ref op, &LeaR<Dw32, AddrBase64>, &LeaR<Dw32, AddrBaseIndex64>, &LeaR<Dw32, AddrRip64>, &LeaR<Dw32, AddrAny>),
            8 => ByAddressing(ref op, &LeaR<Dw64, AddrBase64>, &LeaR<Dw64, AddrBaseIndex64>, &LeaR<Dw64, AddrRip64>, &LeaR<Dw64, AddrAny>),
            _ => null,
        };
    }

    internal static int LeaR<TW, TA>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        where TA : struct, IAddressing
    {
        MovV<TW>(c, ref c.GprUnchecked(op.R0), TA.Ea(c, ref op));
        return ExecStatus.Continue;
    }

    /// <summary>CBW/CWDE/CDQE: the accumulator's lower half sign-extended into the whole of <typeparamref name="TW"/>.</summary>
    public static int SignExtendAccumulator<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        c.SetReg(Reg.RAX, size, SignExtend(c.Gpr[Reg.RAX], size / 2));
        return ExecStatus.Continue;
    }

    /// <summary>CWD/CDQ/CQO: rDX ← the sign of rAX repeated.</summary>
    public static int SignIntoRdx<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        ulong sign = (c.Gpr[Reg.RAX] >> ((size * 8) - 1)) & 1;
        c.SetReg(Reg.RDX, size, sign != 0 ? ulong.MaxValue : 0);
        return ExecStatus.Continue;
    }

    /// <summary>Reverses the byte order of the low <paramref name="size"/> bytes (2, 4 or 8).</summary>
    private static ulong ByteSwap(ulong v, int size) => size switch
    {
        2 => BinaryPrimitives.ReverseEndianness((ushort)v),
        4 => BinaryPrimitives.ReverseEndianness((uint)v),
        _ => BinaryPrimitives.ReverseEndianness(v),
    };

    /// <summary>MOVBE reg, mem (APM vol. 3 "MOVBE"): load with the bytes reversed; #UD unless CPUID 1:ECX[22]. A 16-bit load merges.</summary>
    public static int MovbeLoad(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!c.Features.Has(CpuFeature.Movbe))
        {
            return c.RaiseUD();
        }

        if (!c.ReadMem(op.Seg, c.Ea(ref op), op.OpSize, out ulong v))
        {
            return ExecStatus.Fault;
        }

        c.SetReg(op.R0, op.OpSize, ByteSwap(v, op.OpSize));
        return ExecStatus.Continue;
    }

    /// <summary>MOVBE mem, reg: store with the bytes reversed; #UD unless CPUID 1:ECX[22].</summary>
    public static int MovbeStore(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!c.Features.Has(CpuFeature.Movbe))
        {
            return c.RaiseUD();
        }

        ulong v = ByteSwap(c.GetReg(op.R1, op.OpSize), op.OpSize);
        return c.WriteMem(op.Seg, c.Ea(ref op), op.OpSize, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>LAHF: AH ← SF:ZF:0:AF:0:PF:1:CF.</summary>
    public static int Lahf(Cpu.Cpu c, ref DecodedOp op)
    {
        c.Set8(Reg.AH, (byte)((c.Rflags64 & 0xD5) | 0x02));
        return ExecStatus.Continue;
    }

    /// <summary>SAHF: SF, ZF, AF, PF, CF ← AH; OF unchanged.</summary>
    public static int Sahf(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong ah = c.Get8(Reg.AH);
        c.SetArithFlags((c.Rflags64 & Rflags.OF) | (ah & 0xD5));
        return ExecStatus.Continue;
    }

    /// <summary>XLAT: AL ← [seg:rBX + zero-extended AL], the sum wrapped to the address size.</summary>
    public static int Xlat(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong off = (c.Gpr[Reg.RBX] + (byte)c.Gpr[Reg.RAX]) & Cpu.Cpu.SizeMask(op.AddrSize);
        if (!c.Read8(op.Seg, off, out byte v))
        {
            return ExecStatus.Fault;
        }

        c.Set8(Reg.RAX, v);
        return ExecStatus.Continue;
    }
}
