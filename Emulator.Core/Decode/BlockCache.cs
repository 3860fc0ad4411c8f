using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Emulator.Core.Exec;
using Emulator.Core.Memory;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Decode;

/// <summary>
/// Decoded-instruction cache: straight-line blocks of <see cref="DecodedOp"/> keyed by the host address
/// of their first byte and the code size, so a hit costs one hash probe and Iced runs only on misses.
/// A block ends after a control transfer, at the end of its page, or after <see cref="MaxBlockOps"/>.
/// Every page that holds a block is marked as a code page; a write to it drops the page's blocks.
/// One cache serves every vCPU of a VM (<see cref="PhysicalMemory.BlockCacheFor"/>): blocks depend only on the
/// bytes at a host address, the code size and the cost table, never on a vCPU's state, so a block one vCPU decoded
/// runs as it is on the others, and the cache's memory does not grow with the vCPU count. vCPUs run on one host
/// thread, so the cache needs no lock; each vCPU's RIP → block cache is told (its epoch) when blocks go away.
/// </summary>
public sealed unsafe class BlockCache
{
    public const int MaxBlockOps = 64;
    private const int PoolOps = 1 << 17;
    private const int MaxBlocks = 1 << 15;
    private const int HashBits = 14;

    private readonly PhysicalMemory _phys;
    // Pinned: compiled blocks hold the addresses of their ops.
    private readonly DecodedOp[] _ops = GC.AllocateArray<DecodedOp>(PoolOps, pinned: true);
    private readonly CompiledBlock?[] _compiled = new CompiledBlock?[MaxBlocks];
    private int _opsUsed;

    private readonly ulong[] _key = new ulong[MaxBlocks];
    private readonly int[] _start = new int[MaxBlocks];
    private readonly int[] _count = new int[MaxBlocks];
    private readonly int[] _hashNext = new int[MaxBlocks];
    private readonly int[] _pageNext = new int[MaxBlocks];
    private int _blocks = 1; // block 0 is "none"
    private readonly int[] _buckets = new int[1 << HashBits];
    private readonly Dictionary<ulong, int> _pageHead = [];

    private readonly PointerCodeReader _reader = new();
    private readonly HandlerTable _table = Exec.Exec.Table;

    // A one-instruction block for code that cannot be cached (straddles a page, or not in RAM).
    private readonly DecodedOp[] _scratch = new DecodedOp[1];
    private readonly byte[] _scratchBytes = GC.AllocateArray<byte>(16, pinned: true);

    /// <summary>
    /// Decoders over <see cref="_reader"/> by code size (16, 32 and 64 bits at index 0, 1 and 2), made once. A
    /// code-page straddler is looked up, and so decoded again, at every execution (a block cannot hold it), then
    /// decoded from the scratch bytes: neither may allocate.
    /// </summary>
    private readonly Decoder?[] _decoders = new Decoder?[3];

    public ulong Misses;
    public ulong Hits;
    public ulong Invalidations;

    /// <param name="phys">The VM's memory: its code-page marks and the vCPUs whose caches hold this cache's blocks.</param>
    /// <param name="costs">The cost table the ops' modeled cycles come from.</param>
    public BlockCache(PhysicalMemory phys, CostTable costs)
    {
        if (RuntimeFeature.IsDynamicCodeCompiled)
        {
            BlockCompiler.WarmUp();
        }

        _phys = phys;
        Costs = costs;
    }

    /// <summary>The cost table every op's cycles were taken from; vCPUs with another table need another cache.</summary>
    public CostTable Costs { get; }

    /// <summary>
    /// Host bytes the cache holds: its fixed arrays (the ops pool, block keys and links, the compiled-block table,
    /// hash buckets) and the page index, at the 64-bit runtime's sizes; the compiled code itself lives in the
    /// runtime's code heap and is not counted. For reports, not for a run's path.
    /// </summary>
    public long FootprintBytes
    {
        get
        {
            const int arrayHeader = 24;
            long bytes = arrayHeader + ((long)_ops.Length * Unsafe.SizeOf<DecodedOp>());
            bytes += arrayHeader + (_key.Length * sizeof(ulong));
            bytes += 4 * (arrayHeader + ((long)MaxBlocks * sizeof(int)));
            bytes += arrayHeader + ((long)_compiled.Length * IntPtr.Size);
            bytes += arrayHeader + (_buckets.Length * sizeof(int));
            // A dictionary entry: key, value, hash and next, plus its bucket.
            bytes += _pageHead.Count * (sizeof(ulong) + (3 * sizeof(int)) + sizeof(int));
            return bytes;
        }
    }

    public ref DecodedOp Op(int index) => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_ops), index);

    public int Start(int block) => _start[block];

    public int Count(int block) => _count[block];

    /// <summary>Regions compiled (<see cref="BlockCompiler"/>), each one method for one or more blocks.</summary>
    public ulong Compilations;

    /// <summary>
    /// The compiled form of <paramref name="block"/> (made on first request), valid until the block is dropped; null
    /// where the runtime cannot compile code (an ahead-of-time build), which leaves the interpreter to run it.
    /// </summary>
    internal CompiledBlock? Compiled(int block, int bitness, Cpu.Cpu cpu, ulong rip)
    {
        var code = _compiled[block];
        if (code == null && RuntimeFeature.IsDynamicCodeCompiled)
        {
            // The region's other blocks get their entries too, unless compiled already (with a region of their own).
            var region = BlockCompiler.Region(this, block, bitness == 64, cpu, rip);
            var job = BlockCompiler.Prepare((DecodedOp*)Unsafe.AsPointer(ref Op(0)), region, bitness == 64);
            for (int k = 0; k < region.Count; k++)
            {
                _compiled[region[k].Block] ??= job.Entries[k];
            }

            code = job.Entries[0];
            Compilations++;
            if (cpu.CompileInBackground)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static j => j.Run(), job, preferLocal: false);
            }
            else
            {
                job.Run();
            }
        }

        return code;
    }

    /// <summary>Host offset of the block's first byte.</summary>
    internal ulong Hpa(int block) => _key[block] >> 2;

    // A block's key: its host offset and the code size it was decoded for.
    private static ulong KeyOf(ulong hpa, int bitness) => (hpa << 2) | (uint)(bitness >> 5);

    /// <summary>The block decoded at host offset <paramref name="hpa"/> for <paramref name="bitness"/>, or 0 (nothing is decoded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int Find(ulong hpa, int bitness)
    {
        ulong key = KeyOf(hpa, bitness);
        for (int b = _buckets[Hash(key)]; b != 0; b = _hashNext[b])
        {
            if (_key[b] == key)
            {
                return b;
            }
        }

        return 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> (64 - HashBits));

    /// <summary>Finds or builds the block at host offset <paramref name="hpa"/> (linear <paramref name="rip"/>) for the given code size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(ulong hpa, int bitness, byte* hostPtr, ulong rip)
    {
        int b = Find(hpa, bitness);
        if (b != 0)
        {
            Hits++;
            return b;
        }

        return Build(KeyOf(hpa, bitness), hpa, bitness, hostPtr, rip);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int Build(ulong key, ulong hpa, int bitness, byte* hostPtr, ulong rip)
    {
        Misses++;
        if (_blocks >= MaxBlocks || _opsUsed + MaxBlockOps > PoolOps)
        {
            Flush();
        }

        int pageLeft = (int)(0x1000 - (hpa & 0xFFF));
        var decoder = DecoderAt(hostPtr, pageLeft, bitness, rip);
        int start = _opsUsed;
        int n = 0;
        var costs = Costs;
        while (n < MaxBlockOps)
        {
            decoder.Decode(out Instruction ins);
            if (_reader.Overrun)
            {
                // The instruction runs into the next page: stop before it (it will run uncached).
                break;
            }

            ref DecodedOp op = ref _ops[start + n];
            OpBuilder.Build(ins, ref op, _table, costs);
            n++;
            if (ins.FlowControl != FlowControl.Next || _reader.Position >= pageLeft || ins.Code == Code.INVALID)
            {
                break;
            }

        }

        if (n == 0)
        {
            return 0;
        }

        _opsUsed += n;
        int b = _blocks++;
        _key[b] = key;
        _start[b] = start;
        _count[b] = n;
        int h = Hash(key);
        _hashNext[b] = _buckets[h];
        _buckets[h] = b;
        ulong page = hpa >> 12;
        _pageNext[b] = _pageHead.TryGetValue(page, out int head) ? head : 0;
        _pageHead[page] = b;
        if (!_phys.IsCodePage(page))
        {
            _phys.MarkCodePage(hpa);
            foreach (var cpu in _phys.Cpus)
            {
                cpu.FlushWriteTlb();
            }
        }

        return b;
    }

    /// <summary>Decodes one instruction from <paramref name="bytes"/> into the scratch slot (uncached path).</summary>
    public ref DecodedOp DecodeScratch(ReadOnlySpan<byte> bytes, int bitness, ulong rip)
    {
        // No allocation per instruction: the bytes go to a pinned buffer the block decoder reads.
        bytes.CopyTo(_scratchBytes);
        DecoderAt((byte*)Unsafe.AsPointer(ref _scratchBytes[0]), bytes.Length, bitness, rip).Decode(out Instruction ins);
        OpBuilder.Build(ins, ref _scratch[0], _table, Costs);
        return ref _scratch[0];
    }

    /// <summary>The decoder for <paramref name="bitness"/>, reading the <paramref name="length"/> bytes at <paramref name="code"/> as RIP <paramref name="rip"/>.</summary>
    private Decoder DecoderAt(byte* code, int length, int bitness, ulong rip)
    {
        _reader.Reset(code, length);
        // AMD decoding (the AMD64 manuals win): 66h near branches in 64-bit mode are 16-bit, no o64 far JMP/CALL [mem].
        var decoder = _decoders[bitness >> 5] ??= Decoder.Create(bitness, _reader, 0, DecoderOptions.AMD);
        decoder.IP = rip;
        return decoder;
    }

    /// <summary>Drops every block decoded from the RAM page at host offset <paramref name="hpaPage"/>.</summary>
    public void InvalidatePage(ulong hpaPage)
    {
        if (!_pageHead.Remove(hpaPage >> 12, out int b))
        {
            return;
        }

        while (b != 0)
        {
            Unlink(b);
            Invalidations++;
            b = _pageNext[b];
        }
    }

    private void Unlink(int b)
    {
        int h = Hash(_key[b]);
        ref int link = ref _buckets[h];
        while (link != 0)
        {
            if (link == b)
            {
                link = _hashNext[b];
                break;
            }

            link = ref _hashNext[link];
        }

        _key[b] = ulong.MaxValue;
        _compiled[b] = null;
    }

    /// <summary>Drops every block (the pool is full); every vCPU of the VM forgets the blocks it looked up.</summary>
    public void Flush()
    {
        foreach (var cpu in _phys.Cpus)
        {
            cpu.BumpCodeEpoch();
        }

        Array.Clear(_buckets);
        Array.Clear(_compiled);
        foreach (var page in _pageHead.Keys)
        {
            _phys.ClearCodePage(page << 12);
        }

        _pageHead.Clear();
        _blocks = 1;
        _opsUsed = 0;
    }

    public int BlockCount => _blocks - 1;

    /// <summary>Iced code reader over a host pointer, bounded by the end of the page.</summary>
    private sealed class PointerCodeReader : CodeReader
    {
        private byte* _p;
        private int _len;

        public int Position { get; private set; }

        public bool Overrun { get; private set; }

        public void Reset(byte* p, int len)
        {
            _p = p;
            _len = len;
            Position = 0;
            Overrun = false;
        }

        public override int ReadByte()
        {
            if (Position >= _len)
            {
                Overrun = true;
                return -1;
            }

            return _p[Position++];
        }
    }
}
