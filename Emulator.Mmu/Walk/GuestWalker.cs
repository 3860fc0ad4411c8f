using System.Runtime.CompilerServices;
using Emulator.Mmu.Fault;

namespace Emulator.Mmu.Walk;

/// <summary>Reads (and A/D-updates) the memory that holds the tables being walked.</summary>
public interface ITableReader
{
    /// <summary>Reads a 4- or 8-byte entry; false when the address is not backed by memory.</summary>
    bool TryRead(ulong address, int bytes, out ulong value);

    /// <summary>Sets <paramref name="bits"/> in an entry if it still holds <paramref name="expected"/>.</summary>
    bool TrySetBits(ulong address, int bytes, ulong expected, ulong bits);
}

/// <summary>Addresses of the table read at each level of one walk (index = level).</summary>
[InlineArray(6)]
public struct WalkPath
{
    private ulong _element0;
}

/// <summary>Outcome of one walk.</summary>
public struct WalkResult
{
    /// <summary>Translated address (success).</summary>
    public ulong Address;
    /// <summary>Level of the leaf (1 = 4 KiB).</summary>
    public int Level;
    /// <summary>Permissions AND-ed over all levels.</summary>
    public bool Writable, User, Executable;
    /// <summary>The leaf's dirty bit after the walk.</summary>
    public bool Dirty;
    /// <summary>Error-code bits (P, W, U, RSVD, ID) when the walk failed.</summary>
    public ulong ErrorCode;
    /// <summary>Address of the table at each level (Path[RootLevel] is the root).</summary>
    public WalkPath Path;
    /// <summary>Level at which the walk failed (0 on success).</summary>
    public int FaultLevel;
}

/// <summary>
/// Page-table walker generic over the format and the table reader: JIT-specialized per struct type,
/// so each format gets its own code. Used for L1's nested page tables (shadow NPT) with every access
/// checked as a user access, as the NPT walk does (APM vol. 2 §15.25.5).
/// </summary>
public static class GuestWalker<TFormat, TReader>
    where TFormat : struct, IPagingFormat
    where TReader : struct, ITableReader
{
    private const ulong P = 1, W = 2, U = 4, A = 0x20, D = 0x40, Nx = 1UL << 63;

    /// <summary>
    /// Walks from <paramref name="root"/> for <paramref name="address"/> with <paramref name="access"/>
    /// (PfErr.Write / User / Fetch bits). Returns false with r.ErrorCode set on a fault.
    /// </summary>
    public static bool Walk(ref TReader reader, ulong root, ulong address, ulong access, bool nxe, ref WalkResult r)
    {
        bool write = (access & PfErr.Write) != 0;
        bool user = (access & PfErr.User) != 0;
        bool fetch = (access & PfErr.Fetch) != 0;
        ulong baseErr = access & (PfErr.Write | PfErr.User | PfErr.Fetch);
        r.Writable = r.User = r.Executable = true;
        ulong table = root;
        for (int level = TFormat.RootLevel; level >= 1; level--)
        {
            r.Path[level] = table;
            ulong entryAddr = table + TFormat.EntryOffset(address, level);
            if (!reader.TryRead(entryAddr, TFormat.EntryBytes, out ulong e) || (e & P) == 0)
            {
                r.ErrorCode = baseErr;
                r.FaultLevel = level;
                return false;
            }

            bool leaf = TFormat.IsLeaf(e, level);
            if (TFormat.Reserved(e, level, leaf, nxe) != 0)
            {
                r.ErrorCode = baseErr | PfErr.Present | PfErr.Rsvd;
                r.FaultLevel = level;
                return false;
            }

            if (TFormat.HasPermissions(level))
            {
                r.Writable &= (e & W) != 0;
                r.User &= (e & U) != 0;
                r.Executable &= !(nxe && (e & Nx) != 0);
            }

            if (leaf)
            {
                if ((user && !r.User) || (write && !r.Writable) || (fetch && !r.Executable))
                {
                    r.ErrorCode = baseErr | PfErr.Present;
                    r.FaultLevel = level;
                    return false;
                }

                ulong want = A | (write ? D : 0);
                if ((e & want) != want && TFormat.HasPermissions(level))
                {
                    reader.TrySetBits(entryAddr, TFormat.EntryBytes, e, want);
                    e |= want;
                }

                r.Dirty = (e & D) != 0;
                r.Level = level;
                r.Address = TFormat.Frame(e, level, true) | (address & (TFormat.PageBytes(level) - 1));
                r.FaultLevel = 0;
                return true;
            }

            if ((e & A) == 0 && TFormat.HasPermissions(level))
            {
                reader.TrySetBits(entryAddr, TFormat.EntryBytes, e, A);
            }

            table = TFormat.Frame(e, level, false);
        }

        r.ErrorCode = baseErr;
        return false;
    }
}
