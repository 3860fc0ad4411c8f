using Emulator.Cli.Guests;
using Emulator.Tests.Core;
using static Emulator.Tests.Cli.CliRunner;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Cli;

public class BootCommandTests
{
    private static readonly string[] CounterNames =
    [
        "cpu.instructions", "cpu.cycles", "cpu.decode_cache.misses", "cpu.decode_cache.hits",
        "cpu.decode_cache.invalidations", "cpu.tlb.misses", "cpu.page_walks", "cpu.exceptions",
        "cpu.interrupts", "io.unhandled", "mmio.accesses",
    ];

    private const string DemoMachineLine = "emu: demo machine: --cpu -x2apic --apicv-nested vcpu (Linux 5.19's per-vCPU NESTED inhibit)";

    [Test]
    public void BuiltInGuestPrintsItsLinesAndShutsDownCleanly()
    {
        var r = Emu("boot");
        Assert.That(r.Status, Is.EqualTo(DemoGuest.SuccessStatus), r.Err);
        Assert.That(r.Guest.Split('\n'), Is.EqualTo(new[]
        {
            DemoGuest.Banner,
            DemoGuest.ChecksumLabel + DemoGuest.ExpectedChecksum().ToString("x16"),
            DemoGuest.VendorLabel + "AuthenticAMD",
            DemoGuest.ApicLine,
            DemoGuest.L2LinePrefix + DemoGuest.ExpectedL2Result().ToString("x16") + DemoGuest.L2LineSuffix,
            DemoGuest.Irq0Line,
            DemoGuest.Farewell,
            "",
        }));
        Assert.That(r.ErrLines, Is.EqualTo(new[] { DemoMachineLine }), "only the line that names the demo's machine");

        // After the guest's output, on stdout: the counters that show the demo's paths.
        string[] summary = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(summary[0], Is.EqualTo(DemoGuest.SummaryTitle));
        Assert.That(summary[1..].Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0]), Is.EqualTo(DemoGuest.SummaryCounters.Select(c => c.Counter)));
        Assert.That(summary, Has.One.Match("^  apicv\\.transitions +2  "));
    }

    [Test]
    public void BuiltInGuestRamFaultsAreFixedAndItsDeviceAccessesEmulatedByL0()
    {
        var r = Emu("boot", "--stats");
        Assert.That(r.Status, Is.Zero, r.Err);
        ulong Counter(string name)
        {
            string line = r.ErrLines.Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
            return ulong.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.That(Counter("mmu.pf.fixed"), Is.GreaterThan(0));
        Assert.That(Counter("mmu.pf.emulate"), Is.GreaterThan(0));
        Assert.That(Counter("mmu.mmio_spte.created"), Is.GreaterThan(0));
    }

    [Test]
    public void StatsPrintEveryCounterAsNameValueOnStderr()
    {
        var r = Emu("boot", "--stats");
        Assert.That(r.Status, Is.Zero, r.Err);
        var lines = r.ErrLines;
        foreach (string name in CounterNames)
        {
            Assert.That(lines, Has.One.Match($"^{name.Replace(".", "\\.", StringComparison.Ordinal)} [0-9]+$"), name);
        }
    }

    [Test]
    public void TooLittleRamForTheDemoIsOneUsageLine()
    {
        var r = Emu("boot", "--memory", "2M");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Is.EqualTo(new[] { DemoMachineLine, "emu: the built-in guest needs at least 4 MiB of guest RAM" }));
        Assert.That(r.Guest, Is.Empty);
    }

    [Test]
    public void SmpOutOfRangeIsAUsageError()
    {
        var r = Emu("boot", "--smp", "65");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1));
        Assert.That(r.Err, Does.Contain("between 1 and 64"));
    }

    [Test]
    public void AnUnrecognizedImageIsRefusedWithOneLine()
    {
        using var f = new TempFile([1, 2, 3, 4, 5, 6, 7, 8]);
        var r = Emu("boot", f.Path);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1));
        Assert.That(r.Err, Does.StartWith("emu: " + f.Path + ": "));
        Assert.That(r.Guest, Is.Empty);
    }

    [Test]
    public void AMissingImageIsAUsageError()
    {
        var r = Emu("boot", "/nonexistent/kernel.elf");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1));
        Assert.That(r.Err, Does.Contain("no such file"));
    }

    [TestCase("--memory", "12Q")]
    [TestCase("--max-instructions", "lots")]
    [TestCase("--format", "pe")]
    [TestCase("--mode", "unreal")]
    [TestCase("--timeout", "-1")]
    [TestCase("--cpu", "-nosuchfeature")]
    [TestCase("--cpu", "a b")]
    [TestCase("--no-such-option", null)]
    public void BadOptionsExitWithStatusTwo(string option, string? value)
    {
        var r = Emu(value == null ? ["boot", option] : ["boot", option, value]);
        Assert.That(r.Status, Is.EqualTo(2), r.Err);
        Assert.That(r.Err, Does.StartWith("emu: "));
    }

    [Test]
    public void ImageOptionsWithoutAnImageAreAUsageError()
    {
        var r = Emu("boot", "--append", "x");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("need an IMAGE"));
    }

    [Test]
    public void NoCommandIsAUsageErrorAndHelpIsNot()
    {
        Assert.That(Emu().Status, Is.EqualTo(2));
        var help = Emu("boot", "--help");
        Assert.That(help.Status, Is.Zero);
        Assert.That(help.Out, Does.Contain("--max-instructions").And.Contain("--trace-io"));
    }

    [Test]
    public void FlatImageRunsAndItsDebugExitStatusIsTheProcessStatus()
    {
        var code = TestGuest.Assemble(64, a =>
        {
            a.mov(edx, 0x3F8);
            a.mov(al, (byte)'!');
            a.@out(dx, al);
            a.mov(edx, 0xF4);
            a.xor(eax, eax);
            a.@out(dx, eax);
        }, 0x200000);
        using var f = new TempFile(code);
        var r = Emu("boot", f.Path, "--format", "flat", "--load", "0x200000", "--mode", "long", "--memory", "64M");
        Assert.That(r.Status, Is.EqualTo(1), r.Err);
        Assert.That(r.Guest, Is.EqualTo("!"));
    }

    [Test]
    public void LimitsEndTheRunWithStatus124AndOneLine()
    {
        var r = Emu("boot", "--max-instructions", "1000");
        Assert.That(r.Status, Is.EqualTo(124));
        Assert.That(r.ErrLines, Is.EqualTo(new[] { DemoMachineLine, r.ErrLines[^1] }), "the demo's machine, then the limit");
        Assert.That(r.Err, Does.Contain("instruction limit").And.Contain("RIP 0x"));
    }

    [Test]
    public void InitrdAndModulesReachAMultibootKernel()
    {
        // The kernel exits with mods_count: 2 modules → status 5.
        var code = TestGuest.Assemble(32, a =>
        {
            a.mov(eax, __dword_ptr[ebx + 20]);
            a.mov(edx, 0xF4);
            a.@out(dx, eax);
            a.hlt();
        }, 0x400000 + 12);
        var text = Core.Loaders.ImageBuilder.Concat(Core.Loaders.ImageBuilder.MultibootHeader(0), code);
        var image = Core.Loaders.ImageBuilder.Elf(false, 0x400000 + 12, [new Core.Loaders.TestSegment(0x400000, text, (ulong)text.Length)]);
        using var kernel = new TempFile(image);
        using var env = new TempFile("NR_CPUS=1\n"u8.ToArray());
        using var mod = new TempFile([1, 2, 3]);
        var r = Emu("boot", kernel.Path, "--initrd", env.Path, "--module", mod.Path, "--append", "arg", "--memory", "64M");
        Assert.That(r.Status, Is.EqualTo(5), r.Err);
    }

    [Test]
    public void TracePrintsTheRipOfEachInstruction()
    {
        var r = Emu("boot", "--trace", "--max-instructions", "3");
        Assert.That(r.Status, Is.EqualTo(124));
        Assert.That(r.ErrLines.Count(l => l.StartsWith("trace: rip 0x", StringComparison.Ordinal)), Is.EqualTo(3));
        Assert.That(r.Err, Does.Contain("trace: rip 0x100000"));
    }

    [Test]
    public void TraceIoReportsPortsNoDeviceClaims()
    {
        var code = TestGuest.Assemble(64, a =>
        {
            a.mov(edx, 0x1234);
            a.@in(al, dx);
            a.mov(edx, 0xF4);
            a.@out(dx, al);
        }, 0x100000);
        using var f = new TempFile(code);
        var r = Emu("boot", f.Path, "--format", "flat", "--trace-io", "--memory", "64M");
        Assert.That(r.Status, Is.EqualTo((0xFF << 1) | 1), r.Err);
        Assert.That(r.Err, Does.Contain("unhandled inb 0x1234"));
    }
}
