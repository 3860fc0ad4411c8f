using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Iced.Intel;
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
}
