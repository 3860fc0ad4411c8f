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

    [Test]
    public void FaultBenchJsonNamesEveryWorkloadWithItsRates()
    {
        var r = Emu("bench", "faults", "--json", "--seconds", "0.001", "--guest-memory", "64M");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var names = new List<string>();
        foreach (var b in doc.RootElement.GetProperty("benchmarks").EnumerateArray())
        {
            names.Add(b.GetProperty("name").GetString()!);
            Assert.That(b.GetProperty("faultsPerSecond").GetDouble(), Is.GreaterThan(0));
            Assert.That(b.GetProperty("nsPerFault").GetDouble(), Is.GreaterThan(0));
            // The fault paths allocate nothing per fault (what shows in a 1 ms window is the measuring thread's own
            // few bytes spread over the faults); the memslot design copies the memslot array at every update.
            double bytes = b.GetProperty("allocatedBytesPerFault").GetDouble();
            Assert.That(bytes, names[^1] == "toggle-memslot" ? Is.GreaterThan(1.0) : Is.LessThan(1.0), names[^1]);
        }

        Assert.That(names, Is.EqualTo(new[] { "tdp-4k", "tdp-2m", "mmio", "apic-emulate", "shadow-4k", "toggle-zap", "toggle-memslot" }));
    }

    [Test]
    public void FaultBenchFaultsOverTheGuestMemorySize()
    {
        // One tdp-4k pass faults every 4 KiB page of the slot once.
        var r = Emu("bench", "faults", "tdp-4k", "--json", "--seconds", "0.001", "--guest-memory", "8M");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        ulong faults = doc.RootElement.GetProperty("benchmarks")[0].GetProperty("faults").GetUInt64();
        Assert.That(faults % 2048, Is.Zero);
        Assert.That(faults, Is.GreaterThan(0));
    }

    [TestCase("3M")]
    [TestCase("1K")]
    public void AGuestMemoryThatIsNotWhole2MiBPagesIsAUsageError(string size)
    {
        var r = Emu("bench", "faults", "tdp-4k", "--guest-memory", size);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.StartWith("emu: --guest-memory"));
    }

    [TestCase(null, "none")]
    [TestCase("none", "none")]
    [TestCase("rwlock", "rwlock")]
    public void FaultBenchNamesTheMmuLockItMeasured(string? option, string expected)
    {
        string[] args = option == null
            ? ["bench", "faults", "toggle-zap", "--json", "--seconds", "0.001"]
            : ["bench", "faults", "toggle-zap", "--json", "--seconds", "0.001", "--mmu-lock", option];
        var r = Emu(args);
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        Assert.That(doc.RootElement.GetProperty("benchmarks")[0].GetProperty("mmuLock").GetString(), Is.EqualTo(expected));
    }

    [Test]
    public void AnUnknownMmuLockIsAUsageError()
    {
        var r = Emu("bench", "faults", "tdp-4k", "--mmu-lock", "spin");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.Contain("expected none or rwlock"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void TheWorkloadsMmuLockFollowsTheOption(bool locked)
    {
        using var w = Emulator.Mmu.Bench.FaultWorkload.Create("toggle-zap", mmuLock: locked);
        Assert.That(w.Mmu.Lock.Enabled, Is.EqualTo(locked));
        Assert.That(w.Run(), Is.GreaterThan(0UL));
        Assert.That(w.Mmu.Stats.ZapCalls, Is.GreaterThan(0UL), "each inhibit zapped the APIC-access SPTE");
    }
}
