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
    /// <summary>The defaults, shared by every CPU built without a table: never modify it (use <see cref="TryParse"/>).</summary>
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

    /// <summary>Sets a class's cycles; before any vCPU is made with the table (decoded ops and vCPUs keep what it said then).</summary>
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

    // What inhibiting and un-inhibiting APICv costs L0 (docs/avic.md, "What a toggle costs"). KVM publishes no cycle
    // counts for these steps; the defaults are estimates placed against the figures that do exist: an SVM exit and
    // re-entry of about 1,350 cycles (VmexitRoundTrip), an expedited SRCU grace period that "can complete in less than
    // a microsecond" with no readers (Paul McKenney, commit 22607d66bbc3, 2017), and about 20 ms for a normal grace
    // period on a CONFIG_HZ=100 host (Sean Christopherson, "KVM: Expedite SRCU callbacks ...", March 2026). Cycles
    // assume a 3 GHz host.

    /// <summary>
    /// Kicking one running vCPU and waiting for it to leave guest mode (KVM_REQUEST_WAIT: an IPI, then the wait for
    /// the target's exit), charged to the vCPU that asks; the target pays its own exit (<see cref="VmexitRoundTrip"/>).
    /// </summary>
    public ulong VcpuKick { get; set; } = 1500;

    /// <summary>Taking and releasing mmu_lock for write, uncontended.</summary>
    public ulong MmuLockWrite { get; set; } = 100;

    /// <summary>Clearing one SPTE during a zap (walk share, atomic clear, freeing its table when emptied).</summary>
    public ulong SpteZap { get; set; } = 50;

    /// <summary>One memslot-array install: copy the array with the change, publish it, bump the generation.</summary>
    public ulong MemslotInstall { get; set; } = 4000;

    /// <summary>
    /// synchronize_srcu_expedited on kvm->srcu after an install: about 10 µs, between the sub-microsecond figure for
    /// no readers and a normal grace period, since every vCPU thread outside guest mode is an SRCU reader.
    /// </summary>
    public ulong SrcuGracePeriod { get; set; } = 30000;

    /// <summary>A vCPU reloading its MMU after every root was invalidated (kvm_mmu_zap_all_fast): free the obsolete root, build and load a new one.</summary>
    public ulong MmuRootReload { get; set; } = 3000;

    /// <summary>
    /// An APIC access the AVIC unit completes without an exit, on top of the instruction's own cost: the backing-page
    /// access behind the APIC-access page (estimate: an L1-resident memory access).
    /// </summary>
    public ulong AvicAccess { get; set; } = 5;

    /// <summary>Names of the cost classes in a cost-table file: the <see cref="CostClass"/> names in lower case, in order.</summary>
    private static readonly string[] ClassNames = Array.ConvertAll(
        Enum.GetNames<CostClass>()[..(int)CostClass.Count], n => n.ToLowerInvariant());

    /// <summary>Names of the extras in a cost-table file, in the order <see cref="GetExtra"/> and <see cref="SetExtra"/> number them.</summary>
    private static readonly string[] ExtraNames =
        [
            "tlb_miss", "page_walk_level", "mmio_access", "event_delivery", "decode_miss", "vmexit_round_trip", "fault_handling",
            "instruction_emulation", "hypervisor_exit", "vcpu_kick", "mmu_lock_write", "spte_zap", "memslot_install",
            "srcu_grace_period", "mmu_root_reload", "avic_access",
        ];

    private ulong GetExtra(int i) => i switch
    {
        0 => TlbMiss,
        1 => PageWalkLevel,
        2 => MmioAccess,
        3 => EventDelivery,
        4 => DecodeMiss,
        5 => VmexitRoundTrip,
        6 => FaultHandling,
        7 => InstructionEmulation,
        8 => HypervisorExit,
        9 => VcpuKick,
        10 => MmuLockWrite,
        11 => SpteZap,
        12 => MemslotInstall,
        13 => SrcuGracePeriod,
        14 => MmuRootReload,
        _ => AvicAccess,
    };

    private void SetExtra(int i, ulong v)
    {
        switch (i)
        {
            case 0: TlbMiss = v; break;
            case 1: PageWalkLevel = v; break;
            case 2: MmioAccess = v; break;
            case 3: EventDelivery = v; break;
            case 4: DecodeMiss = v; break;
            case 5: VmexitRoundTrip = v; break;
            case 6: FaultHandling = v; break;
            case 7: InstructionEmulation = v; break;
            case 8: HypervisorExit = v; break;
            case 9: VcpuKick = v; break;
            case 10: MmuLockWrite = v; break;
            case 11: SpteZap = v; break;
            case 12: MemslotInstall = v; break;
            case 13: SrcuGracePeriod = v; break;
            case 14: MmuRootReload = v; break;
            default: AvicAccess = v; break;
        }
    }

    /// <summary>
    /// The table in the cost-table file format (<c>emu costs</c>, read back by <see cref="TryParse"/>):
    /// one <c>name cycles</c> line per entry, classes as <c>class.NAME</c> (base cycles of every instruction
    /// in the class), then the named extras.
    /// </summary>
    public string Format()
    {
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < ClassNames.Length; i++)
        {
            sb.Append("class.").Append(ClassNames[i]).Append(' ').Append(_classCycles[i]).Append('\n');
        }

        for (int i = 0; i < ExtraNames.Length; i++)
        {
            sb.Append(ExtraNames[i]).Append(' ').Append(GetExtra(i)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>
    /// Reads a cost-table file (<c>--cost-table FILE</c>): lines <c>name cycles</c>, with <c>#</c> comments and
    /// blank lines; entries not named keep their defaults. Cycles are decimal or 0x-hex; class costs fit 16 bits.
    /// An unknown or repeated name or a bad number is refused with the line number.
    /// </summary>
    public static bool TryParse(string text, out CostTable table, out string? error)
    {
        table = new CostTable();
        error = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n];
            int hash = line.IndexOf('#');
            if (hash >= 0)
            {
                line = line[..hash];
            }

            string[] fields = line.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0)
            {
                continue;
            }

            string where = $"line {n + 1}";
            if (fields.Length != 2)
            {
                error = $"{where}: expected 'name cycles'";
                return false;
            }

            string name = fields[0];
            if (!TryParseCycles(fields[1], out ulong cycles))
            {
                error = $"{where}: '{fields[1]}' is not a number of cycles";
                return false;
            }

            if (!seen.Add(name))
            {
                error = $"{where}: '{name}' is given twice";
                return false;
            }

            int cls = name.StartsWith("class.", StringComparison.Ordinal) ? Array.IndexOf(ClassNames, name[6..]) : -1;
            int extra = Array.IndexOf(ExtraNames, name);
            if (cls >= 0)
            {
                if (cycles > ushort.MaxValue)
                {
                    error = $"{where}: {name} {cycles} is more than {ushort.MaxValue} cycles";
                    return false;
                }

                table._classCycles[cls] = (ushort)cycles;
            }
            else if (extra >= 0)
            {
                table.SetExtra(extra, cycles);
            }
            else
            {
                error = $"{where}: unknown cost '{name}' (known: class.{string.Join(", class.", ClassNames)}, {string.Join(", ", ExtraNames)})";
                return false;
            }
        }

        return true;
    }

    private static bool TryParseCycles(string text, out ulong cycles) =>
        text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out cycles)
            : ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out cycles);
}
