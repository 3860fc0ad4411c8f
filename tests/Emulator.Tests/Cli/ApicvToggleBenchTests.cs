using System.Text.Json;
using Emulator.Core.Timing;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

/// <summary>
/// <c>emu bench apicv-toggle</c>: one guest, one inhibit and one un-inhibit per iteration, under both designs; what each
/// design did follows from KVM's steps (docs/avic.md, "What a toggle costs").
/// </summary>
public class ApicvToggleBenchTests
{
    private const int Iterations = 20;

    private static JsonElement Design(JsonDocument doc, string name)
    {
        foreach (var d in doc.RootElement.GetProperty("designs").EnumerateArray())
        {
            if (d.GetProperty("design").GetString() == name)
            {
                return d;
            }
        }

        throw new AssertionException($"no design {name}");
    }

    private static ulong U(JsonElement e, string name) => e.GetProperty(name).GetUInt64();

    [Test]
    public void BothDesignsRunTheSameTogglesAndDifferInWhatEachToggleDoes()
    {
        var r = Emu("bench", "apicv-toggle", "--iterations", $"{Iterations}", "--rounds", "1", "--json");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var zap = Design(doc, "zap");
        var memslot = Design(doc, "memslot");
        var c = CostTable.Default;
        foreach (var d in new[] { zap, memslot })
        {
            Assert.That(U(d, "transitions"), Is.EqualTo(2UL * Iterations), "one inhibit and one un-inhibit per iteration");
            Assert.That(U(d, "accelerated"), Is.GreaterThan(0UL));
            Assert.That(U(d, "emulated"), Is.GreaterThan(0UL), "APIC reads while inhibited");
            Assert.That(U(d, "toggleCycles"), Is.EqualTo(U(d, "costKick") + U(d, "costExit") + U(d, "costMmuLock") + U(d, "costZap")
                + U(d, "costMemslotInstall") + U(d, "costSrcu") + U(d, "costRootReload")));
        }

        // Zap: one SPTE per inhibit, nothing else removed; the I/O APIC's MMIO SPTE is made once and stays valid.
        Assert.That(U(zap, "sptesZapped"), Is.EqualTo((ulong)Iterations));
        Assert.That(U(zap, "zapAll"), Is.Zero);
        Assert.That(U(zap, "mmioSptesCreated"), Is.EqualTo(1UL));
        Assert.That(U(zap, "mmioStaleRefaults"), Is.Zero);
        Assert.That(U(zap, "costSrcu") + U(zap, "costMemslotInstall") + U(zap, "costRootReload"), Is.Zero);

        // Memslot: every inhibit deletes the slot (two installs and grace periods, every root zapped), every
        // un-inhibit re-creates it (one of each); the generation bumps make the cached MMIO SPTE stale.
        Assert.That(U(memslot, "zapAll"), Is.EqualTo((ulong)Iterations));
        Assert.That(U(memslot, "sptesZapped"), Is.GreaterThan(U(zap, "sptesZapped")));
        Assert.That(U(memslot, "costSrcu"), Is.EqualTo(3UL * Iterations * c.SrcuGracePeriod));
        Assert.That(U(memslot, "costMemslotInstall"), Is.EqualTo(3UL * Iterations * c.MemslotInstall));
        Assert.That(U(memslot, "mmioStaleRefaults"), Is.GreaterThan(0UL));
        Assert.That(U(memslot, "faults"), Is.GreaterThan(U(zap, "faults")), "the working set faults in again after every zap-all");

        var ratio = doc.RootElement.GetProperty("ratio");
        Assert.That(ratio.GetProperty("cycles").GetDouble(), Is.GreaterThan(1.0));
        Assert.That(ratio.GetProperty("cycles").GetDouble(), Is.EqualTo((double)U(memslot, "cycles") / U(zap, "cycles")).Within(0.001));
    }

    [Test]
    public void TheCostTableSetsWhatEachStepCosts()
    {
        using var file = new TempFile("srcu_grace_period 0\nmemslot_install 7\n"u8.ToArray());
        var r = Emu("bench", "apicv-toggle", "memslot", "--iterations", "5", "--rounds", "1", "--json", "--cost-table", file.Path);
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var memslot = Design(doc, "memslot");
        Assert.That(U(memslot, "costSrcu"), Is.Zero);
        Assert.That(U(memslot, "costMemslotInstall"), Is.EqualTo(3UL * 5 * 7));
        Assert.That(doc.RootElement.TryGetProperty("ratio", out _), Is.False, "one design: no ratio");
    }

    [Test]
    public void TheTableShowsBothDesignsAndTheirRatio()
    {
        var r = Emu("bench", "apicv-toggle", "--iterations", "5", "--rounds", "1");
        Assert.That(r.Status, Is.Zero, r.Err);
        Assert.That(r.Out, Does.Contain("memslot/zap"));
        Assert.That(r.Out, Does.Match(@"SRCU grace periods\s+0\s+[\d,]+"));
    }

    [TestCase("--smp", "1")]
    [TestCase("--iterations", "0")]
    [TestCase("--rounds", "0")]
    public void BadOptionsAreUsageErrors(string option, string value)
    {
        var r = Emu("bench", "apicv-toggle", option, value);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain(option));
    }
}
