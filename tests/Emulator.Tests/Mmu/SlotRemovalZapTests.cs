using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Shadow;
using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Tests.Mmu;

/// <summary>
/// Removing a memslot clears SPTEs the way KVM on x86 does (kvm_mmu_zap_all_fast through 6.x, every root of the VM),
/// or only the slot's range when <see cref="MmuContext.ZapAllOnSlotRemoval"/> is off (6.12's quirk turned off).
/// </summary>
public class SlotRemovalZapTests
{
    private const ulong HostSize = 64UL << 20;

    private static MmuContext NewVm(bool zapAll)
    {
        var mmu = new MmuContext(HostSize, tableCapacity: 4096) { ZapAllOnSlotRemoval = zapAll };
        mmu.Memslots.Create(0, new Gpa(0), 16UL << 20, new Hpa(0));
        mmu.Memslots.Create(1, new Gpa(0x2000000), 0x10000, new Hpa(0x2000000));
        return mmu;
    }

    private static RetPf Fault(MmuContext mmu, ulong gpa)
    {
        var pf = PageFault.For(new Gpa(gpa), 0, guestMode: false);
        return mmu.Handle(ref pf);
    }

    private static bool Mapped(MmuContext mmu, ulong gpa) => IsShadowPresent(mmu.Tdp.Lookup(new Gfn(gpa >> 12), out _));

    [Test]
    public void DeletingASlotZapsEveryRootAsKvmMmuZapAllFastDoes()
    {
        using var mmu = NewVm(zapAll: true);
        Assert.That(Fault(mmu, 0x5000), Is.EqualTo(RetPf.Fixed));
        Assert.That(Fault(mmu, 0x2001000), Is.EqualTo(RetPf.Fixed));
        Assert.That(Fault(mmu, 0x8000000), Is.EqualTo(RetPf.Emulate), "an MMIO gfn");

        mmu.Memslots.Delete(1);

        Assert.That(Mapped(mmu, 0x5000), Is.False, "slot 0 was not removed, but every root was invalidated");
        Assert.That(mmu.Tdp.CountMmio(), Is.Zero, "MMIO SPTEs go with the rest");
        Assert.That(mmu.Stats.ZapAllFast, Is.EqualTo(1UL));
        Assert.That(Fault(mmu, 0x5000), Is.EqualTo(RetPf.Fixed), "and is faulted in again");
    }

    [Test]
    public void WithoutZapAllOnlyTheRemovedSlotsRangeIsZapped()
    {
        using var mmu = NewVm(zapAll: false);
        Assert.That(Fault(mmu, 0x5000), Is.EqualTo(RetPf.Fixed));
        Assert.That(Fault(mmu, 0x2001000), Is.EqualTo(RetPf.Fixed));

        mmu.Memslots.Delete(1);

        Assert.That(Mapped(mmu, 0x5000), Is.True);
        Assert.That(Mapped(mmu, 0x2001000), Is.False);
        Assert.That(mmu.Stats.ZapAllFast, Is.Zero);
    }

    [Test]
    public void ZapAllAlsoDropsL2sShadowTables()
    {
        using var mmu = new MmuContext(HostSize, tableCapacity: 4096, host: new HostMemoryArena(HostSize));
        mmu.Memslots.Create(0, new Gpa(0), 16UL << 20, new Hpa(0));
        var shadow = new ShadowNptMmu(mmu);
        Assert.That(shadow.Load(0x10000, l1Nxe: false), Is.True);
        int tablesWithRoot = mmu.TablesInUse;
        Assert.That(shadow.Load(0x20000, l1Nxe: false), Is.True, "a second nCR3: the first root is cached");
        int tablesWithTwoRoots = mmu.TablesInUse;
        Assert.That(tablesWithTwoRoots, Is.EqualTo(tablesWithRoot + 1));

        mmu.ZapAllFast();

        Assert.That(mmu.TablesInUse, Is.EqualTo(tablesWithRoot), "the cached root is freed");
        Assert.That(shadow.Root, Is.Not.Zero, "the current root stays, emptied");
        Assert.That(shadow.Load(0x10000, l1Nxe: false), Is.True);
        Assert.That(mmu.TablesInUse, Is.EqualTo(tablesWithTwoRoots), "the first nCR3 needs a new root: it was not kept");
        Assert.That(mmu.Stats.ZapAllFast, Is.EqualTo(1UL));
    }
}
