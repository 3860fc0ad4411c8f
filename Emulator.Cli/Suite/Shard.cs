using System.Globalization;

namespace Emulator.Cli.Suite;

/// <summary>
/// <c>--shard I/N</c>: part I (1-based) of N of a suite, so a CI system can spread one suite over N runners.
/// The cases are sorted by name (then suite and source, for equal names) and dealt out in turn: the case at
/// position p of that order belongs to shard p mod N + 1. Every case is in exactly one shard, the shards differ
/// in size by at most one, and the split depends only on the selected cases, not on the order of the files.
/// </summary>
internal readonly record struct Shard(int Index, int Count)
{
    public static bool TryParse(string text, out Shard shard, out string? error)
    {
        shard = default;
        error = null;
        string[] parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n))
        {
            error = $"'{text}': expected I/N, such as 1/4";
            return false;
        }

        if (n < 1 || i < 1 || i > n)
        {
            error = $"'{text}': need 1 <= I <= N";
            return false;
        }

        shard = new Shard(i, n);
        return true;
    }

    /// <summary>This shard's cases, in their original order.</summary>
    public List<SuiteCase> Select(IReadOnlyList<SuiteCase> cases)
    {
        var order = Enumerable.Range(0, cases.Count)
            .OrderBy(i => cases[i].Name, StringComparer.Ordinal)
            .ThenBy(i => cases[i].Suite, StringComparer.Ordinal)
            .ThenBy(i => cases[i].Source, StringComparer.Ordinal)
            .ThenBy(i => i)
            .ToArray();
        var mine = new bool[cases.Count];
        for (int p = 0; p < order.Length; p++)
        {
            mine[order[p]] = p % Count == Index - 1;
        }

        return [.. cases.Where((_, i) => mine[i])];
    }

    public override string ToString() => $"{Index}/{Count}";
}
