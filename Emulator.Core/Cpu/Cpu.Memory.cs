using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Emulator.Core.Decode;
using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using NpfErr = Emulator.Mmu.Fault.PfErr;

namespace Emulator.Core.Cpu;

/// <summary>Kinds of access, also the software-TLB bank index.</summary>
public static class Access
{
    public const int Read = 0, Write = 1, Fetch = 2;
}

/// <summary>
/// Guest memory access: segmentation, the software TLB (direct-mapped, one bank per access kind,
/// tag = linear page, value = host pointer minus linear page) and the slow path (page walk, then RAM
/// or the MMIO bus). Faults are raised as pending exceptions and reported by a false return.
/// </summary>
public sealed unsafe partial class Cpu
{
    public const int TlbBits = 8;
    public const int TlbEntries = 1 << TlbBits;
    private const ulong TlbInvalid = 1;

    /// <summary>A TLB entry: the linear page it maps (<see cref="TlbInvalid"/>: none) and host address minus linear address.</summary>
    private struct TlbEntry(ulong tag, long add)
    {
        /// <summary>An entry that maps nothing.</summary>
        public static readonly TlbEntry Empty = new(TlbInvalid, 0);

        public ulong Tag = tag;
        public long Add = add;
    }

    // The set in use (Cpu.TlbSets.cs): the hot paths index it directly; tag and offset share a cache line.
    private TlbEntry[] _tlb;

    /// <summary>Per segment register: bit0 readable, bit1 writable, bit2 expand-down, bit3 unusable.</summary>
    private ulong _segAccess;

    public ulong TlbMisses;
    public ulong PageWalks;

    /// <summary>True while the current access is an implicit supervisor access (descriptor tables, TSS, IDT).</summary>
    private bool _implicitSupervisor;

    /// <summary>Flushes the set in use (the current address space's entries).</summary>
    public void FlushTlb()
    {
        FlushTlbEntries();
        _activeTlb.Walks?.Flush();
    }

    /// <summary>Drops the set in use's entries and the RIP cache, keeping the walk cache.</summary>
    private void FlushTlbEntries()
    {
        Array.Fill(_tlb, TlbEntry.Empty);
        BumpCodeEpoch();
    }

    /// <summary>Drops the data entries (read and write banks), keeping the fetch bank and the decoded blocks.</summary>
    private void FlushDataTlb() => Array.Fill(_tlb, TlbEntry.Empty, Access.Read * TlbEntries, 2 * TlbEntries);

    /// <summary>
    /// Alignment checking is on (APM vol. 2 §8.2.17 "#AC"): CR0.AM, RFLAGS.AC and CPL 3. While it is on, data
    /// accesses stay out of the TLB, so each one reaches the slow path, which checks alignment; the fast path pays
    /// nothing for it. (Each such access then also walks the guest tables, a modeled cost this rare mode accepts.)
    /// </summary>
    internal bool AlignmentChecking => Cpl == 3 && (Cr0 & Cr0Bits.AM) != 0 && (FlagsBits & Rflags.AC) != 0;

    /// <summary>
    /// RFLAGS was loaded (POPF, IRET): if that set AC at CPL 3 with CR0.AM, the data entries filled while alignment
    /// checking was off must go. (Turning it on by any other route crosses into ring 3 or switches worlds, which flush.)
    /// </summary>
    internal void RflagsLoaded(ulong oldFlags)
    {
        if ((oldFlags & Rflags.AC) == 0 && AlignmentChecking)
        {
            FlushDataTlb();
        }
    }

    /// <summary>
    /// #AC(0) for a misaligned data access of 2, 4 or 8 bytes while alignment checking is on; implicit supervisor
    /// accesses (descriptor tables, TSS, IDT) are never checked. Checked after the guest walk: #PF has priority.
    /// </summary>
    private bool Misaligned(ulong lin, int size)
    {
        if ((lin & (ulong)(size - 1)) == 0 || _implicitSupervisor || !AlignmentChecking)
        {
            return false;
        }

        Raise(Vector.AC, 0);
        return true;
    }

    /// <summary>Drops the write entries only, in every set (a page became a code page, whoever maps it).</summary>
    public void FlushWriteTlb()
    {
        Array.Fill(_hostTlb.Entries, TlbEntry.Empty, Access.Write * TlbEntries, TlbEntries);
        if (_guestTlb != null)
        {
            Array.Fill(_guestTlb.Entries, TlbEntry.Empty, Access.Write * TlbEntries, TlbEntries);
        }
    }

    public void InvalidatePage(ulong linear)
    {
        _activeTlb.InvalidateEntry(linear);
        BumpCodeEpoch();
    }

    /// <summary>
    /// Changes CPL; the TLB caches user/supervisor permission, so crossing ring 3 flushes it. The walk cache keeps its
    /// walks: they are kept per user/supervisor access, and that is all a walk takes from CPL.
    /// </summary>
    public void SetCpl(int cpl)
    {
        if ((cpl == 3) != (Cpl == 3))
        {
            FlushTlbEntries();
        }

        Cpl = cpl;
    }

    private void RecomputeSegmentAccess()
    {
        ulong bits = 0;
        for (int i = 0; i < 6; i++)
        {
            bits |= (ulong)ComputeSegmentAccess(i) << (i * 8);
        }

        _segAccess = bits;
    }

    /// <summary>Call after loading a segment register's hidden part.</summary>
    public void SegmentLoaded(int seg)
    {
        _segAccess = (_segAccess & ~(0xFFUL << (seg * 8))) | ((ulong)ComputeSegmentAccess(seg) << (seg * 8));
        if (seg == SegReg.CS)
        {
            UpdateMode();
        }
    }

    private int ComputeSegmentAccess(int seg)
    {
        ref SegmentCache s = ref Seg[seg];
        if (Mode is CpuMode.Real or CpuMode.Virtual8086)
        {
            return 3;
        }

        if (!s.Present || (s.Attr & SegmentCache.AttrS) == 0)
        {
            return 8;
        }

        int type = s.Type;
        if ((type & 8) != 0)
        {
            // Code: readable if R; never writable.
            return (type & 2) != 0 ? 1 : 0;
        }

        return 1 | ((type & 2) != 0 ? 2 : 0) | ((type & 4) != 0 ? 4 : 0);
    }

    /// <summary>Effective address (offset within the segment) of the memory operand, wrapped to the address size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Ea(ref DecodedOp op)
    {
        ulong a = (ulong)op.Disp;
        if (op.Base != Reg.NoReg)
        {
            a += op.Base == Reg.Rip ? NextRip : Gpr[op.Base];
        }

        if (op.Index != Reg.NoReg)
        {
            a += Gpr[op.Index] << op.Scale;
        }

        return op.AddrSize switch
        {
            8 => a,
            4 => (uint)a,
            _ => (ushort)a,
        };
    }

    /// <summary>Segment offset → linear address with the limit, rights and canonical checks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Linear(int seg, ulong off, int size, int access, out ulong lin)
    {
        if (Mode == CpuMode.Long64)
        {
            lin = seg >= SegReg.FS ? off + Seg[seg].Base : off;
            if ((ulong)((long)lin >> 47) + 1 > 1)
            {
                return NonCanonical(seg, ref lin);
            }

            return true;
        }

        return LinearLegacy(seg, off, size, access, out lin);
    }

    /// <summary>
    /// The inline test is the 4-level one; with 5-level paging (CR4.LA57) an address canonical to bit 56 is
    /// valid and lands here. Otherwise #SS(0) for a stack access, #GP(0) for the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool NonCanonical(int seg, ref ulong lin)
    {
        if (IsCanonicalNow(lin))
        {
            return true;
        }

        lin = 0;
        if (seg == SegReg.SS)
        {
            RaiseSS(0);
        }
        else
        {
            RaiseGP(0);
        }

        return false;
    }

    private bool LinearLegacy(int seg, ulong off, int size, int access, out ulong lin)
    {
        ref SegmentCache s = ref Seg[seg];
        int acc = (int)(_segAccess >> (seg * 8)) & 0xF;
        lin = 0;
        // Fetches are checked only against the limit: CS was validated as code when it was loaded.
        if (access != Access.Fetch && ((acc & 8) != 0 || (access == Access.Write ? (acc & 2) == 0 : (acc & 1) == 0)))
        {
            return SegFault(seg);
        }

        ulong last = off + (ulong)size - 1;
        if ((acc & 4) == 0)
        {
            if (last > s.Limit || last < off)
            {
                return SegFault(seg);
            }
        }
        else
        {
            ulong upper = s.Big ? 0xFFFFFFFFUL : 0xFFFFUL;
            if (off <= s.Limit || last > upper)
            {
                return SegFault(seg);
            }
        }

        lin = (uint)(s.Base + off);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool SegFault(int seg)
    {
        if (seg == SegReg.SS)
        {
            RaiseSS(0);
        }
        else
        {
            RaiseGP(0);
        }

        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* TlbLookup(int bank, ulong lin, int size)
    {
        // One compare covers both the page and the access staying in it: the entry at lin's index holds a page with
        // that index, and the page of the access's last byte, when it is the next page, has another index.
        int i = (bank << TlbBits) | ((int)(lin >> 12) & (TlbEntries - 1));
        ref TlbEntry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tlb), i);
        if (e.Tag == ((lin + (ulong)(size - 1)) & ~0xFFFUL))
        {
            return (byte*)(e.Add + (long)lin);
        }

        return null;
    }

    // ---- Reads ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Read8(int seg, ulong off, out byte v)
    {
        if (Linear(seg, off, 1, Access.Read, out ulong lin))
        {
            byte* p = TlbLookup(Access.Read, lin, 1);
            if (p != null)
            {
                v = *p;
                return true;
            }

            bool ok = ReadLinearSlow(lin, 1, Access.Read, out ulong x);
            v = (byte)x;
            return ok;
        }

        v = 0;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Read16(int seg, ulong off, out ushort v)
    {
        if (Linear(seg, off, 2, Access.Read, out ulong lin))
        {
            byte* p = TlbLookup(Access.Read, lin, 2);
            if (p != null)
            {
                v = Unsafe.ReadUnaligned<ushort>(p);
                return true;
            }

            bool ok = ReadLinearSlow(lin, 2, Access.Read, out ulong x);
            v = (ushort)x;
            return ok;
        }

        v = 0;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Read32(int seg, ulong off, out uint v)
    {
        if (Linear(seg, off, 4, Access.Read, out ulong lin))
        {
            byte* p = TlbLookup(Access.Read, lin, 4);
            if (p != null)
            {
                v = Unsafe.ReadUnaligned<uint>(p);
                return true;
            }

            bool ok = ReadLinearSlow(lin, 4, Access.Read, out ulong x);
            v = (uint)x;
            return ok;
        }

        v = 0;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Read64(int seg, ulong off, out ulong v)
    {
        if (Linear(seg, off, 8, Access.Read, out ulong lin))
        {
            byte* p = TlbLookup(Access.Read, lin, 8);
            if (p != null)
            {
                v = Unsafe.ReadUnaligned<ulong>(p);
                return true;
            }

            return ReadLinearSlow(lin, 8, Access.Read, out v);
        }

        v = 0;
        return false;
    }

    /// <summary>
    /// The 64-bit fast path of the <c>…Inline</c> accessors (handlers specialised on the operand size, so the
    /// size folds away): in 64-bit mode a TLB hit needs no other check, because segmentation only adds the
    /// FS/GS base and a TLB tag is always a canonical page (<see cref="FillTlb"/>), so a hit also passes the
    /// canonical check. Null sends the caller down the full path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* Fast64(int access, int seg, ulong off, int size) =>
        Mode == CpuMode.Long64 ? TlbLookup(access, seg >= SegReg.FS ? off + Seg[seg].Base : off, size) : null;

    /// <summary><see cref="ReadMem"/>, inlined for handlers specialised on the operand size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool ReadMemInline(int seg, ulong off, int size, out ulong v)
    {
        byte* p = Fast64(Access.Read, seg, off, size);
        if (p != null)
        {
            v = Load(p, size);
            return true;
        }

        // Out of line, and through a field, not v itself: passing v's address on would keep the caller's value in
        // memory on the fast path too.
        bool ok = ReadMemSlow(seg, off, size, Access.Read);
        v = _slowRead;
        return ok;
    }

    // Where the slow path of the …Inline reads leaves its value.
    private ulong _slowRead;

    /// <summary>The full path of the …Inline reads, kept out of the handlers (and compiled blocks) that inline them.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool ReadMemSlow(int seg, ulong off, int size, int access) => ReadChecked(seg, off, size, access, out _slowRead);

    /// <summary>The full path of <see cref="WriteMemInline"/>, kept out of the handlers that inline it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool WriteMemSlow(int seg, ulong off, int size, ulong v) => WriteMem(seg, off, size, v);

    /// <summary>Reads 1, 2, 4 or 8 bytes, zero-extended.</summary>
    public bool ReadMem(int seg, ulong off, int size, out ulong v) => ReadChecked(seg, off, size, Access.Read, out v);

    /// <summary><see cref="ReadMemForWrite"/>, inlined for handlers specialised on the operand size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool ReadMemForWriteInline(int seg, ulong off, int size, out ulong v)
    {
        byte* p = Fast64(Access.Write, seg, off, size);
        if (p != null)
        {
            v = Load(p, size);
            return true;
        }

        bool ok = ReadMemSlow(seg, off, size, Access.Write);
        v = _slowRead;
        return ok;
    }

    /// <summary>Read half of a read-modify-write: checks write permission first, as the hardware does.</summary>
    public bool ReadMemForWrite(int seg, ulong off, int size, out ulong v) => ReadChecked(seg, off, size, Access.Write, out v);

    private bool ReadChecked(int seg, ulong off, int size, int access, out ulong v)
    {
        if (Linear(seg, off, size, access, out ulong lin))
        {
            byte* p = TlbLookup(access, lin, size);
            if (p != null)
            {
                v = Load(p, size);
                return true;
            }

            return ReadLinearSlow(lin, size, access, out v);
        }

        v = 0;
        return false;
    }

    // ---- Writes ----

    /// <summary>Writes 1, 2, 4 or 8 bytes.</summary>
    public bool WriteMem(int seg, ulong off, int size, ulong v)
    {
        if (Linear(seg, off, size, Access.Write, out ulong lin))
        {
            byte* p = TlbLookup(Access.Write, lin, size);
            if (p != null)
            {
                Store(p, size, v);
                return true;
            }

            return WriteLinearSlow(lin, size, v);
        }

        return false;
    }

    /// <summary><see cref="WriteMem"/>, inlined for handlers specialised on the operand size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool WriteMemInline(int seg, ulong off, int size, ulong v)
    {
        byte* p = Fast64(Access.Write, seg, off, size);
        if (p != null)
        {
            Store(p, size, v);
            return true;
        }

        return WriteMemSlow(seg, off, size, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Load(byte* p, int size) => size switch
    {
        1 => *p,
        2 => Unsafe.ReadUnaligned<ushort>(p),
        4 => Unsafe.ReadUnaligned<uint>(p),
        _ => Unsafe.ReadUnaligned<ulong>(p),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(byte* p, int size, ulong v)
    {
        switch (size)
        {
            case 1: *p = (byte)v; break;
            case 2: Unsafe.WriteUnaligned(p, (ushort)v); break;
            case 4: Unsafe.WriteUnaligned(p, (uint)v); break;
            default: Unsafe.WriteUnaligned(p, v); break;
        }
    }

    public bool Write8(int seg, ulong off, byte v) => WriteMem(seg, off, 1, v);

    public bool Write16(int seg, ulong off, ushort v) => WriteMem(seg, off, 2, v);

    public bool Write32(int seg, ulong off, uint v) => WriteMem(seg, off, 4, v);

    public bool Write64(int seg, ulong off, ulong v) => WriteMem(seg, off, 8, v);

    // ---- Linear (post-segmentation) access, for descriptor tables, IDT, TSS, and page-crossing ----

    /// <summary>Implicit supervisor read of a linear address (GDT/LDT/IDT/TSS): CPL is ignored.</summary>
    public bool ReadLinearSystem(ulong lin, int size, out ulong v)
    {
        _implicitSupervisor = true;
        bool ok = ReadLinearSlow(lin, size, Access.Read, out v);
        _implicitSupervisor = false;
        return ok;
    }

    public bool WriteLinearSystem(ulong lin, int size, ulong v)
    {
        _implicitSupervisor = true;
        bool ok = WriteLinearSlow(lin, size, v);
        _implicitSupervisor = false;
        return ok;
    }

    /// <summary>Reads at a linear address with the current privilege; fills the TLB.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public bool ReadLinearSlow(ulong lin, int size, int access, out ulong v)
    {
        v = 0;
        if ((Dr7 & Dr7EnableBits) != 0 && access != Access.Fetch && !_implicitSupervisor)
        {
            // Data breakpoints: pages holding one are never in the TLB, so their accesses all come here.
            NoteDataAccess(lin, size, access == Access.Write);
        }

        if (((lin & 0xFFF) + (ulong)size) > 0x1000)
        {
            // Page-crossing: translate both pages before touching either (no partial access on a fault).
            ulong lin2 = (lin | 0xFFF) + 1;
            if (!TranslateBoth(lin, lin2, access, out var first, out var second) || (access != Access.Fetch && Misaligned(lin, size)))
            {
                return false;
            }

            int split = (int)(lin2 - lin);
            ulong x = 0;
            for (int i = 0; i < size; i++)
            {
                x |= (i < split ? first.Read(this, i, 1) : second.Read(this, i - split, 1)) << (i * 8);
            }

            v = x;
            return true;
        }

        if (!TranslatePage(lin, size, access, out ulong gpa, out RetPf r, out ulong hpa, out ulong l1Gpa))
        {
            return false;
        }

        if (PhysicalMemory.IsMapped(r) && IsAvicAccess(gpa))
        {
            // APM vol. 2 §15.29: the nested walk allowed the access; AVIC redirects it to the backing page. (Code is
            // not fetched from the APIC page through AVIC: that fetch is emulated.)
            v = access == Access.Fetch ? Phys.EmulatedRead(gpa, size) : Avic!.Read(this, (int)(gpa & 0xFFF), size);
            return true;
        }

        if (PhysicalMemory.IsMapped(r))
        {
            byte* page = Phys.HostPointer(hpa & ~0xFFFUL);
            if (!_implicitSupervisor && !_translationUncacheable)
            {
                FillTlb(access, lin, page);
            }

            v = Load(page + (lin & 0xFFF), size);
            return true;
        }

        if (r != RetPf.Emulate)
        {
            return false; // an #NPF for L1 is pending
        }

        v = Phys.EmulatedRead(l1Gpa, size);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public bool WriteLinearSlow(ulong lin, int size, ulong v)
    {
        if ((Dr7 & Dr7EnableBits) != 0 && !_implicitSupervisor)
        {
            NoteDataAccess(lin, size, write: true);
        }

        if (((lin & 0xFFF) + (ulong)size) > 0x1000)
        {
            ulong lin2 = (lin | 0xFFF) + 1;
            if (!TranslateBoth(lin, lin2, Access.Write, out var first, out var second) || Misaligned(lin, size))
            {
                return false;
            }

            int split = (int)(lin2 - lin);
            for (int i = 0; i < size; i++)
            {
                if (i < split)
                {
                    first.Write(this, i, 1, v >> (i * 8));
                }
                else
                {
                    second.Write(this, i - split, 1, v >> (i * 8));
                }
            }

            return true;
        }

        if (!TranslatePage(lin, size, Access.Write, out ulong gpa, out RetPf r, out ulong hpa, out ulong l1Gpa))
        {
            return false;
        }

        if (!PhysicalMemory.IsMapped(r))
        {
            if (r != RetPf.Emulate)
            {
                return false; // an #NPF for L1 is pending
            }

            Phys.EmulatedWrite(l1Gpa, size, v);
            return true;
        }

        if (IsAvicAccess(gpa))
        {
            Avic!.Write(this, (int)(gpa & 0xFFF), size, v);
            return true;
        }

        byte* page = Phys.HostPointer(hpa & ~0xFFFUL);
        if (Phys.IsCodePage(hpa >> 12))
        {
            // Self-modifying code: drop the decoded blocks of this page (and leave the current block);
            // the page stays out of the write TLB while it holds code.
            Phys.NotifyWrite(hpa);
        }
        else if (!_implicitSupervisor && !_translationUncacheable)
        {
            FillTlb(Access.Write, lin, page);
        }

        Store(page + (gpa & 0xFFF), size, v);
        return true;
    }

    /// <summary>The guest-physical access kind (<see cref="NpfErr"/> bits) of a TLB bank's access.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong GpaAccess(int access) => access switch
    {
        Access.Write => NpfErr.Write,
        Access.Fetch => NpfErr.Fetch,
        _ => 0,
    };

    /// <summary>One page of a page-crossing access, translated down to host memory or to the emulation path.</summary>
    private readonly struct TranslatedPage(RetPf result, ulong hpa, ulong l1Gpa)
    {
        public ulong Read(Cpu c, int offset, int size) => PhysicalMemory.IsMapped(result)
            ? Load(c.Phys.HostPointer(hpa + (ulong)offset), size)
            : c.Phys.EmulatedRead(l1Gpa + (ulong)offset, size);

        public void Write(Cpu c, int offset, int size, ulong v)
        {
            if (PhysicalMemory.IsMapped(result))
            {
                c.Phys.NotifyWrite(hpa + (ulong)offset);
                Store(c.Phys.HostPointer(hpa + (ulong)offset), size, v);
            }
            else
            {
                c.Phys.EmulatedWrite(l1Gpa + (ulong)offset, size, v);
            }
        }
    }

    /// <summary>
    /// Both pages of a page-crossing access, each through the guest walk and then the guest-physical translation
    /// (in that order, as the hardware takes the faults); false with the fault pending.
    /// </summary>
    private bool TranslateBoth(ulong lin, ulong lin2, int access, out TranslatedPage first, out TranslatedPage second)
    {
        first = second = default;
        ulong gpaAccess = GpaAccess(access);
        if (!Translate(lin, access, out ulong gpa1))
        {
            return false;
        }

        RetPf r1 = TranslateGpa(gpa1, gpaAccess, out ulong hpa1, out ulong l1Gpa1);
        if (r1 == RetPf.ReflectToGuest || !Translate(lin2, access, out ulong gpa2))
        {
            return false;
        }

        RetPf r2 = TranslateGpa(gpa2, gpaAccess, out ulong hpa2, out ulong l1Gpa2);
        if (r2 == RetPf.ReflectToGuest)
        {
            return false;
        }

        // An access crossing into or out of the APIC page under AVIC is not accelerated: it is emulated as a whole.
        first = IsAvicAccess(gpa1) ? new TranslatedPage(RetPf.Emulate, 0, gpa1) : new TranslatedPage(r1, hpa1, l1Gpa1);
        second = IsAvicAccess(gpa2) ? new TranslatedPage(RetPf.Emulate, 0, gpa2) : new TranslatedPage(r2, hpa2, l1Gpa2);
        return true;
    }

    private void FillTlb(int bank, ulong lin, byte* page)
    {
        TlbMisses++;
        Cycles += Costs.TlbMiss;
        if ((ulong)((long)lin >> 47) + 1 > 1)
        {
            // Tags are canonical pages only: the 64-bit fast path (Fast64) relies on it.
            return;
        }

        if (bank != Access.Fetch && AlignmentChecking)
        {
            return;
        }

        if ((Dr7 & Dr7EnableBits) != 0 && bank != Access.Fetch && PageHasDataBreakpoint(lin, bank))
        {
            // A page with a data breakpoint stays on the slow path, where accesses are matched (Cpu.Debug.cs).
            return;
        }

        int i = (bank << TlbBits) | ((int)(lin >> 12) & (TlbEntries - 1));
        _tlb[i] = new TlbEntry(lin & ~0xFFFUL, (long)page - (long)(lin & ~0xFFFUL));
    }

    /// <summary>Host pointer to the code page holding linear <paramref name="lin"/>, through the fetch TLB.</summary>
    internal byte* FetchPage(ulong lin, out ulong gpa) =>
        TranslatePage(lin, 1, Access.Fetch, out gpa, out RetPf r, out ulong hpa, out _) && PhysicalMemory.IsMapped(r) && !IsAvicAccess(gpa)
            ? Phys.HostPointer(hpa & ~0xFFFUL)
            : null;

    /// <summary>
    /// A single-page access's translation: the guest walk (or the walk cache's answer to this modeled TLB miss), the
    /// alignment check of a data access, then L0's translation of the page, whose result <paramref name="r"/> says
    /// whether <paramref name="hpa"/> maps it. A walk whose page L0 mapped is offered to the walk cache. False with
    /// the #PF or #AC pending.
    /// </summary>
    private bool TranslatePage(ulong lin, int size, int access, out ulong gpa, out RetPf r, out ulong hpa, out ulong l1Gpa)
    {
        if (WalkCacheHit(access, lin, out gpa, out hpa))
        {
            // The walk would have succeeded and L0's translation mapped the page, as when the walk was kept.
            r = RetPf.Continue;
            l1Gpa = gpa;
            return access == Access.Fetch || !Misaligned(lin, size);
        }

        if (!Translate(lin, access, out gpa) || (access != Access.Fetch && Misaligned(lin, size)))
        {
            r = RetPf.Continue;
            l1Gpa = 0;
            return false;
        }

        r = TranslateGpa(gpa, GpaAccess(access), out hpa, out l1Gpa);
        if (PhysicalMemory.IsMapped(r))
        {
            WalkCacheAdd(access, lin, gpa, hpa);
        }

        return true;
    }

    /// <summary>
    /// Host pointer to the page of this vCPU's guest-physical <paramref name="gpa"/> for direct access of kind
    /// <paramref name="access"/>, or null: the access must be emulated, or an #NPF for L1 is pending (<see cref="PendingNpf"/>).
    /// </summary>
    internal byte* GuestPagePointer(ulong gpa, int access)
    {
        RetPf r = TranslateGpa(gpa, GpaAccess(access), out ulong hpa, out _);
        return PhysicalMemory.IsMapped(r) && !IsAvicAccess(gpa) ? Phys.HostPointer(hpa & ~0xFFFUL) : null;
    }

    // ---- Stack ----

    /// <summary>Pushes <paramref name="size"/> bytes on SS:rSP (stack width from SS.B / 64-bit mode).</summary>
    public bool Push(ulong v, int size)
    {
        int ss = StackSize;
        ulong sp = Gpr[Reg.RSP] - (ulong)size;
        ulong off = ss == 8 ? sp : ss == 4 ? (uint)sp : (ushort)sp;
        if (!WriteMemInline(SegReg.SS, off, size, v))
        {
            return false;
        }

        SetStackPointer(sp, ss);
        return true;
    }

    public bool Pop(int size, out ulong v)
    {
        int ss = StackSize;
        ulong sp = Gpr[Reg.RSP];
        ulong off = ss == 8 ? sp : ss == 4 ? (uint)sp : (ushort)sp;
        if (!ReadMemInline(SegReg.SS, off, size, out v))
        {
            return false;
        }

        SetStackPointer(sp + (ulong)size, ss);
        return true;
    }

    /// <summary>Reads the stack at rSP + <paramref name="offset"/> without moving rSP.</summary>
    public bool PeekStack(ulong offset, int size, out ulong v)
    {
        int ss = StackSize;
        ulong sp = Gpr[Reg.RSP] + offset;
        ulong off = ss == 8 ? sp : ss == 4 ? (uint)sp : (ushort)sp;
        return ReadMemInline(SegReg.SS, off, size, out v);
    }

    /// <summary>Writes rSP at the stack width: a 16-bit stack changes only SP.</summary>
    public void SetStackPointer(ulong sp, int stackSize)
    {
        ref ulong rsp = ref Gpr[Reg.RSP];
        rsp = stackSize switch
        {
            8 => sp,
            4 => (uint)sp,
            _ => (rsp & ~0xFFFFUL) | (ushort)sp,
        };
    }
}
