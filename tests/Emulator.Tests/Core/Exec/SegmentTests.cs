using Emulator.Core.Cpu;
using Emulator.Tests.Core.CpuTests;
using static Emulator.Tests.Core.CpuTests.SystemTables;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>Segment loads and far transfers (APM vol. 2 ch. 4, vol. 3 MOV Sreg / JMP / CALL / RET far).</summary>
public class SegmentTests
{
    private const int Spare1 = 11, Spare2 = 12, Spare3 = 13;

    private static TestGuest Prot(Action<Iced.Intel.Assembler> body, ulong[]? extra = null)
    {
        var g = TestGuest.Protected32(body);
        var gdt = StandardGdt(longMode: false);
        if (extra != null)
        {
            for (int i = 0; i < extra.Length; i++)
            {
                gdt[Spare1 + i] = extra[i];
            }
        }

        Install(g, gdt, 256);
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

    private static ulong Top(TestGuest g, int slot, int size = 4) => g.ReadPhys(g[Reg.RSP] + (ulong)(slot * size), size);

    private const ushort S1 = Spare1 * 8, S2 = Spare2 * 8, S3 = Spare3 * 8;

    // Descriptors used by the data-driven cases: access byte, flags.
    private static readonly ulong DataRw0 = Segment(0x1000, 0xFFF, 0x92, 0x4);
    private static readonly ulong DataRo0 = Segment(0x1000, 0xFFF, 0x90, 0x4);
    private static readonly ulong CodeXo0 = Segment(0, 0xFFFFF, 0x98, 0xC);
    private static readonly ulong CodeXr0 = Segment(0, 0xFFFFF, 0x9A, 0xC);
    private static readonly ulong DataNp0 = Segment(0x1000, 0xFFF, 0x12, 0x4);
    private static readonly ulong DataRw3 = Segment(0x1000, 0xFFF, 0xF2, 0x4);
    private static readonly ulong Ldt = SystemDesc(0x6000, 0xFF, 2);

    public static IEnumerable<TestCaseData> DsCases()
    {
        yield return new TestCaseData(DataRw0, (ushort)S1, -1, 0u).SetName("DS: writable data loads");
        yield return new TestCaseData(DataRo0, (ushort)S1, -1, 0u).SetName("DS: read-only data loads");
        yield return new TestCaseData(CodeXr0, (ushort)S1, -1, 0u).SetName("DS: readable code loads");
        yield return new TestCaseData(CodeXo0, (ushort)S1, Vector.GP, (uint)S1).SetName("DS: execute-only code is #GP(sel)");
        yield return new TestCaseData(DataNp0, (ushort)S1, Vector.NP, (uint)S1).SetName("DS: not present is #NP(sel)");
        yield return new TestCaseData(Ldt, (ushort)S1, Vector.GP, (uint)S1).SetName("DS: system descriptor is #GP(sel)");
        yield return new TestCaseData(DataRw0, (ushort)(S1 | 3), Vector.GP, (uint)S1).SetName("DS: RPL 3 above DPL 0 is #GP(sel)");
        yield return new TestCaseData(DataRw0, (ushort)3, -1, 0u).SetName("DS: null selector loads");
        yield return new TestCaseData(DataRw0, (ushort)0x200, Vector.GP, 0x200u).SetName("DS: beyond GDT limit is #GP(sel)");
    }

    [TestCaseSource(nameof(DsCases))]
    public void MovDsChecksTheDescriptor(ulong desc, ushort sel, int vector, uint error)
    {
        using var g = Prot(a =>
        {
            a.mov(ds, ax);
            a.hlt();
        }, [desc]);
        g.Cpu.Gpr[Reg.RAX] = sel;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(vector));
        if (vector >= 0)
        {
            Assert.That(Top(g, 0), Is.EqualTo((ulong)error));
            Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.EqualTo(Data0), "DS unchanged after a fault");
        }
        else
        {
            Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.EqualTo(sel));
            if ((sel & ~3) != 0)
            {
                Assert.That(g.Cpu.Seg[SegReg.DS].Base, Is.EqualTo(desc == CodeXr0 ? 0UL : 0x1000UL));
                Assert.That(g.ReadPhys(GdtBase + S1 + 5, 1) & 1, Is.EqualTo(1UL), "accessed bit set");
            }
        }
    }

    public static IEnumerable<TestCaseData> SsCases()
    {
        yield return new TestCaseData(DataRw0, (ushort)S1, -1, 0u).SetName("SS: writable DPL0 data loads");
        yield return new TestCaseData(DataRo0, (ushort)S1, Vector.GP, (uint)S1).SetName("SS: read-only is #GP(sel)");
        yield return new TestCaseData(DataRw3, (ushort)(S1 | 3), Vector.GP, (uint)S1).SetName("SS: RPL/DPL 3 at CPL 0 is #GP(sel)");
        yield return new TestCaseData(DataNp0 | (1UL << 41), (ushort)S1, Vector.SS, (uint)S1).SetName("SS: not present is #SS(sel)");
        yield return new TestCaseData(DataRw0, (ushort)0, Vector.GP, 0u).SetName("SS: null is #GP(0) outside 64-bit mode");
    }

    [TestCaseSource(nameof(SsCases))]
    public void MovSsChecksTheDescriptor(ulong desc, ushort sel, int vector, uint error)
    {
        using var g = Prot(a =>
        {
            a.mov(ss, ax);
            a.hlt();
        }, [desc]);
        g.Cpu.Gpr[Reg.RAX] = sel;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(vector));
        if (vector >= 0)
        {
            Assert.That(Top(g, 0), Is.EqualTo((ulong)error));
        }
    }

    [Test]
    public void MovToCsIsInvalidOpcode()
    {
        // 8E C8 = mov cs, ax (the assembler refuses it).
        using var g = Prot(a => a.db(0x8E, 0xC8));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void NullSsIsAllowedAtCpl0In64BitMode()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(ss, ax);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = 0;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Seg[SegReg.SS].Selector, Is.Zero);
    }

    [Test]
    public void MovSsBlocksInterruptsForOneInstruction()
    {
        using var g = Prot(a =>
        {
            a.mov(ss, ax);
            a.nop();
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = Data0;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.InterruptShadow, Is.True);
    }

    [Test]
    public void PushAndPopSegmentRegisters()
    {
        using var g = Prot(a =>
        {
            a.push(ds);
            a.push(cs);
            a.pop(es);
            a.pop(fs);
            a.hlt();
        });
        g.Cpu.Seg[SegReg.FS] = Emulator.Core.Cpu.Cpu.NullSegment(0);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(-1));
        Assert.That(g.Cpu.Seg[SegReg.ES].Selector, Is.EqualTo(Code32), "a readable code segment may be loaded into ES");
        Assert.That(g.Cpu.Seg[SegReg.FS].Selector, Is.EqualTo(Data0));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop));
    }

    [Test]
    public void LdsLoadsSegmentAndOffset()
    {
        using var g = Prot(a =>
        {
            a.lds(ebx, __fword_ptr[eax]);
            a.hlt();
        }, [DataRw0]);
        g.Mem.Write(TestGuest.DataBase, 4, 0x12345678);
        g.Mem.Write(TestGuest.DataBase + 4, 2, S1);
        g.Cpu.Gpr[Reg.RAX] = TestGuest.DataBase;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x12345678UL));
        Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.EqualTo(S1));
        Assert.That(g.Cpu.Seg[SegReg.DS].Base, Is.EqualTo(0x1000UL));
    }

    [Test]
    public void FarJmpAndCallToCodeSegmentAndRetf()
    {
        // A second flat 32-bit code segment at S1; CALL FAR S1:handler, the handler does RETF.
        using var g = Prot(a =>
        {
            a.call(S1, (uint)Handler(0x80));
            a.hlt();
        }, [Code32Desc(0)]);
        SetHandler(g, 32, 0x80, a => a.retf());
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo(S1));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(0x80)));
        Assert.That(Top(g, 0), Is.EqualTo(TestGuest.CodeBase + 7));
        Assert.That(Top(g, 1), Is.EqualTo((ulong)Code32));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo(Code32));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 8));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop));
    }

    [Test]
    public void FarJmpToMorePrivilegedNonConformingCodeIsGp()
    {
        using var g = Prot(a => a.jmp(S1, 0x1000), [Code32Desc(0)]);
        MakeRing3(g);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
        Assert.That(Top(g, 0), Is.EqualTo((ulong)S1));
    }

    private static void MakeRing3(TestGuest g)
    {
        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, Data0);
        EnterRing3(g, UserCode32, UserData, 0x60000);
    }

    [Test]
    public void CallGateFromRing3CopiesParametersAndRetfReturnsToRing3()
    {
        // 32-bit call gate (DPL 3) to ring-0 code with 2 parameters; the handler returns with RETF 8.
        using var g = Prot(a =>
        {
            a.call((ushort)(S1 | 3), 0);
            a.hlt();
        }, [Gate(Code32, (uint)Handler(0x80), 0xC, 3, paramCount: 2)]);
        SetHandler(g, 32, 0x80, a => a.retf(8));
        MakeRing3(g);
        g.Mem.Write(0x60000 - 8, 4, 0xAAAA);  // param 0 (top of stack)
        g.Mem.Write(0x60000 - 4, 4, 0xBBBB);  // param 1
        g.Cpu.Gpr[Reg.RSP] = 0x60000 - 8;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Cpl, Is.Zero);
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo(Code32));
        Assert.That(g.Cpu.Seg[SegReg.SS].Selector, Is.EqualTo(Data0));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x7F000UL - 24));
        Assert.That(Top(g, 0), Is.EqualTo(TestGuest.CodeBase + 7), "EIP");
        Assert.That(Top(g, 1), Is.EqualTo((ulong)(UserCode32 | 3)), "CS");
        Assert.That(Top(g, 2), Is.EqualTo(0xAAAAUL), "param 0");
        Assert.That(Top(g, 3), Is.EqualTo(0xBBBBUL), "param 1");
        Assert.That(Top(g, 4), Is.EqualTo(0x60000UL - 8), "ESP");
        Assert.That(Top(g, 5), Is.EqualTo((ulong)(UserData | 3)), "SS");

        // RETF 8 back to ring 3: DS was DPL 3 data, so it stays; ESP releases the parameters.
        Assert.That(g.Run(2), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)(UserCode32 | 3)));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x60000UL));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 7));
        Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.EqualTo((ushort)(UserData | 3)));
    }

    [Test]
    public void RetfToOuterRingNullsMorePrivilegedDataSegments()
    {
        // Ring 0 builds a RETF frame to ring 3; DS (DPL 0) must be nulled, ES (DPL 3) kept.
        using var g = Prot(a =>
        {
            a.retf();
        });
        ulong sp = TestGuest.StackTop - 16;
        g.Mem.Write(sp, 4, 0x1234);
        g.Mem.Write(sp + 4, 4, UserCode32 | 3);
        g.Mem.Write(sp + 8, 4, 0x50000);
        g.Mem.Write(sp + 12, 4, UserData | 3);
        g.Cpu.Gpr[Reg.RSP] = sp;
        g.Cpu.Seg[SegReg.ES] = Emulator.Core.Cpu.Cpu.FromDescriptor(UserData | 3, DataDesc(3));
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x1234UL));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x50000UL));
        Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.Zero);
        Assert.That(g.Cpu.Seg[SegReg.ES].Selector, Is.EqualTo((ushort)(UserData | 3)));
    }

    [Test]
    public void LongModeCallGateFromRing3SwitchesToRsp0()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.call(__fword_ptr[rax]);
            a.hlt();
        });
        var gdt = StandardGdt(longMode: true);
        var gate = Gate64(Code64, Handler(0x80), 0xC, 3);
        gdt[9] = gate.Lo;
        gdt[10] = gate.Hi;
        Install(g, gdt, 0);
        MakeUserAccessible(g);
        SetHandler(g, 64, 0x80, a => a.db(0x48, 0xCB)); // RETFQ
        Write64(g, TssBase + 4, 0x7F000);
        g.Mem.Write(TestGuest.DataBase, 4, 0);
        g.Mem.Write(TestGuest.DataBase + 4, 2, CallGate | 3);
        g.Cpu.Gpr[Reg.RAX] = TestGuest.DataBase;
        EnterRing3(g, UserCode64, UserData, 0x60000);
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Cpl, Is.Zero);
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(0x80)));
        Assert.That(g.Cpu.Seg[SegReg.SS].Selector, Is.Zero);
        Assert.That(g[Reg.RSP], Is.EqualTo(0x7F000UL - 32));
        Assert.That(Top(g, 0, 8), Is.EqualTo(TestGuest.CodeBase + 2));
        Assert.That(Top(g, 1, 8), Is.EqualTo((ulong)(UserCode64 | 3)));
        Assert.That(Top(g, 2, 8), Is.EqualTo(0x60000UL));
        Assert.That(Top(g, 3, 8), Is.EqualTo((ulong)(UserData | 3)));
        Assert.That(g.Run(2), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x60000UL));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 2));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Long64));
    }

    [Test]
    public void RealModeFarJmpAndSegmentLoad()
    {
        using var g = TestGuest.Real(a =>
        {
            a.mov(es, ax);
            a.jmp(0x2000, 0x0010);
        });
        g.Load([0xF4], 0x20010);
        g.Cpu.Gpr[Reg.RAX] = 0x1234;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Seg[SegReg.ES].Base, Is.EqualTo(0x12340UL));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x2000));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x11UL));
    }

    [Test]
    public void LldtThenLoadDataSegmentFromTheLdt()
    {
        using var g = Prot(a =>
        {
            a.lldt(ax);
            a.mov(ds, bx);
            a.sldt(ecx);
            a.hlt();
        }, [SystemDesc(0x6000, 0x17, 2)]);
        g.Mem.Write(0x6008, 8, Segment(0x4000, 0xFF, 0x92, 0x4)); // LDT entry 1
        g.Cpu.Gpr[Reg.RAX] = S1;
        g.Cpu.Gpr[Reg.RBX] = 0x08 | 4;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(-1));
        Assert.That(g.Cpu.Seg[Emulator.Core.Cpu.Cpu.LdtrIndex].Base, Is.EqualTo(0x6000UL));
        Assert.That(g.Cpu.Seg[SegReg.DS].Base, Is.EqualTo(0x4000UL));
        Assert.That(g[Reg.RCX], Is.EqualTo((ulong)S1));
        Assert.That(g.ReadPhys(0x6008 + 5, 1) & 1, Is.EqualTo(1UL), "accessed bit set in the LDT");
    }

    [Test]
    public void LdtSelectorWithNullLdtrIsGp()
    {
        using var g = Prot(a => a.mov(ds, bx));
        g.Cpu.Seg[Emulator.Core.Cpu.Cpu.LdtrIndex] = Emulator.Core.Cpu.Cpu.NullSegment(0);
        g.Cpu.Gpr[Reg.RBX] = 0x0C;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
        Assert.That(Top(g, 0), Is.EqualTo(0x0CUL));
    }

    [Test]
    public void IretqFrom64BitModeToCompatibilityModeAtRing3()
    {
        using var g = TestGuest.Long64(a => a.iretq());
        Install(g, StandardGdt(longMode: true), 0);
        ulong sp = TestGuest.StackTop - 40;
        ulong[] frame = [0x2000, UserCode32 | 3, Rflags.Reserved1 | Rflags.IF, 0x50000, UserData | 3];
        for (int i = 0; i < frame.Length; i++)
        {
            g.Mem.Write(sp + (ulong)(i * 8), 8, frame[i]);
        }

        g.Cpu.Gpr[Reg.RSP] = sp;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Mode, Is.EqualTo(CpuMode.Compat32));
        Assert.That(g.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x2000UL));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x50000UL));
        Assert.That(g.Cpu.FlagsBits & Rflags.IF, Is.Not.Zero);
        Assert.That(g.Cpu.Seg[SegReg.DS].Selector, Is.Zero, "DPL-0 DS nulled on the way out");
    }

    /// <summary>
    /// REX.W JMP FAR [mem] in 64-bit mode: AMD reads m16:32 from RAM; a pointer in emulated MMIO is read the
    /// way KVM's instruction emulator reads it, as m16:64 (docs/cpu.md).
    /// </summary>
    [TestCase(true, TestName = "RexWFarJumpThroughMmioReadsM16To64")]
    [TestCase(false, TestName = "RexWFarJumpThroughRamReadsM16To32")]
    public void RexWFarJump(bool mmio)
    {
        const ulong target = TestGuest.CodeBase + 0x100;
        using var g = TestGuest.Long64(a =>
        {
            a.jmp(__tword_ptr[rsi]);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        g.Load([0xF4], target);
        var dev = new Emulator.Core.Devices.PcTestDev();
        g.Mem.Mmio.Register(Emulator.Core.Devices.PcTestDev.MemoryBase, Emulator.Core.Devices.PcTestDev.MemorySize, dev.Memory);
        if (mmio)
        {
            dev.Memory.Write(0, 8, target);
            dev.Memory.Write(8, 2, 0x08);
            g.Cpu.Gpr[Reg.RSI] = Emulator.Core.Devices.PcTestDev.MemoryBase;
        }
        else
        {
            g.Mem.Write(TestGuest.DataBase, 8, target);
            g.Mem.Write(TestGuest.DataBase + 8, 2, 0x08);
            g.Cpu.Gpr[Reg.RSI] = TestGuest.DataBase;
        }

        Assert.That(g.Run(100), Is.EqualTo(RunExit.HaltedForever));
        if (mmio)
        {
            Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
            Assert.That(g.Cpu.Rip, Is.EqualTo(target + 1));
        }
        else
        {
            Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP), "selector read from bytes 4–5: null");
        }
    }
}
