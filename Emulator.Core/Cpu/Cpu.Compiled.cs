using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Emulator.Core.Decode;

namespace Emulator.Core.Cpu;

/// <summary>
/// Compiled blocks and their chaining (docs/cpu.md, "Compiled blocks"). A block that ran
/// <see cref="CompileThreshold"/> times through a vCPU's RIP cache is compiled (<see cref="BlockCompiler"/>); a
/// compiled block ends by asking <see cref="Chain"/> for its successor, which makes the checks
/// <see cref="RunBlocks"/> makes between blocks, in the same order, and follows a link the block keeps to the
/// successors it saw, so a run of compiled blocks returns to the loop only when something needs it.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>The default of <see cref="CompileThreshold"/>.</summary>
    public const int DefaultCompileThreshold = 1024;

    /// <summary>
    /// Runs of a block through one entry of this vCPU's RIP cache before it is compiled; 0: never compile (the
    /// interpreter alone, for comparisons). Compiling costs the host about as much as interpreting the block some
    /// thousand times, so only hot blocks are worth it; the guest sees no difference either way.
    /// </summary>
    public int CompileThreshold { get; set; } = DefaultCompileThreshold;

    /// <summary>
    /// The runtime compiles a hot block's method on a worker thread while this vCPU goes on interpreting it, so the
    /// vCPU does not wait for the compiler; false: compiled on its first run, so a compiled block runs from the
    /// moment it is made (for tests that compare the two ways). Either way the guest sees the same.
    /// </summary>
    public bool CompileInBackground { get; set; } = true;

    // The limits of the current RunBlocks call, for Chain: the instruction budget and the cycle to stop at.
    private ulong _chainMaxInstructions;
    private ulong _chainStopCycle;

    // How the last compiled block left the chain (a BlockCompiler result).
    private int _chainResult;

    /// <summary>
    /// Runs compiled blocks from <paramref name="block"/> for as long as they chain, then does what
    /// <see cref="RunOps"/>'s caller would do with the last one's result. False: return to Run.
    /// </summary>
    private bool RunChain(CompiledBlock block, ulong maxInstructions, ulong stopCycle)
    {
        _chainMaxInstructions = maxInstructions;
        _chainStopCycle = stopCycle;
        _chainResult = BlockCompiler.Completed; // unless a block leaves otherwise (LeaveChain)
        CompiledBlock? next = block;
        do
        {
            next = next.Code(this);
        }
        while (next != null);

        int r = _chainResult;
        if (r == BlockCompiler.Completed)
        {
            return true;
        }

        if (r == BlockCompiler.ExitRequested)
        {
            return false;
        }

        Finish(r & ((1 << BlockCompiler.StatusBits) - 1), ref Blocks.Op(r >> BlockCompiler.StatusBits));
        return false;
    }

    /// <summary>A compiled block's way out of the chain with <paramref name="result"/> (called by its code).</summary>
    internal static CompiledBlock? LeaveChain(Cpu c, int result)
    {
        c._chainResult = result;
        return null;
    }

    /// <summary>
    /// Called by a compiled block whose ops all retired with no exit request: the next compiled block to run, or null
    /// to return to <see cref="RunBlocks"/>. Makes the checks RunBlocks makes after a block (a request, the cycle
    /// and instruction limits, the debug path), so chaining changes nothing but the cost of getting there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static CompiledBlock? Chain(CompiledBlock self, Cpu c) => ChainStops(c) ? null : ChainLinked(self, c);

    /// <summary>What stops a chain between two blocks: a request bit, the cycle or timer deadline, the debug path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool ChainStops(Cpu c) => c.Requests != 0 || c.Cycles >= c._chainStopCycle || c.DebugActive;

    /// <summary>The vCPU's code epoch, which a region's method holds its blocks to (BlockCompiler.Region).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong CodeEpochOf(Cpu c) => c._codeEpoch;

    /// <summary>
    /// The chain, or a region's method, goes on to a block of <paramref name="count"/> ops after the checks of
    /// <see cref="ChainStops"/> held: false when the instruction budget does not hold for it; else counts the hit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool EnterBlock(Cpu c, int count)
    {
        if (c.Instructions + (ulong)count > c._chainMaxInstructions)
        {
            return false;
        }

        c._ripCacheHits++;
        return true;
    }

    /// <summary><see cref="Chain"/> after <see cref="ChainStops"/> said go on: the linked successor, when compiled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static CompiledBlock? ChainLinked(CompiledBlock self, Cpu c)
    {
        ulong rip = c.Rip;
        CompiledBlock? next;
        if (self.LinkRip0 == rip && self.LinkEpoch0 == c._codeEpoch && self.LinkCpu0 == c)
        {
            next = self.Link0;
        }
        else if (self.LinkRip1 == rip && self.LinkEpoch1 == c._codeEpoch && self.LinkCpu1 == c)
        {
            next = self.Link1;
        }
        else
        {
            next = c.LinkMiss(self, rip);
        }

        return next != null && EnterBlock(c, next.Count) ? next : null;
    }

    /// <summary>
    /// The successor at <paramref name="rip"/> when it is in the RIP cache and compiled: linked from
    /// <paramref name="self"/> (the older link is replaced) and returned. Null: RunBlocks finds it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private CompiledBlock? LinkMiss(CompiledBlock self, ulong rip)
    {
        ref RipCacheEntry entry = ref RipCacheSlot(rip);
        if (entry.Rip != rip || entry.Epoch != _codeEpoch || entry.Code == null || !entry.Code.Ready)
        {
            return null;
        }

        self.LinkRip1 = self.LinkRip0;
        self.LinkEpoch1 = self.LinkEpoch0;
        self.LinkCpu1 = self.LinkCpu0;
        self.Link1 = self.Link0;
        self.LinkRip0 = rip;
        self.LinkEpoch0 = _codeEpoch;
        self.LinkCpu0 = this;
        self.Link0 = entry.Code;
        return entry.Code;
    }

    /// <summary>
    /// Whether block <paramref name="block"/> at <paramref name="rip"/> ran often through this vCPU's RIP cache
    /// lately (an eighth of the compile threshold, or compiled): worth compiling into a region (BlockCompiler.Region).
    /// </summary>
    internal bool RanOften(ulong rip, int block)
    {
        ref RipCacheEntry entry = ref RipCacheSlot(rip);
        return entry.Rip == rip && entry.Epoch == _codeEpoch && entry.Block == block && (entry.Code != null || entry.Heat >= CompileThreshold / 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref RipCacheEntry RipCacheSlot(ulong rip) =>
        // SAFETY: the slot is masked to the table size.
        ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_ripCache), (int)(rip ^ (rip >> RipCacheBits)) & ((1 << RipCacheBits) - 1));
}
