using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>Port I/O (IN, OUT, INS, OUTS) and the interrupt flag (CLI, STI).</summary>
public static unsafe partial class Exec
{
    /// <summary>Iterations of a REP INS/OUTS done per dispatch; the rest re-executes the instruction,
    /// so interrupts and limits are seen between chunks (the architecture allows this, APM vol. 3 "REP").</summary>
    private const int IoStringChunk = 64;

    private static void RegisterSystem(HandlerTable t)
    {
        t.Add(Code.In_AL_imm8, &InImm, CostClass.Io);
        t.Add(Code.In_AX_imm8, &InImm, CostClass.Io);
        t.Add(Code.In_EAX_imm8, &InImm, CostClass.Io);
        t.Add(Code.In_AL_DX, &InDx, CostClass.Io);
        t.Add(Code.In_AX_DX, &InDx, CostClass.Io);
        t.Add(Code.In_EAX_DX, &InDx, CostClass.Io);
        t.Add(Code.Out_imm8_AL, &OutImm, CostClass.Io);
        t.Add(Code.Out_imm8_AX, &OutImm, CostClass.Io);
        t.Add(Code.Out_imm8_EAX, &OutImm, CostClass.Io);
        t.Add(Code.Out_DX_AL, &OutDx, CostClass.Io);
        t.Add(Code.Out_DX_AX, &OutDx, CostClass.Io);
        t.Add(Code.Out_DX_EAX, &OutDx, CostClass.Io);
        t.Add(Code.Insb_m8_DX, &Ins, CostClass.Io);
        t.Add(Code.Insw_m16_DX, &Ins, CostClass.Io);
        t.Add(Code.Insd_m32_DX, &Ins, CostClass.Io);
        t.Add(Code.Outsb_DX_m8, &Outs, CostClass.Io);
        t.Add(Code.Outsw_DX_m16, &Outs, CostClass.Io);
        t.Add(Code.Outsd_DX_m32, &Outs, CostClass.Io);
        t.Add(Code.Cli, &Cli, CostClass.System);
        t.Add(Code.Sti, &Sti, CostClass.System);
    }

    /// <summary>Access width of IN/OUT/INS/OUTS from the opcode (the accumulator or memory operand size).</summary>
    private static int IoSize(ref DecodedOp op) => op.Code switch
    {
        Code.In_AL_imm8 or Code.In_AL_DX or Code.Out_imm8_AL or Code.Out_DX_AL or Code.Insb_m8_DX or Code.Outsb_DX_m8 => 1,
        Code.In_AX_imm8 or Code.In_AX_DX or Code.Out_imm8_AX or Code.Out_DX_AX or Code.Insw_m16_DX or Code.Outsw_DX_m16 => 2,
        _ => 4,
    };

    /// <summary>
    /// I/O permission (APM vol. 2 §12.2.2–12.2.4): in protected mode with CPL &gt; IOPL, or in virtual-8086
    /// mode, every bit of the TSS I/O-permission bitmap covering the access must be clear; a bitmap byte
    /// beyond the TSS limit, or a TSS without a bitmap (16-bit TSS), denies the access with #GP(0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IoAllowed(Cpu.Cpu c, ushort port, int size)
    {
        if (c.Mode == CpuMode.Real)
        {
            return true;
        }

        if (c.Mode != CpuMode.Virtual8086 && c.Cpl <= (int)((c.FlagsBits >> 12) & 3))
        {
            return true;
        }

        return IoBitmapAllows(c, port, size);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool IoBitmapAllows(Cpu.Cpu c, ushort port, int size)
    {
        ref SegmentCache tr = ref c.Seg[Cpu.Cpu.TrIndex];
        int type = tr.Type;
        // Only an available/busy 32-bit (or 64-bit) TSS has a bitmap; a 16-bit TSS denies all.
        if (!tr.Present || (type & 7) is not (1 or 3) || (type & 8) == 0 || tr.Limit < 0x67)
        {
            c.RaiseGP(0);
            return false;
        }

        if (!c.ReadLinearSystem(tr.Base + 0x66, 2, out ulong mapOffset))
        {
            return false;
        }

        // The processor reads the two bitmap bytes that hold the first and last bit of the access.
        ulong byteOff = mapOffset + (uint)(port >> 3);
        if (byteOff + 1 > tr.Limit)
        {
            c.RaiseGP(0);
            return false;
        }

        if (!c.ReadLinearSystem(tr.Base + byteOff, 2, out ulong bits))
        {
            return false;
        }

        uint mask = ((1u << size) - 1) << (port & 7);
        if ((bits & mask) != 0)
        {
            c.RaiseGP(0);
            return false;
        }

        return true;
    }

    public static int InImm(Cpu.Cpu c, ref DecodedOp op) => DoIn(c, (ushort)(byte)op.Imm, IoSize(ref op));

    public static int InDx(Cpu.Cpu c, ref DecodedOp op) => DoIn(c, (ushort)c.Gpr[Reg.RDX], IoSize(ref op));

    public static int OutImm(Cpu.Cpu c, ref DecodedOp op) => DoOut(c, (ushort)(byte)op.Imm, IoSize(ref op));

    public static int OutDx(Cpu.Cpu c, ref DecodedOp op) => DoOut(c, (ushort)c.Gpr[Reg.RDX], IoSize(ref op));

    private static int DoIn(Cpu.Cpu c, ushort port, int size)
    {
        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        uint v = c.Phys.Io.In(port, size);
        c.SetReg(Reg.RAX, size, v);
        return c.StopRequested ? ExecStatus.EndBlock : ExecStatus.Continue;
    }

    private static int DoOut(Cpu.Cpu c, ushort port, int size)
    {
        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        c.Phys.Io.Out(port, size, (uint)c.GetReg(Reg.RAX, size));
        // A device may end the run (isa-debug-exit) or raise an interrupt line: leave the block promptly.
        return c.StopRequested ? ExecStatus.EndBlock : ExecStatus.Continue;
    }

    /// <summary>Value of a string-address register at the address size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddrReg(Cpu.Cpu c, int reg, int addrSize) => addrSize switch
    {
        8 => c.Gpr[reg],
        4 => (uint)c.Gpr[reg],
        _ => (ushort)c.Gpr[reg],
    };

    /// <summary>Writes a string-address register at the address size (16-bit: upper bits kept; 32-bit: zero-extended).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetAddrReg(Cpu.Cpu c, int reg, int addrSize, ulong v)
    {
        ref ulong r = ref c.Gpr[reg];
        r = addrSize switch
        {
            8 => v,
            4 => (uint)v,
            _ => (r & ~0xFFFFUL) | (ushort)v,
        };
    }

    /// <summary>INS: port DX → ES:rDI (no segment override), rDI ± size; with REP, rCX times.</summary>
    public static int Ins(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = IoSize(ref op);
        int asz = op.AddrSize;
        ushort port = (ushort)c.Gpr[Reg.RDX];
        long step = (c.FlagsBits & Rflags.DF) != 0 ? -size : size;
        bool rep = op.Rep != 0;
        ulong count = rep ? AddrReg(c, Reg.RCX, asz) : 1;
        if (count == 0)
        {
            return ExecStatus.Continue;
        }

        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        for (int i = 0; i < IoStringChunk; i++)
        {
            ulong di = AddrReg(c, Reg.RDI, asz);
            // Probe the destination for write access first, so a fault does not swallow a port read.
            if (!c.ReadMemForWrite(SegReg.ES, di, size, out _))
            {
                return ExecStatus.Fault;
            }

            uint v = c.Phys.Io.In(port, size);
            if (!c.WriteMem(SegReg.ES, di, size, v))
            {
                return ExecStatus.Fault;
            }

            SetAddrReg(c, Reg.RDI, asz, di + (ulong)step);
            if (!rep)
            {
                return ExecStatus.Continue;
            }

            count--;
            SetAddrReg(c, Reg.RCX, asz, count);
            if (count == 0)
            {
                return ExecStatus.EndBlock;
            }

            if (c.StopRequested)
            {
                break;
            }

            c.Cycles += c.Costs.ClassCycles(CostClass.Io);
        }

        // More to do: run this instruction again (interrupts may be taken between chunks).
        c.NextRip = c.Rip;
        return ExecStatus.EndBlock;
    }

    /// <summary>OUTS: seg:rSI (DS unless overridden) → port DX, rSI ± size; with REP, rCX times.</summary>
    public static int Outs(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = IoSize(ref op);
        int asz = op.AddrSize;
        ushort port = (ushort)c.Gpr[Reg.RDX];
        long step = (c.FlagsBits & Rflags.DF) != 0 ? -size : size;
        bool rep = op.Rep != 0;
        ulong count = rep ? AddrReg(c, Reg.RCX, asz) : 1;
        if (count == 0)
        {
            return ExecStatus.Continue;
        }

        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        for (int i = 0; i < IoStringChunk; i++)
        {
            ulong si = AddrReg(c, Reg.RSI, asz);
            if (!c.ReadMem(op.Seg, si, size, out ulong v))
            {
                return ExecStatus.Fault;
            }

            c.Phys.Io.Out(port, size, (uint)v);
            SetAddrReg(c, Reg.RSI, asz, si + (ulong)step);
            if (!rep)
            {
                return c.StopRequested ? ExecStatus.EndBlock : ExecStatus.Continue;
            }

            count--;
            SetAddrReg(c, Reg.RCX, asz, count);
            if (count == 0 || c.StopRequested)
            {
                break;
            }

            c.Cycles += c.Costs.ClassCycles(CostClass.Io);
        }

        if (count != 0 && !c.StopRequested)
        {
            c.NextRip = c.Rip;
        }

        return ExecStatus.EndBlock;
    }

    /// <summary>
    /// CLI (APM vol. 3 "CLI"): IF ← 0 when CPL ≤ IOPL (always in real mode); otherwise VIF ← 0 at CPL 3
    /// with CR4.PVI, or in virtual-8086 mode with CR4.VME; otherwise #GP(0).
    /// </summary>
    public static int Cli(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong bit = InterruptFlagTarget(c);
        if (bit == 0)
        {
            return c.RaiseGP(0);
        }

        c.FlagsBits &= ~bit;
        return ExecStatus.Continue;
    }

    /// <summary>
    /// STI (APM vol. 3 "STI"): the mirror of CLI; setting VIF while VIP is set is #GP(0). When IF goes
    /// from 0 to 1 the next instruction runs before any interrupt (interrupt shadow).
    /// </summary>
    public static int Sti(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong bit = InterruptFlagTarget(c);
        if (bit == 0 || (bit == Rflags.VIF && (c.FlagsBits & Rflags.VIP) != 0))
        {
            return c.RaiseGP(0);
        }

        if (bit == Rflags.IF && (c.FlagsBits & Rflags.IF) == 0)
        {
            c.InterruptShadow = true;
        }

        c.FlagsBits |= bit;
        return ExecStatus.EndBlock;
    }

    /// <summary>Which flag CLI/STI act on in the current mode: IF, VIF, or 0 for #GP.</summary>
    private static ulong InterruptFlagTarget(Cpu.Cpu c)
    {
        int iopl = (int)((c.FlagsBits >> 12) & 3);
        switch (c.Mode)
        {
            case CpuMode.Real:
                return Rflags.IF;
            case CpuMode.Virtual8086:
                return iopl == 3 ? Rflags.IF : (c.Cr4 & Cr4Bits.VME) != 0 ? Rflags.VIF : 0;
            default:
                if (c.Cpl <= iopl)
                {
                    return Rflags.IF;
                }

                return c.Cpl == 3 && (c.Cr4 & Cr4Bits.PVI) != 0 ? Rflags.VIF : 0;
        }
    }
}
