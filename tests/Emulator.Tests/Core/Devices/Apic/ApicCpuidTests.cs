using Emulator.Core.Cpu;
using CpuModel = Emulator.Core.Cpu.Cpu;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>The CPUID bits that describe the local APIC: leaf 1 EDX.APIC and the x2APIC topology leaf 0xB.</summary>
public sealed class ApicCpuidTests
{
    private static uint Edx(CpuModel c, uint leaf, uint subleaf = 0)
    {
        c.Cpuid(leaf, subleaf, out _, out _, out _, out uint edx);
        return edx;
    }

    [Test]
    public void Leaf1ApicBitFollowsTheGlobalEnableInApicBase()
    {
        using var rig = new ApicRig(1);
        var c = rig.Cpus[0];
        Assert.That(Edx(c, 1) & (1u << 9), Is.Not.Zero, "enabled after reset");
        Assert.That(c.WriteMsr(Msr.ApicBase, c.ApicBase & ~CpuModel.ApicBaseEnable), Is.True);
        Assert.That(Edx(c, 1) & (1u << 9), Is.Zero, "clear while IA32_APIC_BASE.EN is clear");
        Assert.That(c.WriteMsr(Msr.ApicBase, c.ApicBase | CpuModel.ApicBaseEnable), Is.True);
        Assert.That(Edx(c, 1) & (1u << 9), Is.Not.Zero, "set again with EN");
    }

    [Test]
    public void Leaf0BDescribesOneThreadPerCoreAndOneCorePerPackageWithTheX2ApicId()
    {
        using var rig = new ApicRig(3);
        var c = rig.Cpus[2];
        c.Cpuid(0, 0, out uint max, out _, out _, out _);
        Assert.That(max, Is.GreaterThanOrEqualTo(0xBu), "the leaf is inside the reported range");

        c.Cpuid(0xB, 0, out uint a0, out uint b0, out uint c0, out uint d0);
        Assert.That((a0, b0, c0, d0), Is.EqualTo((0u, 1u, 0x100u, 2u)), "SMT level: one thread, x2APIC ID 2");
        c.Cpuid(0xB, 1, out uint a1, out uint b1, out uint c1, out uint d1);
        Assert.That((a1, b1, c1, d1), Is.EqualTo((0u, 1u, 0x201u, 2u)), "core level: one core");
        c.Cpuid(0xB, 2, out uint a2, out uint b2, out uint c2, out uint d2);
        Assert.That((a2, b2, c2, d2), Is.EqualTo((0u, 0u, 2u, 2u)), "no third level");
    }

    [Test]
    public void Leaf0BIsEmptyWithoutX2Apic()
    {
        using var rig = new ApicRig(1);
        var c = rig.Cpus[0];
        Assert.That(c.Features.TryApply("-x2apic", out _), Is.True);
        c.Cpuid(0xB, 0, out uint a, out uint b, out uint cx, out uint d);
        Assert.That((a, b, cx, d), Is.EqualTo((0u, 0u, 0u, 0u)));
    }
}
