using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// System registers: MOV CRn/DRn, CLTS, LMSW, SMSW, RDMSR/WRMSR, CPUID, RDTSC/RDTSCP/RDPID/RDPMC,
/// INVLPG, INVPCID, WBINVD/INVD, CLFLUSH/CLFLUSHOPT/CLWB, STAC/CLAC, RD/WR FS/GS BASE (AMD64 APM vol. 3, chapter 4 "System Instruction Reference").
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterSysReg(HandlerTable t)
    {
        t.Add(Code.Mov_r32_cr, &MovFromCr, CostClass.System);
        t.Add(Code.Mov_r64_cr, &MovFromCr, CostClass.System);
        t.Add(Code.Mov_cr_r32, &MovToCr, CostClass.Serializing);
        t.Add(Code.Mov_cr_r64, &MovToCr, CostClass.Serializing);
        t.Add(Code.Mov_r32_dr, &MovFromDr, CostClass.System);
        t.Add(Code.Mov_r64_dr, &MovFromDr, CostClass.System);
        t.Add(Code.Mov_dr_r32, &MovToDr, CostClass.Serializing);
        t.Add(Code.Mov_dr_r64, &MovToDr, CostClass.Serializing);
        t.Add(Code.Clts, &Clts, CostClass.System);
        t.Add(Code.Lmsw_rm16, &Lmsw, CostClass.Serializing);
        t.Add(Code.Lmsw_r32m16, &Lmsw, CostClass.Serializing);
        t.Add(Code.Lmsw_r64m16, &Lmsw, CostClass.Serializing);
        t.Add(Code.Smsw_rm16, &Smsw, CostClass.System);
        t.Add(Code.Smsw_r32m16, &Smsw, CostClass.System);
        t.Add(Code.Smsw_r64m16, &Smsw, CostClass.System);
        t.Add(Code.Rdmsr, &Rdmsr, CostClass.Serializing);
        t.Add(Code.Wrmsr, &Wrmsr, CostClass.Serializing);
        t.Add(Code.Cpuid, &Cpuid, CostClass.Serializing);
        t.Add(Code.Rdtsc, &Rdtsc, CostClass.System);
        t.Add(Code.Rdtscp, &Rdtscp, CostClass.System);
        t.Add(Code.Rdpid_r32, &Rdpid, CostClass.System);
        t.Add(Code.Rdpid_r64, &Rdpid, CostClass.System);
        t.Add(Code.Rdpmc, &Rdpmc, CostClass.System);
        t.Add(Code.Invlpg_m, &Invlpg, CostClass.System);
        t.Add(Code.Wbinvd, &CacheControl, CostClass.Serializing);
        t.Add(Code.Invd, &CacheControl, CostClass.Serializing);
        t.Add(Code.Clflush_m8, &Clflush, CostClass.Memory);
        t.Add(Code.Clflushopt_m8, &Clflushopt, CostClass.Memory);
        t.Add(Code.Clwb_m8, &Clwb, CostClass.Memory);
        t.Add(Code.Invpcid_r32_m128, &Invpcid, CostClass.System);
        t.Add(Code.Invpcid_r64_m128, &Invpcid, CostClass.System);
        t.Add(Code.Stac, &Stac, CostClass.Simple);
        t.Add(Code.Clac, &Clac, CostClass.Simple);
        t.Add(Code.Rdfsbase_r32, &RdFsGsBase, CostClass.Simple);
        t.Add(Code.Rdfsbase_r64, &RdFsGsBase, CostClass.Simple);
        t.Add(Code.Rdgsbase_r32, &RdFsGsBase, CostClass.Simple);
        t.Add(Code.Rdgsbase_r64, &RdFsGsBase, CostClass.Simple);
        t.Add(Code.Wrfsbase_r32, &WrFsGsBase, CostClass.System);
        t.Add(Code.Wrfsbase_r64, &WrFsGsBase, CostClass.System);
        t.Add(Code.Wrgsbase_r32, &WrFsGsBase, CostClass.System);
        t.Add(Code.Wrgsbase_r64, &WrFsGsBase, CostClass.System);
    }

    /// <summary>MOV reg, CRn: CPL 0; CR1, CR5–CR7, CR9–CR15 are #UD.</summary>
    public static int MovFromCr(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong v;
        switch (op.R1)
        {
            case 0: v = c.Cr0; break;
            case 2: v = c.Cr2; break;
            case 3: v = c.Cr3; break;
            case 4: v = c.Cr4; break;
            case 8: v = c.Cr8; break;
            default: return c.RaiseUD();
        }

        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        if (CrIntercepted(c, op.R1, write: false) && c.InterceptEnds(SvmExit.CrRead0 + (ulong)op.R1, out int exit))
        {
            return exit;
        }

        c.SetReg(op.R0, op.OpSize, v);
        return ExecStatus.Continue;
    }

    /// <summary>MOV CRn, reg: CPL 0; the value is checked by the register's write rule (#GP(0) on violation).</summary>
    public static int MovToCr(Cpu.Cpu c, ref DecodedOp op)
    {
        int cr = op.R0;
        if (cr is not (0 or 2 or 3 or 4 or 8))
        {
            return c.RaiseUD();
        }

        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        ulong v = c.GetReg(op.R1, op.OpSize);
        if (CrIntercepted(c, cr, write: true) && c.InterceptEnds(SvmExit.CrWrite0 + (ulong)cr, out int exit))
        {
            return exit;
        }

        if (cr == 0 && Cr0SelectiveExit(c, v) && c.InterceptEnds(SvmExit.Cr0SelectiveWrite, out int selectiveExit))
        {
            return selectiveExit;
        }

        bool ok;
        switch (cr)
        {
            case 0: ok = c.WriteCr0(v); break;
            case 2: c.Cr2 = v; return ExecStatus.Continue;
            case 3: ok = c.WriteCr3(v); break;
            case 4: ok = c.WriteCr4(v); break;
            default: ok = c.WriteCr8(v); break;
        }

        return ok ? ExecStatus.EndBlock : c.RaiseGP(0);
    }

    /// <summary>
    /// The CR intercept word of the running guest (APM vol. 2 §15.9 "CR and DR Intercepts"): reads in bits 15:0,
    /// writes in bits 31:16. Checked after #UD and the CPL #GP, before the value's own #GP. No decode assists are
    /// reported, so these exits carry EXITINFO1 0.
    /// </summary>
    private static bool CrIntercepted(Cpu.Cpu c, int cr, bool write) =>
        ((c.Intercepts.Cr >> (cr + (write ? 16 : 0))) & 1) != 0;

    /// <summary>The DR intercept word, laid out as the CR one.</summary>
    private static bool DrIntercepted(Cpu.Cpu c, int dr, bool write) =>
        ((c.Intercepts.Dr >> (dr + (write ? 16 : 0))) & 1) != 0;

    /// <summary>
    /// The selective CR0 write intercept (APM vol. 2 §15.9.1): a MOV CR0 or LMSW that would change any bit other
    /// than TS and MP exits, unless the plain CR0 write intercept (checked first) already took it. CLTS never does.
    /// </summary>
    private static bool Cr0SelectiveExit(Cpu.Cpu c, ulong newCr0) =>
        c.Intercepted(SvmIntercept.Cr0SelectiveWrite) && ((newCr0 ^ c.Cr0) & ~(Cr0Bits.TS | Cr0Bits.MP)) != 0;

    /// <summary>Checks common to MOV DRn: #UD for DR8+ and for DR4/DR5 with CR4.DE, #GP(0) above CPL 0, #DB when DR7.GD.</summary>
    private static int CheckDrAccess(Cpu.Cpu c, int dr)
    {
        if (dr > 7 || ((dr is 4 or 5) && (c.Cr4 & Cr4Bits.DE) != 0))
        {
            return c.RaiseUD();
        }

        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        if ((c.Dr7 & Cpu.Cpu.Dr7GeneralDetect) != 0)
        {
            // General detect (APM vol. 2 §13.1.1.5): fault before the access, with DR6.BD set and DR7.GD
            // cleared so the handler itself can use the debug registers.
            c.Dr6 = (c.Dr6 & ~Cpu.Cpu.Dr6BreakpointHits) | Cpu.Cpu.Dr6BreakpointDetect;
            c.Dr7 &= ~Cpu.Cpu.Dr7GeneralDetect;
            return c.Raise(Vector.DB);
        }

        return ExecStatus.Continue;
    }

    public static int MovFromDr(Cpu.Cpu c, ref DecodedOp op)
    {
        int s = CheckDrAccess(c, op.R1);
        if (s != ExecStatus.Continue)
        {
            return s;
        }

        // After the general-detect #DB too: that is part of the access check, as KVM's emulation orders it.
        if (DrIntercepted(c, op.R1, write: false) && c.InterceptEnds(SvmExit.DrRead0 + (ulong)op.R1, out int exit))
        {
            return exit;
        }

        c.SetReg(op.R0, op.OpSize, c.ReadDr(op.R1));
        return ExecStatus.Continue;
    }

    public static int MovToDr(Cpu.Cpu c, ref DecodedOp op)
    {
        int s = CheckDrAccess(c, op.R0);
        if (s != ExecStatus.Continue)
        {
            return s;
        }

        if (DrIntercepted(c, op.R0, write: true) && c.InterceptEnds(SvmExit.DrWrite0 + (ulong)op.R0, out int exit))
        {
            return exit;
        }

        ulong oldDr7 = c.Dr7;
        if (!c.WriteDr(op.R0, c.GetReg(op.R1, op.OpSize)))
        {
            return c.RaiseGP(0);
        }

        c.DebugRegistersWritten(oldDr7);
        return ExecStatus.EndBlock;
    }

    /// <summary>CLTS: clears CR0.TS; CPL 0.</summary>
    public static int Clts(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        // A CR0 write for the CR0 write intercept; it changes only TS, so never a selective one.
        if (CrIntercepted(c, 0, write: true) && c.InterceptEnds(SvmExit.CrWrite0, out int exit))
        {
            return exit;
        }

        c.Cr0 &= ~Cr0Bits.TS;
        return ExecStatus.EndBlock;
    }

    /// <summary>LMSW: loads CR0 bits 3:0 (PE, MP, EM, TS) from a 16-bit source; it can set PE but never clear it.</summary>
    public static int Lmsw(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        // The CR0 write intercept comes before the operand is read (a memory exception).
        if (CrIntercepted(c, 0, write: true) && c.InterceptEnds(SvmExit.CrWrite0, out int exit))
        {
            return exit;
        }

        if (!ReadOp0(c, ref op, out ulong v))
        {
            return ExecStatus.Fault;
        }

        ulong cr0 = (c.Cr0 & ~0xEUL) | (v & 0xF) | (c.Cr0 & Cr0Bits.PE);

        // LMSW takes the selective intercept on any change, MP included: the TS/MP exemption is MOV CR0's (a
        // processor exits for an LMSW that only sets MP, which kvm-unit-tests "sel cr0 lmsw intercept" checks).
        if (c.Intercepted(SvmIntercept.Cr0SelectiveWrite) && cr0 != c.Cr0 && c.InterceptEnds(SvmExit.Cr0SelectiveWrite, out int selectiveExit))
        {
            return selectiveExit;
        }

        return c.WriteCr0(cr0) ? ExecStatus.EndBlock : c.RaiseGP(0);
    }

    /// <summary>SMSW: stores CR0 (a register at operand size, memory as 16 bits); with CR4.UMIP, #GP(0) above CPL 0.</summary>
    public static int Smsw(Cpu.Cpu c, ref DecodedOp op)
    {
        if (UmipBlocks(c))
        {
            return c.RaiseGP(0);
        }

        // SMSW reads CR0 (APM vol. 2 §15.9): the CR0 read intercept.
        if (CrIntercepted(c, 0, write: false) && c.InterceptEnds(SvmExit.CrRead0, out int exit))
        {
            return exit;
        }

        return WriteOp0(c, ref op, c.Cr0) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>RDMSR: EDX:EAX = MSR[ECX]; CPL 0; unknown MSR → #GP(0).</summary>
    public static int Rdmsr(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        // MSR_PROT (APM vol. 2 §15.11): after the CPL #GP, before the MSR's own #GP.
        int st = PermissionMaps.MsrGate(c, (uint)c.Gpr[Reg.RCX], write: false);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        if (!c.ReadMsr((uint)c.Gpr[Reg.RCX], out ulong v))
        {
            return c.RaiseGP(0);
        }

        c.Gpr[Reg.RAX] = (uint)v;
        c.Gpr[Reg.RDX] = v >> 32;
        return ExecStatus.Continue;
    }

    /// <summary>WRMSR: MSR[ECX] = EDX:EAX; CPL 0; unknown MSR or reserved bits → #GP(0).</summary>
    public static int Wrmsr(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        int st = PermissionMaps.MsrGate(c, (uint)c.Gpr[Reg.RCX], write: true);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        ulong v = ((c.Gpr[Reg.RDX] & 0xFFFF_FFFF) << 32) | (uint)c.Gpr[Reg.RAX];
        return c.WriteMsr((uint)c.Gpr[Reg.RCX], v) ? ExecStatus.EndBlock : c.RaiseGP(0);
    }

    /// <summary>CPUID: EAX = leaf, ECX = subleaf; results zero-extend into RAX, RBX, RCX, RDX.</summary>
    public static int Cpuid(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Intercepted(SvmIntercept.Cpuid) && c.InterceptEnds(SvmExit.Cpuid, out int exit))
        {
            return exit;
        }

        c.Cpuid((uint)c.Gpr[Reg.RAX], (uint)c.Gpr[Reg.RCX], out uint a, out uint b, out uint cx, out uint d);
        c.Gpr[Reg.RAX] = a;
        c.Gpr[Reg.RBX] = b;
        c.Gpr[Reg.RCX] = cx;
        c.Gpr[Reg.RDX] = d;
        return ExecStatus.Continue;
    }

    /// <summary>The time-stamp counter: the cycle count plus TSC offset (WRMSR TSC adjusts the offset).</summary>
    private static ulong Tsc(Cpu.Cpu c) => c.Cycles + c.TscOffset;

    /// <summary>RDTSC: #GP(0) when CR4.TSD and CPL > 0.</summary>
    public static int Rdtsc(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Cr4 & Cr4Bits.TSD) != 0 && c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        if (c.Intercepted(SvmIntercept.Rdtsc) && c.InterceptEnds(SvmExit.Rdtsc, out int exit))
        {
            return exit;
        }

        ulong t = Tsc(c);
        c.Gpr[Reg.RAX] = (uint)t;
        c.Gpr[Reg.RDX] = t >> 32;
        return ExecStatus.Continue;
    }

    /// <summary>RDTSCP: RDTSC plus ECX = TSC_AUX.</summary>
    public static int Rdtscp(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!c.Features.Has(CpuFeature.Rdtscp))
        {
            return c.RaiseUD();
        }

        if ((c.Cr4 & Cr4Bits.TSD) != 0 && c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        // Only a reported RDTSCP gets here: an unreported one is #UD above, before any intercept.
        if (c.Intercepted(SvmIntercept.Rdtscp) && c.InterceptEnds(SvmExit.Rdtscp, out int exit))
        {
            return exit;
        }

        ulong t = Tsc(c);
        c.Gpr[Reg.RAX] = (uint)t;
        c.Gpr[Reg.RDX] = t >> 32;
        c.Gpr[Reg.RCX] = (uint)c.TscAux;
        return ExecStatus.Continue;
    }

    /// <summary>RDPID: reg = TSC_AUX (not affected by CR4.TSD).</summary>
    public static int Rdpid(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!c.Features.Has(CpuFeature.Rdpid))
        {
            return c.RaiseUD();
        }

        c.SetReg(op.R0, op.OpSize, c.TscAux);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// RDPMC: #GP(0) above CPL 0 unless CR4.PCE, and for a counter number beyond the four legacy counters.
    /// No performance events are modelled, so every counter reads zero.
    /// </summary>
    public static int Rdpmc(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0 && (c.Cr4 & Cr4Bits.PCE) == 0)
        {
            return c.RaiseGP(0);
        }

        // The counter number is an operand value: its #GP comes after the intercept.
        if (c.Intercepted(SvmIntercept.Rdpmc) && c.InterceptEnds(SvmExit.Rdpmc, out int exit))
        {
            return exit;
        }

        if ((uint)c.Gpr[Reg.RCX] > 3)
        {
            return c.RaiseGP(0);
        }

        c.Gpr[Reg.RAX] = 0;
        c.Gpr[Reg.RDX] = 0;
        return ExecStatus.Continue;
    }

    /// <summary>INVLPG: CPL 0; drops the TLB entry for the page of the operand's linear address (no fault otherwise).</summary>
    public static int Invlpg(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        // EXITINFO1 would hold the linear address only with decode assists, which are not reported.
        if (c.Intercepted(SvmIntercept.Invlpg) && c.InterceptEnds(SvmExit.Invlpg, out int exit))
        {
            return exit;
        }

        ulong ea = c.Ea(ref op);
        ulong lin = c.Is64
            ? (op.Seg >= SegReg.FS ? ea + c.Seg[op.Seg].Base : ea)
            : (uint)(c.Seg[op.Seg].Base + ea);
        c.InvalidateTranslation(lin);
        return ExecStatus.EndBlock;
    }

    /// <summary>WBINVD, INVD: CPL 0; caches are not modelled, so no other effect.</summary>
    public static int CacheControl(Cpu.Cpu c, ref DecodedOp op)
    {
        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        bool wbinvd = op.Code == Code.Wbinvd;
        if (c.Intercepted(wbinvd ? SvmIntercept.Wbinvd : SvmIntercept.Invd) && c.InterceptEnds(wbinvd ? SvmExit.Wbinvd : SvmExit.Invd, out int exit))
        {
            return exit;
        }

        return ExecStatus.Continue;
    }

    /// <summary>CLFLUSH: no cache to flush; only the segmentation and canonical checks of the address.</summary>
    public static int Clflush(Cpu.Cpu c, ref DecodedOp op) =>
        c.Linear(op.Seg, c.Ea(ref op), 1, Access.Read, out _) ? ExecStatus.Continue : ExecStatus.Fault;

    /// <summary>CLFLUSHOPT (APM vol. 3): CLFLUSH with weaker ordering; #UD unless CPUID 7.0:EBX[23] reports it.</summary>
    public static int Clflushopt(Cpu.Cpu c, ref DecodedOp op) =>
        c.Features.Has(CpuFeature.ClflushOpt) ? Clflush(c, ref op) : c.RaiseUD();

    /// <summary>CLWB (APM vol. 3): writes a dirty line back without invalidating it; #UD unless CPUID 7.0:EBX[24].</summary>
    public static int Clwb(Cpu.Cpu c, ref DecodedOp op) =>
        c.Features.Has(CpuFeature.Clwb) ? Clflush(c, ref op) : c.RaiseUD();

    /// <summary>
    /// INVPCID (APM vol. 3; Intel SDM vol. 2 "INVPCID"): the register gives the type, the 16-byte descriptor
    /// holds the PCID in bits 11:0 and a linear address in bits 127:64. #UD unless CPUID 7.0:EBX[10] reports it;
    /// #GP(0) above CPL 0, for a type above 3, for descriptor bits 63:12 set, for a non-canonical address with
    /// type 0, and for a non-zero PCID with type 0 or 1 while CR4.PCIDE is clear. Type 0 drops one address,
    /// 1 one PCID's translations, 2 all of them, 3 all but global ones; the software TLB is not tagged by PCID
    /// nor by the G bit, so types 1–3 flush it whole.
    /// </summary>
    public static int Invpcid(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!c.Features.Has(CpuFeature.Invpcid) || c.Mode == CpuMode.Virtual8086)
        {
            return c.RaiseUD();
        }

        if (c.Cpl != 0)
        {
            return c.RaiseGP(0);
        }

        ulong type = c.GetReg(op.R0, op.OpSize);
        ulong ea = c.Ea(ref op);
        if (!c.ReadMem(op.Seg, ea, 8, out ulong pcidQword) || !c.ReadMem(op.Seg, WrapAddr(ea + 8, op.AddrSize), 8, out ulong linear))
        {
            return ExecStatus.Fault;
        }

        if (type > 3 || (pcidQword & ~0xFFFUL) != 0)
        {
            return c.RaiseGP(0);
        }

        bool pcidOff = (c.Cr4 & Cr4Bits.PCIDE) == 0;
        if (type <= 1 && pcidOff && pcidQword != 0)
        {
            return c.RaiseGP(0);
        }

        if (type == 0)
        {
            if (!c.IsCanonical(linear))
            {
                return c.RaiseGP(0);
            }

            c.InvalidateTranslation(linear);
        }
        else
        {
            c.FlushTranslations();
        }

        return ExecStatus.EndBlock;
    }

    /// <summary>STAC/CLAC (APM vol. 3): set or clear RFLAGS.AC for SMAP; #UD unless SMAP is reported and CPL is 0.</summary>
    public static int Stac(Cpu.Cpu c, ref DecodedOp op) => SetAc(c, true);

    public static int Clac(Cpu.Cpu c, ref DecodedOp op) => SetAc(c, false);

    private static int SetAc(Cpu.Cpu c, bool set)
    {
        if (!c.Features.Has(CpuFeature.Smap) || c.Cpl != 0)
        {
            return c.RaiseUD();
        }

        c.MaterializeFlags();
        c.FlagsBits = set ? c.FlagsBits | Rflags.AC : c.FlagsBits & ~Rflags.AC;
        return ExecStatus.Continue;
    }

    /// <summary>Segment number of RD/WR FS/GS BASE from the Iced code.</summary>
    private static int FsGsOf(Code code) =>
        code is Code.Rdfsbase_r32 or Code.Rdfsbase_r64 or Code.Wrfsbase_r32 or Code.Wrfsbase_r64 ? SegReg.FS : SegReg.GS;

    /// <summary>RDFSBASE/RDGSBASE (64-bit mode only, as Iced decodes them): #UD unless CR4.FSGSBASE.</summary>
    public static int RdFsGsBase(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Cr4 & Cr4Bits.FSGSBASE) == 0)
        {
            return c.RaiseUD();
        }

        c.SetReg(op.R0, op.OpSize, c.Seg[FsGsOf(op.Code)].Base);
        return ExecStatus.Continue;
    }

    /// <summary>WRFSBASE/WRGSBASE: #UD unless CR4.FSGSBASE; a non-canonical 64-bit base is #GP(0); the 32-bit form zero-extends.</summary>
    public static int WrFsGsBase(Cpu.Cpu c, ref DecodedOp op)
    {
        if ((c.Cr4 & Cr4Bits.FSGSBASE) == 0)
        {
            return c.RaiseUD();
        }

        ulong v = c.GetReg(op.R0, op.OpSize);
        if (!c.IsCanonical(v))
        {
            return c.RaiseGP(0);
        }

        int seg = FsGsOf(op.Code);
        c.Seg[seg].Base = v;
        c.SegmentLoaded(seg);
        return ExecStatus.Continue;
    }
}
