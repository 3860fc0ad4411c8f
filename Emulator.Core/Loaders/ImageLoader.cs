using Emulator.Core.Cpu;
using Emulator.Core.Memory;

namespace Emulator.Core.Loaders;

/// <summary>
/// Detects the image format (PLATFORM.md, "Boot protocols"), checks every segment against the file and
/// guest RAM, and only then copies the image and puts the CPU in the entry state. A refused image leaves
/// guest memory untouched and throws <see cref="LoaderException"/> with a one-line reason.
/// </summary>
public static class ImageLoader
{
    /// <summary>Boot page tables of <see cref="BootState.EnterLong64"/> (PML4, PDPT, four PDs).</summary>
    public const ulong PageTablesStart = 0x70000, PageTablesEnd = 0x76000;

    /// <summary>Stack pointer for long/protected entries when RAM is too small for the top-of-RAM rule.</summary>
    public const ulong LowStackTop = 0x9F000;

    public const ulong DefaultFlatLoad = 0x100000, DefaultRealLoad = 0x7C00;

    private const ulong FourGiB = 1UL << 32;

    private static readonly byte[] s_zeroPage = new byte[4096];

    public static LoadedImage Load(Cpu.Cpu cpu, ReadOnlySpan<byte> file, BootOptions options)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        ArgumentNullException.ThrowIfNull(options);
        if (file.IsEmpty)
        {
            throw new LoaderException("image is empty");
        }

        if (options.Format != ImageFormat.Flat && options.Format != ImageFormat.Auto && (options.LoadAddress != null || options.EntryAddress != null))
        {
            throw new LoaderException("--load and --entry apply to flat images only (--format flat)");
        }

        switch (options.Format)
        {
            case ImageFormat.Flat:
                return LoadFlat(cpu, file, options);
            case ImageFormat.Multiboot:
                return LoadMultiboot(cpu, file, MultibootHeader.Find(file) ?? throw new LoaderException("no Multiboot header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB"), options);
            case ImageFormat.Elf:
                return LoadElf64(cpu, file, options);
        }

        if (options.LoadAddress != null || options.EntryAddress != null)
        {
            throw new LoaderException("--load and --entry apply to flat images only (--format flat)");
        }

        if (MultibootHeader.Find(file) is { } header)
        {
            return LoadMultiboot(cpu, file, header, options);
        }

        if (ElfImage.HasMagic(file))
        {
            if (ElfImage.ClassOf(file) == 1)
            {
                throw new LoaderException("ELF32 image without a Multiboot header: only Multiboot kernels boot in 32-bit mode");
            }

            return LoadElf64(cpu, file, options);
        }

        throw new LoaderException("unrecognized image: no Multiboot header and not ELF64 (use --format flat for a raw binary)");
    }

    private static LoadedImage LoadMultiboot(Cpu.Cpu cpu, ReadOnlySpan<byte> file, MultibootHeader header, BootOptions options)
    {
        uint unknown = header.Flags & 0xFFF8;
        if (unknown != 0)
        {
            throw new LoaderException($"Multiboot header requires features this loader does not know (flags 0x{header.Flags:X8})");
        }

        LoadSegment[] segments;
        ulong entry;
        if (header.HasAddresses)
        {
            segments = [header.KludgeSegment(file, out entry)];
        }
        else if (ElfImage.HasMagic(file))
        {
            // ELF64 is accepted too: QEMU refuses it, but kernels that wrap ELF64 into ELF32 show that the
            // addresses are what matters. The entry still runs in 32-bit protected mode.
            var elf = ElfImage.Parse(file);
            segments = [.. elf.Segments];
            entry = elf.Entry;
        }
        else
        {
            throw new LoaderException("Multiboot header without the a.out-kludge addresses (flag 16) in a file that is not ELF");
        }

        if (entry >= FourGiB)
        {
            throw new LoaderException($"Multiboot entry point 0x{entry:X} is above 4 GiB");
        }

        var mem = cpu.Phys;
        Check(mem, segments, [], FourGiB);
        ulong imageEnd = EndOf(segments);

        // Modules follow the kernel, each page-aligned (the kernel may ask with flag 0; we always align).
        var modules = new List<LoadedModule>(options.Modules.Count);
        ulong next = AlignPage(imageEnd);
        foreach (var m in options.Modules)
        {
            ulong size = (ulong)m.Data.Length;
            if (!MemoryMap.IsUsableRam(mem, next, Math.Max(size, 1)) || next + size > FourGiB)
            {
                throw new LoaderException($"module {m.Name} ({size} bytes) does not fit in guest RAM at 0x{next:X}");
            }

            modules.Add(new LoadedModule(next, next + size, m.Name));
            next = AlignPage(next + Math.Max(size, 1));
        }

        // The information block, then the boot GDT, on the next page after the kernel and its modules, as
        // QEMU places them: a kernel may load anywhere in RAM (kvm-unit-tests' realmode test at 0x8000),
        // so no fixed low area is taken from it. The GDT only has to live until the kernel loads its own
        // (Multiboot Specification 0.6.96 §3.2: GDTR may be invalid, the OS sets up its own).
        string commandLine = options.CommandLine.Length == 0 ? options.ImageName : options.ImageName + " " + options.CommandLine;
        ulong infoAddress = next;
        byte[] info = MultibootInfo.Build(mem, infoAddress, commandLine, modules);
        ulong gdt = AlignUp(infoAddress + (ulong)info.Length, 16);
        ulong bootInfoEnd = gdt + BootState.GdtSize;
        if (bootInfoEnd > FourGiB || !MemoryMap.IsUsableRam(mem, infoAddress, bootInfoEnd - infoAddress))
        {
            throw new LoaderException($"the Multiboot information (0x{bootInfoEnd - infoAddress:X} bytes) does not fit in guest RAM after the image at 0x{infoAddress:X}");
        }

        Copy(mem, file, segments);
        for (int i = 0; i < modules.Count; i++)
        {
            mem.TryLoad(modules[i].Start, options.Modules[i].Data);
        }

        mem.TryLoad(infoAddress, info);
        BootState.EnterProtected32(cpu, entry, gdt);
        cpu.Gpr[Reg.RAX] = MultibootInfo.BootMagic;
        cpu.Gpr[Reg.RBX] = infoAddress;
        return new LoadedImage(ImageKind.Multiboot, entry, infoAddress, imageEnd, modules);
    }

    private static LoadedImage LoadElf64(Cpu.Cpu cpu, ReadOnlySpan<byte> file, BootOptions options)
    {
        var elf = ElfImage.Parse(file);
        if (!elf.Is64)
        {
            throw new LoaderException("ELF32 image without a Multiboot header: only Multiboot kernels boot in 32-bit mode");
        }

        RefuseModules(options);
        var mem = cpu.Phys;
        LoadSegment[] segments = [.. elf.Segments];
        Check(mem, segments, LongModeReserved, ulong.MaxValue);
        Copy(mem, file, segments);
        BootState.EnterLong64(cpu, elf.Entry, StackTop(mem));
        return new LoadedImage(ImageKind.Elf64, elf.Entry, 0, EndOf(segments), []);
    }

    private static LoadedImage LoadFlat(Cpu.Cpu cpu, ReadOnlySpan<byte> file, BootOptions options)
    {
        RefuseModules(options);
        var mem = cpu.Phys;
        ulong load = options.LoadAddress ?? (options.Mode == EntryMode.Real ? DefaultRealLoad : DefaultFlatLoad);
        ulong entry = options.EntryAddress ?? load;
        LoadSegment[] segments = [new LoadSegment(load, 0, (ulong)file.Length, (ulong)file.Length)];
        switch (options.Mode)
        {
            case EntryMode.Real:
                if (entry >= MemoryMap.ExtendedRamBase)
                {
                    throw new LoaderException($"real-mode entry 0x{entry:X} is above 1 MiB");
                }

                Check(mem, segments, [], ulong.MaxValue);
                Copy(mem, file, segments);
                BootState.EnterReal(cpu, entry);
                cpu.Gpr[Reg.RSP] = DefaultRealLoad;
                break;
            case EntryMode.Protected:
                if (entry >= FourGiB)
                {
                    throw new LoaderException($"protected-mode entry 0x{entry:X} is above 4 GiB");
                }

                Check(mem, segments, [(BootState.GdtBase, BootState.GdtBase + BootState.GdtSize, "the boot GDT")], FourGiB);
                Copy(mem, file, segments);
                BootState.EnterProtected32(cpu, entry);
                cpu.Gpr[Reg.RSP] = StackTop(mem);
                break;
            default:
                Check(mem, segments, LongModeReserved, ulong.MaxValue);
                Copy(mem, file, segments);
                BootState.EnterLong64(cpu, entry, StackTop(mem));
                break;
        }

        return new LoadedImage(ImageKind.Flat, entry, 0, EndOf(segments), []);
    }

    private static readonly (ulong Start, ulong End, string What)[] LongModeReserved =
    [
        (BootState.GdtBase, BootState.GdtBase + BootState.GdtSize, "the boot GDT"),
        (PageTablesStart, PageTablesEnd, "the boot page tables"),
    ];

    /// <summary>Initial stack pointer: the top of RAM below 3 GiB, or 0x9F000 when RAM is smaller than 2 MiB.</summary>
    public static ulong StackTop(PhysicalMemory mem) => mem.LowRamEnd >= 0x200000 ? mem.LowRamEnd : LowStackTop;

    private static void RefuseModules(BootOptions options)
    {
        if (options.Modules.Count != 0)
        {
            throw new LoaderException("--initrd and --module need a Multiboot image");
        }
    }

    private static void Check(PhysicalMemory mem, LoadSegment[] segments, (ulong Start, ulong End, string What)[] reserved, ulong limit)
    {
        foreach (var s in segments)
        {
            if (s.End > limit || !MemoryMap.IsUsableRam(mem, s.Address, s.MemSize))
            {
                throw new LoaderException($"segment at 0x{s.Address:X} (0x{s.MemSize:X} bytes) lies outside guest RAM ({mem.RamSize >> 20} MiB)");
            }

            foreach (var (start, end, what) in reserved)
            {
                if (s.Address < end && start < s.End)
                {
                    throw new LoaderException($"segment at 0x{s.Address:X} (0x{s.MemSize:X} bytes) overlaps {what} at 0x{start:X}-0x{end - 1:X}");
                }
            }
        }
    }

    private static void Copy(PhysicalMemory mem, ReadOnlySpan<byte> file, LoadSegment[] segments)
    {
        // Not stackalloc: the module skips locals init, so a stack buffer would hold old host bytes.
        ReadOnlySpan<byte> zeros = s_zeroPage;
        foreach (var s in segments)
        {
            mem.TryLoad(s.Address, file.Slice((int)s.FileOffset, (int)s.FileSize));
            for (ulong a = s.Address + s.FileSize; a < s.End;)
            {
                int n = (int)Math.Min((ulong)zeros.Length, s.End - a);
                mem.TryLoad(a, zeros[..n]);
                a += (ulong)n;
            }
        }
    }

    private static ulong EndOf(LoadSegment[] segments)
    {
        ulong end = 0;
        foreach (var s in segments)
        {
            end = Math.Max(end, s.End);
        }

        return end;
    }

    private static ulong AlignPage(ulong v) => AlignUp(v, 0x1000);

    private static ulong AlignUp(ulong v, ulong a) => (v + a - 1) & ~(a - 1);
}
