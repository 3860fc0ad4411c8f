using Emulator.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Core.Loaders;

/// <summary>
/// The real-mode code an application processor runs after a Startup IPI, for the built-in guests and the tests that
/// boot APs: at the vector's page (CS = vector·0x100, IP = 0) it loads the boot GDT, enables PAE with the boot page
/// tables (<see cref="ImageLoader.PageTablesStart"/>), sets EFER.LME, turns on paging and protection in one CR0
/// write, and far-jumps to a 64-bit entry. Its GDTR image is at page offset 0x100, the far pointer at 0x110.
/// </summary>
public static class ApTrampoline
{
    private const int GdtrOffset = 0x100, JumpOffset = 0x110;

    /// <summary>Writes the trampoline for Startup vector <paramref name="sipiVector"/> jumping to <paramref name="apEntry"/>; false if it does not fit in RAM.</summary>
    public static bool Install(PhysicalMemory memory, byte sipiVector, ulong apEntry)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ulong page = (ulong)sipiVector << 12;
        var a = new Assembler(16);
        a.cli();
        a.mov(ax, cs);
        a.mov(ds, ax);
        a.db(0x66, 0x0F, 0x01, 0x16, GdtrOffset & 0xFF, GdtrOffset >> 8); // o32 lgdt [0x100]
        a.mov(eax, cr4);
        a.or(eax, 0x20); // PAE
        a.mov(cr4, eax);
        a.mov(eax, (int)ImageLoader.PageTablesStart); // the boot PML4
        a.mov(cr3, eax);
        a.mov(ecx, 0xC000_0080);
        a.rdmsr();
        a.or(eax, 0x100); // EFER.LME
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x8000_0001)); // PG | PE
        a.mov(cr0, eax);
        a.db(0x66, 0xFF, 0x2E, JumpOffset & 0xFF, JumpOffset >> 8); // o32 jmp far [0x110]
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), 0);

        var gdtr = new byte[6];
        BitConverter.TryWriteBytes(gdtr.AsSpan(0), (ushort)(BootState.GdtSize - 1));
        BitConverter.TryWriteBytes(gdtr.AsSpan(2), (uint)BootState.GdtBase);
        var jump = new byte[6];
        BitConverter.TryWriteBytes(jump.AsSpan(0), (uint)apEntry);
        BitConverter.TryWriteBytes(jump.AsSpan(4), BootState.Code64Selector);
        return memory.TryLoad(page, ms.ToArray()) && memory.TryLoad(page + GdtrOffset, gdtr) && memory.TryLoad(page + JumpOffset, jump);
    }
}
