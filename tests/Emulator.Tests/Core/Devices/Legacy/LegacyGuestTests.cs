using Emulator.Core.Cpu;
using Emulator.Core.Devices.Legacy;
using Emulator.Core.Loaders;
using Emulator.Core.Timing;
using Emulator.Svm.Run;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Legacy;

/// <summary>
/// Long-mode guests that program the PIC, PIT and RTC through their ports and take their interrupts on a
/// whole <see cref="Machine"/>: the vCPU halts between interrupts, so time jumps straight to each event and
/// the RDTSC stamps taken in the handlers measure the devices' rates exactly.
/// </summary>
public class LegacyGuestTests
{
    private const ulong CodeBase = 0x100000;
    private const ulong IsrBase = 0x110000;
    private const ulong FailBase = 0x120000;
    private const ulong IdtBase = 0x8000;
    private const ulong Results = 0x200000;

    /// <summary>Exit code of the handler every unexpected vector reaches.</summary>
    private const int UnexpectedVector = 0x7E;

    private static BootOptions Flat64 => new() { Format = ImageFormat.Flat, LoadAddress = CodeBase, Mode = EntryMode.Long };

    private static Machine NewMachine(Stream? console = null) => new(new MachineOptions { MemorySize = 64 << 20, ConsoleOutput = console });

    /// <summary>Loads the main program, the handler of <paramref name="vector"/> and an IDT sending every other vector to a failing exit.</summary>
    private static void Load(Machine m, Action<Assembler> main, int vector, Action<Assembler> isr)
    {
        m.Load(TestGuest.Assemble(64, main, CodeBase), Flat64);
        Assert.That(m.Memory.TryLoad(IsrBase, TestGuest.Assemble(64, isr, IsrBase)), Is.True);
        Assert.That(m.Memory.TryLoad(FailBase, TestGuest.Assemble(64, a => Exit(a, UnexpectedVector), FailBase)), Is.True);
        var idt = new byte[256 * 16];
        for (int v = 0; v < 256; v++)
        {
            ulong handler = v == vector ? IsrBase : FailBase;
            var gate = idt.AsSpan(v * 16, 16);
            BitConverter.TryWriteBytes(gate, (ushort)handler);
            BitConverter.TryWriteBytes(gate[2..], BootState.Code64Selector);
            gate[5] = 0x8E; // present, DPL 0, 64-bit interrupt gate
            BitConverter.TryWriteBytes(gate[6..], (ushort)(handler >> 16));
            BitConverter.TryWriteBytes(gate[8..], (uint)(handler >> 32));
        }

        Assert.That(m.Memory.TryLoad(IdtBase, idt), Is.True);
        m.Cpu.Idtr = new TableRegister { Base = IdtBase, Limit = (256 * 16) - 1 };
    }

    private static void Exit(Assembler a, int code)
    {
        a.mov(eax, code);
        a.mov(edx, 0xF4);
        a.@out(dx, eax);
        a.hlt();
    }

    /// <summary>The usual remap: master vectors 0x20–0x27, slave 0x28–0x2F, then the given masks.</summary>
    private static void InitPic(Assembler a, byte masterMask, byte slaveMask)
    {
        a.mov(al, 0x11);
        a.@out(0x20, al);
        a.@out(0xA0, al);
        a.mov(al, 0x20);
        a.@out(0x21, al);
        a.mov(al, 0x28);
        a.@out(0xA1, al);
        a.mov(al, 0x04);
        a.@out(0x21, al);
        a.mov(al, 0x02);
        a.@out(0xA1, al);
        a.mov(al, 0x01);
        a.@out(0x21, al);
        a.@out(0xA1, al);
        a.mov(al, masterMask);
        a.@out(0x21, al);
        a.mov(al, slaveMask);
        a.@out(0xA1, al);
    }

    private static void WriteCmos(Assembler a, byte index, byte value)
    {
        a.mov(al, index);
        a.@out(0x70, al);
        a.mov(al, value);
        a.@out(0x71, al);
    }

    /// <summary>STI, then HLT until R12 (the handlers' counter) reaches <paramref name="count"/>; CLI.</summary>
    private static void WaitForInterrupts(Assembler a, int count)
    {
        var wait = a.CreateLabel();
        a.xor(r12d, r12d);
        a.sti();
        a.Label(ref wait);
        a.hlt();
        a.cmp(r12d, count);
        a.jb(wait);
        a.cli();
    }

    /// <summary>Handler prologue: stores the TSC at Results[R12] and counts the interrupt.</summary>
    private static void StampAndCount(Assembler a)
    {
        a.rdtsc();
        a.shl(rdx, 32);
        a.or(rax, rdx);
        a.mov(__qword_ptr[(r12 * 8) + (int)Results], rax);
        a.inc(r12d);
    }

    private static ulong[] Stamps(Machine m, int count)
    {
        var stamps = new ulong[count];
        for (int i = 0; i < count; i++)
        {
            stamps[i] = m.Memory.Read(Results + (ulong)(i * 8), 8);
        }

        return stamps;
    }

    private const int PitDivisor = 1193;
    private const int PitInterrupts = 10;

    internal static Machine RunPitGuest(Stream? console = null)
    {
        var m = NewMachine(console);
        Load(m, a =>
        {
            InitPic(a, 0xFE, 0xFF);
            a.mov(al, 0x34); // channel 0, LSB then MSB, mode 2, binary
            a.@out(0x43, al);
            a.mov(al, PitDivisor & 0xFF);
            a.@out(0x40, al);
            a.mov(al, PitDivisor >> 8);
            a.@out(0x40, al);
            WaitForInterrupts(a, PitInterrupts);
            Exit(a, 0);
        }, 0x20, a =>
        {
            StampAndCount(a);
            a.mov(al, 0x20);
            a.@out(0x20, al);
            a.iretq();
        });
        var r = m.Run(new RunLimits { MaxCycles = 1_000_000_000 });
        Assert.That((r.Reason, r.ExitStatus), Is.EqualTo((StopReason.DebugExit, 1)), r.Message);
        return m;
    }

    [Test]
    public void PitMode2InterruptsThroughThePicAtTheProgrammedRate()
    {
        using var m = RunPitGuest();
        var stamps = Stamps(m, PitInterrupts);

        // divisor / 1.193182 MHz in 2 GHz cycles: each period is that, rounded either way. The first
        // handler entry pays cold decode-cache and TLB costs before its RDTSC, so periods count from the second.
        ulong floor = (ulong)((UInt128)PitDivisor * GuestClock.CyclesPerSecond / Pit8254.Frequency);
        for (int i = 2; i < stamps.Length; i++)
        {
            Assert.That(stamps[i] - stamps[i - 1], Is.InRange(floor, floor + 1), $"period {i}");
        }

        var stats = m.Stats().ToDictionary(s => s.Name, s => s.Value);
        Assert.That(stats["irq.pic.acks"], Is.EqualTo(PitInterrupts));
        Assert.That(stats["irq.pit.fires"], Is.GreaterThanOrEqualTo(PitInterrupts));
        Assert.That(stats["irq.pic.spurious"], Is.Zero);
    }

    [Test]
    public void PitGuestIsDeterministic()
    {
        using var first = RunPitGuest();
        using var second = RunPitGuest();
        Assert.That(second.Cpu.Cycles, Is.EqualTo(first.Cpu.Cycles));
        Assert.That(second.Cpu.Instructions, Is.EqualTo(first.Cpu.Instructions));
        Assert.That(Stamps(second, PitInterrupts), Is.EqualTo(Stamps(first, PitInterrupts)));
    }

    private static readonly byte[] ClockRegisters = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32];

    private static void ReadClock(Assembler a, ulong to)
    {
        for (int i = 0; i < ClockRegisters.Length; i++)
        {
            a.mov(al, ClockRegisters[i]);
            a.@out(0x70, al);
            a.@in(al, 0x71);
            a.mov(__byte_ptr[(int)to + i], al);
        }
    }

    /// <summary>Reads the clock in BCD, waits for two update-ended interrupts, reads it again in binary.</summary>
    internal static Machine RunRtcClockGuest(Stream? console = null)
    {
        var m = NewMachine(console);
        Load(m, a =>
        {
            ReadClock(a, Results);
            InitPic(a, 0xFB, 0xFE); // cascade and IRQ 8 only
            WriteCmos(a, 0x0B, 0x12); // update-ended interrupt, 24-hour BCD
            WaitForInterrupts(a, 2);
            WriteCmos(a, 0x0B, 0x06); // binary, 24-hour, no interrupts
            ReadClock(a, Results + 8);
            Exit(a, 0);
        }, 0x28, a =>
        {
            a.mov(al, 0x0C);
            a.@out(0x70, al);
            a.@in(al, 0x71); // read C: clears the flags and lowers IRQ 8
            a.inc(r12d);
            a.mov(al, 0x20);
            a.@out(0xA0, al);
            a.@out(0x20, al);
            a.iretq();
        });
        var r = m.Run(new RunLimits { MaxCycles = 10_000_000_000 });
        Assert.That((r.Reason, r.ExitStatus), Is.EqualTo((StopReason.DebugExit, 1)), r.Message);
        return m;
    }

    [Test]
    public void RtcShowsTheEpochAdvancedByGuestSeconds()
    {
        using var m = RunRtcClockGuest();

        var bytes = new byte[16];
        for (int i = 0; i < 16; i++)
        {
            bytes[i] = (byte)m.Memory.Read(Results + (ulong)i, 1);
        }

        // 2026-01-01 00:00:00, a Thursday, in BCD; then two updates later in binary.
        Assert.That(bytes[..8], Is.EqualTo(new byte[] { 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x26, 0x20 }));
        Assert.That(bytes[8..], Is.EqualTo(new byte[] { 2, 0, 0, 5, 1, 1, 26, 20 }));
        Assert.That(m.Cpu.Cycles, Is.InRange(2 * GuestClock.CyclesPerSecond, (2 * GuestClock.CyclesPerSecond) + 1_000_000));
    }

    private const int RtcPeriodicInterrupts = 8;

    /// <summary>Takes <see cref="RtcPeriodicInterrupts"/> periodic interrupts at 1024 Hz through the slave PIC.</summary>
    internal static Machine RunRtcPeriodicGuest(Stream? console = null)
    {
        const int count = RtcPeriodicInterrupts;
        var m = NewMachine(console);
        Load(m, a =>
        {
            InitPic(a, 0xFB, 0xFE);
            WriteCmos(a, 0x0A, 0x26); // rate 6: 1024 Hz
            WriteCmos(a, 0x0B, 0x42); // periodic interrupt enable
            WaitForInterrupts(a, count);
            Exit(a, 0);
        }, 0x28, a =>
        {
            StampAndCount(a);
            a.mov(al, 0x0C);
            a.@out(0x70, al);
            a.@in(al, 0x71);
            a.mov(al, 0x20);
            a.@out(0xA0, al);
            a.@out(0x20, al);
            a.iretq();
        });
        var r = m.Run(new RunLimits { MaxCycles = 1_000_000_000 });
        Assert.That((r.Reason, r.ExitStatus), Is.EqualTo((StopReason.DebugExit, 1)), r.Message);
        return m;
    }

    [Test]
    public void RtcPeriodicInterruptAt1024Hz()
    {
        const int count = RtcPeriodicInterrupts;
        using var m = RunRtcPeriodicGuest();
        var stamps = Stamps(m, count);
        for (int i = 2; i < count; i++) // from the second: the first handler entry runs cold
        {
            Assert.That(stamps[i] - stamps[i - 1], Is.EqualTo(1_953_125), "976.5625 µs, exact on the 2 GHz clock");
        }

        Assert.That(m.Stats().Single(s => s.Name == "irq.rtc.fires").Value, Is.EqualTo((ulong)count));
    }

    [Test]
    public void UnprogrammedPicDeliversTheFirmwareTimerVector()
    {
        // QEMU's firmware leaves IRQ 0 unmasked on vector 8 with the PIT at 18.2 Hz; a guest that enables
        // interrupts without reprogramming anything takes that interrupt after 65536 PIT ticks.
        using var m = NewMachine();
        Load(m, a =>
        {
            a.sti();
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.hlt();
            a.jmp(spin);
        }, 0x08, a =>
        {
            a.rdtsc();
            a.mov(__dword_ptr[(int)Results], eax);
            Exit(a, 0x08);
        });
        var r = m.Run(new RunLimits { MaxCycles = 1_000_000_000 });
        Assert.That((r.Reason, r.ExitStatus), Is.EqualTo((StopReason.DebugExit, 0x11)), r.Message);
        ulong at = m.Memory.Read(Results, 4);
        Assert.That(at, Is.InRange(GuestClock.ToCycles(65536, Pit8254.Frequency), GuestClock.ToCycles(65536, Pit8254.Frequency) + 20_000), "plus the cold entry into the handler");
    }

    [Test]
    public void FirmwareHandoffStateIsVisibleOnThePorts()
    {
        using var m = NewMachine();
        var io = m.Memory.Io;
        Assert.That(io.In(0x21, 1), Is.EqualTo(0xF8), "master IMR: timer, keyboard, cascade open");
        Assert.That(io.In(0xA1, 1), Is.EqualTo(0xEE), "slave IMR: RTC and mouse open");
        io.Out(0x43, 1, 0xE2);
        Assert.That(io.In(0x40, 1), Is.EqualTo(0xB4), "channel 0: OUT high, word access, mode 2, binary");

        int Cmos(int index)
        {
            io.Out(0x70, 1, (uint)index);
            return (int)io.In(0x71, 1);
        }

        Assert.That(Cmos(0x0A), Is.EqualTo(0x26));
        Assert.That(Cmos(0x0B), Is.EqualTo(0x02));
        Assert.That(Cmos(0x15) | (Cmos(0x16) << 8), Is.EqualTo(640));
        Assert.That(Cmos(0x17) | (Cmos(0x18) << 8), Is.EqualTo(63 * 1024), "64 MiB machine: KiB above 1 MiB");
        Assert.That(Cmos(0x34) | (Cmos(0x35) << 8), Is.EqualTo((64 - 16) * 16), "64 KiB units above 16 MiB");
        Assert.That(Cmos(0x5F), Is.Zero, "one CPU");
    }
}
