using System.Runtime.InteropServices;
using Emulator.Core.Memory;
using Emulator.Core.Svm;
using Emulator.Svm.Nested;
using Emulator.Svm.Vmcb;

namespace Emulator.Svm.Run;

/// <summary>
/// L0's control area for L1 (KVM's vmcb01): a 4 KiB VMCB page with its I/O and MSR permission maps, in host memory
/// outside guest RAM, so L1 can never see or change them. The intercepts are those KVM's init_vmcb sets for an SVM
/// guest with nested paging (facts from KVM's svm.c, in our words):
/// <list type="bullet">
/// <item>physical events: INTR, NMI and SMI, so L0 keeps its own interrupts (L1's are injected on re-entry);</item>
/// <item>instructions whose result L0 decides: CPUID (its leaves), HLT (the vCPU blocks), RDPMC (virtual PMU),
/// XSETBV (XCR0 is checked against what L0 allows), RSM, INVD and WBINVD (no effect on a guest), MONITOR/MWAIT
/// (not passed to the host), RDPRU and SKINIT (not offered: #UD), and the task switch (emulated);</item>
/// <item>I/O: IOIO_PROT with an IOPM of all ones, every port goes through L0's port bus;</item>
/// <item>MSRs: MSR_PROT with an MSRPM that intercepts every MSR except those KVM passes through to an SVM guest
/// (FS/GS base, KernelGSbase, the SYSCALL and SYSENTER MSRs: state VMLOAD/VMSAVE switch anyway);</item>
/// <item>SHUTDOWN (a triple fault ends the run as KVM_EXIT_SHUTDOWN), and every SVM instruction, VMRUN, VMMCALL
/// (hypercalls), VMLOAD, VMSAVE, STGI, CLGI, INVLPGA and SKINIT, which L0 emulates for nested SVM;</item>
/// <item>exceptions: #UD (VMCALL is rewritten into VMMCALL), #AC and #MC (re-injected).</item>
/// </list>
/// Not set, unlike KVM: the CR0/CR4/CR8 and DR intercepts and #DB (KVM uses them for lazy FPU and CR
/// shadowing, guest debugging and its own single-step, none of which L0 models; the interpreter runs those
/// instructions with the same result), and PAUSE (the scheduler already yields on spin loops). With nested paging
/// INVLPG, #PF and the CR3 intercepts are off, as in KVM.
/// </summary>
public sealed unsafe class Vmcb01 : IDisposable
{
    /// <summary>Sizes of the maps (APM vol. 2 §15.10.1, §15.11): IOPM 12 KiB, MSRPM 8 KiB.</summary>
    public const int IopmSize = 3 * 4096, MsrpmSize = 2 * 4096;

    /// <summary>The MSRs L0 lets L1 access without an exit (KVM's direct-access list for a guest without LBR or SEV).</summary>
    internal static ReadOnlySpan<uint> PassThroughMsrs =>
    [
        0x174, 0x175, 0x176, // SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP
        0xC000_0081, 0xC000_0082, 0xC000_0083, 0xC000_0084, // STAR, LSTAR, CSTAR, SFMASK
        0xC000_0100, 0xC000_0101, 0xC000_0102, // FS_BASE, GS_BASE, KERNEL_GS_BASE
    ];

    private byte* _page, _iopm, _msrpm, _msrpm02;

    public Vmcb01()
    {
        _page = Alloc(4096);
        _iopm = Alloc(IopmSize);
        _msrpm = Alloc(MsrpmSize);
        _msrpm02 = Alloc(MsrpmSize);
        new Span<byte>(_iopm, IopmSize).Fill(0xFF);
        new Span<byte>(_msrpm, MsrpmSize).Fill(0xFF);
        foreach (uint msr in PassThroughMsrs)
        {
            SetMsrIntercept(_msrpm, msr, write: false, value: false);
            SetMsrIntercept(_msrpm, msr, write: true, value: false);
        }

        var v = View;
        v.U32(VmcbOffset.InterceptExceptions) = (1u << 6) | (1u << 17) | (1u << 18); // #UD, #AC, #MC
        ulong misc = 0;
        foreach (int bit in (ReadOnlySpan<int>)
            [
                SvmIntercept.Intr, SvmIntercept.Nmi, SvmIntercept.Smi, SvmIntercept.Rdpmc, SvmIntercept.Cpuid,
                SvmIntercept.Rsm, SvmIntercept.Invd, SvmIntercept.Hlt, SvmIntercept.Invlpga, SvmIntercept.IoioProt,
                SvmIntercept.MsrProt, SvmIntercept.TaskSwitch, SvmIntercept.Shutdown, SvmIntercept.Vmrun,
                SvmIntercept.Vmmcall, SvmIntercept.Vmload, SvmIntercept.Vmsave, SvmIntercept.Stgi, SvmIntercept.Clgi,
                SvmIntercept.Skinit, SvmIntercept.Wbinvd, SvmIntercept.Monitor, SvmIntercept.Mwait, SvmIntercept.Xsetbv,
                SvmIntercept.Rdpru,
            ])
        {
            misc |= 1UL << bit;
        }

        v.U32(VmcbOffset.InterceptMisc1) = (uint)misc;
        v.U32(VmcbOffset.InterceptMisc2) = (uint)(misc >> 32);
        v.U64(VmcbOffset.IopmBasePa) = (ulong)_iopm;
        v.U64(VmcbOffset.MsrpmBasePa) = (ulong)_msrpm;
        v.U64(VmcbOffset.NestedCtl) = 1; // NP_ENABLE: L1 runs on L0's TDP MMU
        v.U32(VmcbOffset.Asid) = 1;
        Intercepts = ReadIntercepts(v);
    }

    /// <summary>The page as a VMCB.</summary>
    public VmcbView View => new(_page);

    /// <summary>vmcb01's intercepts as the vCPU holds them while L1 runs (read from the page).</summary>
    public InterceptVector Intercepts { get; }

    /// <summary>The intercept words and permission-map addresses of a VMCB (APM vol. 2 appendix B, bits 11:0 of the map addresses ignored).</summary>
    public static InterceptVector ReadIntercepts(VmcbView v) => new()
    {
        Cr = v.U32(VmcbOffset.InterceptCr),
        Dr = v.U32(VmcbOffset.InterceptDr),
        Exceptions = v.U32(VmcbOffset.InterceptExceptions),
        Misc = v.U32(VmcbOffset.InterceptMisc1) | ((ulong)v.U32(VmcbOffset.InterceptMisc2) << 32),
        Misc3 = v.U32(VmcbOffset.InterceptMisc3),
        IopmBase = v.U64(VmcbOffset.IopmBasePa) & ~0xFFFUL,
        MsrpmBase = v.U64(VmcbOffset.MsrpmBasePa) & ~0xFFFUL,
    };

    /// <summary>
    /// vmcb02's intercepts for L2 (KVM's recalc_intercepts): vmcb01's ∪ vmcb12's, except VMMCALL, which only vmcb12
    /// can ask for (L0 serves no hypercalls of a nested guest: without L1's intercept it is #UD). The maps are L0's:
    /// the IOPM of all ones (every L2 port access exits to L0, which checks vmcb12's IOPM), and an MSRPM that is
    /// vmcb01's with L1's bits added for the MSRs L0 passes through (KVM's nested_svm_merge_msrpm).
    /// </summary>
    internal InterceptVector MergeForL2(in InterceptVector vmcb12, PhysicalMemory l1Memory)
    {
        var l0 = Intercepts;
        new ReadOnlySpan<byte>(_msrpm, MsrpmSize).CopyTo(new Span<byte>(_msrpm02, MsrpmSize));
        if (vmcb12.Has(SvmIntercept.MsrProt))
        {
            var reader = new GuestRamReader(l1Memory);
            foreach (uint msr in PassThroughMsrs)
            {
                for (int w = 0; w < 2; w++)
                {
                    if (PermissionMaps.MsrIntercepted(ref reader, vmcb12.MsrpmBase, msr, w != 0))
                    {
                        SetMsrIntercept(_msrpm02, msr, w != 0, value: true);
                    }
                }
            }
        }

        return new InterceptVector
        {
            Cr = l0.Cr | vmcb12.Cr,
            Dr = l0.Dr | vmcb12.Dr,
            Exceptions = l0.Exceptions | vmcb12.Exceptions,
            Misc = (l0.Misc & ~(1UL << SvmIntercept.Vmmcall)) | vmcb12.Misc,
            Misc3 = l0.Misc3 | vmcb12.Misc3,
            IopmBase = (ulong)_iopm,
            MsrpmBase = (ulong)_msrpm02,
        };
    }

    /// <summary>Sets or clears the read or write intercept bit of <paramref name="msr"/> (in one of the three ranges).</summary>
    private static void SetMsrIntercept(byte* map, uint msr, bool write, bool value)
    {
        ulong range = msr <= 0x1FFF ? 0 : msr - 0xC000_0000u <= 0x1FFF ? 0x800UL : 0x1000UL;
        uint bit = ((msr & 0x1FFF) * 2) + (write ? 1u : 0u);
        byte* b = map + range + (bit >> 3);
        byte mask = (byte)(1 << (int)(bit & 7));
        *b = value ? (byte)(*b | mask) : (byte)(*b & ~mask);
    }

    private static byte* Alloc(int size)
    {
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)size, 4096);
        new Span<byte>(p, size).Clear();
        return p;
    }

    /// <summary>Frees the pages; the vCPU must not run under this VMCB any more.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    ~Vmcb01() => Release();

    private void Release()
    {
        Free(ref _page);
        Free(ref _iopm);
        Free(ref _msrpm);
        Free(ref _msrpm02);
    }

    private static void Free(ref byte* p)
    {
        if (p != null)
        {
            NativeMemory.AlignedFree(p);
            p = null;
        }
    }
}
