using System.Globalization;
using System.Text;

namespace Emulator.Cli.Suite;

/// <summary>
/// Reads kvm-unit-tests' <c>unittests.cfg</c> as upstream writes it: INI-like sections <c>[name]</c> with
/// <c>key = value</c> lines (<c>file</c>, <c>smp</c>, <c>test_args</c>, <c>qemu_params</c> or the older
/// <c>extra_params</c>, <c>arch</c>, <c>groups</c>, <c>accel</c>, <c>timeout</c>, <c>check</c>, <c>machine</c>,
/// <c>disabled_if</c>), <c>#</c> comments, and parameter values spread over lines between <c>"""</c> marks.
/// Each section becomes a <see cref="SuiteCase"/>; what emu cannot honour becomes a skip reason or a note.
/// </summary>
internal static class UnittestsCfg
{
    /// <summary>The architecture emu emulates; cases for another one are skipped.</summary>
    public const string Arch = "x86_64";

    /// <summary>Parses <paramref name="text"/>; images are looked up in <paramref name="imagesDir"/>.</summary>
    /// <param name="groupSelected">True when the user asked for a group: cases in group "nodefault" then run, as upstream does.</param>
    /// <param name="now">The host time of the run (a <c>`date +%s`</c> and every case's RTC start); default the current time.</param>
    /// <param name="file">The suite file's path, for reports (each case's suite and source).</param>
    public static List<SuiteCase> Parse(string text, string imagesDir, bool groupSelected = false, DateTimeOffset? now = null, string file = "")
    {
        DateTimeOffset start = now ?? DateTimeOffset.UtcNow;
        var cases = new List<SuiteCase>();
        string? name = null;
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        using var reader = new StringReader(text);
        while (reader.ReadLine() is { } raw)
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            if (line[0] == '[' && line[^1] == ']')
            {
                if (name != null)
                {
                    cases.Add(Build(name, keys, imagesDir, groupSelected, start, file));
                }

                name = line[1..^1].Trim();
                keys = new Dictionary<string, string>(StringComparer.Ordinal);
                continue;
            }

            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (name == null || eq <= 0)
            {
                continue;
            }

            string key = line[..eq].Trim();
            string value = line[(eq + 1)..].Trim();
            if (value.StartsWith("\"\"\"", StringComparison.Ordinal))
            {
                value = ReadTripleQuoted(value[3..], reader);
            }

            keys[key] = value;
        }

        if (name != null)
        {
            cases.Add(Build(name, keys, imagesDir, groupSelected, start, file));
        }

        return cases;
    }

    /// <summary>A value between <c>"""</c> marks over several lines; a backslash at a line's end joins it with the next.</summary>
    private static string ReadTripleQuoted(string first, StringReader reader)
    {
        var sb = new StringBuilder();
        string? line = first;
        while (line != null)
        {
            int end = line.IndexOf("\"\"\"", StringComparison.Ordinal);
            if (end >= 0)
            {
                sb.Append(line.AsSpan(0, end));
                break;
            }

            if (line.EndsWith('\\'))
            {
                sb.Append(line.AsSpan(0, line.Length - 1));
            }
            else
            {
                sb.Append(line).Append(' ');
            }

            line = reader.ReadLine();
        }

        return sb.ToString().Trim();
    }

    private static SuiteCase Build(string name, Dictionary<string, string> keys, string imagesDir, bool groupSelected, DateTimeOffset start, string source)
    {
        var notes = new List<string>();
        string? skip = null;
        string file = keys.GetValueOrDefault("file", "");
        string[] groups = keys.GetValueOrDefault("groups", "").Split(' ', StringSplitOptions.RemoveEmptyEntries);

        string paramsText = keys.GetValueOrDefault("qemu_params") ?? keys.GetValueOrDefault("extra_params") ?? "";
        var qemu = QemuParams.Parse(paramsText);
        notes.AddRange(qemu.Notes);

        // Upstream puts the case's -smp before qemu_params on QEMU's command line, and QEMU takes the last.
        int cpus = 1;
        if (keys.TryGetValue("smp", out string? smpText))
        {
            if (int.TryParse(smpText, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1)
            {
                cpus = n;
            }
            else if (qemu.Cpus == null)
            {
                skip ??= $"smp = {smpText}: not a number of vCPUs";
            }
        }

        cpus = qemu.Cpus ?? cpus;

        var timeout = SuiteCase.DefaultTimeout;
        if (keys.TryGetValue("timeout", out string? timeoutText))
        {
            if (TryParseDuration(timeoutText, out var t))
            {
                timeout = t;
            }
            else
            {
                notes.Add($"timeout = {timeoutText}: not a duration, using {SuiteCase.DefaultTimeout.TotalSeconds} s");
            }
        }

        if (keys.TryGetValue("arch", out string? arch) && arch.Length != 0 && arch != Arch)
        {
            skip ??= $"{arch} only";
        }

        if (keys.GetValueOrDefault("accel") is { Length: > 0 } accel && !accel.Equals("tcg", StringComparison.Ordinal))
        {
            skip ??= accel == "kvm" ? "needs KVM" : $"needs accelerator {accel}";
        }

        if (keys.GetValueOrDefault("machine") is { Length: > 0 } machine && !QemuParams.IsPcMachine(machine))
        {
            skip ??= $"needs machine type {machine}";
        }

        skip ??= qemu.SkipReason;
        if (!groupSelected && groups.Contains("nodefault"))
        {
            skip ??= "test marked as manual run only (group nodefault; select a group to run it)";
        }

        if (keys.GetValueOrDefault("check") is { Length: > 0 } check)
        {
            notes.Add($"host check not evaluated: {check}");
        }

        if (keys.GetValueOrDefault("disabled_if") is { Length: > 0 } disabledIf)
        {
            notes.Add($"disabled_if not evaluated: {disabledIf}");
        }

        if (file.Length == 0)
        {
            skip ??= "no file given";
        }

        return new SuiteCase
        {
            Name = name,
            Suite = source.Length == 0 ? "" : Path.GetFileName(source),
            Source = source,
            File = file,
            ImagePath = file.Length == 0 ? "" : Path.Combine(imagesDir, file),
            Cpus = cpus,
            Memory = qemu.Memory ?? SuiteCase.DefaultMemory,
            Append = TestArgs(keys.GetValueOrDefault("test_args", ""), notes, start),
            RtcBase = DateTimeOffset.FromUnixTimeSeconds(start.ToUnixTimeSeconds()).UtcDateTime,
            CpuFeatures = qemu.CpuFeatures,
            Groups = groups,
            Timeout = timeout,
            SkipReason = skip,
            Notes = notes,
        };
    }

    /// <summary>
    /// The <c>test_args</c> text as the kernel sees it: upstream hands the line to the shell, so surrounding
    /// quotes go, and a <c>`date +%s`</c> substitution (the only one upstream uses) becomes the Unix time.
    /// </summary>
    internal static string TestArgs(string text, List<string> notes, DateTimeOffset now)
    {
        string t = StripQuotes(text.Trim());
        while (t.IndexOf('`', StringComparison.Ordinal) is int open and >= 0
            && t.IndexOf('`', open + 1) is int close and > 0)
        {
            string command = t[(open + 1)..close].Trim();
            string replacement = "";
            if (command == "date +%s")
            {
                replacement = now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            }
            else
            {
                notes.Add($"test_args: command substitution `{command}` not run");
            }

            t = t[..open] + replacement + t[(close + 1)..];
        }

        return t.Trim();
    }

    internal static string StripQuotes(string s) =>
        s.Length >= 2 && (s[0] == '"' || s[0] == '\'') && s[^1] == s[0] ? s[1..^1] : s;

    /// <summary>A timeout(1) duration: a number with an optional s, m, h or d suffix (seconds without one).</summary>
    internal static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        string t = text.Trim();
        double unit = 1;
        if (t.Length > 0 && char.IsLetter(t[^1]))
        {
            unit = t[^1] switch
            {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => 0,
            };
            t = t[..^1];
        }

        if (unit == 0 || !double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) || v <= 0)
        {
            return false;
        }

        duration = TimeSpan.FromSeconds(v * unit);
        return true;
    }
}
