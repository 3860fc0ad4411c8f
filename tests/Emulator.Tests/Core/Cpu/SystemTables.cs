using Emulator.Core.Cpu;
using Iced.Intel;

// Not "...Core.Cpu": that namespace would hide the Cpu class from the tests' shared helpers.
namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// Descriptor encodings (APM vol. 2 §4.7–4.8) and a standard table layout written straight into a test
/// guest's memory, so a test can start in any mode and privilege with its own GDT, IDT and TSS.
/// </summary>
internal static class SystemTables
{
    public const ulong GdtBase = 0x3000, IdtBase = 0x4000, TssBase = 0x5000;
    public const ulong HandlerBase = 0x140000;

    // Standard GDT: the boot selectors keep their meaning (0x08 code64, 0x10 data, 0x18 code32, all DPL 0),
    // then ring-3 segments in the order SYSRET expects (STAR[63:48] = 0x20), then the TSS and gates.
    public const ushort Code64 = 0x08, Data0 = 0x10, Code32 = 0x18;
    public const ushort UserCode32 = 0x20, UserData = 0x28, UserCode64 = 0x30;
    public const ushort Tss = 0x38, CallGate = 0x48, Spare = 0x58;

    /// <summary>A code or data descriptor: access byte (P DPL S type) and the flags nibble (G D/B L AVL).</summary>
    public static ulong Segment(uint @base, uint limit, int access, int flags) =>
        (limit & 0xFFFFUL) | ((ulong)(@base & 0xFFFFFF) << 16) | ((ulong)access << 40) |
        ((ulong)((limit >> 16) & 0xF) << 48) | ((ulong)flags << 52) | ((ulong)(@base >> 24) << 56);

    public static ulong Code64Desc(int dpl) => Segment(0, 0xFFFFF, 0x9A | (dpl << 5), 0xA);

    public static ulong Code32Desc(int dpl) => Segment(0, 0xFFFFF, 0x9A | (dpl << 5), 0xC);

    public static ulong DataDesc(int dpl) => Segment(0, 0xFFFFF, 0x92 | (dpl << 5), 0xC);

    /// <summary>A system descriptor (TSS, LDT): 8 bytes, plus the upper base in a second slot in long mode.</summary>
    public static ulong SystemDesc(ulong @base, uint limit, int type, int dpl = 0) =>
        Segment((uint)@base, limit, 0x80 | (dpl << 5) | type, 0);

    /// <summary>A 32/16-bit gate (interrupt 0xE/0x6, trap 0xF/0x7, call 0xC/0x4, task 0x5).</summary>
    public static ulong Gate(ushort sel, uint offset, int type, int dpl, int paramCount = 0, bool present = true) =>
        (offset & 0xFFFFUL) | ((ulong)sel << 16) | ((ulong)paramCount << 32) | ((ulong)type << 40) |
        ((ulong)dpl << 45) | (present ? 1UL << 47 : 0) | ((ulong)(offset >> 16) << 48);

    /// <summary>A 64-bit gate: low and high quadwords.</summary>
    public static (ulong Lo, ulong Hi) Gate64(ushort sel, ulong offset, int type, int dpl, int ist = 0, bool present = true) =>
        (Gate(sel, (uint)offset, type, dpl, ist, present), offset >> 32);

    public static void Write64(TestGuest g, ulong gpa, ulong v) => g.Mem.Write(gpa, 8, v);

    /// <summary>Writes the GDT (entry i at GdtBase + 8i) and points GDTR at it.</summary>
    public static void SetGdt(TestGuest g, ulong[] entries)
    {
        for (int i = 0; i < entries.Length; i++)
        {
            Write64(g, GdtBase + ((ulong)i * 8), entries[i]);
        }

        g.Cpu.Gdtr = new TableRegister { Base = GdtBase, Limit = (ushort)((entries.Length * 8) - 1) };
    }

    /// <summary>The standard GDT; the TSS descriptor is 32-bit (legacy) or 16 bytes (long mode).</summary>
    public static ulong[] StandardGdt(bool longMode, uint tssLimit = 0x67)
    {
        var gdt = new ulong[14];
        gdt[1] = Code64Desc(0);
        gdt[2] = DataDesc(0);
        gdt[3] = Code32Desc(0);
        gdt[4] = Code32Desc(3);
        gdt[5] = DataDesc(3);
        gdt[6] = Code64Desc(3);
        gdt[7] = SystemDesc(TssBase, tssLimit, 0x9);
        gdt[8] = longMode ? TssBase >> 32 : 0;
        return gdt;
    }

    /// <summary>Sets TR's hidden part to the TSS at <see cref="TssBase"/> (as LTR would) and GDTR/IDTR.</summary>
    public static void Install(TestGuest g, ulong[] gdt, int idtEntries, uint tssLimit = 0x67)
    {
        SetGdt(g, gdt);
        bool lm = g.Cpu.LongModeActive;
        g.Cpu.Idtr = new TableRegister { Base = IdtBase, Limit = (ushort)((idtEntries * (lm ? 16 : 8)) - 1) };
        g.Cpu.Seg[Emulator.Core.Cpu.Cpu.TrIndex] = new SegmentCache { Selector = Tss, Base = TssBase, Limit = tssLimit, Attr = 0x8B };
    }

    public static void SetIdt64(TestGuest g, int vector, (ulong Lo, ulong Hi) gate)
    {
        Write64(g, IdtBase + ((ulong)vector * 16), gate.Lo);
        Write64(g, IdtBase + ((ulong)vector * 16) + 8, gate.Hi);
    }

    public static void SetIdt32(TestGuest g, int vector, ulong gate) => Write64(g, IdtBase + ((ulong)vector * 8), gate);

    /// <summary>Address of the handler stub for a vector.</summary>
    public static ulong Handler(int vector) => HandlerBase + ((ulong)vector * 0x40);

    /// <summary>Assembles a handler stub for <paramref name="vector"/> at <see cref="Handler"/>.</summary>
    public static void SetHandler(TestGuest g, int bitness, int vector, Action<Assembler> body)
        => g.Load(TestGuest.Assemble(bitness, body, Handler(vector)), Handler(vector));

    /// <summary>Sets the U/S bit in the boot identity map (PML4 0x70000, PDPT 0x71000, PDs 0x72000–0x75FFF) so ring 3 can run.</summary>
    public static void MakeUserAccessible(TestGuest g)
    {
        g.Mem.Write(0x70000, 8, g.Mem.Read(0x70000, 8) | 4);
        for (ulong i = 0; i < 4; i++)
        {
            g.Mem.Write(0x71000 + (i * 8), 8, g.Mem.Read(0x71000 + (i * 8), 8) | 4);
        }

        for (ulong e = 0; e < 4 * 512; e++)
        {
            g.Mem.Write(0x72000 + (e * 8), 8, g.Mem.Read(0x72000 + (e * 8), 8) | 4);
        }

        g.Cpu.FlushTlb();
    }

    /// <summary>Puts the CPU at CPL 3 with the given code and stack selectors from the standard GDT.</summary>
    public static void EnterRing3(TestGuest g, ushort cs, ushort ss, ulong rsp)
    {
        var c = g.Cpu;
        c.Seg[SegReg.SS] = Emulator.Core.Cpu.Cpu.FromDescriptor((ushort)(ss | 3), g.Mem.Read(GdtBase + (ulong)(ss & ~7), 8));
        c.Seg[SegReg.SS].Attr |= 1;
        c.Seg[SegReg.DS] = c.Seg[SegReg.SS];
        c.Seg[SegReg.ES] = c.Seg[SegReg.SS];
        c.SetCpl(3);
        c.Seg[SegReg.CS] = Emulator.Core.Cpu.Cpu.FromDescriptor((ushort)(cs | 3), g.Mem.Read(GdtBase + (ulong)(cs & ~7), 8));
        c.SegmentLoaded(SegReg.SS);
        c.SegmentLoaded(SegReg.DS);
        c.SegmentLoaded(SegReg.ES);
        c.SegmentLoaded(SegReg.CS);
        c.Gpr[Reg.RSP] = rsp;
    }
}
