using System.Text;
using Emulator.Core.Cpu;
using Emulator.Core.Memory;
using Emulator.Core.Svm;
using Emulator.Mmu.Memory;
using Emulator.Svm.Vmcb;

namespace Emulator.Tests.Svm.Nested;

/// <summary>SplitMix64: a tiny deterministic generator whose sequence does not depend on the .NET version.</summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong Next() => Mix(_state += 0x9E3779B97F4A7C15UL);

    /// <summary>Uniform in [0, n).</summary>
    public int Below(int n) => (int)(Next() % (ulong)n);

    /// <summary>True with probability <paramref name="percent"/>/100.</summary>
    public bool Chance(int percent) => Below(100) < percent;

    public T Pick<T>(ReadOnlySpan<T> items) => items[Below(items.Length)];
}

/// <summary>
/// Fills the VMCB, the nested page tables, the permission maps and L2's code page of one random case (issue 13,
/// deliverable 6): a valid L2 set-up in one of several modes, then a handful of mutations of control-area and
/// save-area fields and of the nested tables, many of them illegal (reserved bits, bad attributes, loops,
/// addresses beyond RAM or at the VMCB itself). Everything comes from one seed, so a case can be replayed alone.
/// </summary>
/// <summary>L1's paging, which is also the format of the nested tables it gives L2 (APM vol. 2 §15.25.3).</summary>
public enum L1Paging
{
    Long4,
    Pae,
    Legacy32,
}

internal sealed unsafe class RandomVmcbGenerator
{
    // Guest-physical layout (16 MiB of RAM; L1's boot GDT at 0x9000 and page tables at 0x70000–0x75FFF).
    public const ulong L1Code = 0x100000;
    public const ulong L2Code = 0x180000;
    public const ulong L2Idt = 0x182000;
    public const ulong L2Handler = 0x183000;
    public const ulong PaePdpt = 0x190000;
    public const ulong Pse32Pd = 0x191000;
    public const ulong Vmcb = 0x400000;
    public const ulong Iopm = 0x500000;
    public const ulong Msrpm = 0x504000;
    public const ulong NptPool = 0x800000;
    public const int NptPoolPages = 8;
    public const ulong RamSize = 16 << 20;
    public const ulong L1Pml4 = 0x70000;

    private static readonly ulong[] s_farAddresses =
    [
        RamSize, 0x4000_0000, 0xFEE0_0000, 0xA0000, 0xFFFF_F000, 0x000F_FFFF_FFFF_F000, 1UL << 51, ulong.MaxValue & ~0xFFFUL,
        0x8000_0000_0000_0000, 0x7FFF_FFFF_F000, Vmcb, L1Pml4,
    ];

    private readonly PhysicalMemory _mem;
    private readonly VmcbView _v;
    private SplitMix64 _r;

    /// <summary>What the mutations did, for the replay message.</summary>
    public readonly StringBuilder Log = new();

    /// <summary>L2's mode template (see <see cref="Generate"/>).</summary>
    public int Mode { get; private set; }

    /// <summary>Cycles between two interrupts of the periodic timer.</summary>
    public ulong TimerPeriod { get; private set; }

    private readonly L1Paging _l1;

    public RandomVmcbGenerator(PhysicalMemory mem, L1Paging l1 = L1Paging.Long4)
    {
        _l1 = l1;
        _mem = mem;
        _v = new VmcbView(mem.HostPointer(mem.RamOffset(Vmcb)));
    }

    public VmcbView View => _v;

    /// <summary>The page tables L2 may use besides L1's identity map: a PAE PDPT and a 4 MiB-page 32-bit directory.</summary>
    public static void WriteStaticTables(PhysicalMemory mem)
    {
        mem.TryLoad(PaePdpt, s_staticTables);
    }

    private static readonly byte[] s_staticTables = BuildStaticTables();

    public static ReadOnlySpan<byte> StaticTables => s_staticTables;

    private static byte[] BuildStaticTables()
    {
        var t = new byte[0x2000];
        for (int i = 0; i < 4; i++)
        {
            BitConverter.TryWriteBytes(t.AsSpan(i * 8), (ulong)(0x72000 + (i * 0x1000)) | 1);
        }

        for (int i = 0; i < 1024; i++)
        {
            BitConverter.TryWriteBytes(t.AsSpan(0x1000 + (i * 4)), (uint)((i << 22) | 0x87));
        }

        return t;
    }

    /// <summary>Builds case <paramref name="seed"/>: VMCB, L2 code, IDT, permission maps, nested tables; GPRs in <paramref name="gprs"/>.</summary>
    public void Generate(ulong seed, Span<ulong> gprs)
    {
        _r = new SplitMix64(seed);
        Log.Clear();
        new Span<byte>(_mem.HostPointer(_mem.RamOffset(Vmcb)), 4096).Clear();
        for (int i = 0; i < gprs.Length; i++)
        {
            gprs[i] = RandomValue();
        }

        gprs[Reg.RCX] = _r.Pick<ulong>([0x10, 0x1B, 0xC0000080, 0xC0000081, 0x174, 0x277, 0xC0010114, 0x40000000, 0x3A, 0x80]) | (_r.Chance(20) ? _r.Next() & 0xFFFF_FFFF : 0);
        gprs[Reg.RDX] = _r.Chance(50) ? 0x80 : gprs[Reg.RDX];
        TimerPeriod = _r.Pick<ulong>([150, 1_500, 6_000]);

        WriteL2Code();
        WriteIdt();
        WriteMaps();
        Template();
        int mutations = _r.Pick<int>([0, 0, 1, 1, 2, 3, 4, 6, 10]);
        for (int i = 0; i < mutations; i++)
        {
            Mutate();
        }
    }

    private ulong RandomValue() => _r.Below(6) switch
    {
        0 => 0,
        1 => _r.Next(),
        2 => _r.Next() & 0xFFFF_FFFF,
        3 => L2Code + (ulong)_r.Below(0x2000),
        4 => (ulong)_r.Below(0x1000) * 0x1000,
        _ => _r.Pick<ulong>(s_farAddresses),
    };

    // ---- L2 code ----

    private static readonly byte[][] s_snippets =
    [
        [0x0F, 0x01, 0xD9], // VMMCALL
        [0xF4], // HLT
        [0x0F, 0xA2], // CPUID
        [0x0F, 0x0B], // UD2
        [0xCC], // INT3
        [0xEB, 0xFE], // JMP $
        [0xF3, 0x90], // PAUSE
        [0x0F, 0x31], // RDTSC
        [0x0F, 0x32], // RDMSR
        [0x0F, 0x30], // WRMSR
        [0xE4, 0x80], // IN AL, 0x80
        [0xE6, 0x80], // OUT 0x80, AL
        [0xEC], // IN AL, DX
        [0xFA], // CLI
        [0xFB], // STI
        [0x0F, 0x20, 0xC0], // MOV EAX, CR0
        [0x0F, 0x22, 0xC0], // MOV CR0, EAX
        [0x0F, 0x22, 0xD8], // MOV CR3, EAX
        [0x0F, 0x22, 0xE0], // MOV CR4, EAX
        [0x0F, 0x23, 0xF8], // MOV DR7, EAX
        [0x0F, 0x21, 0xF0], // MOV EAX, DR6
        [0xCD, 0x80], // INT 0x80
        [0xCD, 0x0E], // INT 14
        [0x0F, 0x01, 0xD8], // VMRUN
        [0x0F, 0x01, 0xDA], // VMLOAD
        [0x0F, 0x01, 0xDB], // VMSAVE
        [0x0F, 0x01, 0xDC], // STGI
        [0x0F, 0x01, 0xDD], // CLGI
        [0x0F, 0x01, 0xDF], // INVLPGA
        [0x0F, 0x01, 0xF9], // RDTSCP
        [0x0F, 0x09], // WBINVD
        [0x8B, 0x00], // MOV EAX, [EAX]
        [0x89, 0x18], // MOV [EAX], EBX
        [0x0F, 0x01, 0x38], // INVLPG [EAX]
        [0x9C], // PUSHF
        [0x9D], // POPF
        [0xCF], // IRET
        [0x0F, 0x00, 0xD8], // LTR AX
        [0x0F, 0x01, 0x10], // LGDT [EAX]
        [0x8E, 0xD8], // MOV DS, AX
        [0xF1], // ICEBP
        [0x0F, 0xAA], // RSM
        [0x0F, 0x01, 0xC8], // MONITOR
        [0x0F, 0x01, 0xC9], // MWAIT
        [0x0F, 0x01, 0xD1], // XSETBV
        [0x0F, 0x05], // SYSCALL
        [0xFF, 0xE0], // JMP EAX
    ];

    private void WriteL2Code()
    {
        Span<byte> page = stackalloc byte[4096];
        page.Clear();
        int at = 0;
        int count = 1 + _r.Below(8);
        for (int i = 0; i < count && at < 4000; i++)
        {
            if (_r.Chance(8))
            {
                // A few random bytes.
                int n = 1 + _r.Below(6);
                for (int j = 0; j < n; j++)
                {
                    page[at++] = (byte)_r.Next();
                }

                continue;
            }

            byte[] s = s_snippets[_r.Below(s_snippets.Length)];
            s.CopyTo(page[at..]);
            at += s.Length;
        }

        if (_r.Chance(70))
        {
            // End in an endless loop that only an interrupt (or the bound) stops.
            page[at++] = 0xEB;
            page[at] = 0xFE;
        }

        _mem.TryLoad(L2Code, page);
    }

    /// <summary>L2's IDT: 64-bit interrupt gates to a handler that VMMCALLs, with a few random gates.</summary>
    private void WriteIdt()
    {
        Span<byte> idt = stackalloc byte[4096];
        for (int i = 0; i < 256; i++)
        {
            ulong lo = (L2Handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((L2Handler >> 16) << 48);
            ulong hi = L2Handler >> 32;
            if (_r.Chance(3))
            {
                lo = _r.Next();
                hi = _r.Chance(50) ? _r.Next() : 0;
            }

            BitConverter.TryWriteBytes(idt[(i * 16)..], lo);
            BitConverter.TryWriteBytes(idt[((i * 16) + 8)..], hi);
        }

        _mem.TryLoad(L2Idt, idt);
        Span<byte> handler = stackalloc byte[16];
        handler.Clear();
        handler[0] = 0x0F;
        handler[1] = 0x01;
        handler[2] = 0xD9; // VMMCALL
        handler[3] = _r.Chance(50) ? (byte)0xCF : (byte)0xF4; // IRET or HLT
        handler[4] = 0xEB;
        handler[5] = 0xFE;
        _mem.TryLoad(L2Handler, handler);
    }

    /// <summary>The I/O and MSR permission maps at their usual place: all clear, all set, or random bytes.</summary>
    private void WriteMaps()
    {
        byte* iopm = _mem.HostPointer(_mem.RamOffset(Iopm));
        byte* msrpm = _mem.HostPointer(_mem.RamOffset(Msrpm));
        int kind = _r.Below(3);
        byte fill = kind == 1 ? (byte)0xFF : (byte)0;
        new Span<byte>(iopm, 3 * 4096).Fill(fill);
        new Span<byte>(msrpm, 2 * 4096).Fill(fill);
        if (kind == 2)
        {
            for (int i = 0; i < 64; i++)
            {
                iopm[_r.Below(3 * 4096)] = (byte)_r.Next();
                msrpm[_r.Below(2 * 4096)] = (byte)_r.Next();
            }
        }
    }

    // ---- the valid template ----

    private static SegmentCache Seg(ushort sel, ulong bas, uint limit, ushort attr) => new() { Selector = sel, Base = bas, Limit = limit, Attr = attr };

    private void Template()
    {
        var v = _v;
        v.U32(VmcbOffset.InterceptCr) = _r.Chance(30) ? 0x0010_0010u : 0;
        v.U32(VmcbOffset.InterceptExceptions) = _r.Chance(40) ? (uint)_r.Next() : _r.Chance(50) ? 0xFFFF_FFFFu : 0;
        uint misc1 = (1u << SvmIntercept.Intr) | (1u << SvmIntercept.Nmi) | (1u << SvmIntercept.IoioProt) | (1u << SvmIntercept.MsrProt);
        if (_r.Chance(50))
        {
            misc1 |= 1u << SvmIntercept.Shutdown;
        }

        if (_r.Chance(50))
        {
            misc1 |= 1u << SvmIntercept.Hlt;
        }

        v.U32(VmcbOffset.InterceptMisc1) = misc1;
        v.U32(VmcbOffset.InterceptMisc2) = (1u << (SvmIntercept.Vmrun - 32)) | (_r.Chance(80) ? 1u << (SvmIntercept.Vmmcall - 32) : 0);
        v.U64(VmcbOffset.IopmBasePa) = Iopm;
        v.U64(VmcbOffset.MsrpmBasePa) = Msrpm;
        v.U32(VmcbOffset.Asid) = 1 + (uint)_r.Below(8);
        v.U32(VmcbOffset.IntCtl) = IntCtl.VIntrMasking;
        v.U64(VmcbOffset.GPat) = 0x0007_0406_0007_0406;
        v.U64(VmcbOffset.Dr6) = 0xFFFF_0FF0;
        v.U64(VmcbOffset.Dr7) = 0x400;
        v.U64(VmcbOffset.Rflags) = 2 | (_r.Chance(30) ? Rflags.IF : 0);
        v.U64(VmcbOffset.Rsp) = 0x70000 - 0x100;
        v.U64(VmcbOffset.Rax) = _r.Chance(50) ? 0x1000 : L2Code + 0x800;
        v.SetTable(VmcbOffset.Gdtr, new TableRegister { Base = BootStateGdt, Limit = 31 });
        v.SetTable(VmcbOffset.Idtr, new TableRegister { Base = L2Idt, Limit = 0xFFF });
        if (_r.Chance(35))
        {
            v.U64(VmcbOffset.NestedCtl) = 1;
            v.U64(VmcbOffset.NestedCr3) = BuildNpt();
        }

        Mode = _r.Below(7);
        ulong svme = EferBits.SVME;
        var data32 = Seg(0x10, 0, 0xFFFF_FFFF, 0xC093);
        switch (Mode)
        {
            case 0: // L1's long mode
            case 5: // compatibility mode
                SetSegments(Mode == 0 ? Seg(0x08, 0, 0xFFFF_FFFF, 0xA09B) : Seg(0x18, 0, 0xFFFF_FFFF, 0xC09B), data32);
                v.U64(VmcbOffset.Efer) = EferBits.LME | EferBits.LMA | EferBits.NXE | svme;
                v.U64(VmcbOffset.Cr0) = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.NE | Cr0Bits.PG | Cr0Bits.WP;
                v.U64(VmcbOffset.Cr3) = L1Pml4;
                v.U64(VmcbOffset.Cr4) = Cr4Bits.PAE;
                v.U64(VmcbOffset.Rip) = Mode == 0 ? L2Code : L2Code;
                break;
            case 1: // flat 32-bit protected mode, paging off
            case 6: // the same in virtual-8086 mode
                SetSegments(Seg(0x18, 0, 0xFFFF_FFFF, 0xC09B), data32);
                v.U64(VmcbOffset.Efer) = svme;
                v.U64(VmcbOffset.Cr0) = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.NE;
                v.U64(VmcbOffset.Rip) = L2Code;
                if (Mode == 6)
                {
                    v.U64(VmcbOffset.Rflags) |= Rflags.VM;
                    SetSegments(Seg(0x1800, 0x18000, 0xFFFF, 0xF3), Seg(0, 0, 0xFFFF, 0xF3));
                    v.U64(VmcbOffset.Rip) = 0;
                    v.U8(VmcbOffset.Cpl) = 3;
                }

                break;
            case 2: // 32-bit PAE paging
                SetSegments(Seg(0x18, 0, 0xFFFF_FFFF, 0xC09B), data32);
                v.U64(VmcbOffset.Efer) = svme | EferBits.NXE;
                v.U64(VmcbOffset.Cr0) = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.NE | Cr0Bits.PG;
                v.U64(VmcbOffset.Cr3) = PaePdpt;
                v.U64(VmcbOffset.Cr4) = Cr4Bits.PAE;
                v.U64(VmcbOffset.Rip) = L2Code;
                break;
            case 3: // 32-bit paging with 4 MiB pages
                SetSegments(Seg(0x18, 0, 0xFFFF_FFFF, 0xC09B), data32);
                v.U64(VmcbOffset.Efer) = svme;
                v.U64(VmcbOffset.Cr0) = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.NE | Cr0Bits.PG;
                v.U64(VmcbOffset.Cr3) = Pse32Pd;
                v.U64(VmcbOffset.Cr4) = Cr4Bits.PSE;
                v.U64(VmcbOffset.Rip) = L2Code;
                break;
            default: // real mode, CS base at L2's code
                SetSegments(Seg(0x1800, L2Code, 0xFFFF, 0x9B), Seg(0, 0, 0xFFFF, 0x93));
                v.U64(VmcbOffset.Efer) = svme;
                v.U64(VmcbOffset.Cr0) = Cr0Bits.ET | Cr0Bits.NE;
                v.U64(VmcbOffset.Rip) = 0;
                v.U64(VmcbOffset.Rsp) = 0x7000;
                break;
        }
    }

    private const ulong BootStateGdt = 0x9000;

    private void SetSegments(SegmentCache cs, SegmentCache data)
    {
        _v.SetSegment(VmcbOffset.Cs, cs);
        _v.SetSegment(VmcbOffset.Ds, data);
        _v.SetSegment(VmcbOffset.Es, data);
        _v.SetSegment(VmcbOffset.Ss, data);
    }

    // ---- nested page tables ----

    private int _nptPages;

    /// <summary>
    /// L1's nested tables in the pool: L2 0–1 GiB identity mapped with 2 MiB pages (the first 2 MiB with 4 KiB
    /// pages), 1–4 GiB with 1 GiB pages; then random damage. Returns nCR3 (sometimes not the pool at all).
    /// </summary>
    private ulong BuildNpt()
    {
        _nptPages = 4;
        new Span<byte>(_mem.HostPointer(_mem.RamOffset(NptPool)), NptPoolPages * 4096).Clear();
        ulong pml4 = NptPool, pdpt = NptPool + 0x1000, pd = NptPool + 0x2000, pt = NptPool + 0x3000;
        const ulong prwu = 7;
        if (_l1 == L1Paging.Legacy32)
        {
            // Two levels of 4-byte entries: L2 0–16 MiB in 4 MiB pages, the first 4 MiB in 4 KiB pages.
            uint* dir = (uint*)_mem.HostPointer(_mem.RamOffset(pml4));
            uint* tab = (uint*)_mem.HostPointer(_mem.RamOffset(pt));
            dir[0] = (uint)pt | 7;
            for (uint i = 1; i < 4; i++)
            {
                dir[i] = (i << 22) | 0x87;
            }

            for (uint i = 0; i < 1024; i++)
            {
                tab[i] = (i << 12) | 7;
            }
        }
        else
        {
            if (_l1 == L1Paging.Long4)
            {
                Entry(pml4, 0) = pdpt | prwu;
                for (ulong i = 1; i < 4; i++)
                {
                    Entry(pdpt, (int)i) = (i << 30) | prwu | 0x80;
                }
            }
            else
            {
                // PAE: nCR3 names a 32-byte PDPT of four entries.
                pdpt = pml4;
            }

            Entry(pdpt, 0) = pd | (_l1 == L1Paging.Pae && _r.Chance(50) ? 1 : prwu);
            Entry(pd, 0) = pt | prwu;
            for (ulong i = 1; i < 512; i++)
            {
                Entry(pd, (int)i) = (i << 21) | prwu | 0x80;
            }

            for (ulong i = 0; i < 512; i++)
            {
                Entry(pt, (int)i) = (i << 12) | prwu;
            }
        }

        int damage = _r.Pick<int>([0, 0, 0, 1, 1, 2, 4, 8]);
        for (int i = 0; i < damage; i++)
        {
            DamageNpt();
        }

        return _r.Below(10) switch
        {
            0 => _r.Pick<ulong>(s_farAddresses),
            1 => _r.Next() & 0x000F_FFFF_FFFF_FFFF,
            2 => pml4 | (uint)_r.Below(0x1000),
            _ => pml4,
        };
    }

    private ref ulong Entry(ulong table, int index) => ref *(ulong*)_mem.HostPointer(_mem.RamOffset(table + ((ulong)index * 8)));

    private void DamageNpt()
    {
        ulong table = NptPool + ((ulong)_r.Below(_nptPages) * 0x1000);
        int index = _r.Chance(60) ? _r.Below(4) : _r.Below(512);
        ref ulong e = ref Entry(table, index);
        ulong before = e;
        switch (_r.Below(10))
        {
            case 0: e &= ~1UL; break;
            case 1: e &= ~(ulong)(2 << _r.Below(2)); break;
            case 2: e |= 1UL << 63; break;
            case 3: e |= 1UL << (40 + _r.Below(12)); break; // bits 51:MAXPHYADDR and beyond
            case 4: e |= 0x80; break; // PS where it is reserved or makes a huge page
            case 5: e = (e & 0xFFF) | _r.Pick<ulong>([table, NptPool, Vmcb, NptPool + 0x2000]); break; // loops, the VMCB
            case 6: e = (e & 0xFFF) | _r.Pick<ulong>(s_farAddresses) & 0x000F_FFFF_FFFF_F000; break;
            case 7: e = _r.Next(); break;
            case 8: e |= (ulong)_r.Below(0x1000) << 12 & 0x1F_F000; break; // unaligned huge-page frame
            default: e = 0; break;
        }

        Log.Append($"  npt[{table:X}][{index}] {before:X} -> {e:X}\n");
    }

    // ---- mutations ----

    private static readonly (string Name, int Offset, int Size)[] s_fields =
    [
        ("intercept_cr", VmcbOffset.InterceptCr, 4), ("intercept_dr", VmcbOffset.InterceptDr, 4),
        ("intercept_exceptions", VmcbOffset.InterceptExceptions, 4), ("intercept_misc1", VmcbOffset.InterceptMisc1, 4),
        ("intercept_misc2", VmcbOffset.InterceptMisc2, 4), ("intercept_misc3", VmcbOffset.InterceptMisc3, 4),
        ("pause_filter_threshold", VmcbOffset.PauseFilterThreshold, 2), ("pause_filter_count", VmcbOffset.PauseFilterCount, 2),
        ("iopm_base", VmcbOffset.IopmBasePa, 8), ("msrpm_base", VmcbOffset.MsrpmBasePa, 8), ("tsc_offset", VmcbOffset.TscOffset, 8),
        ("asid", VmcbOffset.Asid, 4), ("tlb_control", VmcbOffset.TlbControl, 1), ("int_ctl", VmcbOffset.IntCtl, 4),
        ("int_vector", VmcbOffset.IntVector, 4), ("int_state", VmcbOffset.IntState, 4), ("nested_ctl", VmcbOffset.NestedCtl, 8),
        ("avic_apic_bar", VmcbOffset.AvicApicBar, 8), ("event_inj", VmcbOffset.EventInj, 4), ("event_inj_err", VmcbOffset.EventInjErr, 4),
        ("ncr3", VmcbOffset.NestedCr3, 8), ("virt_ext", VmcbOffset.VirtExt, 8), ("clean", VmcbOffset.CleanBits, 4),
        ("next_rip", VmcbOffset.NextRip, 8), ("avic_backing", VmcbOffset.AvicBackingPage, 8),
        ("cpl", VmcbOffset.Cpl, 1), ("efer", VmcbOffset.Efer, 8), ("cr4", VmcbOffset.Cr4, 8), ("cr3", VmcbOffset.Cr3, 8),
        ("cr0", VmcbOffset.Cr0, 8), ("dr7", VmcbOffset.Dr7, 8), ("dr6", VmcbOffset.Dr6, 8), ("rflags", VmcbOffset.Rflags, 8),
        ("rip", VmcbOffset.Rip, 8), ("rsp", VmcbOffset.Rsp, 8), ("rax", VmcbOffset.Rax, 8), ("cr2", VmcbOffset.Cr2, 8),
        ("g_pat", VmcbOffset.GPat, 8), ("dbgctl", VmcbOffset.DbgCtl, 8),
    ];

    private static readonly (string Name, int Offset)[] s_segments =
    [
        ("es", VmcbOffset.Es), ("cs", VmcbOffset.Cs), ("ss", VmcbOffset.Ss), ("ds", VmcbOffset.Ds),
        ("gdtr", VmcbOffset.Gdtr), ("idtr", VmcbOffset.Idtr),
    ];

    private void Mutate()
    {
        var v = _v;
        int k = _r.Below(s_fields.Length + s_segments.Length + 4);
        if (k >= s_fields.Length + s_segments.Length)
        {
            Special(k - s_fields.Length - s_segments.Length);
            return;
        }

        if (k >= s_fields.Length)
        {
            (string name, int off) = s_segments[k - s_fields.Length];
            switch (_r.Below(5))
            {
                case 0: v.U16(off) = (ushort)_r.Next(); break; // selector
                case 1: v.U16(off + 2) = (ushort)_r.Next(); break; // attributes, packed
                case 2: v.U32(off + 4) = (uint)_r.Next(); break; // limit
                case 3: v.U64(off + 8) = RandomValue(); break; // base
                default: v.U16(off + 2) = _r.Pick<ushort>([0, 0x93, 0x9B, 0xA9B, 0xC9B, 0x0B, 0x83, 0x1B, 0xF3, 0x6FB, 0xE9B]); break;
            }

            Log.Append($"  {name} = sel {v.U16(off):X} attr {v.U16(off + 2):X} limit {v.U32(off + 4):X} base {v.U64(off + 8):X}\n");
            return;
        }

        (string field, int offset, int size) = s_fields[k];
        ulong old = Read(offset, size);
        ulong value = _r.Below(4) switch
        {
            0 => old ^ (1UL << _r.Below(size * 8)),
            1 => RandomValue(),
            2 => old | (1UL << _r.Below(size * 8)),
            _ => _r.Next(),
        };
        Write(offset, size, value);
        Log.Append($"  {field} {old:X} -> {Read(offset, size):X}\n");
    }

    /// <summary>Structured mutations that plain bit flips rarely reach.</summary>
    private void Special(int which)
    {
        var v = _v;
        switch (which)
        {
            case 0:
                // EVENTINJ of every type, vector and error-code flag, sometimes with reserved bits.
                uint inj = EventInj.Valid | ((uint)_r.Below(8) << 8) | (uint)_r.Below(256) | (_r.Chance(50) ? EventInj.ErrorValid : 0);
                if (_r.Chance(10))
                {
                    inj |= (uint)(_r.Next() & EventInj.Reserved);
                }

                v.U32(VmcbOffset.EventInj) = inj;
                v.U32(VmcbOffset.EventInjErr) = (uint)_r.Next();
                v.U64(VmcbOffset.NextRip) = _r.Chance(50) ? L2Code + 2 : RandomValue();
                Log.Append($"  event_inj = {inj:X} err {v.U32(VmcbOffset.EventInjErr):X}\n");
                break;
            case 1:
                // V_IRQ with a vector and priority, V_GIF, VGIF enable, V_INTR_MASKING, V_IGN_TPR.
                uint ctl = (uint)_r.Below(16) | ((uint)_r.Below(16) << IntCtl.VIntrPrioShift);
                ctl |= _r.Chance(70) ? IntCtl.VIrq : 0;
                ctl |= _r.Chance(50) ? IntCtl.VGif : 0;
                ctl |= _r.Chance(30) ? IntCtl.VGifEnable : 0;
                ctl |= _r.Chance(70) ? IntCtl.VIntrMasking : 0;
                ctl |= _r.Chance(30) ? IntCtl.VIgnTpr : 0;
                v.U32(VmcbOffset.IntCtl) = ctl;
                v.U32(VmcbOffset.IntVector) = (uint)_r.Below(256);
                if (_r.Chance(50))
                {
                    v.U32(VmcbOffset.InterceptMisc1) |= 1u << SvmIntercept.Vintr;
                }

                Log.Append($"  int_ctl = {ctl:X} vector {v.U32(VmcbOffset.IntVector):X}\n");
                break;
            case 2:
                // Non-canonical, huge or page-straddling RIP and RSP.
                ulong rip = _r.Pick<ulong>([0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0x0000_8000_0000_0000, 0xFFFF_FFFF, 0xFFFF_FFF0, L2Code - 1, RamSize - 1, 0xFFFF_8000_0000_0000, 0xFFF0]);
                v.U64(_r.Chance(70) ? VmcbOffset.Rip : VmcbOffset.Rsp) = rip;
                Log.Append($"  rip {v.U64(VmcbOffset.Rip):X} rsp {v.U64(VmcbOffset.Rsp):X}\n");
                break;
            default:
                // Illegal control-register combinations.
                int c = _r.Below(6);
                switch (c)
                {
                    case 0: v.U64(VmcbOffset.Cr0) = (v.U64(VmcbOffset.Cr0) | Cr0Bits.PG) & ~Cr0Bits.PE; break;
                    case 1: v.U64(VmcbOffset.Efer) |= EferBits.LME; v.U64(VmcbOffset.Cr0) |= Cr0Bits.PG | Cr0Bits.PE; v.U64(VmcbOffset.Cr4) &= ~Cr4Bits.PAE; break;
                    case 2: v.U64(VmcbOffset.Efer) |= EferBits.LME | EferBits.LMA; v.U64(VmcbOffset.Cr4) |= Cr4Bits.PAE; v.U64(VmcbOffset.Cr0) |= Cr0Bits.PG | Cr0Bits.PE; v.U16(VmcbOffset.Cs + 2) = 0x69B; break;
                    case 3: v.U64(VmcbOffset.Cr0) |= Cr0Bits.NW; break;
                    case 4: v.U64(VmcbOffset.Efer) &= ~EferBits.LME; v.U64(VmcbOffset.Cr4) = Cr4Bits.PAE; v.U64(VmcbOffset.Cr0) |= Cr0Bits.PG | Cr0Bits.PE; v.U64(VmcbOffset.Cr3) = _r.Pick<ulong>([L1Pml4, PaePdpt, 0x71000, RamSize - 32]); break;
                    default: v.U64(VmcbOffset.Cr4) |= Cr4Bits.PCIDE | (1UL << _r.Below(32)); break;
                }

                Log.Append($"  crs({c}) cr0 {v.U64(VmcbOffset.Cr0):X} cr3 {v.U64(VmcbOffset.Cr3):X} cr4 {v.U64(VmcbOffset.Cr4):X} efer {v.U64(VmcbOffset.Efer):X}\n");
                break;
        }
    }

    private ulong Read(int offset, int size) => size switch
    {
        1 => _v.U8(offset),
        2 => _v.U16(offset),
        4 => _v.U32(offset),
        _ => _v.U64(offset),
    };

    private void Write(int offset, int size, ulong value)
    {
        switch (size)
        {
            case 1: _v.U8(offset) = (byte)value; break;
            case 2: _v.U16(offset) = (ushort)value; break;
            case 4: _v.U32(offset) = (uint)value; break;
            default: _v.U64(offset) = value; break;
        }
    }

    /// <summary>Every named VMCB field as generated (for the failure message).</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        foreach ((string name, int off, int size) in s_fields)
        {
            sb.Append($"{name}={Read(off, size):X} ");
        }

        foreach ((string name, int off) in s_segments)
        {
            sb.Append($"{name}=[{_v.U16(off):X} {_v.U16(off + 2):X} {_v.U32(off + 4):X} {_v.U64(off + 8):X}] ");
        }

        return sb.ToString();
    }

    /// <summary>The pool pages, whose shadows L0 must drop after they are rewritten behind its back.</summary>
    public static IEnumerable<Gfn> NptPoolFrames()
    {
        for (int i = 0; i < NptPoolPages; i++)
        {
            yield return new Gfn((NptPool >> 12) + (ulong)i);
        }
    }
}
