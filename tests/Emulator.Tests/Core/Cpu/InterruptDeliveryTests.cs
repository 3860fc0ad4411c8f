using Emulator.Core.Cpu;
using Emulator.Mmu.Fault;
using static Emulator.Tests.Core.CpuTests.SystemTables;
using static Iced.Intel.AssemblerRegisters;

// Not "...Core.Cpu": that namespace would hide the Cpu class from the tests' shared helpers.
namespace Emulator.Tests.Core.CpuTests;

/// <summary>Exception and interrupt delivery through the IDT/IVT (APM vol. 2 §8): frames, error codes, stacks, #DF, shutdown.</summary>
public class InterruptDeliveryTests
{
    private const int IntGate = 0xE, TrapGate = 0xF;

    /// <summary>A long-mode guest with the standard GDT/TSS, and handlers that HLT for the listed vectors.</summary>
    private static TestGuest Long(Action<Iced.Intel.Assembler> body, params int[] hltVectors)
    {
        var g = TestGuest.Long64(body);
        Install(g, StandardGdt(longMode: true), 256);
        foreach (int v in hltVectors)
        {
            SetIdt64(g, v, Gate64(Code64, Handler(v), IntGate, 0));
            SetHandler(g, 64, v, a => a.hlt());
        }

        return g;
    }

    private static ulong Frame(TestGuest g, int slot, int size = 8) => g.ReadPhys(g[Reg.RSP] + (ulong)(slot * size), size);

    [Test]
    public void UndefinedOpcodePushesNoErrorCodeAndPointsAtTheInstruction()
    {
        using var g = Long(a => a.ud2(), Vector.UD);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.UD) + 1));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop - 40));
        Assert.That(Frame(g, 0), Is.EqualTo(TestGuest.CodeBase));   // RIP of UD2
        Assert.That(Frame(g, 1), Is.EqualTo((ulong)Code64));         // CS
        Assert.That(Frame(g, 3), Is.EqualTo(TestGuest.StackTop));    // RSP
        Assert.That(Frame(g, 4), Is.EqualTo((ulong)BootStateData));  // SS
    }

    private const ushort BootStateData = 0x10;

    [Test]
    public void DivideErrorIsAFaultWithoutErrorCode()
    {
        using var g = Prot(a => a.div(ecx), Vector.DE);
        g.Cpu.Gpr[Reg.RCX] = 0;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.DE) + 1));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop - 12));
        Assert.That(Frame(g, 0, 4), Is.EqualTo(TestGuest.CodeBase), "EIP of DIV");
        Assert.That(Frame(g, 1, 4), Is.EqualTo((ulong)Code32));
    }

    [Test]
    public void PageFaultPushesErrorCodeAndSetsCr2()
    {
        // A supervisor write (INSB) to an address the identity map does not cover: not present, write.
        using var g = Long(a => a.insb(), Vector.PF);
        g.Cpu.Gpr[Reg.RDI] = 0x1_0000_0000;
        g.Cpu.Gpr[Reg.RDX] = 0x80;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.PF) + 1));
        Assert.That(Frame(g, 0), Is.EqualTo((ulong)PfErr.Write));
        Assert.That(Frame(g, 1), Is.EqualTo(TestGuest.CodeBase));
        Assert.That(g.Cpu.Cr2, Is.EqualTo(0x1_0000_0000UL));
        Assert.That(g[Reg.RDI], Is.EqualTo(0x1_0000_0000UL), "no partial state");
    }

    [Test]
    public void IntAndIretqRoundTripAtCpl0()
    {
        using var g = Long(a =>
        {
            a.@int(0x80);
            a.@int(0x81);
        }, 0x81);
        SetIdt64(g, 0x80, Gate64(Code64, Handler(0x80), IntGate, 0));
        SetHandler(g, 64, 0x80, a => a.iretq());
        g.Cpu.FlagsBits |= Rflags.CF;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(0x81) + 1));
        Assert.That(Frame(g, 0), Is.EqualTo(TestGuest.CodeBase + 4), "INT pushes the next RIP");
        Assert.That(Frame(g, 2) & 0xFFF, Is.EqualTo(Rflags.CF | Rflags.Reserved1), "RFLAGS survived IRETQ");
        Assert.That(Frame(g, 3), Is.EqualTo(TestGuest.StackTop), "IRETQ restored RSP");
    }

    [Test]
    public void InterruptFromRing3SwitchesToRsp0AndLoadsNullSs()
    {
        using var g = Long(a =>
        {
            a.@int(0x80);
            a.@int(0x81);
        });
        MakeUserAccessible(g);
        for (int v = 0x80; v <= 0x81; v++)
        {
            SetIdt64(g, v, Gate64(Code64, Handler(v), IntGate, 3));
        }

        SetHandler(g, 64, 0x80, a => a.iretq());
        SetHandler(g, 64, 0x81, a => a.hlt());
        Write64(g, TssBase + 4, 0x7F008); // RSP0, aligned down to 16 on delivery
        EnterRing3(g, UserCode64, UserData, 0x60000);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Cpl, Is.Zero);
        Assert.That(g.Cpu.Seg[SegReg.SS].Selector, Is.Zero);
        Assert.That(g[Reg.RSP], Is.EqualTo(0x7F000UL - 40));
        Assert.That(Frame(g, 0), Is.EqualTo(TestGuest.CodeBase + 4));
        Assert.That(Frame(g, 1), Is.EqualTo((ulong)(UserCode64 | 3)), "IRETQ went back to ring 3 before the second INT");
        Assert.That(Frame(g, 3), Is.EqualTo(0x60000UL));
        Assert.That(Frame(g, 4), Is.EqualTo((ulong)(UserData | 3)));
    }

    [Test]
    public void IstStackIsUsedEvenWithoutPrivilegeChange()
    {
        using var g = Long(a => a.@int(0x80));
        SetIdt64(g, 0x80, Gate64(Code64, Handler(0x80), TrapGate, 0, ist: 2));
        SetHandler(g, 64, 0x80, a => a.hlt());
        Write64(g, TssBase + 0x24 + 8, 0x6F000); // IST2
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x6F000UL - 40));
        Assert.That(Frame(g, 3), Is.EqualTo(TestGuest.StackTop));
    }

    [Test]
    public void SoftwareIntThroughLowerDplGateIsGeneralProtectionWithIdtErrorCode()
    {
        using var g = Long(a => a.@int(0x80), Vector.GP);
        MakeUserAccessible(g);
        SetIdt64(g, 0x80, Gate64(Code64, Handler(0x80), IntGate, 0));
        Write64(g, TssBase + 4, 0x7F000);
        EnterRing3(g, UserCode64, UserData, 0x60000);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.GP) + 1));
        Assert.That(Frame(g, 0), Is.EqualTo((ulong)((0x80 << 3) | 2)), "IDT bit set, EXT clear for INT n");
        Assert.That(Frame(g, 1), Is.EqualTo(TestGuest.CodeBase), "the fault points at the INT instruction");
        Assert.That(Frame(g, 2), Is.EqualTo((ulong)(UserCode64 | 3)));
    }

    [Test]
    public void NotPresentGateIsNpWithExtBitForAnException()
    {
        using var g = Long(a => a.ud2(), Vector.NP);
        SetIdt64(g, Vector.UD, Gate64(Code64, Handler(Vector.UD), IntGate, 0, present: false));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.NP) + 1));
        Assert.That(Frame(g, 0), Is.EqualTo((ulong)((Vector.UD << 3) | 2 | 1)));
    }

    [Test]
    public void ContributoryFaultWhileDeliveringGpBecomesDoubleFault()
    {
        // MOV DS with a selector beyond the GDT limit: #GP; the #GP gate is not present: #NP → #DF(0).
        using var g = Long(a => a.mov(ds, ax), Vector.DF);
        SetIdt64(g, Vector.GP, Gate64(Code64, Handler(Vector.GP), IntGate, 0, present: false));
        g.Cpu.Gpr[Reg.RAX] = 0x1230;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.DF) + 1));
        Assert.That(Frame(g, 0), Is.Zero, "#DF error code");
        Assert.That(Frame(g, 1), Is.EqualTo(TestGuest.CodeBase));
    }

    [Test]
    public void FaultWhileDeliveringDoubleFaultShutsDown()
    {
        using var g = Long(a => a.mov(ds, ax));
        g.Cpu.Gpr[Reg.RAX] = 0x1230;
        g.Cpu.Idtr.Limit = 0; // nothing is deliverable
        Assert.That(g.Run(), Is.EqualTo(RunExit.TripleFault));
        Assert.That(g.Cpu.Shutdown, Is.True);
    }

    [Test]
    public void BenignThenContributoryDeliversTheSecond()
    {
        // INT3 through a gate whose target CS is outside the GDT: #GP(selector, EXT=0 for software).
        using var g = Long(a => a.int3(), Vector.GP);
        SetIdt64(g, Vector.BP, Gate64(0x400, Handler(Vector.BP), IntGate, 3));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.GP) + 1));
        Assert.That(Frame(g, 0), Is.EqualTo(0x400UL));
    }

    // ---- 32-bit protected mode ----

    private static TestGuest Prot(Action<Iced.Intel.Assembler> body, params int[] hltVectors)
    {
        var g = TestGuest.Protected32(body);
        Install(g, StandardGdt(longMode: false), 256);
        foreach (int v in hltVectors)
        {
            SetIdt32(g, v, Gate(Code32, (uint)Handler(v), IntGate, 0));
            SetHandler(g, 32, v, a => a.hlt());
        }

        return g;
    }

    [Test]
    public void Protected32GpFromBadSelectorHasSelectorErrorCode()
    {
        using var g = Prot(a => a.mov(es, ax), Vector.GP);
        g.Cpu.Gpr[Reg.RAX] = 0x1237;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop - 16));
        Assert.That(Frame(g, 0, 4), Is.EqualTo(0x1234UL), "RPL dropped, TI kept");
        Assert.That(Frame(g, 1, 4), Is.EqualTo(TestGuest.CodeBase));
        Assert.That(Frame(g, 2, 4), Is.EqualTo((ulong)Code32));
    }

    [Test]
    public void Protected32Ring3InterruptUsesTssSs0Esp0AndIretdReturns()
    {
        using var g = Prot(a =>
        {
            a.@int(0x80);
            a.@int(0x81);
        });
        SetIdt32(g, 0x80, Gate(Code32, (uint)Handler(0x80), IntGate, 3));
        SetIdt32(g, 0x81, Gate(Code32, (uint)Handler(0x81), TrapGate, 3));
        SetHandler(g, 32, 0x80, a => a.iretd());
        SetHandler(g, 32, 0x81, a => a.hlt());
        g.Mem.Write(TssBase + 4, 4, 0x7F000);  // ESP0
        g.Mem.Write(TssBase + 8, 2, Data0);    // SS0
        EnterRing3(g, UserCode32, UserData, 0x60000);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Cpl, Is.Zero);
        Assert.That(g.Cpu.Seg[SegReg.SS].Selector, Is.EqualTo(Data0));
        Assert.That(g[Reg.RSP], Is.EqualTo(0x7F000UL - 20));
        Assert.That(Frame(g, 0, 4), Is.EqualTo(TestGuest.CodeBase + 4));
        Assert.That(Frame(g, 1, 4), Is.EqualTo((ulong)(UserCode32 | 3)));
        Assert.That(Frame(g, 3, 4), Is.EqualTo(0x60000UL));
        Assert.That(Frame(g, 4, 4), Is.EqualTo((ulong)(UserData | 3)));
    }

    [Test]
    public void Protected32InvalidTssStackSegmentIsTs()
    {
        using var g = Prot(a => a.@int(0x80), Vector.TS);
        SetIdt32(g, 0x80, Gate(Code32, (uint)Handler(0x80), IntGate, 3));
        g.Mem.Write(TssBase + 4, 4, 0x7F000);
        g.Mem.Write(TssBase + 8, 2, UserData); // DPL 3 stack for ring 0: invalid
        EnterRing3(g, UserCode32, UserData, 0x60000);
        // #TS is delivered at ring 0 too and needs the same broken stack: it escalates. Give #TS a stack
        // by fixing SS0 once the first fault is pending is not possible, so expect the #DF path to shut down.
        Assert.That(g.Run(), Is.EqualTo(RunExit.TripleFault));
    }

    [Test]
    public void SixteenBitGatePushesWordFrame()
    {
        using var g = Prot(a => a.@int(0x80));
        SetIdt32(g, 0x80, Gate(Code32, (uint)(Handler(0x80) & 0xFFFF), 0x6, 0));
        g.Load([0xF4], Handler(0x80) & 0xFFFF);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop - 6));
        Assert.That(Frame(g, 0, 2), Is.EqualTo((TestGuest.CodeBase + 2) & 0xFFFF));
        Assert.That(Frame(g, 1, 2), Is.EqualTo((ulong)Code32));
    }

    // ---- Real mode ----

    [Test]
    public void RealModeIntAndIretUseTheIvt()
    {
        using var g = TestGuest.Real(a =>
        {
            a.@int(0x21);
            a.hlt();
        });
        // IVT[0x21] = 2000:0010; the handler sets nothing and returns.
        g.Mem.Write(0x21 * 4, 2, 0x0010);
        g.Mem.Write((0x21 * 4) + 2, 2, 0x2000);
        g.Load([0xCF], 0x20010); // IRET
        g.Cpu.FlagsBits |= Rflags.IF;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x2000));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x10UL));
        Assert.That(g.Cpu.FlagsBits & Rflags.IF, Is.Zero);
        Assert.That(g[Reg.RSP], Is.EqualTo(0x8000UL - 6));
        Assert.That(g.ReadPhys(0x8000 - 6, 2), Is.EqualTo(2UL));       // IP after INT
        Assert.That(g.ReadPhys(0x8000 - 4, 2), Is.EqualTo(0x1000UL));  // CS
        Assert.That(g.ReadPhys(0x8000 - 2, 2) & Rflags.IF, Is.Not.Zero);
        Assert.That(g.Run(), Is.EqualTo(RunExit.Halted).Or.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Seg[SegReg.CS].Selector, Is.EqualTo((ushort)0x1000));
        Assert.That(g.Cpu.Rip, Is.EqualTo(3UL));
        Assert.That(g.Cpu.FlagsBits & Rflags.IF, Is.Not.Zero);
        Assert.That(g[Reg.RSP], Is.EqualTo(0x8000UL));
    }
}
