using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;

namespace Emulator.Svm.Avic;

/// <summary>L0's local APIC of a vCPU as the AVIC unit sees it: its register page is the backing page.</summary>
internal sealed unsafe class LocalApicBacking(Cpu cpu, LocalApic apic) : IAvicBacking
{
    public byte* Page => apic.RegisterPage;

    public void RescanIrr() => apic.RescanIrr();

    public void CommitWrite(int offset) => apic.CommitTrappedWrite(offset);

    // L0's instruction emulation reaches the APIC as any emulated access does (charged as an emulation).
    public ulong EmulateRead(int offset, int size) => cpu.Phys.EmulatedRead(apic.MmioBase + (ulong)offset, size);

    public void EmulateWrite(int offset, int size, ulong value) => cpu.Phys.EmulatedWrite(apic.MmioBase + (ulong)offset, size, value);
}
