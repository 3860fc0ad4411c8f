using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Svm;
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
        RegisterDescriptorTables(t);
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

    public static int InImm(Cpu.Cpu c, ref DecodedOp op) => DoIn(c, (ushort)(byte)op.Imm, IoSize(ref op), op.AddrSize);

    public static int InDx(Cpu.Cpu c, ref DecodedOp op) => DoIn(c, (ushort)c.Gpr[Reg.RDX], IoSize(ref op), op.AddrSize);

    public static int OutImm(Cpu.Cpu c, ref DecodedOp op) => DoOut(c, (ushort)(byte)op.Imm, IoSize(ref op), op.AddrSize);

    public static int OutDx(Cpu.Cpu c, ref DecodedOp op) => DoOut(c, (ushort)c.Gpr[Reg.RDX], IoSize(ref op), op.AddrSize);

    /// <summary>
    /// The IOIO_PROT intercept (APM vol. 2 §15.10): after the IOPL/TSS permission #GP, before the access (and
    /// before a REP string instruction's first iteration). Continue when the access goes ahead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int IoIntercept(Cpu.Cpu c, ushort port, int size, int addrSize, bool input, bool str, bool rep, int segment) =>
        c.Intercepted(SvmIntercept.IoioProt) ? PermissionMaps.IoGate(c, port, size, addrSize, input, str, rep, segment) : ExecStatus.Continue;

    private static int DoIn(Cpu.Cpu c, ushort port, int size, int addrSize)
    {
        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        int st = IoIntercept(c, port, size, addrSize, input: true, str: false, rep: false, SegReg.ES);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        uint v = c.Phys.Io.In(port, size);
        c.SetReg(Reg.RAX, size, v);
        return c.StopRequested ? ExecStatus.EndBlock : ExecStatus.Continue;
    }

    private static int DoOut(Cpu.Cpu c, ushort port, int size, int addrSize)
    {
        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        int st = IoIntercept(c, port, size, addrSize, input: false, str: false, rep: false, SegReg.ES);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        c.Phys.Io.Out(port, size, (uint)c.GetReg(Reg.RAX, size));
        // A device may end the run (isa-debug-exit) or raise an interrupt line: leave the block promptly.
        return c.StopRequested ? ExecStatus.EndBlock : ExecStatus.Continue;
    }

    /// <summary>INS: port DX → ES:rDI (no segment override), rDI ± size; with REP, rCX times.</summary>
    public static int Ins(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = IoSize(ref op);
        int asz = op.AddrSize;
        ushort port = (ushort)c.Gpr[Reg.RDX];
        long step = (c.FlagsBits & Rflags.DF) != 0 ? -size : size;
        bool rep = op.Rep != 0;
        ulong count = rep ? c.GetReg(Reg.RCX, asz) : 1;
        if (count == 0)
        {
            return ExecStatus.Continue;
        }

        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        // INS writes ES:rDI, which no prefix overrides: the segment field is ES.
        int st = IoIntercept(c, port, size, asz, input: true, str: true, rep, SegReg.ES);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        // One iteration per call on the debug path, so single-step and breakpoint traps follow each iteration.
        int chunk = Math.Min(IoStringChunk, c.StringChunk);
        for (int i = 0; i < chunk; i++)
        {
            ulong di = c.GetReg(Reg.RDI, asz);
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

            c.SetReg(Reg.RDI, asz, di + (ulong)step);
            if (!rep)
            {
                return ExecStatus.Continue;
            }

            count--;
            c.SetReg(Reg.RCX, asz, count);
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
        ulong count = rep ? c.GetReg(Reg.RCX, asz) : 1;
        if (count == 0)
        {
            return ExecStatus.Continue;
        }

        if (!IoAllowed(c, port, size))
        {
            return ExecStatus.Fault;
        }

        int st = IoIntercept(c, port, size, asz, input: false, str: true, rep, op.Seg);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        // One iteration per call on the debug path, so single-step and breakpoint traps follow each iteration.
        int chunk = Math.Min(IoStringChunk, c.StringChunk);
        for (int i = 0; i < chunk; i++)
        {
            ulong si = c.GetReg(Reg.RSI, asz);
            if (!c.ReadMem(op.Seg, si, size, out ulong v))
            {
                return ExecStatus.Fault;
            }

            c.Phys.Io.Out(port, size, (uint)v);
            c.SetReg(Reg.RSI, asz, si + (ulong)step);
            if (!rep)
            {
                return c.StopRequested ? ExecStatus.EndBlock : ExecStatus.Continue;
            }

            count--;
            c.SetReg(Reg.RCX, asz, count);
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
        c.InterruptWindowOpened();
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

    // ---- Descriptor-table registers and selector inspection ----

    private static void RegisterDescriptorTables(HandlerTable t)
    {
        t.Add(Code.Lgdt_m1632_16, &Lgdt, CostClass.Serializing);
        t.Add(Code.Lgdt_m1632, &Lgdt, CostClass.Serializing);
        t.Add(Code.Lgdt_m1664, &Lgdt, CostClass.Serializing);
        t.Add(Code.Lidt_m1632_16, &Lidt, CostClass.Serializing);
        t.Add(Code.Lidt_m1632, &Lidt, CostClass.Serializing);
        t.Add(Code.Lidt_m1664, &Lidt, CostClass.Serializing);
        t.Add(Code.Sgdt_m1632_16, &Sgdt, CostClass.System);
        t.Add(Code.Sgdt_m1632, &Sgdt, CostClass.System);
        t.Add(Code.Sgdt_m1664, &Sgdt, CostClass.System);
        t.Add(Code.Sidt_m1632_16, &Sidt, CostClass.System);
        t.Add(Code.Sidt_m1632, &Sidt, CostClass.System);
        t.Add(Code.Sidt_m1664, &Sidt, CostClass.System);
        t.Add(Code.Lldt_rm16, &Lldt, CostClass.Serializing);
        t.Add(Code.Lldt_r32m16, &Lldt, CostClass.Serializing);
        t.Add(Code.Lldt_r64m16, &Lldt, CostClass.Serializing);
        t.Add(Code.Ltr_rm16, &Ltr, CostClass.Serializing);
        t.Add(Code.Ltr_r32m16, &Ltr, CostClass.Serializing);
        t.Add(Code.Ltr_r64m16, &Ltr, CostClass.Serializing);
        t.Add(Code.Sldt_rm16, &Sldt, CostClass.System);
        t.Add(Code.Sldt_r32m16, &Sldt, CostClass.System);
        t.Add(Code.Sldt_r64m16, &Sldt, CostClass.System);
        t.Add(Code.Str_rm16, &Str, CostClass.System);
        t.Add(Code.Str_r32m16, &Str, CostClass.System);
        t.Add(Code.Str_r64m16, &Str, CostClass.System);
        t.Add(Code.Lar_r16_rm16, &Lar, CostClass.System);
        t.Add(Code.Lar_r32_r32m16, &Lar, CostClass.System);
        t.Add(Code.Lar_r64_r64m16, &Lar, CostClass.System);
        t.Add(Code.Lsl_r16_rm16, &Lsl, CostClass.System);
        t.Add(Code.Lsl_r32_r32m16, &Lsl, CostClass.System);
        t.Add(Code.Lsl_r64_r64m16, &Lsl, CostClass.System);
        t.Add(Code.Verr_rm16, &Verr, CostClass.System);
        t.Add(Code.Verr_r32m16, &Verr, CostClass.System);
        t.Add(Code.Verr_r64m16, &Verr, CostClass.System);
        t.Add(Code.Verw_rm16, &Verw, CostClass.System);
        t.Add(Code.Verw_r32m16, &Verw, CostClass.System);
        t.Add(Code.Verw_r64m16, &Verw, CostClass.System);
        t.Add(Code.Arpl_rm16_r16, &Arpl, CostClass.Simple);
        t.Add(Code.Arpl_r32m16_r32, &Arpl, CostClass.Simple);
    }

    /// <summary>Real mode or virtual-8086 mode: the protected-mode-only instructions raise #UD there.</summary>
    private static bool NotProtected(Cpu.Cpu c) => c.Mode is CpuMode.Real or CpuMode.Virtual8086;

    /// <summary>CPL-0 instructions: #GP(0) at CPL &gt; 0 or in virtual-8086 mode.</summary>
    private static bool NotCpl0(Cpu.Cpu c) => c.Cpl != 0 || c.Mode == CpuMode.Virtual8086;

    /// <summary>CR4.UMIP blocks SGDT/SIDT/SLDT/STR outside CPL 0 (APM vol. 2 §3.1.3).</summary>
    private static bool UmipBlocks(Cpu.Cpu c) => (c.Cr4 & Cr4Bits.UMIP) != 0 && c.Cpl > 0;

    public static int Lgdt(Cpu.Cpu c, ref DecodedOp op) => LoadTableRegister(c, ref op, ref c.Gdtr, SvmIntercept.GdtrWrite);

    public static int Lidt(Cpu.Cpu c, ref DecodedOp op) => LoadTableRegister(c, ref op, ref c.Idtr, SvmIntercept.IdtrWrite);

    /// <summary>
    /// The descriptor-table read/write intercepts (APM vol. 2 §15.9): after #UD and the CPL/UMIP #GP, before the
    /// operand's memory access. Continue when not intercepted.
    /// </summary>
    private static int TableIntercept(Cpu.Cpu c, int bit) =>
        c.Intercepted(bit) ? c.InterceptExit(SvmIntercept.ExitCode(bit)) : ExecStatus.Continue;

    /// <summary>LGDT/LIDT m16&amp;32 / m16&amp;64: a 16-bit operand loads a 24-bit base; 64-bit mode loads an 8-byte base.</summary>
    private static int LoadTableRegister(Cpu.Cpu c, ref DecodedOp op, ref TableRegister reg, int interceptBit)
    {
        if (!op.HasMem)
        {
            return c.RaiseUD();
        }

        if (c.Mode != CpuMode.Real && NotCpl0(c))
        {
            return c.RaiseGP(0);
        }

        int st = TableIntercept(c, interceptBit);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong ea = c.Ea(ref op);
        int baseSize = c.Is64 ? 8 : 4;
        if (!c.ReadMem(op.Seg, ea, 2, out ulong limit) || !c.ReadMem(op.Seg, WrapAddr(ea + 2, op.AddrSize), baseSize, out ulong b))
        {
            return ExecStatus.Fault;
        }

        if (c.Is64 && !c.IsCanonical(b))
        {
            return c.RaiseGP(0);
        }

        if (op.Code is Code.Lgdt_m1632_16 or Code.Lidt_m1632_16)
        {
            b &= 0xFFFFFF;
        }

        reg.Base = b;
        reg.Limit = (ushort)limit;
        return ExecStatus.Continue;
    }

    public static int Sgdt(Cpu.Cpu c, ref DecodedOp op) => StoreTableRegister(c, ref op, c.Gdtr, SvmIntercept.GdtrRead);

    public static int Sidt(Cpu.Cpu c, ref DecodedOp op) => StoreTableRegister(c, ref op, c.Idtr, SvmIntercept.IdtrRead);

    /// <summary>SGDT/SIDT: limit then base (4 bytes, 8 in 64-bit mode; a 16-bit operand stores the top byte as 0).</summary>
    private static int StoreTableRegister(Cpu.Cpu c, ref DecodedOp op, TableRegister reg, int interceptBit)
    {
        if (!op.HasMem)
        {
            return c.RaiseUD();
        }

        if (UmipBlocks(c))
        {
            return c.RaiseGP(0);
        }

        int st = TableIntercept(c, interceptBit);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong ea = c.Ea(ref op);
        int baseSize = c.Is64 ? 8 : 4;
        ulong b = op.Code is Code.Sgdt_m1632_16 or Code.Sidt_m1632_16 ? reg.Base & 0xFFFFFF : reg.Base;
        ulong ea2 = WrapAddr(ea + 2, op.AddrSize);
        // Probe both parts before writing either.
        if (!c.ReadMemForWrite(op.Seg, ea, 2, out _) || !c.ReadMemForWrite(op.Seg, ea2, baseSize, out _))
        {
            return ExecStatus.Fault;
        }

        return c.WriteMem(op.Seg, ea, 2, reg.Limit) && c.WriteMem(op.Seg, ea2, baseSize, b) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>Selector operand of LLDT/LTR/VERR/VERW (r/m16 in operand 0) or LAR/LSL (operand 1).</summary>
    private static bool ReadSelector(Cpu.Cpu c, ref DecodedOp op, int operand, out ushort sel)
    {
        int r = operand == 0 ? op.R0 : op.R1;
        if (r != Reg.NoReg)
        {
            sel = (ushort)c.Gpr[r];
            return true;
        }

        bool ok = c.ReadMem(op.Seg, c.Ea(ref op), 2, out ulong v);
        sel = (ushort)v;
        return ok;
    }

    /// <summary>
    /// LLDT (APM vol. 3): CPL 0; a null selector makes LDTR unusable; otherwise a GDT selector of an LDT
    /// descriptor (type 2), present (#NP). In long mode the descriptor is 16 bytes (64-bit base).
    /// </summary>
    public static int Lldt(Cpu.Cpu c, ref DecodedOp op)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        if (NotCpl0(c))
        {
            return c.RaiseGP(0);
        }

        int st = TableIntercept(c, SvmIntercept.LdtrWrite);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!ReadSelector(c, ref op, 0, out ushort sel))
        {
            return ExecStatus.Fault;
        }

        if (Cpu.Cpu.IsNullSelector(sel))
        {
            c.Seg[Cpu.Cpu.LdtrIndex] = Cpu.Cpu.NullSegment(sel);
            return ExecStatus.Continue;
        }

        if (!LoadSystemDescriptor(c, sel, out SegmentCache ldt, out _))
        {
            return ExecStatus.Fault;
        }

        uint err = Cpu.Cpu.SelectorError(sel);
        if ((ldt.Attr & 0x1F) != 2)
        {
            return c.RaiseGP(err);
        }

        if (!ldt.Present)
        {
            return c.Raise(Vector.NP, err);
        }

        c.Seg[Cpu.Cpu.LdtrIndex] = ldt;
        return ExecStatus.Continue;
    }

    /// <summary>
    /// LTR (APM vol. 3): CPL 0; a GDT selector of an available TSS (16-bit type 1 or 32/64-bit type 9;
    /// long mode only type 9), present (#NP); marks the descriptor busy in memory.
    /// </summary>
    public static int Ltr(Cpu.Cpu c, ref DecodedOp op)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        if (NotCpl0(c))
        {
            return c.RaiseGP(0);
        }

        int st = TableIntercept(c, SvmIntercept.TrWrite);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!ReadSelector(c, ref op, 0, out ushort sel))
        {
            return ExecStatus.Fault;
        }

        if (Cpu.Cpu.IsNullSelector(sel))
        {
            return c.RaiseGP(0);
        }

        if (!LoadSystemDescriptor(c, sel, out SegmentCache tss, out ulong d))
        {
            return ExecStatus.Fault;
        }

        uint err = Cpu.Cpu.SelectorError(sel);
        int type = tss.Attr & 0x1F;
        if (c.LongModeActive ? type != 9 : type is not (1 or 9))
        {
            return c.RaiseGP(err);
        }

        if (!tss.Present)
        {
            return c.Raise(Vector.NP, err);
        }

        if (!c.WriteLinearSystem(c.Gdtr.Base + (uint)(sel & ~7) + 5, 1, (d >> 40) | 2))
        {
            return ExecStatus.Fault;
        }

        tss.Attr |= 2;
        c.Seg[Cpu.Cpu.TrIndex] = tss;
        return ExecStatus.Continue;
    }

    /// <summary>Reads a GDT system descriptor (LDT/TSS): TI must be 0; 16 bytes in long mode.</summary>
    private static bool LoadSystemDescriptor(Cpu.Cpu c, ushort sel, out SegmentCache cache, out ulong d)
    {
        cache = default;
        d = 0;
        if ((sel & 4) != 0)
        {
            c.RaiseGP(Cpu.Cpu.SelectorError(sel));
            return false;
        }

        if (!c.FetchDescriptor(sel, out d))
        {
            return false;
        }

        cache = Cpu.Cpu.FromDescriptor(sel, d);
        if ((cache.Attr & SegmentCache.AttrS) != 0)
        {
            c.RaiseGP(Cpu.Cpu.SelectorError(sel));
            return false;
        }

        if (c.LongModeActive)
        {
            if (!c.FetchDescriptorHigh(sel, out ulong hi))
            {
                return false;
            }

            cache.Base |= (hi & 0xFFFFFFFF) << 32;

            // The 64-bit base must be canonical (APM vol. 3 "LLDT", "LTR": #GP(selector)).
            if (!c.IsCanonical(cache.Base))
            {
                c.RaiseGP(Cpu.Cpu.SelectorError(sel));
                return false;
            }
        }

        return true;
    }

    public static int Sldt(Cpu.Cpu c, ref DecodedOp op) => StoreSelector(c, ref op, c.Seg[Cpu.Cpu.LdtrIndex].Selector, SvmIntercept.LdtrRead);

    public static int Str(Cpu.Cpu c, ref DecodedOp op) => StoreSelector(c, ref op, c.Seg[Cpu.Cpu.TrIndex].Selector, SvmIntercept.TrRead);

    /// <summary>SLDT/STR: a register destination gets the selector zero-extended to the operand size; memory gets 16 bits.</summary>
    private static int StoreSelector(Cpu.Cpu c, ref DecodedOp op, ushort sel, int interceptBit)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        if (UmipBlocks(c))
        {
            return c.RaiseGP(0);
        }

        int st = TableIntercept(c, interceptBit);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, op.OpSize, sel);
            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), 2, sel) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>Sets or clears ZF only (LAR/LSL/VERR/VERW/ARPL leave the other flags alone).</summary>
    private static void SetZeroFlagOnly(Cpu.Cpu c, bool zf)
    {
        c.MaterializeFlags();
        c.FlagsBits = zf ? c.FlagsBits | Rflags.ZF : c.FlagsBits & ~Rflags.ZF;
    }

    /// <summary>
    /// Reads the descriptor a LAR/LSL/VERR/VERW selector names, without faulting on a bad selector:
    /// returns 0 (ZF=0) for null or out-of-table, 1 with the descriptor, or -1 when a memory fault is pending.
    /// </summary>
    private static int InspectDescriptor(Cpu.Cpu c, ushort sel, out ulong d)
    {
        d = 0;
        if (Cpu.Cpu.IsNullSelector(sel) || !c.DescriptorInTable(sel))
        {
            return 0;
        }

        return c.FetchDescriptor(sel, out d) ? 1 : -1;
    }

    /// <summary>Privilege rule of LAR/LSL/VERR/VERW: conforming code is always visible; else DPL ≥ CPL and DPL ≥ RPL.</summary>
    private static bool Visible(Cpu.Cpu c, ushort sel, ulong d)
    {
        bool conformingCode = ((d >> 40) & 0x1C) == 0x1C;
        int dpl = (int)(d >> 45) & 3;
        return conformingCode || (dpl >= c.Cpl && dpl >= (sel & 3));
    }

    /// <summary>System-descriptor types LAR accepts (APM vol. 3 "LAR"): legacy TSSs, LDT, gates; long mode LDT, 64-bit TSS, call gate.</summary>
    private static bool LarType(Cpu.Cpu c, int type) => c.LongModeActive
        ? type is 2 or 9 or 0xB or 0xC
        : type is 1 or 2 or 3 or 4 or 5 or 9 or 0xB or 0xC;

    /// <summary>System-descriptor types LSL accepts: TSSs and LDT (no gates).</summary>
    private static bool LslType(Cpu.Cpu c, int type) => c.LongModeActive
        ? type is 2 or 9 or 0xB
        : type is 1 or 2 or 3 or 9 or 0xB;

    /// <summary>LAR: ZF=1 and dest ← descriptor bytes 4..7 masked with 0x00FFFF00 (0xFF00 for 16 bits) when visible.</summary>
    public static int Lar(Cpu.Cpu c, ref DecodedOp op)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        if (!ReadSelector(c, ref op, 1, out ushort sel))
        {
            return ExecStatus.Fault;
        }

        int r = InspectDescriptor(c, sel, out ulong d);
        if (r < 0)
        {
            return ExecStatus.Fault;
        }

        bool system = (d & (1UL << 44)) == 0;
        bool ok = r > 0 && (!system || LarType(c, (int)(d >> 40) & 0xF)) && Visible(c, sel, d);
        if (ok)
        {
            c.SetReg(op.R0, op.OpSize, (d >> 32) & 0x00FFFF00);
        }

        SetZeroFlagOnly(c, ok);
        return ExecStatus.Continue;
    }

    /// <summary>LSL: ZF=1 and dest ← the byte-granular segment limit when visible.</summary>
    public static int Lsl(Cpu.Cpu c, ref DecodedOp op)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        if (!ReadSelector(c, ref op, 1, out ushort sel))
        {
            return ExecStatus.Fault;
        }

        int r = InspectDescriptor(c, sel, out ulong d);
        if (r < 0)
        {
            return ExecStatus.Fault;
        }

        bool system = (d & (1UL << 44)) == 0;
        bool ok = r > 0 && (!system || LslType(c, (int)(d >> 40) & 0xF)) && Visible(c, sel, d);
        if (ok)
        {
            c.SetReg(op.R0, op.OpSize, Cpu.Cpu.FromDescriptor(sel, d).Limit);
        }

        SetZeroFlagOnly(c, ok);
        return ExecStatus.Continue;
    }

    public static int Verr(Cpu.Cpu c, ref DecodedOp op) => Verify(c, ref op, write: false);

    public static int Verw(Cpu.Cpu c, ref DecodedOp op) => Verify(c, ref op, write: true);

    /// <summary>VERR: readable code or data segment; VERW: writable data segment; both need visibility (ZF result).</summary>
    private static int Verify(Cpu.Cpu c, ref DecodedOp op, bool write)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        if (!ReadSelector(c, ref op, 0, out ushort sel))
        {
            return ExecStatus.Fault;
        }

        int r = InspectDescriptor(c, sel, out ulong d);
        if (r < 0)
        {
            return ExecStatus.Fault;
        }

        int type = (int)(d >> 40) & 0xF;
        bool segment = (d & (1UL << 44)) != 0;
        bool code = (type & 8) != 0;
        bool rightsOk = write ? !code && (type & 2) != 0 : !code || (type & 2) != 0;
        SetZeroFlagOnly(c, r > 0 && segment && rightsOk && Visible(c, sel, d));
        return ExecStatus.Continue;
    }

    /// <summary>ARPL r/m16, r16: raises the destination RPL to the source RPL (ZF=1) if lower; protected mode only.</summary>
    public static int Arpl(Cpu.Cpu c, ref DecodedOp op)
    {
        if (NotProtected(c))
        {
            return c.RaiseUD();
        }

        ulong dst;
        ulong ea = 0;
        if (op.R0 != Reg.NoReg)
        {
            dst = c.Gpr[op.R0];
        }
        else
        {
            ea = c.Ea(ref op);
            if (!c.ReadMemForWrite(op.Seg, ea, 2, out dst))
            {
                return ExecStatus.Fault;
            }
        }

        ulong src = c.Gpr[op.R1];
        bool adjust = (dst & 3) < (src & 3);
        if (adjust)
        {
            ushort v = (ushort)((dst & ~3UL) | (src & 3));
            if (op.R0 != Reg.NoReg)
            {
                c.SetReg(op.R0, 2, v);
            }
            else if (!c.WriteMem(op.Seg, ea, 2, v))
            {
                return ExecStatus.Fault;
            }
        }

        SetZeroFlagOnly(c, adjust);
        return ExecStatus.Continue;
    }
}
