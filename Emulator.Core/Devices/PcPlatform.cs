using Emulator.Core.Devices.Apic;
using Emulator.Core.Memory;
using Emulator.Core.Timing;

namespace Emulator.Core.Devices;

/// <summary>
/// The interrupt and timer side of QEMU's pc machine (PLATFORM.md): one local APIC per vCPU on an APIC
/// bus, the ISA interrupt router, and the timer queue every device arms on the cycle clock. Console and
/// test devices are attached by the machine; this class owns what the APIC, PIC, I/O APIC and timers share.
/// </summary>
public sealed class PcPlatform
{
    public PcPlatform(PhysicalMemory memory, IReadOnlyList<Cpu.Cpu> cpus)
    {
        Memory = memory;
        Events = new EventQueue();
        ApicBus = new ApicBus();
        var apics = new LocalApic[cpus.Count];
        for (int i = 0; i < cpus.Count; i++)
        {
            apics[i] = new LocalApic(cpus[i], (uint)i, ApicBus, Events);
        }

        Apics = apics;
        Isa = new IsaIrqRouter(null, null);
        memory.Mmio.Register(LocalApic.DefaultBase, LocalApic.PageSize, new ApicPage(memory));
    }

    public PhysicalMemory Memory { get; }

    public EventQueue Events { get; }

    public ApicBus ApicBus { get; }

    public IReadOnlyList<LocalApic> Apics { get; }

    /// <summary>ISA IRQ lines 0–15 (and GSIs above, to the I/O APIC).</summary>
    public IsaIrqRouter Isa { get; }

    /// <summary>
    /// The xAPIC page: one guest-physical page, but every vCPU sees its own APIC there, so the access is
    /// routed to the APIC of the vCPU that is running.
    /// </summary>
    private sealed class ApicPage(PhysicalMemory memory) : IMmioDevice
    {
        public ulong Read(ulong offset, int size) =>
            memory.Running?.Apic is { } apic ? apic.ReadMmio(offset, size) : ulong.MaxValue;

        public void Write(ulong offset, int size, ulong value) => memory.Running?.Apic?.WriteMmio(offset, size, value);
    }
}
