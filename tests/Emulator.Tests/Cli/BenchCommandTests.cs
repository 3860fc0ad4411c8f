using System.Text.Json;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

public class BenchCommandTests
{
    [Test]
    public void CpuBenchReportsJsonForTheRequestedInstructionCount()
    {
        var r = Emu("bench", "cpu", "--json", "--instructions", "200000", "--memory", "64M");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.That(root.GetProperty("instructions").GetUInt64(), Is.EqualTo(200000));
        Assert.That(root.GetProperty("cycles").GetUInt64(), Is.GreaterThanOrEqualTo(200000));
        Assert.That(root.GetProperty("seconds").GetDouble(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("mips").GetDouble(), Is.GreaterThan(0));
    }

    [Test]
    public void CpuBenchTextNamesTheUnits()
    {
        var r = Emu("bench", "cpu", "--instructions", "10000", "--memory", "64M");
        Assert.That(r.Status, Is.Zero, r.Err);
        Assert.That(r.Out, Does.Contain("10000 instructions").And.Contain("MIPS").And.Contain("modeled cycles"));
    }

    [Test]
    public void ZeroInstructionsIsAUsageError() =>
        Assert.That(Emu("bench", "cpu", "--instructions", "0").Status, Is.EqualTo(2));
}
