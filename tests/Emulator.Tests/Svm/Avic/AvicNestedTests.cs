using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Core.Svm;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using Emulator.Svm.Vmcb;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Avic;

/// <summary>
/// AVIC and a nested guest (<see cref="ApicvNestedInhibit"/>). Under Linux 5.15's rule a guest with SVM in its CPUID
/// inhibits APICv VM-wide from creation; under 5.19's (commit f44509f849fe) only the vCPU that runs L2 loses its AVIC,
/// for as long as L2 runs: its APIC accesses are accelerated before and after, and an IPI sent to it meanwhile takes
/// the incomplete-IPI path and is delivered by L0.
/// </summary>
public sealed unsafe class AvicNestedTests
{
    private const ulong Vmcb = 0x400000, L2Stack = 0x1F0000;

    // Data offsets: L1's first TPR read, L2's exit code, L1's second TPR read, L2's result, interrupts handled,
    // the AP's "ready" and "sent" flags, L2's "running" flag.
    private const int Tpr1 = 0x00, ExitCode = 0x08, Tpr2 = 0x10, L2Result = 0x18, Handled = 0x20, ApReady = 0x28, Sent = 0x30, L2Running = 0x38;

    private static readonly string[] Xapic = ["-x2apic"];

    private static void EnableSvm(Assembler a)
    {
        a.mov(ecx, 0xC000_0080);
        a.rdmsr();
        a.or(eax, (int)EferBits.SVME);
        a.wrmsr();
    }

    /// <summary>vmcb12 at <see cref="Vmcb"/>: L2 in L1's mode and paging (no nested paging), VMRUN and VMMCALL intercepted.</summary>
    private static void WriteVmcb(Machine m, ulong l2Rip, bool interceptIntr)
    {
        byte* page = m.Memory.RamPointer(Vmcb, 4096);
        new Span<byte>(page, 4096).Clear();
        var v = new VmcbView(page);
        v.U32(VmcbOffset.InterceptMisc1) = interceptIntr ? 1u << SvmIntercept.Intr : 0;
        v.U32(VmcbOffset.InterceptMisc2) = (1u << (SvmIntercept.Vmrun - 32)) | (1u << (SvmIntercept.Vmmcall - 32));
        v.U32(VmcbOffset.Asid) = 1;
        v.SetGuestStateLike(m.Cpu, l2Rip, L2Stack);
        v.U64(VmcbOffset.Rflags) = 0x202;
    }

    /// <summary>
    /// L1: SVR on, TPR 0x20, TPR read, VMRUN of an L2 that computes 6·7 and VMMCALLs back, L1 stores the exit code and
    /// reads TPR again, then the debug exit.
    /// </summary>
    private static Machine TprAroundL2(ApicvNestedInhibit nested, bool l2ReadsTpr = false)
    {
        Label l2 = default;
        var image = Assemble(
            a =>
            {
                l2 = a.CreateLabel();
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                ApicWrite(a, ApicReg.Tpr, 0x20);
                a.mov(eax, __dword_ptr[rbx + ApicReg.Tpr]);
                a.mov(__qword_ptr[Data + Tpr1], rax);
                EnableSvm(a);
                a.mov(eax, (uint)Vmcb);
                a.vmrun();
                a.mov(rdx, __qword_ptr[rax + VmcbOffset.ExitCode]);
                a.mov(__qword_ptr[Data + ExitCode], rdx);
                a.mov(ebx, XapicBase);
                a.mov(eax, __dword_ptr[rbx + ApicReg.Tpr]);
                a.mov(__qword_ptr[Data + Tpr2], rax);
                Exit(a, 0);

                // L2 computes and calls back; it stays off the APIC page (without nested paging it would reach the
                // APIC-access page L0 keeps mapped for L1, as memory).
                a.Label(ref l2);
                if (l2ReadsTpr)
                {
                    // L2's physical addresses are L1's (no nested paging): 0xFEE00080 is L1's APIC page.
                    a.mov(ebx, XapicBase);
                    a.mov(ecx, __dword_ptr[rbx + ApicReg.Tpr]);
                }
                else
                {
                    a.mov(ecx, 6);
                    a.imul(ecx, ecx, 7);
                }

                a.mov(__qword_ptr[Data + L2Result], rcx);
                a.vmmcall();
                a.hlt();
            },
            out var rip);
        var m = Boot(image, 1, Stream.Null, cpu: Xapic, nested: nested);
        WriteVmcb(m, rip(l2), interceptIntr: false);
        return m;
    }

    [Test]
    public void PerVcpuNestedKeepsL1sAvicBeforeAndAfterL2AndApicvActive()
    {
        using var m = TprAroundL2(ApicvNestedInhibit.Vcpu);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data + ExitCode, 8), Is.EqualTo(SvmExit.Vmmcall), "L2 came back through its VMMCALL");
        Assert.That(m.Memory.Read(Data + Tpr1, 8), Is.EqualTo(0x20UL));
        Assert.That(m.Memory.Read(Data + Tpr2, 8), Is.EqualTo(0x20UL));
        Assert.That(m.Memory.Read(Data + L2Result, 8), Is.EqualTo(42UL), "L2 ran");
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "apicv.inhibit.nested"), Is.Zero, "no VM-wide NESTED");
        Assert.That(Stat(m, "apicv.transitions"), Is.Zero, "the per-vCPU inhibit leaves the VM's state alone");
        Assert.That(Stat(m, "avic.accelerated.read"), Is.EqualTo(2UL), "L1's reads before and after L2");
        Assert.That(Stat(m, "avic.accelerated.write"), Is.EqualTo(1UL), "L1's TPR write");
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.Zero);
        Assert.That(Stat(m, "svm.vmrun"), Is.EqualTo(1UL));
    }

    /// <summary>
    /// KVM gives L2 its own MMU root (role.guest_mode), in which private memslots do not exist: an L2 access to the
    /// APIC-access page's address becomes an MMIO access that L0 emulates, here L1's local APIC. It never reads the
    /// page L0 keeps mapped for L1's AVIC, whether APICv is active or not.
    /// </summary>
    [TestCase(ApicvNestedInhibit.Vcpu)]
    [TestCase(ApicvNestedInhibit.Vm)]
    public void AnL2AccessToTheApicPageReachesL1sApicNeverThePrivatePage(ApicvNestedInhibit nested)
    {
        using var m = TprAroundL2(nested, l2ReadsTpr: true);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data + ExitCode, 8), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(m.Memory.Read(Data + L2Result, 8), Is.EqualTo(0x20UL), "L1's TPR, through L0's emulation");
        Assert.That(m.Memory.Read(Data + Tpr2, 8), Is.EqualTo(0x20UL));
    }

    [Test]
    public void VmWideNestedInhibitsApicvForTheWholeRun()
    {
        using var m = TprAroundL2(ApicvNestedInhibit.Vm);
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data + ExitCode, 8), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(m.Memory.Read(Data + Tpr2, 8), Is.EqualTo(0x20UL));
        Assert.That(Stat(m, "apicv.active"), Is.Zero);
        Assert.That(Stat(m, "apicv.inhibit.nested"), Is.EqualTo(1UL), "set at creation from the SVM bit in CPUID");
        Assert.That(Stat(m, "avic.accelerated"), Is.Zero);
        Assert.That(Stat(m, "mmu.apic_emulations"), Is.EqualTo(4UL), "SVR, TPR write and read, TPR read");
    }

    [Test]
    public void WhileL2RunsTheVcpusAvicIsOffAndAfterTheVmexitOnAgain()
    {
        using var m = TprAroundL2(ApicvNestedInhibit.Vcpu);
        int steps = 0;
        while (!m.Cpu.GuestMode && steps++ < 1_000)
        {
            m.Run(new RunLimits { MaxInstructions = m.TotalInstructions + 1 });
        }

        Assert.That(m.Cpu.GuestMode, Is.True, "L1 reached its VMRUN");
        Assert.That(m.Cpu.Avic, Is.Null, "no AVIC while L2 runs");
        Assert.That(m.L0[0].Vmcb01.View.U32(VmcbOffset.IntCtl) & IntCtl.AvicEnable, Is.Zero, "AVIC_ENABLE cleared in vmcb01");

        while (m.Cpu.GuestMode && steps++ < 2_000)
        {
            m.Run(new RunLimits { MaxInstructions = m.TotalInstructions + 1 });
        }

        m.Run(new RunLimits { MaxInstructions = m.TotalInstructions + 1 });
        Assert.That(m.Cpu.GuestMode, Is.False);
        Assert.That(m.Cpu.Avic, Is.Not.Null, "L1's AVIC is back after the #VMEXIT");
        Assert.That(m.L0[0].Vmcb01.View.U32(VmcbOffset.IntCtl) & IntCtl.AvicEnable, Is.Not.Zero);
    }

    /// <summary>
    /// vCPU 0's L1 starts vCPU 1 and VMRUNs an L2 (INTR intercepted) that raises a flag and spins; vCPU 1 waits for
    /// the flag and sends vCPU 0 a fixed IPI (vector 0x40). L2 exits with INTR, L1 opens GIF and IF, and its handler
    /// counts the interrupt and EOIs.
    /// </summary>
    [Test]
    public void AnIpiToAVcpuRunningL2IsDeliveredByL0AfterTheIncompleteIpiExit()
    {
        Label l2 = default, ap = default;
        var image = Assemble(
            a =>
            {
                var handler = a.CreateLabel();
                var start = a.CreateLabel();
                var waitAp = a.CreateLabel();
                var waitIrq = a.CreateLabel();
                var spin = a.CreateLabel();
                var apWait = a.CreateLabel();
                var apIdle = a.CreateLabel();
                l2 = a.CreateLabel();
                ap = a.CreateLabel();
                a.jmp(start);
                a.Label(ref handler);
                a.inc(__qword_ptr[Data + Handled]);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Eoi, 0);
                a.iretq();

                a.Label(ref start);
                LoadIdt(a);
                SetGate(a, 0x40, handler);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                foreach (uint icr in (uint[])[0x4500, 0x8500, 0x4600 | SipiVector, 0x4600 | SipiVector])
                {
                    ApicWrite(a, ApicReg.IcrHigh, 1u << 24);
                    ApicWrite(a, ApicReg.IcrLow, icr);
                }

                a.Label(ref waitAp);
                a.pause();
                a.cmp(__qword_ptr[Data + ApReady], 0);
                a.je(waitAp);
                EnableSvm(a);
                a.mov(eax, (uint)Vmcb);
                a.vmrun();
                a.mov(rdx, __qword_ptr[rax + VmcbOffset.ExitCode]);
                a.mov(__qword_ptr[Data + ExitCode], rdx);
                a.stgi();
                a.sti();
                a.Label(ref waitIrq);
                a.pause();
                a.cmp(__qword_ptr[Data + Handled], 0);
                a.je(waitIrq);
                a.cli();
                Exit(a, 0);

                // L2: say it runs, then spin.
                a.Label(ref l2);
                a.mov(__qword_ptr[Data + L2Running], 1);
                a.Label(ref spin);
                a.pause();
                a.jmp(spin);

                // vCPU 1, from the trampoline in long mode: wait for L2, then IPI vCPU 0.
                a.Label(ref ap);
                a.mov(eax, BootState.DataSelector);
                a.mov(ds, ax);
                a.mov(es, ax);
                a.mov(ss, ax);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                a.mov(__qword_ptr[Data + ApReady], 1);
                a.Label(ref apWait);
                a.pause();
                a.cmp(__qword_ptr[Data + L2Running], 0);
                a.je(apWait);
                ApicWrite(a, ApicReg.IcrHigh, 0);
                ApicWrite(a, ApicReg.IcrLow, 0x40);
                a.mov(__qword_ptr[Data + Sent], 1);
                a.cli();
                a.Label(ref apIdle);
                a.hlt();
                a.jmp(apIdle);
            },
            out var rip);
        var labels = (L2: rip(l2), Ap: rip(ap));
        using var m = Boot(image, 2, Stream.Null, labels.Ap, Xapic, nested: ApicvNestedInhibit.Vcpu);
        WriteVmcb(m, labels.L2, interceptIntr: true);
        var r = m.Run(new RunLimits { MaxCycles = 500_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data + Sent, 8), Is.EqualTo(1UL));
        Assert.That(m.Memory.Read(Data + ExitCode, 8), Is.EqualTo(SvmExit.Intr), "the IPI made L2 exit to L1");
        Assert.That(m.Memory.Read(Data + Handled, 8), Is.EqualTo(1UL), "taken once: not lost, not doubled");
        Assert.That(Stat(m, "apicv.active"), Is.EqualTo(1UL));
        Assert.That(m.L0[1].Avic!.IncompleteIpis[AvicUnit.TargetNotRunning], Is.EqualTo(1UL), "vCPU 0 was not running while in L2");
        Assert.That(m.L0[1].Avic!.Doorbells, Is.Zero, "so no doorbell rang for it");
        Assert.That(Stat(m, "svm.exits.l2.intr"), Is.EqualTo(1UL));
    }
}
