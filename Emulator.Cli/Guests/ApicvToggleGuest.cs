using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Svm.Run;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// The guest of <c>emu bench apicv-toggle</c>: an APIC-heavy SMP xAPIC guest that makes L0 inhibit and un-inhibit
/// APICv once per iteration with a real trigger, so both toggle designs run exactly the same work.
/// <para>
/// vCPU 0 repeats: APIC traffic (TPR writes and reads), I/O APIC register reads (MMIO, cached by L0 as MMIO SPTEs),
/// a sweep over a working set of RAM, a fixed IPI to every other vCPU; then it arms the PIT for a one-shot IRQ 0,
/// which reaches it as ExtINT through the 8259 while IF is clear, and polls the PIC's IRR until it is pending: L0 must
/// ask for an interrupt window, which inhibits APICv (IRQWIN). Still behind IF it reads TPR (emulated while
/// inhibited), then STI opens the window (L0 un-inhibits) and the PIC handler runs. The other vCPUs spin reading TPR
/// with interrupts on and count the IPIs they get. At the end vCPU 0 waits until every vCPU counted every IPI (a lost
/// IPI leaves the run at its cycle limit) and writes status 0 to the isa-debug-exit port.
/// </para>
/// </summary>
internal static class ApicvToggleGuest
{
    public const ulong Code = 0x100000;
    public const ulong MemorySize = 128UL << 20;
    public static readonly string[] CpuFeatures = ["-x2apic", "-svm"];

    private const ulong Data = 0x200000;
    private const ulong Idt = 0x10000, IdtrAt = 0x11000;
    private const byte SipiVector = 0x08;
    private const ulong ApStacks = 0x21000; // vCPU n's stack top: ApStacks + n·0x1000 (below the boot page tables)
    private const ulong WorkingSet = 0x1000000;
    private const int WorkingSetPages = 128, WorkingSetStride = 0x40000; // 32 MiB: sixteen 2 MiB regions, eight pages each
    private const uint Xapic = 0xFEE0_0000, IoApic = 0xFEC0_0000;
    private const int PicVector = 0x20, IpiVector = 0x40;
    private const int Ready = 0x40, PicCount = 0x10, IpiCounts = 0x400;

    /// <summary>Writes the guest, its AP trampoline and the vCPU 0 entry state for <paramref name="iterations"/> iterations.</summary>
    public static void Install(Machine machine, int iterations)
    {
        int cpus = machine.Cpus.Count;
        var a = new Assembler(64);
        var picHandler = a.CreateLabel();
        var ipiHandler = a.CreateLabel();
        var ap = a.CreateLabel();
        var loop = a.CreateLabel();

        // vCPU 0: IDT, APIC on with LINT0 as ExtINT (virtual wire), the 8259 at vector 0x20 with only IRQ 0.
        SetGate(a, PicVector, picHandler);
        SetGate(a, IpiVector, ipiHandler);
        a.mov(__word_ptr[IdtrAt], 0xFFF);
        a.mov(__qword_ptr[IdtrAt + 2], (int)Idt);
        a.lidt(__[IdtrAt]);
        a.mov(ebx, Xapic);
        a.mov(__dword_ptr[rbx + ApicReg.Svr], 0x1FF);
        a.mov(__dword_ptr[rbx + ApicReg.LvtLint0], 0x700);
        foreach (var (port, value) in new (int, int)[] { (0x20, 0x11), (0x21, PicVector), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE), (0xA1, 0xFF) })
        {
            a.mov(al, (byte)value);
            a.@out((byte)port, al);
        }

        for (int id = 1; id < cpus; id++)
        {
            SendIpi(a, id, 0x4500); // INIT
            SendIpi(a, id, 0x4600 | SipiVector); // Startup
            var wait = a.CreateLabel();
            a.Label(ref wait);
            a.pause();
            a.cmp(__qword_ptr[Data + Ready + ((ulong)id * 8)], 0);
            a.je(wait);
        }

        a.mov(r15d, iterations);
        a.Label(ref loop);

        // APICv active: TPR traffic, I/O APIC reads, the working set, an IPI to every other vCPU.
        a.mov(ebx, Xapic);
        for (int i = 0; i < 8; i++)
        {
            a.mov(__dword_ptr[rbx + ApicReg.Tpr], 0x10);
            a.mov(eax, __dword_ptr[rbx + ApicReg.Tpr]);
            a.mov(__dword_ptr[rbx + ApicReg.Tpr], 0);
        }

        a.mov(ecx, IoApic);
        for (int i = 0; i < 4; i++)
        {
            a.mov(__dword_ptr[rcx], 1); // IOREGSEL: version
            a.mov(eax, __dword_ptr[rcx + 0x10]);
        }

        var touch = a.CreateLabel();
        a.mov(rsi, WorkingSet);
        a.mov(ecx, WorkingSetPages);
        a.Label(ref touch);
        a.add(__qword_ptr[rsi], 1);
        a.add(rsi, WorkingSetStride);
        a.dec(ecx);
        a.jnz(touch);

        for (int id = 1; id < cpus; id++)
        {
            SendIpi(a, id, IpiVector);
        }

        // IRQ 0 in one PIT tick or two (mode 0), pending behind IF: L0 asks for a window and inhibits APICv.
        a.mov(al, 0x30);
        a.@out(0x43, al);
        a.mov(al, 2);
        a.@out(0x40, al);
        a.mov(al, 0);
        a.@out(0x40, al);
        var poll = a.CreateLabel();
        a.Label(ref poll);
        a.mov(al, 0x0A); // OCW3: read IRR
        a.@out(0x20, al);
        a.@in(al, 0x20);
        a.test(al, 1);
        a.jz(poll);

        // Inhibited: TPR reads are emulated; then the window opens and APICv is active again.
        a.mov(ebx, Xapic);
        for (int i = 0; i < 4; i++)
        {
            a.mov(eax, __dword_ptr[rbx + ApicReg.Tpr]);
        }

        a.sti();
        a.nop();
        a.cli();
        a.dec(r15d);
        a.jnz(loop);

        // Every other vCPU must have counted every IPI.
        for (int id = 1; id < cpus; id++)
        {
            var wait = a.CreateLabel();
            a.Label(ref wait);
            a.pause();
            a.cmp(__dword_ptr[Data + IpiCounts + ((ulong)id * 8)], iterations);
            a.jne(wait);
        }

        a.mov(edx, 0xF4);
        a.xor(eax, eax);
        a.@out(dx, eax);
        a.hlt();

        // The PIC's IRQ 0: count, acknowledge.
        a.Label(ref picHandler);
        a.push(rax);
        a.add(__qword_ptr[Data + PicCount], 1);
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.pop(rax);
        a.iretq();

        // A fixed IPI: count it for this vCPU (its APIC ID), EOI.
        a.Label(ref ipiHandler);
        a.push(rax);
        a.push(rbx);
        a.mov(ebx, Xapic);
        a.mov(eax, __dword_ptr[rbx + ApicReg.Id]);
        a.shr(eax, 24);
        a.add(__qword_ptr[rax * 8 + (long)(Data + IpiCounts)], 1);
        a.mov(__dword_ptr[rbx + ApicReg.Eoi], 0);
        a.pop(rbx);
        a.pop(rax);
        a.iretq();

        // Other vCPUs, in long mode from the trampoline: own stack, the IDT, APIC on, ready; then spin on TPR reads.
        a.Label(ref ap);
        a.mov(eax, BootState.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(eax, 1);
        a.cpuid();
        a.shr(ebx, 24);
        a.mov(esi, ebx);
        a.mov(eax, ebx);
        a.shl(eax, 12);
        a.add(eax, (int)ApStacks);
        a.mov(esp, eax);
        a.lidt(__[IdtrAt]);
        a.mov(ebx, Xapic);
        a.mov(__dword_ptr[rbx + ApicReg.Svr], 0x1FF);
        a.mov(__qword_ptr[rsi * 8 + (long)(Data + Ready)], 1);
        a.sti();
        var spin = a.CreateLabel();
        a.Label(ref spin);
        a.pause();
        a.mov(eax, __dword_ptr[rbx + ApicReg.Tpr]);
        a.jmp(spin);

        var code = Assemble(a, Code, ap, out ulong apEntry);
        Load(machine, Code, code);
        if (!ApTrampoline.Install(machine.Memory, SipiVector, apEntry))
        {
            throw new InvalidOperationException("the apicv-toggle guest's AP trampoline does not fit in RAM");
        }

        BootState.EnterLong64(machine.Cpu, Code, ImageLoader.StackTop(machine.Memory));
    }

    private static byte[] Assemble(Assembler a, ulong ip, Label ap, out ulong apEntry)
    {
        using var ms = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(ms), ip, BlockEncoderOptions.ReturnNewInstructionOffsets);
        apEntry = result.GetLabelRIP(ap);
        return ms.ToArray();
    }

    private static void Load(Machine machine, ulong gpa, byte[] bytes)
    {
        if (!machine.Memory.TryLoad(gpa, bytes))
        {
            throw new InvalidOperationException($"the apicv-toggle guest does not fit at {gpa:x}");
        }
    }

    /// <summary>The 64-bit interrupt gate for <paramref name="vector"/> (clobbers RAX, RDI).</summary>
    private static void SetGate(Assembler a, int vector, Label handler)
    {
        a.lea(rax, __[handler]);
        a.mov(rdi, Idt + ((ulong)vector * 16));
        a.mov(__word_ptr[rdi], ax);
        a.mov(__word_ptr[rdi + 2], BootState.Code64Selector);
        a.mov(__word_ptr[rdi + 4], 0x8E00);
        a.shr(rax, 16);
        a.mov(__word_ptr[rdi + 6], ax);
        a.shr(rax, 16);
        a.mov(__dword_ptr[rdi + 8], eax);
        a.mov(__dword_ptr[rdi + 12], 0);
    }

    /// <summary>ICR high (destination APIC ID), then ICR low (clobbers RBX).</summary>
    private static void SendIpi(Assembler a, int destination, int icrLow)
    {
        a.mov(ebx, Xapic);
        a.mov(__dword_ptr[rbx + ApicReg.IcrHigh], destination << 24);
        a.mov(__dword_ptr[rbx + ApicReg.IcrLow], icrLow);
    }
}
