namespace Emulator.Cli;

/// <summary>Process exit statuses of PLATFORM.md ("Exit status") that the command line itself produces.</summary>
public static class ExitCodes
{
    public const int Success = 0;

    /// <summary>Usage errors (bad options, missing files) and images the loaders refuse.</summary>
    public const int Usage = 2;

    /// <summary>No more progress (triple fault, halted with interrupts off) or a limit was reached.</summary>
    public const int NoProgress = 3;
}
