using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// <c>builtin:nested-apic</c>: an L2 reads the local APIC page's address, and sees L1's APIC. L1 (64-bit, CPL 0)
/// enables its xAPIC (SVR), writes TPR, reads its own APIC ID, version and TPR, and runs one L2 twice: first under
/// L1's nested paging, whose tables map L2's 0xFEE00000 to L1's 0xFEE00000 (and L2's first GiB to L1's), then
/// without nested paging (L2 on L1's addresses) after writing another TPR. L2 reads ID, version and TPR at
/// 0xFEE00000 into R8-R10 (GPRs other than RAX and RSP stay as L2 left them across the #VMEXIT, APM vol. 2
/// §15.5.1) and VMMCALLs. L1 prints what L2 saw and checks it against its own reads: L0 must emulate L2's accesses
/// against L1's APIC (an L2 access never reaches the page L0 maps for L1's AVIC; docs/avic.md "L2 and the
/// APIC-access page"). It ends through the Bochs shutdown port (exit status 0) or, when L2 saw something else or
/// exited for another reason, through isa-debug-exit with 1 (exit status 3).
/// </summary>
public static class NestedApicGuest
{
    public const ulong L1Code = 0x100000;
    public const ulong L2Stack = 0x1F0000;
    public const ulong Vmcb = 0x120000;

    // L1's nested page tables: PML4, PDPT, the PD of L2's first GiB (2 MiB pages), the PD of its fourth GiB and the
    // one page table under it that maps the APIC page.
    public const ulong NptPml4 = 0x130000, NptPdpt = 0x131000, NptPd0 = 0x132000, NptPd3 = 0x133000, NptPt = 0x134000;

    /// <summary>Guest RAM the guest needs (code, VMCB and tables in the second MiB).</summary>
    public const ulong MemorySize = 16UL << 20;

    /// <summary>The machine it needs unless a case says otherwise: SVM with nested paging; no x2APIC, so 5.15's AVIC serves L1.</summary>
    public static readonly IReadOnlyList<string> CpuFeatures = ["+svm", "+npt", "-x2apic"];

    /// <summary>The TPR L1 writes before each run of L2 (with nested paging, then without).</summary>
    public const byte TprWithNpt = 0x20, TprWithoutNpt = 0x30;

    public const string Prefix = "nested-apic: ";
    public const string Done = "nested-apic: done";

    private const uint ApicBase = 0xFEE0_0000;
    private const ulong Table = 0x27, Leaf4K = 0x67, Leaf2M = 0xE7;

    /// <summary>The line L1 prints after one run of L2 (<paramref name="npt"/>: under its nested paging).</summary>
    public static string Line(bool npt, uint id, uint version, uint tpr, uint l1Tpr) =>
        $"{Prefix}{(npt ? "with NPT" : "without NPT")}: L2 read APIC ID 0x{id:x8} version 0x{version:x8} TPR 0x{tpr:x8} at 0x{ApicBase:x8}; L1's TPR 0x{l1Tpr:x8}";

    /// <summary>Writes the guest and its nested tables into guest RAM, prepares L2's state in the VMCB and enters L1 in long mode.</summary>
    public static void Install(Cpu cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        if (cpu.Phys.RamSize < MemorySize)
        {
            throw new LoaderException($"builtin:nested-apic needs at least {MemorySize >> 20} MiB of guest RAM");
        }

        var a = new Assembler(64);
        var text = new List<(Label Label, string Text)>();
        var puts = a.CreateLabel();
        var puthex = a.CreateLabel();
        var l2 = a.CreateLabel();
        var fail = a.CreateLabel();
        var noNpt = a.CreateLabel();
        var end = a.CreateLabel();

        void Print(string s)
        {
            var label = a.CreateLabel();
            text.Add((label, s));
            a.lea(rsi, __[label]);
            a.call(puts);
        }

        // COM1: 115200 baud (divisor 1), 8N1, FIFOs on, DTR|RTS|OUT2.
        foreach (var (port, value) in new (ushort, byte)[] { (0x3F9, 0), (0x3FB, 0x80), (0x3F8, 1), (0x3F9, 0), (0x3FB, 3), (0x3FA, 0xC7), (0x3FC, 0x0B) })
        {
            a.mov(edx, port);
            a.mov(al, value);
            a.@out(dx, al);
        }

        // SVM in CPUID (Fn8000_0001 ECX bit 2), or nothing to show.
        a.mov(eax, 0x8000_0001);
        a.cpuid();
        a.bt(ecx, 2);
        a.jc(end);
        Print(Prefix + "skipped (no SVM in CPUID)\n");
        a.jmp(fail);
        a.Label(ref end);

        // L1's APIC on, TPR written, ID and version read for the comparison (R12 = ID, R13 = version).
        a.mov(ebx, ApicBase);
        a.mov(__dword_ptr[rbx + ApicReg.Svr], 0x1FF);
        a.mov(__dword_ptr[rbx + ApicReg.Tpr], TprWithNpt);
        a.mov(r12d, __dword_ptr[rbx + ApicReg.Id]);
        a.mov(r13d, __dword_ptr[rbx + ApicReg.Version]);

        a.mov(ecx, 0xC000_0080);
        a.rdmsr();
        a.bts(eax, 12); // EFER.SVME
        a.wrmsr();

        // Nested paging (Fn8000_000A EDX bit 0) for the first run; without it only the second.
        end = a.CreateLabel();
        a.mov(eax, 0x8000_000A);
        a.cpuid();
        a.bt(edx, 0);
        a.jc(end);
        Print(Prefix + "with NPT: skipped (no nested paging in CPUID)\n");
        a.mov(ebx, ApicBase);
        a.jmp(noNpt);
        a.Label(ref end);
        EmitRun(a, npt: true, TprWithNpt, l2, fail, puthex, Print);

        a.mov(ebx, ApicBase);
        a.Label(ref noNpt);
        a.mov(__dword_ptr[rbx + ApicReg.Tpr], TprWithoutNpt);
        EmitRun(a, npt: false, TprWithoutNpt, l2, fail, puthex, Print);

        Print(Done + "\n");

        var shutdown = a.CreateLabel();
        GuestImage.EmitBochsShutdown(a, shutdown);

        // isa-debug-exit with 1: exit status 3.
        a.Label(ref fail);
        a.mov(edx, 0xF4);
        a.mov(eax, 1);
        a.@out(dx, eax);
        var stop = a.CreateLabel();
        a.Label(ref stop);
        a.hlt();
        a.jmp(stop);

        // L2: ID, version and TPR of the APIC page's address, then back to L1.
        a.Label(ref l2);
        a.mov(ebx, ApicBase);
        a.mov(r8d, __dword_ptr[rbx + ApicReg.Id]);
        a.mov(r9d, __dword_ptr[rbx + ApicReg.Version]);
        a.mov(r10d, __dword_ptr[rbx + ApicReg.Tpr]);
        a.vmmcall();
        a.hlt();

        EmitPrinting(a, puts, puthex);
        GuestImage.Text(a, ref shutdown, "Shutdown");
        for (int i = 0; i < text.Count; i++)
        {
            var label = text[i].Label;
            GuestImage.Text(a, ref label, text[i].Text);
        }

        byte[] code = GuestImage.Assemble(a, L1Code, out var result);
        if (!cpu.Phys.TryLoad(L1Code, code))
        {
            throw new LoaderException("guest RAM is too small for builtin:nested-apic");
        }

        WriteNestedTables(cpu);
        BootState.EnterLong64(cpu, L1Code, ImageLoader.StackTop(cpu.Phys));
        WriteVmcb(cpu, result.GetLabelRIP(l2));
    }

    /// <summary>
    /// One run of L2: nested paging on or off (a new ASID each, so no translation of one run serves the other), RIP
    /// and RSP at L2's start, VMRUN; then the exit code must be VMMCALL, the line is printed, and ID and version must
    /// be L1's and TPR the value L1 wrote.
    /// </summary>
    private static void EmitRun(Assembler a, bool npt, byte tpr, Label l2, Label fail, Label puthex, Action<string> print)
    {
        var exitOk = a.CreateLabel();
        var seen = a.CreateLabel();
        a.mov(edi, (uint)Vmcb);
        a.mov(__qword_ptr[rdi + VmcbOffset.NestedCtl], npt ? 1 : 0);
        a.mov(__dword_ptr[rdi + VmcbOffset.Asid], npt ? 1 : 2);
        a.lea(rax, __[l2]);
        a.mov(__qword_ptr[rdi + VmcbOffset.Rip], rax);
        a.mov(__qword_ptr[rdi + VmcbOffset.Rsp], (int)L2Stack);
        a.mov(r8d, -1);
        a.mov(r9d, -1);
        a.mov(r10d, -1);
        a.mov(rax, rdi);
        a.vmrun();
        a.stgi();
        a.cmp(__qword_ptr[rax + VmcbOffset.ExitCode], (int)SvmExit.Vmmcall);
        a.je(exitOk);
        print(Prefix + (npt ? "with NPT" : "without NPT") + ": FAILED (L2 exited for another reason than VMMCALL)\n");
        a.jmp(fail);
        a.Label(ref exitOk);

        // The line (puthex prints R15's low 32 bits; R8-R10 survive the printing).
        print(Prefix + (npt ? "with NPT" : "without NPT") + ": L2 read APIC ID 0x");
        a.mov(r15d, r8d);
        a.call(puthex);
        print(" version 0x");
        a.mov(r15d, r9d);
        a.call(puthex);
        print(" TPR 0x");
        a.mov(r15d, r10d);
        a.call(puthex);
        print($" at 0x{ApicBase:x8}; L1's TPR 0x");
        a.mov(r15d, tpr);
        a.call(puthex);
        print("\n");

        a.cmp(r8d, r12d);
        a.jne(seen);
        a.cmp(r9d, r13d);
        a.jne(seen);
        a.cmp(r10d, tpr);
        var good = a.CreateLabel();
        a.je(good);
        a.Label(ref seen);
        print(Prefix + (npt ? "with NPT" : "without NPT") + ": FAILED (L2 did not see L1's APIC)\n");
        a.jmp(fail);
        a.Label(ref good);
    }

    /// <summary><c>puts</c> prints the NUL-terminated string at RSI on COM1; <c>puthex</c> prints R15D as 8 hex digits. Both clobber RAX, RCX, RDX, RSI.</summary>
    private static void EmitPrinting(Assembler a, Label puts, Label puthex)
    {
        var putc = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref puts);
        a.mov(al, __byte_ptr[rsi]);
        a.test(al, al);
        a.jz(done);
        a.call(putc);
        a.inc(rsi);
        a.jmp(puts);
        a.Label(ref done);
        a.ret();

        // putc: wait for the transmitter holding register to be empty (LSR bit 5), then write AL.
        var wait = a.CreateLabel();
        a.Label(ref putc);
        a.mov(ecx, eax);
        a.mov(edx, 0x3FD);
        a.Label(ref wait);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        a.mov(edx, 0x3F8);
        a.mov(eax, ecx);
        a.@out(dx, al);
        a.ret();

        var digit = a.CreateLabel();
        var low = a.CreateLabel();
        a.Label(ref puthex);
        a.mov(esi, 8);
        a.Label(ref digit);
        a.rol(r15d, 4);
        a.mov(eax, r15d);
        a.and(eax, 0xF);
        a.cmp(al, 10);
        a.jb(low);
        a.add(al, (byte)('a' - '0' - 10));
        a.Label(ref low);
        a.add(al, (byte)'0');
        a.call(putc);
        a.dec(esi);
        a.jnz(digit);
        a.ret();
    }

    /// <summary>
    /// L1's nested tables: L2's first GiB to L1's with 2 MiB pages (code, stack, L1's page tables), and L2's
    /// 0xFEE00000 to L1's 0xFEE00000 with one 4 KiB page; nothing else.
    /// </summary>
    private static void WriteNestedTables(Cpu cpu)
    {
        var page = new byte[4096];
        void Put(ulong at)
        {
            cpu.Phys.TryLoad(at, page);
            Array.Clear(page);
        }

        void Entry(int index, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(index * 8), value);

        Entry(0, NptPdpt | Table);
        Put(NptPml4);
        Entry(0, NptPd0 | Table);
        Entry((int)(ApicBase >> 30), NptPd3 | Table);
        Put(NptPdpt);
        for (int i = 0; i < 512; i++)
        {
            Entry(i, ((ulong)i << 21) | Leaf2M);
        }

        Put(NptPd0);
        Entry((int)((ApicBase >> 21) & 511), NptPt | Table);
        Put(NptPd3);
        Entry((int)((ApicBase >> 12) & 511), ApicBase | Leaf4K);
        Put(NptPt);
    }

    /// <summary>vmcb12: VMRUN and VMMCALL intercepted, nested CR3 and guest PAT, L2 in L1's long mode and paging. L1 sets the rest per run.</summary>
    private static unsafe void WriteVmcb(Cpu cpu, ulong l2Rip)
    {
        byte* page = cpu.Phys.RamPointer(Vmcb, 4096);
        if (page == null)
        {
            throw new LoaderException("the VMCB of builtin:nested-apic is not in guest RAM");
        }

        new Span<byte>(page, 4096).Clear();
        var v = new VmcbView(page);
        v.U32(VmcbOffset.InterceptMisc2) = (1u << (SvmIntercept.Vmrun - 32)) | (1u << (SvmIntercept.Vmmcall - 32));
        v.U64(VmcbOffset.NestedCr3) = NptPml4;
        v.U64(VmcbOffset.GPat) = 0x0007_0406_0007_0406;
        v.SetGuestStateLike(cpu, l2Rip, L2Stack);
    }
}
