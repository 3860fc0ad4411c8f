using static Emulator.Mmu.Spte.Spte;

namespace Emulator.Tests.Mmu;

public class SpteTests
{
    [Test]
    public void MmioFieldsDoNotOverlap()
    {
        ulong[] fields = [MmioValue, MmioAccessMask, MmioGpaMask, MmioGenLowMask, MmioGenHighMask];
        for (int i = 0; i < fields.Length; i++)
        {
            for (int j = i + 1; j < fields.Length; j++)
            {
                Assert.That(fields[i] & fields[j], Is.Zero, $"MMIO fields {i} and {j} overlap");
            }
        }
    }

    [Test]
    public void SoftwareBitsDoNotOverlapHardwareBitsOrThePfn()
    {
        ulong software = HostWritable | MmuWritable | MmuPresent;
        ulong hardware = Present | Writable | User | Accessed | Dirty | PageSize | NoExecute;
        Assert.That(software & hardware, Is.Zero);
        Assert.That(software & PfnMask, Is.Zero);
        Assert.That(hardware & PfnMask, Is.Zero);
    }

    [Test]
    public void MmioSptesAreNeverShadowPresentAndRoundTripGfnAndGeneration()
    {
        ulong spte = MakeMmio(0xFEE00, MmioAccessMask, 0x7FFFF);
        Assert.That(IsMmio(spte), Is.True);
        Assert.That(IsShadowPresent(spte), Is.False);
        Assert.That(MmioGfn(spte), Is.EqualTo(0xFEE00UL));
        Assert.That(MmioGeneration(spte), Is.EqualTo(0x7FFFFUL));
        Assert.That(MmioGeneration(MakeMmio(1, 0, 0x12345)), Is.EqualTo(0x12345UL));
    }

    [Test]
    public void FrozenIsNeitherPresentNorMmio()
    {
        Assert.That(Frozen & Present, Is.Zero);
        Assert.That(Frozen & PfnMask, Is.Zero);
        Assert.That(IsMmio(Frozen), Is.False);
        Assert.That(IsShadowPresent(Frozen), Is.False);
    }

    [Test]
    public void LeavesAreShadowPresentAndNotMmio()
    {
        ulong leaf = MakeLeaf(0x1234, 2, writable: true, hostWritable: true);
        Assert.That(IsShadowPresent(leaf), Is.True);
        Assert.That(IsMmio(leaf), Is.False);
        Assert.That(Pfn(leaf), Is.EqualTo(0x1234UL));
        Assert.That(leaf & PageSize, Is.Not.Zero);
        Assert.That(leaf & (Writable | Dirty), Is.EqualTo(Writable | Dirty));
    }
}
