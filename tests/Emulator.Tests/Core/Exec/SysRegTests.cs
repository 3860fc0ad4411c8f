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

    [TestCase(Cr4Bits.PAE | Cr4Bits.OSXSAVE, TestName = "Cr4OsXsaveUnsupported")]
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
            | Cr4Bits.OSFXSR | Cr4Bits.OSXMMEXCPT | Cr4Bits.SMEP | Cr4Bits.SMAP | Cr4Bits.PCIDE;
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

    [TestCase(EferBits.SCE | EferBits.LME | EferBits.NXE | EferBits.SVME, false, TestName = "EferLmaWriteIgnored")]
    [TestCase(EferBits.LMA | EferBits.NXE, true, TestName = "EferClearLmeWhilePaging")]
    [TestCase(EferBits.LME | EferBits.LMA | EferBits.FFXSR, false, TestName = "EferFfxsr")]
    [TestCase(EferBits.LME | EferBits.LMA | (1UL << 15), true, TestName = "EferUnreportedTce")]
    [TestCase(EferBits.LME | EferBits.LMA | EferBits.LMSLE, true, TestName = "EferUnreportedLmsle")]
    [TestCase(EferBits.LME | EferBits.LMA | (1UL << 1), true, TestName = "EferReservedBit1")]
    public void EferWrites(ulong value, bool faults)
    {
        using var mem = new Emulator.Core.Memory.PhysicalMemory(1 << 20);
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
}
