using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Software interrupts (INT n, INT3, INTO, INT1), IRET in every mode, and the fast system calls
/// SYSCALL/SYSRET, SYSENTER/SYSEXIT and SWAPGS (APM vol. 2 §6.1, §8; vol. 3).
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterInterrupt(HandlerTable t)
    {
        t.Add(Code.Int_imm8, &IntN, CostClass.Serializing);
        t.Add(Code.Int3, &Int3, CostClass.Serializing);
        t.Add(Code.Into, &Into, CostClass.Serializing);
        t.Add(Code.Int1, &Int1, CostClass.Serializing);
        t.Add(Code.Iretw, &Iret, CostClass.Serializing);
        t.Add(Code.Iretd, &Iret, CostClass.Serializing);
        t.Add(Code.Iretq, &Iret, CostClass.Serializing);
        t.Add(Code.Syscall, &Syscall, CostClass.Serializing);
        t.Add(Code.Sysretd, &Sysret, CostClass.Serializing);
        t.Add(Code.Sysretq, &Sysret, CostClass.Serializing);
        t.Add(Code.Sysenter, &Sysenter, CostClass.Serializing);
        t.Add(Code.Sysexitd, &Sysexit, CostClass.Serializing);
        t.Add(Code.Sysexitq, &Sysexit, CostClass.Serializing);
        t.Add(Code.Swapgs, &Swapgs, CostClass.Serializing);
    }

    private static int Iopl(Cpu.Cpu c) => (int)((c.FlagsBits >> 12) & 3);

    /// <summary>
    /// INT n. In virtual-8086 mode (APM vol. 2 §8.10, virtual-8086 mode interrupt handling): with CR4.VME
    /// a clear bit in the TSS interrupt-redirection bitmap sends the interrupt to the 8086 program's own
    /// IVT; otherwise IOPL &lt; 3 is #GP(0) and IOPL 3 goes through the IDT.
    /// </summary>
    public static int IntN(Cpu.Cpu c, ref DecodedOp op)
    {
        // The INTn intercept (APM vol. 2 §15.9) is taken before delivery looks at any table; EXITINFO1 would
        // carry the vector only with decode assists, which are not reported.
        if (c.Intercepted(SvmIntercept.Swint) && c.InterceptEnds(SvmExit.Swint, out int exit))
        {
            return exit;
        }

        if (c.Mode == CpuMode.Virtual8086)
        {
            int vector = (byte)op.Imm;
            if ((c.Cr4 & Cr4Bits.VME) != 0)
            {
                if (!RedirectionBitSet(c, vector, out bool set))
                {
                    return ExecStatus.Fault;
                }

                if (!set)
                {
                    return RedirectToVirtual8086(c, vector);
                }
            }

            if (Iopl(c) != 3)
            {
                return c.RaiseGP(0);
            }
        }

        c.SoftwareEventRip = c.Rip;
        return c.RaiseSoftware((byte)op.Imm, isIntN: true);
    }

    /// <summary>Bit <paramref name="vector"/> of the 32-byte interrupt-redirection bitmap just below the TSS I/O bitmap.</summary>
    private static bool RedirectionBitSet(Cpu.Cpu c, int vector, out bool set)
    {
        set = true;
        ref SegmentCache tr = ref c.Seg[Cpu.Cpu.TrIndex];
        if ((tr.Type & 8) == 0 || tr.Limit < 0x67)
        {
            c.RaiseGP(0);
            return false;
        }

        if (!c.ReadLinearSystem(tr.Base + 0x66, 2, out ulong iomap))
        {
            return false;
        }

        ulong at = iomap - 32 + (ulong)(vector >> 3);
        if (iomap < 32 || at > tr.Limit)
        {
            c.RaiseGP(0);
            return false;
        }

        if (!c.ReadLinearSystem(tr.Base + at, 1, out ulong b))
        {
            return false;
        }

        set = (b & (1UL << (vector & 7))) != 0;
        return true;
    }

    /// <summary>
    /// VME redirection: push FLAGS, CS, IP on the 8086 stack and enter the handler from the IVT at linear 0.
    /// With IOPL &lt; 3 the pushed FLAGS show IOPL 3 and IF = VIF, and VIF is cleared instead of IF.
    /// </summary>
    private static int RedirectToVirtual8086(Cpu.Cpu c, int vector)
    {
        if (!c.ReadLinearSlow((ulong)vector * 4, 4, Access.Read, out ulong ivt))
        {
            return ExecStatus.Fault;
        }

        bool iopl3 = Iopl(c) == 3;
        ulong flags = c.Rflags64;
        ulong image = flags & 0xFFFF;
        if (!iopl3)
        {
            image = (image | Rflags.IOPL) & ~Rflags.IF;
            if ((flags & Rflags.VIF) != 0)
            {
                image |= Rflags.IF;
            }
        }

        Span<ulong> frame = [image, c.Seg[SegReg.CS].Selector, c.NextRip & 0xFFFF];
        if (!c.WriteStack(c.Seg[SegReg.SS], c.Gpr[Reg.RSP], 2, 2, frame, false, 0, out ulong sp))
        {
            return ExecStatus.Fault;
        }

        c.SetStackPointer(sp, 2);
        c.MaterializeFlags();
        c.FlagsBits &= ~(Rflags.TF | (iopl3 ? Rflags.IF : Rflags.VIF));
        ref SegmentCache cs = ref c.Seg[SegReg.CS];
        cs.Selector = (ushort)(ivt >> 16);
        cs.Base = (ivt >> 16) << 4;
        c.SegmentLoaded(SegReg.CS);
        c.NextRip = ivt & 0xFFFF;
        return ExecStatus.EndBlock;
    }

    public static int Int3(Cpu.Cpu c, ref DecodedOp op)
    {
        c.SoftwareEventRip = c.Rip;
        return c.RaiseSoftware(Vector.BP, isIntN: false);
    }

    /// <summary>INT1 (ICEBP): a #DB without the gate-DPL check (see DeliverEvent).</summary>
    public static int Int1(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Intercepted(SvmIntercept.Icebp) && c.InterceptEnds(SvmExit.Icebp, out int exit))
        {
            return exit;
        }

        c.SoftwareEventRip = c.Rip;
        return c.RaiseSoftware(Vector.DB, isIntN: false);
    }

    /// <summary>INTO: #OF when OF is set; invalid in 64-bit mode (APM vol. 3 "INTO").</summary>
    public static int Into(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Is64)
        {
            return c.RaiseUD();
        }

        if (!c.GetOF())
        {
            return ExecStatus.Continue;
        }

        c.SoftwareEventRip = c.Rip;
        return c.RaiseSoftware(Vector.OF, isIntN: false);
    }

    // ---- IRET ----

    private const ulong IretAlwaysChangeable =
        Rflags.CF | Rflags.PF | Rflags.AF | Rflags.ZF | Rflags.SF | Rflags.TF | Rflags.DF | Rflags.OF |
        Rflags.NT | Rflags.RF | Rflags.AC | Rflags.ID;

    /// <summary>
    /// RFLAGS after IRET from privilege <paramref name="cpl"/>: IF only if CPL ≤ IOPL, IOPL/VIF/VIP only at
    /// CPL 0, VM never (the VM86 return path sets it); a 16-bit IRET changes only FLAGS[15:0].
    /// </summary>
    private static ulong IretFlags(Cpu.Cpu c, ulong popped, int size, int cpl, bool virtualBits)
    {
        ulong cur = c.Rflags64;
        ulong change = IretAlwaysChangeable;
        if (cpl <= Iopl(c))
        {
            change |= Rflags.IF;
        }

        if (cpl == 0)
        {
            change |= Rflags.IOPL;
            if (virtualBits)
            {
                change |= Rflags.VIF | Rflags.VIP;
            }
        }

        if (size == 2)
        {
            change &= 0xFFFF;
        }

        return (cur & ~change) | (popped & change) | Rflags.Reserved1;
    }

    private static void SetAllFlags(Cpu.Cpu c, ulong flags)
    {
        c.MaterializeFlags();
        ulong old = c.FlagsBits;
        c.FlagsBits = flags;
        c.RflagsLoaded(old);
        c.InterruptWindowOpened();
    }

    /// <summary>IRET/IRETD/IRETQ (APM vol. 3 "IRET"): real, virtual-8086, protected (same/outer privilege, to VM86) and long mode.</summary>
    public static int Iret(Cpu.Cpu c, ref DecodedOp op)
    {
        // The IRET intercept (APM vol. 2 §15.9) comes before IRET does anything, NMI unblocking included.
        if (c.Intercepted(SvmIntercept.Iret) && c.InterceptEnds(SvmExit.Iret, out int exit))
        {
            return exit;
        }

        int size = op.Code switch { Code.Iretw => 2, Code.Iretd => 4, _ => 8 };
        // IRET ends NMI blocking (APM vol. 2 §8.2.3); an NMI that waited is taken after it.
        if (c.NmiBlocked)
        {
            c.NmiBlocked = false;
            c.ExitRequest = c.NmiPending ? 1 : c.ExitRequest;
        }

        int stackSize = c.StackSize;
        ulong sp = c.Gpr[Reg.RSP];
        if (!c.PeekStack(0, size, out ulong ip) || !c.PeekStack((ulong)size, size, out ulong selv) || !c.PeekStack((ulong)(2 * size), size, out ulong fl))
        {
            return ExecStatus.Fault;
        }

        ushort sel = (ushort)selv;
        switch (c.Mode)
        {
            case CpuMode.Real:
                return IretRealOrV86(c, ip, sel, fl, size, sp, stackSize, cpl: 0);
            case CpuMode.Virtual8086:
                if (Iopl(c) == 3)
                {
                    return IretRealOrV86(c, ip, sel, fl, size, sp, stackSize, cpl: 3);
                }

                if ((c.Cr4 & Cr4Bits.VME) != 0 && size == 2)
                {
                    // VME (APM vol. 2 §8.10.4): IF is virtualized through VIF.
                    if ((fl & Rflags.TF) != 0 || ((fl & Rflags.IF) != 0 && (c.FlagsBits & Rflags.VIP) != 0))
                    {
                        return c.RaiseGP(0);
                    }

                    ulong cur = c.Rflags64;
                    ulong change = 0xFFFF & ~(Rflags.IF | Rflags.IOPL);
                    ulong nf = (cur & ~change) | (fl & change);
                    nf = (fl & Rflags.IF) != 0 ? nf | Rflags.VIF : nf & ~Rflags.VIF;
                    SetAllFlags(c, nf | Rflags.Reserved1);
                    return IretRealCs(c, ip, sel, size, sp, stackSize);
                }

                return c.RaiseGP(0);
        }

        return IretProtected(c, ip, sel, fl, size, sp);
    }

    private static int IretRealOrV86(Cpu.Cpu c, ulong ip, ushort sel, ulong fl, int size, ulong sp, int stackSize, int cpl)
    {
        ip = MaskToSize(ip, size);
        if (c.Mode == CpuMode.Real && ip > c.Seg[SegReg.CS].Limit)
        {
            return c.RaiseGP(0);
        }

        SetAllFlags(c, IretFlags(c, fl, size, cpl, virtualBits: false));
        return IretRealCs(c, ip, sel, size, sp, stackSize);
    }

    private static int IretRealCs(Cpu.Cpu c, ulong ip, ushort sel, int size, ulong sp, int stackSize)
    {
        ref SegmentCache cs = ref c.Seg[SegReg.CS];
        cs.Selector = sel;
        cs.Base = (ulong)sel << 4;
        c.SegmentLoaded(SegReg.CS);
        c.SetStackPointer(sp + (ulong)(3 * size), stackSize);
        c.NextRip = ip & 0xFFFF;
        if (c.Mode == CpuMode.Real && size == 4)
        {
            c.NextRip = ip;
        }

        return ExecStatus.EndBlock;
    }

    private static int IretProtected(Cpu.Cpu c, ulong ip, ushort sel, ulong fl, int size, ulong sp)
    {
        int oldCpl = c.Cpl;
        if ((c.FlagsBits & Rflags.NT) != 0)
        {
            if (!c.LongModeActive)
            {
                c.Diagnostic?.Invoke("emu: IRET with NT=1 (task return): hardware task switching is not implemented");
            }

            return c.RaiseGP(0);
        }

        if ((fl & Rflags.VM) != 0 && size == 4 && oldCpl == 0 && !c.LongModeActive)
        {
            return IretToV86(c, ip, sel, fl, sp);
        }

        if (!c.CheckReturnCodeSegment(sel, out SegmentCache cs, out ulong cd))
        {
            return ExecStatus.Fault;
        }

        int newCpl = sel & 3;
        bool to64 = c.LongModeActive && cs.Long;
        if (!to64)
        {
            ip = MaskToSize(ip, size);
        }

        if (!TargetOffsetOk(c, cs, ip))
        {
            return c.RaiseGP(0);
        }

        ulong newFlags = IretFlags(c, fl, size, oldCpl, virtualBits: size >= 4);
        // 64-bit mode always pops SS:RSP; legacy and compatibility mode only on a privilege change.
        bool popStack = c.Is64 || newCpl > oldCpl;
        if (!popStack)
        {
            int stackSize = c.StackSize;
            if (!c.SetDescriptorAccessed(sel, cd))
            {
                return ExecStatus.Fault;
            }

            SetAllFlags(c, newFlags);
            c.CommitCodeSegment(cs, newCpl);
            c.SetStackPointer(sp + (ulong)(3 * size), stackSize);
            c.NextRip = ip;
            return ExecStatus.EndBlock;
        }

        if (!c.PeekStack((ulong)(3 * size), size, out ulong newSp) || !c.PeekStack((ulong)(4 * size), size, out ulong ssv))
        {
            return ExecStatus.Fault;
        }

        ushort ssSel = (ushort)ssv;
        SegmentCache ss;
        if (Cpu.Cpu.IsNullSelector(ssSel))
        {
            // A null SS is allowed only for a return to 64-bit mode at CPL < 3 (APM vol. 3 "IRET").
            if (!to64 || newCpl == 3)
            {
                return c.RaiseGP(0);
            }

            ss = new SegmentCache { Selector = ssSel, Attr = (ushort)(SegmentCache.AttrS | SegmentCache.AttrP | 3 | (newCpl << 5)) };
        }
        else if (!c.CheckStackSegment(ssSel, newCpl, false, out ss))
        {
            return ExecStatus.Fault;
        }

        if (!c.SetDescriptorAccessed(sel, cd))
        {
            return ExecStatus.Fault;
        }

        SetAllFlags(c, newFlags);
        c.CommitCodeSegment(cs, newCpl);
        c.Seg[SegReg.SS] = ss;
        c.SegmentLoaded(SegReg.SS);
        int newStackSize = c.StackSize;
        c.Gpr[Reg.RSP] = newStackSize == 8 ? newSp : newStackSize == 4 ? (uint)newSp : (c.Gpr[Reg.RSP] & ~0xFFFFUL) | (ushort)newSp;
        if (newCpl > oldCpl)
        {
            c.NullInaccessibleDataSegments(newCpl);
        }

        c.NextRip = ip;
        return ExecStatus.EndBlock;
    }

    /// <summary>IRETD at CPL 0 with VM set in the popped EFLAGS: enter virtual-8086 mode (pops ESP, SS, ES, DS, FS, GS).</summary>
    private static int IretToV86(Cpu.Cpu c, ulong ip, ushort sel, ulong fl, ulong sp)
    {
        Span<ulong> v = stackalloc ulong[6];
        for (int i = 0; i < 6; i++)
        {
            if (!c.PeekStack((ulong)(12 + (4 * i)), 4, out v[i]))
            {
                return ExecStatus.Fault;
            }
        }

        ulong flags = (fl & 0x3F7FD5) | Rflags.Reserved1;
        SetAllFlags(c, (uint)flags);
        c.Gpr[Reg.RSP] = (uint)v[0];
        ReadOnlySpan<int> order = [SegReg.SS, SegReg.ES, SegReg.DS, SegReg.FS, SegReg.GS];
        for (int i = 0; i < order.Length; i++)
        {
            ushort s = (ushort)v[i + 1];
            c.Seg[order[i]] = new SegmentCache { Selector = s, Base = (ulong)s << 4, Limit = 0xFFFF, Attr = 0xF3 };
        }

        c.Seg[SegReg.CS] = new SegmentCache { Selector = sel, Base = (ulong)sel << 4, Limit = 0xFFFF, Attr = 0xFB };
        c.SetCpl(3);
        c.SegmentLoaded(SegReg.CS);
        c.NextRip = ip & 0xFFFF;
        _ = sp;
        return ExecStatus.EndBlock;
    }

    // ---- SYSCALL / SYSRET ----

    private const ushort Code64Attr = 0x9B | SegmentCache.AttrL | SegmentCache.AttrG;
    private const ushort Code32Attr = 0x9B | SegmentCache.AttrDB | SegmentCache.AttrG;
    private const ushort DataAttr = 0x93 | SegmentCache.AttrDB | SegmentCache.AttrG;

    private static SegmentCache FlatSegment(ushort selector, ushort attr, int dpl)
        => new() { Selector = selector, Base = 0, Limit = 0xFFFFFFFF, Attr = (ushort)(attr | (dpl << 5)) };

    /// <summary>
    /// SYSCALL (APM vol. 3 "SYSCALL"): needs EFER.SCE. Long mode: RCX ← next RIP, R11 ← RFLAGS, flat
    /// CS/SS from STAR[47:32], RIP ← LSTAR (64-bit) or CSTAR (compatibility), RFLAGS &amp;= ~SFMASK.
    /// Legacy mode: ECX ← next EIP, EIP ← STAR[31:0], IF/VM/RF cleared. Single-steps on the TF it leaves.
    /// </summary>
    public static int Syscall(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Efer & EferBits.SCE) == 0 || !c.ProtectedMode)
        {
            return c.RaiseUD();
        }

        ushort sel = (ushort)((c.Star >> 32) & 0xFFFC);
        ulong flags = c.Rflags64;
        c.MaterializeFlags();
        if (c.LongModeActive)
        {
            c.Gpr[Reg.RCX] = c.NextRip;
            c.Gpr[Reg.R11] = flags & ~Rflags.RF;
            ulong target = c.Is64 ? c.Lstar : c.Cstar;
            c.FlagsBits = (flags & ~c.Sfmask & ~Rflags.RF) | Rflags.Reserved1;
            c.Seg[SegReg.SS] = FlatSegment((ushort)(sel + 8), DataAttr, 0);
            c.CommitCodeSegment(FlatSegment(sel, Code64Attr, 0), 0);
            c.SegmentLoaded(SegReg.SS);
            c.NextRip = target;
            c.SingleStepIfTrapFlag();
            return ExecStatus.EndBlock;
        }

        c.Gpr[Reg.RCX] = (uint)c.NextRip;
        c.FlagsBits = flags & ~(Rflags.VM | Rflags.IF | Rflags.RF);
        c.Seg[SegReg.SS] = FlatSegment((ushort)(sel + 8), DataAttr, 0);
        c.CommitCodeSegment(FlatSegment(sel, Code32Attr, 0), 0);
        c.SegmentLoaded(SegReg.SS);
        c.NextRip = (uint)c.Star;
        c.SingleStepIfTrapFlag();
        return ExecStatus.EndBlock;
    }

    /// <summary>
    /// SYSRET (APM vol. 3 "SYSRET"): CPL 0 only. Long mode: RFLAGS ← R11; REX.W returns to 64-bit mode
    /// with CS = STAR[63:48]+16, otherwise to compatibility mode with CS = STAR[63:48]; SS.sel = STAR[63:48]+8.
    /// As on AMD processors the SS descriptor cache keeps its attributes (only the selector changes), and a
    /// non-canonical RCX is not checked here: the fault is taken at CPL 3 on the fetch.
    /// Legacy mode: EIP ← ECX, IF set. A #DB follows when the loaded RFLAGS has TF set.
    /// </summary>
    public static int Sysret(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Efer & EferBits.SCE) == 0)
        {
            return c.RaiseUD();
        }

        if (!c.ProtectedMode || c.Cpl != 0 || c.Mode == CpuMode.Virtual8086)
        {
            return c.RaiseGP(0);
        }

        ushort sel = (ushort)((c.Star >> 48) & 0xFFFC);
        c.MaterializeFlags();
        ushort ssSel = (ushort)((sel + 8) | 3);
        if (c.LongModeActive)
        {
            bool to64 = op.Code == Code.Sysretq;
            c.FlagsBits = (c.Gpr[Reg.R11] & ~(Rflags.RF | Rflags.VM) & 0x3F7FD5) | Rflags.Reserved1;
            c.InterruptWindowOpened();
            var cs = to64 ? FlatSegment((ushort)((sel + 16) | 3), Code64Attr, 3) : FlatSegment((ushort)(sel | 3), Code32Attr, 3);
            c.Seg[SegReg.SS].Selector = ssSel;
            c.CommitCodeSegment(cs, 3);
            c.SegmentLoaded(SegReg.SS);
            c.NextRip = to64 ? c.Gpr[Reg.RCX] : (uint)c.Gpr[Reg.RCX];
            c.SingleStepIfTrapFlag();
            return ExecStatus.EndBlock;
        }

        c.FlagsBits |= Rflags.IF;
        c.InterruptWindowOpened();
        c.Seg[SegReg.SS] = FlatSegment(ssSel, DataAttr, 3);
        c.CommitCodeSegment(FlatSegment((ushort)(sel | 3), Code32Attr, 3), 3);
        c.SegmentLoaded(SegReg.SS);
        c.NextRip = (uint)c.Gpr[Reg.RCX];
        c.SingleStepIfTrapFlag();
        return ExecStatus.EndBlock;
    }

    /// <summary>SYSENTER (APM vol. 3): legacy protected mode only; AMD processors raise #UD in long mode.</summary>
    public static int Sysenter(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.LongModeActive)
        {
            return c.RaiseUD();
        }

        if (!c.ProtectedMode || (c.SysenterCs & 0xFFFC) == 0)
        {
            return c.RaiseGP(0);
        }

        ushort sel = (ushort)(c.SysenterCs & 0xFFFC);
        c.MaterializeFlags();
        c.FlagsBits &= ~(Rflags.VM | Rflags.IF | Rflags.RF);
        c.Seg[SegReg.SS] = FlatSegment((ushort)(sel + 8), DataAttr, 0);
        c.CommitCodeSegment(FlatSegment(sel, Code32Attr, 0), 0);
        c.SegmentLoaded(SegReg.SS);
        c.Gpr[Reg.RSP] = (uint)c.SysenterEsp;
        c.NextRip = (uint)c.SysenterEip;
        return ExecStatus.EndBlock;
    }

    /// <summary>SYSEXIT: CPL 0 in legacy protected mode; CS = SYSENTER_CS+16, SS = +24 (RPL 3), ESP ← ECX, EIP ← EDX.</summary>
    public static int Sysexit(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.LongModeActive)
        {
            return c.RaiseUD();
        }

        if (!c.ProtectedMode || c.Cpl != 0 || c.Mode == CpuMode.Virtual8086 || (c.SysenterCs & 0xFFFC) == 0)
        {
            return c.RaiseGP(0);
        }

        ushort sel = (ushort)(c.SysenterCs & 0xFFFC);
        c.Seg[SegReg.SS] = FlatSegment((ushort)((sel + 24) | 3), DataAttr, 3);
        c.CommitCodeSegment(FlatSegment((ushort)((sel + 16) | 3), Code32Attr, 3), 3);
        c.SegmentLoaded(SegReg.SS);
        c.Gpr[Reg.RSP] = (uint)c.Gpr[Reg.RCX];
        c.NextRip = (uint)c.Gpr[Reg.RDX];
        return ExecStatus.EndBlock;
    }

    /// <summary>SWAPGS: exchanges GS.base with KernelGSbase; 64-bit mode only (#UD otherwise), CPL 0 (#GP(0)).</summary>
    public static int Swapgs(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!c.Is64)
        {
            return c.RaiseUD();
        }

        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        (c.Seg[SegReg.GS].Base, c.KernelGsBase) = (c.KernelGsBase, c.Seg[SegReg.GS].Base);
        return ExecStatus.Continue;
    }
}
