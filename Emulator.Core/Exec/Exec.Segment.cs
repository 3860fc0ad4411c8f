using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Segment-register loads (MOV Sreg, PUSH/POP Sreg, LDS/LES/LFS/LGS/LSS) and far transfers
/// (JMP/CALL far through code segments and call gates, RET far), APM vol. 2 ch. 4 and vol. 3.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSegment(HandlerTable t)
    {
        t.Add(Code.Mov_Sreg_rm16, &MovSregRm, CostClass.System);
        t.Add(Code.Mov_Sreg_r32m16, &MovSregRm, CostClass.System);
        t.Add(Code.Mov_Sreg_r64m16, &MovSregRm, CostClass.System);
        t.Add(Code.Mov_rm16_Sreg, &MovRmSreg, CostClass.Simple);
        t.Add(Code.Mov_r32m16_Sreg, &MovRmSreg, CostClass.Simple);
        t.Add(Code.Mov_r64m16_Sreg, &MovRmSreg, CostClass.Simple);

        t.Add(Code.Pushw_ES, &PushSreg16, CostClass.Stack);
        t.Add(Code.Pushw_CS, &PushSreg16, CostClass.Stack);
        t.Add(Code.Pushw_SS, &PushSreg16, CostClass.Stack);
        t.Add(Code.Pushw_DS, &PushSreg16, CostClass.Stack);
        t.Add(Code.Pushw_FS, &PushSreg16, CostClass.Stack);
        t.Add(Code.Pushw_GS, &PushSreg16, CostClass.Stack);
        t.Add(Code.Pushd_ES, &PushSreg32, CostClass.Stack);
        t.Add(Code.Pushd_CS, &PushSreg32, CostClass.Stack);
        t.Add(Code.Pushd_SS, &PushSreg32, CostClass.Stack);
        t.Add(Code.Pushd_DS, &PushSreg32, CostClass.Stack);
        t.Add(Code.Pushd_FS, &PushSreg32, CostClass.Stack);
        t.Add(Code.Pushd_GS, &PushSreg32, CostClass.Stack);
        t.Add(Code.Pushq_FS, &PushSreg64, CostClass.Stack);
        t.Add(Code.Pushq_GS, &PushSreg64, CostClass.Stack);
        t.Add(Code.Popw_ES, &PopSreg16, CostClass.System);
        t.Add(Code.Popw_SS, &PopSreg16, CostClass.System);
        t.Add(Code.Popw_DS, &PopSreg16, CostClass.System);
        t.Add(Code.Popw_FS, &PopSreg16, CostClass.System);
        t.Add(Code.Popw_GS, &PopSreg16, CostClass.System);
        t.Add(Code.Popd_ES, &PopSreg32, CostClass.System);
        t.Add(Code.Popd_SS, &PopSreg32, CostClass.System);
        t.Add(Code.Popd_DS, &PopSreg32, CostClass.System);
        t.Add(Code.Popd_FS, &PopSreg32, CostClass.System);
        t.Add(Code.Popd_GS, &PopSreg32, CostClass.System);
        t.Add(Code.Popq_FS, &PopSreg64, CostClass.System);
        t.Add(Code.Popq_GS, &PopSreg64, CostClass.System);

        t.Add(Code.Les_r16_m1616, &LoadFarPointer, CostClass.System);
        t.Add(Code.Les_r32_m1632, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lds_r16_m1616, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lds_r32_m1632, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lss_r16_m1616, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lss_r32_m1632, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lss_r64_m1664, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lfs_r16_m1616, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lfs_r32_m1632, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lfs_r64_m1664, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lgs_r16_m1616, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lgs_r32_m1632, &LoadFarPointer, CostClass.System);
        t.Add(Code.Lgs_r64_m1664, &LoadFarPointer, CostClass.System);

        t.Add(Code.Jmp_ptr1616, &JmpFarPtr, CostClass.Serializing);
        t.Add(Code.Jmp_ptr1632, &JmpFarPtr, CostClass.Serializing);
        t.Add(Code.Jmp_m1616, &JmpFarMem, CostClass.Serializing);
        t.Add(Code.Jmp_m1632, &JmpFarMem, CostClass.Serializing);
        t.Add(Code.Jmp_m1664, &JmpFarMem, CostClass.Serializing);
        t.Add(Code.Call_ptr1616, &CallFarPtr, CostClass.Serializing);
        t.Add(Code.Call_ptr1632, &CallFarPtr, CostClass.Serializing);
        t.Add(Code.Call_m1616, &CallFarMem, CostClass.Serializing);
        t.Add(Code.Call_m1632, &CallFarMem, CostClass.Serializing);
        t.Add(Code.Call_m1664, &CallFarMem, CostClass.Serializing);
        t.Add(Code.Retfw, &RetFar, CostClass.Serializing);
        t.Add(Code.Retfd, &RetFar, CostClass.Serializing);
        t.Add(Code.Retfq, &RetFar, CostClass.Serializing);
        t.Add(Code.Retfw_imm16, &RetFar, CostClass.Serializing);
        t.Add(Code.Retfd_imm16, &RetFar, CostClass.Serializing);
        t.Add(Code.Retfq_imm16, &RetFar, CostClass.Serializing);
    }

    // ---- MOV / PUSH / POP Sreg ----

    /// <summary>MOV Sreg, r/m16. CS is not a valid destination (#UD); MOV SS starts an interrupt shadow.</summary>
    public static int MovSregRm(Cpu.Cpu c, ref DecodedOp op)
    {
        int seg = op.R0;
        if (seg == SegReg.CS || seg > SegReg.GS)
        {
            return c.RaiseUD();
        }

        ulong v;
        if (op.R1 != Reg.NoReg)
        {
            v = c.Gpr[op.R1];
        }
        else if (!c.ReadMem(op.Seg, c.Ea(ref op), 2, out v))
        {
            return ExecStatus.Fault;
        }

        if (!c.LoadSegment(seg, (ushort)v))
        {
            return ExecStatus.Fault;
        }

        if (seg == SegReg.SS)
        {
            // Loading SS blocks interrupts and holds debug traps back until the next instruction is done.
            c.InterruptShadow = true;
            c.SsLoadShadow = true;
            return ExecStatus.EndBlock;
        }

        return ExecStatus.Continue;
    }

    /// <summary>MOV r/m, Sreg: a memory destination is always 16 bits; a register gets the selector zero-extended.</summary>
    public static int MovRmSreg(Cpu.Cpu c, ref DecodedOp op)
    {
        ushort sel = c.Seg[op.R1].Selector;
        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, op.OpSize, sel);
            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, c.Ea(ref op), 2, sel) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    public static int PushSreg16(Cpu.Cpu c, ref DecodedOp op) => PushSreg(c, op.R0, 2);

    public static int PushSreg32(Cpu.Cpu c, ref DecodedOp op) => PushSreg(c, op.R0, 4);

    public static int PushSreg64(Cpu.Cpu c, ref DecodedOp op) => PushSreg(c, op.R0, 8);

    private static int PushSreg(Cpu.Cpu c, int seg, int size)
        => c.Push(c.Seg[seg].Selector, size) ? ExecStatus.Continue : ExecStatus.Fault;

    public static int PopSreg16(Cpu.Cpu c, ref DecodedOp op) => PopSreg(c, op.R0, 2);

    public static int PopSreg32(Cpu.Cpu c, ref DecodedOp op) => PopSreg(c, op.R0, 4);

    public static int PopSreg64(Cpu.Cpu c, ref DecodedOp op) => PopSreg(c, op.R0, 8);

    /// <summary>POP Sreg: the stack pointer moves only after the segment load succeeded; POP SS starts an interrupt shadow.</summary>
    private static int PopSreg(Cpu.Cpu c, int seg, int size)
    {
        int stackSize = c.StackSize;
        ulong sp = c.Gpr[Reg.RSP];
        if (!c.PeekStack(0, size, out ulong v) || !c.LoadSegment(seg, (ushort)v))
        {
            return ExecStatus.Fault;
        }

        c.SetStackPointer(sp + (ulong)size, stackSize);
        if (seg == SegReg.SS)
        {
            // Loading SS blocks interrupts and holds debug traps back until the next instruction is done.
            c.InterruptShadow = true;
            c.SsLoadShadow = true;
            return ExecStatus.EndBlock;
        }

        return ExecStatus.Continue;
    }

    /// <summary>LDS/LES/LFS/LGS/LSS r, m16:16/32/64: offset then selector from memory; the register is written only after the load.</summary>
    public static int LoadFarPointer(Cpu.Cpu c, ref DecodedOp op)
    {
        int seg = op.Code switch
        {
            Code.Les_r16_m1616 or Code.Les_r32_m1632 => SegReg.ES,
            Code.Lds_r16_m1616 or Code.Lds_r32_m1632 => SegReg.DS,
            Code.Lss_r16_m1616 or Code.Lss_r32_m1632 or Code.Lss_r64_m1664 => SegReg.SS,
            Code.Lfs_r16_m1616 or Code.Lfs_r32_m1632 or Code.Lfs_r64_m1664 => SegReg.FS,
            _ => SegReg.GS,
        };
        int size = op.OpSize;
        ulong ea = c.Ea(ref op);
        if (!c.ReadMem(op.Seg, ea, size, out ulong offset) || !c.ReadMem(op.Seg, WrapAddr(ea + (ulong)size, op.AddrSize), 2, out ulong sel))
        {
            return ExecStatus.Fault;
        }

        if (!c.LoadSegment(seg, (ushort)sel))
        {
            return ExecStatus.Fault;
        }

        c.SetReg(op.R0, size, offset);
        return ExecStatus.Continue;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong WrapAddr(ulong a, int addrSize) => addrSize switch
    {
        8 => a,
        4 => (uint)a,
        _ => (ushort)a,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong MaskToSize(ulong v, int size) => size switch
    {
        8 => v,
        4 => (uint)v,
        _ => (ushort)v,
    };

    // ---- Far JMP / CALL ----

    /// <summary>Operand size of a far transfer: 16/32, or 64 for RETFQ. AMD ignores REX.W on far JMP/CALL
    /// through memory (m16:32 is read), so Jmp_m1664/Call_m1664 behave as their 32-bit forms; see
    /// <see cref="FarMem"/> for the one case that reads m16:64.</summary>
    private static int FarOpSize(Code code) => code switch
    {
        Code.Jmp_ptr1616 or Code.Jmp_m1616 or Code.Call_ptr1616 or Code.Call_m1616 or Code.Retfw or Code.Retfw_imm16 => 2,
        Code.Retfq or Code.Retfq_imm16 => 8,
        _ => 4,
    };

    public static int JmpFarPtr(Cpu.Cpu c, ref DecodedOp op) => FarTransfer(c, (ushort)op.Imm2, op.Imm, FarOpSize(op.Code), call: false);

    public static int CallFarPtr(Cpu.Cpu c, ref DecodedOp op) => FarTransfer(c, (ushort)op.Imm2, op.Imm, FarOpSize(op.Code), call: true);

    public static int JmpFarMem(Cpu.Cpu c, ref DecodedOp op) => FarMem(c, ref op, call: false);

    public static int CallFarMem(Cpu.Cpu c, ref DecodedOp op) => FarMem(c, ref op, call: true);

    /// <summary>
    /// JMP/CALL far through memory. The processor (AMD) reads m16:32 even with REX.W. But the platform is an
    /// AMD host running the guest under KVM, and when the pointer lies in emulated MMIO the access exits and
    /// KVM's instruction emulator executes the whole instruction — which honours REX.W and reads m16:64, as
    /// Intel processors do. emu models that split (docs/cpu.md, "Far JMP/CALL with REX.W"): REX.W in 64-bit
    /// mode selects m16:64 only when the operand's first byte is emulated MMIO.
    /// </summary>
    private static int FarMem(Cpu.Cpu c, ref DecodedOp op, bool call)
    {
        int size = FarOpSize(op.Code);
        ulong ea = c.Ea(ref op);
        if (size == 4 && c.Is64)
        {
            int s = FarPointerSizeAtMmio(c, ref op, ea);
            if (s < 0)
            {
                return ExecStatus.Fault;
            }

            size = s;
        }

        if (!c.ReadMem(op.Seg, ea, size, out ulong offset) || !c.ReadMem(op.Seg, WrapAddr(ea + (ulong)size, op.AddrSize), 2, out ulong sel))
        {
            return ExecStatus.Fault;
        }

        return FarTransfer(c, (ushort)sel, offset, size, call);
    }

    /// <summary>
    /// 8 when the far pointer at <paramref name="ea"/> is emulated MMIO and the instruction carries REX.W (see
    /// <see cref="FarMem"/>), else 4; -1 after a fault translating the operand (the same fault the read of
    /// its first byte would raise).
    /// </summary>
    private static int FarPointerSizeAtMmio(Cpu.Cpu c, ref DecodedOp op, ulong ea)
    {
        if (!c.Linear(op.Seg, ea, 1, Access.Read, out ulong lin) || !c.Translate(lin, Access.Read, out ulong gpa))
        {
            return -1;
        }

        if (c.GuestPagePointer(gpa, Access.Read) != null)
        {
            return 4;
        }

        if (c.PendingNpf)
        {
            return -1;
        }

        // Iced decodes with AMD rules and does not say whether REX.W was present: find the REX prefix that
        // directly precedes the opcode (a legacy prefix after a REX cancels it).
        ulong start = c.NextRip - op.Length;
        int rex = 0;
        for (int i = 0; i < op.Length; i++)
        {
            if (!c.Linear(SegReg.CS, start + (ulong)i, 1, Access.Fetch, out ulong at) || !c.ReadLinearSlow(at, 1, Access.Fetch, out ulong b))
            {
                return -1;
            }

            if (b is 0x26 or 0x2E or 0x36 or 0x3E or 0x64 or 0x65 or 0x66 or 0x67 or 0xF0 or 0xF2 or 0xF3)
            {
                rex = 0;
            }
            else if (b is >= 0x40 and <= 0x4F)
            {
                rex = (int)b;
            }
            else
            {
                break;
            }
        }

        return (rex & 8) != 0 ? 8 : 4;
    }

    /// <summary>Pushes the return CS:rIP of a far CALL at <paramref name="size"/> on the current stack.</summary>
    private static bool PushFarReturn(Cpu.Cpu c, int size, out ulong newSp)
    {
        Span<ulong> frame = [c.Seg[SegReg.CS].Selector, c.NextRip];
        return c.WriteStack(c.Seg[SegReg.SS], c.Gpr[Reg.RSP], c.StackSize, size, frame, c.Cpl < 3, 0, out newSp);
    }

    /// <summary>Checks a far-transfer target offset against the new code segment (limit, or canonical in 64-bit code).</summary>
    private static bool TargetOffsetOk(Cpu.Cpu c, in SegmentCache cs, ulong offset)
    {
        if (c.LongModeActive && cs.Long)
        {
            return c.IsCanonicalNow(offset);
        }

        return offset <= cs.Limit;
    }

    /// <summary>
    /// JMP/CALL far (APM vol. 3 "JMP (Far)", "CALL (Far)"): real and virtual-8086 mode load CS as
    /// selector·16; protected and long mode go to a code segment directly or through a call gate.
    /// </summary>
    private static int FarTransfer(Cpu.Cpu c, ushort sel, ulong offset, int size, bool call)
    {
        offset = MaskToSize(offset, size);
        if (c.Mode is CpuMode.Real or CpuMode.Virtual8086)
        {
            ulong newSp = 0;
            if (offset > c.Seg[SegReg.CS].Limit && c.Mode == CpuMode.Real)
            {
                return c.RaiseGP(0);
            }

            if (call && !PushFarReturn(c, size, out newSp))
            {
                return ExecStatus.Fault;
            }

            if (call)
            {
                c.SetStackPointer(newSp, c.StackSize);
            }

            ref SegmentCache cs = ref c.Seg[SegReg.CS];
            cs.Selector = sel;
            cs.Base = (ulong)sel << 4;
            if (c.Mode == CpuMode.Virtual8086)
            {
                cs.Limit = 0xFFFF;
                cs.Attr = 0xFB;
            }

            c.SegmentLoaded(SegReg.CS);
            c.NextRip = offset;
            return ExecStatus.EndBlock;
        }

        if (Cpu.Cpu.IsNullSelector(sel))
        {
            return c.RaiseGP(0);
        }

        if (!c.FetchDescriptor(sel, out ulong d))
        {
            return ExecStatus.Fault;
        }

        if ((d & (1UL << 44)) != 0)
        {
            // Code segment, same privilege.
            if (!c.CheckDirectCodeSegment(sel, d, out SegmentCache cs))
            {
                return ExecStatus.Fault;
            }

            if (!TargetOffsetOk(c, cs, offset))
            {
                return c.RaiseGP(0);
            }

            ulong newSp = 0;
            int stackSize = c.StackSize;
            if (call && !PushFarReturn(c, size, out newSp))
            {
                return ExecStatus.Fault;
            }

            if (!c.SetDescriptorAccessed(sel, d))
            {
                return ExecStatus.Fault;
            }

            if (call)
            {
                c.SetStackPointer(newSp, stackSize);
            }

            c.CommitCodeSegment(cs, c.Cpl);
            c.NextRip = offset;
            return ExecStatus.EndBlock;
        }

        return ThroughGate(c, sel, d, call);
    }

    /// <summary>Far JMP/CALL through a system descriptor: call gates (16/32-bit legacy, 64-bit in long mode).</summary>
    private static int ThroughGate(Cpu.Cpu c, ushort sel, ulong d, bool call)
    {
        int type = (int)(d >> 40) & 0xF;
        int dpl = (int)(d >> 45) & 3;
        uint err = Cpu.Cpu.SelectorError(sel);
        bool longMode = c.LongModeActive;
        if (!longMode && type is 1 or 3 or 5 or 9 or 0xB)
        {
            c.Diagnostic?.Invoke($"emu: far {(call ? "CALL" : "JMP")} to a TSS or task gate (selector 0x{sel:X}): hardware task switching is not implemented");
            return c.RaiseGP(err);
        }

        // Legacy: 16-bit (4) and 32-bit (0xC) call gates; long mode: only the 16-byte 64-bit call gate (0xC).
        if (longMode ? type != 0xC : type is not (4 or 0xC))
        {
            return c.RaiseGP(err);
        }

        if (dpl < c.Cpl || dpl < (sel & 3))
        {
            return c.RaiseGP(err);
        }

        if ((d & (1UL << 47)) == 0)
        {
            return c.Raise(Vector.NP, err);
        }

        int gateSize = longMode ? 8 : type == 0xC ? 4 : 2;
        ulong target = d & 0xFFFF;
        if (gateSize >= 4)
        {
            target |= (d >> 32) & 0xFFFF0000;
        }

        if (longMode)
        {
            if (!c.FetchDescriptorHigh(sel, out ulong hi))
            {
                return ExecStatus.Fault;
            }

            // The upper half's type field must be 0 (APM vol. 2 §4.8.3).
            if (((hi >> 40) & 0x1F) != 0)
            {
                return c.RaiseGP(err);
            }

            target |= (hi & 0xFFFFFFFF) << 32;
        }

        ushort csSel = (ushort)(d >> 16);
        int paramCount = longMode ? 0 : (int)(d >> 32) & 0x1F;
        if (Cpu.Cpu.IsNullSelector(csSel))
        {
            return c.RaiseGP(0);
        }

        if (!c.FetchDescriptor(csSel, out ulong cd))
        {
            return ExecStatus.Fault;
        }

        var cs = Cpu.Cpu.FromDescriptor(csSel, cd);
        cs.Attr |= 1;
        uint csErr = Cpu.Cpu.SelectorError(csSel);
        bool conforming = (cs.Type & 4) != 0;
        if (!cs.IsCode || cs.Dpl > c.Cpl || (!call && !conforming && cs.Dpl != c.Cpl))
        {
            return c.RaiseGP(csErr);
        }

        if (longMode && (!cs.Long || cs.Big))
        {
            return c.RaiseGP(csErr);
        }

        if (!cs.Present)
        {
            return c.Raise(Vector.NP, csErr);
        }

        if (!TargetOffsetOk(c, cs, target))
        {
            return c.RaiseGP(0);
        }

        int oldCpl = c.Cpl;
        int newCpl = conforming ? oldCpl : cs.Dpl;
        cs.Selector = (ushort)((csSel & 0xFFFC) | newCpl);
        if (!call || newCpl == oldCpl)
        {
            ulong newSp = 0;
            int stackSize = c.StackSize;
            if (call && !PushFarReturn(c, gateSize, out newSp))
            {
                return ExecStatus.Fault;
            }

            if (!c.SetDescriptorAccessed(csSel, cd))
            {
                return ExecStatus.Fault;
            }

            if (call)
            {
                c.SetStackPointer(newSp, stackSize);
            }

            c.CommitCodeSegment(cs, newCpl);
            c.NextRip = target;
            return ExecStatus.EndBlock;
        }

        return CallGateInner(c, cs, csSel, cd, target, gateSize, paramCount, newCpl);
    }

    /// <summary>
    /// CALL through a gate to a more privileged non-conforming segment (APM vol. 2 §4.11.2, §4.11.3):
    /// switch to the TSS stack of the new CPL, push the caller's SS:rSP, copy the gate's parameter count
    /// of stack items (legacy gates), then push CS:rIP. A 64-bit gate loads a null SS with RPL = new CPL.
    /// </summary>
    private static int CallGateInner(Cpu.Cpu c, SegmentCache cs, ushort csSel, ulong cd, ulong target, int gateSize, int paramCount, int newCpl)
    {
        Span<ulong> frame = stackalloc ulong[4 + 31];
        int n = 0;
        frame[n++] = c.Seg[SegReg.SS].Selector;
        frame[n++] = c.Gpr[Reg.RSP];
        SegmentCache ss;
        ulong sp;
        int ssSize;
        if (c.LongModeActive)
        {
            ref SegmentCache tr = ref c.Seg[Cpu.Cpu.TrIndex];
            ulong slot = 4 + ((ulong)newCpl * 8);
            if (slot + 7 > tr.Limit)
            {
                return c.Raise(Vector.TS, Cpu.Cpu.SelectorError(tr.Selector));
            }

            if (!c.ReadLinearSystem(tr.Base + slot, 8, out sp))
            {
                return ExecStatus.Fault;
            }

            ss = new SegmentCache { Selector = (ushort)newCpl, Attr = (ushort)(SegmentCache.AttrS | SegmentCache.AttrP | 3 | (newCpl << 5)) };
            ssSize = 8;
        }
        else
        {
            if (!c.ReadTssStackFor(newCpl, out ushort ssSel, out sp) || !c.CheckStackSegment(ssSel, newCpl, true, out ss))
            {
                return ExecStatus.Fault;
            }

            ssSize = SegmentCache.AttrDB == (ss.Attr & SegmentCache.AttrDB) ? 4 : 2;
            // Parameters keep their order: the one at the old top of stack ends up lowest on the new stack.
            for (int i = paramCount - 1; i >= 0; i--)
            {
                if (!c.PeekStack((ulong)(i * gateSize), gateSize, out ulong p))
                {
                    return ExecStatus.Fault;
                }

                frame[n++] = p;
            }
        }

        frame[n++] = c.Seg[SegReg.CS].Selector;
        frame[n++] = c.NextRip;
        if (!c.WriteStack(ss, sp, ssSize, gateSize, frame[..n], true, Cpu.Cpu.SelectorError(ss.Selector), out ulong newSp))
        {
            return ExecStatus.Fault;
        }

        if (!c.SetDescriptorAccessed(csSel, cd))
        {
            return ExecStatus.Fault;
        }

        c.Seg[SegReg.SS] = ss;
        c.Gpr[Reg.RSP] = ssSize == 2 ? (c.Gpr[Reg.RSP] & ~0xFFFFUL) | newSp : newSp;
        c.CommitCodeSegment(cs, newCpl);
        c.SegmentLoaded(SegReg.SS);
        c.NextRip = target;
        return ExecStatus.EndBlock;
    }

    // ---- RET far ----

    /// <summary>
    /// RET far [imm16] (APM vol. 3 "RET (Far)"): pops rIP and CS; a return to an outer privilege level
    /// also pops rSP and SS (after releasing imm16 bytes of parameters) and nulls data segment registers
    /// the outer level may not use.
    /// </summary>
    public static int RetFar(Cpu.Cpu c, ref DecodedOp op)
    {
        int size = FarOpSize(op.Code);
        ulong release = op.Code is Code.Retfw_imm16 or Code.Retfd_imm16 or Code.Retfq_imm16 ? (ushort)op.Imm : 0UL;
        int stackSize = c.StackSize;
        if (!c.PeekStack(0, size, out ulong ip) || !c.PeekStack((ulong)size, size, out ulong selv))
        {
            return ExecStatus.Fault;
        }

        ushort sel = (ushort)selv;
        ulong sp = c.Gpr[Reg.RSP];
        if (c.Mode is CpuMode.Real or CpuMode.Virtual8086)
        {
            ip = MaskToSize(ip, size);
            if (ip > c.Seg[SegReg.CS].Limit && c.Mode == CpuMode.Real)
            {
                return c.RaiseGP(0);
            }

            ref SegmentCache rcs = ref c.Seg[SegReg.CS];
            rcs.Selector = sel;
            rcs.Base = (ulong)sel << 4;
            c.SegmentLoaded(SegReg.CS);
            c.SetStackPointer(sp + (ulong)(2 * size) + release, stackSize);
            c.NextRip = ip;
            return ExecStatus.EndBlock;
        }

        if (!c.CheckReturnCodeSegment(sel, out SegmentCache cs, out ulong cd))
        {
            return ExecStatus.Fault;
        }

        int newCpl = sel & 3;
        if (!(c.LongModeActive && cs.Long))
        {
            ip = MaskToSize(ip, size);
        }

        if (!TargetOffsetOk(c, cs, ip))
        {
            return c.RaiseGP(0);
        }

        if (newCpl == c.Cpl)
        {
            if (!c.SetDescriptorAccessed(sel, cd))
            {
                return ExecStatus.Fault;
            }

            c.CommitCodeSegment(cs, newCpl);
            c.SetStackPointer(sp + (ulong)(2 * size) + release, stackSize);
            c.NextRip = ip;
            return ExecStatus.EndBlock;
        }

        // Outer privilege: SS:rSP follow the released parameters.
        ulong at = (ulong)(2 * size) + release;
        if (!c.PeekStack(at, size, out ulong newSp) || !c.PeekStack(at + (ulong)size, size, out ulong ssv))
        {
            return ExecStatus.Fault;
        }

        ushort ssSel = (ushort)ssv;
        if (!c.CheckStackSegment(ssSel, newCpl, false, out SegmentCache ss))
        {
            return ExecStatus.Fault;
        }

        if (Cpu.Cpu.IsNullSelector(ssSel) && !cs.Long)
        {
            return c.RaiseGP(0);
        }

        if (!c.SetDescriptorAccessed(sel, cd))
        {
            return ExecStatus.Fault;
        }

        c.CommitCodeSegment(cs, newCpl);
        c.Seg[SegReg.SS] = ss;
        c.SegmentLoaded(SegReg.SS);
        c.SetStackPointer(newSp + release, c.StackSize);
        c.NullInaccessibleDataSegments(newCpl);
        c.NextRip = ip;
        return ExecStatus.EndBlock;
    }
}
