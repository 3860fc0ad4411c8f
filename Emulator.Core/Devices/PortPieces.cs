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
