using System.CommandLine;
using System.CommandLine.Parsing;

namespace Emulator.Cli;

/// <summary>
/// The <c>emu</c> command tree (System.CommandLine): parse, run the action, return the documented exit
/// status. Parse errors print one line each on stderr and give status 2.
/// </summary>
public static class EmuCli
{
    public static int Invoke(string[] args, CliConsole console)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(console);
        var root = new RootCommand("emu: an interpreted, cycle-accounted x86-64 emulator with an SVM hypervisor")
        {
            BootCommand.Create(console),
            BenchCommand.Create(console),
            CostsCommand(console),
            Suite.SuiteCommand.Create(console),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                console.Error.WriteLine($"emu: {e.Message}");
            }

            console.Error.WriteLine("emu: try 'emu --help'");
            return ExitCodes.Usage;
        }

        int status = parse.Invoke(new InvocationConfiguration
        {
            Output = console.Output,
            Error = console.Error,
            EnableDefaultExceptionHandler = false,
        });
        console.Output.Flush();
        console.Error.Flush();
        return status;
    }

    /// <summary>An option whose value is a size with K/M/G suffixes; bad text is a parse error.</summary>
    /// <summary><c>--cost-table FILE</c>, shared by boot and the benchmarks.</summary>
    internal static Option<string?> CostTableOption() => new("--cost-table")
    {
        Description = "cycle costs to use instead of the defaults: 'name cycles' lines as 'emu costs' prints them",
        HelpName = "FILE",
    };

    /// <summary>
    /// Reads <c>--cost-table</c>'s file (null: the defaults). False after a one-line error on stderr, with
    /// <paramref name="error"/> the exit status.
    /// </summary>
    internal static bool TryReadCostTable(CliConsole console, string? path, out Emulator.Core.Timing.CostTable? costs, out int error)
    {
        costs = null;
        error = 0;
        if (path == null)
        {
            return true;
        }

        if (ReadFile(console, path) is not { } bytes)
        {
            error = ExitCodes.Usage;
            return false;
        }

        if (!Emulator.Core.Timing.CostTable.TryParse(System.Text.Encoding.UTF8.GetString(bytes), out var parsed, out string? message))
        {
            error = BootCommand.Usage(console, $"--cost-table {path}: {message}");
            return false;
        }

        costs = parsed;
        return true;
    }

    internal static Option<ulong?> SizeOption(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "SIZE",
        CustomParser = r =>
        {
            string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (Values.TryParseSize(text, out ulong v))
            {
                return v;
            }

            r.AddError($"{name} {text}: not a size (examples: 512M, 1G, 4096K)");
            return null;
        },
    };

    /// <summary><c>emu costs</c>: the default cycle costs in the <c>--cost-table</c> file format, a template to edit.</summary>
    private static Command CostsCommand(CliConsole console)
    {
        var cmd = new Command("costs", "print the default cycle-cost table in the format --cost-table reads");
        cmd.SetAction(_ =>
        {
            console.Output.Write(Emulator.Core.Timing.CostTable.Default.Format());
            return ExitCodes.Success;
        });
        return cmd;
    }

    /// <summary>Reads a file named on the command line; on failure writes one line and returns null.</summary>
    internal static byte[]? ReadFile(CliConsole console, string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            string why = e is FileNotFoundException or DirectoryNotFoundException ? "no such file" : e.Message;
            console.Error.WriteLine($"emu: {path}: {why}");
            return null;
        }
    }

    /// <summary>An option whose value is a decimal or 0x-prefixed hexadecimal number.</summary>
    internal static Option<ulong?> NumberOption(string name, string description, string helpName = "N") => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = r =>
        {
            string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (Values.TryParseNumber(text, out ulong v))
            {
                return v;
            }

            r.AddError($"{name} {text}: not a number (decimal or 0x-prefixed hexadecimal)");
            return null;
        },
    };
}
