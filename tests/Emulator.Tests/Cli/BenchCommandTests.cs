using System.Text.Json;
using Emulator.Cli.Workloads;
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

    private static void RequireMix()
    {
        if (!CompiledWorkload.Mix.IsBuilt)
        {
            Assert.Ignore(CompiledWorkload.Mix.NotBuiltMessage);
        }
    }

    private static JsonElement MixJson(out CliRunner.Result r, params string[] extra)
    {
        RequireMix();
        r = Emu(["bench", "cpu", "--workload", "mix", "--rounds", "2", "--json", "--memory", "64M", .. extra]);
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.Clone();
    }

    [Test]
    public void MixRunsToItsEndAndItsChecksumIsRight()
    {
        var root = MixJson(out var r);
        Assert.That(root.GetProperty("checksumOk").GetBoolean(), Is.True);
        Assert.That(root.GetProperty("workload").GetString(), Is.EqualTo("mix"));
        Assert.That(root.GetProperty("rounds").GetUInt64(), Is.EqualTo(2));
        Assert.That(r.Guest, Is.EqualTo($"checksum: 0x{CompiledWorkload.Mix.ExpectedChecksum(2):x16}\n"), "the guest's own line reaches the console");
    }

    [Test]
    public void MixJsonFieldsAreConsistentAndItsModeledCyclesRepeat()
    {
        var first = MixJson(out _);
        var second = MixJson(out _);
        ulong instructions = first.GetProperty("instructions").GetUInt64();
        double seconds = first.GetProperty("seconds").GetDouble();
        double mips = first.GetProperty("mips").GetDouble();
        Assert.That(instructions, Is.GreaterThan(1_000_000));
        Assert.That(mips, Is.EqualTo(instructions / seconds / 1e6).Within(0.5).Percent);
        Assert.That(first.GetProperty("modeledCycles").GetUInt64(), Is.GreaterThanOrEqualTo(instructions));
        Assert.That(first.GetProperty("cycles").GetUInt64(), Is.EqualTo(first.GetProperty("modeledCycles").GetUInt64()));
        Assert.That(second.GetProperty("modeledCycles").GetUInt64(), Is.EqualTo(first.GetProperty("modeledCycles").GetUInt64()));
        Assert.That(second.GetProperty("instructions").GetUInt64(), Is.EqualTo(instructions));
        var host = first.GetProperty("hostCyclesPerInstruction");
        if (HostTsc.Available)
        {
            Assert.That(host.GetDouble(), Is.GreaterThan(0));
        }
        else
        {
            Assert.That(host.ValueKind, Is.EqualTo(JsonValueKind.Null));
        }

        Assert.That(first.GetProperty("decodedBlockCacheBytes").GetInt64(), Is.GreaterThan(0));
    }

    [Test]
    public void MixCutShortByAnInstructionLimitHasNoChecksumVerdict()
    {
        var root = MixJson(out _, "--instructions", "100000");
        Assert.That(root.GetProperty("instructions").GetUInt64(), Is.EqualTo(100000));
        Assert.That(root.GetProperty("checksumOk").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    [Test]
    public void MixTextShowsTheChecksumCheckMipsAndHostCycles()
    {
        RequireMix();
        var r = Emu("bench", "cpu", "--workload", "mix", "--rounds", "1", "--memory", "64M");
        Assert.That(r.Status, Is.Zero, r.Err);
        Assert.That(r.Out, Does.Contain($"mix: 1 rounds, checksum 0x{CompiledWorkload.Mix.ExpectedChecksum(1):x16} ok").And.Contain("MIPS"));
        Assert.That(r.Out, Does.Contain(HostTsc.Available ? "TSC cycles per guest instruction" : "host cycles per instruction: unavailable"));
    }

    [Test]
    public void TheLoopIsTheDefaultWorkload()
    {
        var r = Emu("bench", "cpu", "--workload", "loop", "--json", "--instructions", "10000", "--memory", "64M");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        Assert.That(doc.RootElement.GetProperty("workload").GetString(), Is.EqualTo("loop"));
        Assert.That(doc.RootElement.GetProperty("checksumOk").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    [Test]
    public void TheDecodedBlockCacheLineCountsEveryVcpu()
    {
        var r = Emu("bench", "cpu", "--instructions", "1000", "--memory", "64M", "--smp", "2");
        Assert.That(r.Status, Is.Zero, r.Err);
        Assert.That(r.Out, Does.Match(@"decoded-block cache: \d+ bytes total \([12] caches for 2 vCPUs, \d+ bytes per vCPU\)"));
    }

    [Test]
    public void AnUnknownWorkloadIsAUsageError()
    {
        var r = Emu("bench", "cpu", "--workload", "nope");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.Contain("unknown workload 'nope' (expected loop, mix)"));
    }

    [TestCase("--rounds", "3")]
    [TestCase("--smp", "65")]
    public void OptionsOutOfPlaceAreUsageErrors(string option, string value) =>
        Assert.That(Emu("bench", "cpu", option, value).Status, Is.EqualTo(2));

    [Test]
    public void AnImageAndAWorkloadTogetherAreAUsageError()
    {
        var r = Emu("bench", "cpu", "some.img", "--workload", "mix");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("not both"));
    }

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
