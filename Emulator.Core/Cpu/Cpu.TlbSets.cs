using System.Diagnostics.CodeAnalysis;
using Emulator.Mmu.Walk;

namespace Emulator.Core.Cpu;

/// <summary>
/// The address space a set of software-TLB entries belongs to, as hardware tags its TLB (APM vol. 2 §15.16): the host
/// (ASID 0; for this vCPU that is L1, the only host a guest can see) or one guest ASID of L1's, together with the nested
/// paging that ASID ran under (L1's N_CR3 and the format of L1's tables). Two spaces that differ in any field never share
/// entries: a different N_CR3 under the same ASID is a change the APM makes the hypervisor flush for, and treating it as
/// a new space does that flush for it.
/// </summary>
public readonly record struct TlbSpace(uint Asid, bool NestedPaging, ulong NestedCr3, PagingMode NestedMode, bool NestedNxe, bool NestedSmep)
{
    /// <summary>The host's space (ASID 0).</summary>
    public static TlbSpace Host => default;
}

/// <summary>
/// The software TLB is tagged (APM vol. 2 §15.16 "TLB control"): one set of entries for the host (L1) and one for the
/// guest ASID that L2 last ran under (KVM gives vmcb02 an ASID of its own), so a world switch selects a set instead of
/// flushing. A set's entries are only valid under the state they were filled in: they hold permission decisions (CPL 3
/// or not, CR0.WP, CR4.SMEP/SMAP, EFER.NXE), the paging mode and CR3, the alignment-check and data-breakpoint exclusions.
/// A world switch records that state for the set it leaves and flushes the set it enters unless its state is the same.
/// That is stricter than hardware, which keeps a guest's entries across a VMRUN that loads another CR3 (the hypervisor
/// must flush then); flushing more than hardware is always allowed.
/// Flushes that concern every address space (L0's remote TLB flush, a page becoming a code page, DR0–DR3 changes, INIT)
/// flush both sets; the guest's own MOV CR3 or INVLPG, and L1's, flush only the set in use.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>The state a set's entries depend on besides its <see cref="TlbSpace"/>.</summary>
    private readonly record struct TlbFillState(ulong Cr0, ulong Cr3, ulong Cr4, ulong Efer, ulong Dr7, bool User, bool AlignmentChecking);

    /// <summary>One set of entries: the three banks (read, write, fetch), each entry a tag and its host-pointer offset.</summary>
    private sealed class TlbSet
    {
        public readonly TlbEntry[] Entries = new TlbEntry[3 * TlbEntries];
        public bool MayHoldLargePages;

        /// <summary>The host's walk cache behind this set (the host set only: L2's walks are not kept).</summary>
        public WalkCache? Walks;

        /// <summary>The set has been in use (a set made for the first VMRUN starts empty, so entering it flushes nothing).</summary>
        public bool Used;
        public TlbSpace Space;
        public TlbFillState State;

        public TlbSet() => Array.Fill(Entries, TlbEntry.Empty);

        public void Flush()
        {
            Array.Fill(Entries, TlbEntry.Empty);
            MayHoldLargePages = false;
            Walks?.Flush();
        }

        /// <summary>INVLPG of an inactive set: the page, or every entry if one may belong to a large page.</summary>
        public void InvalidatePage(ulong linear)
        {
            if (MayHoldLargePages)
            {
                Flush();
            }
            else
            {
                InvalidateEntry(linear);
            }
        }

        /// <summary>Drops the 4 KiB entry of <paramref name="linear"/> from the three banks.</summary>
        public void InvalidateEntry(ulong linear)
        {
            int i = (int)(linear >> 12) & (TlbEntries - 1);
            for (int k = 0; k < 3; k++)
            {
                Entries[(k * TlbEntries) + i].Tag = TlbInvalid;
            }

            Walks?.Invalidate(linear);
        }
    }

    private readonly TlbSet _hostTlb = new() { Used = true, Walks = new() };

    /// <summary>The guest set, made at the first VMRUN (a vCPU that never runs L2 does not pay for it).</summary>
    private TlbSet? _guestTlb;

    private TlbSet _activeTlb;

    /// <summary>Sets flushed on entry by a world switch because their space or fill state had changed.</summary>
    public ulong TlbSetFlushes;

    /// <summary>The space whose entries the TLB uses now.</summary>
    public TlbSpace CurrentTlbSpace => _activeTlb.Space;

    [MemberNotNull(nameof(_activeTlb), nameof(_tlb))]
    private void InitTlb()
    {
        _activeTlb = _hostTlb;
        _tlb = _hostTlb.Entries;
        FlushTlb();
    }

    private TlbFillState CurrentFillState() => new(Cr0, Cr3, Cr4, Efer, Dr7, Cpl == 3, AlignmentChecking);

    /// <summary>
    /// World switch: the set in use keeps <paramref name="leaving"/> (the state it was filled under, read before the
    /// switch replaced it), and the set of <paramref name="space"/> becomes the one in use, flushed first unless it was
    /// left under this space and the state now in force.
    /// </summary>
    private void SwitchTlb(in TlbFillState leaving, in TlbSpace space)
    {
        _activeTlb.State = leaving;
        _activeTlb.MayHoldLargePages = _tlbMayHoldLargePages;
        TlbSet target = space.Asid == 0 ? _hostTlb : (_guestTlb ??= new TlbSet());
        if (target.Space != space || target.State != CurrentFillState())
        {
            target.Flush();
            TlbSetFlushes += target.Used ? 1UL : 0;
        }

        target.Used = true;
        target.Space = space;
        _activeTlb = target;
        _tlb = target.Entries;
        _tlbMayHoldLargePages = target.MayHoldLargePages;
        _translationUncacheable = false;

        // The RIP → block cache is not tagged: its entries assume the CS and mode they were filled under.
        BumpCodeEpoch();
    }

    /// <summary>Flushes every set (TLB_CONTROL 1, L0's remote TLB flush, INIT): no address space keeps an entry.</summary>
    public void FlushAllTlbs()
    {
        _hostTlb.Flush();
        _guestTlb?.Flush();
        _tlbMayHoldLargePages = false;
        BumpCodeEpoch();
    }

    /// <summary>Flushes the guest ASID's set (TLB_CONTROL 3 or 7 at VMRUN), whether in use or not.</summary>
    public void FlushGuestTlb()
    {
        if (_guestTlb == null)
        {
            return;
        }

        _guestTlb.Flush();
        if (_guestTlb == _activeTlb)
        {
            _tlbMayHoldLargePages = false;
            BumpCodeEpoch();
        }
    }

    /// <summary>
    /// L1's nested page tables changed (L0's shadow dropped what it built from them): entries translated through them,
    /// in the set in use if this vCPU is in nested paging now and in the guest set if it ran under nested paging, go.
    /// </summary>
    public void FlushNestedTranslations()
    {
        if (InNestedPaging)
        {
            FlushTranslations();
        }

        if (_guestTlb is { Space.NestedPaging: true } && _guestTlb != _activeTlb)
        {
            _guestTlb.Flush();
        }
    }

    /// <summary>
    /// INVLPGA (APM vol. 3): drops the translation of <paramref name="linear"/> for <paramref name="asid"/>. From the
    /// host, ASID 0 is its own space and a guest ASID is the guest set if that set holds it (no set holds any other).
    /// Run by a guest (a nested hypervisor's own guests are not tagged separately), it drops the page where it runs.
    /// </summary>
    public void InvalidateAsidPage(uint asid, ulong linear)
    {
        if (GuestMode || asid == 0)
        {
            InvalidateTranslation(linear);
            return;
        }

        if (_guestTlb != null && _guestTlb.Space.Asid == asid)
        {
            _guestTlb.InvalidatePage(linear);
        }
    }
}
