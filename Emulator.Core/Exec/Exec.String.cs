using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// String instructions MOVS, CMPS, SCAS, LODS, STOS with REP/REPE/REPNE (APM vol. 1 §3.10.4, vol. 3).
/// rSI, rDI and rCX are used at the address size; the source segment may be overridden, ES:rDI may not.
/// A REP run executes at most <see cref="RepChunk"/> iterations per call and then restarts the
/// instruction (RIP unchanged), so interrupts are taken between iterations as the manual allows; after
/// a fault rCX, rSI and rDI describe the remaining work.
/// </summary>
public static unsafe partial class Exec
{
    /// <summary>Iterations of a repeated string instruction per handler call.</summary>
    public const int RepChunk = 1024;

    private static void RegisterString(HandlerTable t)
    {
        t.Add(Code.Movsb_m8_m8, &Movs<Dw8>, CostClass.String);
        t.Add(Code.Movsw_m16_m16, &Movs<Dw16>, CostClass.String);
        t.Add(Code.Movsd_m32_m32, &Movs<Dw32>, CostClass.String);
        t.Add(Code.Movsq_m64_m64, &Movs<Dw64>, CostClass.String);
        t.Add(Code.Stosb_m8_AL, &Stos<Dw8>, CostClass.String);
        t.Add(Code.Stosw_m16_AX, &Stos<Dw16>, CostClass.String);
        t.Add(Code.Stosd_m32_EAX, &Stos<Dw32>, CostClass.String);
        t.Add(Code.Stosq_m64_RAX, &Stos<Dw64>, CostClass.String);
        t.Add(Code.Lodsb_AL_m8, &Lods<Dw8>, CostClass.String);
        t.Add(Code.Lodsw_AX_m16, &Lods<Dw16>, CostClass.String);
        t.Add(Code.Lodsd_EAX_m32, &Lods<Dw32>, CostClass.String);
        t.Add(Code.Lodsq_RAX_m64, &Lods<Dw64>, CostClass.String);
        t.Add(Code.Cmpsb_m8_m8, &Cmps<Dw8>, CostClass.String);
        t.Add(Code.Cmpsw_m16_m16, &Cmps<Dw16>, CostClass.String);
        t.Add(Code.Cmpsd_m32_m32, &Cmps<Dw32>, CostClass.String);
        t.Add(Code.Cmpsq_m64_m64, &Cmps<Dw64>, CostClass.String);
        t.Add(Code.Scasb_AL_m8, &Scas<Dw8>, CostClass.String);
        t.Add(Code.Scasw_AX_m16, &Scas<Dw16>, CostClass.String);
        t.Add(Code.Scasd_EAX_m32, &Scas<Dw32>, CostClass.String);
        t.Add(Code.Scasq_RAX_m64, &Scas<Dw64>, CostClass.String);
    }

    /// <summary>Per-element step: +size, or −size when RFLAGS.DF is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong StringStep(Cpu.Cpu c, int size) => (c.FlagsBits & Rflags.DF) != 0 ? (ulong)-size : (ulong)size;

    /// <summary>Advances an index register (rSI/rDI) by <paramref name="step"/> at the address size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AdvanceIndex(Cpu.Cpu c, int reg, ulong step, int addrSize)
        => c.SetReg(reg, addrSize, c.Gpr[reg] + step);

    /// <summary>
    /// Ends a string instruction after <paramref name="done"/> iterations: the first is the op's own
    /// cost, the others are charged here. <paramref name="more"/> means the REP run was cut at the
    /// chunk limit and the instruction restarts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int StringEnd(Cpu.Cpu c, ref DecodedOp op, int done, bool more)
    {
        if (done > 1)
        {
            c.Cycles += (ulong)(done - 1) * op.Cycles;
        }

        if (more)
        {
            c.NextRip = c.Rip;
            return ExecStatus.EndBlock;
        }

        return ExecStatus.Continue;
    }

    /// <summary>
    /// REP with a zero count still writes the registers at a 32-bit address size: rCX and the index
    /// registers the instruction uses are zero-extended from their low halves (measured on hardware;
    /// it is only visible in 64-bit mode).
    /// </summary>
    private static void RepZeroCount(Cpu.Cpu c, int asz, bool si, bool di)
    {
        if (asz == 4)
        {
            c.Gpr[Reg.RCX] = (uint)c.Gpr[Reg.RCX];
            if (si)
            {
                c.Gpr[Reg.RSI] = (uint)c.Gpr[Reg.RSI];
            }

            if (di)
            {
                c.Gpr[Reg.RDI] = (uint)c.Gpr[Reg.RDI];
            }
        }
    }

    /// <summary>One string instruction's element operation, for <see cref="RunString{TOp, TW}"/>.</summary>
    private interface IStringOp
    {
        static abstract bool UsesSi { get; }

        static abstract bool UsesDi { get; }

        /// <summary>CMPS and SCAS: REPE/REPNE also stop on ZF.</summary>
        static abstract bool Compares { get; }

        /// <summary>
        /// One element at the current rSI/rDI (the driver advances them): false after a fault, with nothing
        /// changed. <paramref name="equal"/> tells a compare whether its operands were equal.
        /// </summary>
        static abstract bool Element(Cpu.Cpu c, ref DecodedOp op, int size, int asz, out bool equal);
    }

    /// <summary>
    /// The one driver of MOVS, STOS, LODS, CMPS and SCAS: a single element, or a REP run of at most
    /// <see cref="RepChunk"/> iterations in which rSI/rDI advance and rCX counts down after each element
    /// (REPE/REPNE compares also stop on ZF), so a fault leaves the remaining work in the registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RunString<TOp, TW>(Cpu.Cpu c, ref DecodedOp op)
        where TOp : struct, IStringOp
        where TW : struct, IDataWidth
    {
        int size = TW.Bytes, asz = op.AddrSize;
        ulong step = StringStep(c, size);
        if (op.Rep == 0)
        {
            if (!TOp.Element(c, ref op, size, asz, out _))
            {
                return ExecStatus.Fault;
            }

            AdvanceIndexes<TOp>(c, step, asz);
            return ExecStatus.Continue;
        }

        ulong count = c.GetReg(Reg.RCX, asz);
        if (count == 0)
        {
            RepZeroCount(c, asz, TOp.UsesSi, TOp.UsesDi);
            return ExecStatus.Continue;
        }

        bool whileEqual = op.Rep == 1;
        int done = 0;
        int chunk = c.StringChunk; // RepChunk, or 1 on the debug path (single-step traps after each iteration)
        while (count != 0)
        {
            if (done == chunk)
            {
                return StringEnd(c, ref op, done, true);
            }

            if (!TOp.Element(c, ref op, size, asz, out bool equal))
            {
                StringEnd(c, ref op, done, false);
                return ExecStatus.Fault;
            }

            AdvanceIndexes<TOp>(c, step, asz);
            c.SetReg(Reg.RCX, asz, --count);
            done++;
            if (TOp.Compares && equal != whileEqual)
            {
                break;
            }
        }

        return StringEnd(c, ref op, done, false);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AdvanceIndexes<TOp>(Cpu.Cpu c, ulong step, int asz)
        where TOp : struct, IStringOp
    {
        if (TOp.UsesSi)
        {
            AdvanceIndex(c, Reg.RSI, step, asz);
        }

        if (TOp.UsesDi)
        {
            AdvanceIndex(c, Reg.RDI, step, asz);
        }
    }

    /// <summary>MOVS: [seg:rSI] → [ES:rDI].</summary>
    public static int Movs<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth => RunString<MovsOp, TW>(c, ref op);

    /// <summary>STOS: rAX → [ES:rDI].</summary>
    public static int Stos<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth => RunString<StosOp, TW>(c, ref op);

    /// <summary>LODS: [seg:rSI] → rAX.</summary>
    public static int Lods<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth => RunString<LodsOp, TW>(c, ref op);

    /// <summary>
    /// CMPS: flags of [seg:rSI] − [ES:rDI]. REPE continues while equal (ZF = 1), REPNE while not;
    /// either stops when rCX reaches zero.
    /// </summary>
    public static int Cmps<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth => RunString<CmpsOp, TW>(c, ref op);

    /// <summary>SCAS: flags of rAX − [ES:rDI]; REPE/REPNE as for CMPS.</summary>
    public static int Scas<TW>(Cpu.Cpu c, ref DecodedOp op)
        where TW : struct, IDataWidth => RunString<ScasOp, TW>(c, ref op);

    private readonly struct MovsOp : IStringOp
    {
        public static bool UsesSi => true;

        public static bool UsesDi => true;

        public static bool Compares => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element(Cpu.Cpu c, ref DecodedOp op, int size, int asz, out bool equal)
        {
            equal = false;
            return c.ReadMem(op.Seg, c.GetReg(Reg.RSI, asz), size, out ulong v) && c.WriteMem(SegReg.ES, c.GetReg(Reg.RDI, asz), size, v);
        }
    }

    private readonly struct StosOp : IStringOp
    {
        public static bool UsesSi => false;

        public static bool UsesDi => true;

        public static bool Compares => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element(Cpu.Cpu c, ref DecodedOp op, int size, int asz, out bool equal)
        {
            equal = false;
            return c.WriteMem(SegReg.ES, c.GetReg(Reg.RDI, asz), size, c.GetReg(Reg.RAX, size));
        }
    }

    private readonly struct LodsOp : IStringOp
    {
        public static bool UsesSi => true;

        public static bool UsesDi => false;

        public static bool Compares => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element(Cpu.Cpu c, ref DecodedOp op, int size, int asz, out bool equal)
        {
            equal = false;
            if (!c.ReadMem(op.Seg, c.GetReg(Reg.RSI, asz), size, out ulong v))
            {
                return false;
            }

            c.SetReg(Reg.RAX, size, v);
            return true;
        }
    }

    private readonly struct CmpsOp : IStringOp
    {
        public static bool UsesSi => true;

        public static bool UsesDi => true;

        public static bool Compares => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element(Cpu.Cpu c, ref DecodedOp op, int size, int asz, out bool equal)
        {
            equal = false;
            if (!c.ReadMem(op.Seg, c.GetReg(Reg.RSI, asz), size, out ulong s) || !c.ReadMem(SegReg.ES, c.GetReg(Reg.RDI, asz), size, out ulong d))
            {
                return false;
            }

            c.SetFlagsSub(size, s, d, (s - d) & Cpu.Cpu.SizeMask(size));
            equal = s == d;
            return true;
        }
    }

    private readonly struct ScasOp : IStringOp
    {
        public static bool UsesSi => false;

        public static bool UsesDi => true;

        public static bool Compares => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Element(Cpu.Cpu c, ref DecodedOp op, int size, int asz, out bool equal)
        {
            equal = false;
            if (!c.ReadMem(SegReg.ES, c.GetReg(Reg.RDI, asz), size, out ulong d))
            {
                return false;
            }

            ulong a = c.GetReg(Reg.RAX, size);
            c.SetFlagsSub(size, a, d, (a - d) & Cpu.Cpu.SizeMask(size));
            equal = a == d;
            return true;
        }
    }
}
