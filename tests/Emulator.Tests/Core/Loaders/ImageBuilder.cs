using System.Buffers.Binary;

namespace Emulator.Tests.Core.Loaders;

/// <summary>One segment of a test image: bytes at a physical address, zero-filled up to MemSize.</summary>
public sealed record TestSegment(ulong Address, byte[] Data, ulong MemSize);

/// <summary>
/// Builds boot images byte by byte for loader tests (System V gABI ELF layouts, Multiboot 0.6.96 header),
/// so the tests depend on the formats' definitions, not on the loader's own code.
/// </summary>
public static class ImageBuilder
{
    public const uint MultibootMagic = 0x1BADB002;

    /// <summary>
    /// An ELF executable: header, program headers, then each segment's bytes in order (the file ends with
    /// the last segment's last byte, so any truncation cuts something the loader needs).
    /// </summary>
    public static byte[] Elf(bool is64, ulong entry, IReadOnlyList<TestSegment> segments, ushort machine = 0, ushort type = 2)
    {
        int ehsize = is64 ? 64 : 52, phentsize = is64 ? 56 : 32;
        machine = machine != 0 ? machine : (ushort)(is64 ? 62 : 3);
        int dataStart = ehsize + (phentsize * segments.Count);
        int size = dataStart;
        foreach (var s in segments)
        {
            size += s.Data.Length;
        }

        var f = new byte[size];
        f[0] = 0x7F;
        f[1] = (byte)'E';
        f[2] = (byte)'L';
        f[3] = (byte)'F';
        f[4] = (byte)(is64 ? 2 : 1);
        f[5] = 1;
        f[6] = 1;
        var h = f.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        if (is64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(h[24..], entry);
            BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[52..], (ushort)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[54..], (ushort)phentsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[56..], (ushort)segments.Count);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], (uint)entry);
            BinaryPrimitives.WriteUInt32LittleEndian(h[28..], (uint)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[40..], (ushort)ehsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[42..], (ushort)phentsize);
            BinaryPrimitives.WriteUInt16LittleEndian(h[44..], (ushort)segments.Count);
        }

        int offset = dataStart;
        for (int i = 0; i < segments.Count; i++)
        {
            var s = segments[i];
            var ph = h[(ehsize + (i * phentsize))..];
            BinaryPrimitives.WriteUInt32LittleEndian(ph, 1); // PT_LOAD
            if (is64)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 7);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], (ulong)offset);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], s.Address);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], s.Address);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)s.Data.Length);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], s.MemSize);
                BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], 0x1000);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], (uint)offset);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[8..], (uint)s.Address);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[12..], (uint)s.Address);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[16..], (uint)s.Data.Length);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[20..], (uint)s.MemSize);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[24..], 7);
                BinaryPrimitives.WriteUInt32LittleEndian(ph[28..], 0x1000);
            }

            s.Data.CopyTo(f, offset);
            offset += s.Data.Length;
        }

        return f;
    }

    /// <summary>A Multiboot header: magic, flags, checksum, and the five a.out-kludge fields when given.</summary>
    public static byte[] MultibootHeader(uint flags, uint[]? addresses = null, bool badChecksum = false)
    {
        var h = new byte[addresses == null ? 12 : 32];
        BinaryPrimitives.WriteUInt32LittleEndian(h, MultibootMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), unchecked(0u - MultibootMagic - flags + (badChecksum ? 1u : 0u)));
        for (int i = 0; addresses != null && i < addresses.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(12 + (4 * i)), addresses[i]);
        }

        return h;
    }

    public static byte[] Concat(params byte[][] parts)
    {
        var all = new List<byte>();
        foreach (var p in parts)
        {
            all.AddRange(p);
        }

        return [.. all];
    }

    /// <summary>Recognizable filler: byte i is (seed + i) mod 251 (never a run of zeros).</summary>
    public static byte[] Pattern(int length, int seed = 1)
    {
        var b = new byte[length];
        for (int i = 0; i < length; i++)
        {
            b[i] = (byte)(((seed + i) % 251) + 1);
        }

        return b;
    }
}
