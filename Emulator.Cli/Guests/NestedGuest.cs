using System.Buffers.Binary;
using System.Diagnostics;
using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Svm;
using Emulator.Core.Timing;
using Emulator.Svm.Nested;
using Emulator.Svm.Run;
using Emulator.Svm.Vmcb;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// The nested-SVM workloads of <c>emu bench nested</c> and the nested benchmarks: an L1 hypervisor (64-bit, CPL 0)
/// runs one L2 with VMRUN under nested paging and handles its exits in an endless loop. L2 runs in L1's long mode
/// on L1's boot page tables; L1's nested page tables map L2's first GiB identically with 2 MiB pages except the
/// 2 MiB <see cref="Region"/>, which one 4 KiB table maps.
/// <list type="bullet">
/// <item><c>vmmcall</c>: L2 loops on VMMCALL, which L1 intercepts; L1 checks the exit code, advances L2's RIP to
/// nRIP and VMRUNs again. One unit: one L2 → L0 → L1 → VMRUN → L2 round trip.</item>
/// <item><c>npf-shadow</c>: L2 reads each 4 KiB page of <see cref="Region"/> once. L1's table maps them all, but
/// the shadow NPT has no entry: each read is an #NPF that L0 resolves by building the shadow entry. After the
/// last page L2 does a VMMCALL, and L1 rewrites one entry of that table (as a hypervisor changing a mapping
/// does), which drops the shadow table L0 built from it. One unit: one nested #NPF handled by L0; the round trip
/// and L1's write are spread over the 512 faults of a pass.</item>
/// <item><c>npf-reflect</c>: L1's table starts empty; L2 reads the pages of <see cref="Region"/> in turn, each
/// read is an #NPF that L0 reflects to L1, whose handler unmaps the page it mapped last, maps the faulting one
/// and VMRUNs; L2's read then faults once more in L0 (shadow entry). One unit: one #NPF reflected to L1.</item>
/// <item><c>vmmcall-flush</c>: <c>vmmcall</c> with L0 flushing the entered world's TLB at every VMRUN and #VMEXIT, as
/// KVM through Linux 6.x does (<see cref="NestedSvm.FlushOnTransition"/>); side by side with <c>vmmcall</c> it shows
/// what the tagged TLB saves.</item>
/// </list>
/// Every pass through a workload holds exactly one VMRUN, so running whole passes keeps the counts exact.
/// </summary>
public static class NestedGuest
{
    public const ulong L1Code = 0x100000;
    public const ulong L2Code = 0x180000;
    public const ulong L2Stack = 0x1F0000;
    public const ulong Vmcb = 0x400000;

    // L1's nested page tables (L1 guest-physical): PML4, PDPT, PD (first GiB) and the table for Region.
    public const ulong NptPml4 = 0x500000, NptPdpt = 0x501000, NptPd = 0x502000, NptPt = 0x503000;

    /// <summary>The 2 MiB of L2 guest-physical memory that the fault workloads touch (4 KiB-mapped by L1).</summary>
    public const ulong Region = 0x1000000;

    public const int RegionPages = 512;

    /// <summary>Guest RAM the workloads need (L2's first GiB is mapped, but only the first 18 MiB is touched).</summary>
    public const ulong MemorySize = 64UL << 20;

    public static readonly string[] Names = ["vmmcall", "npf-shadow", "npf-reflect", "vmmcall-flush"];

    /// <summary>The guest program a workload runs (<c>vmmcall-flush</c> runs <c>vmmcall</c>'s; only L0 differs).</summary>
    internal static string Program(string name) => name == "vmmcall-flush" ? "vmmcall" : name;

    // Nested-table entry bits: present, writable, user (every NPT access is a user access), accessed, dirty, 2 MiB.
    private const ulong P = 1, Rw = 2, Us = 4, A = 0x20, D = 0x40, Ps = 0x80;
    private const ulong Table = P | Rw | Us | A;
    private const ulong Leaf4K = P | Rw | Us | A | D;
    private const ulong Leaf2M = Leaf4K | Ps;

    /// <summary>Loads workload <paramref name="name"/> into the bootstrap vCPU's memory and enters L1.</summary>
    public static void Install(Cpu cpu, string name)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        if (Array.IndexOf(Names, name) < 0)
        {
            throw new ArgumentException($"unknown nested workload '{name}' (known: {string.Join(", ", Names)})", nameof(name));
        }

        name = Program(name);
        Load(cpu, L1Code, AssembleL1(name));
        Load(cpu, L2Code, AssembleL2(name));
        WriteNestedTables(cpu, mapRegion: name != "npf-reflect");
        BootState.EnterLong64(cpu, L1Code, ImageLoader.StackTop(cpu.Phys));
        WriteVmcb(cpu, name);
    }

    private static void Load(Cpu cpu, ulong at, byte[] bytes)
    {
        if (!cpu.Phys.TryLoad(at, bytes))
        {
            throw new InvalidOperationException($"guest RAM is too small for the nested workloads (need {MemorySize >> 20} MiB)");
        }
    }

    private static byte[] AssembleL1(string name)
    {
        var a = new Assembler(64);
        var run = a.CreateLabel();
        var bad = a.CreateLabel();

        // EFER.SVME, then the loop: VMRUN, check the exit, handle it, VMRUN again. L1 keeps its state in R12
        // and RAX (VMRUN restores L1's RAX); RBX and RCX belong to L2 (GPRs other than RAX/RSP are shared).
        a.mov(ecx, 0xC000_0080);
        a.rdmsr();
        a.or(eax, (int)EferBits.SVME);
        a.wrmsr();
        a.xor(ebx, ebx);
        a.xor(ecx, ecx);
        a.mov(r12d, (uint)NptPt);
        a.mov(eax, (uint)Vmcb);
        a.Label(ref run);
        a.vmrun();
        switch (name)
        {
            case "npf-reflect":
                // #NPF: unmap the page mapped last, map the faulting one (EXITINFO2) and resume L2 at the read.
                a.cmp(__qword_ptr[rax + VmcbOffset.ExitCode], (int)SvmExit.Npf);
                a.jne(bad);
                a.mov(__qword_ptr[r12], 0);
                a.mov(rdx, __qword_ptr[rax + VmcbOffset.ExitInfo2]);
                a.shr(edx, 12);
                a.and(edx, RegionPages - 1);
                a.lea(r12, __[rdx * 8 + (int)NptPt]);
                a.mov(rdx, __qword_ptr[rax + VmcbOffset.ExitInfo2]);
                a.and(rdx, -0x1000);
                a.or(rdx, (int)Leaf4K);
                a.mov(__qword_ptr[r12], rdx);
                a.jmp(run);
                break;
            default:
                // VMMCALL: resume L2 after it (nRIP).
                a.cmp(__qword_ptr[rax + VmcbOffset.ExitCode], (int)SvmExit.Vmmcall);
                a.jne(bad);
                a.mov(rdx, __qword_ptr[rax + VmcbOffset.NextRip]);
                a.mov(__qword_ptr[rax + VmcbOffset.Rip], rdx);
                if (name == "npf-shadow")
                {
                    // Rewrite the region's first mapping: L0 drops the shadow table it built from that table.
                    a.mov(rdx, __qword_ptr[r12]);
                    a.mov(__qword_ptr[r12], rdx);
                }

                a.jmp(run);
                break;
        }

        // Any other exit: stop (the benchmark reports the halt).
        a.Label(ref bad);
        a.hlt();
        a.jmp(bad);
        return GuestImage.Assemble(a, L1Code, out _);
    }

    private static byte[] AssembleL2(string name)
    {
        var a = new Assembler(64);
        var loop = a.CreateLabel();
        a.Label(ref loop);
        if (name == "vmmcall")
        {
            a.vmmcall();
            a.jmp(loop);
        }
        else
        {
            // Read page RBX of the region, next page, wrapping after the last one.
            a.mov(rdx, __qword_ptr[rbx + (int)Region]);
            a.add(ebx, 0x1000);
            a.and(ebx, (RegionPages - 1) << 12);
            if (name == "npf-shadow")
            {
                a.jnz(loop);
                a.vmmcall();
            }

            a.jmp(loop);
        }

        return GuestImage.Assemble(a, L2Code, out _);
    }

    /// <summary>L1's nested tables: identity for L2's first GiB, 2 MiB leaves except the 4 KiB-mapped region.</summary>
    private static void WriteNestedTables(Cpu cpu, bool mapRegion)
    {
        var page = new byte[4096];
        Entry(page, 0, NptPdpt | Table);
        Load(cpu, NptPml4, page);
        Array.Clear(page);
        Entry(page, 0, NptPd | Table);
        Load(cpu, NptPdpt, page);
        for (int i = 0; i < 512; i++)
        {
            ulong gpa = (ulong)i << 21;
            Entry(page, i, gpa == Region ? NptPt | Table : gpa | Leaf2M);
        }

        Load(cpu, NptPd, page);
        Array.Clear(page);
        for (int i = 0; mapRegion && i < RegionPages; i++)
        {
            Entry(page, i, (Region + ((ulong)i << 12)) | Leaf4K);
        }

        Load(cpu, NptPt, page);
    }

    private static void Entry(byte[] page, int index, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(index * 8), value);

    /// <summary>vmcb12: L2 in L1's long mode and paging, VMRUN and VMMCALL intercepted, nested paging at <see cref="NptPml4"/>.</summary>
    private static unsafe void WriteVmcb(Cpu cpu, string name)
    {
        var v = new VmcbView(cpu.Phys.RamPointer(Vmcb, 4096));
        if (v.IsNull)
        {
            throw new InvalidOperationException("the VMCB is not in guest RAM");
        }

        new Span<byte>(cpu.Phys.RamPointer(Vmcb, 4096), 4096).Clear();
        v.U32(VmcbOffset.InterceptMisc2) = (1u << (SvmIntercept.Vmrun - 32)) | (1u << (SvmIntercept.Vmmcall - 32));
        v.U32(VmcbOffset.Asid) = 1;

        // npf-reflect unmaps pages L2 has used: flush this guest's TLB entries at each VMRUN (APM vol. 2 §15.16.1).
        v.U32(VmcbOffset.TlbControl) = name == "npf-reflect" ? 3u : 0u;
        v.U64(VmcbOffset.NestedCtl) = 1;
        v.U64(VmcbOffset.NestedCr3) = NptPml4;
        v.U64(VmcbOffset.GPat) = 0x0007_0406_0007_0406;
        v.SetGuestStateLike(cpu, L2Code, L2Stack);
    }
}

/// <summary>One measurement of a nested workload: units (round trips or faults), time, modeled cycles, allocations.</summary>
public sealed record NestedResult(string Name, string Unit, ulong Units, double Seconds, ulong Cycles, long AllocatedBytes)
{
    public double UnitsPerSecond => Seconds > 0 ? Units / Seconds : 0;

    public double NsPerUnit => Units > 0 ? Seconds * 1e9 / Units : 0;

    public double CyclesPerUnit => Units > 0 ? (double)Cycles / Units : 0;

    public double AllocatedBytesPerUnit => Units > 0 ? (double)AllocatedBytes / Units : 0;
}

/// <summary>
/// A <see cref="NestedGuest"/> workload on a real machine (nested SVM, L0's MMU), run in whole passes: a pass is
/// the guest's loop from one VMRUN to the next, so cycles and units per pass are the same every time.
/// </summary>
public sealed class NestedWorkload : IDisposable
{
    private readonly NestedSvm _svm;

    private NestedWorkload(string name, CostTable? costs)
    {
        Name = name;
        Machine = new Machine(new MachineOptions { MemorySize = NestedGuest.MemorySize, CpuFeatures = ["+svm", "+npt", "+nrip_save"], Costs = costs });
        try
        {
            _svm = ((L0Svm)Machine.Cpu.Svm!).Nested;
            _svm.FlushOnTransition = name == "vmmcall-flush";
            NestedGuest.Install(Machine.Cpu, name);

            // Warm up (decode, the first faults, the shadow root), then align to a VMRUN and learn the pass length.
            StepToVmrun();
            StepToVmrun();
            ulong i0 = Cpu.Instructions, u0 = Units;
            StepToVmrun();
            InstructionsPerPass = Cpu.Instructions - i0;
            UnitsPerPass = Units - u0;
            ulong i1 = Cpu.Instructions, u1 = Units;
            StepToVmrun();
            if (Cpu.Instructions - i1 != InstructionsPerPass || Units - u1 != UnitsPerPass || UnitsPerPass == 0)
            {
                throw new InvalidOperationException($"nested workload {name}: passes differ ({InstructionsPerPass} then {Cpu.Instructions - i1} instructions, {UnitsPerPass} then {Units - u1} units)");
            }
        }
        catch
        {
            Machine.Dispose();
            throw;
        }
    }

    public static NestedWorkload Create(string name, CostTable? costs = null) => new(name, costs);

    public string Name { get; }

    public Machine Machine { get; }

    private Cpu Cpu => Machine.Cpu;

    /// <summary>What one unit is: a round trip (vmmcall) or a nested page fault.</summary>
    public string Unit => NestedGuest.Program(Name) == "vmmcall" ? "round trip" : "fault";

    /// <summary>Units done so far: exits reflected to L1, shadow-NPT faults L0 handled, or #NPFs reflected to L1.</summary>
    public ulong Units => NestedGuest.Program(Name) switch
    {
        "vmmcall" => _svm.Stats.Reflected,
        "npf-shadow" => Cpu.NestedPageFaults,
        _ => Cpu.NestedPageFaultsReflected,
    };

    public ulong InstructionsPerPass { get; }

    public ulong UnitsPerPass { get; }

    /// <summary>Passes run before <see cref="Measure"/> starts counting.</summary>
    public const ulong WarmupPasses = 128;

    /// <summary>Runs <paramref name="passes"/> whole passes; allocation-free.</summary>
    public void Run(ulong passes)
    {
        RunExit exit = Cpu.Run(Cpu.Instructions + (passes * InstructionsPerPass));
        if (exit != RunExit.InstructionLimit)
        {
            Fail(exit);
        }
    }

    /// <summary>Single-steps until the instruction after the next VMRUN that entered L2.</summary>
    private void StepToVmrun()
    {
        ulong runs = _svm.Stats.Vmrun;
        for (int i = 0; _svm.Stats.Vmrun == runs; i++)
        {
            RunExit exit = Cpu.Run(Cpu.Instructions + 1);
            if (exit != RunExit.InstructionLimit || i > 1_000_000)
            {
                Fail(exit);
            }
        }
    }

    [StackTraceHidden]
    private void Fail(RunExit exit) =>
        throw new InvalidOperationException($"nested workload {Name}: the guest stopped ({exit}) at RIP 0x{Cpu.Rip:X}, guest mode {Cpu.GuestMode}, last exit 0x{Machine.Memory.Read(NestedGuest.Vmcb + VmcbOffset.ExitCode, 8):X}");

    /// <summary>
    /// Runs whole passes for at least <paramref name="seconds"/> and reports units, wall time, modeled cycles and
    /// the bytes allocated on this thread around the measured loop.
    /// </summary>
    public NestedResult Measure(double seconds)
    {
        // Warm up first (tiered JIT, first-use type loads), so the measured loop is the steady state.
        long warm = Stopwatch.GetTimestamp();
        for (ulong n = 0; n < WarmupPasses || Stopwatch.GetElapsedTime(warm).TotalSeconds < seconds / 4; n++)
        {
            Run(1);
        }

        ulong passes = 1;
        ulong units0 = Units, cycles0 = Cpu.Cycles;
        long bytes0 = GC.GetAllocatedBytesForCurrentThread();
        long start = Stopwatch.GetTimestamp();
        double elapsed;
        do
        {
            Run(passes);
            passes = Math.Min(passes * 2, 1UL << 16);
            elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        while (elapsed < seconds);

        long bytes = GC.GetAllocatedBytesForCurrentThread() - bytes0;
        return new NestedResult(Name, Unit, Units - units0, elapsed, Cpu.Cycles - cycles0, bytes);
    }

    public void Dispose() => Machine.Dispose();
}
