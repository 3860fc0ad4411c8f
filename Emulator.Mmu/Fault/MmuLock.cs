using System.Runtime.CompilerServices;

namespace Emulator.Mmu.Fault;

/// <summary>
/// The MMU lock (KVM's mmu_lock as an rwlock, as the TDP MMU uses it): TDP faults run under the shared
/// (read) side and change SPTEs only with compare-exchange; zaps, write-protection, dirty-log harvests,
/// memslot updates and the shadow MMU run under the exclusive (write) side.
///
/// Cheaper than <see cref="ReaderWriterLockSlim"/> on the fault path: entering and leaving the read side
/// is one interlocked add each. Writers are preferred (a writer that has set its bit keeps new readers
/// out), so a harvester is not starved by a stream of faults.
///
/// Rules: the write side is re-entrant on its owner thread, and the owner may also take the read side
/// (a fault issued from inside a memslot-update callback); a thread holding only the read side must not
/// ask for the write side (that would wait for itself).
///
/// A VM whose vCPUs all run on one host thread (emu's deterministic scheduler) has nothing to exclude:
/// built with <c>enabled: false</c>, every operation returns at once and the caller counts as the
/// writer, so zaps free tables immediately. The interlocked operations it saves are most of the cost of a
/// fault on some hosts (see README, <c>emu bench faults --mmu-lock</c>).
/// </summary>
public sealed class MmuLock(bool enabled = true)
{
    private const int WriterBit = 1 << 30;
    private const int ReaderMask = WriterBit - 1;

    private readonly bool _disabled = !enabled;

    /// <summary>False for a lock built for a single host thread: it excludes nothing.</summary>
    public bool Enabled => !_disabled;

    // Readers count in the low bits; WriterBit is set while a writer holds or waits for the lock.
    private int _state;
    private int _owner;
    private int _depth;

    /// <summary>Enters the shared side (a fault).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void EnterRead()
    {
        if (_disabled)
        {
            return;
        }

        if ((Interlocked.Increment(ref _state) & WriterBit) != 0)
        {
            EnterReadContended();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterReadContended()
    {
        if (Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId)
        {
            return; // inside our own write section: keep the count, ExitRead takes it back
        }

        Interlocked.Decrement(ref _state);
        var spin = default(SpinWait);
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & WriterBit) == 0 && Interlocked.CompareExchange(ref _state, s + 1, s) == s)
            {
                return;
            }

            spin.SpinOnce();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ExitRead()
    {
        if (!_disabled)
        {
            Interlocked.Decrement(ref _state);
        }
    }

    /// <summary>Enters the exclusive side; waits until every reader has left.</summary>
    public void EnterWrite()
    {
        if (_disabled)
        {
            return;
        }

        int me = Environment.CurrentManagedThreadId;
        if (_owner == me)
        {
            _depth++;
            return;
        }

        var spin = default(SpinWait);
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & WriterBit) == 0 && Interlocked.CompareExchange(ref _state, s | WriterBit, s) == s)
            {
                break;
            }

            spin.SpinOnce();
        }

        Volatile.Write(ref _owner, me);
        _depth = 1;
        spin.Reset();
        while ((Volatile.Read(ref _state) & ReaderMask) != 0)
        {
            spin.SpinOnce();
        }
    }

    public void ExitWrite()
    {
        if (_disabled || --_depth != 0)
        {
            return;
        }

        Volatile.Write(ref _owner, 0);
        Interlocked.And(ref _state, ~WriterBit);
    }

    /// <summary>True when the calling thread holds the exclusive side.</summary>
    public bool IsWriteHeld => _disabled || Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    /// <summary>The exclusive side for a <c>using</c> block (a ref struct: nothing is allocated).</summary>
    public WriteScope Write()
    {
        EnterWrite();
        return new WriteScope(this);
    }

    public readonly ref struct WriteScope(MmuLock owner)
    {
        public void Dispose() => owner.ExitWrite();
    }
}
