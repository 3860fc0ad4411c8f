namespace Emulator.Core.Devices;

/// <summary>
/// Where guest console bytes go (the UART and the debug console share one). Bytes pass through
/// unchanged (a guest's "\r" stays); the stream is flushed at each newline so output streams line by line.
/// </summary>
public sealed class ConsoleSink
{
    private readonly Stream _out;

    public ConsoleSink(Stream output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _out = output;
    }

    /// <summary>Bytes written so far.</summary>
    public ulong BytesWritten { get; private set; }

    public void Put(byte b)
    {
        _out.WriteByte(b);
        BytesWritten++;
        if (b == (byte)'\n')
        {
            _out.Flush();
        }
    }

    public void Flush() => _out.Flush();
}
