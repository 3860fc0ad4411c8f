using System.Globalization;
using Emulator.Svm.Run;

namespace Emulator.Cli.Guests;

/// <summary>What <c>emu boot</c> prints after the demo's run: the counters that show each path it took.</summary>
public static partial class DemoGuest
{
    public const string SummaryTitle = "emu: the demo's paths (emu boot --stats prints every counter):";

    /// <summary>The counters, in the order the demo takes their paths, with a few words each.</summary>
    public static readonly IReadOnlyList<(string Counter, string Words)> SummaryCounters =
    [
        ("apicv.active", "APICv active at the end (1): no VM-wide reason left"),
        ("avic.accelerated", "APIC accesses the AVIC unit served inside L1 (TPR reads and writes, EOIs)"),
        ("avic.trap", "APIC writes the unit stored, then L0 acted on (SVR, timer setup, LINT0)"),
        ("avic.ipi", "IPIs the unit delivered itself (the self-IPI)"),
        ("apic.timer_fires", "APIC timer expiries (the one-shot timer, emulated by L0)"),
        ("svm.exits.l1.vmrun", "L1's VMRUN exits: L0 emulates VMRUN and runs L2 (its own AVIC off meanwhile, 5.19)"),
        ("svm.exits.l2.vmmcall", "L2's VMMCALLs, reflected to L1"),
        ("mmu.shadow.faults", "L2's faults L0 fixed in its shadow of L1's nested page tables"),
        ("apicv.inhibit.irqwin", "IRQWIN inhibits: the PIT's ExtINT waited behind IF=0, L0 asked for a window"),
        ("apicv.transitions", "APICv active -> inhibited -> active again"),
        ("mmu.zap.sptes", "SPTEs L0 zapped (with them the APIC-access page's, on the inhibit)"),
        ("mmu.apic_emulations", "APIC accesses L0 emulated while APICv was inhibited (no MMIO SPTE cached)"),
        ("mmu.pf.emulate", "faults L0 sent to emulation (those, and the pc-testdev MMIO window)"),
        ("svm.exits.l1.ioio", "L1's port I/O exits (COM1, the 8259, the PIT, the shutdown port)"),
    ];

    /// <summary>After the run: the counters that show each path the demo took, one aligned line each.</summary>
    public static void WriteSummary(TextWriter w, Machine machine)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(machine);
        var stats = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var (name, value) in machine.Stats())
        {
            stats[name] = value;
        }

        w.WriteLine(SummaryTitle);
        foreach (var (counter, words) in SummaryCounters)
        {
            string value = stats.GetValueOrDefault(counter).ToString(CultureInfo.InvariantCulture);
            w.WriteLine($"  {counter,-22} {value,8}  {words}");
        }
    }
}
