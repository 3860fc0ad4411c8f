using System.Diagnostics;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Shadow;

namespace Emulator.Mmu.Bench;

/// <summary>One measured fault workload.</summary>
public readonly record struct FaultBenchResult(string Name, ulong Faults, double Seconds, long AllocatedBytes)
{
    public double FaultsPerSecond => Faults / Seconds;
    public double NsPerFault => Seconds * 1e9 / Faults;
    public double AllocatedBytesPerFault => (double)AllocatedBytes / Faults;
}

/// <summary>
/// The fault-throughput workloads of `emu bench faults` and the BenchmarkDotNet classes. Each workload
/// is a prepared VM whose <see cref="Run"/> performs a fixed number of faults and then restores the
/// starting state (zaps what it mapped), so it can be repeated.
/// </summary>
public sealed unsafe class FaultWorkload : IDisposable
{
    public const int InhibitReason = 6; // APICV_INHIBIT_REASON_IRQWIN

    private readonly MmuContext _mmu;
    private readonly HostMemoryArena? _host;
    private readonly ShadowNptMmu? _shadow;
    private readonly Func<FaultWorkload, ulong> _body;

    public string Name { get; }

    private FaultWorkload(string name, MmuContext mmu, HostMemoryArena? host, ShadowNptMmu? shadow, Func<FaultWorkload, ulong> body)
    {
        Name = name;
        _mmu = mmu;
        _host = host;
        _shadow = shadow;
        _body = body;
    }

    public MmuContext Mmu => _mmu;

    /// <summary>Runs the workload once; returns the number of faults handled.</summary>
    public ulong Run() => _body(this);

    public static readonly string[] Names = ["tdp-4k", "tdp-2m", "mmio", "apic-emulate", "shadow-4k", "toggle-zap", "toggle-memslot"];

    /// <summary>
    /// Builds workload <paramref name="name"/>. <paramref name="mmuLock"/> false builds the MMU as emu's
    /// machine does (every vCPU on one host thread, MMU lock disabled); true takes KVM's read/write
    /// mmu_lock on every fault and zap, as a VM with a host thread per vCPU must.
    /// </summary>
    public static FaultWorkload Create(string name, ulong guestBytes = 4UL << 30, bool mmuLock = false)
    {
        return name switch
        {
            "tdp-4k" => Tdp4K(guestBytes, mmuLock),
            "tdp-2m" => Tdp2M(guestBytes, mmuLock),
            "mmio" => Mmio(mmuLock),
            "apic-emulate" => ApicEmulate(mmuLock),
            "shadow-4k" => Shadow4K(mmuLock),
            "toggle-zap" => Toggle(ApicvToggle.Zap, mmuLock),
            "toggle-memslot" => Toggle(ApicvToggle.Memslot, mmuLock),
            _ => throw new ArgumentException($"unknown fault benchmark '{name}'", nameof(name)),
        };
    }

    private static int TablesFor(ulong bytes) => (int)Math.Max(4096, (bytes >> 21) + (bytes >> 30) + 64);

    /// <summary>4 KiB TDP faults over the whole slot (host offset misaligned by one page, so no huge pages).</summary>
    private static FaultWorkload Tdp4K(ulong bytes, bool mmuLock)
    {
        var mmu = new MmuContext(bytes + 0x1000, tableCapacity: TablesFor(bytes), concurrentFaults: mmuLock);
        mmu.Memslots.Create(0, new Gpa(0), bytes, new Hpa(0x1000));
        return new FaultWorkload("tdp-4k", mmu, null, null, w =>
        {
            ulong pages = bytes >> 12;
            for (ulong gfn = 0; gfn < pages; gfn++)
            {
                var pf = PageFault.For(new Gpa(gfn << 12), PfErr.Write);
                w._mmu.Handle(ref pf);
            }

            w._mmu.Tdp.ZapRange(new Gfn(0), new Gfn(pages));
            return pages;
        });
    }

    /// <summary>2 MiB TDP faults: one per aligned 2 MiB of the slot, repeated 16 times.</summary>
    private static FaultWorkload Tdp2M(ulong bytes, bool mmuLock)
    {
        var mmu = new MmuContext(bytes, tableCapacity: TablesFor(bytes), concurrentFaults: mmuLock);
        mmu.Memslots.Create(0, new Gpa(0), bytes, new Hpa(0));
        return new FaultWorkload("tdp-2m", mmu, null, null, w =>
        {
            ulong huge = bytes >> 21;
            ulong n = 0;
            for (int round = 0; round < 16; round++)
            {
                for (ulong i = 0; i < huge; i++)
                {
                    var pf = PageFault.For(new Gpa(i << 21), PfErr.Write);
                    w._mmu.Handle(ref pf);
                }

                n += huge;
                w._mmu.Tdp.ZapRange(new Gfn(0), new Gfn(bytes >> 12));
            }

            return n;
        });
    }

    /// <summary>Faults on gfns with no memslot: each installs an MMIO SPTE and asks for emulation.</summary>
    private static FaultWorkload Mmio(bool mmuLock)
    {
        const ulong pages = 1 << 18;
        const ulong baseGfn = 0x100000; // 4 GiB, above the 1 GiB slot
        var mmu = new MmuContext(1UL << 30, tableCapacity: TablesFor(pages << 12), concurrentFaults: mmuLock);
        mmu.Memslots.Create(0, new Gpa(0), 1UL << 30, new Hpa(0));
        return new FaultWorkload("mmio", mmu, null, null, w =>
        {
            for (ulong i = 0; i < pages; i++)
            {
                var pf = PageFault.For(new Gpa((baseGfn + i) << 12), 0);
                w._mmu.Handle(ref pf);
            }

            w._mmu.Tdp.ZapRange(new Gfn(baseGfn), new Gfn(baseGfn + pages));
            return pages;
        });
    }

    /// <summary>APICv inhibited: every access to the APIC page faults and is emulated (nothing cached).</summary>
    private static FaultWorkload ApicEmulate(bool mmuLock)
    {
        var mmu = new MmuContext(1UL << 30, tableCapacity: 4096, concurrentFaults: mmuLock);
        mmu.Memslots.Create(0, new Gpa(0), (1UL << 30) - 0x1000, new Hpa(0));
        mmu.CreateApicAccessSlot(new Hpa((1UL << 30) - 0x1000));
        mmu.SetApicvInhibit(InhibitReason, true);
        return new FaultWorkload("apic-emulate", mmu, null, null, w =>
        {
            const ulong n = 1 << 20;
            for (ulong i = 0; i < n; i++)
            {
                var pf = PageFault.For(MmuContext.ApicAccessGpa + ((i & 0xFF) << 4), PfErr.Write);
                w._mmu.Handle(ref pf);
            }

            return n;
        });
    }

    /// <summary>L2 faults through a 4 KiB L1 NPT mapping 256 MiB of L2 memory.</summary>
    private static FaultWorkload Shadow4K(bool mmuLock)
    {
        const ulong l2Bytes = 256UL << 20;
        const ulong hostBytes = 1UL << 30;
        const ulong nptBase = 0x1000000; // L1 GPA of L1's nested tables
        var host = new HostMemoryArena(hostBytes);
        var mmu = new MmuContext(hostBytes, tableCapacity: 8192, host: host, concurrentFaults: mmuLock);
        mmu.Memslots.Create(0, new Gpa(0), hostBytes, new Hpa(0));
        var shadow = new ShadowNptMmu(mmu);

        // L1's nested tables: PML4 -> PDPT -> 128 PDs' worth of PTs (identity-offset by 512 MiB).
        ulong* p = (ulong*)host.Pointer(0);
        ulong pml4 = nptBase, pdpt = nptBase + 0x1000, pd = nptBase + 0x2000, pt0 = nptBase + 0x3000;
        p[pml4 / 8] = pdpt | 7;
        p[pdpt / 8] = pd | 7;
        ulong ptCount = l2Bytes >> 21;
        for (ulong i = 0; i < ptCount; i++)
        {
            p[(pd / 8) + i] = (pt0 + (i * 0x1000)) | 7;
            for (ulong j = 0; j < 512; j++)
            {
                ulong l1 = (512UL << 20) + (((i * 512) + j) << 12);
                p[((pt0 + (i * 0x1000)) / 8) + j] = l1 | 0x67; // P W U A D
            }
        }

        shadow.Load(pml4, l1Nxe: true);
        return new FaultWorkload("shadow-4k", mmu, host, shadow, w =>
        {
            ulong pages = l2Bytes >> 12;
            for (ulong gfn = 0; gfn < pages; gfn++)
            {
                var pf = PageFault.ForL2(new L2Gpa(gfn << 12), PfErr.Write);
                w._shadow!.Handle(ref pf);
            }

            w._shadow!.Unload();
            w._shadow.Load(pml4, l1Nxe: true);
            return pages;
        });
    }

    /// <summary>Inhibit, access (emulated), uninhibit, access (mapped): four faults per cycle plus the toggle cost.</summary>
    private static FaultWorkload Toggle(ApicvToggle mode, bool mmuLock)
    {
        var mmu = new MmuContext(1UL << 30, mode, tableCapacity: 4096, concurrentFaults: mmuLock);
        mmu.Memslots.Create(0, new Gpa(0), (1UL << 30) - 0x1000, new Hpa(0));
        mmu.CreateApicAccessSlot(new Hpa((1UL << 30) - 0x1000));
        string name = mode == ApicvToggle.Zap ? "toggle-zap" : "toggle-memslot";
        return new FaultWorkload(name, mmu, null, null, w =>
        {
            const ulong cycles = 1 << 14;
            for (ulong i = 0; i < cycles; i++)
            {
                w._mmu.SetApicvInhibit(InhibitReason, true);
                var pf = PageFault.For(MmuContext.ApicAccessGpa, PfErr.Write);
                w._mmu.Handle(ref pf);
                w._mmu.SetApicvInhibit(InhibitReason, false);
                pf = PageFault.For(MmuContext.ApicAccessGpa, PfErr.Write | (pf.Result == RetPf.Emulate && mode == ApicvToggle.Memslot ? PfErr.Present | PfErr.Rsvd : 0));
                w._mmu.Handle(ref pf);
            }

            return cycles * 2;
        });
    }

    /// <summary>Measures one workload: a warm-up run, then runs until at least <paramref name="minSeconds"/>.</summary>
    public static FaultBenchResult Measure(string name, double minSeconds = 0.5, ulong guestBytes = 4UL << 30, bool mmuLock = false)
    {
        using var w = Create(name, guestBytes, mmuLock);
        w.Run();
        ulong faults = 0;
        long alloc0 = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        do
        {
            faults += w.Run();
        }
        while (sw.Elapsed.TotalSeconds < minSeconds);

        sw.Stop();
        long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
        return new FaultBenchResult(name, faults, sw.Elapsed.TotalSeconds, alloc);
    }

    public void Dispose()
    {
        _mmu.Dispose();
        _host?.Dispose();
    }
}
