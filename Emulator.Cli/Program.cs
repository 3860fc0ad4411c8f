namespace Emulator.Cli;

public static class Program
{
    public static int Main(string[] args) => EmuCli.Invoke(args, CliConsole.Process());
}
