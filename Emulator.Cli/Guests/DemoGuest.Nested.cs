using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// The demo's L2: L1 checks CPUID for SVM and nested paging, sets EFER.SVME, builds nested page tables for L2 (its
/// first GiB identity-mapped with 2 MiB pages, except the last 2 MiB, which go to L1's <see cref="L2ResultL1"/>), fills
/// the VMCB's controls (VMRUN and VMMCALL intercepted, ASID 1, nested paging on) and VMRUNs. L2 sums the squares
/// 1..1000 into its page at <see cref="L2ResultGpa"/> and VMMCALLs; L1 checks the exit code and finds the sum in its own
/// memory. L0 runs L2 through its shadow of L1's nested tables (DESIGN.md "Flow of one nested-paging fault").
/// </summary>
public static partial class DemoGuest
{
    /// <summary>L1 guest-physical layout: the VMCB and L1's nested page tables (PML4, PDPT, PD).</summary>
    private const ulong Vmcb = 0x120000, NptPml4 = 0x130000, NptPdpt = 0x131000, NptPd = 0x132000, L2Stack = 0x1F0000;

    /// <summary>Where L2 writes its result (its guest-physical address), and where L1's nested tables put that page.</summary>
    public const ulong L2ResultGpa = 0x3FE0_0000, L2ResultL1 = 0x20_0000;

    public const int L2SquaresUpTo = 1000;

    // Nested-table entry bits: present, writable, user (every nested access is a user access), accessed, dirty, 2 MiB.
    private const ulong Table = 0x27, Leaf2M = 0xE7;

    public const string L2LinePrefix = "l2: VMRUN under L1's nested paging; L2's sum of squares 1..1000 = 0x";
    public const string L2LineSuffix = ", found by L1 at 0x200000 after L2's VMMCALL";

    /// <summary>What L2 computes: 1² + 2² + … + 1000².</summary>
    public static ulong ExpectedL2Result()
    {
        ulong n = L2SquaresUpTo;
        return n * (n + 1) * ((2 * n) + 1) / 6;
    }

    /// <summary>The L2 part; R14 ≠ 0 says CPUID worked. Ends with GIF set again (the #VMEXIT cleared it).</summary>
    private static void EmitNestedRun(Assembler a, DemoLabels text)
    {
        var noSvm = a.CreateLabel();
        var bad = a.CreateLabel();
        var fill = a.CreateLabel();
        var end = a.CreateLabel();
        var square = a.CreateLabel();
        var l2 = text.L2Entry;
        a.test(r14d, r14d);
        a.jz(noSvm);
        a.mov(eax, 0x8000_0000);
        a.cpuid();
        a.cmp(eax, 0x8000_000A);
        a.jb(noSvm);
        a.mov(eax, 0x8000_0001);
        a.cpuid();
        a.bt(ecx, 2); // SVM
        a.jnc(noSvm);
        a.mov(eax, 0x8000_000A);
        a.cpuid();
        a.bt(edx, 0); // NP
        a.jnc(noSvm);

        a.mov(ecx, 0xC000_0080);
        a.rdmsr();
        a.bts(eax, 12); // EFER.SVME
        a.wrmsr();

        a.mov(edi, (uint)NptPml4);
        a.mov(__qword_ptr[rdi], (int)(NptPdpt | Table));
        a.mov(edi, (uint)NptPdpt);
        a.mov(__qword_ptr[rdi], (int)(NptPd | Table));
        a.mov(edi, (uint)NptPd);
        a.xor(eax, eax);
        a.Label(ref fill);
        a.mov(rdx, rax);
        a.shl(rdx, 21);
        a.or(rdx, (int)Leaf2M);
        a.mov(__qword_ptr[rdi + (rax * 8)], rdx);
        a.inc(eax);
        a.cmp(eax, 511);
        a.jb(fill);
        a.mov(__qword_ptr[rdi + (511 * 8)], (int)(L2ResultL1 | Leaf2M));

        a.mov(edi, (uint)Vmcb);
        a.mov(__dword_ptr[rdi + VmcbOffset.InterceptMisc2], (1 << (SvmIntercept.Vmrun - 32)) | (1 << (SvmIntercept.Vmmcall - 32)));
        a.mov(__dword_ptr[rdi + VmcbOffset.Asid], 1);
        a.mov(__qword_ptr[rdi + VmcbOffset.NestedCtl], 1);
        a.mov(__qword_ptr[rdi + VmcbOffset.NestedCr3], (int)NptPml4);
        a.mov(rax, 0x0007_0406_0007_0406UL);
        a.mov(__qword_ptr[rdi + VmcbOffset.GPat], rax);
        a.lea(rax, __[l2]);
        a.mov(__qword_ptr[rdi + VmcbOffset.Rip], rax);
        a.mov(__qword_ptr[rdi + VmcbOffset.Rsp], (int)L2Stack);
        a.mov(rax, rdi);
        a.vmrun();
        a.stgi();
        a.cmp(__qword_ptr[rax + VmcbOffset.ExitCode], (int)SvmExit.Vmmcall);
        a.jne(bad);
        a.mov(r8, __qword_ptr[L2ResultL1]);
        a.mov(rdx, ExpectedL2Result());
        a.cmp(r8, rdx);
        a.jne(bad);
        text.Print(L2LinePrefix);
        text.PrintHex();
        text.Print(L2LineSuffix + "\n");
        a.jmp(end);
        a.Label(ref bad);
        text.Print("l2: FAILED (unexpected exit or result)\n");
        a.jmp(end);
        a.Label(ref noSvm);
        text.Print("l2: skipped (no SVM with nested paging in CPUID)\n");
        a.jmp(end);

        // L2, in L1's long mode and page tables (the VMCB's save area), under L1's nested tables.
        a.Label(ref l2);
        text.L2Entry = l2;
        a.xor(eax, eax);
        a.mov(ecx, 1);
        a.Label(ref square);
        a.mov(edx, ecx);
        a.imul(edx, edx);
        a.add(rax, rdx);
        a.inc(ecx);
        a.cmp(ecx, L2SquaresUpTo);
        a.jbe(square);
        a.mov(edi, (uint)L2ResultGpa);
        a.mov(__qword_ptr[rdi], rax);
        a.vmmcall();
        a.hlt();
        a.Label(ref end);
    }

    /// <summary>
    /// L2's initial state in the VMCB's save area, as L1's loader leaves it: L1's own segments, descriptor tables,
    /// control registers and EFER (with SVME), interrupts off. L1 fills in the controls, RIP and RSP itself.
    /// </summary>
    private static unsafe void PrepareL2State(Cpu cpu, ulong l2Rip)
    {
        byte* page = cpu.Phys.RamPointer(Vmcb, 4096);
        if (page == null)
        {
            throw new Emulator.Core.Loaders.LoaderException("the built-in guest's VMCB is not in guest RAM");
        }

        new Span<byte>(page, 4096).Clear();
        var v = new VmcbView(page);
        v.SetGuestStateLike(cpu, l2Rip, L2Stack);
    }
}
