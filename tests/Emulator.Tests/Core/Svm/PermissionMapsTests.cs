using Emulator.Core.Svm;
using NUnit.Framework;

namespace Emulator.Tests.Core.Svm;

/// <summary>The IOPM and MSRPM lookups on their own (APM vol. 2 §15.10.1, §15.11).</summary>
[TestFixture]
public class PermissionMapsTests
{
    private const ulong Base = 0x10000;

    /// <summary>A map in a byte array at <see cref="Base"/>; addresses outside it are unbacked.</summary>
    private struct ArrayReader(byte[] bytes) : IPermissionMapReader
    {
        public bool ReadByte(ulong address, out byte value)
        {
            ulong i = address - Base;
            if (address < Base || i >= (ulong)bytes.Length)
            {
                value = 0;
                return false;
            }

            value = bytes[i];
            return true;
        }
    }

    [Test]
    public void AnIoAccessExitsWhenAnyOfItsPortsBitsIsSet()
    {
        var map = new byte[0x3000];
        map[0x80 >> 3] |= 1 << (0x80 & 7);
        var r = new ArrayReader(map);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x80, 1), Is.True);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x7F, 1), Is.False);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x7F, 2), Is.True, "second byte is port 0x80");
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x7D, 4), Is.True, "last byte is port 0x80");
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x7C, 4), Is.False);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x81, 4), Is.False);
    }

    [Test]
    public void AnIoAccessPastPortFfffUsesTheThirdPage()
    {
        var map = new byte[0x3000];
        map[0x2000] = 1; // "port" 0x10000
        var r = new ArrayReader(map);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0xFFFF, 1), Is.False);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0xFFFF, 2), Is.True);
    }

    [Test]
    public void AnUnreadableMapExits()
    {
        var r = new ArrayReader(new byte[0x100]);
        Assert.That(PermissionMaps.IoIntercepted(ref r, Base, 0x1000, 1), Is.True);
        Assert.That(PermissionMaps.MsrIntercepted(ref r, Base, 0xC0000080, write: false), Is.True);
        Assert.That(PermissionMaps.MsrIntercepted(ref r, Base, 0x10, write: false), Is.False, "byte 4 is in the array");
    }

    [TestCase(0x10u, false, 0x004, 0)]
    [TestCase(0x10u, true, 0x004, 1)]
    [TestCase(0x1FFFu, true, 0x7FF, 7)]
    [TestCase(0xC0000080u, false, 0x820, 0)]
    [TestCase(0xC0000080u, true, 0x820, 1)]
    [TestCase(0xC0010117u, true, 0x1045, 7)]
    public void AnMsrHasAReadAndAWriteBitInItsRange(uint msr, bool write, int byteIndex, int bit)
    {
        var map = new byte[0x2000];
        var r = new ArrayReader(map);
        Assert.That(PermissionMaps.MsrIntercepted(ref r, Base, msr, write), Is.False);
        map[byteIndex] = (byte)(1 << bit);
        Assert.That(PermissionMaps.MsrIntercepted(ref r, Base, msr, write), Is.True);
        Assert.That(PermissionMaps.MsrIntercepted(ref r, Base, msr, !write), Is.False, "the other direction's bit is clear");
    }

    [TestCase(0x2000u)]
    [TestCase(0x40000000u)]
    [TestCase(0xC0002000u)]
    [TestCase(0xC0012000u)]
    public void AnMsrOutsideTheRangesAlwaysExits(uint msr)
    {
        var r = new ArrayReader(new byte[0x2000]);
        Assert.That(PermissionMaps.MsrIntercepted(ref r, Base, msr, write: false), Is.True);
    }

    [Test]
    public void IoExitInfoHasTypeStringRepSizesSegmentAndPort()
    {
        Assert.That(PermissionMaps.IoExitInfo(0x80, 1, 8, input: false, str: false, rep: false, segment: 0), Is.EqualTo((0x80UL << 16) | (1 << 4) | (1 << 9)));
        Assert.That(PermissionMaps.IoExitInfo(0x3F8, 2, 4, input: true, str: true, rep: true, segment: 3), Is.EqualTo((0x3F8UL << 16) | 1 | 4 | 8 | (1 << 5) | (1 << 8) | (3 << 10)));
        Assert.That(PermissionMaps.IoExitInfo(0xFFFF, 4, 2, input: true, str: false, rep: false, segment: 5), Is.EqualTo((0xFFFFUL << 16) | 1 | (1 << 6) | (1 << 7)), "no segment for IN");
    }
}
