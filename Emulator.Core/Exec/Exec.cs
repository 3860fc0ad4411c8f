using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Instruction semantics: one partial file per instruction group, one method per form. Each group
/// registers its handlers in <see cref="HandlerTable"/> by Iced <see cref="Code"/>; a code nobody
/// registered raises #UD (and is counted, so gaps are visible).
/// </summary>
public static unsafe partial class Exec
{
    private static readonly HandlerTable s_table = Build();

    public static HandlerTable Table => s_table;

    private static HandlerTable Build()
    {
        var t = new HandlerTable();
        RegisterAlu(t);
        RegisterShift(t);
        RegisterMulDiv(t);
        RegisterBit(t);
        RegisterBcd(t);
        RegisterDataMove(t);
        RegisterStack(t);
        RegisterControl(t);
        RegisterString(t);
        RegisterSystem(t);
        RegisterSegment(t);
        RegisterInterrupt(t);
        RegisterSysReg(t);
        RegisterX87(t);
        RegisterSse(t);
        RegisterMisc(t);
        return t;
    }

    /// <summary>Handler for undecodable bytes and unimplemented codes.</summary>
    public static int Invalid(Cpu.Cpu c, ref DecodedOp op)
    {
        if (op.Code != Code.INVALID)
        {
            c.NoteUnimplemented(op.Code);
        }

        return c.RaiseUD();
    }

    /// <summary>Sign-extends the low <paramref name="size"/> bytes of <paramref name="v"/> to 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SignExtend(ulong v, int size) => size switch
    {
        1 => (ulong)(sbyte)v,
        2 => (ulong)(short)v,
        4 => (ulong)(int)v,
        _ => v,
    };

    /// <summary>Operand 0 (r/m or register) at operand size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ReadOp0(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        if (op.R0 != Reg.NoReg)
        {
            v = c.GetReg(op.R0, op.OpSize);
            return true;
        }

        return c.ReadMem(op.Seg, c.Ea(ref op), op.OpSize, out v);
    }

    /// <summary>Operand 0 for read-modify-write: a memory operand is checked for write access.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ReadOp0ForWrite(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        if (op.R0 != Reg.NoReg)
        {
            v = c.GetReg(op.R0, op.OpSize);
            return true;
        }

        return c.ReadMemForWrite(op.Seg, c.Ea(ref op), op.OpSize, out v);
    }

    /// <summary>Operand 1: register, immediate or memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ReadOp1(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        if (op.R1 != Reg.NoReg)
        {
            v = c.GetReg(op.R1, op.OpSize);
            return true;
        }

        if (op.MemOp == 1)
        {
            return c.ReadMem(op.Seg, c.Ea(ref op), op.OpSize, out v);
        }

        v = op.Imm;
        return true;
    }

    /// <summary>Writes operand 0 (register or memory) at operand size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool WriteOp0(Cpu.Cpu c, ref DecodedOp op, ulong v)
    {
        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, op.OpSize, v);
            return true;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), op.OpSize, v);
    }
}

/// <summary>Code → handler and cost class, one row per Iced code.</summary>
public sealed unsafe class HandlerTable
{
    private static readonly int CodeCount = Enum.GetValues<Code>().Length;

    private readonly nint[] _handlers = new nint[CodeCount];
    private readonly CostClass[] _classes = new CostClass[CodeCount];

    public HandlerTable()
    {
        delegate*<Cpu.Cpu, ref DecodedOp, int> inv = &Exec.Invalid;
        Array.Fill(_handlers, (nint)inv);
    }

    public void Add(Code code, delegate*<Cpu.Cpu, ref DecodedOp, int> handler, CostClass cost = CostClass.Simple)
    {
        _handlers[(int)code] = (nint)handler;
        _classes[(int)code] = cost;
    }

    public delegate*<Cpu.Cpu, ref DecodedOp, int> Get(Code code) => (delegate*<Cpu.Cpu, ref DecodedOp, int>)_handlers[(int)code];

    public bool IsImplemented(Code code) => _handlers[(int)code] != _handlers[(int)Code.INVALID];

    public CostClass CostOf(Code code) => _classes[(int)code];
}
