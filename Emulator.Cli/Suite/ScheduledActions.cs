using Emulator.Svm.Avic;
using Emulator.Svm.Run;

namespace Emulator.Cli.Suite;

/// <summary>Something a case does to its machine when the bootstrap vCPU's clock reaches <see cref="AtCycle"/>.</summary>
internal sealed record ScheduledAction(ulong AtCycle, string Name, Action<Machine> Apply);

/// <summary>
/// The actions a suite may schedule (<c>actions: [{at: CYCLE, do: NAME, ...}]</c>), by name. Each entry reads its
/// own arguments (the keys besides <c>at</c> and <c>do</c>) and returns what to do to the machine, or an error.
/// <list type="bullet">
/// <item><c>apicv-inhibit</c>: <c>reason</c> (an <c>apicv.inhibit.NAME</c> name but disable), <c>set</c> (true by default):
/// sets or clears one APICv inhibit reason from outside the vCPUs, as a host ioctl would (KVM_SET_GUEST_DEBUG's
/// BLOCKIRQ, a Hyper-V SynIC change).</item>
/// <item><c>pit-reinject</c>: <c>on</c> (true or false): the PIT's reinject mode (KVM_REINJECT_CONTROL), which raises or
/// clears the PIT_REINJ inhibit.</item>
/// <item><c>irq</c>: <c>line</c> (ISA IRQ 0–15), <c>level</c> (pulse, high or low; pulse by default): drives an ISA
/// interrupt line as a device would (KVM_IRQ_LINE), through the 8259 and the I/O APIC.</item>
/// <item><c>dirty-log</c>: <c>on</c> (true or false): dirty logging on every user memslot (KVM_MEM_LOG_DIRTY_PAGES): on
/// write-protects their SPTEs so writes fault and mark pages (<c>mmu.dirty.pages</c>).</item>
/// </list>
/// </summary>
internal static class ScheduledActions
{
    /// <summary>Builds the action from its arguments (key → scalar text), or returns false with an error.</summary>
    internal delegate bool Factory(IReadOnlyDictionary<string, string> args, out Action<Machine> apply, out string? error);

    private static readonly Dictionary<string, Factory> s_table = new(StringComparer.Ordinal)
    {
        ["apicv-inhibit"] = ApicvInhibit,
        ["pit-reinject"] = PitReinject,
        ["irq"] = Irq,
        ["dirty-log"] = DirtyLog,
    };

    public static IEnumerable<string> Names => s_table.Keys.Order(StringComparer.Ordinal);

    public static Factory? Find(string name) => s_table.GetValueOrDefault(name);

    private static bool ApicvInhibit(IReadOnlyDictionary<string, string> args, out Action<Machine> apply, out string? error)
    {
        apply = _ => { };
        if (!OnlyKeys(args, out error, "reason", "set"))
        {
            return false;
        }

        var names = new List<string>();
        ApicvInhibitReason? reason = null;
        foreach (var r in Enum.GetValues<ApicvInhibitReason>())
        {
            if (r == ApicvInhibitReason.Disable)
            {
                continue; // fixed at creation by --cpu
            }

            string name = ApicvState.ReasonName(r);
            names.Add(name);
            if (args.TryGetValue("reason", out string? given) && given == name)
            {
                reason = r;
            }
        }

        if (reason is not { } chosen)
        {
            error = $"needs 'reason', one of: {string.Join(", ", names)}";
            return false;
        }

        bool set = true;
        if (args.TryGetValue("set", out string? text) && !TryBool(text, out set))
        {
            error = $"'set' is true or false, not '{text}'";
            return false;
        }

        apply = m => m.Apicv.SetInhibit(chosen, set);
        return true;
    }

    private static bool PitReinject(IReadOnlyDictionary<string, string> args, out Action<Machine> apply, out string? error)
    {
        apply = _ => { };
        if (!OnOnly(args, out bool on, out error))
        {
            return false;
        }

        apply = m => m.Platform.PitReinjection.Enabled = on;
        return true;
    }

    private static bool Irq(IReadOnlyDictionary<string, string> args, out Action<Machine> apply, out string? error)
    {
        apply = _ => { };
        if (!OnlyKeys(args, out error, "line", "level"))
        {
            return false;
        }

        if (!args.TryGetValue("line", out string? text) || !int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int line) || line > 15)
        {
            error = "needs 'line', an ISA IRQ from 0 to 15";
            return false;
        }

        string level = args.GetValueOrDefault("level", "pulse");
        switch (level)
        {
            case "pulse":
                apply = m =>
                {
                    m.Platform.Isa.SetIrq(line, true);
                    m.Platform.Isa.SetIrq(line, false);
                };
                return true;
            case "high" or "low":
                bool high = level == "high";
                apply = m => m.Platform.Isa.SetIrq(line, high);
                return true;
            default:
                error = $"'level' is pulse, high or low, not '{level}'";
                return false;
        }
    }

    private static bool DirtyLog(IReadOnlyDictionary<string, string> args, out Action<Machine> apply, out string? error)
    {
        apply = _ => { };
        if (!OnOnly(args, out bool on, out error))
        {
            return false;
        }

        apply = m =>
        {
            if (m.Memory.Mmu is not { } mmu)
            {
                return;
            }

            var ids = new List<(int Id, Emulator.Mmu.Memslots.MemslotFlags Flags)>();
            foreach (var slot in mmu.Memslots.Current.Slots)
            {
                if (!slot.IsPrivate)
                {
                    ids.Add((slot.Id, slot.Flags));
                }
            }

            foreach (var (id, flags) in ids)
            {
                var log = Emulator.Mmu.Memslots.MemslotFlags.LogDirtyPages;
                mmu.Memslots.SetFlags(id, on ? flags | log : flags & ~log);
            }
        };
        return true;
    }

    /// <summary>The arguments of an on/off action: exactly <c>on</c>, true or false.</summary>
    private static bool OnOnly(IReadOnlyDictionary<string, string> args, out bool on, out string? error)
    {
        on = false;
        if (!OnlyKeys(args, out error, "on"))
        {
            return false;
        }

        if (!args.TryGetValue("on", out string? text) || !TryBool(text, out on))
        {
            error = "needs 'on': true or false";
            return false;
        }

        return true;
    }

    private static bool OnlyKeys(IReadOnlyDictionary<string, string> args, out string? error, params string[] known)
    {
        foreach (string key in args.Keys)
        {
            if (Array.IndexOf(known, key) < 0)
            {
                error = $"unknown argument '{key}'; expected {string.Join(" or ", known)}";
                return false;
            }
        }

        error = null;
        return true;
    }

    private static bool TryBool(string text, out bool value)
    {
        value = text is "true" or "True" or "yes" or "on";
        return value || text is "false" or "False" or "no" or "off";
    }
}
