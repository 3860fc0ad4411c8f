using Emulator.Core.Devices.Apic;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// Two vCPUs: the AP sits in <c>sti; hlt</c> and every fixed IPI from the BSP wakes it exactly once; the BSP waits
/// for each acknowledgement in a tight polling loop without PAUSE. The scheduler does not detect such loops (as
/// AMD's pause filter and KVM's pause-loop exiting see only PAUSE): the spinner runs to the end of its slice,
/// and sees the AP's store in the next round, exactly as it would had it yielded early.
/// </summary>
public sealed class SmpWakeTests
{
    private const int WakeVector = 0x50;
    internal const int Ipis = 50;

    // Data layout (offsets from ApicGuest.Data).
    private const int Ready = 0x00, Acks = 0x08, Wakes = 0x10, Sent = 0x100, Received = 0x800;

    private const int DataSelector = Emulator.Core.Loaders.BootState.DataSelector;

    internal static byte[] Guest(out ulong apEntry)
    {
        Label apLabel = default;
        var image = Assemble(
            a =>
            {
                var isr = a.CreateLabel();
                apLabel = a.CreateLabel();
                SetGate(a, WakeVector, isr);
                LoadIdt(a);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                ApicWrite(a, ApicReg.IcrHigh, 1u << 24);
                ApicWrite(a, ApicReg.IcrLow, 0x4500); // INIT
                ApicWrite(a, ApicReg.IcrLow, 0x4600 | SipiVector); // Startup
                var ready = a.CreateLabel();
                a.Label(ref ready);
                a.cmp(__qword_ptr[Data + Ready], 0); // no PAUSE
                a.je(ready);

                a.xor(esi, esi);
                var next = a.CreateLabel();
                var wait = a.CreateLabel();
                a.Label(ref next);
                Rdtsc64(a);
                a.mov(__qword_ptr[rsi * 8 + (long)(Data + Sent)], rax);
                ApicWrite(a, ApicReg.IcrLow, WakeVector); // fixed, physical, to APIC 1 (ICR high still holds it)
                a.inc(esi);
                a.Label(ref wait);
                a.cmp(__qword_ptr[Data + Acks], rsi); // no PAUSE
                a.jb(wait);
                a.cmp(esi, Ipis);
                a.jb(next);
                Exit(a, 0);

                // The AP: long mode from the trampoline, APIC on, then halt until woken, counting wake-ups.
                a.Label(ref apLabel);
                a.mov(eax, DataSelector);
                a.mov(ds, ax);
                a.mov(es, ax);
                a.mov(ss, ax);
                a.mov(esp, (int)(ApStacks + 0x1000));
                a.lidt(__[IdtrAt]);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                a.mov(__qword_ptr[Data + Ready], 1);
                var idle = a.CreateLabel();
                a.Label(ref idle);
                a.sti();
                a.hlt();
                a.inc(__qword_ptr[Data + Wakes]);
                a.jmp(idle);

                a.Label(ref isr);
                a.push(rax);
                a.push(rcx);
                a.push(rdx);
                a.mov(rcx, __qword_ptr[Data + Acks]);
                Rdtsc64(a);
                a.mov(__qword_ptr[rcx * 8 + (long)(Data + Received)], rax);
                a.inc(rcx);
                a.mov(__qword_ptr[Data + Acks], rcx);
                ApicWrite(a, ApicReg.Eoi, 0);
                a.pop(rdx);
                a.pop(rcx);
                a.pop(rax);
                a.iretq();
            },
            out var labelRip);
        apEntry = labelRip(apLabel);
        return image;
    }

    [Test]
    public void EachIpiWakesTheHaltedApOnceWithinTheRound()
    {
        using var console = new MemoryStream();
        using var m = Boot(Guest(out ulong apEntry), 2, console, apEntry);
        var r = m.Run(new RunLimits { MaxCycles = 100_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.Multiple(() =>
        {
            Assert.That(m.Memory.Read(Data + Acks, 8), Is.EqualTo((ulong)Ipis));
            Assert.That(m.Memory.Read(Data + Wakes, 8), Is.EqualTo((ulong)Ipis), "one HLT exit per IPI: it was halted and nothing else woke it");
            Assert.That(Stat(m, "vcpu.1.interrupts"), Is.EqualTo((ulong)Ipis));
            Assert.That(Stat(m, "vcpu.1.halted"), Is.EqualTo(1UL));
            for (int i = 0; i < Ipis; i++)
            {
                long sent = (long)m.Memory.Read(Data + Sent + (ulong)(i * 8), 8);
                long received = (long)m.Memory.Read(Data + Received + (ulong)(i * 8), 8);
                // The vCPUs' clocks agree only to within a round: the AP runs its part of the round after the BSP.
                Assert.That(Math.Abs(received - sent), Is.LessThan((long)Machine.SmpQuantum), $"IPI {i} taken in the round it was sent");
            }

            // Each IPI costs the BSP one round of polling at most two: the spin neither stalls nor needs detection.
            Assert.That(m.Cpu.Cycles, Is.LessThan((ulong)(Ipis + 10) * 2 * Machine.SmpQuantum));
        });
    }
}
