using Emulator.Core.Loaders;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Avic;

/// <summary>
/// The PIT's reinject mode in a machine: ticks that came while the guest had interrupts off are delivered one per EOI
/// afterwards, instead of merging into one; and turning it on inhibits APICv (PIT_REINJ), turning it off lifts that.
/// </summary>
public sealed class PitReinjectionMachineTests
{
    private static readonly string[] XapicNoSvm = ["-x2apic", "-svm"];

    /// <summary>
    /// The PIT at its fastest useful rate through the 8259 (vector 0x20) while IF is clear for many ticks; then the PIT
    /// is stopped (mode 0 with the longest count: OUT low, no edge for 55 ms), STI, a short spin, CLI. Data + 0 counts
    /// the interrupts taken.
    /// </summary>
    private static byte[] TicksBehindIf() => Assemble(
        a =>
        {
            var handler = a.CreateLabel();
            var start = a.CreateLabel();
            var behindIf = a.CreateLabel();
            var spin = a.CreateLabel();
            a.jmp(start);
            a.Label(ref handler);
            a.add(__qword_ptr[Data], 1);
            a.mov(al, 0x20);
            a.@out(0x20, al); // EOI: the acknowledgement reinjection waits for
            a.iretq();
            a.Label(ref start);
            a.mov(__word_ptr[IdtrAt], 0xFFF);
            a.mov(__qword_ptr[IdtrAt + 2], (int)Idt);
            a.lidt(__[IdtrAt]);
            SetGate(a, 0x20, handler);
            foreach (var (port, value) in new (int, int)[] { (0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE), (0xA1, 0xFF) })
            {
                a.mov(al, (byte)value);
                a.@out((byte)port, al);
            }

            a.mov(al, 0x34);
            a.@out(0x43, al); // channel 0, mode 2
            a.mov(al, 100);
            a.@out(0x40, al);
            a.mov(al, 0);
            a.@out(0x40, al);
            a.mov(ecx, 2_000_000);
            a.Label(ref behindIf);
            a.dec(ecx);
            a.jnz(behindIf);
            a.mov(al, 0x30);
            a.@out(0x43, al); // channel 0, mode 0: OUT low until a count that is never reached here
            a.mov(al, 0xFF);
            a.@out(0x40, al);
            a.@out(0x40, al);
            a.sti();
            a.mov(ecx, 100_000);
            a.Label(ref spin);
            a.dec(ecx);
            a.jnz(spin);
            a.cli();
            Exit(a, 0);
        },
        out _);

    private static Machine Boot(bool reinject)
    {
        var m = new Machine(new MachineOptions { MemorySize = 64 << 20, CpuFeatures = XapicNoSvm, ConsoleOutput = Stream.Null, PitReinject = reinject });
        m.Load(TicksBehindIf(), new BootOptions { Format = ImageFormat.Flat, LoadAddress = Emulator.Tests.Core.Devices.Apic.ApicGuest.Code, Mode = EntryMode.Long });
        return m;
    }

    [Test]
    public void WithoutReinjectionTicksBehindIfMergeIntoOneInterrupt()
    {
        using var m = Boot(reinject: false);
        var r = m.Run(new RunLimits { MaxCycles = 2_000_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(Stat(m, "irq.pit.fires"), Is.GreaterThan(5UL), "several ticks came while IF was clear");
        Assert.That(m.Memory.Read(Data, 8), Is.EqualTo(1UL));
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "apicv.inhibit.pit_reinj"), Is.Zero);
    }

    [Test]
    public void WithReinjectionEveryTickIsDeliveredAndApicvIsInhibited()
    {
        using var m = Boot(reinject: true);
        // Channel 0 runs from reset (mode 3, as QEMU's PIT); an edge before reinjection is on is not one it holds.
        ulong atStart = Stat(m, "irq.pit.fires");
        var r = m.Run(new RunLimits { MaxCycles = 2_000_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        ulong fires = Stat(m, "irq.pit.fires") - atStart;
        Assert.That(fires, Is.GreaterThan(5UL));
        Assert.That(m.Platform.PitReinjection.Pending, Is.Zero);
        Assert.That(m.Memory.Read(Data, 8), Is.EqualTo(fires), "one interrupt per tick, one per EOI");
        Assert.That(m.Platform.PitReinjection.Reinjected, Is.EqualTo(fires - 1));
        Assert.That(Stat(m, "apicv.active"), Is.Zero);
        Assert.That(Stat(m, "apicv.inhibit.pit_reinj"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "avic.accelerated"), Is.Zero);
    }

    [Test]
    public void TurningReinjectionOnAndOffAtRunTimeInhibitsAndReleasesApicv()
    {
        using var m = Boot(reinject: false);
        Assert.That(m.Apicv.Active, Is.True);
        m.Platform.PitReinjection.Enabled = true;
        Assert.That(m.Apicv.Active, Is.False);
        Assert.That(m.Apicv.IsSet(Emulator.Svm.Avic.ApicvInhibitReason.PitReinjection), Is.True);
        m.Platform.PitReinjection.Enabled = false;
        Assert.That(m.Apicv.Active, Is.True);
        Assert.That(Stat(m, "apicv.transitions"), Is.EqualTo(2UL));
    }
}
