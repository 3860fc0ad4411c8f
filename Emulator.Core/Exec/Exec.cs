using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
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
        RegisterHypercall(t);
        RegisterSvm(t);
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

    /// <summary>The low <typeparamref name="TW"/> bytes of <paramref name="v"/>, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Narrow<TW>(ulong v)
        where TW : struct, IDataWidth => TW.Bytes switch
        {
            1 => (byte)v,
            2 => (ushort)v,
            4 => (uint)v,
            _ => v,
        };

    /// <summary>Writes a GPR (0–15) at width <typeparamref name="TW"/>: 8/16-bit writes merge, 32-bit writes zero the upper half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store<TW>(ref ulong reg, ulong v)
        where TW : struct, IDataWidth
    {
        switch (TW.Bytes)
        {
            case 1: reg = (reg & ~0xFFUL) | (byte)v; break;
            case 2: reg = (reg & ~0xFFFFUL) | (ushort)v; break;
            case 4: reg = (uint)v; break;
            default: reg = v; break;
        }
    }

    // Addressing kinds a form selector can pick for a memory operand (see Forms.IAddressing).
    internal const int AddressingAny = 0, AddressingBase64 = 1, AddressingBaseIndex64 = 2, AddressingRip64 = 3;

    /// <summary>The narrowest addressing kind that computes this op's effective address exactly as <see cref="Cpu.Cpu.Ea"/> does.</summary>
    internal static int AddressingOf(ref DecodedOp op)
    {
        if (op.AddrSize != 8)
        {
            return AddressingAny;
        }

        if (op.Base < 16)
        {
            return op.Index == Reg.NoReg ? AddressingBase64 : op.Index < 16 ? AddressingBaseIndex64 : AddressingAny;
        }

        return op.Base == Reg.Rip && op.Index == Reg.NoReg ? AddressingRip64 : AddressingAny;
    }

    /// <summary>One of four handlers by operand size (1, 2, 4, 8 bytes); null for any other size.</summary>
    internal static delegate*<Cpu.Cpu, ref DecodedOp, int> ByWidth(
        int size,
        delegate*<Cpu.Cpu, ref DecodedOp, int> w8,
        delegate*<Cpu.Cpu, ref DecodedOp, int> w16,
        delegate*<Cpu.Cpu, ref DecodedOp, int> w32,
        delegate*<Cpu.Cpu, ref DecodedOp, int> w64) => size switch
        {
            1 => w8,
            2 => w16,
            4 => w32,
            8 => w64,
            _ => null,
        };

    /// <summary>One of four handlers by the op's addressing kind (see <see cref="AddressingOf"/>).</summary>
    internal static delegate*<Cpu.Cpu, ref DecodedOp, int> ByAddressing(
        ref DecodedOp op,
        delegate*<Cpu.Cpu, ref DecodedOp, int> base64,
        delegate*<Cpu.Cpu, ref DecodedOp, int> baseIndex64,
        delegate*<Cpu.Cpu, ref DecodedOp, int> rip64,
        delegate*<Cpu.Cpu, ref DecodedOp, int> any) => AddressingOf(ref op) switch
        {
            AddressingBase64 => base64,
            AddressingBaseIndex64 => baseIndex64,
            AddressingRip64 => rip64,
            _ => any,
        };

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
    private readonly nint[] _formSelectors = new nint[CodeCount];

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

    /// <summary>
    /// Registers a form selector for <paramref name="code"/>: at decode time it looks at the decoded
    /// operands and returns a handler specialised for that form (operand kinds, size, addressing), or
    /// null to keep the general handler. Both must behave the same; the specialised one only skips tests.
    /// </summary>
    public void AddForms(Code code, delegate*<ref DecodedOp, delegate*<Cpu.Cpu, ref DecodedOp, int>> selector) =>
        _formSelectors[(int)code] = (nint)selector;

    public delegate*<Cpu.Cpu, ref DecodedOp, int> Get(Code code) => (delegate*<Cpu.Cpu, ref DecodedOp, int>)_handlers[(int)code];

    /// <summary>The handler for a decoded op: its form's specialised handler where one exists, else the code's.</summary>
    public delegate*<Cpu.Cpu, ref DecodedOp, int> Select(ref DecodedOp op)
    {
        var selector = (delegate*<ref DecodedOp, delegate*<Cpu.Cpu, ref DecodedOp, int>>)_formSelectors[(int)op.Code];
        if (selector != null)
        {
            var specialised = selector(ref op);
            if (specialised != null)
            {
                return specialised;
            }
        }

        return Get(op.Code);
    }

    public bool IsImplemented(Code code) => _handlers[(int)code] != _handlers[(int)Code.INVALID];

    public CostClass CostOf(Code code) => _classes[(int)code];
}
