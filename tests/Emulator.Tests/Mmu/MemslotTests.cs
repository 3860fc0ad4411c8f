using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;

namespace Emulator.Tests.Mmu;

public class MemslotTests
{
    [Test]
    public void LookupFindsTheSlotByGfn()
    {
        var t = new MemslotTable(64 << 20);
        t.Create(0, new Gpa(0), 0xA0000, new Hpa(0));
        t.Create(1, new Gpa(0x100000), 0x1000000, new Hpa(0x100000));
        var set = t.Current;
        Assert.That(set.Find(new Gfn(0x9F))?.Id, Is.EqualTo(0));
        Assert.That(set.Find(new Gfn(0xA0)), Is.Null);
        Assert.That(set.Find(new Gfn(0x100))?.Id, Is.EqualTo(1));
        Assert.That(set.Find(new Gfn(0x10FF))?.Id, Is.EqualTo(1));
        Assert.That(set.Find(new Gfn(0x1100)), Is.Null);
    }

    [Test]
    public void UserSlotsTakeTheLowestFreeId()
    {
        var t = new MemslotTable(64 << 20);
        Assert.That(t.CreateUserSlot(new Gpa(0), 0x1000, new Hpa(0)).Id, Is.EqualTo(0));
        Assert.That(t.CreateUserSlot(new Gpa(0x1000), 0x1000, new Hpa(0x1000)).Id, Is.EqualTo(1));
        t.Create(Memslot.ApicAccessPrivate, new Gpa(0xFEE00000), 0x1000, new Hpa(0x3000));
        Assert.That(t.CreateUserSlot(new Gpa(0x2000), 0x1000, new Hpa(0x2000)).Id, Is.EqualTo(2), "private slots do not count");
        t.Delete(0);
        Assert.That(t.CreateUserSlot(new Gpa(0x10000), 0x1000, new Hpa(0x10000)).Id, Is.EqualTo(0), "a deleted id is reused");
    }

    [Test]
    public void OverlappingSlotIsRefused()
    {
        var t = new MemslotTable(64 << 20);
        t.Create(0, new Gpa(0x100000), 0x200000, new Hpa(0));
        var ex = Assert.Throws<MemslotException>(() => t.Create(1, new Gpa(0x200000), 0x200000, new Hpa(0x200000)));
        Assert.That(ex!.Message, Does.Contain("overlaps memslot 0"));
    }

    [TestCase(0x100800UL, 0x1000UL, 0UL)]
    [TestCase(0x100000UL, 0x1800UL, 0UL)]
    [TestCase(0x100000UL, 0x1000UL, 0x10UL)]
    [TestCase(0x100000UL, 0UL, 0UL)]
    public void MisalignedSlotIsRefused(ulong gpa, ulong size, ulong host)
    {
        var t = new MemslotTable(64 << 20);
        Assert.Throws<MemslotException>(() => t.Create(0, new Gpa(gpa), size, new Hpa(host)));
    }

    [Test]
    public void EveryUpdateBumpsTheGenerationByTwo()
    {
        var t = new MemslotTable(64 << 20);
        ulong g0 = t.Current.Generation;
        t.Create(0, new Gpa(0), 0x1000, new Hpa(0));
        Assert.That(t.Current.Generation, Is.EqualTo(g0 + 2));
        t.Move(0, new Gpa(0x5000));
        // Move installs twice: the INVALID copy, then the moved slot.
        Assert.That(t.Current.Generation, Is.EqualTo(g0 + 6));
        Assert.That(t.Current.Find(new Gfn(5))?.Id, Is.EqualTo(0));
        t.Delete(0);
        Assert.That(t.Current.Generation, Is.EqualTo(g0 + 10));
        Assert.That(t.Current.Find(new Gfn(5)), Is.Null);
    }

    [Test]
    public void DeletePublishesAnInvalidCopyBeforeRemovingTheSlot()
    {
        var t = new MemslotTable(64 << 20);
        t.Create(3, new Gpa(0x10000), 0x1000, new Hpa(0));
        Memslot? seen = null;
        ulong genSeen = 0;
        t.SlotInvalidated = s =>
        {
            seen = t.Current.Find(new Gfn(0x10));
            genSeen = t.Current.Generation;
        };
        t.Delete(3);
        Assert.That(seen, Is.Not.Null);
        Assert.That(seen!.IsInvalid, Is.True);
        Assert.That(seen.IsVisible, Is.False);
        Assert.That(genSeen & MemslotSet.UpdateInProgress, Is.Zero);
    }

    [Test]
    public void PrivateSlotsAreNotVisible()
    {
        var t = new MemslotTable(64 << 20);
        var apic = t.Create(Memslot.ApicAccessPrivate, new Gpa(0xFEE00000), 0x1000, new Hpa(0));
        var user = t.Create(0, new Gpa(0), 0x1000, new Hpa(0x1000));
        Assert.That(apic.IsVisible, Is.False);
        Assert.That(apic.IsPrivate, Is.True);
        Assert.That(user.IsVisible, Is.True);
    }
}
