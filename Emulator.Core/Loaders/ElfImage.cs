namespace Emulator.Core.Loaders;

/// <summary>One piece of the image to copy into guest RAM: file bytes, then zeros up to <see cref="MemSize"/>.</summary>
public readonly record struct LoadSegment(ulong Address, ulong FileOffset, ulong FileSize, ulong MemSize)
{
    public ulong End => Address + MemSize;
}

/// <summary>
/// The parts of an ELF executable a boot loader needs (System V gABI, "ELF Header" and "Program Header"):
/// class, machine, entry point and the PT_LOAD segments placed at their physical addresses (p_paddr),
/// as Multiboot loaders do. Every field is range-checked against the file.
/// </summary>
public sealed class ElfImage
{
    private const uint PtLoad = 1;
    private const ushort EtExec = 2;
    private const ushort Em386 = 3, EmX8664 = 62;

    public bool Is64 { get; }
    public ushort Machine { get; }
    public ulong Entry { get; }
    public IReadOnlyList<LoadSegment> Segments { get; }

    private ElfImage(bool is64, ushort machine, ulong entry, LoadSegment[] segments)
    {
        Is64 = is64;
        Machine = machine;
        Entry = entry;
        Segments = segments;
    }

    /// <summary>True when the file starts with the ELF magic "\x7FELF".</summary>
    public static bool HasMagic(ReadOnlySpan<byte> file) =>
        file.Length >= 4 && file[0] == 0x7F && file[1] == (byte)'E' && file[2] == (byte)'L' && file[3] == (byte)'F';

    /// <summary>ELF class byte (1 = 32-bit, 2 = 64-bit), or 0 when the identification is cut off.</summary>
    public static int ClassOf(ReadOnlySpan<byte> file) => file.Length > 4 ? file[4] : 0;

    /// <summary>Parses an ELF32 or ELF64 little-endian x86 executable; throws <see cref="LoaderException"/>.</summary>
    public static ElfImage Parse(ReadOnlySpan<byte> file)
    {
        if (!HasMagic(file))
        {
            throw new LoaderException("not an ELF file");
        }

        ImageBytes.Require(file, 0, 16, "ELF identification");
        int cls = file[4];
        if (cls is not (1 or 2))
        {
            throw new LoaderException($"ELF class {cls} is neither ELFCLASS32 nor ELFCLASS64");
        }

        if (file[5] != 1)
        {
            throw new LoaderException("ELF data encoding is not little-endian");
        }

        if (file[6] != 1)
        {
            throw new LoaderException($"ELF version {file[6]} is not EV_CURRENT");
        }

        bool is64 = cls == 2;
        ImageBytes.Require(file, 0, is64 ? 64UL : 52UL, "ELF header");
        ushort type = ImageBytes.U16(file, 16, "e_type");
        ushort machine = ImageBytes.U16(file, 18, "e_machine");
        if (type != EtExec)
        {
            throw new LoaderException($"ELF type {type} is not an executable (ET_EXEC)");
        }

        if (machine is not (Em386 or EmX8664))
        {
            throw new LoaderException($"ELF machine {machine} is not x86 (EM_386 or EM_X86_64)");
        }

        ulong entry, phoff;
        ushort phentsize, phnum;
        if (is64)
        {
            entry = ImageBytes.U64(file, 24, "e_entry");
            phoff = ImageBytes.U64(file, 32, "e_phoff");
            phentsize = ImageBytes.U16(file, 54, "e_phentsize");
            phnum = ImageBytes.U16(file, 56, "e_phnum");
        }
        else
        {
            entry = ImageBytes.U32(file, 24, "e_entry");
            phoff = ImageBytes.U32(file, 28, "e_phoff");
            phentsize = ImageBytes.U16(file, 42, "e_phentsize");
            phnum = ImageBytes.U16(file, 44, "e_phnum");
        }

        int minEntry = is64 ? 56 : 32;
        if (phnum == 0)
        {
            throw new LoaderException("ELF file has no program headers");
        }

        if (phentsize < minEntry)
        {
            throw new LoaderException($"ELF program header size {phentsize} is smaller than {minEntry}");
        }

        ImageBytes.Require(file, phoff, (ulong)phentsize * phnum, "ELF program header table");
        var segments = new List<LoadSegment>();
        for (int i = 0; i < phnum; i++)
        {
            ulong ph = phoff + ((ulong)i * phentsize);
            if (ImageBytes.U32(file, ph, "p_type") != PtLoad)
            {
                continue;
            }

            ulong offset, paddr, filesz, memsz;
            if (is64)
            {
                offset = ImageBytes.U64(file, ph + 8, "p_offset");
                paddr = ImageBytes.U64(file, ph + 24, "p_paddr");
                filesz = ImageBytes.U64(file, ph + 32, "p_filesz");
                memsz = ImageBytes.U64(file, ph + 40, "p_memsz");
            }
            else
            {
                offset = ImageBytes.U32(file, ph + 4, "p_offset");
                paddr = ImageBytes.U32(file, ph + 12, "p_paddr");
                filesz = ImageBytes.U32(file, ph + 16, "p_filesz");
                memsz = ImageBytes.U32(file, ph + 20, "p_memsz");
            }

            if (filesz > memsz)
            {
                throw new LoaderException($"ELF segment {i}: p_filesz 0x{filesz:X} exceeds p_memsz 0x{memsz:X}");
            }

            if (memsz == 0)
            {
                continue;
            }

            ImageBytes.Require(file, offset, filesz, $"ELF segment {i}");
            if (paddr + memsz < paddr)
            {
                throw new LoaderException($"ELF segment {i} wraps around the address space");
            }

            segments.Add(new LoadSegment(paddr, offset, filesz, memsz));
        }

        if (segments.Count == 0)
        {
            throw new LoaderException("ELF file has no loadable (PT_LOAD) segments");
        }

        return new ElfImage(is64, machine, entry, [.. segments]);
    }
}
