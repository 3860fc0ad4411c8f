using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;
using Emulator.Mmu.Spte;
using Emulator.Mmu.Tdp;
using Emulator.Mmu.Walk;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Mmu.Shadow;

/// <summary>
/// L2's nested page tables: a shadow of L1's NPT (rooted at vmcb12's nCR3) combined with L0's memslots.
///
/// L1's NPT has the format of L1's own paging mode at VMRUN (APM vol. 2 §15.25): legacy 2-level 32-bit
/// (4 KiB pages, 4 MiB with CR4.PSE), PAE or 4-level long mode. The shadow, which is what the hardware
/// walks for L2, is always in the 4-level SPTE format, so (as KVM's shadow MMU does for 32-bit and PAE
/// guests) one L1 table may be spread over several shadow tables and one shadow table may stand for part
/// of an L1 table:
/// - Long mode: shadow table at level l shadows the L1 table read at level l (the root shadows the PML4).
/// - PAE: the level-4 root and the level-3 tables shadow the PDPT (the four PDPTEs; a level-3 shadow
///   entry i follows PDPTE i &amp; 3), levels 2 and 1 the PDs and PTs.
/// - Legacy: the root and level 3 shadow the 1024-entry PD as a whole; a level-2 shadow table covers one
///   quarter of it (quadrant = address bits 31:30, two 2 MiB shadow entries per 4 MiB PDE), a level-1
///   shadow table one half of a 1024-entry PT (quadrant = address bit 21). A 4 MiB leaf is mapped by
///   2 MiB shadow leaves, or split into 4 KiB when the host cannot map 2 MiB.
/// Shadow tables are keyed by (gfn, role) with role = level, direct, format, quadrant and L1's EFER.NXE.
/// Below an L1 huge leaf that the host cannot map as huge, direct tables split it.
///
/// Legacy and PAE formats translate only address bits 31:0: higher L2 GPA bits are ignored by the walk
/// (as KVM's walker and QEMU's nested walk do), while the shadow is still built at the full L2 GPA.
///
/// PAE: in nested paging the four PDPTEs are not held in PDPTE registers but read from nCR3's memory on
/// each walk, and checked for reserved bits there (a RSVD #NPF). KVM on AMD reads them from memory too
/// (its get_pdptr for nested NPT reads L1 memory at nCR3); unlike KVM, which re-reads them only when it
/// rebuilds its PAE root, the PDPT page is write-tracked here like every other L1 table page, so a PDPTE
/// write drops the shadow built from it at once.
///
/// Every L1 table gfn that a shadow was built from is write-tracked: L1's writes to it are emulated and
/// drop the shadow tables built from it (<see cref="ZapGfn"/>).
///
/// Address kinds (Memory/Addresses.cs): the shadow is where an L2 GPA (<see cref="L2Gpa"/>, what L2 faulted
/// on and what the shadow tables are indexed by), an L1 GPA (<see cref="Gpa"/>/<see cref="Gfn"/>: nCR3, L1's
/// table pages, the frame L1's NPT maps the L2 address to) and a host frame (the SPTE's pfn) meet, so L2
/// addresses have their own types and cannot be passed where an L1 address is expected. The generic walker
/// and the SPTE/arena code stay on raw ulongs (one walker serves both), unwrapped here at the call.
/// </summary>
public sealed class ShadowNptMmu
{
    // Role bits (KVM's kvm_mmu_page_role, the parts that matter here).
    private const uint RoleDirect = 0x10;
    private const uint RoleNx = 0x20;
    private const int RoleModeShift = 6;
    private const int RoleQuadrantShift = 8;

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
        ctx.ShadowZapAll = ZapAll;
    }

    /// <summary>L1 GPA of L1's nested page-table root (vmcb12 N_CR3).</summary>
    public Gpa NestedCr3 { get; private set; }

    /// <summary>L1's EFER.NXE: whether NX in L1's nested entries is honoured.</summary>
    public bool L1Nxe { get; private set; }

    /// <summary>Format of L1's nested page tables (L1's paging mode at VMRUN).</summary>
    public PagingMode Mode { get; private set; } = PagingMode.LongMode4;

    public int Root { get; private set; }

    /// <summary>
    /// Whether an #NPF of an instruction fetch reports I/D (EXITINFO1 bit 4): as for #PF, only when NX (L1's
    /// EFER.NXE) or SMEP (L1's CR4.SMEP) is on (APM vol. 2 §8.4.2; kvm-unit-tests checks it on bare metal).
    /// </summary>
    public bool ReportFetch { get; set; } = true;

    public ulong ShadowTables { get; private set; }

    /// <summary>Loads (or keeps) the shadow root for a 4-level long-mode L1 NPT at nCR3 (the register value).</summary>
    public bool Load(ulong nestedCr3, bool l1Nxe) => Load(nestedCr3, PagingMode.LongMode4, l1Nxe);

    /// <summary>
    /// Roots kept besides the current one (KVM keeps a few previous roots per vCPU so that switching back to a
    /// recent nCR3 does not rebuild its shadow). Here the cache serves every vCPU of the VM: vCPUs running L2s
    /// with different nCR3s switch between their roots instead of rebuilding each other's.
    /// </summary>
    public const int CachedRoots = 8;

    private readonly (Gpa NestedCr3, PagingMode Mode, bool Nxe, int Table)[] _cached = new (Gpa, PagingMode, bool, int)[CachedRoots];

    /// <summary>
    /// Loads (or keeps) the shadow root for L1's NPT at nCR3 in format <paramref name="mode"/> (from L1's
    /// CR4 and EFER: <see cref="PagingModes.FromControlRegisters"/>). A root built earlier for the same nCR3,
    /// format and NXE is taken back from the cache with its tables; otherwise a new one is allocated, and the
    /// current one is cached (evicting the oldest cached root, whose shadow is dropped). No table built for
    /// one format or NXE is reused for another: each root's tree is its own.
    /// </summary>
    public bool Load(ulong nestedCr3, PagingMode mode, bool l1Nxe)
    {
        using var exclusive = _ctx.Lock.Write();
        var rootGpa = new Gpa(PagingModes.RootAddress(mode, nestedCr3));
        if (Root != 0 && rootGpa == NestedCr3 && mode == Mode && l1Nxe == L1Nxe)
        {
            return true;
        }

        var current = (NestedCr3, Mode, L1Nxe, Root);
        int hit = -1;
        for (int i = 0; i < CachedRoots; i++)
        {
            var c = _cached[i];
            if (c.Table != 0 && c.NestedCr3 == rootGpa && c.Mode == mode && c.Nxe == l1Nxe)
            {
                hit = i;
                break;
            }
        }

        if (hit >= 0)
        {
            Root = _cached[hit].Table;
            RemoveCached(hit);
        }
        else
        {
            Root = 0;
        }

        if (current.Root != 0)
        {
            PushCached(current);
        }

        NestedCr3 = rootGpa;
        Mode = mode;
        L1Nxe = l1Nxe;
        if (Root == 0)
        {
            Root = mode switch
            {
                PagingMode.LongMode4 => AllocateRoot<LongMode4>(),
                PagingMode.Pae => AllocateRoot<Pae>(),
                PagingMode.Legacy32Pse => AllocateRoot<Legacy32Pse>(),
                _ => AllocateRoot<Legacy32>(),
            };
        }

        return Root != 0;
    }

    /// <summary>Most recent first: slot 0 is the root used last.</summary>
    private void PushCached((Gpa, PagingMode, bool, int Table) root)
    {
        if (_cached[CachedRoots - 1].Table != 0)
        {
            Free(_cached[CachedRoots - 1].Table);
        }

        Array.Copy(_cached, 0, _cached, 1, CachedRoots - 1);
        _cached[0] = root;
    }

    private void RemoveCached(int i)
    {
        Array.Copy(_cached, i + 1, _cached, i, CachedRoots - 1 - i);
        _cached[CachedRoots - 1] = default;
    }

    /// <summary>True for a root table (the current or a cached one): roots have no parent.</summary>
    private bool IsRoot(int t) => _arena.Parent[t] == 0;

    private int AllocateRoot<TFormat>()
        where TFormat : struct, IPagingFormat
    {
        const int level = TdpMmu.RootLevel;
        return Allocate(level, NestedCr3.Gfn.Value, Role<TFormat>(level, direct: false, TFormat.ShadowQuadrant(0, NestedCr3.Value, level)), parent: 0, parentIndex: 0);
    }

    /// <summary>The role of a shadow table of this root's format and NXE.</summary>
    private uint Role<TFormat>(int level, bool direct, uint quadrant)
        where TFormat : struct, IPagingFormat
        => (uint)level | (direct ? RoleDirect : 0) | (L1Nxe ? RoleNx : 0) | ((uint)TFormat.Mode << RoleModeShift) | (quadrant << RoleQuadrantShift);

    /// <summary>Drops the current root and every cached one, with all their shadow tables.</summary>
    public void Unload()
    {
        using var exclusive = _ctx.Lock.Write();
        if (Root != 0)
        {
            Free(Root);
            Root = 0;
        }

        for (int i = 0; i < CachedRoots; i++)
        {
            if (_cached[i].Table != 0)
            {
                Free(_cached[i].Table);
            }

            _cached[i] = default;
        }
    }

    /// <summary>
    /// Every root invalidated (<see cref="MmuContext.ZapAllFast"/>): the cached roots go with their tables and the
    /// current one is emptied, so L2 faults everything in again under the same nCR3.
    /// </summary>
    public void ZapAll()
    {
        using var exclusive = _ctx.Lock.Write();
        for (int i = 0; i < CachedRoots; i++)
        {
            if (_cached[i].Table != 0)
            {
                Free(_cached[i].Table);
            }

            _cached[i] = default;
        }

        if (Root != 0)
        {
            ClearRoot(Root);
        }
    }

    /// <summary>The last shadow SPTE on the walk for an L2 gfn, and its level (for the hardware walk).</summary>
    public ulong Lookup(L2Gfn l2Gfn, out int level)
    {
        level = TdpMmu.RootLevel;
        return Root == 0 ? 0 : _arena.LastSpte(Root, TdpMmu.RootLevel, l2Gfn.Value, out level);
    }

    private static int Index(ulong gfn, int level) => (int)(gfn >> (9 * (level - 1))) & 511;

    /// <summary>
    /// Handles an #NPF taken while L2 runs (<see cref="PageFault.ForL2"/>). pf.L2Gpa is the L2 guest-physical address; pf.ErrorCode carries
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
            // One switch per fault picks the code specialized for L1's table format.
            r = Mode switch
            {
                PagingMode.LongMode4 => HandleCore<LongMode4>(ref pf),
                PagingMode.Pae => HandleCore<Pae>(ref pf),
                PagingMode.Legacy32Pse => HandleCore<Legacy32Pse>(ref pf),
                _ => HandleCore<Legacy32>(ref pf),
            };
        }

        pf.Result = r;
        _ctx.Stats.Count(r);
        return r;
    }

    private RetPf HandleCore<TFormat>(ref PageFault pf)
        where TFormat : struct, IPagingFormat
    {
        pf.IsGuestMode = true;
        if (Root == 0 || _ctx.Host == null)
        {
            return RetPf.Invalid;
        }

        L2Gpa l2Gpa = pf.L2Gpa;
        ulong l2Gfn = l2Gpa.Gfn.Value;
        MemslotSet slots = _ctx.Memslots.Current;
        if (pf.IsRsvd)
        {
            ulong cached = Lookup(l2Gpa.Gfn, out _);
            // The cached MMIO SPTE carries the access L1's tables allowed when it was made (KVM's MMIO access
            // bits); a write it does not allow walks L1's tables again, so their permission fault reaches L1.
            if (IsMmio(cached) && (!pf.IsWrite || (cached & Writable) != 0))
            {
                ulong gen = slots.Generation;
                if ((gen & MemslotSet.UpdateInProgress) == 0 && MmioGeneration(cached) == (gen & MemslotTable.MmioGenerationMask))
                {
                    pf.Gfn = new Gfn(MmioGfn(cached));
                    return RetPf.Emulate;
                }

                _ctx.Stats.StaleMmioRefaults++;
            }
        }

        // 1. Walk L1's NPT: every access is a user access; table accesses of L2's own walk arrive as writes.
        // NX follows L1's EFER.NXE; 1 GiB pages and PSE-36 are always there, and I/D is reported for fetches.
        ulong access = (pf.ErrorCode & (PfErr.Write | PfErr.Fetch)) | PfErr.User;
        WalkRules hostRules = WalkRules.Page1Gb | WalkRules.Pse36 | (ReportFetch ? WalkRules.ReportFetch : 0);
        var reader = new MemslotTableReader(slots, _ctx.Host);
        WalkResult w = default;
        if (!GuestWalker<TFormat, MemslotTableReader>.Walk(ref reader, NestedCr3.Value, l2Gpa.Value, access, hostRules | (L1Nxe ? WalkRules.Nxe : 0), ref w))
        {
            ulong which = (pf.ErrorCode & PfErr.GuestPage) != 0 ? PfErr.GuestPage : PfErr.GuestFinal;
            pf.ExitInfo1 = w.ErrorCode | PfErr.User | which;
            pf.ExitInfo2 = l2Gpa.Value;
            return RetPf.ReflectToGuest;
        }

        // 2. Fault in the L1 gfn with L2's view of the memslots (private slots invisible).
        var l1Gpa = new Gpa(w.Address);
        ulong l1Gfn = l1Gpa.Gfn.Value;
        var inner = PageFault.For(l1Gpa, pf.ErrorCode, guestMode: true);
        inner.Gfn = l1Gpa.Gfn;
        RetPf resolved = _ctx.ResolveSlot(ref inner, slots, out Memslot? slot);
        pf.Gfn = l1Gpa.Gfn;
        pf.SlotId = inner.SlotId;
        if (resolved != RetPf.Continue)
        {
            return resolved;
        }

        if (slot == null)
        {
            // No memory behind the L1 GPA (or a private slot): an MMIO SPTE, then emulate against L1's GPA.
            RetPf m = Install<TFormat>(l2Gfn, 1, MakeMmio(l1Gfn, User | (w.Writable ? Writable : 0), slots.Generation), ref w);
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

        bool tracked = _ctx.IsWriteTracked(l1Gpa.Gfn);
        int level = tracked ? 1 : Math.Min(w.Level, _ctx.MaxMappingLevel(slot, l1Gpa.Gfn, w.Level));
        ulong pages = TdpMmu.PagesAt(level);
        Hfn pfn = slot.HostPfn(new Gfn(l1Gfn & ~(pages - 1)));

        // A clean L1 leaf is shadowed read-only until the first write, so that write sets L1's D bit.
        bool writable = w.Writable && !slot.IsReadOnly && !tracked && (w.Dirty || write);
        ulong spte = MakeLeaf(pfn.Value, level, writable, hostWritable: !slot.IsReadOnly);
        if (tracked || !w.Writable)
        {
            spte &= ~MmuWritable;
        }

        if (!w.Executable)
        {
            spte |= NoExecute;
        }

        RetPf r = Install<TFormat>(l2Gfn & ~(pages - 1), level, spte, ref w);
        pf.Level = level;
        pf.Pfn = pfn;
        pf.Spte = spte;
        return r;
    }

    /// <summary>Builds the shadow path for an L2 gfn down to <paramref name="level"/> and writes the leaf.</summary>
    private RetPf Install<TFormat>(ulong l2Gfn, int level, ulong spte, ref WalkResult w)
        where TFormat : struct, IPagingFormat
    {
        int t = Root;
        for (int l = TdpMmu.RootLevel; l > level; l--)
        {
            int c = l - 1;
            bool direct = c < w.Level;
            ulong expected;
            uint role;
            if (direct)
            {
                expected = (l2Gfn >> (9 * c)) << (9 * c);
                role = Role<TFormat>(c, direct: true, quadrant: 0);
            }
            else
            {
                // Shadow levels above the format's root level stand for its root table (PAE PDPT, legacy PD).
                ulong table = w.Path[Math.Min(c, TFormat.RootLevel)];
                expected = table >> 12;
                role = Role<TFormat>(c, direct: false, TFormat.ShadowQuadrant(l2Gfn << 12, table, c));
            }

            int i = Index(l2Gfn, l);
            ref ulong e = ref _arena.Entry(t, i);
            if (IsShadowPresent(e) && !IsLeaf(e, l))
            {
                int child = ChildTable(e);
                if (_arena.BaseGfn[child] == expected && _arena.Role[child] == role)
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

            int next = Allocate(c, expected, role, t, i);
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

    private int Allocate(int level, ulong gfn, uint role, int parent, int parentIndex)
    {
        int t = _arena.Allocate(level, gfn, parent, parentIndex, role);
        if (t == 0)
        {
            return 0;
        }

        ShadowTables++;
        if ((role & RoleDirect) == 0)
        {
            _nextForGfn[t] = _byGfn.Get(gfn);
            _byGfn.Set(gfn, t);
            _ctx.TrackWrite(new Gfn(gfn));
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

            _ctx.UntrackWrite(new Gfn(gfn));
        }

        ShadowTables--;
        _arena.Free(t);
    }

    /// <summary>
    /// L1 wrote to a page holding tables we shadow: drop every shadow table built from it (for a legacy
    /// table, the shadows of all its quadrants; for a PAE PDPT page, the level-3 tables built from it).
    /// </summary>
    public void ZapGfn(Gfn l1Gfn)
    {
        ulong gfn = l1Gfn.Value;
        using var exclusive = _ctx.Lock.Write();
        while (true)
        {
            int t = _byGfn.Get(gfn);
            while (t != 0 && IsRoot(t))
            {
                t = _nextForGfn[t];
            }

            if (t == 0)
            {
                break;
            }

            // Free unlinks t and its subtree from their gfn chains, so the next round starts at the head.
            _arena.Entry(_arena.Parent[t], _arena.ParentIndex[t]) = 0;
            Free(t);
            _ctx.Stats.ZapCalls++;
        }

        // Roots stay (each is an nCR3 in use or cached); their entries are rebuilt on the next faults.
        for (int t = _byGfn.Get(gfn); t != 0; t = _nextForGfn[t])
        {
            ClearRoot(t);
        }
    }

    private void ClearRoot(int root)
    {
        Span<ulong> table = _arena.Table(root);
        for (int i = 0; i < 512; i++)
        {
            ulong e = table[i];
            if (IsShadowPresent(e) && !IsLeaf(e, TdpMmu.RootLevel))
            {
                Free(ChildTable(e));
            }

            table[i] = 0;
        }

        _ctx.Stats.ZapCalls++;
    }
}
