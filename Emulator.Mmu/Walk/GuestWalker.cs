using System.Runtime.CompilerServices;
using Emulator.Mmu.Fault;

namespace Emulator.Mmu.Walk;

/// <summary>
/// Reads (and A/D-updates) the memory that holds the tables being walked. A false return aborts the walk:
/// the reader could not reach the table (the CPU's reader: a nested fault it already recorded; the NPT
/// walk's reader: no memory behind the L1 address).
/// </summary>
public interface ITableReader
{
    /// <summary>Reads a 4- or 8-byte entry; false aborts the walk.</summary>
    bool TryRead(ulong address, int bytes, out ulong value);

    /// <summary>
    /// Sets <paramref name="bits"/> in an entry if it still holds <paramref name="expected"/>; an entry that
    /// changed since it was read is left as it is now (the newer value wins, as if the walk came first).
    /// False aborts the walk.
    /// </summary>
    bool TrySetBits(ulong address, int bytes, ulong expected, ulong bits);
}

/// <summary>One value per level of a walk (index = level, 1 to 5).</summary>
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
    /// <summary>
    /// A supervisor data access to a user page was allowed only because RFLAGS.AC overrode SMAP: a
    /// translation cache that does not know AC must not keep this translation (a later CLAC must fault).
    /// </summary>
    public bool AcOverride;
    /// <summary>The reader aborted the walk (see <see cref="ITableReader"/>); ErrorCode is that of a not-present fault.</summary>
    public bool Aborted;
    /// <summary>Error-code bits (P, W, U, RSVD, I/D) when the walk failed.</summary>
    public ulong ErrorCode;
    /// <summary>Address of the table at each level (Path[RootLevel] is the root).</summary>
    public WalkPath Path;
    /// <summary>The entry read at each level (valid from RootLevel down to the last level read).</summary>
    public WalkPath Entries;
    /// <summary>Level at which the walk failed (0 on success).</summary>
    public int FaultLevel;
}

/// <summary>
/// The page-table walker (APM vol. 2 ch. 5), generic over the format and the table reader: JIT-specialized
/// per struct type, so each format gets its own code and the reader is called without an interface call.
/// One walker for both users, the rules given by the access (PfErr.Write / User / Fetch) and
/// <see cref="WalkRules"/>:
/// - the CPU's translation of linear addresses: supervisor or user accesses, CR0.WP, SMEP, SMAP with
///   RFLAGS.AC and implicit supervisor accesses, NX with EFER.NXE, the #PF error code;
/// - the shadow-NPT MMU's walk of L1's nested page tables, where every access is a user access
///   (APM vol. 2 §15.25.5) and NX follows L1's EFER.NXE.
///
/// Accessed and dirty bits (APM vol. 2 §5.4.2, "Accessed and Dirty Bits"): the processor sets A in each
/// entry it uses and D in the leaf of a write. One rule here for both users: they are written only when the
/// translation succeeds, A in every level that has one and D in the leaf for a write, each with the reader's
/// compare-and-set, so a faulting access leaves the tables untouched (what kvm-unit-tests' access test checks
/// of the CPU). The leaf is updated first: when tables map themselves, an upper entry may be the same memory
/// as the leaf, and its A|D then already covers the upper level's A.
/// </summary>
public static class GuestWalker<TFormat, TReader>
    where TFormat : struct, IPagingFormat
    where TReader : struct, ITableReader
{
    private const ulong P = 1, W = 2, U = 4, A = 0x20, D = 0x40, Nx = 1UL << 63;

    /// <summary>
    /// Walks from <paramref name="root"/> for <paramref name="address"/> with <paramref name="access"/>
    /// (PfErr.Write / User / Fetch bits) under <paramref name="rules"/>. Returns false with r.ErrorCode set
    /// on a fault, or with r.Aborted when the reader aborted the walk.
    /// </summary>
    public static bool Walk(ref TReader reader, ulong root, ulong address, ulong access, WalkRules rules, ref WalkResult r)
    {
        bool write = (access & PfErr.Write) != 0;
        bool fetch = (access & PfErr.Fetch) != 0;
        bool nxe = (rules & WalkRules.Nxe) != 0;
        ulong baseErr = (access & (PfErr.Write | PfErr.User)) | (fetch && (rules & WalkRules.ReportFetch) != 0 ? PfErr.Fetch : 0);
        r.Writable = r.User = r.Executable = true;
        r.AcOverride = r.Aborted = false;
        ulong table = root;
        for (int level = TFormat.RootLevel; level >= 1; level--)
        {
            r.Path[level] = table;
            if (!reader.TryRead(table + TFormat.EntryOffset(address, level), TFormat.EntryBytes, out ulong e))
            {
                r.Aborted = true;
                return Fail(ref r, baseErr, level);
            }

            if ((e & P) == 0)
            {
                return Fail(ref r, baseErr, level);
            }

            bool leaf = TFormat.IsLeaf(e, level);
            if (TFormat.Reserved(e, level, leaf, rules) != 0)
            {
                return Fail(ref r, baseErr | PfErr.Present | PfErr.Rsvd, level);
            }

            r.Entries[level] = e;
            if (TFormat.HasPermissions(level))
            {
                r.Writable &= (e & W) != 0;
                r.User &= (e & U) != 0;
                r.Executable &= !(nxe && (e & Nx) != 0);
            }

            if (leaf)
            {
                if (!Allowed(ref r, access, rules))
                {
                    return Fail(ref r, baseErr | PfErr.Present, level);
                }

                if (!SetAccessedDirty(ref reader, ref r, address, level, write))
                {
                    r.Aborted = true;
                    return Fail(ref r, baseErr, level);
                }

                r.Dirty = write || (e & D) != 0;
                r.Level = level;
                r.Address = TFormat.Frame(e, level, true) | (address & (TFormat.PageBytes(level) - 1));
                r.FaultLevel = 0;
                return true;
            }

            table = TFormat.Frame(e, level, false);
        }

        return Fail(ref r, baseErr, 1); // unreachable: level 1 is always a leaf
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Fail(ref WalkResult r, ulong errorCode, int level)
    {
        r.ErrorCode = errorCode;
        r.FaultLevel = level;
        return false;
    }

    /// <summary>
    /// Page-level protection of the leaf (APM vol. 2 §5.6), with r's permissions combined over all levels.
    /// A user access needs U/S everywhere and R/W for a write; a supervisor write honours R/W only with
    /// CR0.WP; SMEP forbids supervisor fetches from user pages; SMAP forbids supervisor data accesses to
    /// user pages unless RFLAGS.AC is set and the access is explicit. NX forbids fetches for both.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Allowed(ref WalkResult r, ulong access, WalkRules rules)
    {
        bool write = (access & PfErr.Write) != 0;
        bool fetch = (access & PfErr.Fetch) != 0;
        if (fetch && !r.Executable)
        {
            return false;
        }

        if ((access & PfErr.User) != 0)
        {
            return r.User && (!write || r.Writable);
        }

        if (write && !r.Writable && (rules & WalkRules.WriteProtect) != 0)
        {
            return false;
        }

        if (!r.User)
        {
            return true;
        }

        if (fetch)
        {
            return (rules & WalkRules.Smep) == 0;
        }

        if ((rules & WalkRules.Smap) == 0)
        {
            return true;
        }

        if ((rules & (WalkRules.Ac | WalkRules.Implicit)) != WalkRules.Ac)
        {
            return false;
        }

        r.AcOverride = true;
        return true;
    }

    /// <summary>
    /// The A/D rule of the class comment: the leaf's A (and D for a write), then A of each level above it,
    /// each only where missing and only in levels that have the bits (not PAE PDPTEs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SetAccessedDirty(ref TReader reader, ref WalkResult r, ulong address, int leafLevel, bool write)
    {
        for (int level = leafLevel; level <= TFormat.RootLevel; level++)
        {
            ulong want = level == leafLevel && write ? A | D : A;
            ulong e = r.Entries[level];
            if ((e & want) != want && TFormat.HasPermissions(level)
                && !reader.TrySetBits(r.Path[level] + TFormat.EntryOffset(address, level), TFormat.EntryBytes, e, want))
            {
                return false;
            }
        }

        return true;
    }
}
