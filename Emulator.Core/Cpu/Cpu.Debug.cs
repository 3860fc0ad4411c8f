using System.Runtime.CompilerServices;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Core.Cpu;

/// <summary>
/// The debug architecture (AMD64 APM vol. 2 §13.1 "Software-Debug Resources"): RFLAGS.TF single-step,
/// the DR0–DR3 instruction, data and I/O breakpoints that DR7 enables, DR6 status, RFLAGS.RF, and the
/// MOV SS / POP SS shadow that holds debug traps back for one instruction.
/// <para>
/// Cost model: none of this is checked per instruction on the fast path. <see cref="RunBlocks"/> looks at
/// <see cref="DebugActive"/> once per block (TF, RF, any DR7 enable bit, or a trap held by a MOV SS);
/// when it is set every instruction goes through <see cref="DebugStep"/>, one at a time. Everything that
/// can make the word non-zero ends the block it runs in (POPF/IRET/SYSRET change TF or RF and end the
/// block, MOV DRn ends it), so the per-block check cannot miss the instruction that follows.
/// Data breakpoints ride on the memory slow path: while one is enabled, <see cref="FillTlb"/> refuses to
/// cache the read/write translation of any page holding a breakpointed address, and MOV DRn flushes the
/// TLB, so every access to such a page takes <see cref="ReadLinearSlow"/> / <see cref="WriteLinearSlow"/>,
/// which compare it against the breakpoints. Pages without breakpoints keep their fast path.
/// </para>
/// <para>
/// Last-branch recording (DebugCtl.LBR) rides on the same path: while it is set every instruction runs through
/// <see cref="DebugStep"/>, which records one whose next RIP is not its fall-through; WRMSR and the world
/// switches that change DebugCtl end their block. With LBR clear it costs nothing per instruction.
/// </para>
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>DR6 B0–B3: which of DR0–DR3 matched (replaced by every breakpoint #DB).</summary>
    public const ulong Dr6BreakpointHits = 0xF;

    /// <summary>DR6.BS: single-step trap (sticky: only software clears it).</summary>
    public const ulong Dr6SingleStep = 1 << 14;

    /// <summary>DR7 L0, G0 … L3, G3: a breakpoint is enabled when either of its two bits is set.</summary>
    public const ulong Dr7EnableBits = 0xFF;

    // R/W field of DR7 (two bits per breakpoint at 16 + 4n): what kind of access the breakpoint matches.
    private const int BreakOnExecute = 0, BreakOnWrite = 1, BreakOnIo = 2, BreakOnReadWrite = 3;

    /// <summary>
    /// Set by MOV SS and POP SS together with <see cref="InterruptShadow"/>: the debug traps of that
    /// instruction are held and reported after the next one (APM vol. 2 §13.1, "MOV SS" in vol. 3).
    /// STI's shadow does not hold them back. Only <see cref="DebugStep"/> reads it, and clears it first.
    /// </summary>
    internal bool SsLoadShadow;

    /// <summary>DR6 bits of traps held by a MOV SS / POP SS shadow, to be reported after the next instruction.</summary>
    private ulong _heldDebugTraps;

    /// <summary>
    /// DR6 bits of traps an instruction raised for the boundary right after it, outside the rule "TF as the
    /// instruction began" (<see cref="SingleStepIfTrapFlag"/>); delivered before anything else runs.
    /// </summary>
    private ulong _pendingDebugTraps;

    /// <summary>B0–B3 of data breakpoints matched by the instruction <see cref="DebugStep"/> is running.</summary>
    private ulong _dataBreakpointHits;

    /// <summary>DebugCtl.LBR (bit 0): control-transfer recording on (APM vol. 2 §13.1.1.6).</summary>
    public const ulong DebugCtlLbr = 1;

    /// <summary>
    /// The control-transfer recording MSRs (APM vol. 2 §13.1.1.3; MSRs 1DBh–1DEh), kept while DebugCtl.LBR is set:
    /// the RIP of the last taken branch, interrupt or exception and of its target, and the same pair as it was
    /// when the last exception or interrupt was taken. Software may read them; they ignore writes of their own.
    /// </summary>
    public ulong LastBranchFromIp, LastBranchToIp, LastExceptionFromIp, LastExceptionToIp;

    /// <summary>REP string iterations per handler call: one while debugging, so traps come after each iteration.</summary>
    internal int StringChunk = Exec.Exec.RepChunk;

    /// <summary>
    /// RESET and INIT state of the debug registers (APM vol. 2 §14.1.3, table 14-1): DR0–DR3 zero, DR6
    /// FFFF0FF0h, DR7 400h; a trap held or pending from before the INIT is dropped with the state it belonged to.
    /// </summary>
    private void ResetDebug()
    {
        Dr0 = Dr1 = Dr2 = Dr3 = 0;
        Dr6 = 0xFFFF_0FF0;
        Dr7 = 0x400;
        SsLoadShadow = false;
        _heldDebugTraps = _pendingDebugTraps = _dataBreakpointHits = 0;
        StringChunk = Exec.Exec.RepChunk;
    }

    /// <summary>True when the next instruction needs the debug path (see the class summary).</summary>
    private bool DebugActive
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ((FlagsBits & (Rflags.TF | Rflags.RF)) | (Dr7 & Dr7EnableBits) | (DebugCtl & DebugCtlLbr) | _heldDebugTraps | _pendingDebugTraps) != 0;
    }

    /// <summary>
    /// SYSCALL and SYSRET single-step on the TF they leave behind, not the one they found: a #DB follows
    /// them when TF is set at their end (so SYSCALL that clears TF through SFMASK does not trap, SYSRET
    /// that loads TF from R11 does), as AMD hardware does under KVM. Called by both at their end.
    /// </summary>
    internal void SingleStepIfTrapFlag()
    {
        if ((FlagsBits & Rflags.TF) != 0)
        {
            _pendingDebugTraps |= Dr6SingleStep;
        }
    }

    /// <summary>
    /// #VMEXIT back to a host that had RFLAGS.TF set at its VMRUN: the single-step trap of that VMRUN is taken now,
    /// with RIP after it (APM vol. 2 §15.7.2).
    /// </summary>
    public void SingleStepAfterVmexit()
    {
        if ((FlagsBits & Rflags.TF) != 0)
        {
            _pendingDebugTraps |= Dr6SingleStep;
        }
    }

    /// <summary>Linear address of the instruction at RIP (CS:RIP), as instruction breakpoints and L0's VMCALL patching use it.</summary>
    public ulong CodeLinear => Mode == CpuMode.Long64 ? Rip : (uint)(Seg[SegReg.CS].Base + Rip);

    /// <summary>
    /// B0–B3 of the enabled breakpoints of kind <paramref name="kind"/> whose range overlaps
    /// [<paramref name="address"/>, +<paramref name="size"/>). LEN 00/01/11/10 = 1/2/4/8 bytes; the
    /// breakpoint address is taken as aligned to its length. I/O breakpoints exist only with CR4.DE.
    /// </summary>
    private uint MatchBreakpoints(ulong address, int size, int kind)
    {
        ulong dr7 = Dr7;
        uint hits = 0;
        for (int n = 0; n < 4; n++)
        {
            if (((dr7 >> (n * 2)) & 3) == 0)
            {
                continue;
            }

            int rw = (int)(dr7 >> (16 + (n * 4))) & 3;
            bool kindMatches = kind switch
            {
                BreakOnExecute => rw == BreakOnExecute,
                BreakOnWrite => rw is BreakOnWrite or BreakOnReadWrite,
                BreakOnIo => rw == BreakOnIo && (Cr4 & Cr4Bits.DE) != 0,
                _ => rw == BreakOnReadWrite,
            };
            if (!kindMatches)
            {
                continue;
            }

            ulong len = ((dr7 >> (18 + (n * 4))) & 3) switch
            {
                0 => 1UL,
                1 => 2UL,
                2 => 8UL,
                _ => 4UL,
            };
            ulong start = DebugAddress(n) & ~(len - 1);
            if (kind == BreakOnIo)
            {
                start &= 0xFFFF;
            }

            if (address < start + len && start < address + (ulong)size)
            {
                hits |= 1u << n;
            }
        }

        return hits;
    }

    private ulong DebugAddress(int n) => n switch
    {
        0 => Dr0,
        1 => Dr1,
        2 => Dr2,
        _ => Dr3,
    };

    /// <summary>Memory slow path: records data breakpoints hit by an explicit access of the current instruction.</summary>
    private void NoteDataAccess(ulong lin, int size, bool write)
    {
        _dataBreakpointHits |= MatchBreakpoints(lin, size, write ? BreakOnWrite : BreakOnReadWrite);
    }

    /// <summary>
    /// True when the page of <paramref name="lin"/> holds an enabled data breakpoint that accesses through
    /// <paramref name="bank"/> can hit: such a page stays out of the TLB so its accesses reach the slow path.
    /// </summary>
    private bool PageHasDataBreakpoint(ulong lin, int bank)
    {
        ulong dr7 = Dr7;
        for (int n = 0; n < 4; n++)
        {
            int rw = (int)(dr7 >> (16 + (n * 4))) & 3;
            if (((dr7 >> (n * 2)) & 3) != 0 && (rw == BreakOnReadWrite || (rw == BreakOnWrite && bank == Access.Write))
                && ((DebugAddress(n) ^ lin) & ~0xFFFUL) == 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// After MOV DRn: a change of DR0–DR3 or DR7 while data breakpoints are (or were) enabled flushes the
    /// TLB, so pages that now hold a breakpoint leave it (see <see cref="PageHasDataBreakpoint"/>). Every set:
    /// DR0–DR3 stay across a world switch, so the other address space's breakpoints moved too.
    /// </summary>
    internal void DebugRegistersWritten(ulong oldDr7)
    {
        if (((oldDr7 | Dr7) & Dr7EnableBits) != 0)
        {
            FlushAllTlbs();
        }
    }

    /// <summary>Port of an IN/OUT/INS/OUTS instruction for I/O breakpoints, or -1.</summary>
    private int IoPortOf(ref DecodedOp op)
    {
        switch (op.Code)
        {
            case Code.In_AL_imm8 or Code.In_AX_imm8 or Code.In_EAX_imm8
                or Code.Out_imm8_AL or Code.Out_imm8_AX or Code.Out_imm8_EAX:
                return (byte)op.Imm;
            case Code.In_AL_DX or Code.In_AX_DX or Code.In_EAX_DX or Code.Out_DX_AL or Code.Out_DX_AX or Code.Out_DX_EAX
                or Code.Insb_m8_DX or Code.Insw_m16_DX or Code.Insd_m32_DX
                or Code.Outsb_DX_m8 or Code.Outsw_DX_m16 or Code.Outsd_DX_m32:
                return (ushort)Gpr[Reg.RDX];
            default:
                return -1;
        }
    }

    private static int IoSizeOf(Code code) => code switch
    {
        Code.In_AL_imm8 or Code.Out_imm8_AL or Code.In_AL_DX or Code.Out_DX_AL or Code.Insb_m8_DX or Code.Outsb_DX_m8 => 1,
        Code.In_AX_imm8 or Code.Out_imm8_AX or Code.In_AX_DX or Code.Out_DX_AX or Code.Insw_m16_DX or Code.Outsw_DX_m16 => 2,
        _ => 4,
    };

    /// <summary>
    /// Runs one instruction with the debug facilities live (APM vol. 2 §13.1):
    /// <list type="number">
    /// <item>Instruction breakpoints are faults taken before the instruction, unless RF is set; on AMD a
    /// MOV SS shadow does not suppress them. Traps held by the shadow are dropped.</item>
    /// <item>RF is cleared before the instruction runs: it then reads 0 after any instruction that
    /// completes, except one that loads it (IRET); a fault pushes RF = 1 anyway (see <see cref="DeliverEvent"/>).</item>
    /// <item>A fault ends the step: no single-step or data trap for an instruction that did not complete.</item>
    /// <item>Traps after completion: BS when TF was set as the instruction began (so POPF/IRET that set
    /// TF trap only after the next instruction, and POPF that clears it still traps); SYSCALL and SYSRET
    /// look at TF as they end instead (<see cref="SingleStepIfTrapFlag"/>). Plus data and I/O breakpoint hits.</item>
    /// <item>INT n / INT3 / INTO deliver first; the traps then arrive at the handler's first instruction
    /// (how one single-steps into a handler; the APM is silent, Intel SDM vol. 3 §17.3.1.4 says so).
    /// ICEBP's own #DB consumes them: its delivery is the #DB, and DR6 stays as it was.</item>
    /// <item>After MOV SS / POP SS the traps are held and reported together with the next instruction's.</item>
    /// </list>
    /// </summary>
    private void DebugStep()
    {
        ulong held = _heldDebugTraps;
        _heldDebugTraps = 0;
        if (_pendingDebugTraps != 0)
        {
            // Raised at the boundary after an instruction that ran on the fast path (SYSRET setting TF).
            ulong bits = _pendingDebugTraps | held;
            _pendingDebugTraps = 0;
            RaiseDebugEvent(bits);
            return;
        }

        ulong flags = FlagsBits;
        if ((flags & Rflags.RF) == 0 && (Dr7 & Dr7EnableBits) != 0)
        {
            uint hits = MatchBreakpoints(CodeLinear, 1, BreakOnExecute);
            if (hits != 0)
            {
                RaiseDebugEvent(hits);
                return;
            }
        }

        FlagsBits = flags & ~Rflags.RF;
        bool tf = (flags & Rflags.TF) != 0;
        ulong from = Rip;
        _dataBreakpointHits = 0;
        SsLoadShadow = false;
        ref DecodedOp op = ref FetchOne();
        if (Unsafe.IsNullRef(ref op))
        {
            return;
        }

        Code code = op.Code;
        int port = (Dr7 & Dr7EnableBits) != 0 && (Cr4 & Cr4Bits.DE) != 0 ? IoPortOf(ref op) : -1;
        NextRip = (Rip + op.Length) & IpMask;
        StringChunk = 1;
        bool guestMode = GuestMode;
        int st = op.Handler(this, ref op);
        StringChunk = Exec.Exec.RepChunk;
        if (guestMode != GuestMode)
        {
            // A world switch: a VMRUN that entered its guest completes on the host side only at the #VMEXIT, where
            // the host's single-step trap is taken (SingleStepAfterVmexit); an intercepted guest instruction did
            // not complete, so it has no traps (APM vol. 2 §15.7.2).
            return;
        }

        ulong traps = _dataBreakpointHits;
        if (st == ExecStatus.Continue)
        {
            Rip = NextRip;
            Cycles += op.Cycles;
            Instructions++;
            RecordBranch(from, ref op);
        }
        else if (st == ExecStatus.EndBlock)
        {
            Finish(st, ref op);
            RecordBranch(from, ref op);
        }
        else
        {
            bool software = st == ExecStatus.Fault && PendingIsSoftware && PendingVector >= 0;
            if (st == ExecStatus.Fault && !software)
            {
                Finish(st, ref op);
                return;
            }

            bool icebp = software && PendingVector == Vector.DB && !PendingIsIntN;
            Finish(st, ref op);
            if (icebp || (software && _deliveryFaulted))
            {
                return;
            }
        }

        if (code is Code.Syscall or Code.Sysretd or Code.Sysretq)
        {
            // They decide by the TF they leave (SingleStepIfTrapFlag), which lands in _pendingDebugTraps.
            tf = false;
        }


        traps |= _pendingDebugTraps;
        _pendingDebugTraps = 0;
        if (tf)
        {
            traps |= Dr6SingleStep;
        }

        if (port >= 0)
        {
            traps |= MatchBreakpoints((ulong)port, IoSizeOf(code), BreakOnIo);
        }

        traps |= held;
        if (SsLoadShadow && InterruptShadow)
        {
            _heldDebugTraps = traps;
            return;
        }

        if (traps != 0 && !StopRequested)
        {
            RaiseDebugEvent(traps);
        }
    }

    /// <summary>
    /// DebugCtl.LBR: records the instruction that just retired from <paramref name="from"/> as the last branch when
    /// RIP did not fall through to the next instruction (a taken jump, call, return, far transfer). A REP string
    /// instruction that stays on itself for its next iteration is not a branch.
    /// </summary>
    private void RecordBranch(ulong from, ref DecodedOp op)
    {
        if ((DebugCtl & DebugCtlLbr) == 0 || Rip == ((from + op.Length) & IpMask) || (Rip == from && op.Rep != 0))
        {
            return;
        }

        LastBranchFromIp = from;
        LastBranchToIp = Rip;
    }

    /// <summary>
    /// DebugCtl.LBR and a delivered exception or interrupt from <paramref name="from"/> (APM vol. 2 §13.1.1.3):
    /// the last-branch pair moves to the last-exception pair and the event's own transfer becomes the last
    /// branch. A #DB is not recorded but stops the recording: the processor clears DebugCtl.LBR as it takes the
    /// #DB, so the handler finds the branches that led to it (§13.1.1.6). Called by <see cref="DeliverEvent"/>.
    /// </summary>
    internal void RecordEvent(ulong from, int vector, EventKind kind)
    {
        if (vector == Vector.DB && kind is EventKind.Exception or EventKind.PrivilegedSoftware)
        {
            DebugCtl &= ~DebugCtlLbr;
            return;
        }

        LastExceptionFromIp = LastBranchFromIp;
        LastExceptionToIp = LastBranchToIp;
        LastBranchFromIp = from;
        LastBranchToIp = Rip;
    }

    /// <summary>
    /// Delivers a #DB for breakpoint hits (B0–B3) and single-step (BS): B0–B3 are replaced by this
    /// event's, BD/BS/BT only ever get set; DR7.GD is cleared so the handler may use the debug registers.
    /// </summary>
    private void RaiseDebugEvent(ulong bits)
    {
        Dr6 = (Dr6 & ~Dr6BreakpointHits) | bits;
        Dr7 &= ~Dr7GeneralDetect;
        ExceptionsDelivered++;
        DeliverEvent(Vector.DB, EventKind.Exception, 0, false);
    }

    /// <summary>The decoded instruction at RIP (cached block or the uncached scratch slot); null ref after a fetch fault, which is then delivered.</summary>
    private ref DecodedOp FetchOne()
    {
        if (!Linear(SegReg.CS, Rip, 1, Access.Fetch, out ulong lin))
        {
            DeliverPending();
            return ref Unsafe.NullRef<DecodedOp>();
        }

        byte* page = FetchPageCached(lin);
        if (page != null)
        {
            ulong hpa = Phys.HostOffsetOf(page) + (lin & 0xFFF);
            int block = Blocks.Lookup(hpa, Bitness, page + (lin & 0xFFF), Rip);
            if (block != 0)
            {
                return ref Blocks.Op(Blocks.Start(block));
            }
        }
        else if (PendingVector >= 0)
        {
            DeliverPending();
            return ref Unsafe.NullRef<DecodedOp>();
        }

        return ref DecodeUncached(lin);
    }
}
