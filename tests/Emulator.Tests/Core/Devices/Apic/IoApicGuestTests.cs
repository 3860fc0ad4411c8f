using Emulator.Core.Devices.Apic;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// Guests that drive ISA lines through pc-testdev's IRQ ports (0x2000 + n, as kvm-unit-tests' ioapic test does),
/// route them through the I/O APIC's redirection table to the local APIC, and watch remote IRR, TMR and the
/// EOI broadcast from inside the interrupt handler.
/// </summary>
public sealed class IoApicGuestTests
{
    private const uint IoApicBase = 0xFEC0_0000;
    private const int LevelPin = 14, EdgePin = 15;
    private const int LevelVector = 0x40, EdgeVector = 0x41;

    // Data layout (offsets from ApicGuest.Data).
    private const int Count = 0x00, EdgeCount = 0x08, RedirAfter = 0x10, TmrEdge = 0x18, RedirSeen = 0x100, TmrSeen = 0x180;

    private static ulong Q(Machine m, int offset) => m.Memory.Read(Data + (ulong)offset, 8);

    /// <summary>I/O APIC register write through IOREGSEL/IOWIN (RSI = I/O APIC base; clobbers nothing else).</summary>
    private static void IoApicWrite(Assembler a, int index, uint value)
    {
        a.mov(__dword_ptr[rsi], index);
        a.mov(__dword_ptr[rsi + 0x10], unchecked((int)value));
    }

    /// <summary>EAX = I/O APIC register <paramref name="index"/> (RSI = I/O APIC base).</summary>
    private static void IoApicRead(Assembler a, int index)
    {
        a.mov(__dword_ptr[rsi], index);
        a.mov(eax, __dword_ptr[rsi + 0x10]);
    }

    private static void SetLine(Assembler a, int line, byte level)
    {
        a.mov(edx, 0x2000 + line);
        a.mov(al, level);
        a.@out(dx, al);
    }

    /// <summary>
    /// Pin 14 level-triggered to vector 0x40, pin 15 edge-triggered to vector 0x41, both to APIC 0. The level
    /// handler records remote IRR and the TMR bit on each entry and only lowers the line on its second entry, so
    /// the first EOI finds the line still asserted and the I/O APIC sends the interrupt again (kvm-unit-tests'
    /// "level retrigger"). The edge pin is pulsed twice.
    /// </summary>
    internal static byte[] Guest() => Assemble(
        a =>
        {
            var level = a.CreateLabel();
            var edge = a.CreateLabel();
            SetGate(a, LevelVector, level);
            SetGate(a, EdgeVector, edge);
            LoadIdt(a);
            a.mov(ebx, XapicBase);
            ApicWrite(a, ApicReg.Svr, 0x1FF);
            a.mov(esi, IoApicBase);
            IoApicWrite(a, 0x10 + (2 * LevelPin) + 1, 0);
            IoApicWrite(a, 0x10 + (2 * LevelPin), 0x8000 | LevelVector); // level, active high, fixed, physical
            IoApicWrite(a, 0x10 + (2 * EdgePin) + 1, 0);
            IoApicWrite(a, 0x10 + (2 * EdgePin), EdgeVector);

            a.sti();
            SetLine(a, LevelPin, 1);
            WaitFor(a, Count, 2);
            IoApicRead(a, 0x10 + (2 * LevelPin));
            a.mov(__qword_ptr[Data + RedirAfter], rax);

            a.sti();
            SetLine(a, EdgePin, 1);
            SetLine(a, EdgePin, 0);
            SetLine(a, EdgePin, 1);
            SetLine(a, EdgePin, 1); // no edge: still high
            WaitFor(a, EdgeCount, 2);
            Exit(a, 0);

            // Level handler: record remote IRR and TMR[0x40]; drop the line on the second entry; EOI.
            var keep = a.CreateLabel();
            a.Label(ref level);
            a.push(rax);
            a.push(rcx);
            a.push(rdx);
            a.mov(rcx, __qword_ptr[Data + Count]);
            IoApicRead(a, 0x10 + (2 * LevelPin));
            a.mov(__qword_ptr[rcx * 8 + (long)(Data + RedirSeen)], rax);
            a.mov(eax, __dword_ptr[rbx + ApicReg.Tmr + 0x20]); // vectors 64–95
            a.mov(__qword_ptr[rcx * 8 + (long)(Data + TmrSeen)], rax);
            a.inc(rcx);
            a.mov(__qword_ptr[Data + Count], rcx);
            a.cmp(rcx, 2);
            a.jb(keep);
            SetLine(a, LevelPin, 0);
            a.Label(ref keep);
            ApicWrite(a, ApicReg.Eoi, 0);
            a.pop(rdx);
            a.pop(rcx);
            a.pop(rax);
            a.iretq();

            a.Label(ref edge);
            a.push(rax);
            a.inc(__qword_ptr[Data + EdgeCount]);
            a.mov(eax, __dword_ptr[rbx + ApicReg.Tmr + 0x20]);
            a.mov(__qword_ptr[Data + TmrEdge], rax);
            ApicWrite(a, ApicReg.Eoi, 0);
            a.pop(rax);
            a.iretq();
        },
        out _);

    /// <summary>HLT with interrupts enabled until the qword at <paramref name="offset"/> reaches <paramref name="n"/>; ends with CLI.</summary>
    private static void WaitFor(Assembler a, int offset, int n)
    {
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref wait);
        a.cli();
        a.cmp(__qword_ptr[Data + (ulong)offset], n);
        a.jae(done);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref done);
    }

    [Test]
    public void LevelPinHoldsRemoteIrrUntilTheEoiBroadcastAndRetriggersWhileAsserted()
    {
        using var console = new MemoryStream();
        using var m = Boot(Guest(), 1, console);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.Multiple(() =>
        {
            Assert.That(Q(m, Count), Is.EqualTo(2UL), "taken again after the first EOI, not after the second");
            for (int i = 0; i < 2; i++)
            {
                ulong redir = Q(m, RedirSeen + (i * 8));
                Assert.That(redir & IoApic.RemoteIrr, Is.Not.Zero, $"remote IRR in handler {i}");
                Assert.That(redir & IoApic.LevelTriggered, Is.Not.Zero);
                Assert.That(Q(m, TmrSeen + (i * 8)) & 1, Is.EqualTo(1UL), $"TMR[0x40] in handler {i}");
            }

            Assert.That(Q(m, RedirAfter) & IoApic.RemoteIrr, Is.Zero, "the EOI broadcast cleared remote IRR");
            Assert.That(Q(m, EdgeCount), Is.EqualTo(2UL), "one interrupt per rising edge");
            Assert.That(Q(m, TmrEdge) & 2, Is.Zero, "TMR[0x41] clear for an edge-triggered vector");
            Assert.That(Stat(m, "irq.ioapic.deliveries"), Is.EqualTo(4UL));
            Assert.That(Stat(m, "irq.ioapic.eois"), Is.EqualTo(2UL), "only the level-triggered EOIs reach the I/O APIC");
            Assert.That(Stat(m, "apic.eois"), Is.EqualTo(4UL));
        });
    }
}
