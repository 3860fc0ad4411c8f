using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

public class SysRegTests
{
    // CR0 as BootState.EnterLong64 sets it: PE | ET | NE | WP | PG.
    private const ulong LongModeCr0 = 0x8001_0031;

    private static TestGuest Long64WithIdt(Action<Iced.Intel.Assembler> body)
    {
        var g = TestGuest.Long64(body);
        VectorCatcher.Install64(g);
        return g;
    }

    private static ulong ErrorCode(TestGuest g) => g.ReadPhys(g.Cpu.Gpr[Reg.RSP], 8);

    [Test]
    public void MovFromCr0ReadsTheBootValue()
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(rax, cr0);
            a.mov(rbx, cr4);
            a.mov(rcx, cr3);
            a.hlt();
        });
        g.Run();
        Assert.That(g[Reg.RAX], Is.EqualTo(LongModeCr0));
        Assert.That(g[Reg.RBX], Is.EqualTo(Cr4Bits.PAE));
        Assert.That(g[Reg.RCX], Is.EqualTo(0x70000));
    }

    [TestCase(1UL << 32, TestName = "Cr0HighBit")]
    [TestCase(LongModeCr0 & ~Cr0Bits.PE, TestName = "Cr0PagingWithoutProtection")]
    [TestCase(LongModeCr0 | Cr0Bits.NW, TestName = "Cr0NotWriteThroughWithoutCacheDisable")]
    [TestCase(LongModeCr0 & ~Cr0Bits.PG, TestName = "Cr0ClearPagingIn64BitMode")]
    public void MovToCr0Faults(ulong value)
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr0, rax);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = value;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP));
        Assert.That(ErrorCode(g), Is.EqualTo(0));
        Assert.That(g.Cpu.Cr0, Is.EqualTo(LongModeCr0));
    }

    [Test]
    public void MovToCr0CacheBitsAndReservedLowBitsIgnored()
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr0, rax);
            a.mov(rbx, cr0);
            a.hlt();
        });
        // CD | NW is legal; bits 6..15 are reserved and read back as 0; ET stays 1.
        g.Cpu.Gpr[Reg.RAX] = (LongModeCr0 | Cr0Bits.CD | Cr0Bits.NW | 0xFFC0) & ~Cr0Bits.ET;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.RBX], Is.EqualTo(LongModeCr0 | Cr0Bits.CD | Cr0Bits.NW));
    }

    [TestCase(Cr4Bits.PAE | Cr4Bits.LA57, TestName = "Cr4La57Unsupported")]
    [TestCase(Cr4Bits.PAE | Cr4Bits.PKE, TestName = "Cr4PkeUnsupported")]
    [TestCase(Cr4Bits.PAE | Cr4Bits.VME, TestName = "Cr4VmeUnsupported")]
    [TestCase(Cr4Bits.PAE | (1UL << 40), TestName = "Cr4HighReserved")]
    [TestCase(0UL, TestName = "Cr4ClearPaeInLongMode")]
    public void MovToCr4Faults(ulong value)
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr4, rax);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = value;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Cr4, Is.EqualTo(Cr4Bits.PAE));
    }

    [Test]
    public void MovToCr4AcceptsReportedFeatures()
    {
        ulong want = Cr4Bits.PAE | Cr4Bits.PSE | Cr4Bits.PGE | Cr4Bits.DE | Cr4Bits.TSD | Cr4Bits.MCE | Cr4Bits.PCE
            | Cr4Bits.OSFXSR | Cr4Bits.OSXMMEXCPT | Cr4Bits.SMEP | Cr4Bits.SMAP | Cr4Bits.PCIDE | Cr4Bits.OSXSAVE | Cr4Bits.UMIP;
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr4, rax);
            a.mov(rbx, cr4);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = want;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.RBX], Is.EqualTo(want));
    }

    [Test]
    public void PcideNeedsPcidZero()
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr4, rax);
            a.hlt();
        });
        g.Cpu.Cr3 |= 5;
        g.Cpu.Gpr[Reg.RAX] = Cr4Bits.PAE | Cr4Bits.PCIDE;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void Cr3BeyondPhysicalWidthFaults()
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr3, rax);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 0x70000 | (1UL << Emulator.Core.Cpu.Cpu.MaxPhysAddrBits);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Cr3, Is.EqualTo(0x70000));
    }

    [Test]
    public void Cr3NoFlushBitIsNotStoredWithPcide()
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr4, rbx);
            a.mov(cr3, rax);
            a.mov(rcx, cr3);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RBX] = Cr4Bits.PAE | Cr4Bits.PCIDE;
        g.Cpu.Gpr[Reg.RAX] = 0x70000 | 7 | (1UL << 63);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.RCX], Is.EqualTo(0x70007));
    }

    [TestCase(5UL, false)]
    [TestCase(15UL, false)]
    [TestCase(16UL, true)]
    public void Cr8HoldsTheTaskPriority(ulong value, bool faults)
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr8, rax);
            a.mov(rbx, cr8);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = value;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(faults ? Vector.GP : -1));
        if (!faults)
        {
            Assert.That(g[Reg.RBX], Is.EqualTo(value));
        }
    }

    [Test]
    public void Cr2IsReadWrite()
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(cr2, rax);
            a.mov(rbx, cr2);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 0xDEAD_BEEF_CAFE_F00D;
        g.Run();
        Assert.That(g[Reg.RBX], Is.EqualTo(0xDEAD_BEEF_CAFE_F00D));
    }

    [Test]
    public void ControlRegistersNeedCpl0()
    {
        using var g = TestGuest.Long64(a => a.hlt());
        Emulator.Core.Cpu.Cpu c = g.Cpu;
        c.SetCpl(3);
        Assert.That(VectorCatcher.Step(c, a => a.mov(rax, cr0)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.mov(cr3, rax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.mov(rax, dr7)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.rdmsr()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.wrmsr()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.clts()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(VectorCatcher.Step(c, a => a.invlpg(__[rax])), Is.EqualTo(ExecStatus.Fault));
        Assert.That(VectorCatcher.Step(c, a => a.wbinvd()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(VectorCatcher.Step(c, a => a.lmsw(ax)), Is.EqualTo(ExecStatus.Fault));
        // SMSW and RDTSC (CR4.TSD clear) are allowed at CPL 3.
        Assert.That(VectorCatcher.Step(c, a => a.smsw(eax)), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Gpr[Reg.RAX], Is.EqualTo(LongModeCr0));
        Assert.That(VectorCatcher.Step(c, a => a.rdtsc()), Is.EqualTo(ExecStatus.Continue));
        c.Cr4 |= Cr4Bits.TSD;
        Assert.That(VectorCatcher.Step(c, a => a.rdtsc()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
    }

    [Test]
    public void RdmsrReadsEfer()
    {
        using var g = Long64WithIdt(a =>
        {
            a.rdmsr();
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RCX] = 0xC000_0080;
        g.Cpu.Gpr[Reg.RDX] = ulong.MaxValue;
        g.Run();
        Assert.That(g[Reg.RAX], Is.EqualTo(EferBits.LME | EferBits.LMA | EferBits.NXE));
        Assert.That(g[Reg.RDX], Is.EqualTo(0));
    }

    [TestCase(EferBits.SCE | EferBits.LME | EferBits.NXE, false, TestName = "EferLmaWriteIgnored")]
    [TestCase(EferBits.LMA | EferBits.NXE, true, TestName = "EferClearLmeWhilePaging")]
    [TestCase(EferBits.LME | EferBits.LMA | EferBits.FFXSR, false, TestName = "EferFfxsr")]
    [TestCase(EferBits.LME | EferBits.LMA | (1UL << 15), true, TestName = "EferUnreportedTce")]
    [TestCase(EferBits.LME | EferBits.LMA | EferBits.LMSLE, true, TestName = "EferUnreportedLmsle")]
    [TestCase(EferBits.LME | EferBits.LMA | (1UL << 1), true, TestName = "EferReservedBit1")]
    public void EferWrites(ulong value, bool faults)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = new Emulator.Core.Cpu.Cpu(mem);
        Emulator.Core.Loaders.BootState.EnterLong64(c, 0x1000, 0x8000);
        c.Gpr[Reg.RCX] = 0xC000_0080;
        c.Gpr[Reg.RAX] = (uint)value;
        c.Gpr[Reg.RDX] = value >> 32;
        int st = VectorCatcher.Step(c, a => a.wrmsr());
        Assert.That(st, Is.EqualTo(faults ? ExecStatus.Fault : ExecStatus.EndBlock));
        if (!faults)
        {
            Assert.That(c.Efer, Is.EqualTo(value | EferBits.LMA));
        }
        else
        {
            Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
            Assert.That(c.Efer, Is.EqualTo(EferBits.LME | EferBits.LMA | EferBits.NXE));
        }
    }

    [Test]
    public void CpuidReturnsVendorInRegisters()
    {
        using var g = Long64WithIdt(a =>
        {
            a.cpuid();
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 0;
        g.Cpu.Gpr[Reg.RBX] = ulong.MaxValue;
        g.Run();
        Span<byte> s = stackalloc byte[12];
        BitConverter.TryWriteBytes(s, (uint)g[Reg.RBX]);
        BitConverter.TryWriteBytes(s[4..], (uint)g[Reg.RDX]);
        BitConverter.TryWriteBytes(s[8..], (uint)g[Reg.RCX]);
        Assert.That(System.Text.Encoding.ASCII.GetString(s), Is.EqualTo("AuthenticAMD"));
        Assert.That(g[Reg.RBX] >> 32, Is.EqualTo(0), "CPUID zero-extends into RBX");
    }

    private static Emulator.Core.Cpu.Cpu NewLongModeCpu(Emulator.Core.Memory.PhysicalMemory mem)
    {
        var c = new Emulator.Core.Cpu.Cpu(mem);
        Emulator.Core.Loaders.BootState.EnterLong64(c, 0x1000, 0x8000);
        return c;
    }

    private static int Wrmsr(Emulator.Core.Cpu.Cpu c, uint msr, ulong v)
    {
        c.Gpr[Reg.RCX] = msr;
        c.Gpr[Reg.RAX] = (uint)v;
        c.Gpr[Reg.RDX] = v >> 32;
        return VectorCatcher.Step(c, a => a.wrmsr());
    }

    private static ulong Rdmsr(Emulator.Core.Cpu.Cpu c, uint msr)
    {
        c.Gpr[Reg.RCX] = msr;
        Assert.That(VectorCatcher.Step(c, a => a.rdmsr()), Is.EqualTo(ExecStatus.Continue), $"RDMSR 0x{msr:X}");
        return (c.Gpr[Reg.RDX] << 32) | c.Gpr[Reg.RAX];
    }

    // MSR round trips: (msr, value written, value read back).
    [TestCase(Msr.Star, 0x0023_0010_0000_0000UL, 0x0023_0010_0000_0000UL)]
    [TestCase(Msr.Lstar, 0xFFFF_8000_0010_0000UL, 0xFFFF_8000_0010_0000UL)]
    [TestCase(Msr.Cstar, 0x0000_7FFF_FFFF_F000UL, 0x0000_7FFF_FFFF_F000UL)]
    [TestCase(Msr.Sfmask, 0x4_7700UL, 0x4_7700UL)]
    [TestCase(Msr.KernelGsBase, 0xFFFF_8880_0000_0000UL, 0xFFFF_8880_0000_0000UL)]
    [TestCase(Msr.SysenterCs, 0x10UL, 0x10UL)]
    [TestCase(Msr.SysenterEsp, 0x8000UL, 0x8000UL)]
    [TestCase(Msr.SysenterEip, 0x1234UL, 0x1234UL)]
    [TestCase(Msr.TscAux, 7UL, 7UL)]
    [TestCase(Msr.Pat, 0x0007_0106_0007_0406UL, 0x0007_0106_0007_0406UL)]
    [TestCase(Msr.MtrrDefType, 0xC06UL, 0xC06UL)]
    [TestCase(Msr.MtrrPhysBase0, 0x8000_0000UL | 6, 0x8000_0000UL | 6)]
    [TestCase(Msr.MtrrPhysBase0 + 1, 0xFFFF_8000_0800UL, 0xFFFF_8000_0800UL)]
    [TestCase(Msr.MtrrFix64K, 0x0606_0606_0606_0606UL, 0x0606_0606_0606_0606UL)]
    [TestCase(Msr.MtrrFix4KF8000, 0x0505_0505_0404_0101UL, 0x0505_0505_0404_0101UL)]
    [TestCase(Msr.ApicBase, 0xFEE0_0800UL, 0xFEE0_0900UL)]
    [TestCase(Msr.K7PerfFirst, 0x43_0076UL, 0UL, TestName = "K7PerfEvtSelWritesDropped")]
    [TestCase(Msr.K7PerfLast, 0x1234UL, 0UL, TestName = "K7PerfCtrWritesDropped")]
    [TestCase(Msr.MiscEnable, 0x1801UL, 0x1801UL, TestName = "MiscEnableKeepsWritableBits")]
    [TestCase(Msr.MiscEnable, 0x1880UL, 0x1800UL, TestName = "MiscEnableEmonIgnored")]
    public void MsrRoundTrip(uint msr, ulong write, ulong read)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(Wrmsr(c, msr, write), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(Rdmsr(c, msr), Is.EqualTo(read));
    }

    // The SVM MSRs exist only while CPUID reports SVM.
    [TestCase(Msr.VmHsavePa, 0x12_3000UL)]
    [TestCase(Msr.VmCr, 0x8UL)]
    public void SvmMsrRoundTripNeedsSvm(uint msr, ulong value)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Features[CpuFeature.Svm] = false;
        Assert.That(Wrmsr(c, msr, value), Is.EqualTo(ExecStatus.Fault));
        c.Features[CpuFeature.Svm] = true;
        Assert.That(Wrmsr(c, msr, value), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(Rdmsr(c, msr), Is.EqualTo(value));
    }

    [TestCase(0x0000_0000u, 0UL, TestName = "UnknownMsr0")]
    [TestCase(0x4000_0000u, 0UL, TestName = "UnknownHypervisorMsr")]
    [TestCase(0xC000_0104u, 0UL, TestName = "UnknownAfterTscAux")]
    [TestCase(Msr.MtrrCap, 0UL, TestName = "MtrrCapReadOnly")]
    [TestCase(Msr.McgCap, 0UL, TestName = "McgCapReadOnly")]
    [TestCase(Msr.Lstar, 0x0000_8000_0000_0000UL, TestName = "LstarNonCanonical")]
    [TestCase(Msr.FsBase, 0x1000_0000_0000_0000UL, TestName = "FsBaseNonCanonical")]
    [TestCase(Msr.KernelGsBase, 0x0001_0000_0000_0000UL, TestName = "KernelGsBaseNonCanonical")]
    [TestCase(Msr.Pat, 0x0007_0406_0007_0402UL, TestName = "PatType2")]
    [TestCase(Msr.Pat, 0x0807_0406_0007_0406UL, TestName = "PatReservedBits")]
    [TestCase(Msr.MtrrDefType, 0x007UL, TestName = "MtrrDefTypeUcMinus")]
    [TestCase(Msr.MtrrDefType, 0x1006UL, TestName = "MtrrDefTypeReserved")]
    [TestCase(Msr.MtrrPhysBase0, 0x1_0000_0000_0000UL | 6, TestName = "MtrrBaseAboveMaxPhys")]
    [TestCase(Msr.MtrrPhysBase0 + 1, 0x8000_0001UL, TestName = "MtrrMaskReservedLowBits")]
    [TestCase(Msr.MtrrFix16K80000, 0x0600_0000_0000_0003UL, TestName = "FixedMtrrBadType")]
    [TestCase(Msr.ApicBase, 0xFEE0_0001UL, TestName = "ApicBaseReserved")]
    [TestCase(Msr.ApicBase, 0x1_0000_FEE0_0000UL, TestName = "ApicBaseAboveMaxPhys")]
    [TestCase(Msr.TscAux, 1UL << 32, TestName = "TscAuxHighBits")]
    [TestCase(Msr.Sfmask, 1UL << 32, TestName = "SfmaskHighBits")]
    [TestCase(Msr.VmHsavePa, 0x12_3008UL, TestName = "HsaveUnaligned")]
    [TestCase(Msr.McgStatus, 1UL, TestName = "McgStatusNonZero")]
    [TestCase(Msr.MiscEnable, 0x1000UL, TestName = "MiscEnableBtsUnavailableReadOnly")]
    [TestCase(Msr.MiscEnable, 0x800UL, TestName = "MiscEnablePebsUnavailableReadOnly")]
    public void WrmsrFaults(uint msr, ulong value)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(Wrmsr(c, msr, value), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(c.PendingError, Is.EqualTo(0));
    }

    [Test]
    public void ApicBaseExtdWithoutX2ApicFaults()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(c.Features.TryApply("-x2apic", out _), Is.True);
        Assert.That(Wrmsr(c, Msr.ApicBase, 0xFEE0_0C00UL), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
    }

    [TestCase(0x0000_0000u)]
    [TestCase(0x0000_0011u)]
    [TestCase(0xC000_0085u)]
    [TestCase(0xFFFF_FFFFu)]
    public void RdmsrOfUnknownMsrFaults(uint msr)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Gpr[Reg.RCX] = msr;
        Assert.That(VectorCatcher.Step(c, a => a.rdmsr()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
    }

    [Test]
    public void MsrResetValues()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(Rdmsr(c, Msr.Pat), Is.EqualTo(0x0007_0406_0007_0406UL));
        Assert.That(Rdmsr(c, Msr.ApicBase), Is.EqualTo(0xFEE0_0900UL), "base 0xFEE00000, BSP, enabled");
        Assert.That(Rdmsr(c, Msr.MtrrCap) & 0xFF, Is.EqualTo(8), "variable MTRR count");
        Assert.That(Rdmsr(c, Msr.McgCap), Is.EqualTo(0));
        Assert.That(Rdmsr(c, Msr.McgStatus), Is.EqualTo(0));
        Assert.That(Rdmsr(c, Msr.MiscEnable), Is.EqualTo(0x1800UL), "BTS and PEBS unavailable, as KVM resets it");
    }

    [Test]
    public void FsAndGsBaseMsrsAreTheSegmentBases()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(Wrmsr(c, Msr.FsBase, 0xFFFF_8000_1234_5000), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(Wrmsr(c, Msr.GsBase, 0x7000), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(c.Seg[SegReg.FS].Base, Is.EqualTo(0xFFFF_8000_1234_5000));
        Assert.That(c.Seg[SegReg.GS].Base, Is.EqualTo(0x7000));
        c.Seg[SegReg.FS].Base = 0x4000;
        Assert.That(Rdmsr(c, Msr.FsBase), Is.EqualTo(0x4000));
    }

    [Test]
    public void TscWriteSetsWhatRdtscReads()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Cycles = 1_000_000;
        Assert.That(Wrmsr(c, Msr.Tsc, 0x1_0000_0000), Is.EqualTo(ExecStatus.EndBlock));
        c.Cycles += 500;
        VectorCatcher.Step(c, a => a.rdtsc());
        Assert.That((c.Gpr[Reg.RDX] << 32) | c.Gpr[Reg.RAX], Is.EqualTo(0x1_0000_01F4UL));
        Assert.That(Rdmsr(c, Msr.Tsc), Is.EqualTo(0x1_0000_01F4UL));
    }

    [Test]
    public void RdtscpAndRdpidReadTscAux()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Wrmsr(c, Msr.TscAux, 0x42);
        c.Gpr[Reg.RCX] = ulong.MaxValue;
        Assert.That(VectorCatcher.Step(c, a => a.rdtscp()), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Gpr[Reg.RCX], Is.EqualTo(0x42));
        c.Cr4 |= Cr4Bits.TSD;
        c.SetCpl(3);
        Assert.That(VectorCatcher.Step(c, a => a.rdtscp()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(VectorCatcher.Step(c, a => a.rdpid(r9)), Is.EqualTo(ExecStatus.Continue), "RDPID ignores TSD");
        Assert.That(c.Gpr[Reg.R9], Is.EqualTo(0x42));
    }

    [Test]
    public void EferSvmeNeedsSvmAndNotSvmDis()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Features[CpuFeature.Svm] = true; // not reported by default until VMRUN works
        ulong efer = EferBits.LME | EferBits.LMA | EferBits.NXE;
        Assert.That(Wrmsr(c, Msr.VmCr, Emulator.Core.Cpu.Cpu.VmCrSvmDis), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(Wrmsr(c, Msr.Efer, efer | EferBits.SVME), Is.EqualTo(ExecStatus.Fault));
        Assert.That(Wrmsr(c, Msr.VmCr, 0), Is.EqualTo(ExecStatus.EndBlock));
        c.Features[CpuFeature.Svm] = false;
        Assert.That(Wrmsr(c, Msr.Efer, efer | EferBits.SVME), Is.EqualTo(ExecStatus.Fault));
        c.Features[CpuFeature.Svm] = true;
        Assert.That(Wrmsr(c, Msr.Efer, efer | EferBits.SVME), Is.EqualTo(ExecStatus.EndBlock));
    }

    // ---- Debug registers ----

    [TestCase(6, 0xFFFF_FFFFUL, 0xFFFF_EFFFUL, TestName = "Dr6FixedBits")]
    [TestCase(6, 0UL, 0xFFFF_0FF0UL, TestName = "Dr6AllClear")]
    [TestCase(7, 0xFFFF_DFFFUL, 0xFFFF_07FFUL, TestName = "Dr7FixedBits")]
    [TestCase(7, 0UL, 0x400UL, TestName = "Dr7AllClear")]
    [TestCase(0, 0xFFFF_8000_0000_1234UL, 0xFFFF_8000_0000_1234UL, TestName = "Dr0")]
    [TestCase(3, 0x1000UL, 0x1000UL, TestName = "Dr3")]
    [TestCase(4, 0x1UL, 0xFFFF_0FF1UL, TestName = "Dr4AliasesDr6")]
    [TestCase(5, 0x3UL, 0x403UL, TestName = "Dr5AliasesDr7")]
    public void DebugRegisterWrites(int dr, ulong value, ulong expected)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Gpr[Reg.RAX] = value;
        var regs = new[] { dr0, dr1, dr2, dr3, dr4, dr5, dr6, dr7 };
        Assert.That(VectorCatcher.Step(c, a => a.mov(regs[dr], rax)), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(VectorCatcher.Step(c, a => a.mov(rbx, regs[dr])), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Gpr[Reg.RBX], Is.EqualTo(expected));
    }

    [Test]
    public void Dr4AndDr5AreUndefinedWithCr4De()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Cr4 |= Cr4Bits.DE;
        Assert.That(VectorCatcher.Step(c, a => a.mov(rax, dr4)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
        Assert.That(VectorCatcher.Step(c, a => a.mov(dr5, rax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void Dr7HighBitsFault()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Gpr[Reg.RAX] = 1UL << 32;
        Assert.That(VectorCatcher.Step(c, a => a.mov(dr7, rax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.mov(dr6, rax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
    }

    [Test]
    public void GeneralDetectRaisesDebugException()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Gpr[Reg.RAX] = Emulator.Core.Cpu.Cpu.Dr7GeneralDetect;
        Assert.That(VectorCatcher.Step(c, a => a.mov(dr7, rax)), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(VectorCatcher.Step(c, a => a.mov(rbx, dr0)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.DB));
        Assert.That(c.Dr6 & Emulator.Core.Cpu.Cpu.Dr6BreakpointDetect, Is.Not.EqualTo(0));
        Assert.That(c.Dr7 & Emulator.Core.Cpu.Cpu.Dr7GeneralDetect, Is.EqualTo(0), "cleared so the handler can use DRs");
    }

    [Test]
    public void LockMovCr0IsCr8In32BitMode()
    {
        Assert.That(new CpuFeatures().Has(CpuFeature.AltMovCr8), Is.True, "reported in CPUID");
        using var g = TestGuest.Protected32(a =>
        {
            a.@lock.mov(cr0, eax);
            a.@lock.mov(ebx, cr0);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 9;
        g.Run(100);
        Assert.That(g.Cpu.Cr8, Is.EqualTo(9));
        Assert.That(g[Reg.RBX], Is.EqualTo(9));
        Assert.That(g.Cpu.Cr0 & 1, Is.EqualTo(1), "CR0 unchanged");
    }

    [Test]
    public void UndefinedControlRegistersAreUd()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(VectorCatcher.Step(c, a => a.mov(rax, cr1)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
        Assert.That(VectorCatcher.Step(c, a => a.mov(cr5, rax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void XgetbvIsUndefinedWithoutOsXsave()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(VectorCatcher.Step(c, a => a.xgetbv()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
        Assert.That(c.UnimplementedSeen, Is.Empty);
    }

    [Test]
    public void StacAndClacToggleAc()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(VectorCatcher.Step(c, a => a.stac()), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Rflags64 & Rflags.AC, Is.EqualTo(Rflags.AC));
        Assert.That(VectorCatcher.Step(c, a => a.clac()), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Rflags64 & Rflags.AC, Is.EqualTo(0));
        c.SetCpl(3);
        Assert.That(VectorCatcher.Step(c, a => a.stac()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void FsGsBaseInstructions()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Gpr[Reg.RAX] = 0xFFFF_8000_0000_1000;
        Assert.That(VectorCatcher.Step(c, a => a.wrfsbase(rax)), Is.EqualTo(ExecStatus.Fault), "#UD without CR4.FSGSBASE");
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
        c.Cr4 |= Cr4Bits.FSGSBASE;
        Assert.That(VectorCatcher.Step(c, a => a.wrfsbase(rax)), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Seg[SegReg.FS].Base, Is.EqualTo(0xFFFF_8000_0000_1000));
        c.Gpr[Reg.RAX] = 0xFFFF_FFFF_1234_5678;
        Assert.That(VectorCatcher.Step(c, a => a.wrgsbase(eax)), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Seg[SegReg.GS].Base, Is.EqualTo(0x1234_5678), "32-bit form zero-extends");
        Assert.That(VectorCatcher.Step(c, a => a.rdfsbase(rbx)), Is.EqualTo(ExecStatus.Continue));
        Assert.That(c.Gpr[Reg.RBX], Is.EqualTo(0xFFFF_8000_0000_1000));
        c.Gpr[Reg.RAX] = 0x0000_8000_0000_0000;
        Assert.That(VectorCatcher.Step(c, a => a.wrgsbase(rax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
    }

    // ---- UMIP, INVPCID, CLFLUSHOPT/CLWB ----

    [Test]
    public void UmipMakesSmswAndTheTableStoresFaultAboveCplZero()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        c.Cr4 |= Cr4Bits.UMIP;
        Assert.That(VectorCatcher.Step(c, a => a.smsw(eax)), Is.EqualTo(ExecStatus.Continue), "CPL 0 may");
        Assert.That(c.Gpr[Reg.RAX], Is.EqualTo(LongModeCr0 & 0xFFFF_FFFF));
        c.SetCpl(3);
        foreach (Action<Iced.Intel.Assembler> body in new Action<Iced.Intel.Assembler>[]
        {
            a => a.smsw(eax), a => a.smsw(__word_ptr[0x2000]), a => a.sgdt(__[0x2000]), a => a.sidt(__[0x2000]), a => a.sldt(ax), a => a.str(ax),
        })
        {
            Assert.That(VectorCatcher.Step(c, body), Is.EqualTo(ExecStatus.Fault));
            Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
            Assert.That(c.PendingError, Is.EqualTo(0));
        }

        c.Cr4 &= ~Cr4Bits.UMIP;
        Assert.That(VectorCatcher.Step(c, a => a.smsw(eax)), Is.EqualTo(ExecStatus.Continue), "SMSW is unprivileged without UMIP");
    }

    private static int Invpcid(Emulator.Core.Cpu.Cpu c, ulong type, ulong pcid, ulong linear)
    {
        c.Phys.Write(0x2000, 8, pcid);
        c.Phys.Write(0x2008, 8, linear);
        c.Gpr[Reg.RAX] = type;
        return VectorCatcher.Step(c, a => a.invpcid(rax, __[0x2000]));
    }

    [TestCase(0UL, 0UL, 0x1000UL, true)]
    [TestCase(1UL, 0UL, 0UL, true)]
    [TestCase(2UL, 5UL, 0UL, true)]
    [TestCase(3UL, 0xFFFUL, 0UL, true)]
    [TestCase(4UL, 0UL, 0UL, false)]
    [TestCase(0UL, 1UL, 0UL, false)]
    [TestCase(1UL, 1UL, 0UL, false)]
    [TestCase(2UL, 0x1000UL, 0UL, false)]
    [TestCase(0UL, 0UL, 0x0000_8000_0000_0000UL, false)]
    public void InvpcidRulesWithoutPcide(ulong type, ulong pcid, ulong linear, bool ok)
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        int st = Invpcid(c, type, pcid, linear);
        Assert.That(st, Is.EqualTo(ok ? ExecStatus.EndBlock : ExecStatus.Fault));
        if (!ok)
        {
            Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        }
    }

    [Test]
    public void InvpcidWithPcideAcceptsAnyPcidAndNeedsCplZero()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(c.WriteCr4(c.Cr4 | Cr4Bits.PCIDE), Is.True);
        Assert.That(Invpcid(c, 0, 7, 0x1000), Is.EqualTo(ExecStatus.EndBlock));
        Assert.That(Invpcid(c, 1, 7, 0), Is.EqualTo(ExecStatus.EndBlock));
        c.SetCpl(3);
        Assert.That(Invpcid(c, 2, 0, 0), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
    }

    [Test]
    public void InvpcidIsUndefinedWhenNotReported()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(c.Features.TryApply("-invpcid", out _), Is.True);
        Assert.That(Invpcid(c, 2, 0, 0), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void InvpcidDropsTheTranslationOfAnAddress()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(c.ReadMem(SegReg.DS, 0x3000, 8, out _), Is.True);
        ulong walks = c.PageWalks;
        Assert.That(c.ReadMem(SegReg.DS, 0x3000, 8, out _), Is.True);
        Assert.That(c.PageWalks, Is.EqualTo(walks), "cached");
        Assert.That(Invpcid(c, 0, 0, 0x3000), Is.EqualTo(ExecStatus.EndBlock));
        walks = c.PageWalks;
        Assert.That(c.ReadMem(SegReg.DS, 0x3000, 8, out _), Is.True);
        Assert.That(c.PageWalks, Is.GreaterThan(walks), "walked again");
    }

    [Test]
    public void ClflushoptAndClwbCheckTheAddressAndNeedTheirFeature()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = NewLongModeCpu(mem);
        Assert.That(VectorCatcher.Step(c, a => a.clflushopt(__byte_ptr[0x2000])), Is.EqualTo(ExecStatus.Continue));
        Assert.That(VectorCatcher.Step(c, a => a.clwb(__byte_ptr[0x2000])), Is.EqualTo(ExecStatus.Continue));
        c.Gpr[Reg.RBX] = 0x0000_8000_0000_0000;
        Assert.That(VectorCatcher.Step(c, a => a.clwb(__byte_ptr[rbx])), Is.EqualTo(ExecStatus.Fault), "non-canonical");
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(c.Features.TryApply("-clflushopt,-clwb", out _), Is.True);
        Assert.That(VectorCatcher.Step(c, a => a.clflushopt(__byte_ptr[0x2000])), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
        Assert.That(VectorCatcher.Step(c, a => a.clwb(__byte_ptr[0x2000])), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
    }
}
