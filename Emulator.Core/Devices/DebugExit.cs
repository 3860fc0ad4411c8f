namespace Emulator.Core.Devices;

/// <summary>
/// QEMU's isa-debug-exit (iobase 0xF4, iosize 4): writing v ends the run with process exit status
/// (v &lt;&lt; 1) | 1, so a guest can never fake a clean 0. Test kernels write 0 for success (status 1).
/// </summary>
public sealed class DebugExit : IPortDevice
{
    public const ushort Base = 0xF4;
    public const int Size = 4;

    private readonly Action<int> _exit;

    /// <param name="exit">Receives the exit status; the machine stops the CPU.</param>
    public DebugExit(Action<int> exit)
    {
        ArgumentNullException.ThrowIfNull(exit);
        _exit = exit;
    }

    public static int StatusFor(uint value) => unchecked((int)((value << 1) | 1));

    public uint In(ushort offset, int size) => 0;

    public void Out(ushort offset, int size, uint value) => _exit(StatusFor(value));
}

/// <summary>
/// The Bochs/QEMU shutdown port 0x8900: the byte string "Shutdown" written to it, one byte per write, ends
/// the run with exit status 0. Any other byte restarts the match.
/// </summary>
public sealed class BochsShutdown : IPortDevice
{
    public const ushort Port = 0x8900;
    private static ReadOnlySpan<byte> Word => "Shutdown"u8;

    private readonly Action<int> _exit;
    private int _matched;

    public BochsShutdown(Action<int> exit)
    {
        ArgumentNullException.ThrowIfNull(exit);
        _exit = exit;
    }

    public uint In(ushort offset, int size) => size == 4 ? uint.MaxValue : (1u << (size * 8)) - 1;

    public void Out(ushort offset, int size, uint value)
    {
        byte b = (byte)value;
        _matched = b == Word[_matched] ? _matched + 1 : b == Word[0] ? 1 : 0;
        if (_matched == Word.Length)
        {
            _matched = 0;
            _exit(0);
        }
    }
}

/// <summary>The Bochs "port E9 hack" debug console: a byte written is printed as-is; reads return 0xE9.</summary>
public sealed class DebugConsole : IPortDevice
{
    public const ushort Port = 0xE9;

    private readonly ConsoleSink _sink;

    public DebugConsole(ConsoleSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _sink = sink;
    }

    public uint In(ushort offset, int size) => Port;

    public void Out(ushort offset, int size, uint value) => _sink.Put((byte)value);
}
