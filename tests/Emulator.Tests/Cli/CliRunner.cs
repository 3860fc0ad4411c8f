using System.Text;
using Emulator.Cli;

namespace Emulator.Tests.Cli;

/// <summary>Runs <c>emu</c> in-process with captured guest console, stdout and stderr.</summary>
public static class CliRunner
{
    public sealed record Result(int Status, string Guest, string Out, string Err)
    {
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static Result Emu(params string[] args)
    {
        using var guest = new MemoryStream();
        using var o = new StringWriter();
        using var e = new StringWriter();
        int status = EmuCli.Invoke(args, new CliConsole(guest, o, e));
        return new Result(status, Encoding.UTF8.GetString(guest.ToArray()), o.ToString(), e.ToString());
    }

    /// <summary>A temporary file holding <paramref name="bytes"/>, deleted on dispose.</summary>
    public sealed class TempFile : IDisposable
    {
        public TempFile(byte[] bytes)
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"emu-test-{Guid.NewGuid():N}.img");
            File.WriteAllBytes(Path, bytes);
        }

        public string Path { get; }

        public void Dispose() => File.Delete(Path);
    }
}
