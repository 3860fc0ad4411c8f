using Emulator.Core.Devices.Apic;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// Single-vCPU guests run through <see cref="Machine"/>: the APIC timer in its three modes, TPR blocking, self
/// IPIs (xAPIC ICR shorthand and the x2APIC SELF_IPI MSR) and an NMI sent to self through the ICR.
/// </summary>
public sealed class ApicGuestTests
{
    private MemoryStream _console = null!;

    // Data layout (offsets from ApicGuest.Data).
    private const int Count = 0x08, Start = 0x10, Stamps = 0x100, Before = 0x20, After = 0x28, IrrSeen = 0x30, MsrAfter = 0x38;

    [SetUp]
    public void SetUp() => _console = new MemoryStream();

    [TearDown]
    public void TearDown() => _console.Dispose();

    private static ulong Q(Machine m, int offset) => m.Memory.Read(Data + (ulong)offset, 8);

    /// <summary>
    /// The common frame: IDT gates, the xAPIC software-enabled (RBX = APIC base), then <paramref name="test"/>;
    /// <paramref name="handler"/> is the body of the vector's handler (RAX, RCX, RDX, RBX saved; RBX = APIC base),
    /// which is followed by an xAPIC EOI unless the APIC is in x2APIC mode.
    /// </summary>
    /// <remarks>
    /// With <paramref name="warmUp"/> the handler first runs once for a self-IPI, so the first timed delivery
    /// does not pay the first-touch costs (the stack page's nested fault, TLB fills) that later ones do not.
    /// </remarks>
    private static byte[] Guest(int vector, Action<Assembler> test, Action<Assembler> handler, bool x2Eoi = false, bool warmUp = false)
    {
        return Assemble(
            a =>
            {
                var isr = a.CreateLabel();
                SetGate(a, vector, isr);
                LoadIdt(a);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                if (warmUp)
                {
                    a.sti();
                    ApicWrite(a, ApicReg.IcrLow, 0x4_0000 | (uint)vector);
                    a.cli();
                }

                test(a);
                Exit(a, 0);

                a.Label(ref isr);
                a.push(rax);
                a.push(rcx);
                a.push(rdx);
                a.push(rbx);
                a.mov(ebx, XapicBase);
                handler(a);
                a.inc(__qword_ptr[Data + Count]);
                if (x2Eoi)
                {
                    Wrmsr(a, 0x80B, 0);
                }
                else
                {
                    ApicWrite(a, ApicReg.Eoi, 0);
                }

                a.pop(rbx);
                a.pop(rdx);
                a.pop(rcx);
                a.pop(rax);
                a.iretq();
            },
            out _);
    }

    /// <summary>Halts with interrupts enabled until the handler has run <paramref name="n"/> times (race-free: STI; HLT).</summary>
    private static void WaitForCount(Assembler a, int n)
    {
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref wait);
        a.cli();
        a.cmp(__qword_ptr[Data + Count], n);
        a.jae(done);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref done);
    }

    private static void StampInto(Assembler a, int offset)
    {
        Rdtsc64(a);
        a.mov(__qword_ptr[Data + (ulong)offset], rax);
    }

    private Machine Run(byte[] image)
    {
        var m = Boot(image, 1, _console);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        return m;
    }

    internal static byte[] OneShotGuest() => Guest(
        0x40,
        a =>
        {
            ApicWrite(a, ApicReg.TimerDivide, 0x2); // ÷8
            ApicWrite(a, ApicReg.LvtTimer, 0x40);
            StampInto(a, Start);
            ApicWrite(a, ApicReg.TimerInitial, 10_000);
            WaitForCount(a, 1);
            // Idle a while: a one-shot timer does not fire again.
            a.mov(ecx, 20_000);
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.dec(ecx);
            a.jnz(spin);
            a.mov(eax, __dword_ptr[rbx + ApicReg.TimerCurrent]);
            a.mov(__qword_ptr[Data + After], rax);
        },
        a => StampInto(a, Stamps));

    [Test]
    public void OneShotTimerFiresOnceAfterInitialCountTimesDivide()
    {
        using var m = Run(OneShotGuest());
        ulong elapsed = Q(m, Stamps) - Q(m, Start);
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(80_000UL));
        // L1's interrupt also costs L0's INTR exit (vmcb01 intercepts INTR) before its delivery.
        Assert.That(elapsed, Is.LessThan(80_000UL + 10_000 + m.Cpu.Costs.VmexitRoundTrip), "fires at the deadline (plus the MMIO write, the INTR exit and delivery)");
        Assert.That(Q(m, Count), Is.EqualTo(1UL));
        Assert.That(Q(m, After), Is.EqualTo(0UL), "current count 0 after expiry");
        Assert.That(Stat(m, "apic.timer_fires"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "apic.eois"), Is.EqualTo(1UL));
    }

    private const int PeriodicIntervals = 6;

    internal static byte[] PeriodicGuest() => Guest(
        0x41,
        a =>
        {
            ApicWrite(a, ApicReg.TimerDivide, 0x1); // ÷4
            ApicWrite(a, ApicReg.LvtTimer, 0x2_0041); // periodic
            ApicWrite(a, ApicReg.TimerInitial, 123_457); // × 4: above L0's 200 µs limit
            WaitForCount(a, PeriodicIntervals + 1);
            ApicWrite(a, ApicReg.LvtTimer, 0x1_0041);
            ApicWrite(a, ApicReg.TimerInitial, 0);
        },
        a =>
        {
            Rdtsc64(a);
            a.mov(rcx, __qword_ptr[Data + Count]);
            a.mov(__qword_ptr[rcx * 8 + (long)(Data + Stamps)], rax);
        },
        warmUp: true);

    [Test]
    public void PeriodicTimerIntervalsAreExactlyInitialCountTimesDivide()
    {
        const int n = PeriodicIntervals;
        using var m = Run(PeriodicGuest());
        Assert.That(Q(m, Count), Is.EqualTo((ulong)n + 1));
        for (int i = 2; i <= n; i++)
        {
            ulong interval = Q(m, Stamps + (i * 8)) - Q(m, Stamps + ((i - 1) * 8));
            Assert.That(interval, Is.EqualTo(123_457UL * 4), $"interval {i}");
        }
    }

    internal static byte[] TscDeadlineGuest() => Guest(
        0x42,
        a =>
        {
            ApicWrite(a, ApicReg.LvtTimer, 0x4_0042); // TSC-deadline
            Rdtsc64(a);
            a.add(rax, 30_000);
            a.mov(__qword_ptr[Data + Start], rax);
            a.mov(rdx, rax);
            a.shr(rdx, 32);
            a.mov(ecx, 0x6E0);
            a.wrmsr();
            WaitForCount(a, 2);
            a.mov(ecx, 0x6E0);
            a.rdmsr();
            a.mov(__qword_ptr[Data + MsrAfter], rax);
        },
        a => StampInto(a, Stamps),
        warmUp: true);

    [Test]
    public void TscDeadlineTimerFiresWhenTheTscReachesTheDeadline()
    {
        using var m = Run(TscDeadlineGuest());
        ulong deadline = Q(m, Start);
        Assert.That(Q(m, Stamps), Is.GreaterThanOrEqualTo(deadline));
        Assert.That(Q(m, Stamps), Is.LessThan(deadline + m.Cpu.Costs.VmexitRoundTrip + 300), "delivered at the deadline (plus L0's INTR exit and the delivery cost)");
        Assert.That(Q(m, MsrAfter), Is.EqualTo(0UL), "IA32_TSC_DEADLINE cleared when it fires");
    }

    [Test]
    public void TprBlocksAnInterruptUntilLowered()
    {
        using var m = Run(Guest(
            0x45,
            a =>
            {
                a.mov(eax, 5);
                a.mov(cr8, rax); // TPR = 0x50: class 4 is blocked
                a.sti();
                ApicWrite(a, ApicReg.IcrLow, 0x4_0045); // fixed, self
                a.nop();
                a.nop();
                a.mov(eax, __dword_ptr[rbx + ApicReg.Irr + 0x20]); // vectors 64–95
                a.mov(__qword_ptr[Data + IrrSeen], rax);
                a.mov(rax, __qword_ptr[Data + Count]);
                a.mov(__qword_ptr[Data + Before], rax);
                ApicWrite(a, ApicReg.Tpr, 0x40); // same class: still blocked
                a.mov(rax, __qword_ptr[Data + Count]);
                a.add(__qword_ptr[Data + Before], rax);
                a.xor(eax, eax);
                a.mov(cr8, rax);
                a.mov(rax, __qword_ptr[Data + Count]); // the interrupt is taken before this instruction
                a.mov(__qword_ptr[Data + After], rax);
                a.cli();
            },
            _ => { }));
        Assert.That(Q(m, IrrSeen), Is.EqualTo(1UL << 5), "0x45 waits in IRR");
        Assert.That(Q(m, Before), Is.EqualTo(0UL));
        Assert.That(Q(m, After), Is.EqualTo(1UL));
    }

    [Test]
    public void X2ApicSelfIpi()
    {
        using var m = Run(Guest(
            0x50,
            a =>
            {
                a.mov(ecx, 0x1B);
                a.rdmsr();
                a.or(eax, 0x400); // EXTD: xAPIC → x2APIC
                a.wrmsr();
                Wrmsr(a, 0x80F, 0x1FF);
                a.sti();
                Wrmsr(a, 0x83F, 0x50);
                a.mov(rax, __qword_ptr[Data + Count]);
                a.mov(__qword_ptr[Data + After], rax);
                Wrmsr(a, 0x830, 0x4_0050); // ICR, shorthand self
                a.mov(rax, __qword_ptr[Data + Count]);
                a.mov(__qword_ptr[Data + Before], rax);
                a.cli();
            },
            _ => { },
            x2Eoi: true));
        Assert.That(Q(m, After), Is.EqualTo(1UL), "taken right after the SELF_IPI write");
        Assert.That(Q(m, Before), Is.EqualTo(2UL));
        Assert.That(Stat(m, "apic.ipis_sent"), Is.EqualTo(2UL));
        Assert.That(Stat(m, "apic.interrupts_accepted"), Is.EqualTo(2UL));
    }

    [Test]
    public void NmiSentToSelfThroughTheIcr()
    {
        using var m = Run(Assemble(
            a =>
            {
                var nmi = a.CreateLabel();
                SetGate(a, 2, nmi);
                LoadIdt(a);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                a.cli(); // NMIs ignore IF
                ApicWrite(a, ApicReg.IcrLow, 0x4_0400);
                a.mov(rax, __qword_ptr[Data + Count]);
                a.mov(__qword_ptr[Data + After], rax);
                ApicWrite(a, ApicReg.IcrLow, 0x4_0400);
                a.mov(rax, __qword_ptr[Data + Count]);
                a.mov(__qword_ptr[Data + Before], rax);
                Exit(a, 0);

                a.Label(ref nmi);
                a.inc(__qword_ptr[Data + Count]);
                a.iretq();
            },
            out _));
        Assert.That(Q(m, After), Is.EqualTo(1UL));
        Assert.That(Q(m, Before), Is.EqualTo(2UL), "IRET ended NMI blocking");
        Assert.That(Stat(m, "vcpu.0.nmis"), Is.EqualTo(2UL));
    }
    /// <summary>
    /// IA32_APIC_BASE transitions from a guest: the invalid ones (x2APIC → xAPIC, EXTD without EN, disabled →
    /// x2APIC) and an x2APIC MSR read in xAPIC mode raise #GP, whose handler counts and skips the 2-byte
    /// RDMSR/WRMSR; the valid path x2APIC → disabled → xAPIC ends with the xAPIC page back.
    /// </summary>
    internal static byte[] ApicBaseTransitionsGuest() => Assemble(
        a =>
        {
            var gp = a.CreateLabel();
            SetGate(a, 13, gp);
            LoadIdt(a);

            void WriteBase(uint low)
            {
                a.mov(ecx, 0x1B);
                a.mov(eax, low);
                a.xor(edx, edx);
                a.wrmsr();
            }

            WriteBase(0xFEE0_0000 | 0x100 | 0xC00); // xAPIC → x2APIC
            WriteBase(0xFEE0_0000 | 0x100 | 0x800); // x2APIC → xAPIC: #GP
            WriteBase(0xFEE0_0000 | 0x100 | 0x400); // EXTD without EN: #GP
            WriteBase(0xFEE0_0000 | 0x100); // x2APIC → disabled
            WriteBase(0xFEE0_0000 | 0x100 | 0xC00); // disabled → x2APIC: #GP
            WriteBase(0xFEE0_0000 | 0x100 | 0x800); // disabled → xAPIC
            a.mov(ecx, 0x802);
            a.rdmsr(); // x2APIC ID in xAPIC mode: #GP
            a.mov(ecx, 0x1B);
            a.rdmsr();
            a.mov(__qword_ptr[Data + After], rax);
            a.mov(ebx, XapicBase);
            a.mov(eax, __dword_ptr[rbx + ApicReg.Version]);
            a.mov(__qword_ptr[Data + Before], rax);
            Exit(a, 0);

            a.Label(ref gp);
            a.inc(__qword_ptr[Data + Count]);
            a.add(__qword_ptr[rsp + 8], 2); // past the RDMSR/WRMSR
            a.add(rsp, 8); // the error code
            a.iretq();
        },
        out _);

    [Test]
    public void InvalidApicBaseTransitionsRaiseGpInTheGuest()
    {
        using var m = Run(ApicBaseTransitionsGuest());
        Assert.That(Q(m, Count), Is.EqualTo(4UL), "three invalid transitions and one x2APIC MSR in xAPIC mode");
        Assert.That(Q(m, After), Is.EqualTo(0xFEE0_0900UL), "xAPIC, enabled, BSP");
        Assert.That(Q(m, Before), Is.EqualTo((ulong)LocalApic.VersionValue), "the xAPIC page is back");
        Assert.That(Stat(m, "cpu.exceptions"), Is.EqualTo(4UL));
    }
}
