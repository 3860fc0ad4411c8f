using Emulator.Mmu.Memory;
using Emulator.Mmu.Memslots;
using Emulator.Mmu.Walk;

namespace Emulator.Mmu.Shadow;

/// <summary>Reads L1 guest-physical memory through the memslots (as KVM reads L1's tables through the slot's hva).</summary>
public readonly unsafe struct MemslotTableReader(MemslotSet slots, HostMemoryArena host) : ITableReader
{
    private byte* Pointer(ulong gpa, int bytes)
    {
        if ((gpa & (ulong)(bytes - 1)) != 0)
        {
            return null;
        }

        var gfn = new Gfn(gpa >> 12);
        Memslot? slot = slots.Find(gfn);
        if (slot == null || slot.IsInvalid)
        {
            return null;
        }

        ulong hpa = slot.HostPfn(gfn).ToHpa().Value | (gpa & 0xFFF);
        return hpa + (ulong)bytes <= host.Size ? host.Pointer(hpa) : null;
    }

    public bool TryRead(ulong address, int bytes, out ulong value)
    {
        byte* p = Pointer(address, bytes);
        if (p == null)
        {
            value = 0;
            return false;
        }

        // SAFETY: Pointer() checked the range against the arena size.
        value = bytes == 8 ? *(ulong*)p : *(uint*)p;
        return true;
    }

    public bool TrySetBits(ulong address, int bytes, ulong expected, ulong bits)
    {
        byte* p = Pointer(address, bytes);
        if (p == null)
        {
            return false;
        }

        // SAFETY: as above; aligned, so the interlocked operation is valid. An entry L1 changed since the
        // walk read it keeps its new value (ITableReader.TrySetBits); only an unreachable table aborts.
        if (bytes == 8)
        {
            Interlocked.CompareExchange(ref *(ulong*)p, expected | bits, expected);
        }
        else
        {
            Interlocked.CompareExchange(ref *(uint*)p, (uint)(expected | bits), (uint)expected);
        }

        return true;
    }
}
