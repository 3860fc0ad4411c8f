using Emulator.Cli;
using Emulator.Cli.Guests;
using Emulator.Mmu.Fault;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

/// <summary><c>emu boot --apicv-toggle zap|memslot</c> (issue 3, item 9).</summary>
public class ApicvToggleOptionTests
{
    [TestCase("zap")]
    [TestCase("memslot")]
    [TestCase("MEMSLOT")]
    public void BootAcceptsEitherToggleMode(string mode)
    {
        var r = Emu("boot", "--apicv-toggle", mode);
        Assert.That(r.Status, Is.EqualTo(DemoGuest.SuccessStatus), r.Err);
        Assert.That(r.Guest, Does.StartWith(DemoGuest.Banner));
    }

    [TestCase("purge")]
    [TestCase("")]
    [TestCase("zap,memslot")]
    public void AnInvalidToggleIsOneUsageLineAndStatusTwo(string mode)
    {
        var r = Emu("boot", "--apicv-toggle", mode);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.StartWith("emu: --apicv-toggle").And.Contain("expected zap or memslot"));
        Assert.That(r.Guest, Is.Empty, "no guest instruction ran");
    }

    [TestCase(null, ApicvToggle.Zap)]
    [TestCase("zap", ApicvToggle.Zap)]
    [TestCase("memslot", ApicvToggle.Memslot)]
    public void TheOptionReachesTheMachinesMmu(string? text, ApicvToggle expected)
    {
        Assert.That(BootCommand.TryParseApicvToggle(text, out var toggle), Is.True);
        using var o = new StringWriter();
        using var e = new StringWriter();
        Assert.That(BootCommand.TryCreate(new CliConsole(Stream.Null, o, e), 16 << 20, 1, [], false, false, out var machine, out _, toggle), Is.True, e.ToString());
        using (machine)
        {
            Assert.That(machine.Memory.Mmu!.Toggle, Is.EqualTo(expected));
        }
    }
}
