using Emulator.Core.Loaders;
using static Emulator.Tests.Core.Loaders.ImageBuilder;

namespace Emulator.Tests.Core.Loaders;

/// <summary>The Multiboot information structure as a kernel reads it (Multiboot Specification 0.6.96, §3.3).</summary>
public class MultibootInfoTests
{
    private const ulong Kernel = 0x400000;

    private static readonly byte[] Image = Elf(false, Kernel + 12, [new TestSegment(Kernel, Concat(MultibootHeader(0), Pattern(0x100)), 0x2000)]);

    private static (LoaderFixture F, uint Info) Boot(ulong memory = LoaderFixture.DefaultMemory, BootOptions? options = null)
    {
        var f = new LoaderFixture(memory);
        f.Load(Image, options ?? new BootOptions { ImageName = "x86/emulator.flat" });
        return (f, (uint)f.Cpu.Gpr[Emulator.Core.Cpu.Reg.RBX]);
    }

    [Test]
    public void FlagsAnnounceMemoryCmdlineModulesMapAndLoaderName()
    {
        var (f, info) = Boot();
        using var _ = f;
        uint flags = f.U32(info);
        Assert.That(flags & (1u << 0), Is.Not.Zero, "mem_lower/mem_upper");
        Assert.That(flags & (1u << 2), Is.Not.Zero, "cmdline");
        Assert.That(flags & (1u << 3), Is.Not.Zero, "mods");
        Assert.That(flags & (1u << 6), Is.Not.Zero, "mmap");
        Assert.That(flags & (1u << 9), Is.Not.Zero, "boot_loader_name");
        Assert.That(flags & (1u << 4 | 1u << 5 | 1u << 11 | 1u << 12), Is.Zero, "no symbols, VBE or framebuffer");
        Assert.That(f.CString(f.U32(info + 64)), Is.EqualTo("emu"));
    }

    [TestCase(16UL << 20, 15u * 1024)]
    [TestCase(1UL << 30, 1023u * 1024)]
    public void MemLowerIs640KiBAndMemUpperIsRamAboveOneMiB(ulong memory, uint upperKiB)
    {
        var (f, info) = Boot(memory);
        using var _ = f;
        Assert.That(f.U32(info + 4), Is.EqualTo(640));
        Assert.That(f.U32(info + 8), Is.EqualTo(upperKiB));
    }

    [Test]
    public void CommandLineIsTheImageNameThenTheAppendedArguments()
    {
        var (f, info) = Boot(options: new BootOptions { ImageName = "x86/apic.flat", CommandLine = "-smp 2 verbose" });
        using var _ = f;
        Assert.That(f.CString(f.U32(info + 16)), Is.EqualTo("x86/apic.flat -smp 2 verbose"));
    }

    [Test]
    public void CommandLineWithoutArgumentsIsTheImageName()
    {
        var (f, info) = Boot();
        using var _ = f;
        Assert.That(f.CString(f.U32(info + 16)), Is.EqualTo("x86/emulator.flat"));
    }

    private static List<(ulong Base, ulong Length, uint Type)> ReadMap(LoaderFixture f, uint info)
    {
        uint length = f.U32(info + 44), addr = f.U32(info + 48);
        var map = new List<(ulong, ulong, uint)>();
        for (uint p = addr; p < addr + length;)
        {
            uint size = f.U32(p);
            map.Add((f.U64(p + 4), f.U64(p + 12), f.U32(p + 20)));
            p += size + 4;
        }

        return map;
    }

    [Test]
    public void MemoryMapOfASmallMachine()
    {
        var (f, info) = Boot(64UL << 20);
        using var _ = f;
        Assert.That(ReadMap(f, info), Is.EqualTo(new List<(ulong, ulong, uint)>
        {
            (0, 0xA0000, 1),
            (0xA0000, 0x60000, 2),
            (0x100000, (64UL << 20) - 0x100000, 1),
        }));
    }

    [Test]
    public void MemoryMapPutsRamBeyondThreeGiBAboveFourGiB()
    {
        ulong memory = (3UL << 30) + (512UL << 20);
        var (f, info) = Boot(memory);
        using var _ = f;
        var map = ReadMap(f, info);
        Assert.That(map[2], Is.EqualTo((0x100000UL, (3UL << 30) - 0x100000, 1u)));
        Assert.That(map[3], Is.EqualTo((1UL << 32, 512UL << 20, 1u)));
        Assert.That(f.U32(info + 8), Is.EqualTo(((3u << 30) - 0x100000) / 1024), "mem_upper stops at the PCI hole");
    }

    [Test]
    public void ModuleListGivesStartEndAndString()
    {
        var (f, info) = Boot(options: new BootOptions
        {
            Modules = [new BootModule("initrd.env", Pattern(100)), new BootModule("mod2 arg", Pattern(5000))],
        });
        using var _ = f;
        Assert.That(f.U32(info + 20), Is.EqualTo(2), "mods_count");
        uint mods = f.U32(info + 24);
        uint start0 = f.U32(mods), end0 = f.U32(mods + 4);
        uint start1 = f.U32(mods + 16), end1 = f.U32(mods + 20);
        Assert.That(start0 % 4096, Is.Zero);
        Assert.That(start0, Is.GreaterThanOrEqualTo((uint)Kernel + 0x2000));
        Assert.That(end0 - start0, Is.EqualTo(100));
        Assert.That(start1 % 4096, Is.Zero);
        Assert.That(start1, Is.GreaterThanOrEqualTo(end0));
        Assert.That(end1 - start1, Is.EqualTo(5000));
        Assert.That(f.CString(f.U32(mods + 8)), Is.EqualTo("initrd.env"));
        Assert.That(f.CString(f.U32(mods + 24)), Is.EqualTo("mod2 arg"));
        Assert.That(f.ReadBytes(start1, 5000), Is.EqualTo(Pattern(5000)));
    }

    [Test]
    public void ALongCommandLineIsPassedWhole()
    {
        // The block is sized to its contents; there is no fixed area to overflow.
        string args = new('x', 40000);
        var (f, info) = Boot(options: new BootOptions { ImageName = "k", CommandLine = args });
        using var _ = f;
        Assert.That(f.CString(f.U32(info + 16)).Length, Is.EqualTo(4096), "CString reads at most 4096 bytes");
        Assert.That(f.ReadBytes(f.U32(info + 16) + 2 + 39990, 10), Is.EqualTo(Enumerable.Repeat((byte)'x', 10).ToArray()));
        Assert.That(f.ReadBytes(f.U32(info + 16) + 2 + 40000, 1), Is.EqualTo(new byte[] { 0 }));
    }
}
