using Emulator.Svm.Run;

namespace Emulator.Tests.Core.Decode;

/// <summary>The decoded-block caches' memory as <c>emu bench cpu</c> and the benchmarks report it.</summary>
public sealed class BlockCacheFootprintTests
{
    [Test]
    public void OneVcpuHasOneCacheHoldingItsOpsPool()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        var (bytes, caches) = Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint(m.Cpus);
        Assert.That(caches, Is.EqualTo(1));

        // At least the ops pool: 128 Ki ops, each larger than a pointer.
        Assert.That(bytes, Is.GreaterThan(1 << 20));
    }

    [Test]
    public void AMachinesVcpusShareOneCache()
    {
        using var one = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        using var four = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 4 });
        var single = Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint(one.Cpus);
        var (bytes, caches) = Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint(four.Cpus);
        Assert.That(caches, Is.EqualTo(1));
        Assert.That(bytes, Is.EqualTo(single.Bytes), "four vCPUs hold no more decoded blocks than one");
        Assert.That(Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint([four.Cpus[0], four.Cpus[0]]).Caches, Is.EqualTo(1));
    }
}
