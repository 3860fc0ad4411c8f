using System.Runtime.CompilerServices;
using Emulator.Core.Devices;
using Emulator.Mmu.Fault;
using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;
using Emulator.Mmu.Spte;
using Emulator.Mmu.Tdp;

namespace Emulator.Core.Memory;

/// <summary>
/// The guest-physical address space of PLATFORM.md: RAM below min(size, 3 GiB) and the rest above
/// 4 GiB, the VGA hole (reads all ones, writes dropped), read-only RAM at 0xE0000–0xFFFFF, and the MMIO
/// bus. Unbacked addresses read all ones and drop writes.
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    public const ulong LowRamLimit = 3UL << 30;
    public const ulong HighRamBase = 4UL << 30;
    public const ulong VgaHoleStart = 0xA0000, VgaHoleEnd = 0xC0000;
    public const ulong BiosRomStart = 0xE0000, BiosRomEnd = 0x100000;

    private readonly HostMemoryArena _arena;
    private readonly byte* _ram;
    private readonly byte[] _codePages;
    private readonly List<Cpu.Cpu> _cpus = [];

    public ulong RamSize { get; }
    public ulong LowRamEnd { get; }
    public ulong HighRamEnd { get; }
    public MmioBus Mmio { get; } = new();
    public IoBus Io { get; } = new();

    /// <summary>Count of accesses that went to the MMIO bus (device emulation).</summary>
    public ulong MmioAccesses;

    /// <param name="ramSize">Guest RAM in bytes.</param>
    /// <param name="nestedPaging">Translate through L0's MMU (TDP faults); false: plain physical memory.</param>
    /// <param name="apicvToggle">How L0's MMU removes the APIC-access page when APICv is inhibited.</param>
    public PhysicalMemory(ulong ramSize, bool nestedPaging = true, ApicvToggle apicvToggle = ApicvToggle.Zap)
    {
        if (ramSize < (1 << 20) || (ramSize & 0xFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ramSize), "guest memory must be at least 1 MiB and a multiple of 4 KiB");
        }

        RamSize = ramSize;
        LowRamEnd = Math.Min(ramSize, LowRamLimit);
        HighRamEnd = ramSize > LowRamLimit ? HighRamBase + (ramSize - LowRamLimit) : 0;
        _arena = new HostMemoryArena(ramSize);
        _ram = _arena.Base;
        _codePages = new byte[ramSize >> 12];
        if (nestedPaging)
        {
            // Every vCPU of the machine runs on one host thread (the deterministic scheduler): no MMU lock.
            Mmu = new MmuContext(ramSize, apicvToggle, tableCapacity: (int)Math.Min(1 << 20, (ramSize >> 20) + 4096), concurrentFaults: false);
            CreateMemslots(Mmu.Memslots);
        }
    }

    /// <summary>The platform layout as memslots: low RAM, the BIOS area read-only, RAM above 1 MiB and above 4 GiB.</summary>
    private void CreateMemslots(MemslotTable slots)
    {
        slots.Create(0, new Gpa(0), VgaHoleStart, new Hpa(0));
        slots.Create(1, new Gpa(VgaHoleEnd), BiosRomStart - VgaHoleEnd, new Hpa(VgaHoleEnd));
        slots.Create(2, new Gpa(BiosRomStart), BiosRomEnd - BiosRomStart, new Hpa(BiosRomStart), MemslotFlags.ReadOnly);
        if (LowRamEnd > BiosRomEnd)
        {
            slots.Create(3, new Gpa(BiosRomEnd), LowRamEnd - BiosRomEnd, new Hpa(BiosRomEnd));
        }
        if (HighRamEnd != 0)
        {
            slots.Create(4, new Gpa(HighRamBase), HighRamEnd - HighRamBase, new Hpa(LowRamLimit));
        }
    }

    internal void AttachCpu(Cpu.Cpu cpu) => _cpus.Add(cpu);

    public IReadOnlyList<Cpu.Cpu> Cpus => _cpus;

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

    /// <summary>The vCPU whose accesses are being translated (charged the modeled fault and emulation costs).</summary>
    internal Cpu.Cpu? Running;

    /// <summary>
    /// Host offset (HPA) for <paramref name="gpa"/>, or ulong.MaxValue when the access must be emulated
    /// (MMIO, unbacked, a write to read-only memory). With an MMU this is the NPT walk plus fault-in.
    /// </summary>
    public ulong Translate(ulong gpa, bool write)
    {
        if (Mmu == null)
        {
            ulong off = RamOffset(gpa);
            return write && gpa - BiosRomStart < BiosRomEnd - BiosRomStart ? ulong.MaxValue : off;
        }

        return TranslateNested(gpa, write);
    }

    private ulong TranslateNested(ulong gpa, bool write)
    {
        var tdp = Mmu!.Tdp;
        var gfn = new Gpa(gpa).Gfn;
        for (int attempt = 0; attempt < 4; attempt++)
        {
            ulong spte = tdp.Lookup(gfn, out int level);
            if (Spte.IsShadowPresent(spte) && (!write || (spte & Spte.Writable) != 0))
            {
                ulong pageMask = (TdpMmu.PagesAt(level) << 12) - 1;
                return (Spte.Pfn(spte) << 12) + (gpa & pageMask);
            }

            // #NPF: what the hardware would report (NPT accesses are user accesses).
            ulong err = PfErr.User | (write ? PfErr.Write : 0);
            if (Spte.IsMmio(spte))
            {
                err |= PfErr.Present | PfErr.Rsvd;
            }
            else if (Spte.IsShadowPresent(spte))
            {
                err |= PfErr.Present;
            }

            var pf = PageFault.For(new Gpa(gpa), err);
            RetPf r = Mmu.Handle(ref pf);
            if (Running is { } cpu)
            {
                cpu.Cycles += cpu.Costs.VmexitRoundTrip + cpu.Costs.FaultHandling;
            }

            if (r == RetPf.Emulate)
            {
                return ulong.MaxValue;
            }
        }

        // A fault that keeps retrying (never expected): emulate rather than spin.
        return ulong.MaxValue;
    }

    /// <summary>Host pointer to the page holding <paramref name="gpa"/> for direct access, or null (emulate).</summary>
    public byte* PagePointer(ulong gpa, bool write)
    {
        ulong off = Translate(gpa, write);
        return off == ulong.MaxValue ? null : _ram + (off & ~0xFFFUL);
    }

    /// <summary>True when direct (TLB) writes to this RAM page must not be cached because it holds decoded code.</summary>
    public bool IsCodePage(ulong hpaPage) => _codePages[hpaPage] != 0;

    internal void MarkCodePage(ulong hpa) => _codePages[hpa >> 12] = 1;

    internal void ClearCodePage(ulong hpa) => _codePages[hpa >> 12] = 0;

    public ulong HostOffsetOf(byte* p) => (ulong)(p - _ram);

    public byte* HostPointer(ulong hpa) => _ram + hpa;

    /// <summary>Reads guest-physical memory of any kind (RAM, ROM, MMIO, unbacked) without paging.</summary>
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

        ulong off = Translate(gpa, write: false);
        if (off != ulong.MaxValue)
        {
            byte* p = _ram + off;
            return size switch
            {
                1 => *p,
                2 => Unsafe.ReadUnaligned<ushort>(p),
                4 => Unsafe.ReadUnaligned<uint>(p),
                _ => Unsafe.ReadUnaligned<ulong>(p),
            };
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

        ulong off = Translate(gpa, write: true);
        if (off != ulong.MaxValue)
        {
            NotifyWrite(off);
            byte* p = _ram + off;
            switch (size)
            {
                case 1: *p = (byte)value; break;
                case 2: Unsafe.WriteUnaligned(p, (ushort)value); break;
                case 4: Unsafe.WriteUnaligned(p, (uint)value); break;
                default: Unsafe.WriteUnaligned(p, value); break;
            }

            return;
        }

        EmulatedWrite(gpa, size, value);
    }

    /// <summary>The emulation path of an access that has no direct mapping: a device, or all ones / dropped.</summary>
    public ulong EmulatedRead(ulong gpa, int size)
    {
        ChargeEmulation();
        // The running vCPU's local APIC claims its own page first, wherever IA32_APIC_BASE put it (as KVM matches
        // each vCPU's APIC range before the MMIO bus).
        if (Running?.Apic is { } apic && apic.TryReadMmio(gpa, size, out ulong v))
        {
            MmioAccesses++;
            return v;
        }

        if (Mmio.TryFind(gpa, out var dev, out ulong doff))
        {
            MmioAccesses++;
            return dev.Read(doff, size);
        }

        return size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    }

    public void EmulatedWrite(ulong gpa, int size, ulong value)
    {
        ChargeEmulation();
        if (Running?.Apic is { } apic && apic.TryWriteMmio(gpa, size, value))
        {
            MmioAccesses++;
        }
        else if (Mmio.TryFind(gpa, out var dev, out ulong doff))
        {
            MmioAccesses++;
            dev.Write(doff, size, value);
        }

        Mmu?.NotifyTrackedWrite(new Gpa(gpa));
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
        foreach (var cpu in _cpus)
        {
            cpu.InvalidateCodePage(hpa & ~0xFFFUL);
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

    public void Dispose()
    {
        Mmu?.Dispose();
        _arena.Dispose();
    }
}
