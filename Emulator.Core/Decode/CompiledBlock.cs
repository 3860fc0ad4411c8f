namespace Emulator.Core.Decode;

/// <summary>The code of a compiled block: runs it on a vCPU and returns the compiled block to run next, or null.</summary>
internal delegate CompiledBlock? BlockCode(Cpu.Cpu c);

/// <summary>
/// A block compiled by <see cref="BlockCompiler"/>, shared by the VM's vCPUs like the block it was made from, with
/// links to the two successors it last saw. A link holds for the vCPU that made it and that vCPU's code epoch, so
/// anything that drops blocks or changes how RIP maps to them (which moves the epoch on) breaks every link at once.
/// </summary>
internal sealed class CompiledBlock
{
    public CompiledBlock(int start, int count)
    {
        Start = start;
        Count = count;
    }

    /// <summary>The compiled code, closed over this object.</summary>
    public BlockCode Code { get; set; } = null!;

    /// <summary>Pool index of the block's first op.</summary>
    public int Start { get; }

    /// <summary>Ops in the block.</summary>
    public int Count { get; }

    // The successors last seen: linear RIP, the vCPU and its code epoch when linked, and the block.
    internal ulong LinkRip0, LinkEpoch0, LinkRip1, LinkEpoch1;
    internal Cpu.Cpu? LinkCpu0, LinkCpu1;
    internal CompiledBlock? Link0, Link1;
}
