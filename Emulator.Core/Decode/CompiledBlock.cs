namespace Emulator.Core.Decode;

/// <summary>The code of a compiled block: runs it on a vCPU and returns the compiled block to run next, or null.</summary>
internal delegate CompiledBlock? BlockCode(Cpu.Cpu c);

/// <summary>
/// A block compiled by <see cref="BlockCompiler"/> as one entry of its region's method, shared by the VM's vCPUs like the block it was made from, with
/// links to the two successors it last saw. A link holds for the vCPU that made it and that vCPU's code epoch, so
/// anything that drops blocks or changes how RIP maps to them (which moves the epoch on) breaks every link at once.
/// </summary>
internal sealed class CompiledBlock
{
    public CompiledBlock(int start, int count, int regionIndex, long delta)
    {
        Start = start;
        Count = count;
        RegionIndex = regionIndex;
        Delta = delta;
    }

    /// <summary>The compiled code, closed over this object.</summary>
    public BlockCode Code { get; set; } = null!;

    /// <summary>Pool index of the block's first op.</summary>
    public int Start { get; }

    /// <summary>Ops in the block.</summary>
    public int Count { get; }

    /// <summary>The block's place in the region compiled with it (BlockCompiler.Region): where its code starts.</summary>
    public readonly int RegionIndex;

    /// <summary>Bytes from the region's first block to this one, in their page.</summary>
    public readonly long Delta;

    /// <summary>The entries of every block of the region, by RegionIndex (the same array for all of them).</summary>
    public CompiledBlock[] Members = [];

    /// <summary>
    /// The code may run: the region's method is compiled (BlockCompiler.RegionJob, on a worker thread unless the vCPU
    /// says otherwise). Until then the interpreter runs the block.
    /// </summary>
    public volatile bool Ready;

    // The successors last seen: linear RIP, the vCPU and its code epoch when linked, and the block.
    internal ulong LinkRip0, LinkEpoch0, LinkRip1, LinkEpoch1;
    internal Cpu.Cpu? LinkCpu0, LinkCpu1;
    internal CompiledBlock? Link0, Link1;
}
