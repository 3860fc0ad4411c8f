namespace Emulator.Mmu.Fault;

/// <summary>MMU counters, exposed by `emu boot --stats` as mmu.* lines.</summary>
public sealed class MmuStats
{
    private readonly ulong[] _byResult = new ulong[7];

    public ulong Faults;
    public ulong MmioSptesCreated;
    public ulong SptesZapped;
    public ulong ZapCalls;
    public ulong ZapAllFast;
    public ulong ApicEmulations;
    public ulong FastPathFixes;
    public ulong TlbFlushRequests;
    public ulong StaleMmioRefaults;

    public void Count(RetPf r) => _byResult[(int)r]++;

    public ulong Of(RetPf r) => _byResult[(int)r];

    /// <summary>Name/value pairs in a fixed order.</summary>
    public IEnumerable<(string Name, ulong Value)> Counters(int tablesInUse)
    {
        yield return ("mmu.pf.total", Faults);
        yield return ("mmu.pf.retry", Of(RetPf.Retry));
        yield return ("mmu.pf.emulate", Of(RetPf.Emulate));
        yield return ("mmu.pf.invalid", Of(RetPf.Invalid));
        yield return ("mmu.pf.fixed", Of(RetPf.Fixed));
        yield return ("mmu.pf.spurious", Of(RetPf.Spurious));
        yield return ("mmu.pf.reflect", Of(RetPf.ReflectToGuest));
        yield return ("mmu.pf.fast_fixed", FastPathFixes);
        yield return ("mmu.mmio_spte.created", MmioSptesCreated);
        yield return ("mmu.mmio_spte.stale_refaults", StaleMmioRefaults);
        yield return ("mmu.apic_emulations", ApicEmulations);
        yield return ("mmu.zap.calls", ZapCalls);
        yield return ("mmu.zap.sptes", SptesZapped);
        yield return ("mmu.zap.all", ZapAllFast);
        yield return ("mmu.tlb_flush_requests", TlbFlushRequests);
        yield return ("mmu.tables_in_use", (ulong)tablesInUse);
    }
}
