using System.Runtime.CompilerServices;
using Emulator.Core.Decode;
using Emulator.Core.Devices;
using Emulator.Core.Timing;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Shadow;
using Emulator.Mmu.Spte;
using Emulator.Mmu.Tdp;

namespace Emulator.Core.Memory;

/// <summary>
/// The guest-physical address space of PLATFORM.md as one VM sees it: RAM below min(size, 3 GiB) and the
/// rest above 4 GiB, the VGA hole (reads all ones, writes dropped), read-only RAM at 0xE0000–0xFFFFF, and the
/// MMIO bus. Unbacked addresses read all ones and drop writes.
///
/// The memory itself is built by its owner (the Machine, through <see cref="PlatformMemory"/>): the host arena
/// and, under nested paging, L0's <see cref="MmuContext"/> with its memslots. Addresses here are L1 guest-physical
/// addresses; a vCPU running L2 translates its own (L2) addresses first (Cpu.Npt.cs).
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    public const ulong LowRamLimit = PlatformMemory.LowRamLimit;
    public const ulong HighRamBase = PlatformMemory.HighRamBase;
    public const ulong VgaHoleStart = PlatformMemory.VgaHoleStart, VgaHoleEnd = PlatformMemory.VgaHoleEnd;
    public const ulong BiosRomStart = PlatformMemory.BiosRomStart, BiosRomEnd = PlatformMemory.BiosRomEnd;

    /// <summary>
    /// Times one access runs the fault handler before giving up. Retry only comes from a lost race or a full
    /// table arena: with one host thread the first cannot happen, so a fault that keeps asking for retry is an
    /// emulator bug, reported on the vCPU's diagnostics and completed by emulation.
    /// </summary>
    public const int MaxFaultAttempts = 4;

    private readonly HostMemoryArena _host;
    private readonly byte* _ram;
    private readonly byte[] _codePages;
    private readonly List<Cpu.Cpu> _cpus = [];

    // The decoded-block caches of this VM's vCPUs: one per cost table, so normally one for all of them.
    private readonly List<BlockCache> _blockCaches = [];

    // Set when Create built the host arena and MMU, which this object then disposes.
    private readonly bool _ownsMemory;
    private ShadowNptMmu? _shadowNpt;

    public ulong RamSize { get; }
    public ulong LowRamEnd { get; }
    public ulong HighRamEnd { get; }
    public MmioBus Mmio { get; } = new();
    public IoBus Io { get; } = new();

    /// <summary>Count of accesses that went to the MMIO bus (device emulation).</summary>
    public ulong MmioAccesses;

    /// <param name="host">Host memory: guest RAM at the offsets of the platform layout (low RAM, then high RAM).</param>
    /// <param name="ramSize">Guest RAM in bytes.</param>
    /// <param name="mmu">L0's MMU over <paramref name="host"/> with the memslots made; null: plain physical memory.</param>
    /// <remarks>The caller keeps ownership of <paramref name="host"/> and <paramref name="mmu"/>.</remarks>
    public PhysicalMemory(HostMemoryArena host, ulong ramSize, MmuContext? mmu)
        : this(host, ramSize, mmu, ownsMemory: false)
    {
    }

    private PhysicalMemory(HostMemoryArena host, ulong ramSize, MmuContext? mmu, bool ownsMemory)
    {
        PlatformMemory.CheckRamSize(ramSize);
        if (host.Size < ramSize)
        {
            throw new ArgumentException("host memory is smaller than guest RAM", nameof(host));
        }

        RamSize = ramSize;
        LowRamEnd = PlatformMemory.LowRamEnd(ramSize);
        HighRamEnd = PlatformMemory.HighRamEnd(ramSize);
        _host = host;
        _ram = host.Base;
        _codePages = new byte[host.Size >> 12];
        Mmu = mmu;
        _ownsMemory = ownsMemory;
    }

    /// <summary>
    /// A memory with the platform layout that owns its host arena and MMU (unit tests, tools): the same steps
    /// as the Machine's, without the APIC-access page.
    /// </summary>
    /// <param name="nestedPaging">Translate through L0's MMU (TDP faults); false: plain physical memory.</param>
    /// <param name="apicvToggle">How L0's MMU removes the APIC-access page when APICv is inhibited.</param>
    public static PhysicalMemory Create(ulong ramSize, bool nestedPaging = true, ApicvToggle apicvToggle = ApicvToggle.Zap)
    {
        var host = PlatformMemory.CreateHostMemory(ramSize);
        try
        {
            var mmu = nestedPaging ? PlatformMemory.CreateMmu(host, ramSize, apicvToggle) : null;
            return new PhysicalMemory(host, ramSize, mmu, ownsMemory: true);
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    internal void AttachCpu(Cpu.Cpu cpu) => _cpus.Add(cpu);

    /// <summary>
    /// The VM's decoded-block cache for vCPUs charging by <paramref name="costs"/>: shared by every vCPU with that
    /// table (an op carries its modeled cycles), so the cache's memory does not grow with the vCPU count.
    /// </summary>
    internal BlockCache BlockCacheFor(CostTable costs)
    {
        foreach (var cache in _blockCaches)
        {
            if (ReferenceEquals(cache.Costs, costs))
            {
                return cache;
            }
        }

        var made = new BlockCache(this, costs);
        _blockCaches.Add(made);
        return made;
    }

    public IReadOnlyList<Cpu.Cpu> Cpus => _cpus;

    /// <summary>
    /// Host pointer to <paramref name="bytes"/> of RAM at L1 guest-physical <paramref name="gpa"/> (all of them inside
    /// guest RAM), or null: how L0 reaches a page of L1's memory without going through a vCPU's translation, as KVM
    /// maps L1's VMCB and permission maps. RAM of the platform layout only; MMIO and holes give null.
    /// </summary>
    public byte* RamPointer(ulong gpa, ulong bytes)
    {
        ulong off = RamOffset(gpa);
        return off == ulong.MaxValue || off + bytes > RamSize ? null : _ram + off;
    }

    /// <summary>Host offset (HPA) of a RAM gpa, or ulong.MaxValue when the gpa is not RAM.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong RamOffset(ulong gpa)
    {
        if (gpa < LowRamEnd)
        {
            return gpa - VgaHoleStart < VgaHoleEnd - VgaHoleStart ? ulong.MaxValue : gpa;
        }

        if (gpa >= HighRamBase && gpa < HighRamEnd)
        {
            return gpa - HighRamBase + LowRamLimit;
        }

        return ulong.MaxValue;
    }

    /// <summary>
    /// The L0 hypervisor's view of this memory, when the machine runs L1 under nested paging: every
    /// guest-physical access is translated through its TDP MMU, and a missing SPTE is a nested-paging
    /// fault handled by <see cref="MmuContext.Handle"/>. Null: plain physical memory (no hypervisor).
    /// </summary>
    public MmuContext? Mmu { get; }

    /// <summary>
    /// The shadow of L1's nested page tables that vCPUs running L2 translate through (null without an MMU).
    /// One per VM for now, built on first use: it holds one root, so vCPUs in L2 with different nCR3s take
    /// turns (each reloads its root when it translates, dropping the other's shadow).
    /// </summary>
    public ShadowNptMmu? ShadowNpt => Mmu == null ? null : _shadowNpt ??= new ShadowNptMmu(Mmu);

    /// <summary>Shadow tables held by <see cref="ShadowNpt"/> (0 before any vCPU ran L2), for --stats.</summary>
    public ulong ShadowTables => _shadowNpt?.ShadowTables ?? 0;

    /// <summary>The vCPU whose accesses are being translated (charged the modeled fault and emulation costs).</summary>
    internal Cpu.Cpu? Running;

    /// <summary>True for the results that mean "mapped: use the host offset".</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    /// <summary>
    /// The #NPF error code the hardware reports in EXITINFO1 for an access of kind <paramref name="access"/> that
    /// <paramref name="spte"/> refused: NPT accesses are user accesses; P for a present entry, P and RSVD for an MMIO
    /// SPTE (its reserved bit); W, I/D and the guest-page bit from the access.
    /// </summary>
    public static ulong NpfErrorCode(ulong spte, ulong access)
    {
        ulong err = PfErr.User | (access & (PfErr.Write | PfErr.Fetch | PfErr.GuestPage));
        if (Spte.IsMmio(spte))
        {
            err |= PfErr.Present | PfErr.Rsvd;
        }
        else if (Spte.IsShadowPresent(spte))
        {
            err |= PfErr.Present;
        }

        return err;
    }

    public static bool IsMapped(RetPf r) => r is RetPf.Continue or RetPf.Fixed or RetPf.Spurious;

    /// <summary>
    /// Translates L1 guest-physical <paramref name="gpa"/> for an access of kind <paramref name="access"/>
    /// (<see cref="PfErr"/> bits: Write, Fetch). Continue (mapped, no fault), Fixed or Spurious (a nested-paging
    /// fault made or found the mapping): <paramref name="hpa"/> is the host offset. Emulate: the access is
    /// completed by <see cref="EmulatedRead"/>/<see cref="EmulatedWrite"/> (MMIO, unbacked, a write to read-only
    /// memory or to a write-tracked page). A fault is charged once, whatever the handler needed to settle it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public RetPf TranslateGpa(ulong gpa, ulong access, out ulong hpa)
    {
        if (Mmu is not { } mmu)
        {
            hpa = RamOffset(gpa);
            bool romWrite = (access & PfErr.Write) != 0 && gpa - BiosRomStart < BiosRomEnd - BiosRomStart;
            return hpa == ulong.MaxValue || romWrite ? RetPf.Emulate : RetPf.Continue;
        }

        ulong spte = mmu.Tdp.Lookup(new Gpa(gpa).Gfn, out int level);
        if (Allows(spte, access))
        {
            hpa = HostOffset(spte, level, gpa);
            return RetPf.Continue;
        }

        return TdpFault(gpa, access, out hpa);
    }

    /// <summary>
    /// An L2 access (no nested paging) to a private memslot's address: with an MMU, a fault that L0 sends to emulation,
    /// as its MMIO SPTE in L2's own root would (docs/avic.md, "L2 and the APIC-access page"); without the private page, L1's translation.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public RetPf PrivatePageFromL2(ulong gpa, ulong access, out ulong hpa)
    {
        if (Mmu is not { } mmu || mmu.ApicAccessHostOffset.Value == ulong.MaxValue)
        {
            return TranslateGpa(gpa, access, out hpa); // no private page here: the address is what L1 sees
        }

        mmu.Stats.Faults++;
        mmu.Stats.Count(RetPf.Emulate);
        hpa = 0;
        ChargeFault();
        return RetPf.Emulate;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Allows(ulong spte, ulong access) =>
        Spte.IsShadowPresent(spte) && ((access & PfErr.Write) == 0 || (spte & Spte.Writable) != 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong HostOffset(ulong spte, int level, ulong gpa) =>
        (Spte.Pfn(spte) << 12) + (gpa & ((TdpMmu.PagesAt(level) << 12) - 1));

    /// <summary>The #NPF of an L1 access: run L0's fault handler until the access is mapped or must be emulated.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private RetPf TdpFault(ulong gpa, ulong access, out ulong hpa)
    {
        var mmu = Mmu!;
        var gfn = new Gpa(gpa).Gfn;
        RetPf r = RetPf.Retry;
        for (int attempt = 0; ; attempt++)
        {
            ulong spte = mmu.Tdp.Lookup(gfn, out int level);
            if (attempt > 0 && Allows(spte, access))
            {
                hpa = HostOffset(spte, level, gpa);
                ChargeFault();
                return r;
            }

            if (attempt == MaxFaultAttempts)
            {
                break;
            }

            ulong err = NpfErrorCode(spte, access);

            var pf = PageFault.For(new Gpa(gpa), err);
            r = mmu.Handle(ref pf);
            if (r == RetPf.Emulate)
            {
                hpa = 0;
                ChargeFault();
                return r;
            }

            // Fixed or Spurious: the next lookup finds the mapping. Retry: walk and fault again.
        }

        Running?.Diagnostic?.Invoke($"emu: nested-paging fault at gpa 0x{gpa:X} still unresolved after {MaxFaultAttempts} attempts (last {r}); emulating the access");
        hpa = 0;
        ChargeFault();
        return RetPf.Emulate;
    }

    /// <summary>
    /// One nested-paging fault: the #VMEXIT + VMRUN round trip and L0's handler, charged once per faulting
    /// access whatever the outcome (an emulated access adds its emulation cost on the emulation path).
    /// </summary>
    private void ChargeFault()
    {
        if (Running is { } cpu)
        {
            cpu.Cycles += cpu.Costs.VmexitRoundTrip + cpu.Costs.FaultHandling;
            cpu.Svm?.NestedPageFaultHandled(cpu);
        }
    }

    /// <summary>True when direct (TLB) writes to this RAM page must not be cached because it holds decoded code.</summary>
    public bool IsCodePage(ulong hpaPage) => _codePages[hpaPage] != 0;

    internal void MarkCodePage(ulong hpa) => _codePages[hpa >> 12] = 1;

    internal void ClearCodePage(ulong hpa) => _codePages[hpa >> 12] = 0;

    public ulong HostOffsetOf(byte* p) => (ulong)(p - _ram);

    public byte* HostPointer(ulong hpa) => _ram + hpa;

    /// <summary>
    /// Reads L1 guest-physical memory of any kind (RAM, ROM, MMIO, unbacked) without paging: devices, loaders, L1's
    /// page-table walk. A vCPU running L2 translates its own addresses with Cpu.TranslateGpa instead.
    /// </summary>
    public ulong Read(ulong gpa, int size)
    {
        if (((gpa & 0xFFF) + (ulong)size) > 0x1000)
        {
            ulong v = 0;
            for (int i = 0; i < size; i++)
            {
                v |= Read(gpa + (ulong)i, 1) << (i * 8);
            }

            return v;
        }

        if (IsMapped(TranslateGpa(gpa, 0, out ulong off)))
        {
            return LoadRam(off, size);
        }

        return EmulatedRead(gpa, size);
    }

    /// <summary>Writes guest-physical memory; ROM and unbacked writes are dropped. Invalidates decoded code.</summary>
    public void Write(ulong gpa, int size, ulong value)
    {
        if (((gpa & 0xFFF) + (ulong)size) > 0x1000)
        {
            for (int i = 0; i < size; i++)
            {
                Write(gpa + (ulong)i, 1, value >> (i * 8));
            }

            return;
        }

        if (IsMapped(TranslateGpa(gpa, PfErr.Write, out ulong off)))
        {
            NotifyWrite(off);
            StoreRam(off, size, value);
            return;
        }

        EmulatedWrite(gpa, size, value);
    }

    /// <summary>
    /// The emulation path of an access that has no direct mapping. As KVM's emulator: the running vCPU's local
    /// APIC claims its own page first (wherever IA32_APIC_BASE put it, as KVM matches each vCPU's APIC range
    /// before anything else); then RAM of a memslot (a read that gave up on faulting, a write to a write-tracked
    /// page); then a device on the MMIO bus; else all ones.
    /// </summary>
    public ulong EmulatedRead(ulong gpa, int size)
    {
        ChargeEmulation();
        if (Running?.Apic is { } apic && apic.TryReadMmio(gpa, size, out ulong v))
        {
            MmioAccesses++;
            return v;
        }

        if (SlotRam(gpa, write: false, out ulong hpa))
        {
            return LoadRam(hpa, size);
        }

        if (Mmio.TryFind(gpa, out var dev, out ulong doff))
        {
            MmioAccesses++;
            return dev.Read(doff, size);
        }

        return size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    }

    /// <summary>The emulated write: the local APIC, RAM of a writable memslot, a device, or dropped (read-only, unbacked).</summary>
    public void EmulatedWrite(ulong gpa, int size, ulong value)
    {
        ChargeEmulation();
        if (Running?.Apic is { } apic && apic.TryWriteMmio(gpa, size, value))
        {
            MmioAccesses++;
        }
        else if (SlotRam(gpa, write: true, out ulong hpa))
        {
            NotifyWrite(hpa);
            StoreRam(hpa, size, value);
        }
        else if (Mmio.TryFind(gpa, out var dev, out ulong doff))
        {
            MmioAccesses++;
            dev.Write(doff, size, value);
        }

        if (Mmu is { } mmu && mmu.NotifyTrackedWrite(new Gpa(gpa)))
        {
            // The write changed L1 nested page tables that L2's shadow was built from: the shadow dropped what
            // it built from them, and vCPUs in L2 must not keep translations through it (KVM flushes remote TLBs).
            foreach (var cpu in _cpus)
            {
                cpu.FlushNestedTranslations();
            }
        }
    }

    /// <summary>
    /// Host offset of RAM behind <paramref name="gpa"/> for the emulator: a visible memslot (read-only ones only
    /// for reads); the access stays inside the page. Without an MMU there are no memslots: the RAM layout.
    /// </summary>
    private bool SlotRam(ulong gpa, bool write, out ulong hpa)
    {
        if (Mmu is not { } mmu)
        {
            hpa = RamOffset(gpa);
            return hpa != ulong.MaxValue && !(write && gpa - BiosRomStart < BiosRomEnd - BiosRomStart);
        }

        var gfn = new Gpa(gpa).Gfn;
        var slot = mmu.Memslots.Current.Find(gfn);
        if (slot == null || !slot.IsVisible || (write && slot.IsReadOnly))
        {
            hpa = 0;
            return false;
        }

        hpa = slot.HostPfn(gfn).ToHpa().Value | (gpa & 0xFFF);
        return true;
    }

    private ulong LoadRam(ulong hpa, int size)
    {
        byte* p = _ram + hpa;
        return size switch
        {
            1 => *p,
            2 => Unsafe.ReadUnaligned<ushort>(p),
            4 => Unsafe.ReadUnaligned<uint>(p),
            _ => Unsafe.ReadUnaligned<ulong>(p),
        };
    }

    private void StoreRam(ulong hpa, int size, ulong value)
    {
        byte* p = _ram + hpa;
        switch (size)
        {
            case 1: *p = (byte)value; break;
            case 2: Unsafe.WriteUnaligned(p, (ushort)value); break;
            case 4: Unsafe.WriteUnaligned(p, (uint)value); break;
            default: Unsafe.WriteUnaligned(p, value); break;
        }
    }

    private void ChargeEmulation()
    {
        EmulatedAccesses++;
        if (Running is { } cpu)
        {
            cpu.Cycles += Mmu != null ? cpu.Costs.InstructionEmulation : cpu.Costs.MmioAccess;
        }
    }

    /// <summary>Accesses completed by the emulation path (device, hole, read-only).</summary>
    public ulong EmulatedAccesses;

    /// <summary>Before a write to RAM at host offset <paramref name="hpa"/>: drop decoded blocks of that page.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void NotifyWrite(ulong hpa)
    {
        if (_codePages[hpa >> 12] != 0)
        {
            InvalidateCode(hpa);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void InvalidateCode(ulong hpa)
    {
        _codePages[hpa >> 12] = 0;
        foreach (var cache in _blockCaches)
        {
            cache.InvalidatePage(hpa & ~0xFFFUL);
        }

        foreach (var cpu in _cpus)
        {
            cpu.ForgetCodePage();
        }
    }

    /// <summary>Copies bytes into guest-physical memory (loaders); fails on anything that is not RAM.</summary>
    public bool TryLoad(ulong gpa, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length;)
        {
            ulong a = gpa + (ulong)i;
            ulong off = RamOffset(a);
            if (off == ulong.MaxValue)
            {
                return false;
            }

            int chunk = (int)Math.Min((ulong)(data.Length - i), 0x1000 - (a & 0xFFF));
            NotifyWrite(off);
            data.Slice(i, chunk).CopyTo(new Span<byte>(_ram + off, chunk));
            i += chunk;
        }

        return true;
    }


    public void ReadBytes(ulong gpa, Span<byte> dest)
    {
        for (int i = 0; i < dest.Length; i++)
        {
            dest[i] = (byte)Read(gpa + (ulong)i, 1);
        }
    }

    /// <summary>Disposes the host arena and MMU only when <see cref="Create"/> built them; otherwise their owner does.</summary>
    public void Dispose()
    {
        if (_ownsMemory)
        {
            Mmu?.Dispose();
            _host.Dispose();
        }
    }
}
