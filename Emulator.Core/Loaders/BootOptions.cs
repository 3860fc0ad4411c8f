namespace Emulator.Core.Loaders;

/// <summary>How to interpret an image file (<c>--format</c>).</summary>
public enum ImageFormat
{
    /// <summary>Multiboot header first, then ELF64; anything else is refused.</summary>
    Auto,
    Multiboot,
    Elf,
    Flat,
}

/// <summary>Processor mode a flat binary is entered in (<c>--mode</c>).</summary>
public enum EntryMode
{
    Real,
    Protected,
    Long,
}

/// <summary>A Multiboot module: its bytes and the string the kernel sees for it.</summary>
public sealed record BootModule(string Name, byte[] Data);

/// <summary>Everything the command line says about loading one image.</summary>
public sealed class BootOptions
{
    public ImageFormat Format { get; init; } = ImageFormat.Auto;

    /// <summary>Flat images: guest-physical load address (default 0x100000, or 0x7C00 in real mode).</summary>
    public ulong? LoadAddress { get; init; }

    /// <summary>Flat images: entry address (default: the load address).</summary>
    public ulong? EntryAddress { get; init; }

    public EntryMode Mode { get; init; } = EntryMode.Long;

    /// <summary>The image's name as the kernel sees it: the first word of the Multiboot command line.</summary>
    public string ImageName { get; init; } = "kernel";

    /// <summary>Kernel command line (<c>--append</c>).</summary>
    public string CommandLine { get; init; } = "";

    /// <summary>Multiboot modules in order (<c>--initrd</c> first, then each <c>--module</c>).</summary>
    public IReadOnlyList<BootModule> Modules { get; init; } = [];
}

public enum ImageKind
{
    Multiboot,
    Elf64,
    Flat,
}

/// <summary>Where a module ended up: [Start, End) in guest-physical memory.</summary>
public readonly record struct LoadedModule(ulong Start, ulong End, string Name);

/// <summary>What the loader did: the image kind, entry point, Multiboot info address and module placement.</summary>
public sealed record LoadedImage(ImageKind Kind, ulong Entry, ulong InfoAddress, ulong ImageEnd, IReadOnlyList<LoadedModule> Modules);
