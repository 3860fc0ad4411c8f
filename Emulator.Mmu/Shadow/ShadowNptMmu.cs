using Emulator.Mmu.Fault;
using Emulator.Mmu.Memslots;
using Emulator.Mmu.Spte;
using Emulator.Mmu.Tdp;
using Emulator.Mmu.Walk;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Mmu.Shadow;

/// <summary>
/// L2's nested page tables: a shadow of L1's NPT (rooted at vmcb12's nCR3) combined with L0's memslots.
/// Shadow tables mirror L1's tables one to one (an indirect table shadows the L1 table at its gfn, with
/// role = level); below an L1 huge leaf that the host cannot map as huge, direct tables split it.
/// Every L1 table gfn that a shadow was built from is write-tracked: L1's writes to it are emulated and
/// drop the shadow tables built from it (<see cref="ZapGfn"/>).
/// This slice shadows 4-level long-mode L1 NPTs (L1 running in long mode).
/// </summary>
public sealed class ShadowNptMmu
{
    private const uint RoleDirect = 0x10;

    private readonly MmuContext _ctx;
    private readonly TableArena _arena;
    private readonly GfnMap _byGfn = new(1 << 16);
    private readonly int[] _nextForGfn;

    public ShadowNptMmu(MmuContext ctx)
    {
        _ctx = ctx;
        _arena = ctx.Arena;
        _nextForGfn = new int[_arena.Capacity];
        ctx.TrackedWrite = ZapGfn;
    }

    /// <summary>L1 GPA of L1's nested page-table root (vmcb12 N_CR3).</summary>
    public ulong NestedCr3 { get; private set; }

    /// <summary>L1's EFER.NXE: whether NX in L1's nested entries is honoured.</summary>
    public bool L1Nxe { get; private set; }

    public int Root { get; private set; }

    public ulong ShadowTables { get; private set; }

    /// <summary>Loads (or keeps) the shadow root for nCR3; a different nCR3 drops the old shadow.</summary>
    public bool Load(ulong nestedCr3, bool l1Nxe)
    {
        using var exclusive = _ctx.Lock.Write();
        ulong rootGpa = nestedCr3 & 0x000F_FFFF_FFFF_F000UL;
        if (Root != 0 && rootGpa == NestedCr3 && l1Nxe == L1Nxe)
        {
            return true;
        }

        Unload();
        NestedCr3 = rootGpa;
        L1Nxe = l1Nxe;
        Root = Allocate(TdpMmu.RootLevel, rootGpa >> 12, direct: false, parent: 0, parentIndex: 0);
        return Root != 0;
    }

    public void Unload()
    {
        using var exclusive = _ctx.Lock.Write();
        if (Root != 0)
        {
            Free(Root);
            Root = 0;
        }
    }

    /// <summary>The last shadow SPTE on the walk for an L2 gfn, and its level (for the hardware walk).</summary>
    public ulong Lookup(ulong l2Gfn, out int level)
    {
        level = TdpMmu.RootLevel;
        return Root == 0 ? 0 : _arena.LastSpte(Root, TdpMmu.RootLevel, l2Gfn, out level);
    }

    private static int Index(ulong gfn, int level) => (int)(gfn >> (9 * (level - 1))) & 511;

    /// <summary>
    /// Handles an #NPF taken while L2 runs. pf.Gpa is the L2 guest-physical address; pf.ErrorCode carries
    /// W/ID and GuestPage (bit 33) when the access was L2's own page-table walk. On Emulate, pf.Gfn is the
    /// L1 gfn to emulate against; on ReflectToGuest, ExitInfo1/ExitInfo2 are what L1's #VMEXIT reports.
    /// </summary>
    public RetPf Handle(ref PageFault pf)
    {
        _ctx.Stats.Faults++;
        RetPf r;
        using (_ctx.Lock.Write())
        {
            // The shadow MMU takes the MMU lock exclusively, as KVM's shadow (non-TDP) MMU does: building
            // shadow pages also write-tracks L1's table gfns and zaps their TDP mappings.
            r = HandleCore(ref pf);
        }

        pf.Result = r;
        _ctx.Stats.Count(r);
        return r;
    }

    private RetPf HandleCore(ref PageFault pf)
    {
        pf.IsGuestMode = true;
        if (Root == 0 || _ctx.Host == null)
        {
            return RetPf.Invalid;
        }

        ulong l2Gfn = pf.Gpa >> 12;
        MemslotSet slots = _ctx.Memslots.Current;
        if (pf.IsRsvd)
        {
            ulong cached = Lookup(l2Gfn, out _);
            if (IsMmio(cached))
            {
                ulong gen = slots.Generation;
                if ((gen & MemslotSet.UpdateInProgress) == 0 && MmioGeneration(cached) == (gen & MemslotTable.MmioGenerationMask))
                {
                    pf.Gfn = MmioGfn(cached);
                    return RetPf.Emulate;
                }

                _ctx.Stats.StaleMmioRefaults++;
            }
        }

        // 1. Walk L1's NPT: every access is a user access; table accesses of L2's own walk arrive as writes.
        ulong access = (pf.ErrorCode & (PfErr.Write | PfErr.Fetch)) | PfErr.User;
        var reader = new MemslotTableReader(slots, _ctx.Host);
        WalkResult w = default;
        if (!GuestWalker<LongMode4, MemslotTableReader>.Walk(ref reader, NestedCr3, pf.Gpa, access, L1Nxe, ref w))
        {
            ulong which = (pf.ErrorCode & PfErr.GuestPage) != 0 ? PfErr.GuestPage : PfErr.GuestFinal;
            pf.ExitInfo1 = w.ErrorCode | PfErr.User | which;
            pf.ExitInfo2 = pf.Gpa;
            return RetPf.ReflectToGuest;
        }

        // 2. Fault in the L1 gfn with L2's view of the memslots (private slots invisible).
        ulong l1Gfn = w.Address >> 12;
        var inner = PageFault.For(w.Address, pf.ErrorCode, guestMode: true);
        inner.Gfn = l1Gfn;
        RetPf resolved = _ctx.ResolveSlot(ref inner, slots, out Memslot? slot);
        pf.Gfn = l1Gfn;
        pf.SlotId = inner.SlotId;
        if (resolved != RetPf.Continue)
        {
            return resolved;
        }

        if (slot == null)
        {
            // No memory behind the L1 GPA (or a private slot): an MMIO SPTE, then emulate against L1's GPA.
            RetPf m = Install(l2Gfn, 1, MakeMmio(l1Gfn, MmioAccessMask, slots.Generation), ref w);
            if (m == RetPf.Retry)
            {
                return m;
            }

            _ctx.Stats.MmioSptesCreated++;
            return RetPf.Emulate;
        }

        bool write = pf.IsWrite;
        if (write && slot.IsReadOnly)
        {
            return RetPf.Emulate;
        }

        bool tracked = _ctx.IsWriteTracked(l1Gfn);
        int level = tracked ? 1 : Math.Min(w.Level, _ctx.MaxMappingLevel(slot, l1Gfn, w.Level));
        ulong pages = TdpMmu.PagesAt(level);
        ulong pfn = slot.HostPfn(l1Gfn & ~(pages - 1));

        // A clean L1 leaf is shadowed read-only until the first write, so that write sets L1's D bit.
        bool writable = w.Writable && !slot.IsReadOnly && !tracked && (w.Dirty || write);
        ulong spte = MakeLeaf(pfn, level, writable, hostWritable: !slot.IsReadOnly);
        if (tracked || !w.Writable)
        {
            spte &= ~MmuWritable;
        }

        if (!w.Executable)
        {
            spte |= NoExecute;
        }

        RetPf r = Install(l2Gfn & ~(pages - 1), level, spte, ref w);
        pf.Level = level;
        pf.Pfn = pfn;
        pf.Spte = spte;
        return r;
    }

    /// <summary>Builds the shadow path for an L2 gfn down to <paramref name="level"/> and writes the leaf.</summary>
    private RetPf Install(ulong l2Gfn, int level, ulong spte, ref WalkResult w)
    {
        int t = Root;
        for (int l = TdpMmu.RootLevel; l > level; l--)
        {
            int c = l - 1;
            bool direct = c < w.Level;
            ulong expected = direct ? (l2Gfn >> (9 * c)) << (9 * c) : w.Path[c] >> 12;
            int i = Index(l2Gfn, l);
            ref ulong e = ref _arena.Entry(t, i);
            if (IsShadowPresent(e) && !IsLeaf(e, l))
            {
                int child = ChildTable(e);
                if (_arena.BaseGfn[child] == expected && ((_arena.Role[child] & RoleDirect) != 0) == direct)
                {
                    t = child;
                    continue;
                }

                // L1 now points elsewhere: drop the stale subtree.
                Free(child);
                e = 0;
            }

            if (e != 0)
            {
                _ctx.Stats.SptesZapped++;
            }

            int next = Allocate(c, expected, direct, t, i);
            if (next == 0)
            {
                return RetPf.Retry;
            }

            e = MakeNonLeaf(next);
            t = next;
        }

        ref ulong leaf = ref _arena.Entry(t, Index(l2Gfn, level));
        if (leaf == spte)
        {
            return RetPf.Spurious;
        }

        if (IsShadowPresent(leaf) && !IsLeaf(leaf, level))
        {
            Free(ChildTable(leaf));
        }

        leaf = spte;
        return RetPf.Fixed;
    }

    private int Allocate(int level, ulong gfn, bool direct, int parent, int parentIndex)
    {
        int t = _arena.Allocate(level, gfn, parent, parentIndex, (uint)level | (direct ? RoleDirect : 0));
        if (t == 0)
        {
            return 0;
        }

        ShadowTables++;
        if (!direct)
        {
            _nextForGfn[t] = _byGfn.Get(gfn);
            _byGfn.Set(gfn, t);
            _ctx.TrackWrite(gfn);
        }

        return t;
    }

    /// <summary>Frees a shadow table and everything below it; unlinks it from its gfn chain and write tracking.</summary>
    private void Free(int t)
    {
        int level = _arena.Level[t];
        Span<ulong> table = _arena.Table(t);
        for (int i = 0; i < 512; i++)
        {
            ulong e = table[i];
            if (IsShadowPresent(e) && !IsLeaf(e, level))
            {
                Free(ChildTable(e));
            }
        }

        if ((_arena.Role[t] & RoleDirect) == 0)
        {
            ulong gfn = _arena.BaseGfn[t];
            int head = _byGfn.Get(gfn);
            if (head == t)
            {
                _byGfn.Set(gfn, _nextForGfn[t]);
            }
            else
            {
                for (int p = head; p != 0; p = _nextForGfn[p])
                {
                    if (_nextForGfn[p] == t)
                    {
                        _nextForGfn[p] = _nextForGfn[t];
                        break;
                    }
                }
            }

            _ctx.UntrackWrite(gfn);
        }

        ShadowTables--;
        _arena.Free(t);
    }

    /// <summary>L1 wrote to a page holding tables we shadow: drop every shadow table built from it.</summary>
    public void ZapGfn(ulong gfn)
    {
        using var exclusive = _ctx.Lock.Write();
        int t = _byGfn.Get(gfn);
        while (t != 0)
        {
            int next = _nextForGfn[t];
            if (t == Root)
            {
                // The root stays (it is nCR3); its entries are rebuilt on the next faults.
                Span<ulong> table = _arena.Table(t);
                for (int i = 0; i < 512; i++)
                {
                    ulong e = table[i];
                    if (IsShadowPresent(e) && !IsLeaf(e, TdpMmu.RootLevel))
                    {
                        Free(ChildTable(e));
                    }

                    table[i] = 0;
                }
            }
            else
            {
                int parent = _arena.Parent[t];
                _arena.Entry(parent, _arena.ParentIndex[t]) = 0;
                Free(t);
            }

            _ctx.Stats.ZapCalls++;
            t = next != 0 && _arena.Level[next] != 0 ? next : 0;
        }
    }
}
