using System.Buffers.Binary;
using Emulator.Core.Memory;

namespace Emulator.Core.Devices.Acpi;

/// <summary>
/// The machine's ACPI tables (ACPI 6.5 chapter 5), built once and copied into the read-only BIOS area
/// (PLATFORM.md) at <see cref="Base"/>, where an OS finds the RSDP by scanning 0xE0000–0xFFFFF on 16-byte
/// boundaries (§5.2.5.1). The set is what a QEMU-convention guest looks for:
/// <list type="bullet">
/// <item>RSDP revision 2 (ACPI 2.0+) with both the RSDT and the XSDT address and both checksums;</item>
/// <item>RSDT and XSDT listing the FADT ("FACP") and the MADT ("APIC");</item>
/// <item>FADT revision 3 (the ACPI 2.0 layout, 244 bytes, with the 64-bit X_ fields and the reset register).
/// QEMU's pc machine writes revision 1 for old Windows; the first 116 bytes here hold the same values,
/// so a guest reading the ACPI 1.0 fields sees what it would there;</item>
/// <item>FACS (64-byte aligned, as §5.2.10 requires), read-only like the rest of the area;</item>
/// <item>DSDT with one object, \_S5 (soft off is SLP_TYP 0, as on QEMU);</item>
/// <item>MADT as QEMU's pc builds it: one enabled Processor Local APIC per vCPU (UID = APIC ID = index),
/// the I/O APIC (ID 0, 0xFEC00000, GSI base 0), interrupt source overrides IRQ 0 → GSI 2 and, for the
/// PCI interrupt lines 5, 9, 10 and 11, level-triggered active-high, and a Local APIC NMI on LINT1 for
/// all processors.</item>
/// </list>
/// Every table's bytes sum to zero. The fixed-hardware fields point at <see cref="PmTimer"/>'s block
/// (PM1a_EVT 0x600, PM1a_CNT 0x604, PM_TMR 0x608, SCI on IRQ 9, no SMI command port) and the reset
/// register is the PIIX reset control port of <see cref="PciHost"/>.
/// </summary>
public sealed class AcpiTables
{
    /// <summary>Where the tables start (the RSDP); they take at most <see cref="MaxSize"/> bytes from there.</summary>
    public const ulong Base = 0xE0000;
    public const int MaxSize = 0x1000;

    public const uint LocalApicAddress = 0xFEE0_0000, IoApicAddress = 0xFEC0_0000;
    public const byte IoApicId = 0;

    /// <summary>ISA IRQs QEMU's pc routes PCI interrupts to; the MADT marks them level-triggered, active high.</summary>
    public static ReadOnlySpan<byte> PciIrqs => [5, 9, 10, 11];

    public const byte FadtRevision = 3, MadtRevision = 3, DsdtRevision = 1, RsdtRevision = 1, XsdtRevision = 1;

    /// <summary>FADT flags (ACPI 6.5 table 5.10) as QEMU sets them, plus RESET_REG_SUP.</summary>
    public const uint FadtWbinvd = 1 << 0, FadtProcC1 = 1 << 2, FadtSlpButton = 1 << 5, FadtRtcS4 = 1 << 7;
    public const uint FadtTmrValExt = 1 << 8, FadtResetRegSup = 1 << 10, FadtUsePlatformClock = 1 << 15;
    public const uint FadtForceApicClusterModel = 1 << 18;

    /// <summary>The value written to the reset register (0xCF9): reset CPU with a hard system reset.</summary>
    public const byte ResetValue = PciHost.RcrResetCpu | PciHost.RcrSystemReset;

    /// <summary>CMOS index of the century byte (QEMU's MC146818 keeps it at 0x32).</summary>
    public const byte RtcCentury = 0x32;

    public const int HeaderLength = 36, RsdpLength = 36, FacsLength = 64, FadtLength = 244;

    private static ReadOnlySpan<byte> OemId => "EMU   "u8;
    private static ReadOnlySpan<byte> CreatorId => "EMU "u8;

    /// <summary>The DSDT's AML: Name (\_S5, Package (4) { 0, 0, 0, 0 }) — ACPI 6.5 §7.4.2 and §20.2.5.</summary>
    private static ReadOnlySpan<byte> DsdtAml =>
    [
        0x08, (byte)'\\', (byte)'_', (byte)'S', (byte)'5', (byte)'_', // NameOp \_S5_
        0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, // PackageOp, PkgLength 6, 4 elements, ZeroOp x4
    ];

    private AcpiTables(byte[] image, int cpus)
    {
        Image = image;
        Cpus = cpus;
    }

    /// <summary>The tables as they lie from <see cref="Base"/>.</summary>
    public byte[] Image { get; }

    public int Cpus { get; }

    public ulong RsdpAddress => Base;
    public ulong FacsAddress { get; private set; }
    public ulong RsdtAddress { get; private set; }
    public ulong XsdtAddress { get; private set; }
    public ulong FadtAddress { get; private set; }
    public ulong DsdtAddress { get; private set; }
    public ulong MadtAddress { get; private set; }

    /// <summary>Builds the tables for <paramref name="cpus"/> vCPUs (APIC IDs 0..cpus-1).</summary>
    public static AcpiTables Build(int cpus)
    {
        if (cpus is < 1 or > 254)
        {
            throw new ArgumentOutOfRangeException(nameof(cpus), "the MADT's xAPIC entries hold APIC IDs 0–254");
        }

        var image = new byte[MaxSize];
        var t = new AcpiTables(image, cpus);
        int at = RsdpLength;
        int Place(int length, int align)
        {
            at = (at + align - 1) & -align;
            int start = at;
            at += length;
            return start;
        }

        int facs = Place(FacsLength, 64);
        int dsdt = Place(HeaderLength + DsdtAml.Length, 16);
        int fadt = Place(FadtLength, 16);
        int madt = Place(MadtLength(cpus), 16);
        const int entries = 2;
        int rsdt = Place(HeaderLength + (4 * entries), 16);
        int xsdt = Place(HeaderLength + (8 * entries), 16);
        if (at > MaxSize)
        {
            throw new InvalidOperationException("ACPI tables outgrew their area");
        }

        t.FacsAddress = Base + (ulong)facs;
        t.DsdtAddress = Base + (ulong)dsdt;
        t.FadtAddress = Base + (ulong)fadt;
        t.MadtAddress = Base + (ulong)madt;
        t.RsdtAddress = Base + (ulong)rsdt;
        t.XsdtAddress = Base + (ulong)xsdt;

        var s = image.AsSpan();
        WriteFacs(s.Slice(facs, FacsLength));
        WriteDsdt(s.Slice(dsdt, HeaderLength + DsdtAml.Length));
        t.WriteFadt(s.Slice(fadt, FadtLength));
        WriteMadt(s.Slice(madt, MadtLength(cpus)), cpus);
        WriteRsdt(s.Slice(rsdt, HeaderLength + (4 * entries)), [t.FadtAddress, t.MadtAddress]);
        WriteXsdt(s.Slice(xsdt, HeaderLength + (8 * entries)), [t.FadtAddress, t.MadtAddress]);
        t.WriteRsdp(s[..RsdpLength]);
        return t;
    }

    /// <summary>Copies the tables into guest memory (host side: the area is read-only to the guest).</summary>
    public void Install(PhysicalMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!memory.TryLoad(Base, Image))
        {
            throw new InvalidOperationException("the BIOS area 0xE0000 is not backed by memory");
        }
    }

    /// <summary>Sum of bytes modulo 256, the ACPI checksum rule: a valid table sums to zero.</summary>
    public static byte Sum(ReadOnlySpan<byte> bytes)
    {
        byte sum = 0;
        foreach (byte b in bytes)
        {
            sum += b;
        }

        return sum;
    }

    private static int MadtLength(int cpus) => 44 + (8 * cpus) + 12 + (10 * (1 + PciIrqs.Length)) + 6;

    /// <summary>RSDP, ACPI 6.5 §5.2.5.3: checksum over the first 20 bytes, extended checksum over all 36.</summary>
    private void WriteRsdp(Span<byte> r)
    {
        "RSD PTR "u8.CopyTo(r);
        OemId.CopyTo(r[9..]);
        r[15] = 2; // revision: ACPI 2.0 and later
        BinaryPrimitives.WriteUInt32LittleEndian(r[16..], (uint)RsdtAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(r[20..], RsdpLength);
        BinaryPrimitives.WriteUInt64LittleEndian(r[24..], XsdtAddress);
        r[8] = (byte)-Sum(r[..20]);
        r[32] = (byte)-Sum(r);
    }

    /// <summary>System description table header, §5.2.6; the checksum is filled in by <see cref="Seal"/>.</summary>
    private static void Header(Span<byte> t, ReadOnlySpan<byte> signature, byte revision)
    {
        signature.CopyTo(t);
        BinaryPrimitives.WriteUInt32LittleEndian(t[4..], (uint)t.Length);
        t[8] = revision;
        OemId.CopyTo(t[10..]);
        "EMU "u8.CopyTo(t[16..]); // OEM table ID: "EMU " + signature
        signature.CopyTo(t[20..]);
        BinaryPrimitives.WriteUInt32LittleEndian(t[24..], 1); // OEM revision
        CreatorId.CopyTo(t[28..]);
        BinaryPrimitives.WriteUInt32LittleEndian(t[32..], 1); // creator revision
    }

    private static void Seal(Span<byte> t)
    {
        t[9] = 0;
        t[9] = (byte)-Sum(t);
    }

    private static void WriteRsdt(Span<byte> t, ReadOnlySpan<ulong> tables)
    {
        Header(t, "RSDT"u8, RsdtRevision);
        for (int i = 0; i < tables.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(t[(HeaderLength + (4 * i))..], (uint)tables[i]);
        }

        Seal(t);
    }

    private static void WriteXsdt(Span<byte> t, ReadOnlySpan<ulong> tables)
    {
        Header(t, "XSDT"u8, XsdtRevision);
        for (int i = 0; i < tables.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(t[(HeaderLength + (8 * i))..], tables[i]);
        }

        Seal(t);
    }

    /// <summary>FACS, §5.2.10: no waking vector, global lock free, version 1 (ACPI 2.0 layout).</summary>
    private static void WriteFacs(Span<byte> f)
    {
        "FACS"u8.CopyTo(f);
        BinaryPrimitives.WriteUInt32LittleEndian(f[4..], FacsLength);
        f[32] = 1;
    }

    private static void WriteDsdt(Span<byte> t)
    {
        Header(t, "DSDT"u8, DsdtRevision);
        DsdtAml.CopyTo(t[HeaderLength..]);
        Seal(t);
    }

    /// <summary>FADT, §5.2.9 (ACPI 2.0 layout: revision 3, 244 bytes).</summary>
    private void WriteFadt(Span<byte> t)
    {
        Header(t, "FACP"u8, FadtRevision);
        BinaryPrimitives.WriteUInt32LittleEndian(t[36..], (uint)FacsAddress); // FIRMWARE_CTRL
        BinaryPrimitives.WriteUInt32LittleEndian(t[40..], (uint)DsdtAddress); // DSDT
        t[44] = 1; // ACPI 1.0 INT_MODEL (multiple APIC); reserved since 2.0, where 1 is still allowed
        t[45] = 0; // Preferred_PM_Profile: unspecified
        BinaryPrimitives.WriteUInt16LittleEndian(t[46..], PmTimer.SciIrq); // SCI_INT
        // SMI_CMD (48), ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT: 0 — no SMM, always in ACPI mode.
        BinaryPrimitives.WriteUInt32LittleEndian(t[56..], PmTimer.PortBase + PmTimer.Pm1StatusOffset); // PM1a_EVT_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(t[64..], PmTimer.PortBase + PmTimer.Pm1ControlOffset); // PM1a_CNT_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(t[76..], PmTimer.PortBase + PmTimer.TimerOffset); // PM_TMR_BLK
        t[88] = PmTimer.Pm1EventLength; // PM1_EVT_LEN
        t[89] = PmTimer.Pm1ControlLength; // PM1_CNT_LEN
        t[91] = PmTimer.TimerLength; // PM_TMR_LEN
        BinaryPrimitives.WriteUInt16LittleEndian(t[96..], 0xFFF); // P_LVL2_LAT > 100: C2 not supported
        BinaryPrimitives.WriteUInt16LittleEndian(t[98..], 0xFFF); // P_LVL3_LAT > 1000: C3 not supported
        t[108] = RtcCentury; // CENTURY
        // IAPC_BOOT_ARCH (109): 0 — no 8042 keyboard controller on this machine.
        uint flags = FadtWbinvd | FadtProcC1 | FadtSlpButton | FadtRtcS4 | FadtResetRegSup | FadtUsePlatformClock;
        if (Cpus > 8)
        {
            // Flat logical destination mode reaches 8 APICs at most (QEMU sets this above 8 CPUs).
            flags |= FadtForceApicClusterModel;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(t[112..], flags);
        Gas(t[116..], 8, PciHost.PortBase + PciHost.ResetControlOffset); // RESET_REG
        t[128] = ResetValue; // RESET_VALUE
        // X_FIRMWARE_CTRL (132) stays 0: with FIRMWARE_CTRL nonzero it must be zero (§5.2.9, table 5.9).
        BinaryPrimitives.WriteUInt64LittleEndian(t[140..], DsdtAddress); // X_DSDT
        Gas(t[148..], 8 * PmTimer.Pm1EventLength, PmTimer.PortBase + PmTimer.Pm1StatusOffset); // X_PM1a_EVT_BLK
        Gas(t[172..], 8 * PmTimer.Pm1ControlLength, PmTimer.PortBase + PmTimer.Pm1ControlOffset); // X_PM1a_CNT_BLK
        Gas(t[208..], 8 * PmTimer.TimerLength, PmTimer.PortBase + PmTimer.TimerOffset); // X_PM_TMR_BLK
        Seal(t);
    }

    /// <summary>Generic Address Structure in system I/O space, §5.2.3.2.</summary>
    private static void Gas(Span<byte> g, byte bitWidth, ulong port)
    {
        g[0] = 1; // address space: system I/O
        g[1] = bitWidth;
        g[2] = 0; // bit offset
        g[3] = 0; // access size: undefined (legacy)
        BinaryPrimitives.WriteUInt64LittleEndian(g[4..], port);
    }

    /// <summary>MADT, §5.2.12, with the entries of QEMU's pc machine.</summary>
    private static void WriteMadt(Span<byte> t, int cpus)
    {
        Header(t, "APIC"u8, MadtRevision);
        BinaryPrimitives.WriteUInt32LittleEndian(t[36..], LocalApicAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(t[40..], 1); // PCAT_COMPAT: dual 8259s present
        int at = 44;
        for (int i = 0; i < cpus; i++)
        {
            // Processor Local APIC (type 0, §5.2.12.2): UID, APIC ID, flags Enabled.
            t[at] = 0;
            t[at + 1] = 8;
            t[at + 2] = (byte)i;
            t[at + 3] = (byte)i;
            BinaryPrimitives.WriteUInt32LittleEndian(t[(at + 4)..], 1);
            at += 8;
        }

        // I/O APIC (type 1, §5.2.12.3).
        t[at] = 1;
        t[at + 1] = 12;
        t[at + 2] = IoApicId;
        BinaryPrimitives.WriteUInt32LittleEndian(t[(at + 4)..], IoApicAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(t[(at + 8)..], 0);
        at += 12;

        // Interrupt Source Overrides (type 2, §5.2.12.5): the PIT on GSI 2 with the bus's own polarity and
        // trigger, then the PCI interrupt lines, level-triggered (flags 3:2 = 11) active high (1:0 = 01).
        at = Override(t, at, 0, 2, 0);
        foreach (byte irq in PciIrqs)
        {
            at = Override(t, at, irq, irq, 0x000D);
        }

        // Local APIC NMI (type 4, §5.2.12.7): all processors (UID 0xFF), LINT1, bus-conforming flags.
        t[at] = 4;
        t[at + 1] = 6;
        t[at + 2] = 0xFF;
        BinaryPrimitives.WriteUInt16LittleEndian(t[(at + 3)..], 0);
        t[at + 5] = 1;
        Seal(t);
    }

    private static int Override(Span<byte> t, int at, byte source, uint gsi, ushort flags)
    {
        t[at] = 2;
        t[at + 1] = 10;
        t[at + 2] = 0; // bus: ISA
        t[at + 3] = source;
        BinaryPrimitives.WriteUInt32LittleEndian(t[(at + 4)..], gsi);
        BinaryPrimitives.WriteUInt16LittleEndian(t[(at + 8)..], flags);
        return at + 10;
    }
}
