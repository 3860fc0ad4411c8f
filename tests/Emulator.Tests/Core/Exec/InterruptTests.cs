using Emulator.Core.Cpu;
using static Emulator.Tests.Core.CpuTests.SystemTables;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>INT/INTO/IRET forms, virtual-8086 entry and exit, SYSCALL/SYSRET, SYSENTER/SYSEXIT and SWAPGS.</summary>
public class InterruptTests
{
    private static TestGuest Long(Action<Iced.Intel.Assembler> body)
    {
        var g = TestGuest.Long64(body);
        Install(g, StandardGdt(longMode: true), 256);
        for (int v = 0; v < 32; v++)
        {
            SetIdt64(g, v, Gate64(Code64, Handler(v), 0xE, 0));
            SetHandler(g, 64, v, a => a.hlt());
        }

        return g;
    }

    private static TestGuest Prot(Action<Iced.Intel.Assembler> body)
    {
        var g = TestGuest.Protected32(body);
        Install(g, StandardGdt(longMode: false), 256);
        for (int v = 0; v < 32; v++)
        {
            SetIdt32(g, v, Gate(Code32, (uint)Handler(v), 0xE, 0));
            SetHandler(g, 32, v, a => a.hlt());
        }

        return g;
    }

    private static int DeliveredVector(TestGuest g)
    {
        ulong rip = g.Cpu.Rip - 1;
        return rip >= HandlerBase && rip < HandlerBase + (256 * 0x40) ? (int)((rip - HandlerBase) / 0x40) : -1;
    }

    private static ulong Top(TestGuest g, int slot, int size) => g.ReadPhys(g[Reg.RSP] + (ulong)(slot * size), size);

    [Test]
    public void SyscallAndSysretqRoundTrip()
    {
        using var g = Long(a =>
        {
            a.syscall();
            a.nop();
        });
        MakeUserAccessible(g);
        var c = g.Cpu;
        c.Efer |= EferBits.SCE;
        c.Star = (0x20UL << 48) | (0x08UL << 32);
        c.Lstar = Handler(0x80);
        c.Sfmask = Rflags.IF | Rflags.DF;
        SetHandler(g, 64, 0x80, a => a.sysretq());
        c.FlagsBits |= Rflags.IF | Rflags.CF | Rflags.DF;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(c.Rip, Is.EqualTo(Handler(0x80)));
        Assert.That(c.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x08));
        Assert.That(c.Seg[SegReg.SS].Selector, Is.EqualTo((ushort)0x10));
        Assert.That(g[Reg.RCX], Is.EqualTo(TestGuest.CodeBase + 2));
        Assert.That(g[Reg.R11], Is.EqualTo(Rflags.IF | Rflags.CF | Rflags.DF | Rflags.Reserved1));
        Assert.That(c.Rflags64 & (Rflags.IF | Rflags.DF | Rflags.CF), Is.EqualTo(Rflags.CF), "SFMASK cleared IF and DF");

        Assert.That(g.Run(2), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(c.Cpl, Is.EqualTo(3));
        Assert.That(c.Mode, Is.EqualTo(CpuMode.Long64));
        Assert.That(c.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x33));
        Assert.That(c.Seg[SegReg.SS].Selector, Is.EqualTo((ushort)0x2B));
        Assert.That(c.Rip, Is.EqualTo(TestGuest.CodeBase + 2));
        Assert.That(c.Rflags64 & (Rflags.IF | Rflags.DF), Is.EqualTo(Rflags.IF | Rflags.DF), "RFLAGS from R11");
    }

    [Test]
    public void SysretdReturnsToCompatibilityMode()
    {
        using var g = Long(a => a.sysret());
        g.Cpu.Efer |= EferBits.SCE;
        g.Cpu.Star = 0x20UL << 48;
        g.Cpu.Gpr[Reg.RCX] = 0x1_0000_1234;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Compat32));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x23));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x1234UL));
    }

    [Test]
    public void SyscallWithoutSceIsUd()
    {
        using var g = Long(a => a.syscall());
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void SysretAtCpl3IsGp()
    {
        using var g = Long(a => a.sysretq());
        MakeUserAccessible(g);
        g.Cpu.Efer |= EferBits.SCE;
        Write64(g, TssBase + 4, 0x7F000);
        EnterRing3(g, UserCode64, UserData, 0x60000);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void SysenterIsUdInLongModeOnAmd()
    {
        using var g = Long(a => a.sysenter());
        g.Cpu.SysenterCs = 0x08;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void SysenterAndSysexitInLegacyMode()
    {
        using var g = Prot(a => a.sysenter());
        var c = g.Cpu;
        c.SysenterCs = 0x08; // CS 0x08 / SS 0x10; SYSEXIT: CS 0x18|3 / SS 0x20|3
        c.SysenterEsp = 0x7F000;
        c.SysenterEip = Handler(0x80);
        SetHandler(g, 32, 0x80, a => a.sysexit());
        c.Gpr[Reg.RCX] = 0x60000;
        c.Gpr[Reg.RDX] = 0x4321;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(c.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x08));
        Assert.That(c.Mode, Is.EqualTo(CpuMode.Protected32), "SYSENTER loads a flat 32-bit CS");
        Assert.That(g[Reg.RSP], Is.EqualTo(0x7F000UL));
        Assert.That(c.Rip, Is.EqualTo(Handler(0x80)));
        Assert.That(g.Run(2), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(c.Cpl, Is.EqualTo(3));
        Assert.That(c.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x1B));
        Assert.That(c.Seg[SegReg.SS].Selector, Is.EqualTo((ushort)0x23));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x60000UL));
        Assert.That(c.Rip, Is.EqualTo(0x4321UL));
    }

    [Test]
    public void SwapgsExchangesGsBase()
    {
        using var g = Long(a =>
        {
            a.swapgs();
            a.hlt();
        });
        g.Cpu.Seg[SegReg.GS].Base = 0x1111;
        g.Cpu.KernelGsBase = 0x2222;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Seg[SegReg.GS].Base, Is.EqualTo(0x2222UL));
        Assert.That(g.Cpu.KernelGsBase, Is.EqualTo(0x1111UL));
    }

    [Test]
    public void SwapgsOutside64BitModeIsUd()
    {
        using var g = Prot(a => a.db(0x0F, 0x01, 0xF8));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.UD));
    }

    [TestCase(true, Vector.OF)]
    [TestCase(false, -1)]
    public void IntoRaisesOverflowOnlyWhenOfIsSet(bool of, int vector)
    {
        using var g = Prot(a =>
        {
            a.into();
            a.hlt();
        });
        if (of)
        {
            g.Cpu.FlagsBits |= Rflags.OF;
        }

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(vector));
        if (of)
        {
            Assert.That(Top(g, 0, 4), Is.EqualTo(TestGuest.CodeBase + 1), "trap: the next EIP");
        }
    }

    [Test]
    public void Int1IgnoresTheGateDpl()
    {
        using var g = Prot(a => a.int1());
        Write64(g, IdtBase + (Vector.DB * 8), Gate(Code32, (uint)Handler(Vector.DB), 0xE, 0));
        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, Data0);
        EnterRing3(g, UserCode32, UserData, 0x60000);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.DB));
    }

    [Test]
    public void IretdEntersVirtual8086ModeAndIntReturnsToRing0()
    {
        // Ring 0 IRETD with VM=1 → VM86 at 2000:0000 which runs INT 80h (IOPL 3) → ring-0 handler.
        using var g = Prot(a => a.iretd());
        SetIdt32(g, 0x80, Gate(Code32, (uint)Handler(0x80), 0xE, 3));
        SetHandler(g, 32, 0x80, a => a.hlt());
        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, Data0);
        g.Load([0xCD, 0x80], 0x20000);
        ulong sp = TestGuest.StackTop - 36;
        ulong[] frame = [0, 0x2000, Rflags.VM | Rflags.IOPL | Rflags.Reserved1, 0x0F00, 0x3000, 0x1111, 0x2222, 0x3333, 0x4444];
        for (int i = 0; i < frame.Length; i++)
        {
            g.Mem.Write(sp + (ulong)(i * 4), 4, frame[i]);
        }

        g.Cpu.Gpr[Reg.RSP] = sp;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Virtual8086));
        Assert.That(g.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(g.Cpu.Seg[SegReg.SS].Base, Is.EqualTo(0x30000UL));
        Assert.That(g.Cpu.Seg[SegReg.GS].Selector, Is.EqualTo((ushort)0x4444));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x0F00UL));

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(0x80));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Protected32));
        Assert.That(g.Cpu.Cpl, Is.Zero);
        Assert.That(g[Reg.RSP], Is.EqualTo(0x7F000UL - 36));
        ulong[] expect = [2, 0x2000, 0, 0x0F00, 0x3000, 0x1111, 0x2222, 0x3333, 0x4444];
        for (int i = 0; i < expect.Length; i++)
        {
            if (i == 2)
            {
                Assert.That(Top(g, i, 4) & Rflags.VM, Is.Not.Zero, "EFLAGS.VM in the frame");
                continue;
            }

            Assert.That(Top(g, i, 4), Is.EqualTo(expect[i]), $"frame slot {i}");
        }

        Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.Zero, "data segments are nulled on entry from VM86");
        Assert.That(g.Cpu.Seg[SegReg.GS].Selector, Is.Zero);
    }

    [Test]
    public void IntInVirtual8086ModeWithIoplBelow3IsGp()
    {
        using var g = Prot(a => a.iretd());
        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, Data0);
        g.Load([0xCD, 0x80], 0x20000);
        ulong sp = TestGuest.StackTop - 36;
        ulong[] frame = [0, 0x2000, Rflags.VM | Rflags.Reserved1, 0x0F00, 0x3000, 0, 0, 0, 0];
        for (int i = 0; i < frame.Length; i++)
        {
            g.Mem.Write(sp + (ulong)(i * 4), 4, frame[i]);
        }

        g.Cpu.Gpr[Reg.RSP] = sp;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
        Assert.That(Top(g, 0, 4), Is.Zero, "#GP(0)");
        Assert.That(Top(g, 1, 4), Is.Zero, "IP of the INT instruction");
    }

    [TestCase(false, 0x80, true)]  // redirection bit clear: the 8086 program's IVT, VIF virtualizes IF
    [TestCase(true, 0x80, false)]  // bit set with IOPL 0: #GP(0)
    public void VmeRedirectsSoftwareInterruptsThroughTheVirtual8086Ivt(bool bitSet, int vector, bool redirected)
    {
        using var g = Prot(a => a.iretd());
        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, Data0);
        g.Mem.Write(TssBase + 0x66, 2, 0x88);           // I/O bitmap at 0x88, redirection bitmap at 0x68
        g.Mem.Write(TssBase + 0x68 + (ulong)(vector >> 3), 1, bitSet ? 1UL << (vector & 7) : 0);
        g.Cpu.Seg[Emulator.Core.Cpu.Cpu.TrIndex].Limit = 0x88 + 0x2000;
        g.Cpu.Cr4 |= Cr4Bits.VME;
        g.Mem.Write((ulong)vector * 4, 4, 0x3000_0010);  // IVT: 3000:0010
        g.Load([0xF4], 0x30010);
        g.Load([0xCD, (byte)vector], 0x20000);
        ulong sp = TestGuest.StackTop - 36;
        ulong[] frame = [0, 0x2000, Rflags.VM | Rflags.VIF | Rflags.Reserved1, 0x0F00, 0x1000, 0, 0, 0, 0];
        for (int i = 0; i < frame.Length; i++)
        {
            g.Mem.Write(sp + (ulong)(i * 4), 4, frame[i]);
        }

        g.Cpu.Gpr[Reg.RSP] = sp;
        g.Run(2);
        if (!redirected)
        {
            g.Run();
            Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
            return;
        }

        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Virtual8086));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x3000));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x10UL));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x0F00UL - 6));
        Assert.That(g.ReadPhys(0x10000 + 0x0F00 - 6, 2), Is.EqualTo(2UL), "IP");
        Assert.That(g.ReadPhys(0x10000 + 0x0F00 - 4, 2), Is.EqualTo(0x2000UL), "CS");
        ulong pushed = g.ReadPhys(0x10000 + 0x0F00 - 2, 2);
        Assert.That(pushed & (Rflags.IOPL | Rflags.IF), Is.EqualTo(Rflags.IOPL | Rflags.IF), "IOPL image 3, IF image = VIF");
        Assert.That(g.Cpu.FlagsBits & Rflags.VIF, Is.Zero);
    }

    /// <summary>
    /// With 5-level paging an IDT gate may point past bit 47 (canonical to bit 56); the PML5 maps index 0 and
    /// the high index to the boot PML4, so the high handler address runs the same HLT.
    /// </summary>
    [TestCase(true, TestName = "InterruptGateTo57BitHandlerWithLa57")]
    [TestCase(false, TestName = "InterruptGateTo57BitHandlerWithoutLa57IsGp")]
    public void InterruptGateTo57BitHandler(bool la57)
    {
        const ulong pml5 = 0x50000, high = 0xABUL << 48;
        using var g = TestGuest.Long64(a =>
        {
            a.@int(0x40);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        // Vector 0x40's gate: offset bits 63:32 carry the high part.
        g.Mem.Write(VectorCatcher.IdtBase + (0x40 * 16) + 8, 4, (high | VectorCatcher.HandlerBase) >> 32);
        if (la57)
        {
            g.Cpu.Features[CpuFeature.La57] = true;
            g.Mem.Write(pml5, 8, g.Cpu.Cr3 | 7);
            g.Mem.Write(pml5 + (0xAB * 8), 8, g.Cpu.Cr3 | 7);
            g.Cpu.Cr3 = pml5;
            g.Cpu.Cr4 |= Cr4Bits.LA57;
            g.Cpu.FlushTranslations();
        }

        Assert.That(g.Run(100), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(
            g.Cpu.Rip,
            Is.EqualTo(la57 ? high | (VectorCatcher.HandlerBase + 0x41) : VectorCatcher.HandlerBase + Vector.GP + 1));
    }
}
