using Spectre.Console;

namespace Emulator.Cli;

/// <summary>
/// Where the command line writes: the guest console (raw bytes), normal output and diagnostics.
/// Tests pass memory streams and string writers; <see cref="Program"/> passes the process's own.
/// </summary>
public sealed class CliConsole(Stream guestOutput, TextWriter output, TextWriter error)
{
    public Stream GuestOutput { get; } = guestOutput;
    public TextWriter Output { get; } = output;
    public TextWriter Error { get; } = error;

    /// <summary>
    /// <see cref="Output"/> as an interactive terminal that can redraw text in place (live progress displays);
    /// null when it is not one (redirected to a file or pipe, CI, <c>TERM=dumb</c>), and then commands print
    /// plain lines only.
    /// </summary>
    internal IAnsiConsole? Terminal
    {
        get => _terminal.Value;
        init => _terminal = new(value);
    }

    // Found out on first use, so the commands that never ask (boot, bench) do not probe the terminal.
    private Lazy<IAnsiConsole?> _terminal = new((IAnsiConsole?)null);

    /// <summary>True when <see cref="Terminal"/> is there: output goes to a person watching a terminal.</summary>
    internal bool Interactive => Terminal != null;

    public static CliConsole Process() =>
        new(new BufferedStream(Console.OpenStandardOutput()), Console.Out, Console.Error) { _terminal = new(DetectTerminal) };

    /// <summary>
    /// The process's standard output as a Spectre.Console terminal when <see cref="IsTerminal"/> says it may be
    /// one and Spectre finds it can take cursor movement (ANSI) and is interactive; else null.
    /// </summary>
    private static IAnsiConsole? DetectTerminal()
    {
        if (!IsTerminal(Console.IsOutputRedirected, Environment.GetEnvironmentVariable))
        {
            return null;
        }

        var terminal = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        return terminal.Profile.Capabilities is { Ansi: true, Interactive: true } ? terminal : null;
    }

    /// <summary>
    /// False when standard output is redirected, under CI (<c>CI=true</c>, which CI systems set) or on a terminal
    /// that says it cannot move the cursor (<c>TERM=dumb</c>): there output stays plain lines a log can keep.
    /// </summary>
    internal static bool IsTerminal(bool outputRedirected, Func<string, string?> environment) =>
        !outputRedirected
        && !string.Equals(environment("CI"), "true", StringComparison.OrdinalIgnoreCase)
        && !string.Equals(environment("TERM"), "dumb", StringComparison.Ordinal);
}
