using System.Runtime.CompilerServices;

namespace Emulator.Core.Cpu;

/// <summary>
/// Segment-register loads with the descriptor checks of APM vol. 2 §4.5–4.11 (data segments, SS) and the
/// code-segment checks shared by far transfers, IRET and gates. Every method returns false with the
/// exception pending and leaves the register state untouched on failure.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>Descriptor type bits (S=1): code (bit 3), conforming/expand-down (bit 2), readable/writable (bit 1), accessed (bit 0).</summary>
    private const int TypeCode = 8, TypeConforming = 4, TypeRw = 2;

    /// <summary>Error code for a selector: index and TI, RPL cleared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SelectorError(ushort selector) => (uint)(selector & 0xFFFC);

    /// <summary>True for a null selector (index 0 in the GDT; RPL ignored).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsNullSelector(ushort selector) => (selector & 0xFFFC) == 0;

    /// <summary>Hidden state of a segment register after loading a null selector: unusable.</summary>
    public static SegmentCache NullSegment(ushort selector) => new() { Selector = selector };

    /// <summary>
    /// MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS, and the data-segment reloads of far returns: loads
    /// ES, SS, DS, FS or GS. CS is never loaded here (far transfers use <see cref="CheckCodeSegment"/>).
    /// </summary>
    public bool LoadSegment(int seg, ushort selector)
    {
        switch (Mode)
        {
            case CpuMode.Real:
                {
                    // Real mode changes only the selector and base; limit and attributes stay (APM vol. 2 §1.2.4).
                    ref SegmentCache s = ref Seg[seg];
                    s.Selector = selector;
                    s.Base = (ulong)selector << 4;
                    SegmentLoaded(seg);
                    return true;
                }

            case CpuMode.Virtual8086:
                Seg[seg] = new SegmentCache { Selector = selector, Base = (ulong)selector << 4, Limit = 0xFFFF, Attr = 0xF3 };
                SegmentLoaded(seg);
                return true;
        }

        if (!CheckDataSegment(seg, selector, Cpl, out SegmentCache cache, out ulong d))
        {
            return false;
        }

        if (!IsNullSelector(selector) && !SetDescriptorAccessed(selector, d))
        {
            return false;
        }

        Seg[seg] = cache;
        SegmentLoaded(seg);
        return true;
    }

    /// <summary>
    /// The protected-mode checks for loading <paramref name="selector"/> into ES/SS/DS/FS/GS at privilege
    /// <paramref name="cpl"/> (APM vol. 3 "MOV (Sreg)", "POP (Sreg)"). SS: writable data with RPL = DPL = CPL,
    /// not present → #SS; null → #GP(0) except in 64-bit mode at CPL &lt; 3 with RPL = CPL. Others: data or
    /// readable code, DPL ≥ max(CPL, RPL) unless conforming code, not present → #NP; null is allowed.
    /// </summary>
    public bool CheckDataSegment(int seg, ushort selector, int cpl, out SegmentCache cache, out ulong d)
    {
        cache = default;
        d = 0;
        int rpl = selector & 3;
        if (IsNullSelector(selector))
        {
            if (seg != SegReg.SS)
            {
                cache = NullSegment(selector);
                return true;
            }

            if (Mode == CpuMode.Long64 && cpl < 3 && rpl == cpl)
            {
                // A null SS in 64-bit mode is usable (the stack is flat); keep DPL = CPL.
                cache = new SegmentCache { Selector = selector, Attr = (ushort)(SegmentCache.AttrS | TypeRw | 1 | (cpl << 5) | SegmentCache.AttrP) };
                return true;
            }

            RaiseGP(0);
            return false;
        }

        if (!FetchDescriptor(selector, out d))
        {
            return false;
        }

        cache = FromDescriptor(selector, d);
        cache.Attr |= 1; // accessed
        int type = cache.Type;
        bool system = (cache.Attr & SegmentCache.AttrS) == 0;
        uint err = SelectorError(selector);
        if (seg == SegReg.SS)
        {
            if (system || (type & TypeCode) != 0 || (type & TypeRw) == 0 || rpl != cpl || cache.Dpl != cpl)
            {
                RaiseGP(err);
                return false;
            }

            if (!cache.Present)
            {
                RaiseSS(err);
                return false;
            }

            return true;
        }

        if (system || (type & (TypeCode | TypeRw)) == TypeCode)
        {
            RaiseGP(err);
            return false;
        }

        bool conformingCode = (type & (TypeCode | TypeConforming)) == (TypeCode | TypeConforming);
        if (!conformingCode && (rpl > cache.Dpl || cpl > cache.Dpl))
        {
            RaiseGP(err);
            return false;
        }

        if (!cache.Present)
        {
            Raise(Vector.NP, err);
            return false;
        }

        return true;
    }

    /// <summary>
    /// Reads and checks a code-segment descriptor that a far JMP/CALL would enter directly (APM vol. 3
    /// "JMP (Far)"): conforming needs DPL ≤ CPL; non-conforming needs RPL ≤ CPL and DPL = CPL. In long
    /// mode L=1 with D=1 is reserved (#GP). The returned cache has RPL = CPL.
    /// </summary>
    public bool CheckDirectCodeSegment(ushort selector, ulong d, out SegmentCache cs)
    {
        cs = FromDescriptor(selector, d);
        cs.Attr |= 1;
        uint err = SelectorError(selector);
        if (!cs.IsCode)
        {
            RaiseGP(err);
            return false;
        }

        bool conforming = (cs.Type & TypeConforming) != 0;
        if (conforming ? cs.Dpl > Cpl : ((selector & 3) > Cpl || cs.Dpl != Cpl))
        {
            RaiseGP(err);
            return false;
        }

        if (LongModeActive && cs.Long && cs.Big)
        {
            RaiseGP(err);
            return false;
        }

        if (!cs.Present)
        {
            Raise(Vector.NP, err);
            return false;
        }

        cs.Selector = (ushort)((selector & 0xFFFC) | Cpl);
        return true;
    }

    /// <summary>
    /// Checks the target code segment of a return (RETF/IRET): RPL ≥ CPL; conforming needs DPL ≤ RPL,
    /// non-conforming DPL = RPL; not present → #NP. The new CPL is the selector's RPL.
    /// </summary>
    public bool CheckReturnCodeSegment(ushort selector, out SegmentCache cs, out ulong d)
    {
        cs = default;
        d = 0;
        if (IsNullSelector(selector))
        {
            RaiseGP(0);
            return false;
        }

        if (!FetchDescriptor(selector, out d))
        {
            return false;
        }

        cs = FromDescriptor(selector, d);
        cs.Attr |= 1;
        uint err = SelectorError(selector);
        int rpl = selector & 3;
        if (!cs.IsCode || rpl < Cpl)
        {
            RaiseGP(err);
            return false;
        }

        bool conforming = (cs.Type & TypeConforming) != 0;
        if (conforming ? cs.Dpl > rpl : cs.Dpl != rpl)
        {
            RaiseGP(err);
            return false;
        }

        if (LongModeActive && cs.Long && cs.Big)
        {
            RaiseGP(err);
            return false;
        }

        if (!cs.Present)
        {
            Raise(Vector.NP, err);
            return false;
        }

        return true;
    }

    /// <summary>Installs a checked CS (hidden part and CPL) and recomputes the mode.</summary>
    public void CommitCodeSegment(in SegmentCache cs, int cpl)
    {
        SetCpl(cpl);
        Seg[SegReg.CS] = cs;
        SegmentLoaded(SegReg.CS);
    }

    /// <summary>
    /// After a return to an outer privilege level (RETF, IRET): a data segment register whose segment
    /// the new CPL may not use (data or non-conforming code with DPL &lt; CPL) is loaded with null
    /// (APM vol. 2 §4.11.4 / vol. 3 "RET (Far)").
    /// </summary>
    public void NullInaccessibleDataSegments(int cpl)
    {
        ReadOnlySpan<int> segs = [SegReg.ES, SegReg.DS, SegReg.FS, SegReg.GS];
        foreach (int s in segs)
        {
            ref SegmentCache c = ref Seg[s];
            if (!c.Present || (c.Attr & SegmentCache.AttrS) == 0)
            {
                continue; // already null or unusable
            }

            bool conformingCode = (c.Type & (TypeCode | TypeConforming)) == (TypeCode | TypeConforming);
            if (!conformingCode && c.Dpl < cpl)
            {
                // Keep the base in 64-bit mode for FS/GS (it may come from the MSRs); the selector and usability go.
                ulong keepBase = Mode == CpuMode.Long64 && s >= SegReg.FS ? c.Base : 0;
                c = NullSegment(0);
                c.Base = keepBase;
                SegmentLoaded(s);
            }
        }
    }

    /// <summary>
    /// The SS check for a privilege-changing return (RETF/IRET to outer level) or a stack switch:
    /// RPL = DPL = <paramref name="cpl"/>, writable data, present (#SS); errors as #GP(selector) or, for
    /// a stack from the TSS, as #TS(selector) (<paramref name="fromTss"/>).
    /// </summary>
    public bool CheckStackSegment(ushort selector, int cpl, bool fromTss, out SegmentCache ss)
    {
        ss = default;
        int faultVector = fromTss ? Vector.TS : Vector.GP;
        if (IsNullSelector(selector))
        {
            if (LongModeActive && cpl < 3 && (selector & 3) == cpl)
            {
                ss = new SegmentCache { Selector = selector, Attr = (ushort)(SegmentCache.AttrS | TypeRw | 1 | (cpl << 5) | SegmentCache.AttrP) };
                return true;
            }

            Raise(faultVector, fromTss ? SelectorError(selector) : 0);
            return false;
        }

        ulong d;
        if (fromTss)
        {
            // A bad TSS stack selector is #TS, not #GP.
            if (!DescriptorInTable(selector))
            {
                Raise(Vector.TS, SelectorError(selector));
                return false;
            }
        }

        if (!FetchDescriptor(selector, out d))
        {
            return false;
        }

        ss = FromDescriptor(selector, d);
        ss.Attr |= 1;
        uint err = SelectorError(selector);
        int type = ss.Type;
        if ((ss.Attr & SegmentCache.AttrS) == 0 || (type & TypeCode) != 0 || (type & TypeRw) == 0 || (selector & 3) != cpl || ss.Dpl != cpl)
        {
            Raise(faultVector, err);
            return false;
        }

        if (!ss.Present)
        {
            RaiseSS(err);
            return false;
        }

        return SetDescriptorAccessed(selector, d);
    }

    /// <summary>True when the selector's descriptor lies inside the GDT/LDT limit.</summary>
    public bool DescriptorInTable(ushort selector)
    {
        bool ldt = (selector & 4) != 0;
        uint limit = ldt ? Seg[LdtrIndex].Limit : Gdtr.Limit;
        return (!ldt || Seg[LdtrIndex].Present) && (uint)(selector & ~7) + 7 <= limit;
    }

    /// <summary>True when bytes [off, off+size) lie inside the segment (expand-up or expand-down, APM vol. 2 §4.8.1).</summary>
    public static bool WithinLimit(in SegmentCache s, ulong off, int size)
    {
        ulong last = off + (ulong)size - 1;
        bool expandDown = (s.Attr & (SegmentCache.AttrS | TypeCode | TypeConforming)) == (SegmentCache.AttrS | TypeConforming);
        if (!expandDown)
        {
            return last >= off && last <= s.Limit;
        }

        ulong upper = s.Big ? 0xFFFFFFFFUL : 0xFFFFUL;
        return off > s.Limit && last <= upper;
    }

    /// <summary>
    /// Writes <paramref name="items"/> (first item at the highest address, as successive pushes) below
    /// <paramref name="sp"/> on the stack <paramref name="ss"/> of width <paramref name="stackSize"/>, checking
    /// every slot before writing any; a limit or canonical violation raises #SS(<paramref name="ssError"/>).
    /// <paramref name="system"/> writes as an implicit supervisor access (stacks of CPL 0–2).
    /// Returns the new stack pointer (masked to the stack width) in <paramref name="newSp"/>.
    /// </summary>
    public bool WriteStack(in SegmentCache ss, ulong sp, int stackSize, int itemSize, ReadOnlySpan<ulong> items, bool system, uint ssError, out ulong newSp)
    {
        ulong mask = stackSize == 8 ? ulong.MaxValue : stackSize == 4 ? 0xFFFFFFFFUL : 0xFFFFUL;
        newSp = (sp - ((ulong)items.Length * (ulong)itemSize)) & mask;
        for (int i = 0; i < items.Length; i++)
        {
            ulong off = (sp - ((ulong)(i + 1) * (ulong)itemSize)) & mask;
            bool ok = stackSize == 8
                ? IsCanonicalNow(off) && IsCanonicalNow(off + (ulong)itemSize - 1)
                : WithinLimit(ss, off, itemSize);
            if (!ok)
            {
                RaiseSS(ssError);
                return false;
            }
        }

        for (int i = 0; i < items.Length; i++)
        {
            ulong off = (sp - ((ulong)(i + 1) * (ulong)itemSize)) & mask;
            ulong lin = stackSize == 8 ? off : (uint)(ss.Base + off);
            bool ok = system ? WriteLinearSystem(lin, itemSize, items[i]) : WriteLinearSlow(lin, itemSize, items[i]);
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Stack width in bytes that a stack segment <paramref name="ss"/> gives outside 64-bit mode.</summary>
    public static int LegacyStackSize(in SegmentCache ss) => ss.Big ? 4 : 2;
}
