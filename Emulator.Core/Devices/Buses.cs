namespace Emulator.Core.Devices;

/// <summary>A device on the port bus. It sees offsets from the base of its range, never absolute ports.</summary>
public interface IPortDevice
{
    uint In(ushort offset, int size);

    void Out(ushort offset, int size, uint value);
}

/// <summary>A device on the MMIO bus. It sees offsets from the base of its range.</summary>
public interface IMmioDevice
{
    ulong Read(ulong offset, int size);

    void Write(ulong offset, int size, ulong value);
}

/// <summary>
/// Port I/O bus: a 64 Ki-entry map from port to device slot. Unclaimed ports read all ones and drop writes.
/// </summary>
public sealed class IoBus
{
    private readonly byte[] _slot = new byte[65536];
    private readonly ushort[] _base = new ushort[65536];
    private readonly List<IPortDevice> _devices = [null!];

    public ulong UnhandledAccesses { get; private set; }

    public Action<string>? Trace { get; set; }

    public void Register(ushort first, int count, IPortDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        int index = _devices.IndexOf(device);
        if (index < 0)
        {
            _devices.Add(device);
            index = _devices.Count - 1;
        }

        for (int p = first; p < first + count; p++)
        {
            if (_slot[p] != 0)
            {
                throw new InvalidOperationException($"port 0x{p:X} is already claimed");
            }

            _slot[p] = (byte)index;
            _base[p] = first;
        }
    }

    public uint In(ushort port, int size)
    {
        int s = _slot[port];
        if (s == 0)
        {
            UnhandledAccesses++;
            Trace?.Invoke($"io: unhandled in{SizeSuffix(size)} 0x{port:X4}");
            return size == 4 ? uint.MaxValue : (1u << (size * 8)) - 1;
        }

        return _devices[s].In((ushort)(port - _base[port]), size);
    }

    public void Out(ushort port, int size, uint value)
    {
        int s = _slot[port];
        if (s == 0)
        {
            UnhandledAccesses++;
            Trace?.Invoke($"io: unhandled out{SizeSuffix(size)} 0x{port:X4} <- 0x{value:X}");
            return;
        }

        _devices[s].Out((ushort)(port - _base[port]), size, value);
    }

    private static string SizeSuffix(int size) => size switch { 1 => "b", 2 => "w", _ => "l" };
}

/// <summary>MMIO bus: a short sorted list of ranges (a handful of devices), searched linearly.</summary>
public sealed class MmioBus
{
    private readonly List<(ulong Base, ulong Size, IMmioDevice Device)> _ranges = [];

    public void Register(ulong gpa, ulong size, IMmioDevice device)
    {
        foreach (var r in _ranges)
        {
            if (gpa < r.Base + r.Size && r.Base < gpa + size)
            {
                throw new InvalidOperationException($"MMIO range 0x{gpa:X} overlaps 0x{r.Base:X}");
            }
        }

        _ranges.Add((gpa, size, device));
        _ranges.Sort((a, b) => a.Base.CompareTo(b.Base));
    }

    public bool TryFind(ulong gpa, out IMmioDevice device, out ulong offset)
    {
        foreach (var r in _ranges)
        {
            if (gpa - r.Base < r.Size)
            {
                device = r.Device;
                offset = gpa - r.Base;
                return true;
            }
        }

        device = null!;
        offset = 0;
        return false;
    }
}
