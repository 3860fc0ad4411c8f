namespace Emulator.Core.Devices;

/// <summary>
/// QEMU's pc-testdev as test kernels use it: a 32-bit scratch register at 0xE0–0xE3 (any width, byte
/// lanes chosen by the port offset), the same register byte-wise at 0xE8–0xEB, a flush-page port at 0xE4,
/// 24 ISA IRQ line ports at 0x2000–0x2017 and a 64 KiB storage window at guest-physical 0xFF000000.
/// Port 0xE9 inside the byte window belongs to the debug console (PLATFORM.md lists both): a byte
/// written there is printed and also lands in lane 1; a read returns the console's 0xE9 signature.
/// </summary>
public sealed class PcTestDev
{
    public const ushort ScratchBase = 0xE0, FlushBase = 0xE4, ByteBase = 0xE8, IrqBase = 0x2000;
    public const int IrqLines = 24;
    public const ulong MemoryBase = 0xFF000000, MemorySize = 0x10000;

    private readonly bool[] _irq = new bool[IrqLines];

    public PcTestDev(DebugConsole? console = null)
    {
        ScratchPorts = new ScratchPort(this, null);
        BytePorts = new ScratchPort(this, console);
        FlushPort = new FlushPagePort();
        IrqPorts = new IrqLinePorts(this);
        Memory = new MemoryWindow();
    }

    /// <summary>The scratch register both windows read and write.</summary>
    public uint Scratch { get; set; }

    /// <summary>Levels of ISA IRQ lines 0–23 as the guest last set them (for the PIC/IOAPIC).</summary>
    public ReadOnlySpan<bool> IrqLevels => _irq;

    /// <summary>Called with (line, level) when a line changes.</summary>
    public Action<int, bool>? IrqChanged { get; set; }

    public IPortDevice ScratchPorts { get; }
    public IPortDevice BytePorts { get; }
    public IPortDevice FlushPort { get; }
    public IPortDevice IrqPorts { get; }
    public IMmioDevice Memory { get; }

    /// <summary>Claims the device's ports and memory window.</summary>
    public void Attach(IoBus io, MmioBus mmio)
    {
        ArgumentNullException.ThrowIfNull(io);
        ArgumentNullException.ThrowIfNull(mmio);
        io.Register(ScratchBase, 4, ScratchPorts);
        io.Register(FlushBase, 4, FlushPort);
        io.Register(ByteBase, 4, BytePorts);
        io.Register(IrqBase, IrqLines, IrqPorts);
        mmio.Register(MemoryBase, MemorySize, Memory);
    }

    private sealed class ScratchPort(PcTestDev dev, DebugConsole? console) : IPortDevice
    {
        public uint In(ushort offset, int size)
        {
            if (console != null && offset == 1 && size == 1)
            {
                return console.In(0, 1);
            }

            // Lanes past byte 3 do not exist and read as zero.
            ulong v = (ulong)dev.Scratch >> (8 * offset);
            return size == 4 ? (uint)v : (uint)v & ((1u << (size * 8)) - 1);
        }

        public void Out(ushort offset, int size, uint value)
        {
            if (console != null && offset == 1 && size == 1)
            {
                console.Out(0, 1, value);
            }

            ulong mask = (size == 4 ? 0xFFFF_FFFFUL : (1UL << (size * 8)) - 1) << (8 * offset);
            ulong v = ((ulong)value << (8 * offset)) & mask;
            dev.Scratch = (uint)((dev.Scratch & ~mask) | v);
        }
    }

    /// <summary>0xE4: the guest asks for a page to be flushed from caches; nothing is cached here.</summary>
    private sealed class FlushPagePort : IPortDevice
    {
        public uint In(ushort offset, int size) => 0;

        public void Out(ushort offset, int size, uint value)
        {
        }
    }

    private sealed class IrqLinePorts(PcTestDev dev) : IPortDevice
    {
        public uint In(ushort offset, int size) => dev._irq[offset] ? 1u : 0u;

        public void Out(ushort offset, int size, uint value)
        {
            bool level = (byte)value != 0;
            if (dev._irq[offset] != level)
            {
                dev._irq[offset] = level;
                dev.IrqChanged?.Invoke(offset, level);
            }
        }
    }

    /// <summary>Plain storage reached only through MMIO, so every access is an emulated one.</summary>
    private sealed class MemoryWindow : IMmioDevice
    {
        private readonly byte[] _bytes = new byte[MemorySize];

        public ulong Read(ulong offset, int size)
        {
            ulong v = 0;
            for (int i = 0; i < size && offset + (ulong)i < MemorySize; i++)
            {
                v |= (ulong)_bytes[offset + (ulong)i] << (8 * i);
            }

            return v;
        }

        public void Write(ulong offset, int size, ulong value)
        {
            for (int i = 0; i < size && offset + (ulong)i < MemorySize; i++)
            {
                _bytes[offset + (ulong)i] = (byte)(value >> (8 * i));
            }
        }
    }
}
