using Emulator.Core.Devices.Apic;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// A vCPU that spins on PAUSE yields to the other vCPUs, but only until the next timer event of its turn:
/// its own periodic APIC timer interrupts arrive when they are due, not at the end of a scheduling round.
/// </summary>
public sealed class PauseSpinTimerTests
{
    private const int Vector = 0x45, Intervals = 8;
    private const uint Period = 407_777; // cycles (divide by 1), above L0's 200 µs limit: at varying phases of the 20,000-cycle rounds
    private const int Count = 0x08, Start = 0x10, Stamps = 0x100;

    private static byte[] SpinningGuest() => Assemble(
        a =>
        {
            var isr = a.CreateLabel();
            var spin = a.CreateLabel();
            SetGate(a, Vector, isr);
            LoadIdt(a);
            a.mov(ebx, XapicBase);
            ApicWrite(a, ApicReg.Svr, 0x1FF);
            ApicWrite(a, ApicReg.TimerDivide, 0xB); // ÷1
            ApicWrite(a, ApicReg.LvtTimer, 0x2_0000 | Vector); // periodic
            Rdtsc64(a);
            a.mov(__qword_ptr[Data + Start], rax);
            ApicWrite(a, ApicReg.TimerInitial, Period);
            a.sti();
            a.Label(ref spin);
            a.pause();
            a.cmp(__qword_ptr[Data + Count], Intervals);
            a.jb(spin);
            a.cli();
            ApicWrite(a, ApicReg.LvtTimer, 0x1_0000 | Vector);
            Exit(a, 0);

            a.Label(ref isr);
            a.push(rax);
            a.push(rcx);
            a.push(rdx);
            Rdtsc64(a);
            a.mov(rcx, __qword_ptr[Data + Count]);
            a.mov(__qword_ptr[rcx * 8 + (long)(Data + Stamps)], rax);
            a.inc(__qword_ptr[Data + Count]);
            ApicWrite(a, ApicReg.Eoi, 0);
            a.pop(rdx);
            a.pop(rcx);
            a.pop(rax);
            a.iretq();
        },
        out _);

    [Test]
    public void ASpinningVcpusTimerInterruptsArriveWhenDue()
    {
        using var console = new MemoryStream();
        using var m = Boot(SpinningGuest(), 2, console); // the AP stays parked: the BSP's PAUSE loop yields
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        // The first delivery also pays first-touch costs (nested faults on the stack and handler pages), and with
        // L0's INTR exit its handler ends after the second deadline, which delays the second stamp: exact periods
        // from the third interrupt on.
        Assert.That(m.Memory.Read(Data + Stamps, 8) - m.Memory.Read(Data + Start, 8), Is.GreaterThanOrEqualTo((ulong)Period), "first interrupt");
        ulong previous = m.Memory.Read(Data + Stamps + 16, 8);
        for (int i = 3; i < Intervals; i++)
        {
            // The handler takes the same path every time, so on-time delivery shows as exact periods; a
            // yield to the end of the round would shift each stamp by where the deadline fell in the round.
            ulong stamp = m.Memory.Read(Data + Stamps + ((ulong)i * 8), 8);
            Assert.That(stamp - previous, Is.EqualTo((ulong)Period), $"interval {i}");
            previous = stamp;
        }
    }
}
