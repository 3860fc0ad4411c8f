using Emulator.Core.Cpu;
using Emulator.Core.Timing;

namespace Emulator.Core.Devices.Apic;

/// <summary>
/// The hypervisor's software local APIC of one vCPU (xAPIC MMIO page and x2APIC MSRs 0x800–0x8FF).
/// STUB: the contract the CPU and the platform rely on; the full model replaces the bodies.
/// </summary>
public sealed class LocalApic : IInterruptController, IApicTarget
{
    public const ulong DefaultBase = 0xFEE0_0000;
    public const ulong PageSize = 0x1000;

    private readonly ApicBus _bus;
    private readonly EventQueue _events;

    public LocalApic(Cpu.Cpu cpu, uint apicId, ApicBus bus, EventQueue events)
    {
        Cpu = cpu;
        ApicId = apicId;
        _bus = bus;
        _events = events;
        cpu.Apic = this;
        cpu.Interrupts = this;
        bus.Add(this);
    }

    public Cpu.Cpu Cpu { get; }

    public uint ApicId { get; }

    /// <summary>The PIC's INTR, seen through LINT0 in ExtINT mode (or directly while the APIC is disabled).</summary>
    public IExtIntSource? ExtInt { get; set; }

    public bool X2ApicMode => (Cpu.ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseExtd) != 0;

    public bool HardwareEnabled => (Cpu.ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseEnable) != 0;

    public int ArbitrationPriority => Cpu.Tpr;

    public bool HasPendingInterrupt => ExtInt is { ExtIntPending: true };

    public int Acknowledge() => ExtInt?.AcknowledgeExtInt() ?? -1;

    public bool MatchesLogical(uint destination) => false;

    public void Accept(in ApicMessage message)
    {
        switch (message.Mode)
        {
            case ApicDeliveryMode.Nmi:
                Cpu.RaiseNmi();
                break;
            case ApicDeliveryMode.Init:
                Cpu.Init();
                break;
            case ApicDeliveryMode.StartUp:
                Cpu.StartUp(message.Vector);
                break;
        }
    }

    /// <summary>xAPIC register read at <paramref name="offset"/> in the APIC page.</summary>
    public ulong ReadMmio(ulong offset, int size) => 0;

    public void WriteMmio(ulong offset, int size, ulong value)
    {
    }

    /// <summary>RDMSR of an x2APIC register (0x800–0x8FF); false → #GP.</summary>
    public bool ReadMsr(uint msr, out ulong value)
    {
        value = 0;
        return false;
    }

    /// <summary>WRMSR of an x2APIC register; false → #GP.</summary>
    public bool WriteMsr(uint msr, ulong value) => false;

    /// <summary>
    /// IA32_APIC_BASE is changing from <paramref name="old"/> to <paramref name="value"/> (reserved bits already
    /// checked). False refuses an invalid mode transition (#GP).
    /// </summary>
    public bool ApicBaseChanging(ulong old, ulong value) => true;

    /// <summary>INIT: every register back to its reset value except the APIC ID and IA32_APIC_BASE.</summary>
    public void Reset()
    {
    }

    /// <summary>The LINT0/LINT1 input pins.</summary>
    public void SetLint(int pin, bool level)
    {
    }
}
