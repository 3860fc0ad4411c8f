using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

// Not "...Core.Cpu": that namespace would hide the Cpu class from the tests' shared helpers.
namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// The boot path of APM vol. 2 §14.6 run by a guest: real mode → protected mode (LGDT, CR0.PE, far JMP)
/// → long mode (CR4.PAE, CR3, EFER.LME via WRMSR, CR0.PG, far JMP to a 64-bit segment).
/// </summary>
public class ModeSwitchTests
{
    private const ulong Gdt = 0x5000, GdtPointer = 0x5100, Code32 = 0x6000, Code64 = 0x7000, Marker = 0x6F00;
    private const ulong Pml4 = 0x70000, Pdpt = 0x71000, Pd = 0x72000;
    private const ushort Code32Sel = 0x08, DataSel = 0x10, Code64Sel = 0x18;

    private static void WriteTables(TestGuest g)
    {
        ulong[] gdt =
        [
            0,
            0x00CF_9A00_0000_FFFF, // 0x08: 32-bit code, flat
            0x00CF_9200_0000_FFFF, // 0x10: data, flat
            0x00AF_9A00_0000_FFFF, // 0x18: 64-bit code
        ];
        for (int i = 0; i < gdt.Length; i++)
        {
            g.Mem.Write(Gdt + ((ulong)i * 8), 8, gdt[i]);
        }

        g.Mem.Write(GdtPointer, 2, (ulong)(gdt.Length * 8) - 1);
        g.Mem.Write(GdtPointer + 2, 4, Gdt);

        // Identity map of the first 1 GiB with 2 MiB pages.
        g.Mem.Write(Pml4, 8, Pdpt | 3);
        g.Mem.Write(Pdpt, 8, Pd | 3);
        for (ulong j = 0; j < 512; j++)
        {
            g.Mem.Write(Pd + (j * 8), 8, (j << 21) | 0x83);
        }
    }

    [Test]
    public void RealToProtectedToLongMode()
    {
        using var g = TestGuest.Real(a =>
        {
            a.lgdt(__[(uint)GdtPointer]);
            a.mov(cr0, ebx);
            a.jmp(Code32Sel, (uint)Code32);
        });
        g.Load(TestGuest.Assemble(32, a =>
        {
            a.mov(ax, DataSel);
            a.mov(ds, ax);
            a.mov(ss, ax);
            a.mov(cr4, esi);
            a.mov(cr3, edi);
            a.mov(eax, (uint)EferBits.LME);
            a.wrmsr();
            a.mov(cr0, ebp);
            a.jmp(Code64Sel, (uint)Code64);
        }, Code32), Code32);
        g.Load(TestGuest.Assemble(64, a =>
        {
            a.mov(rax, cr0);
            a.mov(__dword_ptr[Marker], 0x600D_F00D);
            a.hlt();
        }, Code64), Code64);
        WriteTables(g);

        // Register inputs keep the guest to the instructions under test.
        g.Cpu.Gpr[Reg.RBX] = Cr0Bits.PE | Cr0Bits.ET;
        g.Cpu.Gpr[Reg.RSI] = Cr4Bits.PAE;
        g.Cpu.Gpr[Reg.RDI] = Pml4;
        g.Cpu.Gpr[Reg.RCX] = Msr.Efer;
        g.Cpu.Gpr[Reg.RDX] = 0;
        g.Cpu.Gpr[Reg.RBP] = Cr0Bits.PG | Cr0Bits.PE | Cr0Bits.ET;

        // A cycle limit as well: a fault storm (e.g. #UD through an empty IVT) retires no instructions.
        RunExit exit = g.Cpu.Run(1000, 10_000_000);
        if (g.Cpu.UnimplementedSeen.Count > 0)
        {
            Assert.Ignore("needs instructions from other groups: " + string.Join(", ", g.Cpu.UnimplementedSeen));
        }

        Assert.That(exit, Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Long64));
        Assert.That(g.Cpu.Efer, Is.EqualTo(EferBits.LME | EferBits.LMA));
        Assert.That(g[Reg.RAX], Is.EqualTo(Cr0Bits.PG | Cr0Bits.PE | Cr0Bits.ET));
        Assert.That(g.ReadPhys(Marker, 4), Is.EqualTo(0x600D_F00D));
    }

    [Test]
    public void PagingWithLmeButWithoutPaeFaults()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.wrmsr();
            a.mov(cr0, ebp);
            a.hlt();
        });
        VectorCatcher.Install32(g);
        g.Cpu.Gpr[Reg.RCX] = Msr.Efer;
        g.Cpu.Gpr[Reg.RAX] = EferBits.LME;
        g.Cpu.Gpr[Reg.RDX] = 0;
        g.Cpu.Gpr[Reg.RBP] = Cr0Bits.PG | Cr0Bits.PE | Cr0Bits.ET;
        g.Run(100);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.Efer, Is.EqualTo(EferBits.LME), "LMA stays clear");
        Assert.That(g.Cpu.PagingEnabled, Is.False);
    }

    [Test]
    public void ActivatingLongModeSetsLmaAndDisablingPagingClearsIt()
    {
        using var g = TestGuest.Protected32(a => a.hlt());
        Emulator.Core.Cpu.Cpu c = g.Cpu;
        WriteTables(g);
        Assert.That(c.WriteCr4(Cr4Bits.PAE), Is.True);
        Assert.That(c.WriteCr3(Pml4), Is.True);
        Assert.That(c.WriteMsr(Msr.Efer, EferBits.LME), Is.True);
        Assert.That(c.WriteCr0(c.Cr0 | Cr0Bits.PG), Is.True);
        Assert.That(c.Efer & EferBits.LMA, Is.EqualTo(EferBits.LMA));
        Assert.That(c.Mode, Is.EqualTo(CpuMode.Compat32), "32-bit CS runs in compatibility mode");
        Assert.That(c.WriteMsr(Msr.Efer, 0), Is.False, "LME cannot change while paging is on");
        Assert.That(c.WriteCr4(0), Is.False, "PAE cannot be cleared in long mode");
        Assert.That(c.WriteCr0(c.Cr0 & ~Cr0Bits.PG), Is.True, "leaving long mode from compatibility mode");
        Assert.That(c.Efer, Is.EqualTo(EferBits.LME));
        Assert.That(c.Mode, Is.EqualTo(CpuMode.Protected32));
    }

    [Test]
    public void LmswCannotClearPe()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.lmsw(ax);
            a.smsw(ebx);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 0xE; // MP | EM | TS, PE clear
        g.Run(100);
        Assert.That(g[Reg.RBX] & 0xF, Is.EqualTo(0xF));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Protected32));
    }

    [Test]
    public void LmswEntersProtectedModeAndCltsClearsTs()
    {
        using var g = TestGuest.Real(a =>
        {
            a.lmsw(ax);
            a.smsw(bx);
            a.clts();
            a.smsw(cx);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 0x9; // PE | TS
        g.Run(100);
        Assert.That(g[Reg.RBX] & 0xF, Is.EqualTo(0x9));
        Assert.That(g[Reg.RCX] & 0xF, Is.EqualTo(0x1));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Protected16));
    }
}
