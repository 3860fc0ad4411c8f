using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>Stack instructions: PUSH, POP, PUSHA/POPA, ENTER, LEAVE, PUSHF/POPF (APM vol. 3).</summary>
public static unsafe partial class Exec
{
    private static void RegisterStack(HandlerTable t)
    {
        t.Add(Code.Push_r16, &PushRm, CostClass.Stack);
        t.Add(Code.Push_r32, &PushRm, CostClass.Stack);
        t.Add(Code.Push_r64, &PushRm, CostClass.Stack);
        t.Add(Code.Push_rm16, &PushRm, CostClass.Stack);
        t.Add(Code.Push_rm32, &PushRm, CostClass.Stack);
        t.Add(Code.Push_rm64, &PushRm, CostClass.Stack);
        t.Add(Code.Pop_r16, &PopRm, CostClass.Stack);
        t.Add(Code.Pop_r32, &PopRm, CostClass.Stack);
        t.Add(Code.Pop_r64, &PopRm, CostClass.Stack);
        t.Add(Code.Pop_rm16, &PopRm, CostClass.Stack);
        t.Add(Code.Pop_rm32, &PopRm, CostClass.Stack);
        t.Add(Code.Pop_rm64, &PopRm, CostClass.Stack);
        t.AddForms(Code.Push_r64, &PickPushR64);
        t.AddForms(Code.Pop_r64, &PickPopR64);

        t.Add(Code.Push_imm16, &PushImm<Dw16>, CostClass.Stack);
        t.Add(Code.Pushw_imm8, &PushImm<Dw16>, CostClass.Stack);
        t.Add(Code.Pushd_imm32, &PushImm<Dw32>, CostClass.Stack);
        t.Add(Code.Pushd_imm8, &PushImm<Dw32>, CostClass.Stack);
        t.Add(Code.Pushq_imm32, &PushImm<Dw64>, CostClass.Stack);
        t.Add(Code.Pushq_imm8, &PushImm<Dw64>, CostClass.Stack);

        t.Add(Code.Pushaw, &Pusha<Dw16>, CostClass.Stack);
        t.Add(Code.Pushad, &Pusha<Dw32>, CostClass.Stack);
        t.Add(Code.Popaw, &Popa<Dw16>, CostClass.Stack);
        t.Add(Code.Popad, &Popa<Dw32>, CostClass.Stack);

        t.Add(Code.Enterw_imm16_imm8, &Enter<Dw16>, CostClass.Stack);
        t.Add(Code.Enterd_imm16_imm8, &Enter<Dw32>, CostClass.Stack);
        t.Add(Code.Enterq_imm16_imm8, &Enter<Dw64>, CostClass.Stack);
        t.Add(Code.Leavew, &Leave<Dw16>, CostClass.Stack);
        t.Add(Code.Leaved, &Leave<Dw32>, CostClass.Stack);
        t.Add(Code.Leaveq, &Leave<Dw64>, CostClass.Stack);

        t.Add(Code.Pushfw, &Pushf<Dw16>, CostClass.Stack);
        t.Add(Code.Pushfd, &Pushf<Dw32>, CostClass.Stack);
        t.Add(Code.Pushfq, &Pushf<Dw64>, CostClass.Stack);
        t.Add(Code.Popfw, &Popf<Dw16>, CostClass.System);
        t.Add(Code.Popfd, &Popf<Dw32>, CostClass.System);
        t.Add(Code.Popfq, &Popf<Dw64>, CostClass.System);
    }

    /// <summary>rSP (or a value derived from it) as an offset in SS at the stack width.</summary>
    private static ulong StackOffset(ulong sp, int stackSize) => stackSize switch
    {
        8 => sp,
        4 => (uint)sp,
        _ => (ushort)sp,
    };

    /// <summary>PUSH reg / PUSH r/m: the operand is read first, so PUSH rSP pushes the old value and PUSH [rSP] reads the old top.</summary>
    public static int PushRm(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadOp0(c, ref op, out ulong v))
        {
            return ExecStatus.Fault;
        }

        return c.Push(v, op.OpSize) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>Form selector for PUSH r64, which exists only in 64-bit mode: the register is one of the 16.</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickPushR64(ref DecodedOp op) => op.R0 < 16 ? &PushR64 : null;

    /// <summary>Form selector for POP r64 (64-bit mode only).</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickPopR64(ref DecodedOp op) => op.R0 < 16 ? &PopR64 : null;

    internal static int PushR64(Cpu.Cpu c, ref DecodedOp op) => PushR64K(c, op.R0);

    /// <summary>
    /// <see cref="PushRm"/> of a 64-bit register in 64-bit mode, where the stack is 8 bytes wide and rSP wraps at
    /// 64 bits: the value is read before rSP moves, so PUSH RSP stores the old rSP (APM vol. 3 "PUSH").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int PushR64K(Cpu.Cpu c, int r0)
    {
        ref ulong rsp = ref c.GprUnchecked(Reg.RSP);
        ulong sp = rsp - 8;
        if (!c.WriteMemInline(SegReg.SS, sp, 8, c.GprUnchecked(r0)))
        {
            return ExecStatus.Fault;
        }

        rsp = sp;
        return ExecStatus.Continue;
    }

    internal static int PopR64(Cpu.Cpu c, ref DecodedOp op) => PopR64K(c, op.R0);

    /// <summary>
    /// <see cref="PopRm"/> into a 64-bit register in 64-bit mode: rSP moves past the value, then the register takes
    /// it, so POP RSP ends with the popped value (APM vol. 3 "POP").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int PopR64K(Cpu.Cpu c, int r0)
    {
        ref ulong rsp = ref c.GprUnchecked(Reg.RSP);
        ulong sp = rsp;
        if (!c.ReadMemInline(SegReg.SS, sp, 8, out ulong v))
        {
            return ExecStatus.Fault;
        }

        rsp = sp + 8;
        c.GprUnchecked(r0) = v;
        return ExecStatus.Continue;
    }

    /// <summary>
    /// POP reg / POP r/m. POP rSP loads the popped value (the increment is lost); a memory destination
    /// is addressed with rSP already incremented (APM vol. 3 "POP"). A faulting store leaves rSP unchanged.
    /// </summary>
    public static int PopRm(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = op.OpSize;
        if (!c.PeekStack(0, size, out ulong v))
        {
            return ExecStatus.Fault;
        }

        ulong oldSp = c.Gpr[Reg.RSP];
        c.SetStackPointer(oldSp + (ulong)size, c.StackSize);
        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, size, v);
            return ExecStatus.Continue;
        }

        if (!c.WriteMem(op.Seg, c.Ea(ref op), size, v))
        {
            c.Gpr[Reg.RSP] = oldSp;
            return ExecStatus.Fault;
        }

        return ExecStatus.Continue;
    }

    /// <summary>PUSH imm8/imm16/imm32: the immediate is sign-extended to the operand size (8 bytes in 64-bit mode, 2 with 66h).</summary>
    public static int PushImm<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
        => c.Push(op.Imm, TW.Bytes) ? ExecStatus.Continue : ExecStatus.Fault;

    /// <summary>
    /// Pushes <paramref name="values"/> in order below rSP: every slot is probed for write access first,
    /// so a fault leaves memory and rSP untouched. Returns false with the exception pending.
    /// </summary>
    private static bool PushAll(Cpu.Cpu c, ReadOnlySpan<ulong> values, int size)
    {
        int ss = c.StackSize;
        ulong sp = c.Gpr[Reg.RSP];
        for (int i = 0; i < values.Length; i++)
        {
            if (!c.ReadMemForWrite(SegReg.SS, StackOffset(sp - (ulong)(size * (i + 1)), ss), size, out _))
            {
                return false;
            }
        }

        for (int i = 0; i < values.Length; i++)
        {
            if (!c.WriteMem(SegReg.SS, StackOffset(sp - (ulong)(size * (i + 1)), ss), size, values[i]))
            {
                return false;
            }
        }

        c.SetStackPointer(sp - (ulong)(size * values.Length), ss);
        return true;
    }

    /// <summary>PUSHA/PUSHAD: rAX, rCX, rDX, rBX, the original rSP, rBP, rSI, rDI.</summary>
    public static int Pusha<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        Span<ulong> v = stackalloc ulong[8];
        for (int i = 0; i < 8; i++)
        {
            v[i] = c.GetReg(i, size);
        }

        return PushAll(c, v, size) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>POPA/POPAD: pops rDI, rSI, rBP, (discarded rSP slot), rBX, rDX, rCX, rAX.</summary>
    public static int Popa<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        Span<ulong> v = stackalloc ulong[8];
        for (int i = 0; i < 8; i++)
        {
            if (!c.PeekStack((ulong)(i * size), size, out v[i]))
            {
                return ExecStatus.Fault;
            }
        }

        for (int i = 0; i < 8; i++)
        {
            int r = 7 - i;
            if (r != Reg.RSP)
            {
                c.SetReg(r, size, v[i]);
            }
        }

        c.SetStackPointer(c.Gpr[Reg.RSP] + (ulong)(8 * size), c.StackSize);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// ENTER size, level (APM vol. 3 "ENTER"): push rBP, copy level−1 frame pointers from the old
    /// frame, push the new frame pointer, point rBP at the frame and reserve size bytes. The level is
    /// taken mod 32. All reads and write probes happen before anything is changed.
    /// </summary>
    public static int Enter<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        int ss = c.StackSize;
        int level = (int)(op.Imm2 & 31);
        ulong allocate = op.Imm & 0xFFFF;
        Span<ulong> v = stackalloc ulong[33];
        int n = 0;
        v[n++] = c.GetReg(Reg.RBP, size);
        ulong frame = StackOffset(c.Gpr[Reg.RSP] - (ulong)size, ss);
        if (level > 0)
        {
            ulong bp = c.Gpr[Reg.RBP];
            for (int i = 1; i < level; i++)
            {
                bp -= (ulong)size;
                if (!c.ReadMem(SegReg.SS, StackOffset(bp, ss), size, out ulong link))
                {
                    return ExecStatus.Fault;
                }

                v[n++] = link;
            }

            v[n++] = frame;
        }

        if (!PushAll(c, v[..n], size))
        {
            return ExecStatus.Fault;
        }

        c.SetReg(Reg.RBP, size, frame);
        c.SetStackPointer(c.Gpr[Reg.RSP] - allocate, ss);
        return ExecStatus.Continue;
    }

    /// <summary>LEAVE: rSP ← rBP (stack width), then POP rBP (operand size).</summary>
    public static int Leave<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        int ss = c.StackSize;
        ulong bp = StackOffset(c.Gpr[Reg.RBP], ss);
        if (!c.ReadMem(SegReg.SS, bp, size, out ulong v))
        {
            return ExecStatus.Fault;
        }

        c.SetStackPointer(bp + (ulong)size, ss);
        c.SetReg(Reg.RBP, size, v);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// PUSHF/PUSHFD/PUSHFQ: the image has VM and RF clear (APM vol. 3 "PUSHF"). In virtual-8086 mode
    /// with IOPL &lt; 3 it is #GP(0), except a 16-bit PUSHF under CR4.VME, which pushes VIF in the IF
    /// position and IOPL as 3.
    /// </summary>
    public static int Pushf<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        ulong f = c.Rflags64 & ~(Rflags.VM | Rflags.RF);
        if (c.Mode == CpuMode.Virtual8086 && (f & Rflags.IOPL) != Rflags.IOPL)
        {
            if ((c.Cr4 & Cr4Bits.VME) == 0 || size != 2)
            {
                return c.RaiseGP(0);
            }

            f = (f & ~Rflags.IF) | ((f & Rflags.VIF) != 0 ? Rflags.IF : 0) | Rflags.IOPL;
        }

        // After the virtual-8086 #GP, before the stack write (APM vol. 2 §15.9).
        if (c.Intercepted(SvmIntercept.Pushf) && c.InterceptEnds(SvmExit.Pushf, out int exit))
        {
            return exit;
        }

        return c.Push(f, size) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>
    /// POPF/POPFD/POPFQ (APM vol. 3 "POPF"): only the operand-size part of RFLAGS is loaded; VM, VIF
    /// and VIP never change and RF is cleared; IOPL changes only at CPL 0; IF only when CPL ≤ IOPL.
    /// In virtual-8086 mode IOPL is never changed; with IOPL &lt; 3 it is #GP(0) unless CR4.VME and a
    /// 16-bit operand, in which case the popped IF goes to VIF (#GP(0) if it would set IF with VIP
    /// pending, or sets TF).
    /// </summary>
    public static int Popf<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes;
        // The intercept comes before the stack read; the virtual-8086 IOPL #GP (a simple exception) before it.
        if (c.Intercepted(SvmIntercept.Popf))
        {
            bool v86Fault = c.Mode == CpuMode.Virtual8086 && Iopl(c) != 3 && ((c.Cr4 & Cr4Bits.VME) == 0 || size != 2);
            if (v86Fault)
            {
                return c.RaiseGP(0);
            }

            if (c.InterceptEnds(SvmExit.Popf, out int exit))
            {
                return exit;
            }
        }

        if (!c.PeekStack(0, size, out ulong popped))
        {
            return ExecStatus.Fault;
        }

        ulong old = c.Rflags64;
        const ulong Loadable = Rflags.Arith | Rflags.TF | Rflags.IF | Rflags.DF | Rflags.IOPL | Rflags.NT | Rflags.AC | Rflags.ID;
        ulong writable = Loadable & Cpu.Cpu.SizeMask(size);
        ulong setVif = ulong.MaxValue;
        int iopl = (int)((old & Rflags.IOPL) >> 12);
        if (c.Mode == CpuMode.Virtual8086)
        {
            writable &= ~Rflags.IOPL;
            if (iopl != 3)
            {
                if ((c.Cr4 & Cr4Bits.VME) == 0 || size != 2)
                {
                    return c.RaiseGP(0);
                }

                if (((popped & Rflags.IF) != 0 && (old & Rflags.VIP) != 0) || (popped & Rflags.TF) != 0)
                {
                    return c.RaiseGP(0);
                }

                writable &= ~Rflags.IF;
                setVif = (popped & Rflags.IF) != 0 ? Rflags.VIF : 0;
            }
        }
        else
        {
            if (c.Cpl != 0)
            {
                writable &= ~Rflags.IOPL;
            }

            if (c.Cpl > iopl)
            {
                writable &= ~Rflags.IF;
            }
        }

        ulong f = (old & ~writable & ~Rflags.RF) | (popped & writable) | Rflags.Reserved1;
        if (setVif != ulong.MaxValue)
        {
            f = (f & ~Rflags.VIF) | setVif;
        }

        c.SetStackPointer(c.Gpr[Reg.RSP] + (ulong)size, c.StackSize);
        c.FlagsBits = f;
        c.LazyOp = LazyFlags.None;
        c.RflagsLoaded(old);
        c.InterruptWindowOpened();
        return ((old ^ f) & (Rflags.IF | Rflags.TF | Rflags.AC | Rflags.VIF)) != 0 ? ExecStatus.EndBlock : ExecStatus.Continue;
    }
}
