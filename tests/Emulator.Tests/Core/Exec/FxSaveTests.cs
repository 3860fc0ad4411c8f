using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>FXSAVE/FXRSTOR image layout and rules (APM vol. 4 "FXSAVE").</summary>
public class FxSaveTests
{
    private static readonly ulong D = FpGuest.Data;

    [Test]
    public void SaveLayoutAndRestore()
    {
        using var g = FpGuest.Create(a =>
        {
            a.fninit();
            a.fld1();
            a.fldpi();
            a.fxsave64(__[rbx]);
            a.fninit();
            a.pxor(xmm3, xmm3);
            a.pxor(xmm12, xmm12);
            a.fxrstor64(__[rbx]);
            a.hlt();
        });
        g.Cpu.Xmm[3] = Vector128.Create(0x0123456789ABCDEFUL, 0xFEDCBA9876543210UL).AsByte();
        g.Cpu.Xmm[12] = Vector128.Create(12UL, 13UL).AsByte();
        g.Cpu.Mxcsr = 0x1F80 | 0x6000;
        FpGuest.RunOk(g);

        Assert.That(g.ReadPhys(D, 2), Is.EqualTo(0x037FUL), "FCW");
        Assert.That(g.ReadPhys(D + 2, 2), Is.EqualTo(6UL << 11), "FSW with TOP = 6");
        Assert.That(g.ReadPhys(D + 4, 1), Is.EqualTo(0xC0UL), "abridged tags: R6, R7 valid");
        Assert.That(g.ReadPhys(D + 24, 4), Is.EqualTo(0x7F80UL), "MXCSR");
        Assert.That(g.ReadPhys(D + 28, 4), Is.EqualTo(0xFFFFUL), "MXCSR_MASK");
        Assert.That(g.ReadPhys(D + 32, 8), Is.EqualTo(0xC90FDAA22168C235UL), "ST0 = pi");
        Assert.That(g.ReadPhys(D + 40, 2), Is.EqualTo(0x4000UL));
        Assert.That(g.ReadPhys(D + 48, 8), Is.EqualTo(0x8000000000000000UL), "ST1 = 1");
        Assert.That(g.ReadPhys(D + 160 + (3 * 16), 8), Is.EqualTo(0x0123456789ABCDEFUL), "XMM3");
        Assert.That(g.ReadPhys(D + 160 + (12 * 16) + 8, 8), Is.EqualTo(13UL), "XMM12");

        Assert.That(g.Cpu.Xmm[3].AsUInt64(), Is.EqualTo(Vector128.Create(0x0123456789ABCDEFUL, 0xFEDCBA9876543210UL)));
        Assert.That(g.Cpu.Xmm[12].AsUInt64(), Is.EqualTo(Vector128.Create(12UL, 13UL)));
        Assert.That(g.Cpu.FpuTop, Is.EqualTo(6));
        Assert.That(g.Cpu.St(0), Is.EqualTo(new Float80(0x4000, 0xC90FDAA22168C235)));
        Assert.That(g.Cpu.FpuEmpty, Is.EqualTo(0x3F));
    }

    [Test]
    public void MisalignedAreaIsGeneralProtection()
    {
        using var g = FpGuest.Create(a => { a.fxsave(__[rbx + 8]); a.hlt(); });
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void TaskSwitchedIsDeviceNotAvailable()
    {
        using var g = FpGuest.Create(a => { a.fxsave(__[rbx]); a.hlt(); });
        g.Cpu.Cr0 |= Cr0Bits.TS;
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.NM));
    }

    [Test]
    public void RestoreWithReservedMxcsrBitIsGeneralProtection()
    {
        using var g = FpGuest.Create(a => { a.fxrstor(__[rbx]); a.hlt(); });
        FpGuest.Write64(g, D + 24, 0x0001_1F80);
        Assert.That(FpGuest.Run(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Mxcsr, Is.EqualTo(MxcsrBits.Default));
    }

    [Test]
    public void WithoutOsfxsrXmmRegistersAreNotSaved()
    {
        using var g = FpGuest.Create(a => { a.fxsave(__[rbx]); a.hlt(); });
        g.Cpu.Cr4 &= ~Cr4Bits.OSFXSR;
        g.Cpu.Xmm[0] = Vector128<byte>.AllBitsSet;
        FpGuest.Write64(g, D + 160, 0x5A5A5A5A5A5A5A5A);
        FpGuest.RunOk(g);
        Assert.That(g.ReadPhys(D + 160, 8), Is.EqualTo(0x5A5A5A5A5A5A5A5AUL));
    }

    [Test]
    public void LegacyFormatIn32BitModeStoresPointersWhenAnExceptionIsPending()
    {
        const ulong data = 0x300000;
        using var g = TestGuest.Protected32(a =>
        {
            a.fninit();                      // DB E3
            a.fldcw(__word_ptr[ebx + 512]);  // D9 AB imm32 → 6 bytes
            a.fld1();                        // D9 E8
            a.fldz();                        // D9 EE
            a.fdivp(st1, st0);               // DE F9: unmasked ZE, ES set
            a.fxsave(__[ebx]);
            a.hlt();
        });
        g.Cpu.Cr4 |= Cr4Bits.OSFXSR;
        g.Cpu.Gpr[Reg.RBX] = data;
        g.Mem.TryLoad(data + 512, [0x7B, 0x03]);
        g.Mem.TryLoad(data + 288, [0xA5]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(data + 2, 2) & 0x80, Is.EqualTo(0x80UL), "ES");
        Assert.That(g.ReadPhys(data + 8, 4), Is.EqualTo(TestGuest.CodeBase + 12), "FIP: offset of FDIVP");
        Assert.That(g.ReadPhys(data + 12, 2), Is.EqualTo(0x18UL), "FCS");
        Assert.That(g.ReadPhys(data + 288, 1), Is.EqualTo(0xA5UL), "XMM8–15 area untouched outside 64-bit mode");
    }
}
