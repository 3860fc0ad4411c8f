using System.Runtime.CompilerServices;
using Emulator.Core.Decode;
using Emulator.Core.Memory;
using Emulator.Core.Timing;

namespace Emulator.Core.Cpu;

/// <summary>What a handler tells the interpreter loop (0 means carry on with the next op of the block).</summary>
public static class ExecStatus
{
    public const int Continue = 0;
    /// <summary>Leave the block and look up the next one at the new RIP (control transfer or mode change).</summary>
    public const int EndBlock = 1;
    /// <summary>An exception is pending (Cpu.Pending*); RIP still points at the faulting instruction.</summary>
    public const int Fault = 2;
    /// <summary>HLT: stop until an interrupt arrives.</summary>
    public const int Halt = 3;
    /// <summary>The machine asked to stop (debug exit, shutdown, limit).</summary>
    public const int Exit = 4;
}

/// <summary>Processor operating mode as the decoder and address arithmetic see it.</summary>
public enum CpuMode : byte
{
    Real,
    Protected16,
    Protected32,
    Virtual8086,
    Compat16,
    Compat32,
    Long64,
}

/// <summary>
/// One logical processor: architectural state plus the interpreter's caches. Split over partial
/// files by concern (flags, memory, loop, system state); instruction semantics live in Exec.
/// </summary>
public sealed partial class Cpu
{
    public GprFile Gpr;
    public ulong Rip;
    /// <summary>RIP of the instruction after the one executing; handlers of control transfers overwrite it.</summary>
    public ulong NextRip;

    public SegmentFile Seg;       // 0..5 = ES CS SS DS FS GS, 6 = LDTR, 7 = TR
    public const int LdtrIndex = 6, TrIndex = 7;
    public TableRegister Gdtr, Idtr;

    public ulong Cr0 = 0x60000010, Cr2, Cr3, Cr4;
    public ulong Efer;
    public ulong Dr0, Dr1, Dr2, Dr3, Dr6 = 0xFFFF0FF0, Dr7 = 0x400;

    /// <summary>Current privilege level (CS.RPL once in protected mode; 0 in real mode, 3 in VM86).</summary>
    public int Cpl;
    public CpuMode Mode = CpuMode.Real;
    /// <summary>Code size in bits for the decoder: 16, 32 or 64.</summary>
    public int Bitness = 16;

    public readonly PhysicalMemory Phys;
    public readonly CostTable Costs;

    /// <summary>
    /// What a memory form costs over its register form (<see cref="Exec.Exec.ChargeMemoryForm"/>), from
    /// <see cref="Costs"/> when the vCPU is made: decoded ops carry their table's cycles from then on too.
    /// </summary>
    internal readonly ulong MemoryFormCycles;

    // Counters (deterministic; the cycle counter is the TSC).
    public ulong Cycles;
    public ulong Instructions;
    public ulong TscOffset;

    /// <summary>Set by anything that must make the loop leave the current block (SMC, device, IPI).</summary>
    public int ExitRequest;

    public bool Halted;

    internal readonly BlockCache Blocks;

    public Cpu(PhysicalMemory phys, CostTable? costs = null)
    {
        Phys = phys;
        Costs = costs ?? CostTable.Default;
        MemoryFormCycles = (ulong)(Costs.ClassCycles(CostClass.Memory) - Costs.ClassCycles(CostClass.Simple));
        phys.AttachCpu(this);
        Blocks = phys.BlockCacheFor(Costs);
        if (phys.Mmu is { } mmu)
        {
            mmu.Tdp.RemoteTlbFlush += RemoteTlbFlush;
        }

        InitTlb();
        ResetToRealMode();
    }

    /// <summary>Architectural reset state (APM vol. 2 §14.1.3), except that execution starts at CS:IP 0000:0000.</summary>
    public void ResetToRealMode()
    {
        for (int i = 0; i < 6; i++)
        {
            Seg[i] = SegmentCache.RealMode(0);
        }

        Seg[SegReg.CS] = SegmentCache.RealMode(0, 0x9B);
        Seg[LdtrIndex] = new SegmentCache { Limit = 0xFFFF, Attr = 0x82 };
        Seg[TrIndex] = new SegmentCache { Limit = 0xFFFF, Attr = 0x8B };
        Gdtr = new TableRegister { Limit = 0xFFFF };
        Idtr = new TableRegister { Limit = 0x3FF };
        FlagsBits = Rflags.Reserved1;
        LazyOp = LazyFlags.None;
        Cr0 = 0x60000010;
        Cr2 = Cr3 = Cr4 = 0;
        Tpr = 0;
        Efer = 0;
        Cpl = 0;
        ResetDebug();
        UpdateMode();
    }

    /// <summary>Register value by number, at full width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong R(int index) => ref Gpr[index];

    /// <summary>
    /// Register by number 0–15 without the range check, for handlers the decoder specialised on plain
    /// GPR operands (<see cref="Exec.Exec"/> form selectors only pick those for numbers below 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong GprUnchecked(int index)
    {
        // SAFETY: callers pass register numbers below 16 (checked when the handler was selected), and GprFile holds 16.
        return ref Unsafe.Add(ref Unsafe.As<GprFile, ulong>(ref Gpr), index);
    }

    /// <summary>Reads an 8-bit register; 16–19 are AH, CH, DH, BH.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Get8(int r) => r < 16 ? (byte)Gpr[r] : (byte)(Gpr[r - 16] >> 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set8(int r, byte v)
    {
        if (r < 16)
        {
            Gpr[r] = (Gpr[r] & ~0xFFUL) | v;
        }
        else
        {
            Gpr[r - 16] = (Gpr[r - 16] & ~0xFF00UL) | ((ulong)v << 8);
        }
    }

    /// <summary>Reads a register at operand size <paramref name="size"/> (1, 2, 4, 8), zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong GetReg(int r, int size) => size switch
    {
        1 => Get8(r),
        2 => (ushort)Gpr[r],
        4 => (uint)Gpr[r],
        _ => Gpr[r],
    };

    /// <summary>Writes a register at operand size: 32-bit writes zero the upper half, 8/16-bit writes merge.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetReg(int r, int size, ulong v)
    {
        switch (size)
        {
            case 1: Set8(r, (byte)v); break;
            case 2: Gpr[r] = (Gpr[r] & ~0xFFFFUL) | (ushort)v; break;
            case 4: Gpr[r] = (uint)v; break;
            default: Gpr[r] = v; break;
        }
    }

    public bool LongModeActive => (Efer & EferBits.LMA) != 0;
    public bool ProtectedMode => (Cr0 & Cr0Bits.PE) != 0;
    public bool PagingEnabled => (Cr0 & Cr0Bits.PG) != 0;

    /// <summary>Recomputes Mode and Bitness from CR0.PE, EFLAGS.VM, EFER.LMA and CS's L/D bits.</summary>
    public void UpdateMode()
    {
        ref SegmentCache cs = ref Seg[SegReg.CS];
        CpuMode m;
        if ((Cr0 & Cr0Bits.PE) == 0)
        {
            m = CpuMode.Real;
        }
        else if ((FlagsBits & Rflags.VM) != 0)
        {
            m = CpuMode.Virtual8086;
        }
        else if ((Efer & EferBits.LMA) != 0)
        {
            m = cs.Long ? CpuMode.Long64 : cs.Big ? CpuMode.Compat32 : CpuMode.Compat16;
        }
        else
        {
            m = cs.Big ? CpuMode.Protected32 : CpuMode.Protected16;
        }

        Mode = m;
        Bitness = m switch
        {
            CpuMode.Long64 => 64,
            CpuMode.Protected32 or CpuMode.Compat32 => 32,
            _ => 16,
        };
        if (m == CpuMode.Real)
        {
            Cpl = 0;
        }
        else if (m == CpuMode.Virtual8086)
        {
            Cpl = 3;
        }

        RecomputeSegmentAccess();
        BumpCodeEpoch();
        ExitRequest = 1;
    }

    public bool Is64 => Mode == CpuMode.Long64;

    /// <summary>Stack-pointer width in bytes: 8 in 64-bit mode, else SS.B ? 4 : 2.</summary>
    public int StackSize => Mode == CpuMode.Long64 ? 8 : Seg[SegReg.SS].Big && Mode != CpuMode.Real && Mode != CpuMode.Virtual8086 ? 4 : 2;
}

public static class Cr0Bits
{
    public const ulong PE = 1 << 0, MP = 1 << 1, EM = 1 << 2, TS = 1 << 3, ET = 1 << 4, NE = 1 << 5;
    public const ulong WP = 1 << 16, AM = 1 << 18, NW = 1 << 29, CD = 1 << 30, PG = 1UL << 31;
}

public static class Cr4Bits
{
    public const ulong VME = 1 << 0, PVI = 1 << 1, TSD = 1 << 2, DE = 1 << 3, PSE = 1 << 4, PAE = 1 << 5;
    public const ulong MCE = 1 << 6, PGE = 1 << 7, PCE = 1 << 8, OSFXSR = 1 << 9, OSXMMEXCPT = 1 << 10;
    public const ulong UMIP = 1 << 11, LA57 = 1 << 12, FSGSBASE = 1 << 16, PCIDE = 1 << 17, OSXSAVE = 1 << 18;
    public const ulong SMEP = 1 << 20, SMAP = 1 << 21, PKE = 1 << 22;
}

public static class EferBits
{
    public const ulong SCE = 1 << 0, LME = 1 << 8, LMA = 1 << 10, NXE = 1 << 11, SVME = 1 << 12, LMSLE = 1 << 13, FFXSR = 1 << 14;
}
