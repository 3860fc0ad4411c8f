using System.Reflection;
using System.Reflection.Emit;

namespace Emulator.Core.Decode;

/// <summary>Guest registers a compiled block holds in locals of its method (docs/cpu.md, "Registers in locals").</summary>
internal static partial class BlockCompiler
{
    private static readonly MethodInfo s_gpr = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.GprUnchecked))!;

    /// <summary>
    /// The general registers one block of a region's method keeps in locals (one ulong local per register, shared by
    /// the region's blocks), so the runtime can keep them in host registers: a register is read from the vCPU once
    /// (<see cref="Load"/>) and written back (<see cref="Flush"/>) before anything that can look at the machine
    /// runs, an op that can fault included, and at the block's end. What is held is forgotten at every block's start
    /// (a block is entered from several places) and after any op the block calls without its registers
    /// (<see cref="Forget"/>), which may have changed any of them.
    /// </summary>
    private sealed class RegisterLocals(ILGenerator il)
    {
        private readonly LocalBuilder?[] _locals = new LocalBuilder?[16];

        // Bit r: the local holds register r's value; the local is newer than the vCPU's register.
        private int _held;
        private int _dirty;

        /// <summary>A block starts: nothing is held.</summary>
        public void StartBlock()
        {
            _held = 0;
            _dirty = 0;
        }

        /// <summary>Makes the local hold register <paramref name="r"/> (reads it from the vCPU unless it does).</summary>
        public void Load(int r)
        {
            if ((_held & (1 << r)) != 0)
            {
                return;
            }

            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldc_I4, r);
            il.Emit(OpCodes.Call, s_gpr);
            il.Emit(OpCodes.Ldind_I8);
            il.Emit(OpCodes.Stloc, Local(r));
            _held |= 1 << r;
        }

        /// <summary>Pushes register <paramref name="r"/>'s value (<see cref="Load"/> first).</summary>
        public void PushValue(int r) => il.Emit(OpCodes.Ldloc, Local(r));

        /// <summary>Pushes the address of register <paramref name="r"/>'s local, for an op to write (then <see cref="Written"/>).</summary>
        public void PushAddress(int r) => il.Emit(OpCodes.Ldloca, Local(r));

        /// <summary>The code just emitted left register <paramref name="r"/>'s whole value in its local.</summary>
        public void Written(int r)
        {
            _held |= 1 << r;
            _dirty |= 1 << r;
        }

        /// <summary>Writes the registers changed since the last flush back to the vCPU and keeps holding them.</summary>
        public void Flush()
        {
            EmitStores();
            _dirty = 0;
        }

        /// <summary>
        /// The write-back of <see cref="Flush"/> on a side path (a way out of the block), leaving the main path's
        /// state as it is.
        /// </summary>
        public void EmitStores()
        {
            for (int r = 0; r < 16; r++)
            {
                if ((_dirty & (1 << r)) != 0)
                {
                    il.Emit(OpCodes.Ldarg_1);
                    il.Emit(OpCodes.Ldc_I4, r);
                    il.Emit(OpCodes.Call, s_gpr);
                    il.Emit(OpCodes.Ldloc, Local(r));
                    il.Emit(OpCodes.Stind_I8);
                }
            }
        }

        /// <summary>After an op that may have changed the registers of <paramref name="mask"/> in the vCPU (called after a <see cref="Flush"/>).</summary>
        public void Forget(int mask = -1)
        {
            System.Diagnostics.Debug.Assert(_dirty == 0, "registers forgotten before they were written back");
            _held &= ~mask;
        }

        private LocalBuilder Local(int r) => _locals[r] ??= il.DeclareLocal(typeof(ulong));
    }

    /// <summary>
    /// A register-only op (<see cref="IsRegisterOnly"/>) on the block's register locals: its form on register
    /// values (AluRR → <see cref="Exec.Exec.AluV{T, TW}"/>, <paramref name="quiet"/>: the form without flags,
    /// <see cref="FlagsDead"/>) with the registers it reads loaded, the one it writes passed by address. False: the op
    /// has no such form.
    /// </summary>
    private static bool TryEmitInLocals(ILGenerator il, ref DecodedOp op, MethodInfo handler, bool quiet, RegisterLocals regs)
    {
        if (handler.Name == nameof(Exec.Exec.Nop))
        {
            return true; // its cycles and the RIP after it are committed with the next op's
        }

        var args = handler.GetGenericArguments();
        int r0 = op.R0;
        bool narrow = WritesPartOfRegister(handler);
        string form;
        Type[] formArgs = args;
        switch (handler.Name)
        {
            case nameof(Exec.Exec.AluRR):
            case nameof(Exec.Exec.AluRI):
            case nameof(Exec.Exec.MovRR):
            case nameof(Exec.Exec.MovRI):
                // An ALU op reads its destination; a MOV only when it keeps part of it.
                bool alu = handler.Name is nameof(Exec.Exec.AluRR) or nameof(Exec.Exec.AluRI);
                bool fromRegister = handler.Name is nameof(Exec.Exec.AluRR) or nameof(Exec.Exec.MovRR);
                form = !alu ? nameof(Exec.Exec.MovV) : quiet ? nameof(Exec.Exec.AluQuietV) : nameof(Exec.Exec.AluV);
                if (alu || narrow)
                {
                    regs.Load(r0);
                }

                if (fromRegister)
                {
                    regs.Load(op.R1);
                }

                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                PushSource(il, ref op, fromRegister, regs);
                break;
            case nameof(Exec.Exec.MovxRR):
                form = nameof(Exec.Exec.MovxV);
                if (narrow)
                {
                    regs.Load(r0);
                }

                regs.Load(op.R1);
                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                regs.PushValue(op.R1);
                break;
            case nameof(Exec.Exec.UnaryR):
                form = quiet ? nameof(Exec.Exec.UnaryQuietV) : nameof(Exec.Exec.UnaryV);
                regs.Load(r0);
                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                break;
            case nameof(Exec.Exec.ImulRR):
                form = quiet ? nameof(Exec.Exec.ImulQuietV) : nameof(Exec.Exec.ImulV);
                regs.Load(r0);
                regs.Load(op.R1);
                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                regs.PushValue(r0);
                regs.PushValue(op.R1);
                break;
            case nameof(Exec.Exec.ImulRRI):
                form = quiet ? nameof(Exec.Exec.ImulQuietV) : nameof(Exec.Exec.ImulV);
                if (narrow)
                {
                    regs.Load(r0);
                }

                regs.Load(op.R1);
                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                regs.PushValue(op.R1);
                il.Emit(OpCodes.Ldc_I8, (long)op.Imm);
                break;
            case nameof(Exec.Exec.ShiftRI):
            case nameof(Exec.Exec.ShiftRC):
                form = nameof(Exec.Exec.ShiftV);
                regs.Load(r0);
                if (handler.Name == nameof(Exec.Exec.ShiftRC))
                {
                    regs.Load(Cpu.Reg.RCX);
                }

                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                if (handler.Name == nameof(Exec.Exec.ShiftRC))
                {
                    regs.PushValue(Cpu.Reg.RCX);
                    il.Emit(OpCodes.Conv_U1);
                }
                else
                {
                    il.Emit(OpCodes.Ldc_I4, (int)(byte)op.Imm);
                }

                break;
            case nameof(Exec.Exec.LeaR):
                // Register-only LEA: [base + disp] or [base + index·scale + disp] in 64-bit code.
                form = nameof(Exec.Exec.MovV);
                formArgs = args[..^1];
                if (narrow)
                {
                    regs.Load(r0);
                }

                LoadAddressRegisters(ref op, regs);
                il.Emit(OpCodes.Ldarg_1);
                regs.PushAddress(r0);
                EmitAddressOf(il, ref op, args[^1], regs);
                break;
            default:
                return false;
        }

        il.Emit(OpCodes.Call, ValueForm(form, formArgs));
        if (WritesFirstOperand(handler))
        {
            regs.Written(r0);
        }

        return true;
    }

    /// <summary>
    /// The general registers an op the block calls without its locals may change in the vCPU (a mask): none for a
    /// jump, NOP, and the SSE moves and integer ops the compiled workloads use (they write XMM registers and memory);
    /// RSP for a near call or return; RSP and the register for PUSH and POP of one; rAX and rDX for MUL, one-operand
    /// IMUL, DIV and IDIV; the destination of IMUL from memory; else all.
    /// </summary>
    private static int RegistersWritten(MethodInfo? handler, ref DecodedOp op)
    {
        if (handler == null || handler.DeclaringType != typeof(Exec.Exec))
        {
            return -1;
        }

        return handler.Name switch
        {
            nameof(Exec.Exec.Jcc) or nameof(Exec.Exec.JmpRel) or nameof(Exec.Exec.Nop)
                or nameof(Exec.Exec.VecBinary) or nameof(Exec.Exec.VecShiftImm) or nameof(Exec.Exec.VecShiftVector) or nameof(Exec.Exec.Pshufd)
                or nameof(Exec.Exec.MovLoadAligned) or nameof(Exec.Exec.MovLoadUnaligned) or nameof(Exec.Exec.MovStoreAligned)
                or nameof(Exec.Exec.MovStoreUnaligned) or nameof(Exec.Exec.MovdToXmm) => 0,
            nameof(Exec.Exec.CallRel) or nameof(Exec.Exec.RetNear) or nameof(Exec.Exec.PushR64) => 1 << Cpu.Reg.RSP,
            nameof(Exec.Exec.Mul) or nameof(Exec.Exec.ImulWide) or nameof(Exec.Exec.Div) or nameof(Exec.Exec.Idiv) => (1 << Cpu.Reg.RAX) | (1 << Cpu.Reg.RDX),
            nameof(Exec.Exec.Imul) when op.R0 < 16 => 1 << op.R0,
            nameof(Exec.Exec.PopR64) => (1 << Cpu.Reg.RSP) | (1 << op.R0),
            _ => -1,
        };
    }

    /// <summary>
    /// An op writing an 8- or 16-bit register, which keeps the rest of it (so the register is read first): its width
    /// is its first width type argument, or for MOVZX and MOVSX, whose first is the source's, the second.
    /// </summary>
    private static bool WritesPartOfRegister(MethodInfo handler)
    {
        var args = handler.GetGenericArguments();
        var width = handler.Name is nameof(Exec.Exec.MovxRR) or nameof(Exec.Exec.MovxRM)
            ? args[1]
            : Array.Find(args, static t => typeof(Exec.Forms.IDataWidth).IsAssignableFrom(t));
        return width == typeof(Exec.Forms.Dw8) || width == typeof(Exec.Forms.Dw16);
    }

    /// <summary>The second operand of an ALU op or MOV: register R1's value, or the immediate.</summary>
    private static void PushSource(ILGenerator il, ref DecodedOp op, bool register, RegisterLocals regs)
    {
        if (register)
        {
            regs.PushValue(op.R1);
        }
        else
        {
            il.Emit(OpCodes.Ldc_I8, (long)op.Imm);
        }
    }

    /// <summary>False for CMP and TEST, which write no register; else the op writes its first operand.</summary>
    private static bool WritesFirstOperand(MethodInfo handler) =>
        !(handler.Name is nameof(Exec.Exec.AluRR) or nameof(Exec.Exec.AluRI) or nameof(Exec.Exec.AluRM)
            && handler.GetGenericArguments()[0] is var t && (t == typeof(Exec.Exec.CmpOp) || t == typeof(Exec.Exec.TestOp)));

    /// <summary>A method of <see cref="Exec.Exec"/> by name, instantiated over <paramref name="args"/>.</summary>
    private static MethodInfo ValueForm(string name, Type[] args)
    {
        var m = typeof(Exec.Exec).GetMethod(name, BindingFlags.Static | BindingFlags.NonPublic)!;
        return args.Length == 0 ? m : m.MakeGenericMethod(args);
    }

    /// <summary>
    /// Whether the op's address is one the block computes from its register locals: 64-bit [base + disp],
    /// [base + index·scale + disp], or (the general kind) [index·scale + disp] and [disp].
    /// </summary>
    private static bool AddressFromLocals(Type addressing, ref DecodedOp op) =>
        addressing == typeof(Exec.Forms.AddrBase64) || addressing == typeof(Exec.Forms.AddrBaseIndex64)
            || (addressing == typeof(Exec.Forms.AddrAny) && op.AddrSize == 8 && op.Base == Cpu.Reg.NoReg && (op.Index == Cpu.Reg.NoReg || op.Index < 16));

    /// <summary>Loads the base and index registers an address of <see cref="AddressFromLocals"/> reads.</summary>
    private static void LoadAddressRegisters(ref DecodedOp op, RegisterLocals regs)
    {
        if (op.Base < 16)
        {
            regs.Load(op.Base);
        }

        if (op.Index < 16)
        {
            regs.Load(op.Index);
        }
    }

    /// <summary>
    /// Pushes the address of <see cref="AddressFromLocals"/> from the register locals (<see cref="LoadAddressRegisters"/>
    /// first): the addressing kind's Of with the base's and the index's values (0 for none), the scale and the
    /// displacement.
    /// </summary>
    private static void EmitAddressOf(ILGenerator il, ref DecodedOp op, Type addressing, RegisterLocals regs)
    {
        if (addressing == typeof(Exec.Forms.AddrAny))
        {
            addressing = typeof(Exec.Forms.AddrNoBase64);
        }

        PushRegisterOrZero(il, op.Base, regs);
        PushRegisterOrZero(il, addressing == typeof(Exec.Forms.AddrBase64) ? Cpu.Reg.NoReg : op.Index, regs);
        il.Emit(OpCodes.Ldc_I4, (int)op.Scale);
        il.Emit(OpCodes.Ldc_I8, op.Disp);
        il.Emit(OpCodes.Call, addressing.GetMethod("Of", BindingFlags.Static | BindingFlags.Public)!);
    }

    private static void PushRegisterOrZero(ILGenerator il, int r, RegisterLocals regs)
    {
        if (r < 16)
        {
            regs.PushValue(r);
        }
        else
        {
            il.Emit(OpCodes.Ldc_I8, 0L);
        }
    }
}
