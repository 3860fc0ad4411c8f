using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Memory;

namespace Emulator.Core.Loaders;

/// <summary>
/// Builds the Multiboot v1 information structure (Multiboot Specification 0.6.96, §3.3): the 116-byte
/// info block, the memory map, the module list and the strings it points at, as one block for a given
/// guest-physical address. The loader puts it after the kernel and its modules (as QEMU does), so no fixed
/// low address is taken from a kernel that loads there. As QEMU does, the command line starts with the
/// image name, so argv[0] of a test kernel is its file.
/// </summary>
public static class MultibootInfo
{
    public const uint BootMagic = 0x2BADB002;

    public const uint FlagMemory = 1 << 0, FlagCmdline = 1 << 2, FlagMods = 1 << 3, FlagMmap = 1 << 6, FlagLoaderName = 1 << 9;

    // Field offsets in the info block (§3.3).
    public const int Flags = 0, MemLower = 4, MemUpper = 8, Cmdline = 16, ModsCount = 20, ModsAddr = 24;
    public const int MmapLength = 44, MmapAddr = 48, BootLoaderName = 64, Size = 116;

    public const string LoaderName = "emu";

    /// <summary>
    /// Lays out the structure to be copied to <paramref name="address"/> (below 4 GiB: the fields are 32-bit).
    /// Nothing is written to the guest; the caller checks that the block fits in RAM there.
    /// </summary>
    public static byte[] Build(PhysicalMemory mem, ulong address, string commandLine, IReadOnlyList<LoadedModule> modules)
    {
        ArgumentNullException.ThrowIfNull(mem);
        ArgumentNullException.ThrowIfNull(commandLine);
        ArgumentNullException.ThrowIfNull(modules);
        var map = MemoryMap.For(mem);
        int strings = Encoding.UTF8.GetByteCount(LoaderName) + Encoding.UTF8.GetByteCount(commandLine) + 2;
        foreach (var m in modules)
        {
            strings += Encoding.UTF8.GetByteCount(m.Name) + 1;
        }

        var area = new byte[Align(Size, 16) + (24 * map.Length) + 16 + (16 * modules.Count) + strings];
        int cursor = Align(Size, 16);

        int mmapOffset = cursor;
        foreach (var r in map)
        {
            // Each entry: size (of the rest, 20), base_addr, length, type.
            BinaryPrimitives.WriteUInt32LittleEndian(area.AsSpan(cursor), 20);
            BinaryPrimitives.WriteUInt64LittleEndian(area.AsSpan(cursor + 4), r.Base);
            BinaryPrimitives.WriteUInt64LittleEndian(area.AsSpan(cursor + 12), r.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(area.AsSpan(cursor + 20), (uint)r.Type);
            cursor += 24;
        }

        int mmapLength = cursor - mmapOffset;
        cursor = Align(cursor, 16);
        int modsOffset = cursor;
        cursor += 16 * modules.Count;

        int loaderNameOffset = PutString(area, ref cursor, LoaderName);
        int cmdlineOffset = PutString(area, ref cursor, commandLine);
        for (int i = 0; i < modules.Count; i++)
        {
            int nameOffset = PutString(area, ref cursor, modules[i].Name);
            var entry = area.AsSpan(modsOffset + (16 * i));
            BinaryPrimitives.WriteUInt32LittleEndian(entry, (uint)modules[i].Start);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], (uint)modules[i].End);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], Address(address, nameOffset));
        }

        var info = area.AsSpan();
        ulong memUpperBytes = Math.Min(mem.LowRamEnd, PhysicalMemory.LowRamLimit) - MemoryMap.ExtendedRamBase;
        BinaryPrimitives.WriteUInt32LittleEndian(info[Flags..], FlagMemory | FlagCmdline | FlagMods | FlagMmap | FlagLoaderName);
        BinaryPrimitives.WriteUInt32LittleEndian(info[MemLower..], (uint)(MemoryMap.LowRamTop >> 10));
        BinaryPrimitives.WriteUInt32LittleEndian(info[MemUpper..], (uint)(memUpperBytes >> 10));
        BinaryPrimitives.WriteUInt32LittleEndian(info[Cmdline..], Address(address, cmdlineOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(info[ModsCount..], (uint)modules.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(info[ModsAddr..], Address(address, modsOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(info[MmapLength..], (uint)mmapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(info[MmapAddr..], Address(address, mmapOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(info[BootLoaderName..], Address(address, loaderNameOffset));
        return area[..cursor];
    }

    private static uint Address(ulong address, int offset) => (uint)(address + (uint)offset);

    private static int Align(int v, int a) => (v + a - 1) & -a;

    private static int PutString(byte[] area, ref int cursor, string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        int at = cursor;
        Encoding.UTF8.GetBytes(s, area.AsSpan(at));
        area[at + n] = 0;
        cursor = at + n + 1;
        return at;
    }
}
