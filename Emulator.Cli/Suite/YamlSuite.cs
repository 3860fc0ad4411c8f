using System.Globalization;
using Emulator.Core.Cpu;
using Emulator.Svm.Run;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Emulator.Cli.Suite;

/// <summary>An error in a suite file, with the place it is at (1-based line and column).</summary>
internal sealed class SuiteFileException(string file, long line, long column, string message)
    : Exception($"{file}:{line}:{column}: {message}")
{
    public string File { get; } = file;
    public long Line { get; } = line;
    public long Column { get; } = column;
    public string What { get; } = message;
}

/// <summary>
/// Reads a YAML suite (docs/suite-runner.md): <c>name</c>, <c>defaults</c> (any case key) and <c>cases</c>. A case
/// names a <c>guest</c> (a path relative to the suite file, or <c>builtin:NAME</c>), boot options with the meaning
/// <c>emu boot</c> gives them, scheduled <c>actions</c>, and <c>expect</c>ations. Every unknown key, value of the
/// wrong type, unknown counter, option value or action is an error naming the file, line and column.
/// </summary>
internal static class YamlSuite
{
    private static readonly string[] s_suiteKeys = ["name", "defaults", "cases"];

    private static readonly string[] s_caseKeys =
    [
        "name", "guest", "memory", "smp", "cpu", "apicv-toggle", "apicv-nested", "pit-reinject", "append", "initrd", "max-cycles", "max-instructions",
        "timeout", "groups", "skip", "actions", "expect",
    ];

    private static readonly string[] s_expectKeys = ["exit", "console", "console-not", "kvm-unit-tests", "counters", "cycles"];

    private static readonly string[] s_kutKeys = ["outcome", "tests", "failures", "skipped"];

    private static readonly string[] s_cyclesKeys = ["expected", "tolerance"];

    /// <summary>True for the file names this reader takes (<c>.yaml</c>, <c>.yml</c>).</summary>
    public static bool Handles(string path) =>
        path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Parses <paramref name="text"/>, the suite file <paramref name="file"/>; guest and initrd paths are relative to its
    /// folder after <c>${NAME}</c> is replaced by the variable <paramref name="environment"/> gives (the process
    /// environment when null).
    /// </summary>
    /// <exception cref="SuiteFileException">The file is not a valid suite.</exception>
    public static List<SuiteCase> Parse(string text, string file, Func<string, string?>? environment = null)
    {
        var reader = new Reader(file, environment ?? Environment.GetEnvironmentVariable);
        var stream = new YamlStream();
        try
        {
            // A byte-order mark is not text (SuiteText); the command strips it when it reads the file, this keeps a caller's decoded one out of the first key.
            stream.Load(new StringReader(SuiteText.WithoutMark(text)));
        }
        catch (YamlException e)
        {
            throw new SuiteFileException(file, e.Start.Line, e.Start.Column, YamlMessage(e));
        }

        if (stream.Documents.Count == 0)
        {
            throw new SuiteFileException(file, 1, 1, "empty file; expected a mapping with name, defaults and cases");
        }

        if (stream.Documents.Count > 1)
        {
            throw reader.Error(stream.Documents[1].RootNode, "expected one YAML document, found another");
        }

        return reader.Suite(stream.Documents[0].RootNode);
    }

    private static string YamlMessage(YamlException e)
    {
        // YamlDotNet prefixes its message with the position; keep the words.
        string m = e.InnerException?.Message ?? e.Message;
        int close = m.IndexOf("): ", StringComparison.Ordinal);
        return "not valid YAML: " + (m.StartsWith('(') && close > 0 ? m[(close + 3)..] : m);
    }

    private sealed class Reader(string file, Func<string, string?> environment)
    {
        private readonly string _dir = Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".";

        public SuiteFileException Error(YamlNode node, string message) =>
            new(file, node.Start.Line, node.Start.Column, message);

        public List<SuiteCase> Suite(YamlNode root)
        {
            var top = Mapping(root, "the suite (a mapping with name, defaults and cases)", s_suiteKeys);
            string name = top.TryGetValue("name", out var n) ? Scalar(n.Value, "the suite's name (a string)")
                : throw Error(root, "missing key 'name' (the suite's name)");
            var defaults = top.TryGetValue("defaults", out var d)
                ? Mapping(d.Value, "defaults (a mapping of case keys)", s_caseKeys.Where(k => k != "name").ToArray())
                : [];
            if (!top.TryGetValue("cases", out var c))
            {
                throw Error(root, "missing key 'cases' (a list of cases)");
            }

            if (c.Value is not YamlSequenceNode list || list.Children.Count == 0)
            {
                throw Error(c.Value, "expected 'cases' to be a non-empty list of cases");
            }

            var cases = new List<SuiteCase>();
            var seen = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (var item in list.Children)
            {
                var keys = Mapping(item, "a case (a mapping with name, guest, options and expect)", s_caseKeys);
                var (merged, expect) = Merge(defaults, keys);
                var built = Case(item, merged, expect, name);
                if (!seen.TryAdd(built.Name, item))
                {
                    throw Error(keys["name"].Value, $"case '{built.Name}' appears twice in the suite (first at line {seen[built.Name].Start.Line})");
                }

                cases.Add(built);
            }

            return cases;
        }

        /// <summary>
        /// A case's keys over the defaults. The <c>expect</c> mappings of both are kept, in that order, for
        /// <see cref="Expect"/> to combine, so a case adds to the defaults' expectations rather than replacing them.
        /// </summary>
        private (Dictionary<string, (YamlNode Key, YamlNode Value)> Keys, List<Dictionary<string, (YamlNode Key, YamlNode Value)>> Expect) Merge(
            Dictionary<string, (YamlNode Key, YamlNode Value)> defaults, Dictionary<string, (YamlNode Key, YamlNode Value)> keys)
        {
            var merged = new Dictionary<string, (YamlNode, YamlNode)>(defaults, StringComparer.Ordinal);
            foreach (var (k, v) in keys)
            {
                merged[k] = v;
            }

            var expect = new List<Dictionary<string, (YamlNode, YamlNode)>>();
            foreach (var source in new[] { defaults, keys })
            {
                if (source.TryGetValue("expect", out var e))
                {
                    expect.Add(Mapping(e.Value, "expect (a mapping of expectations)", s_expectKeys));
                }
            }

            return (merged, expect);
        }

        private SuiteCase Case(YamlNode at, Dictionary<string, (YamlNode Key, YamlNode Value)> k, List<Dictionary<string, (YamlNode Key, YamlNode Value)>> expectSources, string suite)
        {
            string name = k.TryGetValue("name", out var n) ? Scalar(n.Value, "the case's name (a string)")
                : throw Error(at, "missing key 'name' (the case's name)");
            if (name.Length == 0)
            {
                throw Error(n.Value, "expected a non-empty case name");
            }

            if (!k.TryGetValue("guest", out var g))
            {
                throw Error(at, $"case '{name}': missing key 'guest' (a path relative to the suite file, or builtin:NAME)");
            }

            string guest = Scalar(g.Value, "guest (a path or builtin:NAME)");
            string? unset = null;
            BuiltinGuest? builtin = null;
            string image = "";
            if (guest.StartsWith(BuiltinGuests.Prefix, StringComparison.Ordinal))
            {
                builtin = BuiltinGuests.Find(guest[BuiltinGuests.Prefix.Length..])
                    ?? throw Error(g.Value, $"unknown built-in guest '{guest}'; expected one of {string.Join(", ", BuiltinGuests.All.Select(b => BuiltinGuests.Prefix + b.Name))}");
            }
            else if (guest.Length == 0)
            {
                throw Error(g.Value, "expected a guest path or builtin:NAME, got an empty string");
            }
            else
            {
                image = Path.Combine(_dir, Expand(g.Value, guest, ref unset));
            }

            ulong memory = builtin?.Memory ?? SuiteCase.DefaultMemory;
            if (k.TryGetValue("memory", out var m))
            {
                string text = Scalar(m.Value, "memory (a size such as 64M)");
                if (!Values.TryParseSize(text, out memory) || memory < (1 << 20) || (memory & 0xFFF) != 0)
                {
                    throw Error(m.Value, $"memory '{text}': expected a size of at least 1M in whole 4 KiB pages (examples: 64M, 1G)");
                }
            }

            int cpus = 1;
            if (k.TryGetValue("smp", out var s))
            {
                cpus = (int)Number(s.Value, "smp (a number of vCPUs)", 1, MachineOptions.MaxCpus);
            }

            IReadOnlyList<string> features = builtin?.CpuFeatures ?? [];
            if (k.TryGetValue("cpu", out var f))
            {
                string text = Scalar(f.Value, "cpu (features such as +x2apic,-npt)");
                if (!Values.TryParseFeatures(text, out var list, out string? error))
                {
                    throw Error(f.Value, $"cpu '{text}': {error}");
                }

                if (list.Count != 0 && !new CpuFeatures().TryApply(string.Join(',', list), out string? unknown))
                {
                    throw Error(f.Value, $"cpu '{text}': {unknown}");
                }

                features = [.. features, .. list];
            }

            var toggle = Mmu.Fault.ApicvToggle.Zap;
            if (k.TryGetValue("apicv-toggle", out var a))
            {
                string text = Scalar(a.Value, "apicv-toggle (zap or memslot)");
                if (!BootCommand.TryParseApicvToggle(text, out toggle))
                {
                    throw Error(a.Value, $"apicv-toggle '{text}': expected zap or memslot");
                }
            }

            var nested = ApicvNestedInhibit.Vm;
            if (k.TryGetValue("apicv-nested", out var an))
            {
                string text = Scalar(an.Value, "apicv-nested (vm or vcpu)");
                if (!BootCommand.TryParseApicvNested(text, out nested))
                {
                    throw Error(an.Value, $"apicv-nested '{text}': expected vm or vcpu");
                }
            }

            bool pitReinject = false;
            if (k.TryGetValue("pit-reinject", out var pr))
            {
                string text = Scalar(pr.Value, "pit-reinject (true or false)");
                if (!bool.TryParse(text, out pitReinject))
                {
                    throw Error(pr.Value, $"pit-reinject '{text}': expected true or false");
                }
            }

            var timeout = SuiteCase.DefaultTimeout;
            if (k.TryGetValue("timeout", out var t))
            {
                string text = Scalar(t.Value, "timeout (seconds, or a duration such as 2m)");
                if (!UnittestsCfg.TryParseDuration(text, out timeout))
                {
                    throw Error(t.Value, $"timeout '{text}': expected a positive number of seconds, optionally with an s, m, h or d suffix");
                }
            }

            string? initrd = null;
            if (k.TryGetValue("initrd", out var i))
            {
                initrd = Path.Combine(_dir, Expand(i.Value, Scalar(i.Value, "initrd (a path relative to the suite file)"), ref unset));
            }

            if (builtin != null && (k.TryGetValue("append", out var imageOnly) || k.TryGetValue("initrd", out imageOnly)))
            {
                throw Error(imageOnly.Key, $"case '{name}': append and initrd need an image, not a built-in guest");
            }

            var actions = new List<ScheduledAction>();
            if (k.TryGetValue("actions", out var act))
            {
                actions = Actions(act.Value);
            }

            var expect = expectSources.Count == 0 ? null : Expect(expectSources);
            if (expect is not { Exit: not null } and not { KvmUnitTests: not null })
            {
                throw Error(k.TryGetValue("expect", out var e) ? e.Key : at, $"case '{name}': expected an 'exit' or 'kvm-unit-tests' expectation (how the run must end)");
            }

            return new SuiteCase
            {
                Name = name,
                Suite = suite,
                Source = $"{file}:{at.Start.Line}:{at.Start.Column}",
                File = guest,
                ImagePath = image,
                Builtin = builtin,
                Cpus = cpus,
                Memory = memory,
                Append = k.TryGetValue("append", out var ap) ? Scalar(ap.Value, "append (the kernel command line)") : "",
                InitrdPath = initrd,
                CpuFeatures = features,
                ApicvToggle = toggle,
                ApicvNested = nested,
                PitReinject = pitReinject,
                MaxCycles = k.TryGetValue("max-cycles", out var mc) ? Number(mc.Value, "max-cycles (a number of cycles)", 1) : ulong.MaxValue,
                MaxInstructions = k.TryGetValue("max-instructions", out var mi) ? Number(mi.Value, "max-instructions (a number of instructions)", 1) : ulong.MaxValue,
                Timeout = timeout,
                Groups = k.TryGetValue("groups", out var gr) ? Strings(gr.Value, "groups (a list of names)") : [],
                SkipReason = k.TryGetValue("skip", out var sk) ? Scalar(sk.Value, "skip (the reason the case is skipped)")
                    : unset != null ? $"{unset} is not set" : null,
                Actions = actions,
                Expect = expect,
            };
        }

        /// <summary>
        /// <paramref name="text"/> (the value of <paramref name="node"/>) with each <c>${NAME}</c> replaced by the
        /// environment variable NAME, so a suite can name images that live outside the repository. A variable that
        /// is unset or empty leaves its name in <paramref name="unset"/> (the first one only): the case cannot run
        /// here and is skipped, not failed. A <c>$</c> not followed by <c>{</c> is kept as it is.
        /// </summary>
        private string Expand(YamlNode node, string text, ref string? unset)
        {
            int dollar = text.IndexOf("${", StringComparison.Ordinal);
            if (dollar < 0)
            {
                return text;
            }

            var result = new System.Text.StringBuilder();
            int from = 0;
            while (dollar >= 0)
            {
                int close = text.IndexOf('}', dollar + 2);
                if (close < 0)
                {
                    throw ErrorAt(node, dollar, $"'{text}': unterminated '${{' (expected ${{NAME}})");
                }

                string name = text[(dollar + 2)..close];
                if (!IsVariableName(name))
                {
                    throw ErrorAt(node, dollar, $"'{text}': '${{{name}}}' is not a variable name (letters, digits and '_', not starting with a digit)");
                }

                string? value = environment(name);
                if (string.IsNullOrEmpty(value))
                {
                    unset ??= name;
                }

                result.Append(text, from, dollar - from).Append(value);
                from = close + 1;
                dollar = text.IndexOf("${", from, StringComparison.Ordinal);
            }

            return result.Append(text, from, text.Length - from).ToString();
        }

        private static bool IsVariableName(string name)
        {
            if (name.Length == 0 || char.IsAsciiDigit(name[0]))
            {
                return false;
            }

            foreach (char c in name)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '_')
                {
                    return false;
                }
            }

            return true;
        }

        /// <summary>An error at character <paramref name="index"/> of a scalar; exact for plain and quoted scalars without escapes.</summary>
        private SuiteFileException ErrorAt(YamlNode node, int index, string message)
        {
            long offset = node is YamlScalarNode { Style: ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted } ? 1 : 0;
            return node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted }
                ? new SuiteFileException(file, node.Start.Line, node.Start.Column + offset + index, message)
                : Error(node, message);
        }

        private List<ScheduledAction> Actions(YamlNode node)
        {
            if (node is not YamlSequenceNode list)
            {
                throw Error(node, "expected 'actions' to be a list of {at: CYCLE, do: NAME, ...}");
            }

            var actions = new List<ScheduledAction>();
            foreach (var item in list.Children)
            {
                if (item is not YamlMappingNode map)
                {
                    throw Error(item, "expected an action (a mapping with at, do and the action's arguments)");
                }

                var args = new Dictionary<string, string>(StringComparer.Ordinal);
                YamlNode? doNode = null, atNode = null;
                foreach (var (key, value) in map.Children)
                {
                    string name = Scalar(key, "a key");
                    if (name == "do")
                    {
                        doNode = value;
                    }
                    else if (name == "at")
                    {
                        atNode = value;
                    }
                    else
                    {
                        args[name] = Scalar(value, $"the action argument '{name}' (a scalar)");
                    }
                }

                if (doNode == null || atNode == null)
                {
                    throw Error(item, $"an action needs 'at' (a cycle) and 'do' (one of: {KnownActions()})");
                }

                ulong at = Number(atNode, "at (the cycle the action runs at)");
                string what = Scalar(doNode, "do (an action name)");
                var factory = ScheduledActions.Find(what) ?? throw Error(doNode, $"unknown action '{what}'; expected one of: {KnownActions()}");
                if (!factory(args, out var apply, out string? error))
                {
                    throw Error(item, $"action '{what}': {error}");
                }

                actions.Add(new ScheduledAction(at, what, apply));
            }

            actions.Sort((x, y) => x.AtCycle.CompareTo(y.AtCycle));
            return actions;
        }

        private static string KnownActions() => ScheduledActions.Names.Any() ? string.Join(", ", ScheduledActions.Names) : "(none: no action exists yet)";

        /// <summary>
        /// The expectations of the defaults and then the case: exit, kvm-unit-tests and cycles of the later replace
        /// the earlier; console lines add up; counters merge by name, the later range winning.
        /// </summary>
        private CaseExpectations Expect(List<Dictionary<string, (YamlNode Key, YamlNode Value)>> sources)
        {
            var x = new CaseExpectations();
            var counters = new List<(string Name, CounterRange Range)>();
            var spots = new Dictionary<string, ScalarSpot>(StringComparer.Ordinal);
            foreach (var k in sources)
            {
                if (k.TryGetValue("exit", out var e))
                {
                    x = x with { Exit = (int)Number(e.Value, "exit (an exit status 0..255)", 0, 255) };
                }

                if (k.TryGetValue("console", out var c))
                {
                    x = x with { Console = [.. x.Console, .. ConsoleMatches(c.Value, "console")] };
                }

                if (k.TryGetValue("console-not", out var cn))
                {
                    x = x with { ConsoleNot = [.. x.ConsoleNot, .. ConsoleMatches(cn.Value, "console-not")] };
                }

                if (k.TryGetValue("kvm-unit-tests", out var kut))
                {
                    x = x with { KvmUnitTests = Kut(kut.Value) };
                }

                if (k.TryGetValue("counters", out var ct))
                {
                    foreach (var (name, (key, value)) in Mapping(ct.Value, "counters (a mapping of counter name to value or range)", null))
                    {
                        if (!CounterCatalog.IsKnown(name))
                        {
                            string near = string.Join(", ", CounterCatalog.Near(name));
                            throw Error(key, $"unknown counter '{name}'; expected a name 'emu boot --stats' prints" + (near.Length != 0 ? $" (did you mean {near}?)" : ""));
                        }

                        string text = Scalar(value, $"the value of counter {name}");
                        if (!CounterRange.TryParse(text, out var range))
                        {
                            throw Error(value, $"counter {name}: '{text}' is not a value or range; expected N, '== N', '>= N', '> N', '<= N', '< N' or 'N..M'");
                        }

                        spots[name] = Spot(value);
                        int at = counters.FindIndex(p => p.Name == name);
                        if (at >= 0)
                        {
                            counters[at] = (name, range);
                        }
                        else
                        {
                            counters.Add((name, range));
                        }
                    }
                }

                if (k.TryGetValue("cycles", out var cy))
                {
                    x = x with { Cycles = Budget(cy.Value) };
                    var number = cy.Value is YamlMappingNode m ? m.Children[new YamlScalarNode("expected")] : cy.Value;
                    x = x with { CyclesSpot = Spot(number) };
                }
            }

            return x with { Counters = counters, CounterSpots = spots };
        }

        private ScalarSpot Spot(YamlNode node) => new(file, node.Start.Index, node.End.Index, node.Start.Line, node.Start.Column);

        private KutExpectation Kut(YamlNode node)
        {
            if (node is YamlScalarNode)
            {
                return new KutExpectation(Outcome(node), null, null, null);
            }

            var k = Mapping(node, "kvm-unit-tests (PASS, FAIL or SKIP, or a mapping with outcome, tests, failures, skipped)", s_kutKeys);
            if (!k.TryGetValue("outcome", out var o))
            {
                throw Error(node, "kvm-unit-tests: missing key 'outcome' (PASS, FAIL or SKIP)");
            }

            int? Count(string key) => k.TryGetValue(key, out var v) ? (int)Number(v.Value, $"{key} (a subtest count)", 0, int.MaxValue) : null;
            return new KutExpectation(Outcome(o.Value), Count("tests"), Count("failures"), Count("skipped"));
        }

        private CaseOutcome Outcome(YamlNode node)
        {
            string text = Scalar(node, "a kvm-unit-tests outcome (PASS, FAIL or SKIP)");
            return text switch
            {
                "PASS" => CaseOutcome.Pass,
                "FAIL" => CaseOutcome.Fail,
                "SKIP" => CaseOutcome.Skip,
                _ => throw Error(node, $"kvm-unit-tests outcome '{text}': expected PASS, FAIL or SKIP"),
            };
        }

        private CycleBudget Budget(YamlNode node)
        {
            if (node is YamlScalarNode)
            {
                return new CycleBudget(Number(node, "cycles (a number, or a mapping with expected and tolerance)"), 0, "0");
            }

            var k = Mapping(node, "cycles (a number, or a mapping with expected and tolerance)", s_cyclesKeys);
            if (!k.TryGetValue("expected", out var e))
            {
                throw Error(node, "cycles: missing key 'expected' (the modeled cycles of the run)");
            }

            ulong expected = Number(e.Value, "expected (a number of cycles)");
            if (!k.TryGetValue("tolerance", out var t))
            {
                return new CycleBudget(expected, 0, "0");
            }

            string text = Scalar(t.Value, "tolerance (cycles, or a percentage such as 1%)");
            if (!CycleBudget.TryParseTolerance(text, expected, out ulong tolerance))
            {
                throw Error(t.Value, $"tolerance '{text}': expected a number of cycles or a percentage between 0% and 100%");
            }

            return new CycleBudget(expected, tolerance, text.Trim());
        }

        private List<ConsoleMatch> ConsoleMatches(YamlNode node, string key)
        {
            var items = node is YamlSequenceNode list ? list.Children : [node];
            var matches = new List<ConsoleMatch>();
            foreach (var item in items)
            {
                string text = Scalar(item, $"{key} (a line, or /regex/)");
                if (!ConsoleMatch.TryParse(text, out var m, out string? error))
                {
                    throw Error(item, $"{key} '{text}': {error}");
                }

                matches.Add(m);
            }

            return matches;
        }

        private List<string> Strings(YamlNode node, string what)
        {
            var items = node is YamlSequenceNode list ? list.Children : [node];
            return [.. items.Select(i => Scalar(i, what))];
        }

        private Dictionary<string, (YamlNode Key, YamlNode Value)> Mapping(YamlNode node, string what, string[]? allowed)
        {
            if (node is not YamlMappingNode map)
            {
                throw Error(node, $"expected {what}, got {Kind(node)}");
            }

            var keys = new Dictionary<string, (YamlNode, YamlNode)>(StringComparer.Ordinal);
            foreach (var (key, value) in map.Children)
            {
                string name = Scalar(key, "a key (a string)");
                if (allowed != null && Array.IndexOf(allowed, name) < 0)
                {
                    throw Error(key, $"unknown key '{name}'; expected one of: {string.Join(", ", allowed)}");
                }

                keys[name] = (key, value);
            }

            return keys;
        }

        private string Scalar(YamlNode node, string what) =>
            node is YamlScalarNode { Value: { } v } ? v : throw Error(node, $"expected {what}, got {Kind(node)}");

        private ulong Number(YamlNode node, string what, ulong min = 0, ulong max = ulong.MaxValue)
        {
            string text = Scalar(node, what);
            if (!Values.TryParseNumber(text, out ulong v))
            {
                throw Error(node, $"expected {what}, got '{text}'");
            }

            if (v < min || v > max)
            {
                throw Error(node, string.Create(CultureInfo.InvariantCulture, $"{what}: {v} is outside {min}..{max}"));
            }

            return v;
        }

        private static string Kind(YamlNode node) => node switch
        {
            YamlMappingNode => "a mapping",
            YamlSequenceNode => "a list",
            YamlScalarNode { Value: null or "" } => "nothing",
            YamlScalarNode s => $"'{s.Value}'",
            _ => "an alias",
        };
    }
}
