using System.Runtime.InteropServices;
using Iced.Intel;

namespace Emulator.Core.Decode;

/// <summary>
/// One decoded instruction as the interpreter runs it: the handler, the operands resolved to register
/// numbers and address parts, immediates made position-independent, and the little of Iced's instruction a
/// handler still needs. Cached per (host address, code size); never holds an absolute RIP. Kept small: a vCPU's
/// block cache holds 128 Ki of them.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct DecodedOp
{
    public delegate*<Cpu.Cpu, ref DecodedOp, int> Handler;

    /// <summary>Immediate (sign-extended to 64 bits as the encoding defines), or for near branches the
    /// displacement from the next instruction, or for far pointers the offset.</summary>
    public ulong Imm;

    /// <summary>Second immediate: the selector of a far pointer, ENTER's nesting level.</summary>
    public ulong Imm2;

    /// <summary>Memory displacement; for RIP-relative operands, relative to the next instruction.</summary>
    public long Disp;

    /// <summary>Register numbers of operands 0, 1, 2 (see Gpr; 0xFF when the operand is not a register).</summary>
    public byte R0, R1, R2;

    /// <summary>Index of the memory operand (0, 1, 2) or 0xFF.</summary>
    public byte MemOp;

    public byte Base, Index, Scale;

    /// <summary>Effective segment of the memory operand (SegReg).</summary>
    public byte Seg;

    /// <summary>Address size in bytes (2, 4, 8).</summary>
    public byte AddrSize;

    /// <summary>Operand size in bytes (1, 2, 4, 8; for vector ops the memory size where relevant).</summary>
    public byte OpSize;

    public byte Length;

    /// <summary>0 none, 1 REP/REPE, 2 REPNE.</summary>
    public byte Rep;

    public byte Lock;

    /// <summary>Modeled cost of this instruction (base cycles from the cost table).</summary>
    public ushort Cycles;

    /// <summary>Iced's code of the instruction (the few handlers shared by several codes tell them apart by it).</summary>
    public Code Code;

    /// <summary>Iced's memory-operand size (x87 and MMX handlers shared by several operand types).</summary>
    public MemorySize MemorySize;

    /// <summary>Explicit operands (IMUL's two- and three-operand forms share a handler).</summary>
    public byte OpCount;

    /// <summary>True when operand 0 is a register (r/m in register form).</summary>
    public readonly bool Op0IsReg => R0 != Cpu.Reg.NoReg;

    public readonly bool Op1IsReg => R1 != Cpu.Reg.NoReg;

    public readonly bool HasMem => MemOp != Cpu.Reg.NoReg;
}
