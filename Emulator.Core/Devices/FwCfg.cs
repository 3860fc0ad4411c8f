using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Loaders;

namespace Emulator.Core.Devices;

/// <summary>
/// QEMU's firmware configuration device, legacy port interface (docs/specs/fw_cfg.rst in QEMU): a 16-bit
/// write to the selector port (0x510) picks an item and rewinds it; each byte read from the data port
/// (0x511) returns the item's next byte. Unknown items and reads past an item's end return zero.
/// <para>
/// Observable details kept from QEMU's pc machine: the signature item is selected at reset; bit 14 of a key
/// (the write channel) selects the same item as without it; the file directory lists files sorted by
/// name, the n-th one under key 0x20 + n; accesses QEMU's port pair does not accept — a read wider than a
/// byte at 0x510, a dword access, a write other than a word to 0x510 — read zero or are ignored, and bytes
/// of an access that fall past 0x511 read all ones (nothing else decodes there). Writes to the data port
/// are ignored (QEMU ≥ 2.4). There is no DMA interface, so the ID item reports the traditional one only.
/// </para>
/// <para>
/// Items: SIGNATURE, ID, RAM_SIZE, NB_CPUS, MAX_CPUS, FILE_DIR, the x86 IRQ0_OVERRIDE flag, and "etc/e820".
/// QEMU-convention test kernels read NB_CPUS, RAM_SIZE and key 0x11 (kvm-unit-tests' MAX_RAM; QEMU has
/// the -kernel image's data there, this machine has nothing, so it reads zero: no memory limit).
/// </para>
/// </summary>
public sealed class FwCfg : IPortDevice
{
    public const ushort PortBase = 0x510;
    public const ushort Selector = 0, DataPort = 1;

    public const ushort KeySignature = 0x0000, KeyId = 0x0001, KeyRamSize = 0x0003, KeyNbCpus = 0x0005;
    public const ushort KeyMaxCpus = 0x000F, KeyFileDir = 0x0019, FirstFileKey = 0x0020;

    /// <summary>Key bits: the (obsolete) write channel, and the architecture-specific item space.</summary>
    public const ushort KeyWriteChannel = 0x4000, KeyArchLocal = 0x8000;

    /// <summary>x86 item: 1 when IRQ 0 reaches I/O APIC pin 2 through an interrupt source override (QEMU pc).</summary>
    public const ushort KeyIrq0Override = KeyArchLocal | 0x0002;

    /// <summary>ID bit 0: the traditional port interface.</summary>
    public const uint IdTraditional = 1;

    public const int FileNameLength = 56;

    private readonly Dictionary<ushort, byte[]> _items = [];
    private readonly List<(string Name, byte[] Data)> _files = [];
    private byte[] _current = [];
    private int _offset;

    public FwCfg(ulong ramSize, int cpus, int maxCpus, IReadOnlyList<MemoryRange> memoryMap)
    {
        ArgumentNullException.ThrowIfNull(memoryMap);
        _items[KeySignature] = "QEMU"u8.ToArray();
        _items[KeyId] = Le(IdTraditional, 4);
        _items[KeyRamSize] = Le(ramSize, 8);
        _items[KeyNbCpus] = Le((ulong)cpus, 2);
        _items[KeyMaxCpus] = Le((ulong)maxCpus, 2);
        _items[KeyIrq0Override] = Le(1, 4);
        AddFile("etc/e820", E820(memoryMap));
        Select(KeySignature);
    }

    /// <summary>The key last written to the selector.</summary>
    public ushort CurrentKey { get; private set; }

    /// <summary>
    /// Adds a named item to the file directory. The directory stays sorted by name, so a file that sorts
    /// before existing ones moves them to the next key; the key returned is the file's key right now.
    /// </summary>
    public ushort AddFile(string name, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(data);
        if (Encoding.ASCII.GetByteCount(name) >= FileNameLength)
        {
            throw new ArgumentException($"fw_cfg file name '{name}' is longer than {FileNameLength - 1} bytes", nameof(name));
        }

        if (KeyOf(name) != 0)
        {
            throw new ArgumentException($"fw_cfg file '{name}' already exists", nameof(name));
        }

        int index = _files.Count;
        while (index > 0 && string.CompareOrdinal(name, _files[index - 1].Name) < 0)
        {
            index--;
        }

        _files.Insert(index, (name, data));
        for (int i = 0; i < _files.Count; i++)
        {
            _items[(ushort)(FirstFileKey + i)] = _files[i].Data;
        }

        _items[KeyFileDir] = Directory();
        return (ushort)(FirstFileKey + index);
    }

    /// <summary>The key of the named file, or 0 when there is none.</summary>
    public ushort KeyOf(string name)
    {
        for (int i = 0; i < _files.Count; i++)
        {
            if (_files[i].Name == name)
            {
                return (ushort)(FirstFileKey + i);
            }
        }

        return 0;
    }

    /// <summary>The e820 table as "etc/e820" carries it: le64 address, le64 length, le32 type per entry.</summary>
    public static byte[] E820(IReadOnlyList<MemoryRange> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var bytes = new byte[map.Count * 20];
        for (int i = 0; i < map.Count; i++)
        {
            var e = bytes.AsSpan(i * 20);
            BinaryPrimitives.WriteUInt64LittleEndian(e, map[i].Base);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], map[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], (uint)map[i].Type);
        }

        return bytes;
    }

    public uint In(ushort offset, int size)
    {
        // Ports 0x510–0x511 are one window that accepts byte reads only (either port reads the data).
        if (offset == Selector)
        {
            return size == 1 ? NextByte() : 0u;
        }

        if (offset == DataPort)
        {
            // A wider access splits into a byte here and the ports after 0x511, which nothing decodes.
            return (uint)NextByte() | (PortPieces.Mask(size) & ~0xFFu);
        }

        return PortPieces.Mask(size);
    }

    public void Out(ushort offset, int size, uint value)
    {
        if (offset == Selector && size == 2)
        {
            Select((ushort)value);
        }

        // Byte writes go to the data register, which ignores them; other widths are not accepted.
    }

    private void Select(ushort key)
    {
        CurrentKey = key;
        _current = _items.TryGetValue((ushort)(key & ~KeyWriteChannel), out var item) ? item : [];
        _offset = 0;
    }

    private byte NextByte()
    {
        if (_offset >= _current.Length)
        {
            return 0;
        }

        return _current[_offset++];
    }

    /// <summary>be32 count, then per file: be32 size, be16 select, be16 reserved, char name[56].</summary>
    private byte[] Directory()
    {
        var dir = new byte[4 + (_files.Count * 64)];
        BinaryPrimitives.WriteUInt32BigEndian(dir, (uint)_files.Count);
        for (int i = 0; i < _files.Count; i++)
        {
            var e = dir.AsSpan(4 + (i * 64));
            BinaryPrimitives.WriteUInt32BigEndian(e, (uint)_files[i].Data.Length);
            BinaryPrimitives.WriteUInt16BigEndian(e[4..], (ushort)(FirstFileKey + i));
            Encoding.ASCII.GetBytes(_files[i].Name, e[8..]);
        }

        return dir;
    }

    private static byte[] Le(ulong v, int size)
    {
        var b = new byte[size];
        for (int i = 0; i < size; i++)
        {
            b[i] = (byte)(v >> (8 * i));
        }

        return b;
    }
}
