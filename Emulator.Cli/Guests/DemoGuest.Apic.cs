using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// The demo's APIC parts. With APICv active (the demo machine: no x2APIC in CPUID, 5.19's per-vCPU NESTED) L0 has
/// turned L1's AVIC on, so these accesses go to the AVIC unit (docs/avic.md): TPR reads and writes, the edge EOIs and
/// the self-IPI are accelerated; SVR, the LVTs and the timer's initial count and divide are trapped (stored, then
/// AVIC_NOACCEL lets L0 act on them). Under another machine (<c>--cpu +x2apic</c>, <c>--apicv-nested vm</c>) the same
/// accesses are emulated by L0, with the same results.
/// </summary>
public static partial class DemoGuest
{
    private const uint XapicBase = 0xFEE0_0000;

    // Local APIC register offsets (Intel SDM vol. 3 §11.4.1, AMD APM vol. 2 §16.3).
    private const int Tpr = 0x80, Eoi = 0xB0, Svr = 0xF0, IcrLow = 0x300, LvtTimer = 0x320, Lint0 = 0x350, InitialCount = 0x380, Divide = 0x3E0;

    /// <summary>Vectors: the PIC's IRQ 0 (ICW2 base), the self-IPI, the APIC timer.</summary>
    public const int Irq0Vector = 0x20, IpiVector = 0x40, TimerVector = 0x41;

    /// <summary>Counters the handlers keep (self-IPIs, timer interrupts, IRQ 0s), after the vendor string.</summary>
    private const ulong Counts = DataBase + 0x40, IpiCount = Counts, TimerCount = Counts + 8, Irq0Count = Counts + 0x10;

    /// <summary>TPR reads with IF clear while the PIT's IRQ 0 comes in, and reads after it was taken.</summary>
    public const int InhibitReads = 2_000, ReadsAfter = 16;

    /// <summary>PIT channel 0 reload value (1.193 MHz input): the first tick comes early in the read loop.</summary>
    private const int PitCount = 10;

    public const string ApicLine = "apic: TPR 0x20 read back, self-IPI and one-shot timer taken and EOI'd";
    public const string Irq0Line = "irq0: the PIT's tick (8259, ExtINT) waited behind IF=0, taken after STI";

    /// <summary>
    /// SVR on, TPR 0x20 written and read back, a self-IPI (fixed, vector 0x40) and a one-shot timer (vector 0x41, divide
    /// by 1) each waited for with HLT and EOI'd by its handler, TPR back to 0. R12 keeps the APIC base for later parts.
    /// </summary>
    private static void EmitApicTraffic(Assembler a, DemoLabels text)
    {
        var ipiWait = a.CreateLabel();
        var ipiDone = a.CreateLabel();
        var timerWait = a.CreateLabel();
        var timerDone = a.CreateLabel();
        var bad = a.CreateLabel();
        var end = a.CreateLabel();
        a.cli();
        a.mov(r12d, XapicBase);
        a.mov(__dword_ptr[r12 + Svr], 0x1FF);
        a.mov(__dword_ptr[r12 + Tpr], 0x20);
        a.mov(r13d, __dword_ptr[r12 + Tpr]);

        a.mov(__dword_ptr[r12 + IcrLow], 0x4_0000 | IpiVector); // fixed, edge, self shorthand
        a.Label(ref ipiWait);
        a.cmp(__qword_ptr[IpiCount], 0);
        a.jne(ipiDone);
        a.sti();
        a.hlt(); // STI's shadow covers HLT: an interrupt cannot slip in between
        a.cli();
        a.jmp(ipiWait);
        a.Label(ref ipiDone);

        a.mov(__dword_ptr[r12 + Divide], 0xB);
        a.mov(__dword_ptr[r12 + LvtTimer], TimerVector); // one-shot, not masked
        a.mov(__dword_ptr[r12 + InitialCount], 0x2000);
        a.Label(ref timerWait);
        a.cmp(__qword_ptr[TimerCount], 0);
        a.jne(timerDone);
        a.sti();
        a.hlt();
        a.cli();
        a.jmp(timerWait);
        a.Label(ref timerDone);
        a.mov(__dword_ptr[r12 + Tpr], 0);

        a.cmp(r13d, 0x20);
        a.jne(bad);
        text.Print(ApicLine + "\n");
        a.jmp(end);
        a.Label(ref bad);
        text.Print("apic: FAILED (TPR not read back)\n");
        a.Label(ref end);
    }

    /// <summary>
    /// The inhibit/uninhibit cycle from a real trigger: LINT0 as ExtINT (virtual wire), the 8259 with IRQ 0 at vector
    /// 0x20 and the PIT ticking, while L1 reads TPR with IF clear. The tick is an ExtINT, which AVIC cannot deliver, pending
    /// behind IF: L0 asks for an interrupt window and inhibits APICv (IRQWIN, 5.15's svm_enable_irq_window), so the reads
    /// after it are emulated; STI opens the window, L0 injects the interrupt and lifts the inhibit, and the last reads are
    /// accelerated again.
    /// </summary>
    private static void EmitInhibitCycle(Assembler a, DemoLabels text)
    {
        var loop = a.CreateLabel();
        var wait = a.CreateLabel();
        var taken = a.CreateLabel();
        var after = a.CreateLabel();
        a.mov(__dword_ptr[r12 + Lint0], 0x700); // ExtINT

        // 8259 master: ICW1 (edge, cascade, ICW4), ICW2 (vector base 0x20), ICW3 (slave on IRQ 2), ICW4 (8086 mode);
        // only IRQ 0 unmasked; the slave masked.
        Out(a, 0x20, 0x11);
        Out(a, 0x21, Irq0Vector);
        Out(a, 0x21, 0x04);
        Out(a, 0x21, 0x01);
        Out(a, 0x21, 0xFE);
        Out(a, 0xA1, 0xFF);

        // PIT channel 0, mode 2 (rate generator), lobyte/hibyte.
        Out(a, 0x43, 0x34);
        Out(a, 0x40, PitCount & 0xFF);
        Out(a, 0x40, PitCount >> 8);

        a.mov(ecx, InhibitReads);
        a.Label(ref loop);
        a.mov(eax, __dword_ptr[r12 + Tpr]);
        a.dec(ecx);
        a.jnz(loop);
        a.Label(ref wait);
        a.cmp(__qword_ptr[Irq0Count], 0);
        a.jne(taken);
        a.sti();
        a.hlt();
        a.cli();
        a.jmp(wait);
        a.Label(ref taken);

        // Channel 0 to mode 0 (one shot) so it stops ticking; IRQ 0 stays masked by the handler.
        Out(a, 0x43, 0x30);
        Out(a, 0x40, 0);
        Out(a, 0x40, 0);
        a.mov(ecx, ReadsAfter);
        a.Label(ref after);
        a.mov(eax, __dword_ptr[r12 + Tpr]);
        a.dec(ecx);
        a.jnz(after);
        text.Print(Irq0Line + "\n");
    }

    /// <summary>The interrupt handlers (self-IPI, timer: count and EOI; IRQ 0: count, mask the PIC, EOI the PIC), with their vectors.</summary>
    private static (int Vector, Label Label)[] EmitHandlers(Assembler a)
    {
        var ipi = a.CreateLabel();
        var timer = a.CreateLabel();
        var irq0 = a.CreateLabel();
        a.Label(ref ipi);
        a.inc(__qword_ptr[IpiCount]);
        ApicEoi(a);
        a.Label(ref timer);
        a.inc(__qword_ptr[TimerCount]);
        ApicEoi(a);
        a.Label(ref irq0);
        a.inc(__qword_ptr[Irq0Count]);
        a.push(rax);
        a.mov(al, 0xFF);
        a.@out(0x21, al);
        a.mov(al, 0x20);
        a.@out(0x20, al);
        a.pop(rax);
        a.iretq();
        return [(IpiVector, ipi), (TimerVector, timer), (Irq0Vector, irq0)];
    }

    /// <summary>EOI to the local APIC (an accelerated write under AVIC for these edge-triggered vectors), then IRETQ.</summary>
    private static void ApicEoi(Assembler a)
    {
        a.push(rax);
        a.mov(eax, XapicBase);
        a.mov(__dword_ptr[rax + Eoi], 0);
        a.pop(rax);
        a.iretq();
    }

    private static void Out(Assembler a, byte port, int value)
    {
        a.mov(al, (byte)value);
        a.@out(port, al);
    }
}
