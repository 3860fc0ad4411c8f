using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Emulator.Cli.Workloads;
using Emulator.Svm.Run;

namespace Emulator.Benchmarks;

/// <summary>
/// "Block cache": the decoded-block caches' total memory of a machine with the case's <c>Smp</c> vCPUs
/// (<see cref="Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint"/>), measured once per vCPU count in the host process.
/// </summary>
public sealed class DecodedBlockCacheColumn : IColumn
{
    private readonly Dictionary<int, string> _bySmp = [];

    public string Id => nameof(DecodedBlockCacheColumn);

    public string ColumnName => "Block cache";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Size;

    public string Legend => "Total memory of the decoded-block caches of a machine with Smp vCPUs (distinct caches, array storage)";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        ArgumentNullException.ThrowIfNull(benchmarkCase);
        int smp = benchmarkCase.Parameters["Smp"] is int n ? n : 1;
        if (!_bySmp.TryGetValue(smp, out string? text))
        {
            using var machine = new Machine(new MachineOptions { MemorySize = 16 << 20, Cpus = smp });
            var (bytes, caches) = Emulator.Core.Cpu.Cpu.DecodedBlockCacheFootprint(machine.Cpus);
            text = $"{bytes / 1048576.0:0.0} MiB in {caches}";
            _bySmp[smp] = text;
        }

        return text;
    }

    public override string ToString() => ColumnName;
}
