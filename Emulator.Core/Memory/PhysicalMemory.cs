using System.Runtime.CompilerServices;
using Emulator.Core.Devices;
using Emulator.Mmu.Memory;

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

    public PhysicalMemory(ulong ramSize)
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

    /// <summary>Host pointer to the page holding <paramref name="gpa"/> for direct access, or null (MMIO, hole, ROM write).</summary>
    public byte* PagePointer(ulong gpa, bool write)
    {
        ulong off = RamOffset(gpa);
        if (off == ulong.MaxValue)
        {
            return null;
        }

        if (write && gpa - BiosRomStart < BiosRomEnd - BiosRomStart)
        {
            return null;
        }

        return _ram + (off & ~0xFFFUL);
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
        ulong off = RamOffset(gpa);
        if (off != ulong.MaxValue && ((gpa & 0xFFF) + (ulong)size) <= 0x1000)
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

        if (off != ulong.MaxValue)
        {
            ulong v = 0;
            for (int i = 0; i < size; i++)
            {
                v |= Read(gpa + (ulong)i, 1) << (i * 8);
            }

            return v;
        }

        if (Mmio.TryFind(gpa, out var dev, out ulong doff))
        {
            MmioAccesses++;
            return dev.Read(doff, size);
        }

        return size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    }

    /// <summary>Writes guest-physical memory; ROM and unbacked writes are dropped. Invalidates decoded code.</summary>
    public void Write(ulong gpa, int size, ulong value)
    {
        ulong off = RamOffset(gpa);
        if (off != ulong.MaxValue)
        {
            if (gpa - BiosRomStart < BiosRomEnd - BiosRomStart)
            {
                return;
            }

            if (((gpa & 0xFFF) + (ulong)size) > 0x1000)
            {
                for (int i = 0; i < size; i++)
                {
                    Write(gpa + (ulong)i, 1, value >> (i * 8));
                }

                return;
            }

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

        if (Mmio.TryFind(gpa, out var dev, out ulong doff))
        {
            MmioAccesses++;
            dev.Write(doff, size, value);
        }
    }

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

    /// <summary>Writes bytes into RAM that the guest sees as read-only (the BIOS area); for firmware tables.</summary>
    public bool TryLoadRom(ulong gpa, ReadOnlySpan<byte> data) => TryLoad(gpa, data);

    public void ReadBytes(ulong gpa, Span<byte> dest)
    {
        for (int i = 0; i < dest.Length; i++)
        {
            dest[i] = (byte)Read(gpa + (ulong)i, 1);
        }
    }

    public void Dispose() => _arena.Dispose();
}
