using Emulator.Svm.Run;

namespace Emulator.Cli.Suite;

/// <summary>Something a case does to its machine when the bootstrap vCPU's clock reaches <see cref="AtCycle"/>.</summary>
internal sealed record ScheduledAction(ulong AtCycle, string Name, Action<Machine> Apply);

/// <summary>
/// The actions a suite may schedule (<c>actions: [{at: CYCLE, do: NAME, ...}]</c>), by name. Each entry reads its
/// own arguments (the keys besides <c>at</c> and <c>do</c>) and returns what to do to the machine, or an error.
/// The table is empty until a model offers something to schedule (APICv inhibits with AVIC, issue 10;
/// dirty logging; injected interrupts); a suite naming any action is refused, never silently run without it.
/// </summary>
internal static class ScheduledActions
{
    /// <summary>Builds the action from its arguments (key → scalar text), or returns false with an error.</summary>
    internal delegate bool Factory(IReadOnlyDictionary<string, string> args, out Action<Machine> apply, out string? error);

    private static readonly Dictionary<string, Factory> s_table = new(StringComparer.Ordinal);

    public static IEnumerable<string> Names => s_table.Keys.Order(StringComparer.Ordinal);

    public static Factory? Find(string name) => s_table.GetValueOrDefault(name);
}
