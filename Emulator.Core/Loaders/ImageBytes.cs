using System.Buffers.Binary;

namespace Emulator.Core.Loaders;

/// <summary>
/// Bounds-checked little-endian reads over an image file. Every read states what it reads, so a short
/// file gives a message naming the structure that is cut off instead of a host exception.
/// </summary>
internal static class ImageBytes
{
    /// <summary>Throws unless [offset, offset+length) lies inside the file (no overflow possible).</summary>
    public static void Require(ReadOnlySpan<byte> file, ulong offset, ulong length, string what)
    {
        if (offset > (ulong)file.Length || length > (ulong)file.Length - offset)
        {
            throw new LoaderException($"truncated image: {what} (bytes 0x{offset:X}..+0x{length:X}) ends past the end of the file (0x{file.Length:X} bytes)");
        }
    }

    public static ushort U16(ReadOnlySpan<byte> file, ulong offset, string what)
    {
        Require(file, offset, 2, what);
        return BinaryPrimitives.ReadUInt16LittleEndian(file[(int)offset..]);
    }

    public static uint U32(ReadOnlySpan<byte> file, ulong offset, string what)
    {
        Require(file, offset, 4, what);
        return BinaryPrimitives.ReadUInt32LittleEndian(file[(int)offset..]);
    }

    public static ulong U64(ReadOnlySpan<byte> file, ulong offset, string what)
    {
        Require(file, offset, 8, what);
        return BinaryPrimitives.ReadUInt64LittleEndian(file[(int)offset..]);
    }
}
