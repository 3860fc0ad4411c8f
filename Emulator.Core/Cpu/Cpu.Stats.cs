namespace Emulator.Core.Cpu;

/// <summary>Read-only views of the interpreter's internal counters, for <c>--stats</c> and benchmarks.</summary>
public sealed partial class Cpu
{
    public ulong DecodeCacheMisses => Blocks.Misses;

    public ulong DecodeCacheHits => Blocks.Hits + _ripCacheHits;

    public ulong DecodeCacheInvalidations => Blocks.Invalidations;

    /// <summary>
    /// Host bytes of the decoded-block caches <paramref name="cpus"/> use, each distinct cache counted once, and how
    /// many there are.
    /// </summary>
    public static (long Bytes, int Caches) DecodedBlockCacheFootprint(IEnumerable<Cpu> cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        var seen = new HashSet<Decode.BlockCache>(ReferenceEqualityComparer.Instance);
        long bytes = 0;
        foreach (var cpu in cpus)
        {
            if (seen.Add(cpu.Blocks))
            {
                bytes += cpu.Blocks.FootprintBytes;
            }
        }

        return (bytes, seen.Count);
    }
}
