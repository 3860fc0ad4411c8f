using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;

namespace Emulator.Svm.Vmcb;

/// <summary>
/// Byte offsets in the 4 KiB VMCB (APM vol. 2 appendix B; docs/svm.md): the control area at 0x000–0x3FF and
/// the state-save area from 0x400. Segment records are 16 bytes: selector, attrib, limit, base.
/// </summary>
public static class VmcbOffset
{
    public const int InterceptCr = 0x000, InterceptDr = 0x004, InterceptExceptions = 0x008;
    public const int InterceptMisc1 = 0x00C, InterceptMisc2 = 0x010, InterceptMisc3 = 0x014;
    public const int PauseFilterThreshold = 0x03C, PauseFilterCount = 0x03E;
    public const int IopmBasePa = 0x040, MsrpmBasePa = 0x048, TscOffset = 0x050;
    public const int Asid = 0x058, TlbControl = 0x05C, IntCtl = 0x060, IntVector = 0x064, IntState = 0x068;
    public const int ExitCode = 0x070, ExitInfo1 = 0x078, ExitInfo2 = 0x080, ExitIntInfo = 0x088, ExitIntInfoErr = 0x08C;
    public const int NestedCtl = 0x090, AvicApicBar = 0x098, EventInj = 0x0A8, EventInjErr = 0x0AC;
    public const int NestedCr3 = 0x0B0, VirtExt = 0x0B8, CleanBits = 0x0C0, NextRip = 0x0C8;
    public const int InsnLength = 0x0D0, InsnBytes = 0x0D1;
    public const int AvicBackingPage = 0x0E0, AvicLogicalTable = 0x0F0, AvicPhysicalTable = 0x0F8;

    public const int Save = 0x400;
    public const int Es = Save + 0x00, Cs = Save + 0x10, Ss = Save + 0x20, Ds = Save + 0x30, Fs = Save + 0x40, Gs = Save + 0x50;
    public const int Gdtr = Save + 0x60, Ldtr = Save + 0x70, Idtr = Save + 0x80, Tr = Save + 0x90;
    public const int Cpl = Save + 0xCB, Efer = Save + 0xD0;
    public const int Cr4 = Save + 0x148, Cr3 = Save + 0x150, Cr0 = Save + 0x158, Dr7 = Save + 0x160, Dr6 = Save + 0x168;
    public const int Rflags = Save + 0x170, Rip = Save + 0x178, Rsp = Save + 0x1D8, Rax = Save + 0x1F8;
    public const int Star = Save + 0x200, Lstar = Save + 0x208, Cstar = Save + 0x210, Sfmask = Save + 0x218;
    public const int KernelGsBase = Save + 0x220, SysenterCs = Save + 0x228, SysenterEsp = Save + 0x230, SysenterEip = Save + 0x238;
    public const int Cr2 = Save + 0x240, GPat = Save + 0x268, DbgCtl = Save + 0x270;
    public const int BrFrom = Save + 0x278, BrTo = Save + 0x280, LastExcpFrom = Save + 0x288, LastExcpTo = Save + 0x290;
}

/// <summary>int_ctl bits (VMCB 0x060).</summary>
public static class IntCtl
{
    public const uint VTprMask = 0xFF, VIrq = 1 << 8, VGif = 1 << 9, VNmiPending = 1 << 11, VNmiBlocking = 1 << 12;
    public const int VIntrPrioShift = 16;
    public const uint VIntrPrioMask = 0xF << VIntrPrioShift, VIgnTpr = 1 << 20, VIntrMasking = 1 << 24;
    public const uint VGifEnable = 1 << 25, VNmiEnable = 1 << 26, X2AvicEnable = 1 << 30, AvicEnable = 1u << 31;
}

/// <summary>VIRT_EXT bits (VMCB 0x0B8).</summary>
public static class VirtExt
{
    /// <summary>LBR_VIRTUALIZATION_ENABLE (APM vol. 2 §15.23).</summary>
    public const ulong LbrVirtualization = 1;
}

/// <summary>EVENTINJ / EXITINTINFO format (APM vol. 2 §15.20).</summary>
public static class EventInj
{
    public const uint VectorMask = 0xFF, TypeShift = 8, TypeMask = 7 << 8, ErrorValid = 1 << 11, Valid = 1u << 31;
    public const uint TypeIntr = 0, TypeNmi = 2, TypeException = 3, TypeSoftInt = 4;

    /// <summary>Bits 30:12 must be zero.</summary>
    public const uint Reserved = 0x7FFF_F000;
}

/// <summary>
/// A VMCB in host memory: typed access to its fields by offset. The page is mapped once per use (KVM's
/// kvm_vcpu_map) and the view is a pointer, so reading a field is one load.
/// </summary>
public readonly unsafe struct VmcbView
{
    private readonly byte* _p;

    public VmcbView(byte* page) => _p = page;

    public bool IsNull => _p == null;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong U64(int offset) => ref Unsafe.AsRef<ulong>(_p + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref uint U32(int offset) => ref Unsafe.AsRef<uint>(_p + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ushort U16(int offset) => ref Unsafe.AsRef<ushort>(_p + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref byte U8(int offset) => ref Unsafe.AsRef<byte>(_p + offset);

    /// <summary>
    /// Reads a segment record into the CPU's descriptor cache. The VMCB attrib packs descriptor bits 47:40 in 7:0
    /// and 55:52 in 11:8; the cache keeps them as descriptor bytes 5–6 (bits 7:0 and 15:12).
    /// </summary>
    public SegmentCache GetSegment(int offset) => new()
    {
        Selector = U16(offset),
        Attr = (ushort)((U16(offset + 2) & 0xFF) | ((U16(offset + 2) & 0xF00) << 4)),
        Limit = U32(offset + 4),
        Base = U64(offset + 8),
    };

    public void SetSegment(int offset, in SegmentCache s)
    {
        U16(offset) = s.Selector;
        U16(offset + 2) = (ushort)((s.Attr & 0xFF) | ((s.Attr >> 4) & 0xF00));
        U32(offset + 4) = s.Limit;
        U64(offset + 8) = s.Base;
    }

    public TableRegister GetTable(int offset) => new() { Limit = (ushort)U32(offset + 4), Base = U64(offset + 8) };

    public void SetTable(int offset, in TableRegister t)
    {
        U32(offset + 4) = t.Limit;
        U64(offset + 8) = t.Base;
    }

    /// <summary>
    /// Fills the save area for a guest that runs in <paramref name="cpu"/>'s own mode and tables (the setup of a
    /// test or benchmark hypervisor): ES, CS, SS, DS, GDTR, IDTR, EFER (with SVME), CR0, CR3, CR4, DR6/DR7 at their
    /// reset values, RFLAGS with only its fixed bit, and the given RIP and RSP.
    /// </summary>
    public void SetGuestStateLike(Cpu cpu, ulong rip, ulong rsp)
    {
        SetSegment(VmcbOffset.Es, cpu.Seg[SegReg.ES]);
        SetSegment(VmcbOffset.Cs, cpu.Seg[SegReg.CS]);
        SetSegment(VmcbOffset.Ss, cpu.Seg[SegReg.SS]);
        SetSegment(VmcbOffset.Ds, cpu.Seg[SegReg.DS]);
        SetTable(VmcbOffset.Gdtr, cpu.Gdtr);
        SetTable(VmcbOffset.Idtr, cpu.Idtr);
        U64(VmcbOffset.Efer) = cpu.Efer | EferBits.SVME;
        U64(VmcbOffset.Cr0) = cpu.Cr0;
        U64(VmcbOffset.Cr3) = cpu.Cr3;
        U64(VmcbOffset.Cr4) = cpu.Cr4;
        U64(VmcbOffset.Dr6) = 0xFFFF_0FF0;
        U64(VmcbOffset.Dr7) = 0x400;
        U64(VmcbOffset.Rflags) = 2;
        U64(VmcbOffset.Rip) = rip;
        U64(VmcbOffset.Rsp) = rsp;
    }
}
