using Emulator.Core.Cpu;
using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using PfErr = Emulator.Mmu.Fault.PfErr;

namespace Emulator.Tests.Core.Memory;

/// <summary>PhysicalMemory.TranslateGpa: L1 guest-physical addresses through L0's TDP MMU, results as RetPf.</summary>
public class PhysicalMemoryTranslationTests
{
    [Test]
    public void RamIsMappedAndTheRestIsEmulated()
    {
        using var mem = PhysicalMemory.Create(16 << 20);
        Assert.That(mem.TranslateGpa(0x300010, PfErr.Write, out ulong hpa), Is.EqualTo(RetPf.Fixed));
        Assert.That(hpa, Is.EqualTo(0x300010UL));
        Assert.That(mem.TranslateGpa(0x300020, 0, out hpa), Is.EqualTo(RetPf.Continue));
        Assert.That(mem.TranslateGpa(0xA0000, 0, out _), Is.EqualTo(RetPf.Emulate), "VGA hole");
        Assert.That(mem.TranslateGpa(0xE0000, 0, out _), Is.EqualTo(RetPf.Fixed), "BIOS area reads");
        Assert.That(mem.TranslateGpa(0xE0000, PfErr.Write, out _), Is.EqualTo(RetPf.Emulate), "BIOS area is read-only");
    }

    [Test]
    public void WithoutAnMmuTheLayoutDecides()
    {
        using var mem = PhysicalMemory.Create(16 << 20, nestedPaging: false);
        Assert.That(mem.TranslateGpa(0x300010, PfErr.Write, out ulong hpa), Is.EqualTo(RetPf.Continue));
        Assert.That(hpa, Is.EqualTo(0x300010UL));
        Assert.That(mem.TranslateGpa(0xE0000, PfErr.Write, out _), Is.EqualTo(RetPf.Emulate));
        Assert.That(mem.TranslateGpa(0xFF000000, 0, out _), Is.EqualTo(RetPf.Emulate));
    }

    [Test]
    public void AFaultThatKeepsRetryingIsReportedChargedOnceAndEmulatedFromRam()
    {
        // A table arena with room for the root only: every fault-in loses (Retry), as a full arena does.
        using var host = PlatformMemory.CreateHostMemory(16 << 20);
        using var mmu = new MmuContext(host.Size, tableCapacity: 1, host: host, concurrentFaults: false);
        PlatformMemory.CreateMemslots(mmu.Memslots, 16 << 20);
        using var mem = new PhysicalMemory(host, 16 << 20, mmu);
        var diag = new List<string>();
        var cpu = new Cpu(mem) { Diagnostic = diag.Add };
        mem.Running = cpu;
        mem.TryLoad(0x300000, [0x11, 0x22, 0x33, 0x44]);

        ulong before = cpu.Cycles;
        Assert.That(mem.TranslateGpa(0x300000, 0, out _), Is.EqualTo(RetPf.Emulate));
        Assert.That(cpu.Cycles - before, Is.EqualTo(cpu.Costs.VmexitRoundTrip + cpu.Costs.FaultHandling), "one fault, however many attempts");
        Assert.That(mmu.Stats.Of(RetPf.Retry), Is.EqualTo((ulong)PhysicalMemory.MaxFaultAttempts));
        Assert.That(diag, Has.Count.EqualTo(1).And.Some.Contains("still unresolved"));
        Assert.That(mem.Read(0x300000, 4), Is.EqualTo(0x44332211UL), "the emulation path reads the memslot's RAM");
    }
}
