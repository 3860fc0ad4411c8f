namespace Emulator.Core.Cpu;

/// <summary>
/// CPUID (AMD64 APM vol. 3, appendix E): an AuthenticAMD family 0x19 (Zen 3 class) processor whose
/// feature bits come from <see cref="Features"/>. Leaves outside the reported ranges, and reserved
/// leaves inside them, return zeros as AMD processors do.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>The feature set this CPU reports and enforces; replace or edit it before the guest runs.</summary>
    public CpuFeatures Features { get; set; } = new();

    /// <summary>Initial local APIC id, reported in CPUID 1 EBX[31:24] (set by the machine for APs).</summary>
    public byte ApicId;

    public const uint MaxStandardLeaf = 0xD;
    public const uint MaxExtendedLeaf = 0x8000_000A;

    /// <summary>Family 0x19 = base 0xF + extended 0xA; model 0x01, stepping 1 (EPYC 7003 "Milan").</summary>
    public const uint Signature = (0xAu << 20) | (0x0u << 16) | (0xFu << 8) | (0x1u << 4) | 0x1u;

    /// <summary>Number of ASIDs reported in 0x8000000A EBX.</summary>
    public const uint SvmAsidCount = 0x8000;

    /// <summary>Linear-address bits reported in 0x80000008 with 4-level paging; 57 when LA57 is reported.</summary>
    public const int MaxLinearAddrBits = 48;

    // "AuthenticAMD" as EBX, EDX, ECX.
    private const uint VendorEbx = 0x6874_7541, VendorEdx = 0x6974_6E65, VendorEcx = 0x444D_4163;

    /// <summary>"emu virtual CPU", NUL-padded to the 48 bytes of leaves 0x80000002–4.</summary>
    public const string BrandString = "emu virtual CPU";

    public void Cpuid(uint leaf, uint subleaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
    {
        eax = ebx = ecx = edx = 0;
        CpuFeatures f = Features;
        switch (leaf)
        {
            case 0:
                eax = MaxStandardLeaf;
                ebx = VendorEbx;
                edx = VendorEdx;
                ecx = VendorEcx;
                break;
            case 1:
                eax = Signature;
                // EBX: CLFLUSH line size in quadwords (8 = 64 bytes), one logical processor, initial APIC id.
                ebx = (8u << 8) | (1u << 16) | ((uint)ApicId << 24);
                ecx = f.Bits(1, 0, CpuidReg.Ecx);
                if ((Cr4 & Cr4Bits.OSXSAVE) != 0)
                {
                    ecx |= 1u << 27; // OSXSAVE mirrors CR4.OSXSAVE
                }

                edx = f.Bits(1, 0, CpuidReg.Edx);
                if ((ApicBase & ApicBaseEnable) == 0)
                {
                    // EDX.APIC reports the APIC's global enable (IA32_APIC_BASE.EN), as hardware and KVM do.
                    edx &= ~(1u << 9);
                }

                break;
            case 7:
                if (subleaf == 0)
                {
                    eax = 0; // highest subleaf
                    ebx = f.Bits(7, 0, CpuidReg.Ebx);
                    ecx = f.Bits(7, 0, CpuidReg.Ecx);
                }

                break;
            case 0xB when f.Has(CpuFeature.X2Apic):
                X2ApicTopology(subleaf, out eax, out ebx, out ecx, out edx);
                break;
            case 0xD:
                if (f.Has(CpuFeature.Xsave))
                {
                    XsaveLeaf(subleaf, out eax, out ebx, out ecx, out edx);
                }

                break;
            case >= HypervisorLeafFirst and <= HypervisorLeafLast when f.Has(CpuFeature.Hypervisor) && HypervisorLeaves != null:
                // Software reserves this range for the hypervisor (APM vol. 3 appendix E); L0 fills it.
                HypervisorLeaves(leaf, out eax, out ebx, out ecx, out edx);
                break;
            case 0x8000_0000:
                eax = MaxExtendedLeaf;
                ebx = VendorEbx;
                edx = VendorEdx;
                ecx = VendorEcx;
                break;
            case 0x8000_0001:
                eax = Signature;
                ecx = f.Bits(0x8000_0001, 0, CpuidReg.Ecx);
                edx = f.Bits(0x8000_0001, 0, CpuidReg.Edx) | (f.Bits(1, 0, CpuidReg.Edx) & CpuFeatures.MirroredLeaf1Edx);
                break;
            case 0x8000_0002:
            case 0x8000_0003:
            case 0x8000_0004:
                {
                    int at = (int)(leaf - 0x8000_0002) * 16;
                    eax = BrandDword(at);
                    ebx = BrandDword(at + 4);
                    ecx = BrandDword(at + 8);
                    edx = BrandDword(at + 12);
                    break;
                }

            case 0x8000_0008:
                // EAX: physical and linear address widths (guest physical = physical: bits 23:16 zero).
                eax = (uint)MaxPhysAddrBits | ((uint)LinearAddrBits << 8);
                break;
            case 0x8000_000A:
                if (f.Has(CpuFeature.Svm))
                {
                    eax = 1; // SVM revision
                    ebx = SvmAsidCount;
                    edx = f.Bits(0x8000_000A, 0, CpuidReg.Edx);
                }

                break;
        }
    }

    /// <summary>
    /// Leaf 0xB, extended topology (AMD64 APM vol. 3 appendix E, CPUID Fn0000_000B): every vCPU is the only thread of the only core
    /// of its own package (as leaf 1 reports), so the SMT level (subleaf 0) and the core level (subleaf 1) each
    /// hold one logical processor and shift the x2APIC ID by 0 bits; higher subleaves are invalid (type 0). EDX
    /// is always the x2APIC ID.
    /// </summary>
    private void X2ApicTopology(uint subleaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
    {
        const uint smtLevel = 1, coreLevel = 2;
        eax = 0;
        ebx = subleaf <= 1 ? 1u : 0u;
        ecx = (subleaf & 0xFF) | (subleaf switch { 0 => smtLevel, 1 => coreLevel, _ => 0u } << 8);
        edx = ApicId;
    }

    /// <summary>Linear-address width the current feature set reports (57 with LA57).</summary>
    public int LinearAddrBits => Features.Has(CpuFeature.La57) ? 57 : MaxLinearAddrBits;

    /// <summary>
    /// Leaf 0xD (APM vol. 3 E.3.9; Intel SDM vol. 1 §13.2): subleaf 0 gives the XCR0 bits XSETBV accepts and
    /// the XSAVE area sizes (legacy region + header = 576 bytes, as only x87 and SSE exist); subleaf 1 the
    /// XSAVE extensions. Components 0 and 1 live in the legacy region and have no subleaf of their own.
    /// </summary>
    private void XsaveLeaf(uint subleaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
    {
        eax = ebx = ecx = edx = 0;
        if (subleaf == 0)
        {
            eax = (uint)SupportedXcr0;
            edx = (uint)(SupportedXcr0 >> 32);
            ebx = XsaveAreaSize; // for the components enabled in XCR0
            ecx = XsaveAreaSize; // for every supported component
        }
        else if (subleaf == 1)
        {
            eax = Features.Bits(0xD, 1, CpuidReg.Eax);
        }
    }

    private static uint BrandDword(int at)
    {
        uint v = 0;
        for (int i = 0; i < 4; i++)
        {
            int k = at + i;
            uint ch = k < BrandString.Length ? BrandString[k] : 0u;
            v |= ch << (i * 8);
        }

        return v;
    }
}
