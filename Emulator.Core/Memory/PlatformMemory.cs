using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;

namespace Emulator.Core.Memory;

/// <summary>
/// How a VM's memory is built from the PC layout of PLATFORM.md: the host arena that backs guest RAM,
/// L0's MMU over it, and the platform memslots. The Machine composes these (and adds the APIC-access
/// private slot); <see cref="PhysicalMemory.Create"/> uses the same steps for unit tests, so the layout
/// and the memslots it makes are written once, here.
/// </summary>
public static class PlatformMemory
{
    public const ulong LowRamLimit = 3UL << 30;
    public const ulong HighRamBase = 4UL << 30;
    public const ulong VgaHoleStart = 0xA0000, VgaHoleEnd = 0xC0000;
    public const ulong BiosRomStart = 0xE0000, BiosRomEnd = 0x100000;

    /// <summary>
    /// One host page after guest RAM backs the APIC-access private memslot (KVM allocates a page for it when
    /// the VM is created; with AVIC its contents are never read, the hardware redirects the accesses).
    /// </summary>
    public const ulong ApicAccessPageSize = 0x1000;

    /// <summary>Refuses a RAM size the layout cannot hold (under 1 MiB or not a multiple of 4 KiB).</summary>
    public static void CheckRamSize(ulong ramSize)
    {
        if (ramSize < (1 << 20) || (ramSize & 0xFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ramSize), "guest memory must be at least 1 MiB and a multiple of 4 KiB");
        }
    }

    /// <summary>Host offset of the APIC-access page's backing frame: the page after guest RAM.</summary>
    public static Hpa ApicAccessBacking(ulong ramSize) => new(ramSize);

    /// <summary>The host arena: guest RAM (low RAM first, then the part above 4 GiB) and the APIC-access page.</summary>
    public static HostMemoryArena CreateHostMemory(ulong ramSize)
    {
        CheckRamSize(ramSize);
        return new HostMemoryArena(ramSize + ApicAccessPageSize);
    }

    /// <summary>
    /// L0's MMU for the VM, reading L1's tables through <paramref name="host"/> (the shadow NPT MMU needs it),
    /// with the platform memslots created.
    /// </summary>
    public static MmuContext CreateMmu(HostMemoryArena host, ulong ramSize, ApicvToggle toggle)
    {
        CheckRamSize(ramSize);
        // Every vCPU of the machine runs on one host thread (the deterministic scheduler): no MMU lock.
        var mmu = new MmuContext(host.Size, toggle, tableCapacity: (int)Math.Min(1 << 20, (ramSize >> 20) + 4096), host, concurrentFaults: false);
        CreateMemslots(mmu.Memslots, ramSize);
        return mmu;
    }

    /// <summary>
    /// The platform layout as user memslots (ids chosen by the table): low RAM below the VGA hole, the
    /// 0xC0000–0xE0000 window, the BIOS area read-only, RAM from 1 MiB to min(size, 3 GiB), and the rest of
    /// RAM above 4 GiB. Host offsets equal guest addresses below 3 GiB; high RAM follows low RAM.
    /// </summary>
    public static void CreateMemslots(MemslotTable slots, ulong ramSize)
    {
        ulong lowEnd = LowRamEnd(ramSize), highEnd = HighRamEnd(ramSize);
        slots.CreateUserSlot(new Gpa(0), VgaHoleStart, new Hpa(0));
        slots.CreateUserSlot(new Gpa(VgaHoleEnd), BiosRomStart - VgaHoleEnd, new Hpa(VgaHoleEnd));
        slots.CreateUserSlot(new Gpa(BiosRomStart), BiosRomEnd - BiosRomStart, new Hpa(BiosRomStart), MemslotFlags.ReadOnly);
        if (lowEnd > BiosRomEnd)
        {
            slots.CreateUserSlot(new Gpa(BiosRomEnd), lowEnd - BiosRomEnd, new Hpa(BiosRomEnd));
        }

        if (highEnd != 0)
        {
            slots.CreateUserSlot(new Gpa(HighRamBase), highEnd - HighRamBase, new Hpa(LowRamLimit));
        }
    }

    /// <summary>End of RAM below 4 GiB.</summary>
    public static ulong LowRamEnd(ulong ramSize) => Math.Min(ramSize, LowRamLimit);

    /// <summary>End of RAM above 4 GiB, or 0 when all RAM fits below 3 GiB.</summary>
    public static ulong HighRamEnd(ulong ramSize) => ramSize > LowRamLimit ? HighRamBase + (ramSize - LowRamLimit) : 0;
}
