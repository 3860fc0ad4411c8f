using System.Text;
using Emulator.Core.Cpu;
using Emulator.Core.Memory;

// Not "...Core.Cpu": that namespace would hide the Cpu class from the tests' shared helpers.
namespace Emulator.Tests.Core.CpuTests;

public sealed class CpuidTests
{
    private PhysicalMemory _mem = null!;
    private Emulator.Core.Cpu.Cpu _c = null!;

    [SetUp]
    public void SetUp()
    {
        _mem = PhysicalMemory.Create(1 << 20);
        _c = new Emulator.Core.Cpu.Cpu(_mem);
    }

    [TearDown]
    public void TearDown() => _mem.Dispose();

    private uint Reg(uint leaf, CpuidReg r, uint subleaf = 0)
    {
        _c.Cpuid(leaf, subleaf, out uint a, out uint b, out uint c, out uint d);
        return r switch { CpuidReg.Eax => a, CpuidReg.Ebx => b, CpuidReg.Ecx => c, _ => d };
    }

    private static string Ascii(params uint[] regs)
    {
        var sb = new StringBuilder();
        foreach (uint r in regs)
        {
            for (int i = 0; i < 4; i++)
            {
                char ch = (char)((r >> (i * 8)) & 0xFF);
                if (ch != 0)
                {
                    sb.Append(ch);
                }
            }
        }

        return sb.ToString();
    }

    [TestCase(0u)]
    [TestCase(0x8000_0000u)]
    public void VendorIsAuthenticAmd(uint leaf)
    {
        _c.Cpuid(leaf, 0, out _, out uint b, out uint c, out uint d);
        Assert.That(Ascii(b, d, c), Is.EqualTo("AuthenticAMD"));
    }

    [Test]
    public void MaximumLeavesCoverWhatIsReported()
    {
        Assert.That(Reg(0, CpuidReg.Eax), Is.GreaterThanOrEqualTo(7u));
        Assert.That(Reg(0x8000_0000, CpuidReg.Eax), Is.GreaterThanOrEqualTo(0x8000_000Au));
    }

    [TestCase(1u)]
    [TestCase(0x8000_0001u)]
    public void FamilyDecodesToZen3(uint leaf)
    {
        uint eax = Reg(leaf, CpuidReg.Eax);
        uint baseFamily = (eax >> 8) & 0xF;
        uint family = baseFamily == 0xF ? baseFamily + ((eax >> 20) & 0xFF) : baseFamily;
        Assert.That(baseFamily, Is.EqualTo(0xF));
        Assert.That(family, Is.EqualTo(0x19));
    }

    [Test]
    public void Leaf1EbxHasClflushSizeAndApicId()
    {
        _c.ApicId = 3;
        uint ebx = Reg(1, CpuidReg.Ebx);
        Assert.That((ebx >> 8) & 0xFF, Is.EqualTo(8), "CLFLUSH line size in quadwords (64 bytes)");
        Assert.That(ebx >> 24, Is.EqualTo(3));
    }

    [Test]
    public void BrandString()
    {
        var regs = new List<uint>();
        for (uint leaf = 0x8000_0002; leaf <= 0x8000_0004; leaf++)
        {
            _c.Cpuid(leaf, 0, out uint a, out uint b, out uint c, out uint d);
            regs.AddRange([a, b, c, d]);
        }

        Assert.That(Ascii([.. regs]), Is.EqualTo("emu virtual CPU"));
    }

    [Test]
    public void AddressSizes()
    {
        uint eax = Reg(0x8000_0008, CpuidReg.Eax);
        Assert.That(eax & 0xFF, Is.EqualTo(48), "physical address bits");
        Assert.That((eax >> 8) & 0xFF, Is.EqualTo(48), "linear address bits");
        Assert.That(_c.Features.TryApply("+la57", out _), Is.True);
        Assert.That((Reg(0x8000_0008, CpuidReg.Eax) >> 8) & 0xFF, Is.EqualTo(57), "linear address bits with 5-level paging");
        Assert.That((Reg(7, CpuidReg.Ecx) >> 16) & 1, Is.EqualTo(1));
    }

    [Test]
    public void SvmLeafReportsOnlyTheImplementedSvmFeatures()
    {
        _c.Cpuid(0x8000_000A, 0, out uint a, out uint b, out _, out uint d);
        Assert.That(a & 0xFF, Is.EqualTo(1), "SVM revision");
        Assert.That(b, Is.GreaterThan(1u), "number of ASIDs");
        uint expected = (1u << CpuFeatures.Info(CpuFeature.Npt).Bit) | (1u << CpuFeatures.Info(CpuFeature.NRips).Bit) | (1u << CpuFeatures.Info(CpuFeature.VmcbClean).Bit)
            | (1u << CpuFeatures.Info(CpuFeature.FlushByAsid).Bit) | (1u << CpuFeatures.Info(CpuFeature.LbrVirt).Bit)
            | (1u << CpuFeatures.Info(CpuFeature.PauseFilter).Bit) | (1u << CpuFeatures.Info(CpuFeature.PauseFilterThreshold).Bit)
            | (1u << CpuFeatures.Info(CpuFeature.Vgif).Bit);
        Assert.That(d, Is.EqualTo(expected));

        // AVIC is the machine's (L0 uses it for L1) and on by default, but never offered to L1: no nested AVIC.
        Assert.That(_c.Features.Has(CpuFeature.Avic), Is.True);
        Assert.That(d & (1u << CpuFeatures.Info(CpuFeature.Avic).Bit), Is.Zero);
    }

    [Test]
    public void SvmOffClearsTheSvmLeaf()
    {
        Assert.That(_c.Features.TryApply("-svm", out _), Is.True);
        Assert.That(Reg(0x8000_0001, CpuidReg.Ecx) & (1u << 2), Is.EqualTo(0));
        _c.Cpuid(0x8000_000A, 0, out uint a, out uint b, out uint c, out uint d);
        Assert.That(a | b | c | d, Is.EqualTo(0));
    }

    [Test]
    public void XsaveLeafDescribesX87AndSse()
    {
        _c.Cpuid(0xD, 0, out uint a, out uint b, out uint c, out uint d);
        Assert.That(a, Is.EqualTo(3u), "XCR0 may hold x87 and SSE");
        Assert.That(d, Is.EqualTo(0u));
        Assert.That(b, Is.EqualTo(576u), "size for XCR0's components");
        Assert.That(c, Is.EqualTo(576u), "size for all components");
        Assert.That(Reg(0xD, CpuidReg.Eax, 1), Is.EqualTo(0b111u), "XSAVEOPT, XSAVEC, XGETBV(1); no XSAVES");
        Assert.That(Reg(0xD, CpuidReg.Eax, 2), Is.EqualTo(0u), "no AVX component");
        Assert.That(_c.Features.TryApply("-xsave", out _), Is.True);
        _c.Cpuid(0xD, 0, out a, out b, out c, out d);
        Assert.That(a | b | c | d | Reg(0xD, CpuidReg.Eax, 1), Is.EqualTo(0));
    }

    [Test]
    public void OsXsaveMirrorsCr4()
    {
        Assert.That((Reg(1, CpuidReg.Ecx) >> 27) & 1, Is.EqualTo(0));
        _c.Cr4 |= Cr4Bits.OSXSAVE;
        Assert.That((Reg(1, CpuidReg.Ecx) >> 27) & 1, Is.EqualTo(1));
    }

    // Architectural bit positions (APM vol. 3 appendix E) of what PLATFORM.md promises.
    [TestCase(1u, CpuidReg.Edx, 0, TestName = "Fpu")]
    [TestCase(1u, CpuidReg.Edx, 4, TestName = "Tsc")]
    [TestCase(1u, CpuidReg.Edx, 5, TestName = "Msr")]
    [TestCase(1u, CpuidReg.Edx, 6, TestName = "Pae")]
    [TestCase(1u, CpuidReg.Edx, 8, TestName = "Cx8")]
    [TestCase(1u, CpuidReg.Edx, 9, TestName = "Apic")]
    [TestCase(1u, CpuidReg.Edx, 13, TestName = "Pge")]
    [TestCase(1u, CpuidReg.Edx, 15, TestName = "Cmov")]
    [TestCase(1u, CpuidReg.Edx, 16, TestName = "Pat")]
    [TestCase(1u, CpuidReg.Edx, 25, TestName = "Sse")]
    [TestCase(1u, CpuidReg.Edx, 26, TestName = "Sse2")]
    [TestCase(1u, CpuidReg.Ecx, 13, TestName = "Cx16")]
    [TestCase(1u, CpuidReg.Ecx, 21, TestName = "X2Apic")]
    [TestCase(1u, CpuidReg.Ecx, 24, TestName = "TscDeadline")]
    [TestCase(7u, CpuidReg.Ebx, 7, TestName = "Smep")]
    [TestCase(7u, CpuidReg.Ebx, 20, TestName = "Smap")]
    [TestCase(1u, CpuidReg.Ecx, 22, TestName = "Movbe")]
    [TestCase(1u, CpuidReg.Ecx, 26, TestName = "Xsave")]
    [TestCase(7u, CpuidReg.Ebx, 10, TestName = "Invpcid")]
    [TestCase(7u, CpuidReg.Ebx, 23, TestName = "ClflushOpt")]
    [TestCase(7u, CpuidReg.Ebx, 24, TestName = "Clwb")]
    [TestCase(7u, CpuidReg.Ecx, 2, TestName = "Umip")]
    [TestCase(0x8000_0001u, CpuidReg.Ecx, 0, TestName = "LahfSahf")]
    [TestCase(0x8000_0001u, CpuidReg.Edx, 11, TestName = "Syscall")]
    [TestCase(0x8000_0001u, CpuidReg.Edx, 20, TestName = "Nx")]
    [TestCase(0x8000_0001u, CpuidReg.Edx, 26, TestName = "Page1Gb")]
    [TestCase(0x8000_0001u, CpuidReg.Edx, 27, TestName = "Rdtscp")]
    [TestCase(0x8000_0001u, CpuidReg.Edx, 29, TestName = "LongMode")]
    [TestCase(0x8000_0001u, CpuidReg.Ecx, 2, TestName = "Svm")]
    public void PromisedFeatureIsReported(uint leaf, CpuidReg reg, int bit)
    {
        Assert.That((Reg(leaf, reg) >> bit) & 1, Is.EqualTo(1));
    }

    [TestCase(1u, CpuidReg.Ecx, 0, TestName = "NoSse3")]
    [TestCase(1u, CpuidReg.Ecx, 27, TestName = "NoOsXsave")]
    [TestCase(1u, CpuidReg.Ecx, 31, TestName = "NoHypervisorBit")]
    [TestCase(1u, CpuidReg.Edx, 28, TestName = "NoHtt")]
    [TestCase(7u, CpuidReg.Ecx, 16, TestName = "NoLa57")]
    public void UnimplementedFeatureIsNotReported(uint leaf, CpuidReg reg, int bit)
    {
        Assert.That((Reg(leaf, reg) >> bit) & 1, Is.EqualTo(0));
    }

    [Test]
    public void EveryReportedBitIsInTheFeatureTable()
    {
        (uint Leaf, CpuidReg Reg)[] featureRegs =
        [
            (1, CpuidReg.Ecx), (1, CpuidReg.Edx), (7, CpuidReg.Ebx), (7, CpuidReg.Ecx), (7, CpuidReg.Edx),
            (0x8000_0001, CpuidReg.Ecx), (0x8000_0001, CpuidReg.Edx), (0x8000_000A, CpuidReg.Edx),
        ];
        foreach ((uint leaf, CpuidReg reg) in featureRegs)
        {
            uint fromTable = 0;
            foreach (CpuFeatureInfo f in CpuFeatures.Table)
            {
                bool here = f.Leaf == leaf && f.Reg == reg;
                bool mirrored = leaf == 0x8000_0001 && reg == CpuidReg.Edx && f.Leaf == 1 && f.Reg == CpuidReg.Edx
                    && ((CpuFeatures.MirroredLeaf1Edx >> f.Bit) & 1) != 0;
                if ((here || mirrored) && _c.Features.Has(f.Feature) && f.Reported)
                {
                    fromTable |= 1u << f.Bit;
                }
            }

            Assert.That(Reg(leaf, reg), Is.EqualTo(fromTable), $"leaf 0x{leaf:X} {reg}");
        }
    }

    [Test]
    public void EveryTableRowIsReportedExactlyWhenOn()
    {
        foreach (CpuFeatureInfo f in CpuFeatures.Table)
        {
            uint bit = (Reg(f.Leaf, f.Reg, f.Subleaf) >> f.Bit) & 1;
            Assert.That(bit, Is.EqualTo(f.Default && f.Reported ? 1u : 0u), $"{f.Name} by default");
            Assert.That(!f.Default || f.Implemented, Is.True, $"{f.Name} is on by default but not implemented");
        }
    }

    [Test]
    public void FeatureTableRowsDoNotOverlap()
    {
        var seen = new HashSet<(uint, uint, CpuidReg, int)>();
        var names = new HashSet<string>();
        foreach (CpuFeatureInfo f in CpuFeatures.Table)
        {
            Assert.That(seen.Add((f.Leaf, f.Subleaf, f.Reg, f.Bit)), Is.True, f.Name);
            Assert.That(names.Add(f.Name), Is.True, f.Name);
        }

        Assert.That(seen, Has.Count.EqualTo(Enum.GetValues<CpuFeature>().Length));
    }

    [Test]
    public void CpuOptionTurnsFeaturesOff()
    {
        Assert.That(_c.Features.TryApply("-umip,-pdpe1gb", out string? err), Is.True, err);
        Assert.That((Reg(0x8000_0001, CpuidReg.Edx) >> 26) & 1, Is.EqualTo(0));
        Assert.That((Reg(7, CpuidReg.Ecx) >> 2) & 1, Is.EqualTo(0));
        Assert.That(_c.Features.TryApply("+pdpe1gb", out _), Is.True);
        Assert.That((Reg(0x8000_0001, CpuidReg.Edx) >> 26) & 1, Is.EqualTo(1));
    }

    [TestCase("-nosuchthing")]
    [TestCase("+sse3")]
    [TestCase("-pdpe1gb,+vme")]
    [TestCase("+vme")]
    public void CpuOptionRejectsUnknownOrUnimplemented(string spec)
    {
        Assert.That(_c.Features.TryApply(spec, out string? err), Is.False);
        Assert.That(err, Is.Not.Null);
        Assert.That((Reg(0x8000_0001, CpuidReg.Edx) >> 26) & 1, Is.EqualTo(1), "a rejected list changes nothing");
    }

    [TestCase(2u)]
    [TestCase(7u, 1u)]
    [TestCase(0xCu)]
    [TestCase(0xDu, 2u)]
    [TestCase(0x4000_0000u)]
    [TestCase(0x8000_0020u)]
    [TestCase(0xC000_0000u)]
    public void UnknownLeavesReturnZeros(uint leaf, uint subleaf = 0)
    {
        _c.Cpuid(leaf, subleaf, out uint a, out uint b, out uint c, out uint d);
        Assert.That(a | b | c | d, Is.EqualTo(0));
    }

    [Test]
    public void Cr4AcceptsExactlyTheReportedFeatures()
    {
        ulong smep = Cr4Bits.SMEP;
        Assert.That(_c.Cr4ValidBits & smep, Is.EqualTo(smep));
        Assert.That(_c.Features.TryApply("-smep", out _), Is.True);
        Assert.That(_c.Cr4ValidBits & smep, Is.EqualTo(0));
        Assert.That(_c.WriteCr4(Cr4Bits.SMEP), Is.False);
    }
}
