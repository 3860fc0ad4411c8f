namespace Emulator.Core.Loaders;

/// <summary>
/// The Multiboot v1 header (Multiboot Specification 0.6.96, §3.1): a 4-byte aligned magic in the first
/// 8 KiB of the image, flags, and a checksum that makes the three words sum to zero; with flag bit 16
/// the a.out-kludge address fields follow.
/// </summary>
public readonly record struct MultibootHeader(
    int Offset,
    uint Flags,
    uint HeaderAddr,
    uint LoadAddr,
    uint LoadEndAddr,
    uint BssEndAddr,
    uint EntryAddr)
{
    public const uint Magic = 0x1BADB002;
    public const int SearchLimit = 8192;

    /// <summary>Flag bit 0: modules must be page-aligned (we always align them).</summary>
    public const uint PageAlignModules = 1 << 0;
    /// <summary>Flag bit 1: the kernel wants mem_* and the memory map (we always provide them).</summary>
    public const uint WantMemoryInfo = 1 << 1;
    /// <summary>Flag bit 2: video mode table; QEMU ignores it and so do we (no framebuffer info).</summary>
    public const uint WantVideoMode = 1 << 2;
    /// <summary>Flag bit 16: the a.out-kludge address fields are valid.</summary>
    public const uint HasAddressFields = 1 << 16;

    public bool HasAddresses => (Flags & HasAddressFields) != 0;

    /// <summary>Finds the header; null when there is none. A valid magic with a short header is refused.</summary>
    public static MultibootHeader? Find(ReadOnlySpan<byte> file)
    {
        int limit = Math.Min(file.Length, SearchLimit);
        for (int off = 0; off + 12 <= limit; off += 4)
        {
            uint magic = ImageBytes.U32(file, (ulong)off, "Multiboot magic");
            if (magic != Magic)
            {
                continue;
            }

            uint flags = ImageBytes.U32(file, (ulong)off + 4, "Multiboot flags");
            uint checksum = ImageBytes.U32(file, (ulong)off + 8, "Multiboot checksum");
            if (unchecked(magic + flags + checksum) != 0)
            {
                continue;
            }

            if ((flags & HasAddressFields) == 0)
            {
                return new MultibootHeader(off, flags, 0, 0, 0, 0, 0);
            }

            ImageBytes.Require(file, (ulong)off, 32, "Multiboot a.out-kludge address fields");
            return new MultibootHeader(
                off,
                flags,
                ImageBytes.U32(file, (ulong)off + 12, "header_addr"),
                ImageBytes.U32(file, (ulong)off + 16, "load_addr"),
                ImageBytes.U32(file, (ulong)off + 20, "load_end_addr"),
                ImageBytes.U32(file, (ulong)off + 24, "bss_end_addr"),
                ImageBytes.U32(file, (ulong)off + 28, "entry_addr"));
        }

        return null;
    }

    /// <summary>
    /// Segments of an a.out-kludge image (§3.1.3): the file from header_offset − (header_addr − load_addr)
    /// is loaded at load_addr up to load_end_addr (0: to the end of the file), zeros up to bss_end_addr (0: none).
    /// </summary>
    public LoadSegment KludgeSegment(ReadOnlySpan<byte> file, out ulong entry)
    {
        if (LoadAddr > HeaderAddr)
        {
            throw new LoaderException($"Multiboot load_addr 0x{LoadAddr:X} is above header_addr 0x{HeaderAddr:X}");
        }

        ulong headerDelta = HeaderAddr - LoadAddr;
        if (headerDelta > (ulong)Offset)
        {
            throw new LoaderException($"Multiboot header_addr − load_addr (0x{headerDelta:X}) exceeds the header's file offset 0x{Offset:X}");
        }

        ulong fileStart = (ulong)Offset - headerDelta;
        ulong loadSize;
        if (LoadEndAddr == 0)
        {
            loadSize = (ulong)file.Length - fileStart;
        }
        else if (LoadEndAddr < LoadAddr)
        {
            throw new LoaderException($"Multiboot load_end_addr 0x{LoadEndAddr:X} is below load_addr 0x{LoadAddr:X}");
        }
        else
        {
            loadSize = LoadEndAddr - LoadAddr;
        }

        ImageBytes.Require(file, fileStart, loadSize, "Multiboot a.out-kludge text+data");
        ulong memSize = loadSize;
        if (BssEndAddr != 0)
        {
            if (BssEndAddr < LoadAddr + loadSize)
            {
                throw new LoaderException($"Multiboot bss_end_addr 0x{BssEndAddr:X} is below the end of the loaded data");
            }

            memSize = BssEndAddr - LoadAddr;
        }

        if (memSize == 0)
        {
            throw new LoaderException("Multiboot a.out-kludge image loads nothing");
        }

        entry = EntryAddr;
        return new LoadSegment(LoadAddr, fileStart, loadSize, memSize);
    }
}
