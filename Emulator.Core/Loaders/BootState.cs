using Emulator.Core.Cpu;
using Emulator.Core.Memory;

namespace Emulator.Core.Loaders;

/// <summary>
/// Puts a CPU directly into the entry state a boot protocol promises (PLATFORM.md): flat 32-bit
/// protected mode for Multiboot, long mode with an identity map for ELF64 and flat long-mode images.
/// The tables it needs are written into low guest RAM (GDT at 0x9000, page tables at 0x70000–0x75FFF);
/// the Multiboot loader passes its own GDT address, after the kernel, instead.
/// </summary>
public static class BootState
{
    /// <summary>Guest-physical address of the boot GDT (null, code64, data, code32) for ELF64 and flat images; below the 640 KiB line.</summary>
    public const ulong GdtBase = 0x9000;

    /// <summary>Bytes the boot GDT occupies.</summary>
    public const ulong GdtSize = 4 * 8;
    public const ushort Code64Selector = 0x08, DataSelector = 0x10, Code32Selector = 0x18;

    // Layout (all below 0x9F000): GDT 0x9000, PML4 0x70000, PDPT 0x71000, PDs 0x72000..0x75FFF.
    private const ulong Pml4 = 0x70000, Pdpt = 0x71000, Pd0 = 0x72000;

    private static readonly ulong[] s_gdt =
    [
        0,
        0x00AF9B000000FFFF, // 0x08: 64-bit code, DPL0
        0x00CF93000000FFFF, // 0x10: data, 4 GiB flat, DPL0
        0x00CF9B000000FFFF, // 0x18: 32-bit code, 4 GiB flat, DPL0
    ];

    private static void WriteGdt(PhysicalMemory mem, Cpu.Cpu cpu, ulong gdtBase)
    {
        Span<byte> bytes = stackalloc byte[s_gdt.Length * 8];
        for (int i = 0; i < s_gdt.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes[(i * 8)..], s_gdt[i]);
        }

        mem.TryLoad(gdtBase, bytes);
        cpu.Gdtr = new TableRegister { Base = gdtBase, Limit = (ushort)(bytes.Length - 1) };
        cpu.Idtr = new TableRegister { Base = 0, Limit = 0 };
    }

    /// <summary>
    /// 32-bit protected mode, flat 4 GiB CS/DS/ES/SS/FS/GS, paging off, interrupts off; the GDT the
    /// selectors come from is written at <paramref name="gdtBase"/>.
    /// </summary>
    public static void EnterProtected32(Cpu.Cpu cpu, ulong entry, ulong gdtBase = GdtBase)
    {
        var mem = cpu.Phys;
        WriteGdt(mem, cpu, gdtBase);
        cpu.Cr0 = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.NE;
        cpu.Efer = 0;
        cpu.FlagsBits = Rflags.Reserved1;
        cpu.LazyOp = LazyFlags.None;
        var data = Cpu.Cpu.FromDescriptor(DataSelector, s_gdt[2]);
        for (int s = 0; s < 6; s++)
        {
            cpu.Seg[s] = data;
        }

        cpu.Seg[SegReg.CS] = Cpu.Cpu.FromDescriptor(Code32Selector, s_gdt[3]);
        cpu.Seg[Cpu.Cpu.TrIndex] = new SegmentCache { Limit = 0x67, Attr = 0x8B };
        cpu.SetCpl(0);
        cpu.UpdateMode();
        cpu.FlushTlb();
        cpu.Rip = entry;
    }

    /// <summary>Long mode, 64-bit CS, identity map of the first 4 GiB with 2 MiB pages.</summary>
    public static void EnterLong64(Cpu.Cpu cpu, ulong entry, ulong stack)
    {
        var mem = cpu.Phys;
        WriteGdt(mem, cpu, GdtBase);
        Span<byte> e = stackalloc byte[8];
        BitConverter.TryWriteBytes(e, Pdpt | 3);
        mem.TryLoad(Pml4, e);
        for (ulong i = 0; i < 4; i++)
        {
            BitConverter.TryWriteBytes(e, (Pd0 + (i * 0x1000)) | 3);
            mem.TryLoad(Pdpt + (i * 8), e);
            for (ulong j = 0; j < 512; j++)
            {
                ulong pa = (i << 30) | (j << 21);
                BitConverter.TryWriteBytes(e, pa | 0x83); // P | RW | PS
                mem.TryLoad(Pd0 + (i * 0x1000) + (j * 8), e);
            }
        }

        cpu.Cr4 = Cr4Bits.PAE;
        cpu.Cr3 = Pml4;
        cpu.Efer = EferBits.LME | EferBits.LMA | EferBits.NXE;
        cpu.Cr0 = Cr0Bits.PE | Cr0Bits.ET | Cr0Bits.NE | Cr0Bits.PG | Cr0Bits.WP;
        cpu.FlagsBits = Rflags.Reserved1;
        cpu.LazyOp = LazyFlags.None;
        var data = Cpu.Cpu.FromDescriptor(DataSelector, s_gdt[2]);
        for (int s = 0; s < 6; s++)
        {
            cpu.Seg[s] = data;
        }

        cpu.Seg[SegReg.CS] = Cpu.Cpu.FromDescriptor(Code64Selector, s_gdt[1]);
        cpu.Seg[Cpu.Cpu.TrIndex] = new SegmentCache { Limit = 0x67, Attr = 0x8B };
        cpu.SetCpl(0);
        cpu.UpdateMode();
        cpu.FlushTlb();
        cpu.Rip = entry;
        cpu.Gpr[Reg.RSP] = stack;
    }

    /// <summary>Real mode with CS:IP derived from a linear entry address below 1 MiB.</summary>
    public static void EnterReal(Cpu.Cpu cpu, ulong entry)
    {
        cpu.ResetToRealMode();
        ushort cs = (ushort)((entry >> 4) & 0xF000);
        cpu.Seg[SegReg.CS] = SegmentCache.RealMode(cs, 0x9B);
        cpu.UpdateMode();
        cpu.Rip = entry - ((ulong)cs << 4);
        cpu.FlushTlb();
    }
}
