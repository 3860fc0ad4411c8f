using Emulator.Svm.Run;

namespace Emulator.Tests.Core.Devices;

/// <summary>The interrupt-side <c>--stats</c> counters of issue 4: apic.*, irq.* and one vcpu.N.* group per vCPU.</summary>
public sealed class DeviceStatsTests
{
    private static readonly string[] ApicCounters =
    [
        "apic.bus_messages", "apic.interrupts_accepted", "apic.ipis_sent", "apic.timer_fires", "apic.eois",
        "apic.spurious", "apic.smis",
    ];

    private static readonly string[] IrqCounters =
    [
        "irq.pic.acks", "irq.pic.spurious", "irq.pit.fires", "irq.rtc.fires", "irq.rtc.periodic", "irq.rtc.updates",
        "irq.ioapic.deliveries", "irq.ioapic.eois",
    ];

    private static readonly string[] VcpuCounters = ["instructions", "cycles", "interrupts", "nmis", "inits", "startups", "halted"];

    [TestCase(1)]
    [TestCase(3)]
    public void StatsListApicIrqAndPerVcpuCountersOnce(int cpus)
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = cpus });
        var names = m.Stats().Select(s => s.Name).ToList();
        Assert.That(names, Is.Unique);
        var expected = ApicCounters.Concat(IrqCounters)
            .Concat(Enumerable.Range(0, cpus).SelectMany(i => VcpuCounters.Select(c => $"vcpu.{i}.{c}")));
        Assert.That(names, Is.SupersetOf(expected));
        Assert.That(names.Where(n => n.StartsWith("vcpu.", StringComparison.Ordinal)).ToList(), Has.Count.EqualTo(cpus * VcpuCounters.Length), "no vcpu.N group beyond --smp");
    }

    [Test]
    public void ParkedApplicationProcessorsCountAsHalted()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 2 });
        var stats = m.Stats().ToDictionary(s => s.Name, s => s.Value);
        Assert.That(stats["vcpu.0.halted"], Is.Zero);
        Assert.That(stats["vcpu.1.halted"], Is.EqualTo(1UL), "waiting for SIPI");
    }
}
