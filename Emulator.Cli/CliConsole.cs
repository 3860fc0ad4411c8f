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

    public static CliConsole Process() =>
        new(new BufferedStream(Console.OpenStandardOutput()), Console.Out, Console.Error);
}
