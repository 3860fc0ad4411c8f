namespace Emulator.Core.Timing;

/// <summary>Cost classes: every handler belongs to one; the class gives its base cycles.</summary>
public enum CostClass : byte
{
    Simple,       // MOV, ALU reg/reg, LEA, NOP
    Memory,       // loads, stores, ALU with memory
    Branch,       // JMP, Jcc, CALL, RET
    Multiply,
    Divide,
    String,       // per iteration of a string instruction
    Stack,
    System,       // MOV CR, LGDT, segment loads …
    Serializing,  // CPUID, WRMSR, IRET, far control transfer
    Io,           // IN/OUT
    X87,
    Sse,
    Count,
}

/// <summary>
/// The cycle model's data: base cycles per cost class and named extras. Defaults approximate a Zen 3
/// core; a run charges the same numbers every time, so cycle counts are deterministic.
/// </summary>
public sealed class CostTable
{
    public static CostTable Default { get; } = new();

    private readonly ushort[] _classCycles =
    [
        1,   // Simple
        4,   // Memory
        2,   // Branch
        3,   // Multiply
        20,  // Divide
        2,   // String
        2,   // Stack
        20,  // System
        60,  // Serializing
        150, // Io
        5,   // X87
        3,   // Sse
    ];

    public ushort ClassCycles(CostClass c) => _classCycles[(int)c];

    public void SetClassCycles(CostClass c, ushort cycles) => _classCycles[(int)c] = cycles;

    /// <summary>Software-TLB miss that hits RAM (fill).</summary>
    public ulong TlbMiss { get; set; } = 7;

    /// <summary>One level of a guest page-table walk.</summary>
    public ulong PageWalkLevel { get; set; } = 5;

    /// <summary>An access that reached a device through the MMIO bus (instruction emulation).</summary>
    public ulong MmioAccess { get; set; } = 2500;

    /// <summary>Delivering an exception or interrupt through the IDT/IVT.</summary>
    public ulong EventDelivery { get; set; } = 100;

    /// <summary>A decoded-block cache miss (decode work).</summary>
    public ulong DecodeMiss { get; set; } = 0;

    /// <summary>#VMEXIT + VMRUN round trip (about 1,350 cycles on AMD EPYC).</summary>
    public ulong VmexitRoundTrip { get; set; } = 1350;

    /// <summary>L0's nested-paging fault handler (memslot lookup, SPTE install), on top of the round trip.</summary>
    public ulong FaultHandling { get; set; } = 600;

    /// <summary>Instruction emulation of an access that has no direct mapping (MMIO, read-only, inhibited APIC page).</summary>
    public ulong InstructionEmulation { get; set; } = 1200;

    /// <summary>A full hypervisor exit and return (about 2,500 cycles).</summary>
    public ulong HypervisorExit { get; set; } = 2500;
}
