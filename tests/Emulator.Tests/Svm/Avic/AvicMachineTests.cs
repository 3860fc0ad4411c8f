using Emulator.Core.Loaders;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Avic;

/// <summary>
/// AVIC in a whole machine: an xAPIC guest without SVM in its CPUID boots with APICv active, so L0 turns each vCPU's
/// AVIC unit on and L1's APIC accesses are served by it; an inhibit mid-run sends them back to L0's emulation (no
/// MMIO SPTE cached) until it is lifted.
/// </summary>
public sealed class AvicMachineTests
{
    private static Machine Boot(byte[] image, params string[] cpu)
    {
        var m = new Machine(new MachineOptions { MemorySize = 64 << 20, CpuFeatures = cpu, ConsoleOutput = Stream.Null });
        m.Load(image, new BootOptions { Format = ImageFormat.Flat, LoadAddress = Emulator.Tests.Core.Devices.Apic.ApicGuest.Code, Mode = EntryMode.Long });
        return m;
    }

    /// <summary>
    /// SVR on, TPR 0x20 and read back, a self-IPI of vector 0x40 taken with IF set (its handler counts and EOIs), then
    /// the debug exit. Data + 0: TPR read; Data + 8: interrupts handled.
    /// </summary>
    private static byte[] ApicTraffic() => Assemble(
        a =>
        {
            var handler = a.CreateLabel();
            var start = a.CreateLabel();
            a.jmp(start);
            a.Label(ref handler);
            a.inc(__qword_ptr[Data + 8]);
            a.mov(__dword_ptr[rbx + 0xB0], 0);
            a.iretq();
            a.Label(ref start);
            LoadIdt(a);
            SetGate(a, 0x40, handler);
            a.mov(ebx, XapicBase);
            ApicWrite(a, 0xF0, 0x1FF);
            ApicWrite(a, 0x80, 0x20);
            a.mov(eax, __dword_ptr[rbx + 0x80]);
            a.mov(__qword_ptr[Data], rax);
            a.sti();
            ApicWrite(a, 0x300, 0x4_0040); // fixed, self shorthand, vector 0x40
            a.nop();
            a.nop();
            a.cli();
            Exit(a, 0);
        },
        out _);

    [Test]
    public void ApicTrafficWithAvicActiveIsServedByTheUnitWithoutEmulation()
    {
        using var m = Boot(ApicTraffic(), "-x2apic", "-svm");
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data, 8), Is.EqualTo(0x20UL), "TPR read back");
        Assert.That(m.Memory.Read(Data + 8, 8), Is.EqualTo(1UL), "the self-IPI was taken once");
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.Zero, "no APIC access was emulated");
        Assert.That(Stat(m, "avic.accelerated.read"), Is.EqualTo(1UL), "the TPR read");
        Assert.That(Stat(m, "avic.accelerated.write"), Is.EqualTo(2UL), "the TPR write and the EOI");
        Assert.That(Stat(m, "avic.trap"), Is.EqualTo(1UL), "the SVR write");
        Assert.That(Stat(m, "avic.ipi"), Is.EqualTo(1UL), "the self-IPI");
        Assert.That(Stat(m, "svm.exits.l1.avic_noaccel"), Is.EqualTo(1UL));
        Assert.That(m.Stats().Any(s => s.Name == "svm.exits.l1.intr"), Is.False, "AVIC delivered the interrupt: no INTR exit");
    }

    [Test]
    public void WithoutAvicTheSameTrafficIsEmulatedWithTheSameResultAndCostsMore()
    {
        using var avic = Boot(ApicTraffic(), "-x2apic", "-svm");
        using var emulated = Boot(ApicTraffic(), "-x2apic", "-svm", "-avic");
        avic.Run(new RunLimits { MaxCycles = 50_000_000 });
        var r = emulated.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(emulated.Memory.Read(Data, 8), Is.EqualTo(0x20UL));
        Assert.That(emulated.Memory.Read(Data + 8, 8), Is.EqualTo(1UL));
        Assert.That(Stat(emulated, "apicv.active"), Is.Zero);
        Assert.That(Stat(emulated, "apicv.inhibit.disable"), Is.EqualTo(1UL), "raised at creation");
        Assert.That(Stat(avic, "apicv.inhibit.disable"), Is.Zero, "never raised with AVIC on");
        Assert.That(Stat(emulated, "mmu.apic_emulations"), Is.EqualTo(5UL), "SVR, TPR write, TPR read, ICR and EOI");
        Assert.That(Stat(emulated, "avic.accelerated.read") + Stat(emulated, "avic.accelerated.write"), Is.Zero);
        Assert.That(emulated.Cpu.Cycles, Is.GreaterThan(avic.Cpu.Cycles));
    }

    /// <summary>
    /// The PIT's IRQ 0 (through the PIC and LINT0 as ExtINT, vector 8) arrives while IF is clear and the guest reads
    /// TPR in a loop; then STI opens the window, the handler sets Data, masks the PIC and acknowledges, and one more TPR read follows.
    /// </summary>
    private static byte[] ExtIntBehindIf() => Assemble(
        a =>
        {
            var handler = a.CreateLabel();
            var start = a.CreateLabel();
            var loop = a.CreateLabel();
            a.jmp(start);
            a.Label(ref handler);
            a.mov(__qword_ptr[Data], 1);
            a.mov(al, 0xFF);
            a.@out(0x21, al); // no more IRQs: masked before the EOI, so no tick is left pending behind IF
            a.mov(al, 0x20);
            a.@out(0x20, al); // PIC EOI
            a.iretq();
            a.Label(ref start);
            a.mov(__word_ptr[IdtrAt], 0xFFF);
            a.mov(__qword_ptr[IdtrAt + 2], (int)Idt);
            a.lidt(__[IdtrAt]);
            SetGate(a, 8, handler);
            a.mov(al, 0xFE);
            a.@out(0x21, al); // only IRQ 0
            a.mov(al, 0x34);
            a.@out(0x43, al); // PIT channel 0, mode 2
            a.mov(al, 10);
            a.@out(0x40, al);
            a.mov(al, 0);
            a.@out(0x40, al);
            a.mov(ebx, XapicBase);
            a.mov(ecx, 20_000);
            a.Label(ref loop);
            a.mov(eax, __dword_ptr[rbx + 0x80]);
            a.dec(ecx);
            a.jnz(loop);
            a.sti();
            a.nop();
            a.cli();
            a.mov(eax, __dword_ptr[rbx + 0x80]);
            Exit(a, 0);
        },
        out _);

    [Test]
    public void AnExtIntBehindIfMakesL0AskForAWindowWhichInhibitsApicvUntilItOpens()
    {
        using var m = Boot(ExtIntBehindIf(), "-x2apic", "-svm");
        var r = m.Run(new RunLimits { MaxCycles = 1_000_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data, 8), Is.EqualTo(1UL), "the PIC interrupt was taken once IF opened");

        // Inhibited by the window request (IRQWIN), active again when the window opened.
        Assert.That(Stat(m, "apicv.transitions"), Is.EqualTo(2UL));
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "apicv.inhibit_reasons"), Is.Zero);
        Assert.That(Stat(m, "apicv.inhibit.irqwin"), Is.EqualTo(1UL), "raised once");
        Assert.That(Stat(m, "apicv.inhibit_changes"), Is.EqualTo(2UL), "IRQWIN set, then cleared");
        Assert.That(Stat(m, "apicv.inhibit.nested") + Stat(m, "apicv.inhibit.x2apic"), Is.Zero, "neither in the guest's CPUID");
        Assert.That(Stat(m, "avic.accelerated"), Is.EqualTo(Stat(m, "avic.accelerated.read") + Stat(m, "avic.accelerated.write")));
        Assert.That(Stat(m, "avic.accelerated.read"), Is.GreaterThan(1UL), "reads before the IRQ and the one after the window");
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.GreaterThan(0UL), "reads while IRQWIN held APICv off");
        Assert.That(Stat(m, "avic.accelerated.read") + Stat(m, "mmu.apic_emulations"), Is.EqualTo(20_001UL), "every read, one way or the other");
    }

    /// <summary>An endless loop reading TPR: two instructions per read.</summary>
    private static byte[] TprLoop() => Assemble(
        a =>
        {
            var loop = a.CreateLabel();
            a.mov(ebx, XapicBase);
            a.Label(ref loop);
            a.mov(eax, __dword_ptr[rbx + 0x80]);
            a.jmp(loop);
        },
        out _);

    [Test]
    public void AnInhibitMidRunSendsAccessesToEmulationWithoutCachingAnMmioSpteUntilItIsLifted()
    {
        using var m = Boot(TprLoop(), "-x2apic", "-svm");
        m.Run(new RunLimits { MaxInstructions = 1 + (2 * 10) });
        Assert.That(Stat(m, "avic.accelerated.read"), Is.EqualTo(10UL));
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.Zero);
        ulong mmioSptes = Stat(m, "mmu.mmio_spte.created");

        // An IRQ window request inhibits APICv: the vCPU is kicked and the APIC-access SPTE zapped.
        m.Apicv.SetInhibit(ApicvInhibitReason.IrqWindow, true);
        m.Run(new RunLimits { MaxInstructions = 1 + (2 * 20) });
        Assert.That(Stat(m, "apicv.active"), Is.Zero);
        Assert.That(Stat(m, "avic.accelerated.read"), Is.EqualTo(10UL), "no access reaches the unit while inhibited");
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.EqualTo(10UL), "each read goes straight to emulation");
        Assert.That(Stat(m, "mmu.mmio_spte.created"), Is.EqualTo(mmioSptes), "and none is cached as MMIO");

        m.Apicv.SetInhibit(ApicvInhibitReason.IrqWindow, false);
        m.Run(new RunLimits { MaxInstructions = 1 + (2 * 30) });
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "avic.accelerated.read"), Is.EqualTo(20UL), "accelerated again");
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.EqualTo(10UL));
        Assert.That(Stat(m, "apicv.transitions"), Is.EqualTo(2UL), "inhibited, active again");
    }
}
