using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using static Emulator.Tests.Core.Loaders.ImageBuilder;

namespace Emulator.Tests.Core.Loaders;

public class ImageLoaderTests
{
    private const ulong Kernel = 0x400000; // kvm-unit-tests link address (4 MiB)

    private static byte[] MultibootElf(bool is64, out byte[] text, ulong bss = 0x3000)
    {
        text = Concat(MultibootHeader(0), Pattern(0x200));
        var data = Pattern(0x80, seed: 7);
        return Elf(is64, Kernel + 12, [new TestSegment(Kernel, text, (ulong)text.Length), new TestSegment(Kernel + 0x1000, data, 0x80 + bss)]);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void MultibootElfEntersFlatProtectedModeWithTheMultibootRegisters(bool is64)
    {
        using var f = new LoaderFixture();
        var image = MultibootElf(is64, out var text);
        var loaded = f.Load(image);

        var c = f.Cpu;
        Assert.That(loaded.Kind, Is.EqualTo(ImageKind.Multiboot));
        Assert.That(c.Mode, Is.EqualTo(CpuMode.Protected32));
        Assert.That(c.Rip, Is.EqualTo(Kernel + 12));
        Assert.That(c.Gpr[Reg.RAX], Is.EqualTo(0x2BADB002));
        Assert.That(c.Gpr[Reg.RBX], Is.EqualTo(loaded.InfoAddress));
        Assert.That(c.Cr0 & Cr0Bits.PG, Is.Zero, "paging off");
        Assert.That(c.Rflags64 & Rflags.IF, Is.Zero, "interrupts off");
        Assert.That(c.Seg[SegReg.CS].Base, Is.Zero);
        Assert.That(c.Seg[SegReg.CS].Limit, Is.EqualTo(0xFFFFFFFF));
        Assert.That(c.Seg[SegReg.DS].Limit, Is.EqualTo(0xFFFFFFFF));
        Assert.That(f.ReadBytes(Kernel, text.Length), Is.EqualTo(text));
        Assert.That(f.ReadBytes(Kernel + 0x1000, 0x80), Is.EqualTo(Pattern(0x80, seed: 7)));
    }

    [Test]
    public void MultibootKernelInLowMemoryLoadsAndTheInfoFollowsIt()
    {
        // kvm-unit-tests' realmode test is linked at 0x8000 (two segments up to 0xDA30); the information
        // block and the boot GDT go on the next page after it, not at a fixed low address.
        var text = Concat(MultibootHeader(0), Pattern(0x2800));
        var image = Elf(false, 0x8018, [new TestSegment(0x8000, text, (ulong)text.Length), new TestSegment(0xB000, Pattern(0x100, seed: 2), 0x2A30)]);
        using var f = new LoaderFixture();
        var loaded = f.Load(image);
        Assert.That(f.ReadBytes(0x8000, text.Length), Is.EqualTo(text), "the GDT did not overwrite the kernel");
        Assert.That(loaded.InfoAddress, Is.EqualTo(0xE000UL));
        Assert.That(f.Cpu.Gpr[Reg.RBX], Is.EqualTo(0xE000UL));
        Assert.That(f.Cpu.Gdtr.Base, Is.GreaterThan(loaded.InfoAddress));
        Assert.That(f.U32(0xE000) & 1, Is.EqualTo(1), "flags: mem_lower/mem_upper");
        Assert.That(f.U64(f.Cpu.Gdtr.Base + BootState.Code32Selector), Is.EqualTo(0x00CF9B000000FFFFUL), "32-bit code descriptor");
    }

    [Test]
    public void MultibootInfoFollowsTheModules()
    {
        using var f = new LoaderFixture();
        var loaded = f.Load(MultibootElf(false, out _), new BootOptions { Modules = [new BootModule("m", Pattern(0x1800))] });
        Assert.That(loaded.InfoAddress % 4096, Is.Zero);
        Assert.That(loaded.InfoAddress, Is.GreaterThanOrEqualTo(loaded.Modules[0].End));
        Assert.That(f.Cpu.Gdtr.Base, Is.GreaterThan(loaded.InfoAddress));
    }

    [Test]
    public void BssIsZeroedEvenOverOldContents()
    {
        using var f = new LoaderFixture();
        f.Mem.TryLoad(Kernel + 0x1080, Pattern(0x3000, seed: 3));
        f.Load(MultibootElf(false, out _));
        Assert.That(f.ReadBytes(Kernel + 0x1080, 0x3000), Is.All.Zero);
    }

    [Test]
    public void AoutKludgeLoadsFromTheHeaderAddresses()
    {
        // The header sits 0x40 bytes into the file; the file is loaded at 0x200000 and the header
        // field says where the header lands, so file offset 0 maps to load_addr.
        const uint load = 0x200000;
        var prefix = Pattern(0x40, seed: 5);
        var body = Pattern(0x100, seed: 9);
        uint loadEnd = load + 0x40 + 32 + 0x100;
        var header = MultibootHeader(1u << 16, [load + 0x40, load, loadEnd, loadEnd + 0x2000, load + 0x60]);
        var image = Concat(prefix, header, body, Pattern(0x33, seed: 11)); // trailing bytes are not loaded
        using var f = new LoaderFixture();
        f.Mem.TryLoad(loadEnd, Pattern(0x2000));

        var loaded = f.Load(image);

        Assert.That(f.Cpu.Rip, Is.EqualTo(load + 0x60));
        Assert.That(f.ReadBytes(load, 0x40), Is.EqualTo(prefix));
        Assert.That(f.ReadBytes(load + 0x60, 0x100), Is.EqualTo(body));
        Assert.That(f.ReadBytes(loadEnd, 0x2000), Is.All.Zero, "bss");
        Assert.That(loaded.ImageEnd, Is.EqualTo(loadEnd + 0x2000));
        Assert.That(f.Cpu.Gpr[Reg.RAX], Is.EqualTo(0x2BADB002));
    }

    [Test]
    public void AoutKludgeWithZeroLoadEndLoadsTheWholeFile()
    {
        const uint load = 0x300000;
        var header = MultibootHeader(1u << 16, [load, load, 0, 0, load + 32]);
        var image = Concat(header, Pattern(0x123));
        using var f = new LoaderFixture();
        var loaded = f.Load(image);
        Assert.That(f.ReadBytes(load, image.Length), Is.EqualTo(image));
        Assert.That(loaded.ImageEnd, Is.EqualTo(load + (ulong)image.Length));
    }

    [Test]
    public void PlainElf64EntersLongModeWithTheIdentityMap()
    {
        var code = Pattern(0x40);
        var image = Elf(true, 0x100010, [new TestSegment(0x100000, code, 0x1000)]);
        using var f = new LoaderFixture();
        var loaded = f.Load(image);

        var c = f.Cpu;
        Assert.That(loaded.Kind, Is.EqualTo(ImageKind.Elf64));
        Assert.That(c.Mode, Is.EqualTo(CpuMode.Long64));
        Assert.That(c.Rip, Is.EqualTo(0x100010));
        Assert.That(c.Gpr[Reg.RSP], Is.EqualTo(LoaderFixture.DefaultMemory), "top of low RAM");
        Assert.That(c.Cr0 & Cr0Bits.PG, Is.Not.Zero);
        Assert.That(f.ReadBytes(0x100000, code.Length), Is.EqualTo(code));
    }

    [TestCase(EntryMode.Real, 0x7C00UL, 0x7C00UL, CpuMode.Real)]
    [TestCase(EntryMode.Protected, 0x100000UL, 0x100004UL, CpuMode.Protected32)]
    [TestCase(EntryMode.Long, 0x180000UL, 0x180000UL, CpuMode.Long64)]
    public void FlatBinaryIsEnteredInTheRequestedMode(EntryMode mode, ulong load, ulong entry, CpuMode expected)
    {
        var code = Pattern(0x30);
        using var f = new LoaderFixture();
        var loaded = f.Load(code, new BootOptions { Format = ImageFormat.Flat, LoadAddress = load, EntryAddress = entry, Mode = mode });
        Assert.That(loaded.Kind, Is.EqualTo(ImageKind.Flat));
        Assert.That(f.Cpu.Mode, Is.EqualTo(expected));
        Assert.That(f.Cpu.Seg[SegReg.CS].Base + f.Cpu.Rip, Is.EqualTo(entry));
        Assert.That(f.ReadBytes(load, code.Length), Is.EqualTo(code));
    }

    [Test]
    public void RealModeEntryAboveOneSegmentUsesCsForTheHighBits()
    {
        using var f = new LoaderFixture();
        f.Load([0xF4], new BootOptions { Format = ImageFormat.Flat, LoadAddress = 0x12345, Mode = EntryMode.Real });
        Assert.That(f.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo(0x1000));
        Assert.That(f.Cpu.Rip, Is.EqualTo(0x2345));
    }

    [Test]
    public void ModulesArePageAlignedAboveTheKernelInOrder()
    {
        using var f = new LoaderFixture();
        var m1 = Pattern(0x1801, seed: 2);
        var m2 = Pattern(0x10, seed: 4);
        var loaded = f.Load(MultibootElf(false, out _), new BootOptions
        {
            ImageName = "x86/test.flat",
            Modules = [new BootModule("env", m1), new BootModule("second arg", m2)],
        });

        ulong kernelEnd = Kernel + 0x1000 + 0x80 + 0x3000;
        ulong first = (kernelEnd + 0xFFF) & ~0xFFFUL;
        Assert.That(loaded.Modules, Has.Count.EqualTo(2));
        Assert.That(loaded.Modules[0].Start, Is.EqualTo(first));
        Assert.That(loaded.Modules[0].End, Is.EqualTo(first + 0x1801));
        Assert.That(loaded.Modules[1].Start, Is.EqualTo(first + 0x2000));
        Assert.That(f.ReadBytes(first, m1.Length), Is.EqualTo(m1));
        Assert.That(f.ReadBytes(first + 0x2000, m2.Length), Is.EqualTo(m2));
    }

    [Test]
    public void ModulesNeedAMultibootImage()
    {
        var image = Elf(true, 0x100000, [new TestSegment(0x100000, [0xF4], 1)]);
        using var f = new LoaderFixture();
        var e = Assert.Throws<LoaderException>(() => f.Load(image, new BootOptions { Modules = [new BootModule("m", [1])] }));
        Assert.That(e!.Message, Does.Contain("Multiboot"));
    }

    private static IEnumerable<TestCaseData> RefusedImages()
    {
        yield return new TestCaseData(Array.Empty<byte>(), "empty").SetName("Empty file");
        yield return new TestCaseData(Pattern(4096), "unrecognized").SetName("Random bytes");
        yield return new TestCaseData(Elf(false, 0x100000, [new TestSegment(0x100000, [0xF4], 1)]), "ELF32").SetName("ELF32 without Multiboot");
        yield return new TestCaseData(Concat(MultibootHeader(0), Pattern(64)), "not ELF").SetName("Multiboot without ELF or addresses");
        yield return new TestCaseData(Concat(MultibootHeader(1u << 5), Pattern(64)), "features").SetName("Unknown required Multiboot flag");
        yield return new TestCaseData(Concat(MultibootHeader(0, badChecksum: true), Pattern(64)), "unrecognized").SetName("Bad checksum means no header");
        yield return new TestCaseData(Concat(Pattern(8192), MultibootHeader(1u << 16, [0x200000 + 8192, 0x200000, 0, 0, 0x200000])), "unrecognized").SetName("Header past 8 KiB");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0x10_0000_0000, [1], 1)]), "outside guest RAM").SetName("Segment above RAM");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0xA0000, [1], 1)]), "outside guest RAM").SetName("Segment in the VGA hole");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0xF00000, [1], 0x200000)]), "outside guest RAM").SetName("Bss past the end of RAM");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0x70000, [1], 1)]), "page tables").SetName("Segment over the boot page tables");
        yield return new TestCaseData(Elf(false, 0xF00000, [new TestSegment(0xF00000, Concat(MultibootHeader(0), [0xF4]), 0x100000)]), "Multiboot information").SetName("No room for the Multiboot information after the kernel");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0x100000, [1], 1)], machine: 40), "machine").SetName("ARM ELF");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0x100000, [1], 1)], type: 3), "executable").SetName("Shared object");
        yield return new TestCaseData(Elf(true, 0, [new TestSegment(0x100000, [1, 2], 1)]), "p_filesz").SetName("File size above memory size");
        yield return new TestCaseData(Elf(true, 0, []), "program headers").SetName("No program headers");
        yield return new TestCaseData(Elf(true, 0x1_0000_0000, [new TestSegment(0x100000, Concat(MultibootHeader(0), [0xF4]), 13)]), "above 4 GiB").SetName("Multiboot entry above 4 GiB");
    }

    [TestCaseSource(nameof(RefusedImages))]
    public void RefusedImagesGiveOneLineAndTouchNothing(byte[] image, string reason)
    {
        using var f = new LoaderFixture();
        var e = Assert.Throws<LoaderException>(() => f.Load(image));
        Assert.That(e!.Message, Does.Contain(reason));
        Assert.That(e.Message, Does.Not.Contain('\n'));
        Assert.That(f.Cpu.Mode, Is.EqualTo(CpuMode.Real), "CPU state untouched");
    }

    [Test]
    public void ARefusedSecondSegmentLeavesTheFirstUnwritten()
    {
        var image = Elf(true, 0x100000, [new TestSegment(0x100000, Pattern(16), 16), new TestSegment(0x40000000, [1], 1)]);
        using var f = new LoaderFixture();
        Assert.Throws<LoaderException>(() => f.Load(image));
        Assert.That(f.ReadBytes(0x100000, 16), Is.All.Zero);
    }

    [Test]
    public void FlatOptionsOnAnotherFormatAreRefused()
    {
        using var f = new LoaderFixture();
        Assert.Throws<LoaderException>(() => f.Load(MultibootElf(false, out _), new BootOptions { LoadAddress = 0x100000 }));
        Assert.Throws<LoaderException>(() => f.Load([0xF4], new BootOptions { Format = ImageFormat.Flat, LoadAddress = 0x100000, EntryAddress = 0x100000, Mode = EntryMode.Real }));
    }

    private static IEnumerable<TestCaseData> TruncatableImages()
    {
        yield return new TestCaseData(MultibootElf(false, out _)).SetName("Truncated Multiboot ELF32");
        yield return new TestCaseData(MultibootElf(true, out _)).SetName("Truncated Multiboot ELF64");
        yield return new TestCaseData(Elf(true, 0x100000, [new TestSegment(0x100000, Pattern(0x40), 0x40), new TestSegment(0x200000, Pattern(0x20), 0x20)])).SetName("Truncated plain ELF64");
        const uint load = 0x200000;
        yield return new TestCaseData(Concat(MultibootHeader(1u << 16, [load, load, load + 0x80, 0, load + 32]), Pattern(0x60))).SetName("Truncated a.out kludge");
    }

    /// <summary>Every prefix of a valid image is refused cleanly: no host exception, no partial load.</summary>
    [TestCaseSource(nameof(TruncatableImages))]
    public void EveryTruncationIsRefusedCleanly(byte[] image)
    {
        using var f = new LoaderFixture();
        Assert.That(() => f.Load(image), Throws.Nothing, "the whole image loads");
        using var g = new LoaderFixture();
        for (int length = 0; length < image.Length; length++)
        {
            byte[] prefix = image[..length];
            Assert.That(() => g.Load(prefix), Throws.TypeOf<LoaderException>(), $"prefix of {length} bytes");
        }
    }
}
