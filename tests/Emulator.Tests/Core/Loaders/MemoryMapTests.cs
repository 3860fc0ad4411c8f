using Emulator.Core.Loaders;
using Emulator.Core.Memory;

namespace Emulator.Tests.Core.Loaders;

public class MemoryMapTests
{
    [TestCase(0x1000UL, 0x1000UL, true)]
    [TestCase(0x9F000UL, 0x1000UL, true)]
    [TestCase(0x9F000UL, 0x1001UL, false)]
    [TestCase(0xA0000UL, 1UL, false)]
    [TestCase(0xF0000UL, 1UL, false)]
    [TestCase(0x100000UL, 0xF00000UL, true)]
    [TestCase(0x100000UL, 0xF00001UL, false)]
    [TestCase(0xFFFFFFFFFFFFF000UL, 0x2000UL, false)]
    public void UsableRamFollowsThePlatformMap(ulong gpa, ulong length, bool usable)
    {
        using var mem = PhysicalMemory.Create(16 << 20);
        Assert.That(MemoryMap.IsUsableRam(mem, gpa, length), Is.EqualTo(usable));
    }

    [Test]
    public void RangesAreSortedAndDisjoint()
    {
        using var mem = PhysicalMemory.Create((3UL << 30) + (1UL << 30));
        var map = MemoryMap.For(mem);
        for (int i = 1; i < map.Length; i++)
        {
            Assert.That(map[i].Base, Is.GreaterThanOrEqualTo(map[i - 1].End));
        }

        ulong ram = 0;
        foreach (var r in map)
        {
            ram += r.Type == MemoryType.Ram ? r.Length : 0;
        }

        Assert.That(ram, Is.EqualTo(mem.RamSize - 0x60000), "all RAM but the 384 KiB under the VGA hole and BIOS area");
    }
}
