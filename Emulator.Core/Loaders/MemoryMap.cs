using Emulator.Core.Memory;

namespace Emulator.Core.Loaders;

/// <summary>Range types as the e820 interface and the Multiboot memory map number them.</summary>
public enum MemoryType : uint
{
    Ram = 1,
    Reserved = 2,
}

/// <summary>One entry of the guest's physical memory map.</summary>
public readonly record struct MemoryRange(ulong Base, ulong Length, MemoryType Type)
{
    public ulong End => Base + Length;
}

/// <summary>
/// The RAM map of PLATFORM.md as firmware reports it (Multiboot mmap, fw_cfg "etc/e820"): low 640 KiB,
/// the VGA hole and BIOS area reserved, RAM from 1 MiB to min(size, 3 GiB), the rest above 4 GiB.
/// </summary>
public static class MemoryMap
{
    public const ulong LowRamTop = PhysicalMemory.VgaHoleStart;
    public const ulong ExtendedRamBase = 0x100000;

    public static MemoryRange[] For(PhysicalMemory mem)
    {
        var map = new List<MemoryRange>(4)
        {
            new(0, LowRamTop, MemoryType.Ram),
            new(LowRamTop, ExtendedRamBase - LowRamTop, MemoryType.Reserved),
        };
        if (mem.LowRamEnd > ExtendedRamBase)
        {
            map.Add(new(ExtendedRamBase, mem.LowRamEnd - ExtendedRamBase, MemoryType.Ram));
        }

        if (mem.HighRamEnd > PhysicalMemory.HighRamBase)
        {
            map.Add(new(PhysicalMemory.HighRamBase, mem.HighRamEnd - PhysicalMemory.HighRamBase, MemoryType.Ram));
        }

        return [.. map];
    }

    /// <summary>True when [gpa, gpa+length) lies inside one usable RAM range of the map.</summary>
    public static bool IsUsableRam(PhysicalMemory mem, ulong gpa, ulong length)
    {
        foreach (var r in For(mem))
        {
            if (r.Type == MemoryType.Ram && gpa >= r.Base && gpa <= r.End && length <= r.End - gpa)
            {
                return true;
            }
        }

        return false;
    }
}
