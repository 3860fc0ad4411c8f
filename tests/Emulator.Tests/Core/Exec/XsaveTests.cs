using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using Emulator.Core.Exec;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>The XSAVE feature set with the x87 and SSE components (Intel SDM vol. 1 ch. 13; APM vol. 2 §11.5).</summary>
public class XsaveTests
{
    private static readonly ulong D = FpGuest.Data;
    private const ulong Header = 512;

    /// <summary>An FpGuest with CR4.OSXSAVE set and XCR0 = x87 | SSE; EDX:EAX = all ones (RFBM = XCR0).</summary>
    private static TestGuest Create(Action<Iced.Intel.Assembler> body)
    {
        var g = FpGuest.Create(body);
        g.Cpu.Cr4 |= Cr4Bits.OSXSAVE;
        g.Cpu.Xcr0 = XFeature.X87 | XFeature.Sse;
        g.Cpu.Gpr[Reg.RAX] = 0xFFFF_FFFF;
        g.Cpu.Gpr[Reg.RDX] = 0xFFFF_FFFF;
        return g;
    }

    [Test]
    public void XsaveStoresTheLegacyRegionAndXstateBvThenXrstorLoadsIt()
    {
        using var g = Create(a =>
        {
            a.fninit();
            a.fld1();
            a.xsave64(__[rbx]);
            a.fninit();
            a.pxor(xmm5, xmm5);
            a.pxor(xmm14, xmm14);
            a.ldmxcsr(__dword_ptr[rbx + 1024]);
            a.xrstor64(__[rbx]);
            a.hlt();
        });
        g.Cpu.Xmm[5] = Vector128.Create(5UL, 55UL).AsByte();
        g.Cpu.Xmm[14] = Vector128.Create(14UL, 141UL).AsByte();
        g.Cpu.Mxcsr = 0x3F80;
        FpGuest.Write64(g, D + 1024, MxcsrBits.Default);
        FpGuest.Write64(g, D + 464, 0x1111_2222_3333_4444); // software-available bytes: never written
        FpGuest.RunOk(g);

        Assert.That(g.ReadPhys(D, 2), Is.EqualTo(0x037FUL), "FCW");
        Assert.That(g.ReadPhys(D + 4, 1), Is.EqualTo(0x80UL), "abridged tags: R7 valid");
        Assert.That(g.ReadPhys(D + 24, 4), Is.EqualTo(0x3F80UL), "MXCSR");
        Assert.That(g.ReadPhys(D + 28, 4), Is.EqualTo(0xFFFFUL), "MXCSR_MASK");
        Assert.That(g.ReadPhys(D + 32, 8), Is.EqualTo(0x8000_0000_0000_0000UL), "ST0 = 1");
        Assert.That(g.ReadPhys(D + 160 + (5 * 16) + 8, 8), Is.EqualTo(55UL), "XMM5");
        Assert.That(g.ReadPhys(D + 160 + (14 * 16), 8), Is.EqualTo(14UL), "XMM14");
        Assert.That(g.ReadPhys(D + 464, 8), Is.EqualTo(0x1111_2222_3333_4444UL));
        Assert.That(g.ReadPhys(D + Header, 8), Is.EqualTo(3UL), "XSTATE_BV = XINUSE: both in use");

        Assert.That(g.Cpu.Xmm[5].AsUInt64(), Is.EqualTo(Vector128.Create(5UL, 55UL)));
        Assert.That(g.Cpu.Xmm[14].AsUInt64(), Is.EqualTo(Vector128.Create(14UL, 141UL)));
        Assert.That(g.Cpu.Mxcsr, Is.EqualTo(0x3F80u));
        Assert.That(g.Cpu.FpuTop, Is.EqualTo(7));
        Assert.That(g.Cpu.St(0), Is.EqualTo(new Float80(0x3FFF, 0x8000_0000_0000_0000)));
    }

    [Test]
    public void XsaveOfX87OnlyKeepsTheOtherXstateBvBitsAndSseBytes()
    {
        using var g = Create(a =>
        {
            a.mov(eax, 1);
            a.xor(edx, edx);
            a.xsave(__[rbx]);
            a.hlt();
        });
        g.Cpu.Xmm[0] = Vector128<byte>.AllBitsSet;
        FpGuest.Write64(g, D + 24, 0xAAAA_AAAA_AAAA_AAAA);
        FpGuest.Write64(g, D + 160, 0x5A5A_5A5A_5A5A_5A5A);
        FpGuest.Write64(g, D + Header, XFeature.Sse | XFeature.X87);
        FpGuest.RunOk(g);

        Assert.That(g.ReadPhys(D, 2), Is.EqualTo(0x0040UL), "FCW after reset");
        Assert.That(g.ReadPhys(D + 24, 8), Is.EqualTo(0xAAAA_AAAA_AAAA_AAAAUL), "MXCSR not stored without SSE in RFBM");
        Assert.That(g.ReadPhys(D + 160, 8), Is.EqualTo(0x5A5A_5A5A_5A5A_5A5AUL), "XMM not stored");
        Assert.That(g.ReadPhys(D + Header, 8), Is.EqualTo(XFeature.Sse | XFeature.X87), "SSE bit kept, x87 bit = in use");
    }

    [Test]
    public void XsaveReportsInitialComponentsAsNotInUse()
    {
        using var g = Create(a =>
        {
            a.fninit();
            a.xsave64(__[rbx]);
            a.hlt();
        });
        FpGuest.Write64(g, D + Header, ulong.MaxValue);
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + Header, 8), Is.EqualTo(~3UL), "bits outside RFBM kept; x87 and SSE initial");
    }

    [Test]
    public void XsaveStoresXmmRegistersEvenWithoutOsfxsr()
    {
        using var g = Create(a => { a.xsave(__[rbx]); a.hlt(); });
        g.Cpu.Cr4 &= ~Cr4Bits.OSFXSR;
        g.Cpu.Xmm[15] = Vector128.Create(0x15UL, 0).AsByte();
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + 160 + (15 * 16), 8), Is.EqualTo(0x15UL));
    }

    [Test]
    public void XrstorInitialisesComponentsMissingFromXstateBvButLoadsMxcsr()
    {
        using var g = Create(a => { a.xrstor64(__[rbx]); a.hlt(); });
        g.Cpu.Xmm[2] = Vector128<byte>.AllBitsSet;
        g.Cpu.FpuCw = 0x0040;
        g.Cpu.FpuEmpty = 0;
        FpGuest.Write64(g, D + 24, 0x1F00);
        FpGuest.Write64(g, D + 160 + 32, 0x1234);
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xmm[2], Is.EqualTo(Vector128<byte>.Zero), "SSE initialised");
        Assert.That(g.Cpu.Mxcsr, Is.EqualTo(0x1F00u), "the standard form loads MXCSR whenever RFBM has SSE");
        Assert.That(g.Cpu.FpuCw, Is.EqualTo(0x037F), "x87 initialised");
        Assert.That(g.Cpu.FpuEmpty, Is.EqualTo(0xFF));
    }

    [Test]
    public void CompactedXrstorSetsDefaultMxcsrWhenItInitialisesSse()
    {
        using var g = Create(a => { a.xrstor64(__[rbx]); a.hlt(); });
        g.Cpu.Mxcsr = 0x7F80;
        g.Cpu.Xmm[1] = Vector128<byte>.AllBitsSet;
        FpGuest.Write64(g, D + 24, 0x1F00);
        FpGuest.Write64(g, D + Header + 8, XFeature.Compacted | XFeature.X87 | XFeature.Sse);
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Mxcsr, Is.EqualTo(MxcsrBits.Default));
        Assert.That(g.Cpu.Xmm[1], Is.EqualTo(Vector128<byte>.Zero));
    }

    [Test]
    public void XsavecWritesTheCompactedHeaderAndOnlyComponentsInUse()
    {
        using var g = Create(a =>
        {
            a.fninit();
            a.xsavec64(__[rbx]);
            a.hlt();
        });
        g.Cpu.Xmm[0] = Vector128.Create(7UL, 0).AsByte();
        FpGuest.Write64(g, D, 0x5A5A);
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D, 8), Is.EqualTo(0x5A5AUL), "initial x87 state not stored");
        Assert.That(g.ReadPhys(D + 160, 8), Is.EqualTo(7UL));
        Assert.That(g.ReadPhys(D + 24, 4), Is.EqualTo(MxcsrBits.Default), "MXCSR stored with SSE");
        Assert.That(g.ReadPhys(D + Header, 8), Is.EqualTo(XFeature.Sse));
        Assert.That(g.ReadPhys(D + Header + 8, 8), Is.EqualTo(XFeature.Compacted | XFeature.X87 | XFeature.Sse));
    }

    [Test]
    public void XsavecSavesSseWhenOnlyMxcsrDiffersFromItsDefault()
    {
        using var g = Create(a => { a.xsavec(__[rbx]); a.hlt(); });
        g.Cpu.Mxcsr = 0x1F81;
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + Header, 8) & XFeature.Sse, Is.EqualTo(XFeature.Sse));
        Assert.That(g.ReadPhys(D + 24, 4), Is.EqualTo(0x1F81UL));
    }

    [TestCase(0UL, 4UL, 0UL, TestName = "StandardXstateBvBeyondXcr0")]
    [TestCase(0UL, 0UL, 1UL, TestName = "StandardXcompBvNonZero")]
    [TestCase(0x10000UL, 3UL, 0UL, TestName = "ReservedMxcsrBit")]
    [TestCase(0UL, 3UL, XFeature.Compacted | XFeature.X87, TestName = "CompactedXstateBvBeyondXcompBv")]
    [TestCase(0UL, 0UL, XFeature.Compacted | XFeature.Avx | XFeature.Sse | XFeature.X87, TestName = "CompactedXcompBvBeyondXcr0")]
    public void XrstorFaultsOnABadArea(ulong mxcsr, ulong xstateBv, ulong xcompBv)
    {
        using var g = Create(a => { a.xrstor64(__[rbx]); a.hlt(); });
        g.Cpu.Xmm[3] = Vector128<byte>.AllBitsSet;
        FpGuest.Write64(g, D + 24, mxcsr);
        FpGuest.Write64(g, D + Header, xstateBv);
        FpGuest.Write64(g, D + Header + 8, xcompBv);
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Xmm[3], Is.EqualTo(Vector128<byte>.AllBitsSet), "nothing restored");
    }

    [Test]
    public void CompactedXrstorNeedsZeroReservedHeaderBytes()
    {
        using var g = Create(a => { a.xrstor64(__[rbx]); a.hlt(); });
        FpGuest.Write64(g, D + 24, MxcsrBits.Default);
        FpGuest.Write64(g, D + Header + 8, XFeature.Compacted | XFeature.X87 | XFeature.Sse);
        FpGuest.Write64(g, D + Header + 40, 1);
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void MisalignedAreaIsGeneralProtection()
    {
        using var g = Create(a => { a.xsave(__[rbx + 16]); a.hlt(); });
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void TaskSwitchedIsDeviceNotAvailable()
    {
        using var g = Create(a => { a.xrstor(__[rbx]); a.hlt(); });
        g.Cpu.Cr0 |= Cr0Bits.TS;
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.NM));
    }

    [Test]
    public void WithoutOsXsaveEveryInstructionIsUndefined()
    {
        foreach (Action<Iced.Intel.Assembler> body in new Action<Iced.Intel.Assembler>[]
        {
            a => a.xsave(__[rbx]), a => a.xrstor(__[rbx]), a => a.xsavec(__[rbx]), a => a.xsaveopt(__[rbx]), a => a.xgetbv(), a => a.xsetbv(),
        })
        {
            using var g = Create(a => { body(a); a.hlt(); });
            g.Cpu.Cr4 &= ~Cr4Bits.OSXSAVE;
            Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.UD));
        }
    }

    [Test]
    public void XsavecIsUndefinedWhenNotReported()
    {
        using var g = Create(a => { a.xsavec(__[rbx]); a.hlt(); });
        g.Cpu.Features[CpuFeature.XsaveC] = false;
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void XsetbvWritesXcr0AndXgetbvReadsItIgnoringRcxHighBits()
    {
        using var g = Create(a =>
        {
            a.fninit();
            a.mov(rcx, 0x1234_5678_0000_0000);
            a.mov(eax, 3);
            a.xor(edx, edx);
            a.xsetbv();
            a.xor(eax, eax);
            a.xgetbv();
            a.mov(r8, rax);
            a.mov(ecx, 1);
            a.xgetbv();
            a.hlt();
        });
        g.Cpu.Xcr0 = XFeature.X87;
        g.Cpu.Xmm[0] = Vector128<byte>.AllBitsSet;
        FpGuest.RunOk(g);
        Assert.That(g.Cpu.Xcr0, Is.EqualTo(3UL));
        Assert.That(g[Reg.R8], Is.EqualTo(3UL));
        Assert.That(g[Reg.RAX], Is.EqualTo(XFeature.Sse), "XGETBV(1) = XCR0 AND XINUSE: x87 initial after FNINIT");
    }

    [TestCase(0u, 0UL, TestName = "Xcr0WithoutX87")]
    [TestCase(0u, 2UL, TestName = "Xcr0SseOnly")]
    [TestCase(0u, 7UL, TestName = "Xcr0Avx")]
    [TestCase(0u, 0x11UL, TestName = "Xcr0ReservedBit")]
    [TestCase(0u, 1UL << 32, TestName = "Xcr0HighBit")]
    [TestCase(1u, 3UL, TestName = "Xcr1")]
    [TestCase(0x8000_0000u, 3UL, TestName = "Xcr2147483648")]
    public void XsetbvFaults(uint xcr, ulong value)
    {
        using var g = Create(a => { a.xsetbv(); a.hlt(); });
        g.Cpu.Gpr[Reg.RCX] = xcr;
        g.Cpu.Gpr[Reg.RAX] = (uint)value;
        g.Cpu.Gpr[Reg.RDX] = value >> 32;
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Xcr0, Is.EqualTo(3UL));
    }

    [TestCase(2u)]
    [TestCase(0x8000_0000u)]
    public void XgetbvOfAnUnknownRegisterFaults(uint xcr)
    {
        using var g = Create(a => { a.xgetbv(); a.hlt(); });
        g.Cpu.Gpr[Reg.RCX] = xcr;
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void XsetbvAboveCplZeroFaults()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = new Emulator.Core.Cpu.Cpu(mem);
        Emulator.Core.Loaders.BootState.EnterLong64(c, 0x1000, 0x8000);
        c.Cr4 |= Cr4Bits.OSXSAVE;
        c.Gpr[Reg.RAX] = 3;
        c.SetCpl(3);
        Assert.That(VectorCatcher.Step(c, a => a.xsetbv()), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(VectorCatcher.Step(c, a => a.xgetbv()), Is.EqualTo(ExecStatus.Continue), "XGETBV is not privileged");
        Assert.That(c.Gpr[Reg.RAX], Is.EqualTo(XFeature.X87));
    }

    [Test]
    public void OsXsaveNeedsXsaveReported()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = new Emulator.Core.Cpu.Cpu(mem);
        Emulator.Core.Loaders.BootState.EnterLong64(c, 0x1000, 0x8000);
        Assert.That(c.WriteCr4(c.Cr4 | Cr4Bits.OSXSAVE), Is.True);
        Assert.That(c.WriteCr4(c.Cr4 & ~Cr4Bits.OSXSAVE), Is.True);
        Assert.That(c.Features.TryApply("-xsave", out _), Is.True);
        Assert.That(c.WriteCr4(c.Cr4 | Cr4Bits.OSXSAVE), Is.False);
    }
}
