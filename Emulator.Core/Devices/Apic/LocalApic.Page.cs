using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Emulator.Core.Cpu;

namespace Emulator.Core.Devices.Apic;

/// <summary>
/// The 256-bit registers of an xAPIC register page (ISR 0x100, TMR 0x180, IRR 0x200): word i holds vectors
/// 32·i .. 32·i+31 at base + 0x10·i. Shared by the local APIC and the AVIC unit, which reads the same page as its
/// backing page.
/// </summary>
public static unsafe class ApicPage
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint VectorWord(byte* page, int bank, int v) => ref *(uint*)(page + bank + ((v >> 5) << 4));

    public static bool TestBit(byte* page, int bank, int v) => (VectorWord(page, bank, v) & (1u << (v & 31))) != 0;

    /// <summary>Highest vector set in the 256-bit register at <paramref name="bank"/>, or -1.</summary>
    public static int Highest(byte* page, int bank)
    {
        for (int i = 7; i >= 0; i--)
        {
            uint w = *(uint*)(page + bank + (i << 4));
            if (w != 0)
            {
                return (i << 5) + 31 - BitOperations.LeadingZeroCount(w);
            }
        }

        return -1;
    }
}

/// <summary>
/// The register page: every register with an xAPIC offset lives at that offset in one 4 KiB, 4 KiB-aligned native
/// page, holding what a guest read at the offset returns (except the current count, computed on read). The layout is
/// the AVIC backing page's (APM vol. 2 §15.29; KVM hands its LAPIC register page to the hardware as the backing
/// page), so an APIC-virtualization unit can serve accelerated accesses and post interrupts into this very page; the
/// emulation then rebuilds its derived state from it (<see cref="RescanIrr"/>, <see cref="CommitTrappedWrite"/>).
/// </summary>
public sealed unsafe partial class LocalApic : IDisposable
{
    /// <summary>Registers are 32 bits at 16-byte-aligned offsets below 0x400 (APM vol. 2 Table 16-2).</summary>
    private const int RegisterSpan = 0x400;

    private byte* _page;

    /// <summary>
    /// The value each register had after the emulation last wrote it, indexed by offset / 16. A trapped write
    /// (<see cref="CommitTrappedWrite"/>) arrives with the guest's raw value already in the page; the register's prior
    /// value is put back from here first, so the normal write logic sees the same old state as on the MMIO path (an
    /// LVT keeps its remote IRR and compares timer modes, an ignored write leaves the register as it was).
    /// IRR, ISR and TMR bits are set and cleared in place and are not tracked here (their writes fault, never trap).
    /// </summary>
    private readonly uint[] _committed = new uint[RegisterSpan >> 4];

    /// <summary>
    /// The register page (4 KiB, 4 KiB-aligned, native memory owned by this APIC until <see cref="Dispose"/>): the
    /// AVIC backing page of this vCPU. Whoever writes it other than through this class tells the APIC afterwards:
    /// <see cref="RescanIrr"/> after IRR, ISR or TPR changes, <see cref="CommitTrappedWrite"/> after a trapped write.
    /// </summary>
    public byte* RegisterPage => _page;

    /// <summary>Allocates the page, zeroed, before any register is written (in the constructor).</summary>
    private void AllocatePage()
    {
        _page = (byte*)NativeMemory.AlignedAlloc((nuint)PageSize, (nuint)PageSize);
        NativeMemory.Clear(_page, (nuint)PageSize);
    }

    /// <summary>The 32-bit register at <paramref name="offset"/> in the page.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref uint Reg(int offset) => ref *(uint*)(_page + offset);

    /// <summary>Writes a register as the emulation's own (committed) value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Set(int offset, uint value)
    {
        *(uint*)(_page + offset) = value;
        _committed[offset >> 4] = value;
    }

    /// <summary>
    /// The task priority in the page (TPR, offset 0x80, bits 7:0); the CPU's CR8 and TPR go through here when the
    /// vCPU has an APIC, so the page is the one copy. A change recomputes PPR and APR.
    /// </summary>
    public byte TaskPriority
    {
        get => (byte)Reg(ApicReg.Tpr);
        set
        {
            Set(ApicReg.Tpr, value);
            UpdatePriorities();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref uint VectorWord(int bank, int v) => ref ApicPage.VectorWord(_page, bank, v);

    private void SetBit(int bank, int v) => VectorWord(bank, v) |= 1u << (v & 31);

    private void ClearBit(int bank, int v) => VectorWord(bank, v) &= ~(1u << (v & 31));

    private bool TestBit(int bank, int v) => ApicPage.TestBit(_page, bank, v);

    private int Highest(int bank) => ApicPage.Highest(_page, bank);

    private void ClearBank(int bank)
    {
        for (int i = 0; i < 8; i++)
        {
            *(uint*)(_page + bank + (i << 4)) = 0;
        }
    }

    /// <summary>
    /// Recomputes PPR (0xA0) and APR (0x90) in the page from TPR, the highest in-service and the highest requested
    /// vector, as KVM updates its PPR whenever TPR or ISR change. Processor priority (APM vol. 2 §16.6.4): the task
    /// priority, or the class of the highest in-service vector when that class is higher. Arbitration priority
    /// (APM vol. 2 §16.6.3; Intel SDM vol. 3 §10.6.2.4): the TPR when it is at least the highest requested class and
    /// above the highest in-service class, otherwise the highest of the three classes.
    /// </summary>
    private void UpdatePriorities()
    {
        int tpr = (byte)Reg(ApicReg.Tpr);
        int isrv = (_highestIsr < 0 ? 0 : _highestIsr) & 0xF0;
        int irrv = (_highestIrr < 0 ? 0 : _highestIrr) & 0xF0;
        Set(ApicReg.Ppr, (uint)((tpr & 0xF0) >= isrv ? tpr : isrv));
        Set(ApicReg.Apr, (uint)((tpr & 0xF0) >= irrv && (tpr & 0xF0) > isrv ? tpr : Math.Max(tpr & 0xF0, Math.Max(isrv, irrv))));
    }

    /// <summary>
    /// Someone other than this class changed IRR, ISR or TPR in the page (an APIC-virtualization unit posting an
    /// interrupt into the IRR, delivering one from IRR to ISR, accelerating an EOI or a TPR write): re-derives the
    /// highest requested and in-service vectors, PPR and APR from the page, and asks the vCPU to evaluate its pending
    /// interrupts, as accepting an interrupt does. Bits set this way carry no TMR change and count in
    /// <see cref="InterruptsAccepted"/> only when this class accepted them.
    /// </summary>
    public void RescanIrr()
    {
        _highestIrr = Highest(ApicReg.Irr);
        _highestIsr = Highest(ApicReg.Isr);
        UpdatePriorities();
        Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
    }

    /// <summary>
    /// The side effects of a guest write whose value already sits in the page at <paramref name="offset"/> (AVIC's
    /// trap semantics, APM vol. 2 §15.29: the write lands in the backing page, then #VMEXIT AVIC_NOACCEL). KVM
    /// re-runs its register write with the value read from the page; here the register's previous value is put back
    /// and the value goes through the same write logic as an MMIO write (xAPIC) or WRMSR (x2APIC), so the page and
    /// every effect (IPI, EOI broadcast, timer, LVT masking) end exactly as on that path. In x2APIC mode the ICR is
    /// taken as the 64-bit pair at 0x300/0x310. A write the normal path ignores (reserved bits, read-only register,
    /// disabled APIC) leaves the register as it was. Offsets outside 0x000–0x3F0 or not 16-byte aligned are ignored.
    /// </summary>
    public void CommitTrappedWrite(int offset)
    {
        if ((uint)offset >= RegisterSpan || (offset & 0xF) != 0)
        {
            return;
        }

        uint value = Reg(offset);
        Reg(offset) = _committed[offset >> 4];
        if (!HardwareEnabled)
        {
            return;
        }

        if (!X2ApicMode)
        {
            TryWrite(offset, value, false);
        }
        else if (offset == ApicReg.IcrLow)
        {
            ulong icr = ((ulong)Reg(ApicReg.IcrHigh) << 32) | value;
            Reg(ApicReg.IcrHigh) = _committed[ApicReg.IcrHigh >> 4];
            WriteIcr64(icr);
        }
        else
        {
            TryWrite(offset, value, true);
        }
    }

    /// <summary>Frees the register page. The APIC must not be used afterwards.</summary>
    public void Dispose()
    {
        FreePage();
        GC.SuppressFinalize(this);
    }

    /// <summary>A platform that is never disposed (a test's) still gives the native page back.</summary>
    ~LocalApic() => FreePage();

    private void FreePage()
    {
        if (_page != null)
        {
            NativeMemory.AlignedFree(_page);
            _page = null;
        }
    }
}
