using System.Globalization;
using System.Text.RegularExpressions;

namespace Emulator.Cli;

/// <summary>Parsers for option values that System.CommandLine does not know: sizes, addresses, feature lists.</summary>
public static partial class Values
{
    /// <summary>
    /// A memory size: a number with an optional K, M, G or T suffix (binary units, case-insensitive, an
    /// optional trailing B or iB). A bare number means MiB, as QEMU's <c>-m</c> does.
    /// </summary>
    public static bool TryParseSize(string text, out ulong bytes)
    {
        bytes = 0;
        var m = SizePattern().Match(text.Trim());
        if (!m.Success || !ulong.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n))
        {
            return false;
        }

        int shift = m.Groups[2].Value.ToUpperInvariant() switch
        {
            "K" => 10,
            "M" or "" => 20,
            "G" => 30,
            "T" => 40,
            _ => -1,
        };
        if (shift < 0 || n > (ulong.MaxValue >> shift))
        {
            return false;
        }

        bytes = n << shift;
        return true;
    }

    /// <summary>An address or count: decimal, or hexadecimal with a 0x prefix; '_' separators allowed.</summary>
    public static bool TryParseNumber(string text, out ulong value)
    {
        string t = text.Trim().Replace("_", "", StringComparison.Ordinal);
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return ulong.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && t.Length > 2;
        }

        return ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>
    /// A <c>--cpu</c> list: comma-separated feature names, each optionally prefixed with + or -, as in
    /// QEMU's <c>-cpu max,-x2apic</c>; a leading model name ("max", "host") is accepted and dropped.
    /// </summary>
    public static bool TryParseFeatures(string text, out List<string> features, out string? error)
    {
        features = [];
        error = null;
        var parts = text.Split(',');
        for (int i = 0; i < parts.Length; i++)
        {
            string p = parts[i].Trim();
            if (p.Length == 0)
            {
                error = "empty feature name";
                return false;
            }

            if (!FeaturePattern().IsMatch(p))
            {
                error = $"'{p}' is not a feature name ([+|-]name, letters, digits, '_', '-' and '.')";
                return false;
            }

            if (i == 0 && p is "max" or "host")
            {
                continue;
            }

            features.Add(p[0] is '+' or '-' ? p : "+" + p);
        }

        return true;
    }

    [GeneratedRegex("^([0-9]+)\\s*([KMGTkmgt]?)(?:i?[Bb])?$")]
    private static partial Regex SizePattern();

    [GeneratedRegex("^[+-]?[a-z0-9][a-z0-9_.-]*$", RegexOptions.IgnoreCase)]
    private static partial Regex FeaturePattern();
}
