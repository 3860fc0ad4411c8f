using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Emulator.Mmu.Memory;

/// <summary>
/// Host physical memory: one native, 4 KiB aligned region. On Linux it is an anonymous
/// MAP_NORESERVE mapping, so pages are committed only when first touched and a large guest
/// address space costs only what the guest uses. An HPA is an offset into this arena.
/// </summary>
public sealed unsafe partial class HostMemoryArena : IDisposable
{
    public const int PageSize = 4096;
    private byte* _base;
    private readonly bool _mapped;

    public ulong Size { get; }

    public HostMemoryArena(ulong size)
    {
        if (size == 0 || (size & (PageSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "arena size must be a non-zero multiple of 4 KiB");
        }

        Size = size;
        if (OperatingSystem.IsLinux())
        {
            // PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE
            nint p = Mmap(0, (nuint)size, 0x1 | 0x2, 0x02 | 0x20 | 0x4000, -1, 0);
            if (p == -1)
            {
                ThrowOutOfMemory(size);
            }

            _base = (byte*)p;
            _mapped = true;
        }
        else
        {
            _base = (byte*)NativeMemory.AlignedAlloc((nuint)size, PageSize);
            NativeMemory.Clear(_base, (nuint)size);
        }
    }

    /// <summary>Pointer to the first byte of the arena.</summary>
    public byte* Base => _base;

    /// <summary>Host pointer for an HPA; the caller guarantees hpa &lt; Size.</summary>
    public byte* Pointer(ulong hpa) => _base + hpa;

    public Span<byte> Slice(ulong hpa, int length)
    {
        if (hpa > Size || (ulong)length > Size - hpa)
        {
            throw new ArgumentOutOfRangeException(nameof(hpa));
        }

        // SAFETY: bounds checked against Size above.
        return new Span<byte>(_base + hpa, length);
    }

    public void Dispose()
    {
        if (_base == null)
        {
            return;
        }

        if (_mapped)
        {
            _ = Munmap((nint)_base, (nuint)Size);
        }
        else
        {
            NativeMemory.AlignedFree(_base);
        }

        _base = null;
    }

    [DoesNotReturn]
    private static void ThrowOutOfMemory(ulong size) =>
        throw new OutOfMemoryException($"cannot reserve {size} bytes of guest memory");

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint addr, nuint length);
}
