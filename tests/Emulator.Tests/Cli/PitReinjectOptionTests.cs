using Emulator.Cli.Suite;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

/// <summary><c>--pit-reinject</c> and the suite key <c>pit-reinject</c>: the PIT's reinject mode, which inhibits APICv.</summary>
public class PitReinjectOptionTests
{
    private static ulong Counter(string stderr, string name)
    {
        foreach (string line in stderr.Split('\n'))
        {
            string[] f = line.Trim().Split(' ');
            if (f.Length == 2 && f[0] == name)
            {
                return ulong.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        throw new AssertionException($"no counter {name} in:\n{stderr}");
    }

    [Test]
    public void TheDemoWithPitReinjectionRunsWithApicvInhibited()
    {
        var on = Emu("boot", "--pit-reinject", "--stats");
        var off = Emu("boot", "--stats");
        Assert.That(on.Status, Is.Zero, on.Err);
        Assert.That(off.Status, Is.Zero, off.Err);
        Assert.That(Counter(on.Err, "apicv.inhibit.pit_reinj"), Is.EqualTo(1UL));
        Assert.That(Counter(on.Err, "avic.accelerated"), Is.Zero);
        Assert.That(Counter(off.Err, "apicv.inhibit.pit_reinj"), Is.Zero);
        Assert.That(Counter(off.Err, "avic.accelerated"), Is.GreaterThan(0UL));
    }

    [Test]
    public void ASuiteCaseCanTurnItOn()
    {
        var cases = YamlSuite.Parse("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    pit-reinject: true\n    expect: {exit: 0}\n", "s.yaml");
        Assert.That(cases.Single().PitReinject, Is.True);
        var e = Assert.Throws<SuiteFileException>(() => YamlSuite.Parse("name: s\ncases:\n  - name: a\n    guest: builtin:demo\n    pit-reinject: maybe\n    expect: {exit: 0}\n", "s.yaml"));
        Assert.That(e!.Message, Does.Contain("pit-reinject 'maybe': expected true or false"));
    }
}
