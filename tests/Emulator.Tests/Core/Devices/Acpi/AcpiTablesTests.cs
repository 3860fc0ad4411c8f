using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Devices.Acpi;
using Emulator.Core.Memory;

namespace Emulator.Tests.Core.Devices.Acpi;

/// <summary>The ACPI tables as a guest finds them: parsed back from guest memory, not from the builder's fields.</summary>
public class AcpiTablesTests
{
    private PhysicalMemory _mem = null!;

    [SetUp]
    public void SetUp() => _mem = PhysicalMemory.Create(16 << 20);

    [TearDown]
    public void TearDown() => _mem.Dispose();

    private byte[] Bytes(ulong gpa, int length)
    {
        var b = new byte[length];
        _mem.ReadBytes(gpa, b);
        return b;
    }

    private uint U32(ulong gpa) => (uint)_mem.Read(gpa, 4);

    private ulong U64(ulong gpa) => _mem.Read(gpa, 8);

    private string Sig(ulong gpa) => Encoding.ASCII.GetString(Bytes(gpa, 4));

    /// <summary>A whole table by its header length, asserting its checksum.</summary>
    private byte[] Table(ulong gpa, string signature)
    {
        Assert.That(Sig(gpa), Is.EqualTo(signature));
        var t = Bytes(gpa, (int)U32(gpa + 4));
        Assert.That(AcpiTables.Sum(t), Is.Zero, $"{signature} checksum");
        Assert.That(Encoding.ASCII.GetString(t, 10, 6), Is.EqualTo("EMU   "), $"{signature} OEM ID");
        return t;
    }

    /// <summary>The RSDP found the way an OS finds it: scanning 0xE0000–0xFFFFF on 16-byte boundaries.</summary>
    private ulong ScanForRsdp()
    {
        for (ulong a = 0xE0000; a < 0x100000; a += 16)
        {
            if (Encoding.ASCII.GetString(Bytes(a, 8)) == "RSD PTR ")
            {
                return a;
            }
        }

        Assert.Fail("no RSDP in 0xE0000–0xFFFFF");
        return 0;
    }

    private (ulong Rsdt, ulong Xsdt) Install(int cpus)
    {
        AcpiTables.Build(cpus).Install(_mem);
        ulong rsdp = ScanForRsdp();
        var r = Bytes(rsdp, 36);
        Assert.That(AcpiTables.Sum(r.AsSpan(0, 20)), Is.Zero, "RSDP checksum (first 20 bytes)");
        Assert.That(AcpiTables.Sum(r), Is.Zero, "RSDP extended checksum");
        Assert.That(r[15], Is.EqualTo(2), "RSDP revision");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(20)), Is.EqualTo(36), "RSDP length");
        return (BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(16)), BinaryPrimitives.ReadUInt64LittleEndian(r.AsSpan(24)));
    }

    private ulong[] RsdtEntries(ulong rsdt)
    {
        var t = Table(rsdt, "RSDT");
        var e = new ulong[(t.Length - 36) / 4];
        for (int i = 0; i < e.Length; i++)
        {
            e[i] = BinaryPrimitives.ReadUInt32LittleEndian(t.AsSpan(36 + (4 * i)));
        }

        return e;
    }

    private ulong[] XsdtEntries(ulong xsdt)
    {
        var t = Table(xsdt, "XSDT");
        var e = new ulong[(t.Length - 36) / 8];
        for (int i = 0; i < e.Length; i++)
        {
            e[i] = BinaryPrimitives.ReadUInt64LittleEndian(t.AsSpan(36 + (8 * i)));
        }

        return e;
    }

    private ulong Find(string signature, int cpus = 1)
    {
        var (_, xsdt) = Install(cpus);
        foreach (ulong p in XsdtEntries(xsdt))
        {
            if (Sig(p) == signature)
            {
                return p;
            }
        }

        Assert.Fail($"{signature} not listed in the XSDT");
        return 0;
    }

    [Test]
    public void RsdpIsOn16ByteBoundaryInTheBiosArea()
    {
        AcpiTables.Build(1).Install(_mem);
        ulong rsdp = ScanForRsdp();
        Assert.That(rsdp % 16, Is.Zero);
        Assert.That(Encoding.ASCII.GetString(Bytes(rsdp + 9, 6)), Is.EqualTo("EMU   "));
    }

    [Test]
    public void RsdtAndXsdtListTheFadtAndMadtAndEveryTableSumsToZero()
    {
        var (rsdt, xsdt) = Install(2);
        var r = RsdtEntries(rsdt);
        var x = XsdtEntries(xsdt);
        Assert.That(x, Is.EqualTo(r), "RSDT and XSDT list the same tables");
        Assert.That(r.Select(Sig), Is.EquivalentTo(new[] { "FACP", "APIC" }));
        foreach (ulong p in r)
        {
            Table(p, Sig(p));
            Assert.That(p, Is.InRange(AcpiTables.Base, AcpiTables.Base + AcpiTables.MaxSize - 1));
        }
    }

    [Test]
    public void FadtPointsAtThePmBlockTheDsdtAndTheFacs()
    {
        ulong fadtAt = Find("FACP");
        var f = Table(fadtAt, "FACP");
        Assert.That(f.Length, Is.EqualTo(244));
        Assert.That(f[8], Is.EqualTo(3), "revision");
        uint U(int o) => BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(o));
        ushort W(int o) => BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(o));
        Assert.Multiple(() =>
        {
            Assert.That(W(46), Is.EqualTo(9), "SCI_INT");
            Assert.That(U(48), Is.Zero, "SMI_CMD");
            Assert.That(U(56), Is.EqualTo(0x600), "PM1a_EVT_BLK");
            Assert.That(U(64), Is.EqualTo(0x604), "PM1a_CNT_BLK");
            Assert.That(U(76), Is.EqualTo(0x608), "PM_TMR_BLK");
            Assert.That(f[88], Is.EqualTo(4), "PM1_EVT_LEN");
            Assert.That(f[89], Is.EqualTo(2), "PM1_CNT_LEN");
            Assert.That(f[91], Is.EqualTo(4), "PM_TMR_LEN");
            Assert.That(U(112) & AcpiTables.FadtTmrValExt, Is.Zero, "24-bit PM timer");
            Assert.That(U(112) & AcpiTables.FadtResetRegSup, Is.Not.Zero, "reset register");
            Assert.That(f[116], Is.EqualTo(1), "RESET_REG in I/O space");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(120)), Is.EqualTo(0xCF9), "RESET_REG");
            Assert.That(f[128] & 0x04, Is.Not.Zero, "RESET_VALUE resets the CPU");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(140)), Is.EqualTo(U(40)), "X_DSDT = DSDT");
            Assert.That(f[208], Is.EqualTo(1), "X_PM_TMR_BLK in I/O space");
            Assert.That(f[209], Is.EqualTo(32), "X_PM_TMR_BLK width");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(212)), Is.EqualTo(0x608), "X_PM_TMR_BLK");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(152)), Is.EqualTo(0x600), "X_PM1a_EVT_BLK");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(176)), Is.EqualTo(0x604), "X_PM1a_CNT_BLK");
        });

        var dsdt = Table(U(40), "DSDT");
        Assert.That(Encoding.ASCII.GetString(dsdt, 36, dsdt.Length - 36), Does.Contain("_S5_"));

        ulong facs = U(36);
        Assert.That(facs % 64, Is.Zero, "FACS is 64-byte aligned");
        Assert.That(Sig(facs), Is.EqualTo("FACS"));
        Assert.That(U32(facs + 4), Is.EqualTo(64));
    }

    [TestCase(1)]
    [TestCase(4)]
    [TestCase(64)]
    public void MadtHasOneEnabledLocalApicPerVcpu(int cpus)
    {
        var t = Table(Find("APIC", cpus), "APIC");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(t.AsSpan(36)), Is.EqualTo(0xFEE00000), "local APIC address");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(t.AsSpan(40)), Is.EqualTo(1), "PCAT_COMPAT");
        var lapics = new List<(byte Uid, byte Id, uint Flags)>();
        var overrides = new List<(byte Source, uint Gsi, ushort Flags)>();
        var ioApics = new List<(byte Id, uint Address, uint Base)>();
        var nmis = new List<(byte Uid, ushort Flags, byte Lint)>();
        for (int at = 44; at < t.Length; at += t[at + 1])
        {
            var e = t.AsSpan(at);
            Assert.That(e[1], Is.GreaterThanOrEqualTo(2), "entry length");
            switch (e[0])
            {
                case 0: lapics.Add((e[2], e[3], BinaryPrimitives.ReadUInt32LittleEndian(e[4..]))); break;
                case 1: ioApics.Add((e[2], BinaryPrimitives.ReadUInt32LittleEndian(e[4..]), BinaryPrimitives.ReadUInt32LittleEndian(e[8..]))); break;
                case 2: overrides.Add((e[3], BinaryPrimitives.ReadUInt32LittleEndian(e[4..]), BinaryPrimitives.ReadUInt16LittleEndian(e[8..]))); break;
                case 4: nmis.Add((e[2], BinaryPrimitives.ReadUInt16LittleEndian(e[3..]), e[5])); break;
                default: Assert.Fail($"unexpected MADT entry type {e[0]}"); break;
            }
        }

        Assert.That(lapics, Has.Count.EqualTo(cpus));
        for (int i = 0; i < cpus; i++)
        {
            Assert.That(lapics[i], Is.EqualTo(((byte)i, (byte)i, 1u)));
        }

        Assert.That(ioApics, Is.EqualTo(new[] { ((byte)0, 0xFEC00000u, 0u) }));
        Assert.That(overrides, Is.EqualTo(new[]
        {
            ((byte)0, 2u, (ushort)0),
            ((byte)5, 5u, (ushort)0xD),
            ((byte)9, 9u, (ushort)0xD),
            ((byte)10, 10u, (ushort)0xD),
            ((byte)11, 11u, (ushort)0xD),
        }));
        Assert.That(nmis, Is.EqualTo(new[] { ((byte)0xFF, (ushort)0, (byte)1) }));
    }

    [TestCase(8, false)]
    [TestCase(9, true)]
    public void ClusterModelIsForcedAboveEightCpus(int cpus, bool forced)
    {
        var f = Table(Find("FACP", cpus), "FACP");
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(112));
        Assert.That((flags & AcpiTables.FadtForceApicClusterModel) != 0, Is.EqualTo(forced));
    }

    [Test]
    public void TheGuestCannotOverwriteTheTables()
    {
        AcpiTables.Build(1).Install(_mem);
        _mem.Write(AcpiTables.Base, 8, 0);
        Assert.That(Encoding.ASCII.GetString(Bytes(AcpiTables.Base, 8)), Is.EqualTo("RSD PTR "));
    }

    [Test]
    public void VcpuCountsTheMadtCannotHoldAreRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => AcpiTables.Build(255));
}
