namespace Emulator.Core.Cpu;

/// <summary>Read-only views of the interpreter's internal counters, for <c>--stats</c> and benchmarks.</summary>
public sealed partial class Cpu
{
    public ulong DecodeCacheMisses => Blocks.Misses;

    public ulong DecodeCacheHits => Blocks.Hits + _ripCacheHits;

    public ulong DecodeCacheInvalidations => Blocks.Invalidations;
}
