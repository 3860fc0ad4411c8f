using Emulator.Core.Devices.Apic;
using Emulator.Core.Devices.Legacy;
using Emulator.Core.Timing;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Legacy;

/// <summary>
/// Guest flows through the 8254's channel 2 and the 8259 that kernels use: TSC calibration against channel 2
/// in mode 0 gated by port 0x61 (as Linux's PIT calibration does), the read-back command, special mask mode
/// letting a lower-priority IRQ interrupt a handler, and the PIC's INTA through an ExtINT IPI, including the
/// spurious IRQ 7 an INTA with nothing pending returns.
/// </summary>
public sealed class PicPitGuestTests
{
    // Data layout (offsets from ApicGuest.Data).
    private const int GatedCount = 0x00, Start = 0x08, End = 0x10, Status = 0x18, Polls = 0x20, IsrSeen = 0x28;

    private const int Ch2Count = 2386; // 2 ms of PIT ticks

    private static ulong Q(Machine m, int offset) => m.Memory.Read(Data + (ulong)offset, 8);

    /// <summary>The usual remap (master 0x20, slave 0x28, cascade on IR2, 8086 mode), then the masks.</summary>
    private static void InitPic(Assembler a, byte masterMask, byte slaveMask)
    {
        foreach (var (port, value) in new (byte, byte)[]
        {
            (0x20, 0x11), (0xA0, 0x11), (0x21, 0x20), (0xA1, 0x28), (0x21, 0x04), (0xA1, 0x02), (0x21, 0x01), (0xA1, 0x01),
            (0x21, masterMask), (0xA1, slaveMask),
        })
        {
            a.mov(al, value);
            a.@out(port, al);
        }
    }

    private static void Out(Assembler a, byte port, byte value)
    {
        a.mov(al, value);
        a.@out(port, al);
    }

    private static void StampInto(Assembler a, int offset)
    {
        Rdtsc64(a);
        a.mov(__qword_ptr[Data + (ulong)offset], rax);
    }

    /// <summary>
    /// Channel 2, mode 0, loaded with its gate low: it holds the count. Raising the gate through port 0x61
    /// starts it, and the guest polls port 0x61 bit 5 (OUT2) until the terminal count, stamping the TSC at
    /// both ends; then a read-back command latches channel 2's status.
    /// </summary>
    internal static byte[] Channel2Guest() => Assemble(
        a =>
        {
            LoadIdt(a);
            a.@in(al, 0x61);
            a.and(al, 0xFC); // gate low, speaker off
            a.@out(0x61, al);
            Out(a, 0x43, 0xB0); // channel 2, LSB then MSB, mode 0, binary
            Out(a, 0x42, Ch2Count & 0xFF);
            Out(a, 0x42, Ch2Count >> 8);

            // Gate low: the count holds while time passes.
            a.mov(ecx, 20_000);
            var idle = a.CreateLabel();
            a.Label(ref idle);
            a.dec(ecx);
            a.jnz(idle);
            Out(a, 0x43, 0x80); // latch channel 2
            a.@in(al, 0x42);
            a.movzx(ecx, al);
            a.@in(al, 0x42);
            a.movzx(eax, al);
            a.shl(eax, 8);
            a.or(eax, ecx);
            a.mov(__qword_ptr[Data + GatedCount], rax);

            // Gate high: count down, poll OUT2.
            a.@in(al, 0x61);
            a.or(al, 0x01);
            a.mov(bl, al);
            StampInto(a, Start);
            a.mov(al, bl);
            a.@out(0x61, al);
            a.xor(ecx, ecx);
            var poll = a.CreateLabel();
            a.Label(ref poll);
            a.inc(ecx);
            a.@in(al, 0x61);
            a.test(al, 0x20);
            a.jz(poll);
            StampInto(a, End);
            a.mov(__qword_ptr[Data + Polls], rcx);

            Out(a, 0x43, 0xE8); // read-back: status only, channel 2
            a.@in(al, 0x42);
            a.movzx(eax, al);
            a.mov(__qword_ptr[Data + Status], rax);
            Exit(a, 0);
        },
        out _);

    [Test]
    public void Channel2GatedByPort61TimesTheTscAsLinuxCalibrationDoes()
    {
        using var console = new MemoryStream();
        using var m = Boot(Channel2Guest(), 1, console);
        var r = m.Run(new RunLimits { MaxCycles = 100_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        ulong expected = GuestClock.ToCycles(Ch2Count, Pit8254.Frequency);
        ulong tick = GuestClock.ToCycles(1, Pit8254.Frequency);
        Assert.Multiple(() =>
        {
            Assert.That(Q(m, GatedCount), Is.EqualTo((ulong)Ch2Count), "gate low: mode 0 does not count");
            Assert.That(Q(m, End) - Q(m, Start), Is.InRange(expected - tick, expected + tick + 1_000), "OUT2 rises after the count, within a tick and one poll");
            Assert.That(Q(m, Polls), Is.GreaterThan(10UL), "the guest really polled");
            Assert.That(Q(m, Status), Is.EqualTo(0xB0UL), "read-back status: OUT high, count loaded, LSB/MSB, mode 0, binary");
        });
    }

    /// <summary>
    /// IRQ 1 (vector 0x21) is raised through pc-testdev; its handler optionally sets special mask mode (OCW3
    /// 0x68), masks IRQ 1 and raises IRQ 3 with interrupts enabled. With special mask mode, IRQ 3's handler runs
    /// inside IRQ 1's ("13b"); without it the in-service IRQ 1 blocks the lower priority until its EOI ("1b3").
    /// </summary>
    internal static byte[] SpecialMaskGuest(bool specialMask) => Assemble(
        a =>
        {
            var irq1 = a.CreateLabel();
            var irq3 = a.CreateLabel();
            SetGate(a, 0x21, irq1);
            SetGate(a, 0x23, irq3);
            LoadIdt(a);
            InitPic(a, 0xF5, 0xFF); // IRQ 1 and 3 open
            a.sti();
            a.mov(edx, 0x2001);
            a.mov(al, 1);
            a.@out(dx, al);
            a.nop();
            a.cli();
            PutChar(a, '\n');
            Exit(a, 0);

            a.Label(ref irq1);
            PutChar(a, '1');
            if (specialMask)
            {
                Out(a, 0x20, 0x68); // OCW3: set special mask mode
            }

            Out(a, 0x21, 0xF7); // mask IRQ 1 as well
            a.sti();
            a.mov(edx, 0x2003);
            a.mov(al, 1);
            a.@out(dx, al);
            a.nop();
            PutChar(a, 'b');
            a.cli();
            if (specialMask)
            {
                Out(a, 0x20, 0x48); // OCW3: reset special mask mode
            }

            Out(a, 0x21, 0xF5);
            Out(a, 0x20, 0x61); // specific EOI, IR1
            a.iretq();

            a.Label(ref irq3);
            PutChar(a, '3');
            Out(a, 0x20, 0x63); // specific EOI, IR3
            a.iretq();
        },
        out _);

    [TestCase(true, "13b\n")]
    [TestCase(false, "1b3\n")]
    public void SpecialMaskModeLetsALowerIrqInterruptTheHandler(bool specialMask, string expected)
    {
        using var console = new MemoryStream();
        using var m = Boot(SpecialMaskGuest(specialMask), 1, console);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(Text(console), Is.EqualTo(expected));
        Assert.That(Stat(m, "irq.pic.acks"), Is.EqualTo(2UL));
    }

    /// <summary>
    /// LINT0 masked, so the PIC's pending IRQ 3 does not interrupt; an ExtINT IPI to self makes the APIC run
    /// one INTA, which returns IRQ 3's vector. A second ExtINT IPI finds nothing pending: the 8259 answers with
    /// IR7 (vector 0x27) and sets no in-service bit, so the spurious handler sends no EOI.
    /// </summary>
    internal static byte[] ExtIntGuest() => Assemble(
        a =>
        {
            var irq3 = a.CreateLabel();
            var irq7 = a.CreateLabel();
            SetGate(a, 0x23, irq3);
            SetGate(a, 0x27, irq7);
            LoadIdt(a);
            InitPic(a, 0xF7, 0xFF);
            a.mov(ebx, XapicBase);
            ApicWrite(a, ApicReg.Svr, 0x1FF);
            ApicWrite(a, ApicReg.LvtLint0, 0x1_0700); // ExtINT, masked
            a.sti();
            a.mov(edx, 0x2003);
            a.mov(al, 1);
            a.@out(dx, al);
            a.nop();
            PutChar(a, '.');
            ApicWrite(a, ApicReg.IcrLow, 0x4_0700); // ExtINT, self
            a.nop();
            ApicWrite(a, ApicReg.IcrLow, 0x4_0700);
            a.nop();
            a.cli();
            PutChar(a, '\n');
            Exit(a, 0);

            a.Label(ref irq3);
            PutChar(a, '3');
            Out(a, 0x20, 0x20); // non-specific EOI
            a.iretq();

            a.Label(ref irq7);
            PutChar(a, 'S');
            Out(a, 0x20, 0x0B); // OCW3: read ISR
            a.@in(al, 0x20);
            a.movzx(eax, al);
            a.mov(__qword_ptr[Data + IsrSeen], rax);
            Out(a, 0x20, 0x0A); // back to IRR
            a.iretq();
        },
        out _);

    [Test]
    public void ExtIntIpiRunsThePicsIntaAndAnEmptyOneIsSpuriousIrq7()
    {
        using var console = new MemoryStream();
        using var m = Boot(ExtIntGuest(), 1, console);
        m.Memory.Write(Data + IsrSeen, 8, 0xFF);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.Multiple(() =>
        {
            Assert.That(Text(console), Is.EqualTo(".3S\n"));
            Assert.That(Q(m, IsrSeen), Is.Zero, "spurious IRQ 7 sets no in-service bit");
            Assert.That(Stat(m, "irq.pic.acks"), Is.EqualTo(1UL));
            Assert.That(Stat(m, "irq.pic.spurious"), Is.EqualTo(1UL));
        });
    }
}
