using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Iced.Intel;
using static Emulator.Tests.Core.CpuTests.SystemTables;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>A port device that records accesses and answers reads with a fixed pattern plus the offset.</summary>
internal sealed class RecordingPort : IPortDevice
{
    public readonly List<(ushort Offset, int Size, uint Value)> Writes = [];
    public readonly List<(ushort Offset, int Size)> Reads = [];
    public uint ReadValue = 0x11223344;
    public bool StopOnWrite;
    public Cpu? Cpu;

    public uint In(ushort offset, int size)
    {
        Reads.Add((offset, size));
        uint v = ReadValue + offset;
        return size == 4 ? v : v & ((1u << (size * 8)) - 1);
    }

    public void Out(ushort offset, int size, uint value)
    {
        Writes.Add((offset, size, value));
        if (StopOnWrite && Cpu != null)
        {
            Cpu.StopRequested = true;
        }
    }
}

public class SystemTests
{
    private static readonly Dictionary<string, Action<Assembler>> s_io = new()
    {
        ["in al,imm"] = a => a.@in(al, 0x81),
        ["in ax,imm"] = a => a.@in(ax, 0x81),
        ["in eax,imm"] = a => a.@in(eax, 0x81),
        ["in al,dx"] = a => a.@in(al, dx),
        ["in ax,dx"] = a => a.@in(ax, dx),
        ["in eax,dx"] = a => a.@in(eax, dx),
        ["out imm,al"] = a => a.@out(0x81, al),
        ["out imm,ax"] = a => a.@out(0x81, ax),
        ["out imm,eax"] = a => a.@out(0x81, eax),
        ["out dx,al"] = a => a.@out(dx, al),
        ["out dx,ax"] = a => a.@out(dx, ax),
        ["out dx,eax"] = a => a.@out(dx, eax),
    };

    [TestCase("in al,imm", 1, 0xFFFFFFFF_FFFFFF45UL)]
    [TestCase("in ax,imm", 2, 0xFFFFFFFF_FFFF3345UL)]
    [TestCase("in eax,imm", 4, 0x11223345UL)]
    [TestCase("in al,dx", 1, 0xFFFFFFFF_FFFFFF45UL)]
    [TestCase("in ax,dx", 2, 0xFFFFFFFF_FFFF3345UL)]
    [TestCase("in eax,dx", 4, 0x11223345UL)]
    public void InReadsTheDeviceAtItsWidth(string form, int size, ulong rax)
    {
        var dev = new RecordingPort();
        using var g = TestGuest.Long64(a =>
        {
            s_io[form](a);
            a.hlt();
        });
        g.Cpu.Phys.Io.Register(0x80, 4, dev);
        g.Cpu.Gpr[Reg.RAX] = ulong.MaxValue;
        g.Cpu.Gpr[Reg.RDX] = 0xFFFF_0081;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(dev.Reads, Is.EqualTo(new[] { ((ushort)1, size) }));
        Assert.That(g[Reg.RAX], Is.EqualTo(rax));
    }

    [TestCase("out imm,al", 1, 0xBEu)]
    [TestCase("out imm,ax", 2, 0xBABEu)]
    [TestCase("out imm,eax", 4, 0xCAFEBABEu)]
    [TestCase("out dx,al", 1, 0xBEu)]
    [TestCase("out dx,ax", 2, 0xBABEu)]
    [TestCase("out dx,eax", 4, 0xCAFEBABEu)]
    public void OutWritesTheDeviceAtItsWidth(string form, int size, uint value)
    {
        var dev = new RecordingPort();
        using var g = TestGuest.Protected32(a =>
        {
            s_io[form](a);
            a.hlt();
        });
        g.Cpu.Phys.Io.Register(0x80, 4, dev);
        g.Cpu.Gpr[Reg.RAX] = 0xCAFEBABE;
        g.Cpu.Gpr[Reg.RDX] = 0x81;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(dev.Writes, Is.EqualTo(new[] { ((ushort)1, size, value) }));
    }

    [Test]
    public void OutToAStoppingDeviceEndsTheRunAtTheNextInstruction()
    {
        var dev = new RecordingPort { StopOnWrite = true };
        using var g = TestGuest.Real(a =>
        {
            a.@out(0x80, al);
            a.nop();
            a.nop();
            a.hlt();
        });
        dev.Cpu = g.Cpu;
        g.Cpu.Phys.Io.Register(0x80, 1, dev);
        Assert.That(g.Run(), Is.EqualTo(RunExit.Stopped));
        Assert.That(g.Cpu.Instructions, Is.EqualTo(1));
        Assert.That(g.Cpu.Rip, Is.EqualTo(2UL));
    }

    [Test]
    public void RepInsbFillsMemoryAndRepOutsbSendsIt()
    {
        var dev = new RecordingPort();
        using var g = TestGuest.Long64(a =>
        {
            a.rep.insb();
            a.hlt();
        });
        g.Cpu.Phys.Io.Register(0x80, 1, dev);
        g.Cpu.Gpr[Reg.RDX] = 0x80;
        g.Cpu.Gpr[Reg.RCX] = 200; // more than one chunk
        g.Cpu.Gpr[Reg.RDI] = TestGuest.DataBase;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RCX], Is.Zero);
        Assert.That(g[Reg.RDI], Is.EqualTo(TestGuest.DataBase + 200));
        Assert.That(dev.Reads, Has.Count.EqualTo(200));
        Assert.That(g.ReadPhys(TestGuest.DataBase + 199, 1), Is.EqualTo(0x44UL));
        Assert.That(g.ReadPhys(TestGuest.DataBase + 200, 1), Is.Zero);
    }

    [Test]
    public void OutswWithDirectionFlagWalksDown()
    {
        var dev = new RecordingPort();
        using var g = TestGuest.Protected32(a =>
        {
            a.rep.outsw();
            a.hlt();
        });
        g.Cpu.Phys.Io.Register(0x80, 2, dev);
        g.Mem.TryLoad(TestGuest.DataBase, new byte[] { 1, 2, 3, 4, 5, 6 });
        g.Cpu.Gpr[Reg.RDX] = 0x80;
        g.Cpu.Gpr[Reg.RCX] = 3;
        g.Cpu.Gpr[Reg.RSI] = TestGuest.DataBase + 4;
        g.Cpu.FlagsBits |= Rflags.DF;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(dev.Writes.Select(w => w.Value), Is.EqualTo(new uint[] { 0x0605, 0x0403, 0x0201 }));
        Assert.That(g[Reg.RSI], Is.EqualTo(TestGuest.DataBase - 2));
    }

    [Test]
    public void CliAndStiChangeIfAtCpl0()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.sti();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.FlagsBits & Rflags.IF, Is.Not.Zero);
    }

    // ---- Privilege checks: I/O bitmap, IOPL ----

    /// <summary>32-bit protected guest at CPL 3 with a TSS whose I/O bitmap starts at 0x68.</summary>
    private static TestGuest Ring3(Action<Assembler> body, uint tssLimit = 0x68 + 0x20)
    {
        var g = TestGuest.Protected32(body);
        Install(g, StandardGdt(longMode: false, tssLimit), 256, tssLimit);
        for (int v = 0; v < 32; v++)
        {
            SetIdt32(g, v, Gate(Code32, (uint)Handler(v), 0xE, 0));
            SetHandler(g, 32, v, a => a.hlt());
        }

        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, Data0);
        g.Mem.Write(TssBase + 0x66, 2, 0x68);
        EnterRing3(g, UserCode32, UserData, 0x60000);
        return g;
    }

    private static int DeliveredVector(TestGuest g)
    {
        ulong rip = g.Cpu.Rip - 1;
        return rip >= HandlerBase && rip < HandlerBase + (256 * 0x40) ? (int)((rip - HandlerBase) / 0x40) : -1;
    }

    // Bitmap byte 0x10 covers ports 0x80–0x87: 0x02 denies 0x81 only.
    [TestCase(0x80, 1, -1)]
    [TestCase(0x81, 1, Vector.GP)]
    [TestCase(0x80, 2, Vector.GP)]
    [TestCase(0x82, 4, -1)]
    [TestCase(0x7E, 4, Vector.GP)] // spans into the denied port 0x81
    [TestCase(0x7FF, 1, Vector.GP)] // bitmap byte 0xFF lies beyond the TSS limit
    public void PortAccessAtCpl3FollowsTheIoBitmap(int port, int size, int vector)
    {
        var dev = new RecordingPort();
        using var g = Ring3(a =>
        {
            if (size == 1) a.@in(al, dx);
            else if (size == 2) a.@in(ax, dx);
            else a.@in(eax, dx);
            a.int3();
        });
        SetIdt32(g, Vector.BP, Gate(Code32, (uint)Handler(Vector.BP), 0xE, 3));
        g.Mem.Write(TssBase + 0x68 + 0x10, 1, 0x02);
        g.Cpu.Phys.Io.Register(0x80, 8, dev);
        g.Cpu.Gpr[Reg.RDX] = (ulong)port;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(vector < 0 ? Vector.BP : vector));
        Assert.That(dev.Reads, Has.Count.EqualTo(vector < 0 ? 1 : 0));
    }

    [Test]
    public void IoplAtLeastCplSkipsTheBitmap()
    {
        using var g = Ring3(a =>
        {
            a.@out(dx, al);
            a.int3();
        });
        var dev = new RecordingPort();
        SetIdt32(g, Vector.BP, Gate(Code32, (uint)Handler(Vector.BP), 0xE, 3));
        g.Mem.Write(TssBase + 0x68 + 0x10, 1, 0xFF);
        g.Cpu.Phys.Io.Register(0x80, 1, dev);
        g.Cpu.Gpr[Reg.RDX] = 0x80;
        g.Cpu.FlagsBits |= Rflags.IOPL;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.BP));
        Assert.That(dev.Writes, Has.Count.EqualTo(1));
    }

    [Test]
    public void CliAtCpl3WithIopl0IsGp()
    {
        using var g = Ring3(a => a.cli());
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void CliAtCpl3WithPviClearsVif()
    {
        using var g = Ring3(a =>
        {
            a.cli();
            a.int3();
        });
        SetIdt32(g, Vector.BP, Gate(Code32, (uint)Handler(Vector.BP), 0xE, 3));
        g.Cpu.Cr4 |= Cr4Bits.PVI;
        g.Cpu.FlagsBits |= Rflags.VIF | Rflags.IF;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.BP));
        Assert.That(g.ReadPhys(g[Reg.RSP] + 8, 4) & (Rflags.VIF | Rflags.IF), Is.EqualTo(Rflags.IF), "VIF cleared, IF kept");
    }

    [Test]
    public void StiSetsAnInterruptShadowOnlyWhenIfWasClear()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.sti();
            a.sti();
            a.hlt();
        });
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.InterruptShadow, Is.True);
        Assert.That(g.Run(2), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.InterruptShadow, Is.False);
    }

    // ---- Descriptor tables ----

    [Test]
    public void LgdtAndSgdtRoundTripIn64BitMode()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.lgdt(__[rax]);
            a.sidt(__[rbx]);
            a.sgdt(__[rcx]);
            a.hlt();
        });
        g.Mem.Write(TestGuest.DataBase, 2, 0x1FF);
        g.Mem.Write(TestGuest.DataBase + 2, 8, 0xFFFF_8000_1234_5000);
        g.Cpu.Gpr[Reg.RAX] = TestGuest.DataBase;
        g.Cpu.Gpr[Reg.RBX] = TestGuest.DataBase + 0x20;
        g.Cpu.Gpr[Reg.RCX] = TestGuest.DataBase + 0x40;
        g.Cpu.Idtr = new TableRegister { Base = 0xABCD000, Limit = 0xFFF };
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Gdtr.Base, Is.EqualTo(0xFFFF_8000_1234_5000UL));
        Assert.That(g.Cpu.Gdtr.Limit, Is.EqualTo((ushort)0x1FF));
        Assert.That(g.ReadPhys(TestGuest.DataBase + 0x40, 2), Is.EqualTo(0x1FFUL));
        Assert.That(g.ReadPhys(TestGuest.DataBase + 0x42, 8), Is.EqualTo(0xFFFF_8000_1234_5000UL));
        Assert.That(g.ReadPhys(TestGuest.DataBase + 0x20, 2), Is.EqualTo(0xFFFUL));
        Assert.That(g.ReadPhys(TestGuest.DataBase + 0x22, 8), Is.EqualTo(0xABCD000UL));
    }

    [Test]
    public void SixteenBitLgdtLoadsA24BitBase()
    {
        using var g = TestGuest.Real(a =>
        {
            a.lgdt(__[bx]);
            a.hlt();
        });
        g.Mem.Write(0x500, 2, 0x27);
        g.Mem.Write(0x502, 4, 0xAA123456);
        g.Cpu.Gpr[Reg.RBX] = 0x500;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Gdtr.Base, Is.EqualTo(0x123456UL));
        Assert.That(g.Cpu.Gdtr.Limit, Is.EqualTo((ushort)0x27));
    }

    [Test]
    public void LtrLoadsA16ByteTssInLongModeAndMarksItBusy()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.ltr(ax);
            a.str(ebx);
            a.hlt();
        });
        var gdt = StandardGdt(longMode: true);
        gdt[8] = 0x12; // upper base 0x12_0000_0000 … bits 63:32 of the base
        Install(g, gdt, 0);
        g.Cpu.Seg[Emulator.Core.Cpu.Cpu.TrIndex] = default;
        g.Cpu.Gpr[Reg.RAX] = Tss;
        g.Cpu.Gpr[Reg.RBX] = ulong.MaxValue;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        var tr = g.Cpu.Seg[Emulator.Core.Cpu.Cpu.TrIndex];
        Assert.That(tr.Base, Is.EqualTo(0x12_0000_0000UL | TssBase));
        Assert.That(tr.Type, Is.EqualTo(0xB), "busy");
        Assert.That((g.ReadPhys(GdtBase + Tss + 5, 1) & 0xF), Is.EqualTo(0xBUL), "busy bit written back");
        Assert.That(g[Reg.RBX], Is.EqualTo((ulong)Tss));
    }

    [TestCase(0x8000UL, TestName = "LtrNonCanonicalBase")]
    [TestCase(0xFFAA_AAAAUL, TestName = "LtrNonCanonical57BitBase")]
    public void LtrWithANonCanonicalBaseIsGpSelector(ulong upperBase)
    {
        using var g = TestGuest.Long64(a => a.hlt());
        var gdt = StandardGdt(longMode: true);
        gdt[8] = upperBase; // bits 63:32 of the TSS base
        Install(g, gdt, 0);
        g.Cpu.Seg[Emulator.Core.Cpu.Cpu.TrIndex] = default;
        g.Cpu.Gpr[Reg.RAX] = Tss;
        Assert.That(VectorCatcher.Step(g.Cpu, a => a.ltr(ax)), Is.EqualTo(ExecStatus.Fault));
        Assert.That(g.Cpu.PendingVector, Is.EqualTo(Vector.GP));
        Assert.That(g.Cpu.PendingError, Is.EqualTo(Tss));
        Assert.That(g.ReadPhys(GdtBase + Tss + 5, 1) & 0xF, Is.EqualTo(0x9UL), "not marked busy");
    }

    [Test]
    public void LtrAccepts57BitCanonicalBaseOnlyWithLa57()
    {
        using var g = TestGuest.Long64(a => a.hlt());
        var gdt = StandardGdt(longMode: true);
        gdt[8] = 0x00AA_0000; // base 0x00AA_0000_xxxx_xxxx: canonical with 57 bits, not with 48
        Install(g, gdt, 0);
        g.Cpu.Gpr[Reg.RAX] = Tss;
        Assert.That(VectorCatcher.Step(g.Cpu, a => a.ltr(ax)), Is.EqualTo(ExecStatus.Fault));
        g.Cpu.Features[CpuFeature.La57] = true; // reported: bases are checked at 57 bits even with 4-level paging
        Assert.That(VectorCatcher.Step(g.Cpu, a => a.ltr(ax)), Is.EqualTo(ExecStatus.Continue));
        Assert.That(g.Cpu.Seg[Emulator.Core.Cpu.Cpu.TrIndex].Base >> 32, Is.EqualTo(0x00AA_0000UL));
    }

    [Test]
    public void LtrOfABusyTssIsGp()
    {
        using var g = TestGuest.Protected32(a => a.ltr(ax));
        var gdt = StandardGdt(longMode: false);
        gdt[7] = SystemDesc(TssBase, 0x67, 0xB);
        Install(g, gdt, 256);
        for (int v = 0; v < 32; v++)
        {
            SetIdt32(g, v, Gate(Code32, (uint)Handler(v), 0xE, 0));
            SetHandler(g, 32, v, a => a.hlt());
        }

        g.Cpu.Gpr[Reg.RAX] = Tss;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(DeliveredVector(g), Is.EqualTo(Vector.GP));
        Assert.That(g.ReadPhys(g[Reg.RSP], 4), Is.EqualTo((ulong)Tss));
    }

    // ---- LAR / LSL / VERR / VERW ----

    private static readonly ulong[] s_inspect =
    [
        DataDesc(3),                                  // 0x58: data DPL 3, 4 GiB
        Segment(0x1000, 0x1234, 0x92, 0x4),           // 0x60: data DPL 0, byte granular
        Segment(0, 0xF, 0x98, 0xC),                   // 0x68: execute-only code DPL 0, page granular
        Segment(0, 0xFFFF, 0xFE, 0x4),                // 0x70: conforming readable code DPL 3
        Gate(Code32, 0x1000, 0xC, 3),                 // 0x78: call gate
        Segment(0x1000, 0xFF, 0x82, 0x0),             // 0x80: LDT
        Segment(0x1000, 0xFF, 0x90, 0x4) & ~(1UL << 47), // 0x88: not present read-only data
        Gate(Code32, 0x1000, 0xE, 0),                 // 0x90: interrupt gate (not LAR-visible)
    ];

    private static TestGuest Inspect(Action<Assembler> body, int cpl)
    {
        var g = TestGuest.Protected32(body);
        var gdt = StandardGdt(longMode: false);
        Array.Resize(ref gdt, 11 + s_inspect.Length);
        s_inspect.CopyTo(gdt, 11);
        Install(g, gdt, 0);
        if (cpl == 3)
        {
            EnterRing3(g, UserCode32, UserData, 0x60000);
        }

        return g;
    }

    // selector, CPL → ZF, access-rights dword (LAR), limit (LSL)
    [TestCase(0x58, 0, true, 0x00CFF200u, 0xFFFFFFFFu)]
    [TestCase(0x60, 0, true, 0x00409200u, 0x1234u)]
    [TestCase(0x63, 0, false, 0u, 0u)] // RPL 3 > DPL 0
    [TestCase(0x60, 3, false, 0u, 0u)] // CPL 3 > DPL 0
    [TestCase(0x68, 0, true, 0x00C09800u, 0xFFFFu)]
    [TestCase(0x70, 0, true, 0x0040FE00u, 0xFFFFu)]
    [TestCase(0x78, 0, true, 0x0000EC00u, 0u)] // call gate: LAR yes, LSL no
    [TestCase(0x80, 0, true, 0x00008200u, 0xFFu)]
    [TestCase(0x88, 0, true, 0x00401000u, 0xFFu)] // not present still reports
    [TestCase(0x90, 0, false, 0u, 0u)] // interrupt gate: neither
    [TestCase(0x00, 0, false, 0u, 0u)] // null
    [TestCase(0x400, 0, false, 0u, 0u)] // beyond the GDT limit
    public void LarAndLslReportDescriptorsVisibleAtCpl(int sel, int cpl, bool visible, uint rights, uint limit)
    {
        using var g = Inspect(a =>
        {
            a.lar(eax, ebx);
            a.db(0x90); // marker NOP
        }, cpl);
        g.Cpu.Gpr[Reg.RBX] = (ulong)sel;
        g.Cpu.Gpr[Reg.RAX] = 0xDEAD;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.GetZF(), Is.EqualTo(visible));
        Assert.That(g[Reg.RAX], Is.EqualTo(visible ? rights : 0xDEADUL));

        using var h = Inspect(a =>
        {
            a.lsl(eax, ebx);
            a.nop();
        }, cpl);
        h.Cpu.Gpr[Reg.RBX] = (ulong)sel;
        h.Cpu.Gpr[Reg.RAX] = 0xDEAD;
        Assert.That(h.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        bool lslVisible = visible && sel != 0x78;
        Assert.That(h.Cpu.GetZF(), Is.EqualTo(lslVisible));
        Assert.That(h[Reg.RAX], Is.EqualTo(lslVisible ? limit : 0xDEADUL));
    }

    [TestCase(0x58, 3, true, true)]
    [TestCase(0x60, 0, true, true)]
    [TestCase(0x60, 3, false, false)]
    [TestCase(0x68, 0, false, false)] // execute-only code
    [TestCase(0x70, 3, true, false)]  // conforming readable code: readable at any CPL, never writable
    [TestCase(0x88, 0, true, false)]  // read-only data (presence is not checked)
    [TestCase(0x78, 0, false, false)] // gate
    [TestCase(0x00, 0, false, false)]
    public void VerrAndVerw(int sel, int cpl, bool readable, bool writable)
    {
        using var g = Inspect(a =>
        {
            a.verr(bx);
            a.nop();
        }, cpl);
        g.Cpu.Gpr[Reg.RBX] = (ulong)sel;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.GetZF(), Is.EqualTo(readable));

        using var h = Inspect(a =>
        {
            a.verw(bx);
            a.nop();
        }, cpl);
        h.Cpu.Gpr[Reg.RBX] = (ulong)sel;
        Assert.That(h.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(h.Cpu.GetZF(), Is.EqualTo(writable));
    }

    [TestCase(0x10, 0x23, 0x13, true)]
    [TestCase(0x13, 0x20, 0x13, false)]
    public void ArplRaisesTheRpl(int dst, int src, int result, bool zf)
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.arpl(ax, bx);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = (ulong)dst;
        g.Cpu.Gpr[Reg.RBX] = (ulong)src;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo((ulong)result));
        Assert.That(g.Cpu.GetZF(), Is.EqualTo(zf));
    }
}
