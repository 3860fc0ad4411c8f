using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Loaders;

namespace Emulator.Core.Devices;

/// <summary>
/// QEMU's firmware configuration device, legacy port interface (docs/specs/fw_cfg.txt in QEMU): a 16-bit
/// write to the selector port (0x510) picks an item and rewinds it; each byte read from the data port
/// (0x511) returns the item's next byte. Unknown items and reads past an item's end return zero.
/// </summary>
public sealed class FwCfg : IPortDevice
{
    public const ushort PortBase = 0x510;
    public const ushort Selector = 0, DataPort = 1;

    public const ushort KeySignature = 0x0000, KeyId = 0x0001, KeyRamSize = 0x0003, KeyNbCpus = 0x0005;
    public const ushort KeyMaxCpus = 0x000F, KeyFileDir = 0x0019, FirstFileKey = 0x0020;
    public const int FileNameLength = 56;

    private readonly Dictionary<ushort, byte[]> _items = [];
    private readonly List<(string Name, ushort Key)> _files = [];
    private byte[] _current = [];
    private int _offset;

    public FwCfg(ulong ramSize, int cpus, int maxCpus, IReadOnlyList<MemoryRange> memoryMap)
    {
        ArgumentNullException.ThrowIfNull(memoryMap);
        _items[KeySignature] = "QEMU"u8.ToArray();
        _items[KeyId] = Le(1, 4); // traditional interface only (no DMA)
        _items[KeyRamSize] = Le(ramSize, 8);
        _items[KeyNbCpus] = Le((ulong)cpus, 2);
        _items[KeyMaxCpus] = Le((ulong)maxCpus, 2);
        AddFile("etc/e820", E820(memoryMap));
    }

    public ushort CurrentKey { get; private set; }

    /// <summary>Adds a named item to the file directory under the next free key.</summary>
    public ushort AddFile(string name, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(data);
        if (Encoding.ASCII.GetByteCount(name) >= FileNameLength)
        {
            throw new ArgumentException($"fw_cfg file name '{name}' is longer than {FileNameLength - 1} bytes", nameof(name));
        }

        ushort key = (ushort)(FirstFileKey + _files.Count);
        _items[key] = data;
        _files.Add((name, key));
        _items[KeyFileDir] = Directory();
        return key;
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
        if (offset != DataPort)
        {
            return 0;
        }

        // A wider read returns consecutive data bytes, as a sequence of byte reads would.
        uint v = 0;
        for (int i = 0; i < size; i++)
        {
            v |= (uint)NextByte() << (8 * i);
        }

        return v;
    }

    public void Out(ushort offset, int size, uint value)
    {
        if (offset == Selector)
        {
            CurrentKey = (ushort)value;
            _current = _items.TryGetValue(CurrentKey, out var item) ? item : [];
            _offset = 0;
        }

        // Writes to the data port are ignored, as on QEMU since 2.4.
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
            BinaryPrimitives.WriteUInt32BigEndian(e, (uint)_items[_files[i].Key].Length);
            BinaryPrimitives.WriteUInt16BigEndian(e[4..], _files[i].Key);
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
