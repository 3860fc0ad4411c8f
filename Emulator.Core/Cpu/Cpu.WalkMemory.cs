using Emulator.Core.Memory;
using Emulator.Mmu.Fault;
using NpfErr = Emulator.Mmu.Fault.PfErr;

namespace Emulator.Core.Cpu;

/// <summary>
/// The memory seam of the CPU's page-table walk: every table entry the walk reads, and every accessed/dirty
/// update it makes, goes through these two methods and nothing else, so that the walk of a nested guest can
/// send them through nested paging. Today they read and write guest-physical memory directly and always
/// succeed.
///
/// A false return means the walk was aborted by a nested fault that the method has already recorded on the
/// vCPU (for L2 under nested paging: an #NPF with EXITINFO1's GuestPage bit, APM vol. 2 §15.25.6). The walker
/// then fails without raising #PF, and the caller delivers the recorded event instead.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>Reads the 4- or 8-byte paging entry at guest-physical <paramref name="gpa"/>.</summary>
    internal unsafe bool ReadPagingEntry(ulong gpa, int size, out ulong value)
    {
        if (InNestedPaging)
        {
            _walkReads = -1;
            return ReadNestedPagingEntry(gpa, size, out value);
        }

        // Phys.Read's steps, keeping the entry's host address for the walk cache (entries are aligned: no page straddle).
        if (PhysicalMemory.IsMapped(Phys.TranslateGpa(gpa, 0, out ulong hpa)))
        {
            byte* p = Phys.HostPointer(hpa);
            value = size == 8 ? *(ulong*)p : *(uint*)p;
            TraceWalkRead(p);
            return true;
        }

        _walkReads = -1;
        value = Phys.EmulatedRead(gpa, size);
        return true;
    }

    /// <summary>
    /// L2's table read under nested paging: the entry's L2 address goes through L1's nested tables as a
    /// guest-page access (EXITINFO1 bit 33 on an #NPF). Entries are naturally aligned, so never straddle a page.
    /// </summary>
    private unsafe bool ReadNestedPagingEntry(ulong gpa, int size, out ulong value)
    {
        RetPf r = TranslateGpa(gpa, NpfErr.GuestPage, out ulong hpa, out ulong l1Gpa);
        if (PhysicalMemory.IsMapped(r))
        {
            byte* p = Phys.HostPointer(hpa);
            value = size == 8 ? *(ulong*)p : *(uint*)p;
            return true;
        }

        value = 0;
        if (r == RetPf.ReflectToGuest)
        {
            return false;
        }

        value = Phys.EmulatedRead(l1Gpa, size);
        return true;
    }

    /// <summary>
    /// Sets <paramref name="bits"/> (accessed/dirty) in the paging entry at <paramref name="gpa"/> if it still
    /// holds <paramref name="expected"/>; an entry that changed since the walk read it is left as it is now.
    /// </summary>
    internal unsafe bool SetPagingEntryBits(ulong gpa, int size, ulong expected, ulong bits)
    {
        if (InNestedPaging)
        {
            RetPf r = TranslateGpa(gpa, NpfErr.GuestPage | NpfErr.Write, out ulong hpa, out ulong l1Gpa);
            if (PhysicalMemory.IsMapped(r))
            {
                byte* p = Phys.HostPointer(hpa);
                if (size == 8 && *(ulong*)p == expected)
                {
                    *(ulong*)p = expected | bits;
                }
                else if (size == 4 && *(uint*)p == (uint)expected)
                {
                    *(uint*)p = (uint)(expected | bits);
                }

                return true;
            }

            if (r == RetPf.ReflectToGuest)
            {
                return false;
            }

            if (Phys.EmulatedRead(l1Gpa, size) == expected)
            {
                Phys.EmulatedWrite(l1Gpa, size, expected | bits);
            }

            return true;
        }

        if (Phys.Read(gpa, size) == expected)
        {
            Phys.Write(gpa, size, expected | bits);
        }

        return true;
    }
}
