using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using CpuModel = Emulator.Core.Cpu.Cpu;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>x2APIC MSRs through the CPU's RDMSR/WRMSR, and the IA32_APIC_BASE mode transitions.</summary>
public sealed class X2ApicTests
{
    private ApicRig _r = null!;

    private const ulong Base = 0xFEE0_0000;
    private const ulong Disabled = Base;
    private const ulong Xapic = Base | CpuModel.ApicBaseEnable;
    private const ulong X2apic = Base | CpuModel.ApicBaseEnable | CpuModel.ApicBaseExtd;

    [SetUp]
    public void SetUp() => _r = new ApicRig(4);

    [TearDown]
    public void TearDown() => _r.Dispose();

    private bool Rd(int cpu, uint msr, out ulong v) => _r.Cpus[cpu].ReadMsr(msr, out v);

    private ulong Rd(int cpu, uint msr)
    {
        Assert.That(_r.Cpus[cpu].ReadMsr(msr, out ulong v), Is.True, $"RDMSR 0x{msr:X}");
        return v;
    }

    private bool Wr(int cpu, uint msr, ulong v) => _r.Cpus[cpu].WriteMsr(msr, v);

    /// <summary>Writes IA32_APIC_BASE (the BSP flag is the CPU's, whatever is written).</summary>
    private bool SetBase(int cpu, ulong v) => _r.Cpus[cpu].WriteMsr(Msr.ApicBase, v);

    [Test]
    public void MsrsFaultOutsideX2ApicMode()
    {
        Assert.That(Rd(0, 0x802, out _), Is.False);
        Assert.That(Wr(0, 0x808, 0), Is.False);
        Assert.That(SetBase(0, Disabled), Is.True);
        Assert.That(Rd(0, 0x802, out _), Is.False);
    }

    [Test]
    public void IdAndDerivedLogicalId()
    {
        for (int i = 0; i < 4; i++)
        {
            Assert.That(_r.EnterX2Apic(i), Is.True);
        }

        Assert.That(Rd(3, 0x802), Is.EqualTo(3UL), "32-bit x2APIC ID");
        Assert.That(Rd(3, 0x80D), Is.EqualTo(1UL << 3), "cluster 0, bit 3");
        Assert.That(Rd(0, 0x80D), Is.EqualTo(1UL));
        Assert.That(Rd(0, 0x803), Is.EqualTo((ulong)LocalApic.VersionValue));
        Assert.That(_r[3].ApicId, Is.EqualTo(3u));
        Assert.That(_r[3].X2ApicMode, Is.True);
    }

    [TestCase(0x802u, 5UL, TestName = "IdIsReadOnly")]
    [TestCase(0x803u, 0UL, TestName = "VersionIsReadOnly")]
    [TestCase(0x80Au, 0UL, TestName = "PprIsReadOnly")]
    [TestCase(0x80Du, 1UL, TestName = "LdrIsReadOnly")]
    [TestCase(0x80Eu, 0xFFFF_FFFFUL, TestName = "NoDfr")]
    [TestCase(0x809u, 0UL, TestName = "NoApr")]
    [TestCase(0x810u, 0UL, TestName = "IsrIsReadOnly")]
    [TestCase(0x839u, 0UL, TestName = "CurrentCountIsReadOnly")]
    [TestCase(0x831u, 0UL, TestName = "NoIcrHigh")]
    [TestCase(0x800u, 0UL, TestName = "Reserved800")]
    [TestCase(0x82Fu, 0UL, TestName = "NoCmci")]
    [TestCase(0x8FFu, 0UL, TestName = "Reserved8FF")]
    [TestCase(0x808u, 0x100UL, TestName = "TprReservedBits")]
    [TestCase(0x808u, 1UL << 32, TestName = "HighHalfReserved")]
    [TestCase(0x80Bu, 1UL, TestName = "NonZeroEoi")]
    [TestCase(0x828u, 1UL, TestName = "NonZeroEsr")]
    [TestCase(0x80Fu, 0x11FFUL, TestName = "SvrEoiSuppressionNotSupported")]
    [TestCase(0x832u, 0x8_0000UL, TestName = "LvtTimerBit19Reserved")]
    [TestCase(0x835u, 0x2_0000UL, TestName = "LvtLint0ReservedBit")]
    [TestCase(0x837u, 0x700UL, TestName = "LvtErrorHasNoDeliveryMode")]
    [TestCase(0x83Eu, 0x10UL, TestName = "DivideReservedBit")]
    [TestCase(0x83Fu, 0x100UL, TestName = "SelfIpiReservedBits")]
    [TestCase(0x830u, 1UL << 13, TestName = "IcrReservedBit13")]
    [TestCase(0x830u, 1UL << 16, TestName = "IcrReservedBit16")]
    [TestCase(0x830u, 1UL << 20, TestName = "IcrReservedBit20")]
    public void WriteFaults(uint msr, ulong value)
    {
        _r.EnterX2Apic(0);
        _r.Cpus[0].WriteMsr(0x80F, 0x1FF);
        Assert.That(Wr(0, msr, value), Is.False);
    }

    [TestCase(0x80Bu, TestName = "EoiIsWriteOnly")]
    [TestCase(0x83Fu, TestName = "SelfIpiIsWriteOnly")]
    [TestCase(0x80Eu, TestName = "NoDfrRead")]
    [TestCase(0x809u, TestName = "NoAprRead")]
    [TestCase(0x831u, TestName = "NoIcrHighRead")]
    [TestCase(0x80Cu, TestName = "NoRemoteRead")]
    [TestCase(0x801u, TestName = "Reserved801")]
    public void ReadFaults(uint msr)
    {
        _r.EnterX2Apic(0);
        Assert.That(Rd(0, msr, out _), Is.False);
    }

    [Test]
    public void RegistersRoundTrip()
    {
        _r.EnterX2Apic(0);
        Assert.That(Wr(0, 0x80F, 0x1FF), Is.True);
        Assert.That(Rd(0, 0x80F), Is.EqualTo(0x1FFUL));
        Assert.That(Wr(0, 0x808, 0x20), Is.True);
        Assert.That(_r.Cpus[0].Tpr, Is.EqualTo(0x20));
        Assert.That(Rd(0, 0x80A), Is.EqualTo(0x20UL), "PPR");
        Assert.That(Wr(0, 0x832, 0x2_0040), Is.True);
        Assert.That(Rd(0, 0x832), Is.EqualTo(0x2_0040UL));
        Assert.That(Wr(0, 0x835, 0x1000 | 0x700), Is.True, "delivery status is read-only, not reserved");
        Assert.That(Rd(0, 0x835), Is.EqualTo(0x700UL));
        Assert.That(Wr(0, 0x83E, 0xB), Is.True);
        Assert.That(Rd(0, 0x83E), Is.EqualTo(0xBUL));
        Assert.That(Wr(0, 0x828, 0), Is.True);
        Assert.That(Wr(0, 0x80B, 0), Is.True);
    }

    [Test]
    public void IcrIsOne64BitRegisterWithA32BitDestination()
    {
        for (int i = 0; i < 4; i++)
        {
            _r.EnterX2Apic(i);
            _r.Cpus[i].WriteMsr(0x80F, 0x1FF);
        }

        Assert.That(Wr(0, 0x830, (2UL << 32) | 0x1000 | 0x45), Is.True, "delivery-status bit ignored");
        Assert.That(Rd(0, 0x830), Is.EqualTo((2UL << 32) | 0x45), "reads back without the status bit");
        Assert.That(_r[2].HighestRequested, Is.EqualTo(0x45));
        Assert.That(_r[1].HighestRequested, Is.EqualTo(-1));

        // Logical x2APIC: cluster 0, bits 1 and 3.
        Assert.That(Wr(0, 0x830, (0b1010UL << 32) | 0x800 | 0x46), Is.True);
        Assert.That(_r[1].HighestRequested, Is.EqualTo(0x46));
        Assert.That(_r[3].HighestRequested, Is.EqualTo(0x46));
        Assert.That(_r[2].HighestRequested, Is.EqualTo(0x45));
        Assert.That(_r[0].MatchesLogical(1u << 16 | 1), Is.False, "other cluster");

        Assert.That(Wr(1, 0x830, (0xFFFF_FFFFUL << 32) | 0x47), Is.True, "x2APIC broadcast");
        for (int i = 0; i < 4; i++)
        {
            Assert.That(_r[i].HighestRequested, Is.EqualTo(0x47), $"APIC {i}");
        }
    }

    [Test]
    public void SelfIpiMsr()
    {
        _r.EnterX2Apic(1);
        Assert.That(Wr(1, 0x80F, 0x1FF), Is.True);
        Assert.That(Wr(1, 0x83F, 0x99), Is.True);
        Assert.That(_r[1].HighestRequested, Is.EqualTo(0x99));
        Assert.That(_r[1].HasPendingInterrupt, Is.True);
        Assert.That(_r[0].HighestRequested, Is.EqualTo(-1));
    }

    [Test]
    public void MmioPageIsAHoleInX2ApicMode()
    {
        _r.EnterX2Apic(0);
        Assert.That(_r[0].ReadMmio(ApicReg.Version, 4), Is.EqualTo(0xFFFF_FFFFUL));
        _r[0].WriteMmio(ApicReg.Tpr, 4, 0x40);
        Assert.That(_r.Cpus[0].Tpr, Is.EqualTo(0));
    }

    [Test]
    public void ValidTransitions()
    {
        Assert.That(SetBase(1, X2apic), Is.True, "xAPIC → x2APIC");
        Assert.That(SetBase(1, Disabled), Is.True, "x2APIC → disabled");
        Assert.That(SetBase(1, Xapic), Is.True, "disabled → xAPIC");
        Assert.That(SetBase(1, Disabled), Is.True, "xAPIC → disabled");
        Assert.That(SetBase(1, Disabled), Is.True, "disabled → disabled");
    }

    [Test]
    public void InvalidTransitionsFault()
    {
        Assert.That(SetBase(1, Base | CpuModel.ApicBaseExtd), Is.False, "EXTD without EN");
        Assert.That(SetBase(1, X2apic), Is.True);
        Assert.That(SetBase(1, Xapic), Is.False, "x2APIC → xAPIC directly");
        Assert.That(SetBase(1, Base | CpuModel.ApicBaseExtd), Is.False, "x2APIC → invalid");
        Assert.That(_r.Cpus[1].ApicBase, Is.EqualTo(X2apic), "unchanged after the faults");
        Assert.That(SetBase(1, Disabled), Is.True);
        Assert.That(SetBase(1, X2apic), Is.False, "disabled → x2APIC directly");
        Assert.That(_r.Cpus[1].ApicBase, Is.EqualTo(Disabled));
    }

    [Test]
    public void DisablingResetsTheApic()
    {
        _r.Enable(1);
        _r.Write(1, ApicReg.Tpr, 0x30);
        _r.Write(1, ApicReg.LvtLint1, 0x400);
        _r.Write(1, ApicReg.Id, 7u << 24);
        _r.SendIcr(1, 0x4_0070);
        Assert.That(SetBase(1, Disabled), Is.True);
        Assert.That(_r[1].ReadMmio(ApicReg.Version, 4), Is.EqualTo(0xFFFF_FFFFUL), "disabled: MMIO hole");
        Assert.That(SetBase(1, Xapic), Is.True);
        Assert.That(_r.Read(1, ApicReg.Tpr), Is.EqualTo(0u));
        Assert.That(_r.Read(1, ApicReg.Svr), Is.EqualTo(0xFFu));
        Assert.That(_r.Read(1, ApicReg.LvtLint1), Is.EqualTo(0x1_0000u));
        Assert.That(_r.Irr(1, 0x70), Is.False);
        Assert.That(_r.Read(1, ApicReg.Id), Is.EqualTo(1u << 24), "initial xAPIC ID again");
    }

    [Test]
    public void DisabledApicTakesNoMessagesAndPassesThePicThrough()
    {
        var pic = new IntrLine { Vector = 0x24, ExtIntPending = true };
        _r[1].ExtInt = pic;
        Assert.That(_r[1].HasPendingInterrupt, Is.False, "AP LINT0 masked");
        Assert.That(SetBase(1, Disabled), Is.True);
        Assert.That(_r[1].HasPendingInterrupt, Is.True, "disabled: INTR goes to the core");
        Assert.That(_r[1].Acknowledge(), Is.EqualTo(0x24));
        _r.Enable(0);
        _r.SendIcr(0, 0x0400, 1);
        Assert.That(_r.Cpus[1].NmiPending, Is.False, "hardware-disabled APIC takes no NMI message");
        _r[1].SetLint(1, true);
        Assert.That(_r.Cpus[1].NmiPending, Is.True, "LINT1 is the NMI pin while disabled");
    }

    [Test]
    public void InitInX2ApicModeKeepsTheModeAndId()
    {
        _r.EnterX2Apic(2);
        Wr(2, 0x80F, 0x1FF);
        Wr(2, 0x808, 0x40);
        _r.Cpus[2].Init();
        Assert.That(_r[2].X2ApicMode, Is.True);
        Assert.That(Rd(2, 0x802), Is.EqualTo(2UL));
        Assert.That(Rd(2, 0x80D), Is.EqualTo(4UL));
        Assert.That(Rd(2, 0x808), Is.EqualTo(0UL));
        Assert.That(Rd(2, 0x80F), Is.EqualTo(0xFFUL));
    }
    [Test]
    public void LogicalIdsAboveFifteenFallInTheNextCluster()
    {
        // x2APIC logical ID (Intel SDM vol. 3 §10.12.10.2): cluster = ID[19:4] in bits 31:16, member bit
        // 1 << ID[3:0]; read-only.
        using var r = new ApicRig(18);
        for (int i = 0; i < 18; i++)
        {
            Assert.That(r.EnterX2Apic(i), Is.True);
            Assert.That(r.Cpus[i].WriteMsr(0x80F, 0x1FF), Is.True);
        }

        Assert.That(r.Cpus[17].ReadMsr(0x80D, out ulong ldr17), Is.True);
        Assert.That(ldr17, Is.EqualTo((1UL << 16) | (1UL << 1)));
        Assert.That(r.Cpus[16].ReadMsr(0x80D, out ulong ldr16), Is.True);
        Assert.That(ldr16, Is.EqualTo((1UL << 16) | 1));
        Assert.That(r.Cpus[17].WriteMsr(0x80D, 5), Is.False, "LDR is read-only");

        // Cluster 1, members 0 and 1: APICs 16 and 17, and not APICs 0 and 1 of cluster 0.
        Assert.That(r.Cpus[0].WriteMsr(0x830, (0x0001_0003UL << 32) | 0x800 | 0x66), Is.True);
        Assert.That(r[16].HighestRequested, Is.EqualTo(0x66));
        Assert.That(r[17].HighestRequested, Is.EqualTo(0x66));
        Assert.That(r[0].HighestRequested, Is.EqualTo(-1));
        Assert.That(r[1].HighestRequested, Is.EqualTo(-1));
    }
}
