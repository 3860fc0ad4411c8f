using System.Reflection;
using Emulator.Mmu.Memory;

namespace Emulator.Tests.Mmu;

public class AddressesTests
{
    [Test]
    public void GfnOfAGpaDropsThePageOffset()
    {
        var gpa = new Gpa(0x1234_5678);
        Assert.That(gpa.Gfn, Is.EqualTo(new Gfn(0x12345)));
        Assert.That(gpa.PageOffset, Is.EqualTo(0x678UL));
        Assert.That(gpa.Gfn.ToGpa(), Is.EqualTo(new Gpa(0x1234_5000)));
        Assert.That(gpa.Gfn.ToGpa() + gpa.PageOffset, Is.EqualTo(gpa));
    }

    [Test]
    public void L2AddressesConvertTheSameWay()
    {
        var gpa = new L2Gpa(0xFFFF_F000_0000_0ABC);
        Assert.That(gpa.Gfn, Is.EqualTo(new L2Gfn(0xFFFF_F000_0000_0)));
        Assert.That(gpa.PageOffset, Is.EqualTo(0xABCUL));
        Assert.That(gpa.Gfn.ToGpa(), Is.EqualTo(new L2Gpa(0xFFFF_F000_0000_0000)));
    }

    [Test]
    public void HostFramesConvert()
    {
        var hpa = new Hpa(0x20_0FFF);
        Assert.That(hpa.Hfn, Is.EqualTo(new Hfn(0x200)));
        Assert.That(hpa.PageOffset, Is.EqualTo(0xFFFUL));
        Assert.That((hpa.Hfn + 1).ToHpa(), Is.EqualTo(new Hpa(0x20_1000)));
    }

    [Test]
    public void ByteAndFrameOffsetsAddAndSubtract()
    {
        Assert.That(new Gpa(0x1000) + 0x10, Is.EqualTo(new Gpa(0x1010)));
        Assert.That(new Gpa(0x1000) - 0x10, Is.EqualTo(new Gpa(0xFF0)));
        Assert.That(new Gfn(5) + 3, Is.EqualTo(new Gfn(8)));
        Assert.That(new Gfn(5) - 3, Is.EqualTo(new Gfn(2)));
        Assert.That(new L2Gpa(0x2000) - 1, Is.EqualTo(new L2Gpa(0x1FFF)));
        Assert.That(new Hpa(0x2000) + 1, Is.EqualTo(new Hpa(0x2001)));
    }

    [Test]
    public void EqualityComparesTheValue()
    {
        Assert.That(new Gfn(7) == new Gfn(7), Is.True);
        Assert.That(new Gfn(7) != new Gfn(8), Is.True);
        Assert.That(new Gpa(0x7000).GetHashCode(), Is.EqualTo(new Gpa(0x7000).GetHashCode()));
        Assert.That(new Hfn(3).Equals(new Hfn(3)), Is.True);
    }

    [Test]
    public void ToStringIsHexAndNamesTheKind()
    {
        Assert.That(new Gpa(0xFEE00000).ToString(), Is.EqualTo("gpa 0xFEE00000"));
        Assert.That(new Gfn(0xFEE00).ToString(), Is.EqualTo("gfn 0xFEE00"));
        Assert.That(new L2Gpa(0x1000).ToString(), Is.EqualTo("l2gpa 0x1000"));
        Assert.That(new L2Gfn(1).ToString(), Is.EqualTo("l2gfn 0x1"));
        Assert.That(new Hpa(0xABC).ToString(), Is.EqualTo("hpa 0xABC"));
        Assert.That(new Hfn(0xA).ToString(), Is.EqualTo("hfn 0xA"));
    }

    [TestCase(typeof(Gpa))]
    [TestCase(typeof(Gfn))]
    [TestCase(typeof(L2Gpa))]
    [TestCase(typeof(L2Gfn))]
    [TestCase(typeof(Hpa))]
    [TestCase(typeof(Hfn))]
    public void KindsHaveNoConversionOperators(Type kind)
    {
        // Mixing kinds (or a kind and a raw ulong) must not compile: no implicit or explicit conversions.
        var conversions = kind.GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Where(m => m.Name is "op_Implicit" or "op_Explicit");
        Assert.That(conversions, Is.Empty);
        Assert.That(Unsafe.SizeOf(kind), Is.EqualTo(sizeof(ulong)));
    }

    private static class Unsafe
    {
        public static int SizeOf(Type t) => System.Runtime.InteropServices.Marshal.SizeOf(t);
    }
}
