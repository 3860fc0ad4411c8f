using Emulator.Core.Loaders;
using Emulator.Svm.Run;
using Emulator.Tests.Core;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Run;

/// <summary>
/// The SMP scheduler without the APIC: application processors stay parked until INIT + Startup, vCPUs
/// run in fixed rounds, a PAUSE spin yields, and two runs agree cycle for cycle.
/// </summary>
public class SmpSchedulerTests
{
    private const ulong Flag = 0x5000;
    private const byte TrampolineVector = 0x08; // real-mode code at 0x8000

    private static BootOptions Flat64 => new() { Format = ImageFormat.Flat, LoadAddress = 0x100000, Mode = EntryMode.Long };

    /// <summary>BSP: spin with PAUSE until the AP stores a non-zero byte at <see cref="Flag"/>, then exit with it.</summary>
    private static byte[] WaitForFlagGuest() => TestGuest.Assemble(64, a =>
    {
        var spin = a.CreateLabel();
        a.Label(ref spin);
        a.pause();
        a.movzx(eax, __byte_ptr[Flag]);
        a.test(eax, eax);
        a.jz(spin);
        a.mov(dx, 0xF4);
        a.@out(dx, eax);
        a.hlt();
    }, 0x100000);

    /// <summary>AP trampoline (real mode at vector·0x1000): store 0x2A at <see cref="Flag"/> and halt.</summary>
    private static byte[] Trampoline() => TestGuest.Assemble(16, a =>
    {
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(__byte_ptr[Flag], 0x2A);
        var stop = a.CreateLabel();
        a.Label(ref stop);
        a.hlt();
        a.jmp(stop);
    }, 0);

    private static Machine NewMachine(int cpus) => new(new MachineOptions { MemorySize = 16 << 20, Cpus = cpus });

    [Test]
    public void ApplicationProcessorsStayParkedWithoutStartup()
    {
        using var m = NewMachine(2);
        m.Load(TestGuest.Assemble(64, a =>
        {
            a.mov(eax, 3);
            a.mov(dx, 0xF4);
            a.@out(dx, eax);
        }, 0x100000), Flat64);
        var r = m.Run(new RunLimits { MaxCycles = 10_000_000 });
        Assert.That(r.ExitStatus, Is.EqualTo(7));
        Assert.That(m.Cpus[1].WaitingForSipi, Is.True);
        Assert.That(m.Cpus[1].Instructions, Is.Zero);
        Assert.That(m.Cpus[1].IsBsp, Is.False);
        Assert.That(m.Cpus[1].ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseBsp, Is.Zero);
    }

    [Test]
    public void StartupRunsTheApAtTheVectorAndTheBspSeesItsStore()
    {
        using var m = NewMachine(2);
        m.Load(WaitForFlagGuest(), Flat64);
        Assert.That(m.Memory.TryLoad((ulong)TrampolineVector << 12, Trampoline()), Is.True);
        m.Cpus[1].StartUp(TrampolineVector);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit));
        Assert.That(r.ExitStatus, Is.EqualTo((0x2A << 1) | 1));
        Assert.That(m.Cpus[1].Halted, Is.True);
        Assert.That(m.Cpus[1].StartupsReceived, Is.EqualTo(1));
    }

    [Test]
    public void AStartupWhileRunningIsIgnored()
    {
        using var m = NewMachine(2);
        m.Cpus[1].StartUp(TrampolineVector);
        ulong rip = m.Cpus[1].Rip;
        m.Cpus[1].StartUp(0x20);
        Assert.That(m.Cpus[1].Rip, Is.EqualTo(rip));
        Assert.That(m.Cpus[1].Seg[Emulator.Core.Cpu.SegReg.CS].Selector, Is.EqualTo(TrampolineVector << 8));
    }

    [Test]
    public void AnEndlessPauseSpinYieldsAndAllIdleStopsTheRun()
    {
        // The AP halts with interrupts off; the BSP spins forever: the run ends on the cycle limit, and the
        // spinning BSP yielded (it retired far fewer instructions than a 4-instruction loop could in that time).
        using var m = NewMachine(2);
        m.Load(TestGuest.Assemble(64, a =>
        {
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.pause();
            a.jmp(spin);
        }, 0x100000), Flat64);
        var r = m.Run(new RunLimits { MaxCycles = 2_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.CycleLimit));
        Assert.That(m.Cpus[0].Instructions, Is.LessThan(2_000_000UL / 10));
    }

    [Test]
    public void EveryVcpuHaltedWithNothingPendingEndsTheRun()
    {
        using var m = NewMachine(3);
        m.Load(TestGuest.Assemble(64, a =>
        {
            a.cli();
            a.hlt();
        }, 0x100000), Flat64);
        var r = m.Run(new RunLimits { MaxCycles = 100_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.Halted));
        Assert.That(r.ExitStatus, Is.EqualTo(Machine.ExitNoProgress));
        Assert.That(m.Cpu.Cycles, Is.LessThan(1_000_000UL));
    }

    [Test]
    public void TwoRunsAgreeCycleForCycle()
    {
        (ulong, ulong, ulong, ulong) RunOnce()
        {
            using var m = NewMachine(2);
            m.Load(WaitForFlagGuest(), Flat64);
            m.Memory.TryLoad((ulong)TrampolineVector << 12, Trampoline());
            m.Cpus[1].StartUp(TrampolineVector);
            m.Run(new RunLimits { MaxCycles = 50_000_000 });
            return (m.Cpus[0].Cycles, m.Cpus[0].Instructions, m.Cpus[1].Cycles, m.Cpus[1].Instructions);
        }

        Assert.That(RunOnce(), Is.EqualTo(RunOnce()));
    }
}
