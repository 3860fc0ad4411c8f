using System.Numerics;

namespace Emulator.Core.Devices;

/// <summary>
/// How QEMU's pc machine carries out a port access that is wider than, or not aligned to, the register
/// window it starts in (observable behaviour of its memory core, which devices on <c>emu</c> reproduce):
/// the access is done as a sequence of naturally aligned pieces; each piece goes to the window holding its
/// first port, is no wider than that window's widest access nor than the alignment of its offset in the
/// window, and is a power of two. Ports no window claims read all ones and drop writes.
/// </summary>
internal static class PortPieces
{
    /// <summary>
    /// Carries out a read of <paramref name="size"/> bytes at <paramref name="offset"/> as the device's pieces:
    /// each piece's bytes land at their place in the result.
    /// </summary>
    public static uint Read<TDevice>(TDevice device, ushort offset, int size)
        where TDevice : IPieceDevice
    {
        uint value = 0;
        for (int done = 0; done < size;)
        {
            uint part = device.ReadPiece(offset + done, size - done, out int n);
            value |= (part & Mask(n)) << (8 * done);
            done += n;
        }

        return value;
    }

    /// <summary>Carries out a write as the device's pieces; each piece gets the value shifted down to its first byte.</summary>
    public static void Write<TDevice>(TDevice device, ushort offset, int size, uint value)
        where TDevice : IPieceDevice
    {
        for (int done = 0; done < size;)
        {
            done += device.WritePiece(offset + done, size - done, value >> (8 * done));
        }
    }

    /// <summary>Size of the next piece: <paramref name="remaining"/> bytes left, at <paramref name="offsetInWindow"/>.</summary>
    public static int Size(int offsetInWindow, int remaining, int maxAccess)
    {
        int max = maxAccess;
        int align = offsetInWindow & -offsetInWindow;
        if (align != 0 && align < max)
        {
            max = align;
        }

        return (int)BitOperations.RoundUpToPowerOf2((uint)Math.Min(remaining, max) + 1) >> 1;
    }

    /// <summary>The low <paramref name="size"/> bytes set.</summary>
    public static uint Mask(int size) => size >= 4 ? uint.MaxValue : (1u << (size * 8)) - 1;
}

/// <summary>A port device whose registers are reached piece by piece (<see cref="PortPieces"/>).</summary>
internal interface IPieceDevice
{
    /// <summary>Reads the piece that starts at <paramref name="port"/> (device-relative); <paramref name="n"/> is its size.</summary>
    uint ReadPiece(int port, int remaining, out int n);

    /// <summary>Writes the piece that starts at <paramref name="port"/> (value in the low bytes of <paramref name="part"/>); returns its size.</summary>
    int WritePiece(int port, int remaining, uint part);
}
