using System.Text;
using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Svm.Run;
using Emulator.Tests.Core;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Run;

public class MachineTests
{
    private MemoryStream _console = null!;
    private StringWriter _diag = null!;

    [SetUp]
    public void SetUp()
    {
        _console = new MemoryStream();
        _diag = new StringWriter();
    }

    [TearDown]
    public void TearDown()
    {
        _console.Dispose();
        _diag.Dispose();
    }

    private Machine NewMachine(bool traceIo = false) => new(new MachineOptions
    {
        MemorySize = 64 << 20,
        ConsoleOutput = _console,
        Diagnostics = _diag,
        TraceIo = traceIo,
    });

    private static byte[] Code64(Action<Assembler> body) => TestGuest.Assemble(64, body, 0x100000);

    private static BootOptions Flat64 => new() { Format = ImageFormat.Flat, LoadAddress = 0x100000, Mode = EntryMode.Long };

    private string Console => Encoding.ASCII.GetString(_console.ToArray());

    [TestCase(null, 0x26, TestName = "RtcStartsAtTheFixedEpochByDefault")]
    [TestCase("2031-05-06T07:08:09", 0x31, TestName = "RtcStartsAtTheGivenBase")]
    public void RtcBaseSetsTheYearTheGuestReads(string? iso, int bcdYear)
    {
        using var m = new Machine(new MachineOptions
        {
            MemorySize = 64 << 20,
            RtcBase = iso == null ? null : DateTime.Parse(iso, System.Globalization.CultureInfo.InvariantCulture),
        });
        m.Memory.Io.Out(0x70, 1, 0x09); // CMOS index: year (BCD, as the firmware hands it over)
        Assert.That(m.Memory.Io.In(0x71, 1), Is.EqualTo((uint)bcdYear));
    }

    [Test]
    public void DebugExitPortStopsTheCpuWithTheShiftedStatus()
    {
        using var m = NewMachine();
        m.Memory.Io.Out(0xF4, 4, 0);
        Assert.That(m.ExitStatus, Is.EqualTo(1));
        Assert.That(m.Cpu.StopRequested, Is.True);
    }

    [Test]
    public void TheMachinesMmuRunsWithoutALockBecauseEveryVcpuSharesOneHostThread()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 2 });
        Assert.That(m.Memory.Mmu!.Lock.Enabled, Is.False);
        Assert.That(m.Memory.Mmu.Lock.IsWriteHeld, Is.True, "the only thread counts as the writer");
    }

    [Test]
    public void BochsShutdownPortStopsWithStatusZero()
    {
        using var m = NewMachine();
        foreach (char ch in "Shutdown")
        {
            m.Memory.Io.Out(0x8900, 1, ch);
        }

        Assert.That(m.ExitStatus, Is.Zero);
    }

    [Test]
    public void TheFirstStopRequestDecidesTheStatus()
    {
        using var m = NewMachine();
        m.Memory.Io.Out(0xF4, 1, 3);
        m.Memory.Io.Out(0xF4, 1, 0);
        Assert.That(m.ExitStatus, Is.EqualTo(7));
    }

    [Test]
    public void Com1AndTheDebugConsoleShareTheConsole()
    {
        using var m = NewMachine();
        m.Memory.Io.Out(0x3F8, 1, 'a');
        m.Memory.Io.Out(0xE9, 1, 'b');
        m.Console.Flush();
        Assert.That(Console, Is.EqualTo("ab"));
    }

    [Test]
    public void FwCfgReportsTheMachineMemory()
    {
        using var m = NewMachine();
        m.Memory.Io.Out(0x510, 2, 0x0003);
        ulong size = 0;
        for (int i = 0; i < 8; i++)
        {
            size |= (ulong)m.Memory.Io.In(0x511, 1) << (8 * i);
        }

        Assert.That(size, Is.EqualTo(64UL << 20));
    }

    [Test]
    public void TraceIoReportsUnclaimedPorts()
    {
        using var m = NewMachine(traceIo: true);
        Assert.That(m.Memory.Io.In(0x1234, 1), Is.EqualTo(0xFF));
        Assert.That(_diag.ToString(), Does.Contain("0x1234"));
    }

    [Test]
    public void HltWithInterruptsOffIsNoProgress()
    {
        using var m = NewMachine();
        m.Load(Code64(a => a.hlt()), Flat64);
        var r = m.Run();
        Assert.That(r.ExitStatus, Is.EqualTo(Machine.ExitNoProgress));
        Assert.That(r.Reason, Is.EqualTo(StopReason.Halted));
        Assert.That(r.Message, Does.Contain("halted").And.Contain("RIP 0x100001"));
    }

    [Test]
    public void InstructionLimitIsExactAndReported()
    {
        using var m = NewMachine();
        m.Load(Code64(a =>
        {
            for (int i = 0; i < 50; i++)
            {
                a.nop();
            }

            a.hlt();
        }), Flat64);
        var r = m.Run(new RunLimits { MaxInstructions = 10 });
        Assert.That(r.ExitStatus, Is.EqualTo(Machine.ExitLimit));
        Assert.That(r.Reason, Is.EqualTo(StopReason.InstructionLimit));
        Assert.That(m.Cpu.Instructions, Is.EqualTo(10));
        Assert.That(r.Message, Does.Contain("instruction limit").And.Contain("RIP 0x10000A"));
    }

    [Test]
    public void CycleLimitIsReported()
    {
        using var m = NewMachine();
        m.Load(Code64(a =>
        {
            for (int i = 0; i < 50; i++)
            {
                a.nop();
            }

            a.hlt();
        }), Flat64);
        var r = m.Run(new RunLimits { MaxCycles = 5 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.CycleLimit));
        Assert.That(r.ExitStatus, Is.EqualTo(Machine.ExitLimit));
    }

    [Test]
    public void TripleFaultIsNoProgress()
    {
        using var m = NewMachine();
        m.Load(Code64(a => a.ud2()), Flat64);
        var r = m.Run();
        Assert.That(r.Reason, Is.EqualTo(StopReason.TripleFault));
        Assert.That(r.ExitStatus, Is.EqualTo(Machine.ExitNoProgress));
        Assert.That(r.Message, Does.Contain("triple fault"));
    }

    [Test]
    public void TimeoutStopsAGuestThatFaultsForever()
    {
        // #UD whose handler is the UD2 itself: no instruction ever retires, cycles still pass.
        using var m = NewMachine();
        m.Load(Code64(a => a.ud2()), Flat64);
        var gate = new byte[16];
        gate[0] = 0x00;
        gate[1] = 0x00;
        gate[2] = (byte)BootState.Code64Selector;
        gate[5] = 0x8E;
        gate[6] = 0x10; // offset 0x100000
        m.Memory.TryLoad(0x8000 + (6 * 16), gate);
        m.Cpu.Idtr = new TableRegister { Base = 0x8000, Limit = (7 * 16) - 1 };
        var r = m.Run(new RunLimits { Timeout = TimeSpan.FromMilliseconds(200) });
        Assert.That(r.Reason, Is.EqualTo(StopReason.Timeout));
        Assert.That(r.ExitStatus, Is.EqualTo(Machine.ExitLimit));
        Assert.That(r.Message, Does.Contain("timeout"));
    }

    [Test]
    public void GuestWritesSerialAndExitsThroughDebugExit()
    {
        using var m = NewMachine();
        m.Load(Code64(a =>
        {
            a.mov(edx, 0x3F8);
            a.mov(al, (byte)'o');
            a.@out(dx, al);
            a.mov(al, (byte)'k');
            a.@out(dx, al);
            a.mov(edx, 0xF4);
            a.mov(eax, 0x10);
            a.@out(dx, eax);
            a.hlt();
        }), Flat64);
        var r = m.Run();
        Assert.That(Console, Is.EqualTo("ok"));
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit));
        Assert.That(r.ExitStatus, Is.EqualTo(0x21));
        Assert.That(r.Message, Is.Null);
    }

    [Test]
    public void MultibootKernelSeesTheInfoStructureInEbx()
    {
        // A 32-bit kernel that reports mem_lower (KiB) through isa-debug-exit: 640 → status 1281 (shell: 1).
        var code = TestGuest.Assemble(32, a =>
        {
            a.mov(eax, __dword_ptr[ebx + 4]);
            a.mov(edx, 0xF4);
            a.@out(dx, eax);
            a.hlt();
        }, 0x400000 + 12);
        var text = new byte[12 + code.Length];
        Core.Loaders.ImageBuilder.MultibootHeader(0).CopyTo(text, 0);
        code.CopyTo(text, 12);
        var image = Core.Loaders.ImageBuilder.Elf(false, 0x400000 + 12, [new Core.Loaders.TestSegment(0x400000, text, (ulong)text.Length)]);
        using var m = NewMachine();
        m.Load(image, new BootOptions());
        var r = m.Run();
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit));
        Assert.That(r.ExitStatus, Is.EqualTo((640 << 1) | 1));
    }

    [Test]
    public void PcTestDevWindowIsReachedByGuestInstructions()
    {
        using var m = NewMachine();
        m.Load(Code64(a =>
        {
            a.mov(eax, 0xFF000000);
            a.mov(__dword_ptr[rax + 0x40], 0x1234);
            a.mov(ecx, __dword_ptr[rax + 0x40]);
            a.mov(edx, 0xF4);
            a.mov(eax, ecx);
            a.@out(dx, eax);
        }), Flat64);
        var r = m.Run();
        Assert.That(r.ExitStatus, Is.EqualTo((0x1234 << 1) | 1));
        Assert.That(m.Memory.MmioAccesses, Is.GreaterThanOrEqualTo(2));
    }

    [Test]
    public void StatsAreNamedAndOrdered()
    {
        using var m = NewMachine();
        var names = m.Stats().Select(s => s.Name).ToArray();
        Assert.That(names, Is.SupersetOf(new[]
        {
            "cpu.instructions", "cpu.cycles", "cpu.decode_cache.misses", "cpu.decode_cache.hits",
            "cpu.decode_cache.invalidations", "cpu.tlb.misses", "cpu.page_walks", "cpu.exceptions",
            "cpu.interrupts", "io.unhandled", "mmio.accesses", "mmu.pf.total",
        }));
        Assert.That(names[0], Is.EqualTo("cpu.instructions"));
        Assert.That(names[1], Is.EqualTo("cpu.cycles"));
    }

    [Test]
    public void SmpOutOfRangeIsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 65 }));
    }

    [Test]
    public void UnknownCpuFeatureIsRefused() =>
        Assert.Throws<ArgumentException>(() => new Machine(new MachineOptions { MemorySize = 16 << 20, CpuFeatures = ["-nosuchfeature"] }));
}
