using Emulator.Cli.Guests;
using Emulator.Svm.Run;

namespace Emulator.Cli.Suite;

/// <summary>
/// A guest built into emu, named <c>builtin:NAME</c> in a suite, with the machine it needs unless the case says otherwise.
/// <paramref name="Unavailable"/> says why this build of emu lacks it (a compiled workload built without gcc): its cases are skipped.
/// </summary>
internal sealed record BuiltinGuest(string Name, string Description, Action<Machine> Install, ulong? Memory = null, IReadOnlyList<string>? CpuFeatures = null, string? Unavailable = null);

/// <summary>
/// The guests emu carries: <c>demo</c> (what <c>emu boot</c> runs without an image), <c>workload</c> (the endless
/// integer loop of <c>emu bench cpu</c>), <c>apicv-toggle</c> (the guest of <c>emu bench apicv-toggle</c>), <c>nested-apic</c>
/// (an L2's reads of the APIC page's address, <see cref="NestedApicGuest"/>) and the nested-SVM workloads of <c>emu bench nested</c>
/// (<c>nested-vmmcall</c>, <c>nested-npf-shadow</c>, <c>nested-npf-reflect</c>, <c>nested-vmmcall-flush</c>). The endless ones need a
/// max-instructions or max-cycles limit.
/// </summary>
internal static class BuiltinGuests
{
    public const string Prefix = "builtin:";

    /// <summary>Iterations of <c>builtin:apicv-toggle</c> (one inhibit and one un-inhibit each).</summary>
    public const int ApicvToggleIterations = 200;

    private static readonly string[] s_nestedFeatures = ["+svm", "+npt", "+nrip_save"];

    public static IReadOnlyList<BuiltinGuest> All { get; } = Build();

    public static BuiltinGuest? Find(string name) => All.FirstOrDefault(g => g.Name == name);

    private static List<BuiltinGuest> Build()
    {
        var all = new List<BuiltinGuest>
        {
            new("demo", "the guest 'emu boot' runs without an image", m => DemoGuest.Install(m.Cpu)),
            new("workload", "the endless integer loop of 'emu bench cpu'", m => WorkloadGuest.Install(m.Cpu)),
            new(
                "apicv-toggle",
                $"the guest of 'emu bench apicv-toggle', {ApicvToggleIterations} iterations (any number of vCPUs)",
                m => ApicvToggleGuest.Install(m, ApicvToggleIterations),
                ApicvToggleGuest.MemorySize,
                ApicvToggleGuest.CpuFeatures),
        };
        foreach (string name in NestedGuest.Names)
        {
            all.Add(new("nested-" + name, $"the endless nested-SVM workload '{name}' of 'emu bench nested'", m =>
            {
                // vmmcall-flush is vmmcall with L0 flushing the TLB at every world switch, as NestedWorkload sets it up.
                foreach (var l0 in m.L0)
                {
                    l0.Nested.FlushOnTransition = name == "vmmcall-flush";
                }

                NestedGuest.Install(m.Cpu, name);
            }, NestedGuest.MemorySize, s_nestedFeatures));
        }

        all.Add(new("mix", $"the gcc-compiled workload 'mix' of 'emu bench cpu', {Workloads.CompiledWorkload.BuiltinRounds} rounds; prints its checksum and ends (isa-debug-exit status 1)", m => Workloads.CompiledWorkload.Mix.Install(m.Cpu, Workloads.CompiledWorkload.BuiltinRounds), Unavailable: Workloads.CompiledWorkload.Mix.IsBuilt ? null : Workloads.CompiledWorkload.Mix.NotBuiltMessage));
        all.Add(new(
            "nested-apic",
            "an L2 reads the APIC page's address with and without L1's nested paging and sees L1's APIC (L0 emulates it)",
            m => NestedApicGuest.Install(m.Cpu),
            NestedApicGuest.MemorySize,
            NestedApicGuest.CpuFeatures));
        return all;
    }
}
