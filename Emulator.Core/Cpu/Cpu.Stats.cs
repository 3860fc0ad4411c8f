namespace Emulator.Core.Cpu;

/// <summary>Read-only views of the interpreter's internal counters, for <c>--stats</c> and benchmarks.</summary>
public sealed partial class Cpu
{
    /// <summary>Blocks decoded by the decoded-block cache this vCPU uses (shared by the VM's vCPUs).</summary>
    public ulong DecodeCacheMisses => Blocks.Misses;

    /// <summary>Block lookups the shared cache answered plus this vCPU's RIP-cache and chained hits.</summary>
    public ulong DecodeCacheHits => Blocks.Hits + _ripCacheHits;

    /// <summary>Blocks the shared cache dropped after writes to their code.</summary>
    public ulong DecodeCacheInvalidations => Blocks.Invalidations;

    /// <summary>Regions the shared cache compiled (docs/cpu.md, "Compiled blocks", "Regions").</summary>
    public ulong CompiledBlocks => Blocks.Compilations;

    /// <summary>
    /// The decoded-block counters of <paramref name="cpus"/> with each shared cache counted once: blocks decoded,
    /// lookups answered without decoding, blocks dropped, regions compiled.
    /// </summary>
    public static (ulong Misses, ulong Hits, ulong Invalidations, ulong Compiled) DecodeCacheCounters(IEnumerable<Cpu> cpus)
    {
        ulong misses = 0, hits = 0, invalidations = 0, compiled = 0;
        foreach (var cache in DistinctCaches(cpus))
        {
            misses += cache.Misses;
            hits += cache.Hits;
            invalidations += cache.Invalidations;
            compiled += cache.Compilations;
        }

        foreach (var cpu in cpus)
        {
            hits += cpu._ripCacheHits;
        }

        return (misses, hits, invalidations, compiled);
    }

    /// <summary>
    /// Host bytes of the decoded-block caches <paramref name="cpus"/> use, each distinct cache counted once, and how
    /// many there are.
    /// </summary>
    public static (long Bytes, int Caches) DecodedBlockCacheFootprint(IEnumerable<Cpu> cpus)
    {
        var caches = DistinctCaches(cpus);
        long bytes = 0;
        foreach (var cache in caches)
        {
            bytes += cache.FootprintBytes;
        }

        return (bytes, caches.Count);
    }

    /// <summary>The decoded-block caches <paramref name="cpus"/> use, each once (a VM's vCPUs share one).</summary>
    private static List<Decode.BlockCache> DistinctCaches(IEnumerable<Cpu> cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        var caches = new List<Decode.BlockCache>();
        foreach (var cpu in cpus)
        {
            if (!caches.Contains(cpu.Blocks))
            {
                caches.Add(cpu.Blocks);
            }
        }

        return caches;
    }
}
