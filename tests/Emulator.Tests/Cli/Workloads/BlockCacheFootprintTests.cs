using Emulator.Cli.Workloads;
using Emulator.Svm.Run;

namespace Emulator.Tests.Cli.Workloads;

public class BlockCacheFootprintTests
{
    [Test]
    public void OneVcpuHasOneCacheWithItsOpsPool()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        var (bytes, caches) = BlockCacheFootprint.Measure(m);
        Assert.That(caches, Is.EqualTo(1));

        // At least the ops pool: one DecodedOp per slot, each larger than a pointer.
        Assert.That(bytes, Is.GreaterThan(1 << 20));
    }

    [Test]
    public void MoreVcpusCountEachDistinctCacheOnce()
    {
        using var one = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        using var four = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 4 });
        var single = BlockCacheFootprint.Measure(one);
        var (bytes, caches) = BlockCacheFootprint.Measure(four);
        Assert.That(caches, Is.InRange(1, 4));
        Assert.That(bytes, Is.EqualTo(caches * single.Bytes), "every cache has the same fixed arrays");
    }
}
