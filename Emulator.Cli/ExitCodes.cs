namespace Emulator.Cli;

/// <summary>Process exit statuses of PLATFORM.md ("Exit status") that the command line itself produces.</summary>
public static class ExitCodes
{
    public const int Success = 0;

    /// <summary>Usage errors (bad options, missing files) and images the loaders refuse.</summary>
    public const int Usage = 2;

    /// <summary>No more progress: triple-fault shutdown, every vCPU halted with nothing pending.</summary>
    public const int NoProgress = Emulator.Svm.Run.Machine.ExitNoProgress;

    /// <summary>A limit (<c>--max-instructions</c>, <c>--max-cycles</c>) or <c>--timeout</c> ended the run, as timeout(1) reports.</summary>
    public const int Limit = Emulator.Svm.Run.Machine.ExitLimit;
}
