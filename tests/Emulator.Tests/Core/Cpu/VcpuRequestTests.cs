using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Emulator.Mmu.Memory;
using static Emulator.Tests.Core.CpuTests.SystemTables;
using static Iced.Intel.AssemblerRegisters;
using CpuModel = Emulator.Core.Cpu.Cpu;

namespace Emulator.Tests.Core.CpuTests;

/// <summary>
/// The request word (<see cref="CpuModel.Requests"/>, Cpu.Requests.cs): the fast path chains blocks while it is
/// zero, so every producer must set its bit. Each test raises its event while the vCPU is inside a run (or
/// after the loop has already looked and found nothing), so a producer that forgets its bit leaves the event
/// unseen and the test fails.
/// </summary>
public class VcpuRequestTests
{
    private const int IntGate = 0xE;

    /// <summary>PIC IRQ 1 after the firmware hand-off programming (master vector base 0x08, IRQ 1 unmasked).</summary>
    private const int KeyboardVector = 0x09;

    /// <summary>A long-mode guest with the standard GDT/TSS and handlers that HLT for the listed vectors.</summary>
    private static TestGuest Long(Action<Iced.Intel.Assembler> body, params int[] hltVectors)
    {
        var g = TestGuest.Long64(body);
        Install(g, StandardGdt(longMode: true), 256);
        foreach (int v in hltVectors)
        {
            Handle(g, v, a => a.hlt());
        }

        return g;
    }

    private static void Handle(TestGuest g, int vector, Action<Iced.Intel.Assembler> body)
    {
        SetIdt64(g, vector, Gate64(Code64, Handler(vector), IntGate, 0));
        SetHandler(g, 64, vector, body);
    }

    /// <summary>An endless loop with interrupts enabled: RCX counts its iterations.</summary>
    private static void SpinWithInterrupts(Iced.Intel.Assembler a)
    {
        var loop = a.CreateLabel();
        a.sti();
        a.Label(ref loop);
        a.inc(rcx);
        a.jmp(loop);
    }

    [Test]
    public void ADeviceInterruptRaisedFromATimerEventIsTakenAtTheNextBlockBoundary()
    {
        using var g = Long(SpinWithInterrupts, KeyboardVector);
        var platform = new PcPlatform(g.Mem, [g.Cpu]);
        ulong raisedAt = 0;
        g.Cpu.NextEventCycle = g.Cpu.Cycles + 50_000;
        g.Cpu.OnTimerEvent = c =>
        {
            c.NextEventCycle = ulong.MaxValue;
            raisedAt = c.Instructions;
            platform.Isa.SetIrq(1, true);
        };

        Assert.That(g.Run(1_000_000), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(raisedAt, Is.Not.Zero);
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(KeyboardVector) + 1));
        Assert.That(g.Cpu.Instructions - raisedAt, Is.EqualTo(1), "delivered before the next block: only the handler's HLT ran");
    }

    [Test]
    public void AnIpiFromAnotherVcpuIsTakenWhenTheTargetRunsAgain()
    {
        using var g = Long(SpinWithInterrupts, 0x40);
        var cpu1 = new CpuModel(g.Mem) { IsBsp = false };
        cpu1.ApicBase &= ~CpuModel.ApicBaseBsp;
        var platform = new PcPlatform(g.Mem, [g.Cpu, cpu1]);
        platform.Apics[0].WriteMmio(0xF0, 4, 0x1FF); // SVR: software-enabled

        // vCPU 1 writes its ICR: a fixed IPI, vector 0x40, to APIC ID 0.
        const ulong cpu1Code = TestGuest.CodeBase + 0x1000;
        g.Load(TestGuest.Assemble(64, a =>
        {
            a.mov(rsi, 0xFEE00000);
            a.mov(__dword_ptr[rsi + 0x310], 0);
            a.mov(__dword_ptr[rsi + 0x300], 0x40);
            a.hlt();
        }, cpu1Code), cpu1Code);
        Emulator.Core.Loaders.BootState.EnterLong64(cpu1, cpu1Code, TestGuest.StackTop - 0x1000);

        // vCPU 0 runs first and finds nothing pending: its loop has dropped the interrupt request.
        Assert.That(g.Cpu.Run(100), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(cpu1.Run(100), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(platform.Apics[0].HighestRequested, Is.EqualTo(0x40));

        ulong before = g.Cpu.Instructions;
        Assert.That(g.Cpu.Run(before + 100), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(0x40) + 1));
        Assert.That(g.Cpu.Instructions - before, Is.EqualTo(1), "taken before any instruction of the loop");
    }

    [Test]
    public void StiWithAPendingInterruptDeliversAfterTheShadowInstruction()
    {
        using var g = Long(
            a =>
            {
                a.nop();
                a.sti();
                a.mov(ebx, 1);
                a.mov(ecx, 1);
                a.hlt();
            },
            KeyboardVector);
        var platform = new PcPlatform(g.Mem, [g.Cpu]);
        platform.Isa.SetIrq(1, true); // pending while IF = 0: the loop parks the request

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(KeyboardVector) + 1));
        Assert.That(g[Reg.RBX], Is.EqualTo(1UL), "the instruction in STI's shadow ran");
        Assert.That(g[Reg.RCX], Is.Zero, "the interrupt came right after it");
    }

    [Test]
    public void PopfSettingIfDeliversAPendingInterruptAtOnce()
    {
        using var g = Long(
            a =>
            {
                a.nop();
                a.pushfq();
                a.or(__qword_ptr[rsp], 0x200);
                a.popfq();
                a.mov(ebx, 1);
                a.hlt();
            },
            KeyboardVector);
        var platform = new PcPlatform(g.Mem, [g.Cpu]);
        platform.Isa.SetIrq(1, true);

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(KeyboardVector) + 1));
        Assert.That(g[Reg.RBX], Is.Zero, "POPF has no shadow");
    }

    [Test]
    public void IretSettingIfDeliversAPendingInterruptAtOnce()
    {
        using var g = Long(
            a =>
            {
                var target = a.CreateLabel();
                a.mov(rax, rsp);
                a.push(Data0);
                a.push(rax);
                a.pushfq();
                a.or(__qword_ptr[rsp], 0x200);
                a.push(Code64);
                a.lea(rax, __[target]);
                a.push(rax);
                a.iretq();
                a.Label(ref target);
                a.mov(ebx, 1);
                a.hlt();
            },
            KeyboardVector);
        var platform = new PcPlatform(g.Mem, [g.Cpu]);
        platform.Isa.SetIrq(1, true);

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(KeyboardVector) + 1));
        Assert.That(g[Reg.RBX], Is.Zero);
    }

    [Test]
    public void LoweringTheTaskPriorityWithMovCr8DeliversABlockedVector()
    {
        using var g = Long(
            a =>
            {
                var loop = a.CreateLabel();
                a.sti();
                a.nop();
                a.xor(eax, eax);
                a.mov(cr8, rax);
                a.Label(ref loop);
                a.inc(rcx);
                a.jmp(loop);
            },
            0x40);
        var platform = new PcPlatform(g.Mem, [g.Cpu]);
        var apic = platform.Apics[0];
        apic.WriteMmio(0xF0, 4, 0x1FF); // SVR: software-enabled
        g.Cpu.Tpr = 0xF0;
        apic.WriteMmio(0x300, 4, 0x40 | (1u << 18)); // ICR: fixed self-IPI, vector 0x40, held back by the TPR

        Assert.That(g.Run(10_000), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(0x40) + 1));
        Assert.That(g[Reg.RCX], Is.LessThanOrEqualTo(1UL), "taken at the block boundary after MOV CR8");
    }

    [Test]
    public void AnNmiLatchedWhileBlockedIsTakenRightAfterIret()
    {
        using var g = Long(a =>
        {
            var self = a.CreateLabel();
            a.Label(ref self);
            a.inc(rcx);
            a.jmp(self);
        });
        // The NMI handler counts its entries in R8; the first one spins long enough for the second NMI to be
        // latched (blocked), then returns; the second one stops.
        Handle(g, Vector.NMI, a =>
        {
            var spin = a.CreateLabel();
            var done = a.CreateLabel();
            a.inc(r8);
            a.cmp(r8, 2);
            a.je(done);
            a.Label(ref spin);
            a.inc(r9);
            a.cmp(r9, 2000);
            a.jb(spin);
            a.iretq();
            a.Label(ref done);
            a.hlt();
        });
        g.Cpu.RaiseNmi();
        g.Cpu.NextEventCycle = g.Cpu.Cycles + 2_000;
        g.Cpu.OnTimerEvent = c =>
        {
            c.NextEventCycle = ulong.MaxValue;
            c.RaiseNmi();
        };

        Assert.That(g.Run(100_000), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.R8], Is.EqualTo(2UL));
        Assert.That(g[Reg.R9], Is.EqualTo(2000UL), "the second NMI waited for the first handler's IRET");
        Assert.That(g[Reg.RCX], Is.Zero, "and was taken before the interrupted loop ran again");
    }

    /// <summary>A port whose write moves the vCPU's next timer deadline, without a kick.</summary>
    private sealed class DeadlinePort(CpuModel cpu) : IPortDevice
    {
        public uint In(ushort offset, int size) => 0;

        public void Out(ushort offset, int size, uint value) => cpu.NextEventCycle = cpu.Cycles + value;
    }

    [Test]
    public void AnEarlierTimerDeadlineEndsTheChainOfBlocks()
    {
        using var g = Long(a =>
        {
            var loop = a.CreateLabel();
            a.mov(eax, 1);
            a.mov(edx, 0x510);
            a.@out(dx, eax);
            a.Label(ref loop);
            a.inc(rcx);
            a.jmp(loop);
        });
        g.Mem.Io.Register(0x510, 4, new DeadlinePort(g.Cpu));
        ulong firedAt = ulong.MaxValue;
        g.Cpu.OnTimerEvent = c =>
        {
            c.NextEventCycle = ulong.MaxValue;
            firedAt = c.Gpr[Reg.RCX];
        };

        Assert.That(g.Run(100_000), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(firedAt, Is.LessThanOrEqualTo(1UL), "the event ran at the first block boundary past its deadline");
    }

    [Test]
    public void ATdpZapDuringARunFlushesTheSoftwareTlb()
    {
        using var g = Long(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.mov(rax, __qword_ptr[0x300000]);
            a.inc(rcx);
            a.jmp(loop);
        });
        var mmu = g.Mem.Mmu!;
        ulong faultsAtZap = 0;
        g.Cpu.NextEventCycle = g.Cpu.Cycles + 50_000;
        g.Cpu.OnTimerEvent = c =>
        {
            c.NextEventCycle = ulong.MaxValue;
            faultsAtZap = mmu.Stats.Faults;
            // The whole 2 MiB around the data page: whatever level the TDP MMU mapped it at goes.
            mmu.Tdp.ZapRange(new Gfn(0x200), new Gfn(0x400));
        };

        Assert.That(g.Run(100_000), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(faultsAtZap, Is.Not.Zero);
        Assert.That(mmu.Stats.Faults, Is.GreaterThan(faultsAtZap), "the next access missed the flushed TLB and faulted the page back in");
    }
}
