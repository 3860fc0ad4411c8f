using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;
using CpuModel = Emulator.Core.Cpu.Cpu;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>IA32_APIC_BASE relocation: the xAPIC page follows the base, per vCPU, and the old page becomes a hole.</summary>
public sealed class ApicRelocationTests
{
    private const ulong Alternate = 0xFED4_0000;

    [Test]
    public void TheApicPageFollowsTheBaseOfItsOwnVcpuOnly()
    {
        using var rig = new ApicRig(2);
        var bsp = rig.Cpus[0];
        Assert.That(bsp.WriteMsr(Emulator.Core.Cpu.Msr.ApicBase, Alternate | CpuModel.ApicBaseBsp | CpuModel.ApicBaseEnable), Is.True);
        Assert.That(rig[0].MmioBase, Is.EqualTo(Alternate));
        Assert.That(rig[0].TryReadMmio(Alternate + ApicReg.Version, 4, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo((ulong)LocalApic.VersionValue));
        Assert.That(rig[0].TryReadMmio(LocalApic.DefaultBase + ApicReg.Version, 4, out _), Is.False, "the old page is no longer the BSP's APIC");
        Assert.That(rig[1].TryReadMmio(LocalApic.DefaultBase + ApicReg.Version, 4, out _), Is.True, "the AP's APIC did not move");
        Assert.That(rig[0].TryWriteMmio(Alternate + ApicReg.Tpr, 4, 0x30), Is.True);
        Assert.That(bsp.Tpr, Is.EqualTo(0x30));
    }

    private const int Moved = 0x00, Old = 0x08, Back = 0x10;

    [Test]
    public void AGuestReadsItsRelocatedApicAndAllOnesAtTheOldAddress()
    {
        var image = Assemble(
            a =>
            {
                // Disable, then enable at the alternate base (the order apic.flat uses).
                Wrmsr(a, 0x1B, LocalApic.DefaultBase | 0x100);
                Wrmsr(a, 0x1B, Alternate | 0x900);
                a.mov(rbx, Alternate);
                a.mov(eax, __dword_ptr[rbx + ApicReg.Version]);
                a.mov(__qword_ptr[Data + Moved], rax);
                a.mov(ebx, XapicBase);
                a.mov(eax, __dword_ptr[rbx + ApicReg.Version]);
                a.mov(__qword_ptr[Data + Old], rax);
                Wrmsr(a, 0x1B, LocalApic.DefaultBase | 0x900);
                a.mov(eax, __dword_ptr[rbx + ApicReg.Version]);
                a.mov(__qword_ptr[Data + Back], rax);
                Exit(a, 0);
            },
            out _);
        using var console = new MemoryStream();
        using var m = Boot(image, 1, console);
        var r = m.Run(new RunLimits { MaxCycles = 10_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Memory.Read(Data + Moved, 8), Is.EqualTo((ulong)LocalApic.VersionValue), "version at the new base");
        Assert.That(m.Memory.Read(Data + Old, 8), Is.EqualTo(0xFFFF_FFFFUL), "nothing at 0xFEE00000 any more");
        Assert.That(m.Memory.Read(Data + Back, 8), Is.EqualTo((ulong)LocalApic.VersionValue), "back at the default base");
        Assert.That(m.Memory.Mmu!.ApicvInhibitReasons & (1UL << (int)ApicvInhibitReason.ApicBaseModified), Is.Not.Zero, "APICv stays inhibited");
    }

    [Test]
    public void WritingAnotherXapicIdInhibitsApicv()
    {
        // An xAPIC guest without SVM: APICv starts active.
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = 2, CpuFeatures = ["-x2apic", "-svm"] });
        m.Load([0xF4], new BootOptions { Format = ImageFormat.Flat, LoadAddress = Code, Mode = EntryMode.Long });
        var mmu = m.Memory.Mmu!;
        m.Platform.Apics[1].WriteMmio(ApicReg.Id, 4, 1u << 24);
        Assert.That(mmu.ApicvInhibitReasons, Is.Zero, "rewriting the initial ID changes nothing");
        ulong transitions = m.Apicv.Transitions;
        m.Platform.Apics[1].WriteMmio(ApicReg.Id, 4, 7u << 24);
        Assert.That(mmu.ApicvInhibitReasons, Is.EqualTo(1UL << (int)ApicvInhibitReason.ApicIdModified));
        Assert.That(m.Apicv.Transitions, Is.EqualTo(transitions + 1), "active -> inhibited");
    }
}
