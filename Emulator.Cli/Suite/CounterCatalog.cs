using System.Text.RegularExpressions;
using Emulator.Core.Svm;
using Emulator.Svm.Run;

namespace Emulator.Cli.Suite;

/// <summary>
/// The counter names a suite may expect: those <c>emu boot --stats</c> prints (<see cref="Machine.Stats"/>).
/// Most are always listed and are taken from a small machine built once; two families depend on the run and
/// are matched by pattern: <c>vcpu.N.*</c> for every vCPU a machine can have, and <c>svm.exits.l0|l1|l2.NAME</c>
/// for every SVM exit name (listed only once such an exit happened).
/// </summary>
internal static partial class CounterCatalog
{
    private static readonly Lazy<(HashSet<string> Fixed, HashSet<string> PerVcpu, HashSet<string> Exits)> s_names = new(Build);

    public static bool IsKnown(string name)
    {
        var (fixedNames, perVcpu, exits) = s_names.Value;
        if (fixedNames.Contains(name))
        {
            return true;
        }

        if (VcpuPattern().Match(name) is { Success: true } v)
        {
            return int.TryParse(v.Groups[1].Value, out int n) && n < MachineOptions.MaxCpus && perVcpu.Contains(v.Groups[2].Value);
        }

        // An exit code without a name is listed by its number (svm.exits.l1.0xa7).
        return ExitPattern().Match(name) is { Success: true } e
            && (exits.Contains(e.Groups[1].Value) || (e.Groups[1].Value.StartsWith("0x", StringComparison.Ordinal) && Values.TryParseNumber(e.Groups[1].Value, out _)));
    }

    /// <summary>The known names closest to <paramref name="name"/> (fewest edits), for error messages.</summary>
    public static IEnumerable<string> Near(string name) =>
        s_names.Value.Fixed.Select(n => (Name: n, Distance: Distance(n, name)))
            .Where(x => x.Distance <= Math.Max(2, name.Length / 3))
            .OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal)
            .Take(3).Select(x => x.Name);

    /// <summary>Edit distance (insertions, deletions, substitutions).</summary>
    private static int Distance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            row[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            int diag = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int up = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diag + (a[i - 1] == b[j - 1] ? 0 : 1));
                diag = up;
            }
        }

        return row[b.Length];
    }

    private static (HashSet<string>, HashSet<string>, HashSet<string>) Build()
    {
        var fixedNames = new HashSet<string>(StringComparer.Ordinal);
        var perVcpu = new HashSet<string>(StringComparer.Ordinal);
        using (var probe = new Machine(new MachineOptions { MemorySize = 16UL << 20, CpuFeatures = ["+svm"] }))
        {
            foreach (var (name, _) in probe.Stats())
            {
                if (VcpuPattern().Match(name) is { Success: true } v)
                {
                    perVcpu.Add(v.Groups[2].Value);
                }
                else if (!ExitPattern().IsMatch(name))
                {
                    fixedNames.Add(name);
                }
            }
        }

        // Every exit code SvmExit names (APM vol. 2, appendix C): 0x0-0xA5, NPF and the AVIC exits, and -1.
        var exits = new HashSet<string>(StringComparer.Ordinal);
        for (ulong code = 0; code < 0x100; code++)
        {
            exits.Add(SvmExit.Name(code));
        }

        foreach (ulong code in new[] { SvmExit.Npf, SvmExit.AvicIncompleteIpi, SvmExit.AvicNoAccel, SvmExit.Invalid })
        {
            exits.Add(SvmExit.Name(code));
        }

        exits.RemoveWhere(n => n.StartsWith("0x", StringComparison.Ordinal));
        return (fixedNames, perVcpu, exits);
    }

    [GeneratedRegex(@"^vcpu\.([0-9]+)\.([a-z0-9_.]+)$")]
    private static partial Regex VcpuPattern();

    [GeneratedRegex(@"^svm\.exits\.l[012]\.([a-z0-9_]+)$")]
    private static partial Regex ExitPattern();
}
