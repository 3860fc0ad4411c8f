using Emulator.Cli;

namespace Emulator.Tests.Cli;

public class ValuesTests
{
    [TestCase("1G", 1UL << 30)]
    [TestCase("1g", 1UL << 30)]
    [TestCase("512M", 512UL << 20)]
    [TestCase("4096K", 4UL << 20)]
    [TestCase("2GiB", 2UL << 30)]
    [TestCase("1024", 1UL << 30)]
    [TestCase("1T", 1UL << 40)]
    public void SizesUseBinaryUnitsAndBareNumbersAreMiB(string text, ulong bytes)
    {
        Assert.That(Values.TryParseSize(text, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(bytes));
    }

    [TestCase("")]
    [TestCase("G")]
    [TestCase("1X")]
    [TestCase("-1G")]
    [TestCase("1.5G")]
    [TestCase("99999999999999999999G")]
    public void BadSizesAreRejected(string text) => Assert.That(Values.TryParseSize(text, out _), Is.False);

    [TestCase("0x100000", 0x100000UL)]
    [TestCase("0X7c00", 0x7C00UL)]
    [TestCase("1048576", 0x100000UL)]
    [TestCase("200_000_000", 200_000_000UL)]
    public void NumbersAreDecimalOrHex(string text, ulong value)
    {
        Assert.That(Values.TryParseNumber(text, out ulong v), Is.True);
        Assert.That(v, Is.EqualTo(value));
    }

    [TestCase("0x")]
    [TestCase("12h")]
    [TestCase("-5")]
    public void BadNumbersAreRejected(string text) => Assert.That(Values.TryParseNumber(text, out _), Is.False);

    [Test]
    public void FeatureListsKeepSignsAndDropTheModel()
    {
        Assert.That(Values.TryParseFeatures("max,-x2apic,+svm,npt", out var f, out _), Is.True);
        Assert.That(f, Is.EqualTo(new[] { "-x2apic", "+svm", "+npt" }));
    }

    [TestCase("a,,b")]
    [TestCase("-")]
    [TestCase("x y")]
    public void BadFeatureListsAreRejected(string text) => Assert.That(Values.TryParseFeatures(text, out _, out _), Is.False);
}
