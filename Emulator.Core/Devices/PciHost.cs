using System.Buffers.Binary;

namespace Emulator.Core.Devices;

/// <summary>
/// PCI configuration mechanism #1 (PCI Local Bus Specification 3.0, §3.2.2.3.2) on ports 0xCF8–0xCFF, as
/// QEMU's pc machine presents it, with one function behind it: bus 0, device 0, function 0, the i440FX
/// host bridge (vendor 0x8086, device 0x1237, revision 2, class 06/00/00, header type 0). Every other
/// function reads all ones and ignores writes.
/// <list type="bullet">
/// <item>0xCF8, CONFIG_ADDRESS: a 32-bit write stores the value as written; narrower writes are ignored; a
/// read of any width returns the stored value (QEMU does not shift it by the port's byte lane).</item>
/// <item>0xCF9 is the PIIX reset control register, which overlays that byte of CONFIG_ADDRESS: a write with
/// bit 2 set requests a system reset (the machine ends the run, as QEMU with <c>--no-reboot</c>, which the
/// QEMU-convention test runners pass, exits); otherwise bit 1 is kept and reads back.</item>
/// <item>0xCFC–0xCFF, CONFIG_DATA: byte, word and dword lanes of the dword that CONFIG_ADDRESS selects;
/// all ones when its enable bit (31) is clear.</item>
/// </list>
/// Widths and alignments follow <see cref="PortPieces"/>.
/// </summary>
public sealed class PciHost : IPortDevice, IPieceDevice
{
    public const ushort PortBase = 0xCF8;
    public const int Size = 8;

    /// <summary>Port offsets: CONFIG_ADDRESS, the reset control byte inside it, CONFIG_DATA.</summary>
    public const int AddressOffset = 0, ResetControlOffset = 1, DataOffset = 4;

    public const uint AddressEnable = 1u << 31;

    public const ushort VendorIntel = 0x8086, Device82441 = 0x1237;
    public const byte Revision = 0x02;

    /// <summary>QEMU's default subsystem IDs for header-type-0 functions (Red Hat / QEMU).</summary>
    public const ushort SubsystemVendor = 0x1AF4, SubsystemId = 0x1100;

    /// <summary>Configuration-space offsets of the registers the model gives values.</summary>
    public const int RegVendor = 0x00, RegDevice = 0x02, RegCommand = 0x04, RegRevision = 0x08, RegClass = 0x09;
    public const int RegCacheLine = 0x0C, RegHeaderType = 0x0E, RegSubsystemVendor = 0x2C, RegSubsystem = 0x2E;
    public const int RegInterruptLine = 0x3C, RegRamSize = 0x57, RegPam0 = 0x59, RegSmram = 0x72;

    /// <summary>Reset control bits (PIIX3 RCR): reset CPU (starts the reset), system reset type.</summary>
    public const byte RcrResetCpu = 0x04, RcrSystemReset = 0x02;

    /// <summary>
    /// Writable bits of the host bridge's configuration space, as QEMU's PCI core sets them for a header-type-0
    /// function: command (I/O, memory, bus master, SERR#, INTx disable), cache line size, interrupt line, and
    /// the whole device-specific area 0x40–0xFF. Everything else is read-only.
    /// </summary>
    private static readonly byte[] WriteMask = BuildWriteMask();

    private readonly byte[] _config = new byte[256];
    private readonly Action? _resetRequested;
    private uint _address;
    private byte _resetControl;

    /// <param name="ramSize">Guest RAM, for the i440FX register QEMU fills with RAM size in 8 MiB units.</param>
    /// <param name="resetRequested">Called when the guest requests a system reset through 0xCF9.</param>
    public PciHost(ulong ramSize, Action? resetRequested = null)
    {
        _resetRequested = resetRequested;
        var c = _config.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(c[RegVendor..], VendorIntel);
        BinaryPrimitives.WriteUInt16LittleEndian(c[RegDevice..], Device82441);
        c[RegRevision] = Revision;
        c[RegClass] = 0x00; // programming interface
        c[RegClass + 1] = 0x00; // sub-class: host bridge
        c[RegClass + 2] = 0x06; // base class: bridge
        c[RegHeaderType] = 0x00;
        BinaryPrimitives.WriteUInt16LittleEndian(c[RegSubsystemVendor..], SubsystemVendor);
        BinaryPrimitives.WriteUInt16LittleEndian(c[RegSubsystem..], SubsystemId);

        // i440FX specifics as QEMU resets them: SMRAM control 0x02 (C_BASE_SEG = A0000), and the register
        // old coreboot versions read RAM size from. PAM and SMRAM values are stored but do not remap memory.
        c[RegSmram] = 0x02;
        c[RegRamSize] = (byte)Math.Min(255UL, ramSize / (8UL << 20));
    }

    /// <summary>The CONFIG_ADDRESS register as last written with a dword.</summary>
    public uint ConfigAddress => _address;

    /// <summary>The host bridge's configuration byte at <paramref name="offset"/> (for inspection).</summary>
    public byte ConfigByte(int offset) => _config[offset & 0xFF];

    public uint In(ushort offset, int size) => PortPieces.Read(this, offset, size);

    public void Out(ushort offset, int size, uint value) => PortPieces.Write(this, offset, size, value);

    uint IPieceDevice.ReadPiece(int port, int remaining, out int n)
    {
        if (port == ResetControlOffset)
        {
            // A one-byte register accessed a byte at a time: every byte of a wider read is the register.
            n = PortPieces.Size(0, remaining, 4);
            return _resetControl * 0x01010101u;
        }

        if (port < DataOffset)
        {
            n = PortPieces.Size(port - AddressOffset, remaining, 4);
            return _address;
        }

        if (port < Size)
        {
            n = PortPieces.Size(port - DataOffset, remaining, 4);
            return ReadData(port - DataOffset, n);
        }

        n = 1;
        return 0xFF;
    }

    int IPieceDevice.WritePiece(int port, int remaining, uint part)
    {
        int n;
        if (port == ResetControlOffset)
        {
            n = PortPieces.Size(0, remaining, 4);
            for (int i = 0; i < n; i++)
            {
                WriteResetControl((byte)(part >> (8 * i)));
            }
        }
        else if (port < DataOffset)
        {
            n = PortPieces.Size(port - AddressOffset, remaining, 4);
            if (port == AddressOffset && n == 4)
            {
                _address = part;
            }
        }
        else if (port < Size)
        {
            n = PortPieces.Size(port - DataOffset, remaining, 4);
            WriteData(port - DataOffset, n, part);
        }
        else
        {
            n = 1;
        }

        return n;
    }

    /// <summary>
    /// The configuration offset the data port lane reaches: CONFIG_ADDRESS bits 7:0 with the lane OR-ed into
    /// bits 1:0 (QEMU keeps bits 1:0 of the address register rather than forcing them to zero).
    /// </summary>
    private bool TrySelect(int lane, out int register)
    {
        uint a = _address | (uint)(lane & 3);
        register = (int)(a & 0xFF);
        uint bus = (a >> 16) & 0xFF, devfn = (a >> 8) & 0xFF;
        return (_address & AddressEnable) != 0 && bus == 0 && devfn == 0;
    }

    private uint ReadData(int lane, int size)
    {
        if (!TrySelect(lane, out int reg))
        {
            return uint.MaxValue;
        }

        // An access running past the 256-byte space returns only the bytes inside it (the rest zero).
        uint v = 0;
        int n = Math.Min(size, 256 - reg);
        for (int i = 0; i < n; i++)
        {
            v |= (uint)_config[reg + i] << (8 * i);
        }

        return v;
    }

    private void WriteData(int lane, int size, uint value)
    {
        if (!TrySelect(lane, out int reg))
        {
            return;
        }

        int n = Math.Min(size, 256 - reg);
        for (int i = 0; i < n; i++)
        {
            byte mask = WriteMask[reg + i];
            _config[reg + i] = (byte)((_config[reg + i] & ~mask) | ((byte)(value >> (8 * i)) & mask));
        }
    }

    private void WriteResetControl(byte b)
    {
        if ((b & RcrResetCpu) != 0)
        {
            _resetRequested?.Invoke();
            return;
        }

        _resetControl = (byte)(b & RcrSystemReset);
    }

    private static byte[] BuildWriteMask()
    {
        var m = new byte[256];
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(RegCommand), 0x0507);
        m[RegCacheLine] = 0xFF;
        m[RegInterruptLine] = 0xFF;
        m.AsSpan(0x40).Fill(0xFF);
        return m;
    }
}
