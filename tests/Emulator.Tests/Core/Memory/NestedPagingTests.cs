using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Memory;

/// <summary>
/// Guest-physical accesses of a running guest go through L0's MMU (issue 3, item 12): a first touch of a
/// RAM page is a nested-paging fault fixed by the TDP MMU; the VGA hole, read-only BIOS area and device
/// windows take the emulate path.
/// </summary>
public class NestedPagingTests
{
    private sealed class Scratch : IMmioDevice
    {
        public ulong Last;
        public int Writes;

        public ulong Read(ulong offset, int size) => Last + offset;

        public void Write(ulong offset, int size, ulong value)
        {
            Last = value;
            Writes++;
        }
    }

    [Test]
    public void RamFaultsAreFixedAndDeviceAccessesAreEmulated()
    {
        var dev = new Scratch();
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, 0x1122334455667788);
            a.mov(__qword_ptr[0x300000], rax);     // RAM: NPT fault, fixed
            a.mov(rbx, __qword_ptr[0x300000]);
            a.mov(ecx, __dword_ptr[0xA0000]);      // VGA hole: emulated, all ones
            a.mov(__byte_ptr[0xE0000], 0x5A);      // read-only BIOS area: write dropped
            a.movzx(edx, __byte_ptr[0xE0000]);
            a.mov(rsi, 0xFF000000);
            a.mov(__qword_ptr[rsi], rax);          // device window: emulated write
            a.mov(rdi, __qword_ptr[rsi + 8]);      // emulated read
            a.hlt();
        });
        g.Mem.Mmio.Register(0xFF000000, 0x10000, dev);
        var mmu = g.Mem.Mmu!;

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));

        Assert.That(g[Reg.RBX], Is.EqualTo(0x1122334455667788UL));
        Assert.That(g[Reg.RCX], Is.EqualTo(0xFFFFFFFFUL));
        Assert.That(g[Reg.RDX], Is.Zero);
        Assert.That(dev.Last, Is.EqualTo(0x1122334455667788UL));
        Assert.That(dev.Writes, Is.EqualTo(1));
        Assert.That(g[Reg.RDI], Is.EqualTo(0x1122334455667788UL + 8));
        Assert.That(mmu.Stats.Of(RetPf.Fixed), Is.GreaterThan(0));
        Assert.That(mmu.Stats.Of(RetPf.Emulate), Is.GreaterThanOrEqualTo(4));
        Assert.That(mmu.Tdp.CountMmio(), Is.GreaterThanOrEqualTo(2), "the hole and the device window are cached as MMIO SPTEs");
    }

    [Test]
    public void InhibitingApicvZapsTheApicPageAndTheGuestEmulatesItsNextAccess()
    {
        var apic = new Scratch();
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rsi, 0xFEE00000);
            a.mov(eax, __dword_ptr[rsi + 0x30]);
            a.hlt();
        });
        var mmu = g.Mem.Mmu!;
        // The APIC-access private slot backed by the last RAM page; the device model answers emulated accesses.
        mmu.CreateApicAccessSlot(new Hpa(g.Mem.RamSize - 0x1000));
        g.Mem.Mmio.Register(0xFEE00000, 0x1000, apic);
        apic.Last = 0x50014;

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.Zero, "APICv active and no AVIC unit on this bare vCPU: the access reads the APIC-access page itself");

        mmu.SetApicvInhibit((int)Emulator.Svm.Avic.ApicvInhibitReason.IrqWindow, true);
        g.Cpu.Rip = TestGuest.CodeBase;
        g.Cpu.Halted = false;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x50014UL + 0x30), "inhibited: the access is emulated by the device model");
        Assert.That(mmu.Stats.ApicEmulations, Is.EqualTo(1));
    }
}
