using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Core.Timing;
using Emulator.Svm.Exits;
using Emulator.Svm.Run;
using Emulator.Tests.Core.Devices.Apic;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Exits;

/// <summary>L0's hypercall exits as KVM on AMD implements them: VMMCALL, and VMCALL through the #UD intercept.</summary>
public sealed class HypercallTests
{
    private MemoryStream _console = null!;

    [SetUp]
    public void SetUp() => _console = new MemoryStream();

    [TearDown]
    public void TearDown() => _console.Dispose();

    private static ulong Q(Machine m, int offset) => m.Memory.Read(Data + (ulong)offset, 8);

    private Machine Run(byte[] image, int cpus = 1, CostTable? costs = null)
    {
        var m = new Machine(new MachineOptions { MemorySize = 64 << 20, Cpus = cpus, ConsoleOutput = _console, Costs = costs });
        m.Load(image, new BootOptions { Format = ImageFormat.Flat, LoadAddress = ApicGuest.Code, Mode = EntryMode.Long });
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        return m;
    }

    /// <summary>A guest that makes one hypercall with the given registers and stores RAX at Data.</summary>
    private static byte[] CallGuest(ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, bool vmcall = false) => Assemble(
        a =>
        {
            a.mov(rax, nr);
            a.mov(rbx, a0);
            a.mov(rcx, a1);
            a.mov(rdx, a2);
            a.mov(rsi, a3);
            if (vmcall)
            {
                a.vmcall();
            }
            else
            {
                a.vmmcall();
            }

            a.mov(__qword_ptr[Data], rax);
            Exit(a, 0);
        },
        out _);

    [Test]
    public void AnUnknownNumberReturnsMinusEnosysAndCostsAHypervisorExit()
    {
        var costs = new CostTable { HypervisorExit = 5_000_000 };
        using var m = Run(CallGuest(ulong.MaxValue), costs: costs);
        Assert.That(Q(m, 0), Is.EqualTo(unchecked((ulong)-KvmHypercall.ENoSys)));
        Assert.That(Stat(m, "l0.hypercalls"), Is.EqualTo(1UL));
        Assert.That(m.Cpu.Cycles, Is.GreaterThanOrEqualTo(5_000_000UL));
    }

    [Test]
    public void VapicPollIrqAndSchedYieldReturnZero()
    {
        using var m = Run(CallGuest(KvmHypercall.VapicPollIrq));
        Assert.That(Q(m, 0), Is.Zero);
        using var m2 = Run(CallGuest(KvmHypercall.SchedYield));
        Assert.That(Q(m2, 0), Is.Zero);
    }

    [Test]
    public void VmcallIsRewrittenIntoVmmcallAndThenMakesTheCall()
    {
        using var m = Run(CallGuest(ulong.MaxValue, vmcall: true));
        Assert.That(Q(m, 0), Is.EqualTo(unchecked((ulong)-KvmHypercall.ENoSys)));
        Assert.That(Stat(m, "l0.hypercalls_patched"), Is.EqualTo(1UL));
        Assert.That(Stat(m, "l0.hypercalls"), Is.EqualTo(1UL));
        // Five 10-byte MOVs precede the call.
        Assert.That(m.Memory.Read(ApicGuest.Code + 50, 4) & 0xFFFFFF, Is.EqualTo(0xD9010FUL), "VMMCALL's bytes replaced VMCALL's");
    }

    [Test]
    public void OutsideCpl0TheResultIsMinusEperm()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        m.Load(CallGuest(0), new BootOptions { Format = ImageFormat.Flat, LoadAddress = ApicGuest.Code, Mode = EntryMode.Long });
        var cpu = m.Cpu;
        cpu.Cpl = 3;
        cpu.Gpr[Reg.RAX] = KvmHypercall.VapicPollIrq;
        Assert.That(m.Hypercalls.Vmmcall(cpu), Is.EqualTo(ExecStatus.Continue));
        Assert.That(cpu.Gpr[Reg.RAX], Is.EqualTo(unchecked((ulong)-KvmHypercall.EPerm)));
    }

    [Test]
    public void OutsideLongModeTheNumberAndResultAre32Bits()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        m.Load([0xF4], new BootOptions { Format = ImageFormat.Flat, LoadAddress = ApicGuest.Code, Mode = EntryMode.Protected });
        var cpu = m.Cpu;
        Assert.That(cpu.Mode, Is.EqualTo(CpuMode.Protected32));
        cpu.Gpr[Reg.RAX] = 0x1_0000_0000UL | KvmHypercall.VapicPollIrq;
        m.Hypercalls.Vmmcall(cpu);
        Assert.That(cpu.Gpr[Reg.RAX], Is.Zero, "bits 63:32 of RAX are not part of the number");
        cpu.Gpr[Reg.RAX] = 0xFFFF;
        m.Hypercalls.Vmmcall(cpu);
        Assert.That(cpu.Gpr[Reg.RAX], Is.EqualTo((ulong)unchecked((uint)-KvmHypercall.ENoSys)), "the result is truncated to 32 bits");
    }

    private const byte IpiVector = 0x40;

    [Test]
    public void SendIpiDeliversTheIcrsInterruptToEachApicOfTheBitmap()
    {
        var image = Assemble(
            a =>
            {
                var isr = a.CreateLabel();
                SetGate(a, IpiVector, isr);
                LoadIdt(a);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Svr, 0x1FF);
                a.mov(eax, (uint)KvmHypercall.SendIpi);
                a.mov(ebx, 1); // bitmap: APIC ID min + 0
                a.xor(ecx, ecx);
                a.xor(edx, edx); // min = 0
                a.mov(esi, IpiVector); // fixed, physical
                a.vmmcall();
                a.mov(__qword_ptr[Data], rax);
                a.sti();
                a.nop();
                a.cli();
                Exit(a, 0);

                a.Label(ref isr);
                a.inc(__qword_ptr[Data + 8]);
                a.mov(ebx, XapicBase);
                ApicWrite(a, ApicReg.Eoi, 0);
                a.iretq();
            },
            out _);
        using var m = Run(image);
        Assert.That(Q(m, 0), Is.EqualTo(1UL), "one APIC took it");
        Assert.That(Q(m, 8), Is.EqualTo(1UL), "the interrupt was delivered");
    }

    /// <summary>A machine whose BSP is in 64-bit mode with its APIC software-enabled, for direct exit calls.</summary>
    private static Machine Direct(int cpus)
    {
        var m = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = cpus });
        m.Load([0xF4], new BootOptions { Format = ImageFormat.Flat, LoadAddress = ApicGuest.Code, Mode = EntryMode.Long });
        m.Platform.Apics[0].WriteMmio(ApicReg.Svr, 4, 0x1FF);
        return m;
    }

    private static ulong SendIpi(Machine m, ulong low, ulong high, ulong min, ulong icr)
    {
        var cpu = m.Cpu;
        cpu.Gpr[Reg.RAX] = KvmHypercall.SendIpi;
        cpu.Gpr[Reg.RBX] = low;
        cpu.Gpr[Reg.RCX] = high;
        cpu.Gpr[Reg.RDX] = min;
        cpu.Gpr[Reg.RSI] = icr;
        m.Hypercalls.Vmmcall(cpu);
        return cpu.Gpr[Reg.RAX];
    }

    [Test]
    public void SendIpiRefusesLogicalDestinationsAndShorthands()
    {
        using var m = Direct(1);
        ulong einval = unchecked((ulong)-KvmHypercall.EInval);
        Assert.That(SendIpi(m, 1, 0, 0, 0x800 | IpiVector), Is.EqualTo(einval), "logical");
        Assert.That(SendIpi(m, 1, 0, 0, 0x4_0000 | IpiVector), Is.EqualTo(einval), "self shorthand");
        Assert.That(m.Platform.Apics[0].HighestRequested, Is.EqualTo(-1));
    }

    [Test]
    public void TheHighBitmapStartsOneWordAboveMinAndMinWrapsAt32Bits()
    {
        using var m = Direct(1);
        // min = -64: the low half covers IDs above every APIC; the high half starts at (min + 64) mod 2^32 = 0.
        Assert.That(SendIpi(m, ulong.MaxValue, 1, 0xFFFF_FFC0, IpiVector), Is.EqualTo(1UL));
        Assert.That(m.Platform.Apics[0].HighestRequested, Is.EqualTo(IpiVector));
    }

    [Test]
    public void SendIpiCountsOnlyApicsThatTakeTheInterrupt()
    {
        using var m = Direct(2);
        // vCPU 1's APIC is enabled but still software-disabled (waiting for SIPI): a fixed interrupt is dropped.
        Assert.That(SendIpi(m, 0b11, 0, 0, IpiVector), Is.EqualTo(1UL));
        Assert.That(m.Platform.Apics[1].HighestRequested, Is.EqualTo(-1));
        // A bit beyond the highest APIC ID in the VM is not looked at.
        Assert.That(SendIpi(m, 0b100, 0, 0, IpiVector), Is.Zero);
        // A level-triggered de-assert carries no interrupt.
        Assert.That(SendIpi(m, 0b1, 0, 0, 0x8000 | IpiVector), Is.Zero);
        // NMI is taken by any enabled APIC, software-enabled or not.
        Assert.That(SendIpi(m, 0b11, 0, 0, 0x400), Is.EqualTo(2UL));
        Assert.That(m.Cpus[1].NmiPending, Is.True);
    }

    [Test]
    public void VmmcallWhoseNextRipIsNonCanonicalFaultsThereWithGp()
    {
        // Map the last page below the canonical hole (0x7FFF_FFFF_F000) to 0x43000 with tables at 0x40000.
        const ulong pdpt = 0x40000, pd = 0x41000, pt = 0x42000, page = 0x43000;
        var image = Assemble(
            a =>
            {
                var gp = a.CreateLabel();
                SetGate(a, Vector.GP, gp);
                LoadIdt(a);
                a.mov(rax, ulong.MaxValue);
                a.mov(rcx, 0x7FFF_FFFF_FFFDUL);
                a.jmp(rcx);

                a.Label(ref gp);
                a.mov(rax, __qword_ptr[rsp + 8]); // the faulting RIP, above the error code
                a.mov(__qword_ptr[Data], rax);
                Exit(a, 0);
            },
            out _);
        var m = new Machine(new MachineOptions { MemorySize = 64 << 20, ConsoleOutput = _console });
        using (m)
        {
            m.Load(image, new BootOptions { Format = ImageFormat.Flat, LoadAddress = ApicGuest.Code, Mode = EntryMode.Long });
            ulong pml4 = m.Cpu.Cr3;
            m.Memory.Write(pml4 + (255 * 8), 8, pdpt | 3);
            m.Memory.Write(pdpt + (511 * 8), 8, pd | 3);
            m.Memory.Write(pd + (511 * 8), 8, pt | 3);
            m.Memory.Write(pt + (511 * 8), 8, page | 3);
            Assert.That(m.Memory.TryLoad(page + 0xFFD, [0x0F, 0x01, 0xD9]), Is.True);
            var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
            Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
            Assert.That(Q(m, 0), Is.EqualTo(0x8000_0000_0000UL), "#GP at the first non-canonical RIP");
            Assert.That(Stat(m, "l0.hypercalls"), Is.EqualTo(1UL));
        }
    }
}
