using Emulator.Core.Devices;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Memory;
using CpuModel = Emulator.Core.Cpu.Cpu;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// A few vCPUs with their local APICs on one bus, as <see cref="PcPlatform"/> builds them, for register-level
/// tests. Time is vCPU 0's cycle counter; <see cref="Advance"/> moves it and runs the due timer events.
/// </summary>
internal sealed class ApicRig : IDisposable
{
    public ApicRig(int cpus = 2)
    {
        Memory = PhysicalMemory.Create(16 << 20);
        var list = new CpuModel[cpus];
        for (int i = 0; i < cpus; i++)
        {
            list[i] = new CpuModel(Memory) { IsBsp = i == 0 };
            if (i != 0)
            {
                list[i].ApicBase &= ~CpuModel.ApicBaseBsp;
                list[i].WaitingForSipi = true;
            }
        }

        Cpus = list;
        Platform = new PcPlatform(Memory, list);
        Platform.Events.Clock = () => Cpus[0].Cycles;
        EoiBroadcasts = [];
        Platform.ApicBus.OnEoi(v => EoiBroadcasts.Add(v));
    }

    public PhysicalMemory Memory { get; }

    public IReadOnlyList<CpuModel> Cpus { get; }

    public PcPlatform Platform { get; }

    public List<byte> EoiBroadcasts { get; }

    public LocalApic this[int i] => Platform.Apics[i];

    public uint Read(int apic, int reg) => (uint)this[apic].ReadMmio((ulong)reg, 4);

    public void Write(int apic, int reg, uint value) => this[apic].WriteMmio((ulong)reg, 4, value);

    /// <summary>Software-enables an APIC (SVR = 0x1FF: enable, spurious vector 0xFF).</summary>
    public void Enable(int apic) => Write(apic, ApicReg.Svr, 0x1FF);

    /// <summary>Sends from APIC <paramref name="from"/> through the xAPIC ICR.</summary>
    public void SendIcr(int from, uint low, byte destination = 0)
    {
        Write(from, ApicReg.IcrHigh, (uint)destination << 24);
        Write(from, ApicReg.IcrLow, low);
    }

    public void Advance(ulong cycles)
    {
        Cpus[0].Cycles += cycles;
        Platform.Events.RunDue(Cpus[0].Cycles);
    }

    public bool Irr(int apic, int vector) => (Read(apic, ApicReg.Irr + ((vector >> 5) << 4)) & (1u << (vector & 31))) != 0;

    public bool Isr(int apic, int vector) => (Read(apic, ApicReg.Isr + ((vector >> 5) << 4)) & (1u << (vector & 31))) != 0;

    public bool Tmr(int apic, int vector) => (Read(apic, ApicReg.Tmr + ((vector >> 5) << 4)) & (1u << (vector & 31))) != 0;

    /// <summary>Switches APIC <paramref name="apic"/> to x2APIC mode through IA32_APIC_BASE, as a guest would.</summary>
    public bool EnterX2Apic(int apic)
    {
        var cpu = Cpus[apic];
        return cpu.WriteMsr(Emulator.Core.Cpu.Msr.ApicBase, cpu.ApicBase | CpuModel.ApicBaseExtd);
    }

    public void Dispose()
    {
        Platform.Dispose();
        Memory.Dispose();
    }
}

/// <summary>An 8259-style INTR line for the LINT0/ExtINT tests: a request waits until acknowledged.</summary>
internal sealed class IntrLine : IExtIntSource
{
    public int Vector { get; set; } = 0x20;

    public bool ExtIntPending { get; set; }

    public int Acknowledges { get; private set; }

    public int AcknowledgeExtInt()
    {
        Acknowledges++;
        if (!ExtIntPending)
        {
            return 0x27; // the 8259's spurious IRQ 7
        }

        ExtIntPending = false;
        return Vector;
    }
}
