using System.Text.Json;
using Emulator.Core.Timing;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

/// <summary><c>emu bench nested</c>: the JSON it prints and the modeled cycles of one L2 exit round trip.</summary>
public class NestedBenchCommandTests
{
    [Test]
    public void NestedBenchJsonNamesEveryWorkloadWithItsRates()
    {
        var r = Emu("bench", "nested", "--json", "--seconds", "0.001");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var names = new List<string>();
        var units = new List<string>();
        foreach (var b in doc.RootElement.GetProperty("benchmarks").EnumerateArray())
        {
            names.Add(b.GetProperty("name").GetString()!);
            units.Add(b.GetProperty("unit").GetString()!);
            Assert.That(b.GetProperty("units").GetUInt64(), Is.GreaterThan(0UL));
            Assert.That(b.GetProperty("unitsPerSecond").GetDouble(), Is.GreaterThan(0));
            Assert.That(b.GetProperty("nsPerUnit").GetDouble(), Is.GreaterThan(0));
            Assert.That(b.GetProperty("seconds").GetDouble(), Is.GreaterThan(0));
            Assert.That(b.GetProperty("cyclesPerUnit").GetDouble(), Is.GreaterThan(0));
            // Present and numeric; that the paths allocate nothing is asserted over whole passes (NestedGuestTests),
            // not over this 1 ms window, where a tier-up of the JIT on the measuring thread can show.
            Assert.That(b.GetProperty("allocatedBytesPerUnit").ValueKind, Is.EqualTo(JsonValueKind.Number));
        }

        Assert.That(names, Is.EqualTo(new[] { "vmmcall", "npf-shadow", "npf-reflect", "vmmcall-flush" }));
        Assert.That(units, Is.EqualTo(new[] { "round trip", "fault", "fault", "round trip" }));
    }

    [Test]
    public void ARoundTripCostsOneVmrunAndOneVmexitOfTheCostModel()
    {
        // Every cost zero but the two that L0 charges for L1's VMRUN and for the #VMEXIT it reflects to L1: a round
        // trip (L2's VMMCALL exits to L1, L1 VMRUNs again) is charged each of them twice, and nothing else.
        var costs = new CostTable();
        for (int c = 0; c < (int)CostClass.Count; c++)
        {
            costs.SetClassCycles((CostClass)c, 0);
        }

        costs.TlbMiss = costs.PageWalkLevel = costs.MmioAccess = costs.EventDelivery = costs.DecodeMiss = 0;
        costs.FaultHandling = costs.InstructionEmulation = 0;
        costs.VmexitRoundTrip = 1000;
        costs.HypervisorExit = 234;
        using var file = new TempFile(System.Text.Encoding.UTF8.GetBytes(costs.Format()));
        var r = Emu("bench", "nested", "vmmcall", "--json", "--seconds", "0.001", "--cost-table", file.Path);
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var b = doc.RootElement.GetProperty("benchmarks")[0];
        Assert.That(b.GetProperty("units").GetUInt64(), Is.GreaterThan(0UL));
        Assert.That(b.GetProperty("cyclesPerUnit").GetDouble(), Is.EqualTo(2 * (1000 + 234)));
    }

    [TestCase("vmmcall", 0)]
    [TestCase("vmmcall-flush", 4)]
    public void TheDefaultRoundTripAddsTheInstructionsAndTheTlbRefillsOfTheFlushesL0Does(string workload, int refills)
    {
        // With the default table a round trip also pays the base cycles of its eight instructions: L2's JMP and
        // VMMCALL; L1's CMP [VMCB.EXITCODE] (ALU with memory), JNE, two MOVs (nRIP to RIP), JMP and VMRUN. The TLB is
        // tagged by ASID, so neither world switch refills anything. When L0 flushes the entered world's TLB at every
        // transition (KVM through 6.x), four translations are refilled with a 3-level walk each (2 MiB pages): L2's
        // code after VMRUN; L1's code, its VMCB reads and its VMCB write after the #VMEXIT.
        var d = CostTable.Default;
        ulong instructions = (ulong)((2 * d.ClassCycles(CostClass.Serializing)) + (3 * d.ClassCycles(CostClass.Branch))
            + d.ClassCycles(CostClass.Memory) + (2 * d.ClassCycles(CostClass.Simple)));
        ulong expected = (2 * (d.VmexitRoundTrip + d.HypervisorExit)) + instructions + ((ulong)refills * (d.TlbMiss + (3 * d.PageWalkLevel)));
        var r = Emu("bench", "nested", workload, "--json", "--seconds", "0.001");
        Assert.That(r.Status, Is.Zero, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        Assert.That(doc.RootElement.GetProperty("benchmarks")[0].GetProperty("cyclesPerUnit").GetDouble(), Is.EqualTo((double)expected));
    }

    [Test]
    public void AnUnknownWorkloadIsAUsageError() =>
        Assert.That(Emu("bench", "nested", "vmexit").Status, Is.EqualTo(2));

    [Test]
    public void ABadCostTableIsAUsageError()
    {
        using var file = new TempFile("hypervisor_exit lots\n"u8.ToArray());
        var r = Emu("bench", "nested", "vmmcall", "--cost-table", file.Path);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Err, Does.StartWith("emu: --cost-table"));
    }
}
