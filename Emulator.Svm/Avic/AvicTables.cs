using System.Runtime.InteropServices;

namespace Emulator.Svm.Avic;

/// <summary>
/// What the AVIC unit needs of a vCPU's APIC: its register page (the AVIC backing page; L0's local APIC keeps its
/// registers there, as KVM's LAPIC page is the backing page), re-evaluation after the hardware set IRR bits in it
/// (a doorbell, or L0 waking the vCPU), and the side effects of a write already in the page (AVIC's trapped writes,
/// which L0 completes; also what the hardware does itself for TPR and EOI).
/// </summary>
internal unsafe interface IAvicBacking
{
    byte* Page { get; }

    void RescanIrr();

    void CommitWrite(int offset);

    /// <summary>L0's instruction emulation of an access the unit did not accelerate (the local APIC's MMIO path).</summary>
    ulong EmulateRead(int offset, int size);

    void EmulateWrite(int offset, int size, ulong value);
}

/// <summary>
/// The AVIC tables of a VM (APM vol. 2 §15.29.3–4), which L0 keeps in host memory (KVM's per-VM pages): the physical
/// APIC ID table, 64-bit entries indexed by guest APIC ID (bits 11:0 host APIC ID of the core running the vCPU, 51:12
/// backing page, 62 IsRunning, 63 valid), and the logical APIC ID table, 32-bit entries (bits 7:0 guest APIC ID,
/// 31 valid) indexed from the logical destination. "Host APIC IDs" are the cores this model runs vCPUs on: one core
/// per vCPU, numbered as the vCPUs, so a doorbell to core N reaches whatever vCPU that core runs now.
/// </summary>
internal sealed unsafe class AvicTables : IDisposable
{
    public const ulong HostIdMask = 0xFFF, BackingMask = 0x000F_FFFF_FFFF_F000, IsRunning = 1UL << 62, Valid = 1UL << 63;
    public const uint LogicalValid = 1u << 31, LogicalIdMask = 0xFF;

    /// <summary>Largest physical index in xAVIC mode: 0xFF is the broadcast destination.</summary>
    public const int MaxXAvicIndex = 0xFE;

    private readonly IAvicBacking?[] _cores;

    // L0's map from guest APIC ID to the vCPU's APIC (KVM's kvm_get_vcpu_by_id), for waking IPI targets.
    private readonly IAvicBacking?[] _vcpus = new IAvicBacking?[MaxXAvicIndex + 1];

    public AvicTables(int cores)
    {
        Physical = (ulong*)NativeMemory.AlignedAlloc(4096, 4096);
        Logical = (uint*)NativeMemory.AlignedAlloc(4096, 4096);
        new Span<byte>(Physical, 4096).Clear();
        new Span<byte>(Logical, 4096).Clear();
        _cores = new IAvicBacking?[Math.Max(cores, 1)];
    }

    public ulong* Physical { get; private set; }

    public uint* Logical { get; private set; }

    /// <summary>Host-physical address of the physical table as a VMCB field holds it (this model's host addresses are pointers).</summary>
    public ulong PhysicalAddress => (ulong)Physical;

    public ulong LogicalAddress => (ulong)Logical;

    public void SetVcpu(int apicId, IAvicBacking apic) => _vcpus[apicId] = apic;

    public IAvicBacking? Vcpu(int apicId) => (uint)apicId < (uint)_vcpus.Length ? _vcpus[apicId] : null;

    /// <summary>Core <paramref name="hostId"/> runs the vCPU whose APIC is <paramref name="backing"/> (null: idle).</summary>
    public void SetCore(int hostId, IAvicBacking? backing) => _cores[hostId] = backing;

    /// <summary>
    /// The doorbell (APM vol. 2 §15.29.6; WRMSR 0xC001011B by software, or the IPI unit): the core re-evaluates the
    /// IRR of the vCPU it runs. A core that runs no AVIC guest ignores it; the next VMRUN looks at the IRR anyway.
    /// </summary>
    public void Doorbell(ulong hostId)
    {
        if (hostId < (ulong)_cores.Length && _cores[hostId] is { } b)
        {
            b.RescanIrr();
        }
    }

    public void Dispose()
    {
        if (Physical != null)
        {
            NativeMemory.AlignedFree(Physical);
            NativeMemory.AlignedFree(Logical);
            Physical = null;
            Logical = null;
        }
    }
}
