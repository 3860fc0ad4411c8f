using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;
using Emulator.Mmu.Walk;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using Emulator.Tests.Core;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Run;

/// <summary>The Machine owns the VM's memory: host arena, L0's MMU over it, platform memslots and the APIC-access page.</summary>
public class MachineMemoryTests
{
    [Test]
    public void TheMachineLaysOutThePlatformMemslotsAndTheApicAccessPage()
    {
        using var m = new Machine(new MachineOptions { MemorySize = (3UL << 30) + (1UL << 20) });
        var mmu = m.Memory.Mmu!;
        var slots = mmu.Memslots.Current.Slots.ToArray();
        Assert.That(slots.Select(s => (s.BaseGfn << 12, s.Pages << 12, s.Flags, s.IsPrivate)), Is.EqualTo(new[]
        {
            (0UL, 0xA0000UL, MemslotFlags.None, false),
            (0xC0000UL, 0x20000UL, MemslotFlags.None, false),
            (0xE0000UL, 0x20000UL, MemslotFlags.ReadOnly, false),
            (0x100000UL, (3UL << 30) - 0x100000, MemslotFlags.None, false),
            (0xFEE00000UL, 0x1000UL, MemslotFlags.None, true),
            (4UL << 30, 1UL << 20, MemslotFlags.None, false),
        }));
        Assert.That(slots.Where(s => !s.IsPrivate).Select(s => s.Id), Is.EquivalentTo(new[] { 0, 1, 2, 3, 4 }));
        Assert.That(mmu.Memslots.Current.ById(Memslot.ApicAccessPrivate)!.HostOffset, Is.EqualTo(m.Memory.RamSize), "backed by the page after RAM");
        Assert.That(mmu.Host, Is.Not.Null, "the shadow NPT reads L1's tables through the host arena");
        // The default CPU reports SVM and x2APIC: Linux 5.15 inhibits AVIC for both (NESTED, X2APIC) at CPUID time.
        Assert.That(mmu.ApicvInhibitReasons, Is.EqualTo((1UL << (int)ApicvInhibitReason.Nested) | (1UL << (int)ApicvInhibitReason.X2Apic)));
    }

    [Test]
    public void TheShadowNptOfTheMachineReadsL1Tables()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        const ulong ncr3 = 0x400000, pdpt = 0x401000, pd = 0x402000;
        m.Memory.Write(ncr3, 8, pdpt | 7);
        m.Memory.Write(pdpt, 8, pd | 7);
        m.Memory.Write(pd, 8, 0x600000 | 0x87); // L2 0–2 MiB → L1 6 MiB, 2 MiB leaf
        m.Cpu.EnterNestedPaging(ncr3, PagingMode.LongMode4, l1Nxe: true);
        Assert.That(m.Cpu.TranslateGpa(0x1234, 0, out ulong hpa, out _), Is.EqualTo(RetPf.Fixed));
        Assert.That(hpa, Is.EqualTo(0x601234UL));
        var stats = m.Stats().ToDictionary(s => s.Name, s => s.Value);
        Assert.That(stats["mmu.shadow.tables"], Is.EqualTo(3UL), "root (PML4), PDPT and PD shadows");
        Assert.That(stats["mmu.shadow.faults"], Is.EqualTo(1UL));
        Assert.That(stats["mmu.shadow.reflected"], Is.Zero);
    }

    [Test]
    public void AnL1AccessToTheApicPageIsEmulatedWithoutCachingAnMmioSpte()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 16 << 20 });
        const ulong data = 0x200000;
        m.Load(TestGuest.Assemble(64, a =>
        {
            a.mov(rsi, LocalApic.DefaultBase);
            a.mov(eax, __dword_ptr[rsi + ApicReg.Version]);
            a.mov(__dword_ptr[data], eax);
            a.mov(eax, __dword_ptr[rsi + ApicReg.Version]);
            a.mov(__dword_ptr[data + 4], eax);
            a.hlt();
        }), new BootOptions { Format = ImageFormat.Flat, LoadAddress = 0x100000, Mode = EntryMode.Long });
        var mmu = m.Memory.Mmu!;

        m.Run(new RunLimits { MaxCycles = 1_000_000 });

        Assert.That(m.Memory.Read(data, 4), Is.EqualTo((ulong)LocalApic.VersionValue), "the emulated local APIC answered");
        Assert.That(m.Memory.Read(data + 4, 4), Is.EqualTo((ulong)LocalApic.VersionValue));
        Assert.That(mmu.Stats.ApicEmulations, Is.EqualTo(2), "each access faults to Emulate");
        Assert.That(mmu.Stats.MmioSptesCreated, Is.Zero);
        Assert.That(mmu.Tdp.Lookup(MmuContext.ApicAccessGfn, out _), Is.Zero, "nothing is cached for the APIC page");
    }
}
