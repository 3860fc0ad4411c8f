namespace Emulator.Core.Cpu;

/// <summary>Features the CPU can report, one per CPUID bit we model (see <see cref="CpuFeatures.Table"/>).</summary>
public enum CpuFeature
{
    // CPUID 1 EDX
    Fpu, Vme, De, Pse, Tsc, Msr, Pae, Mce, Cx8, Apic, Sep, Mtrr, Pge, Mca, Cmov, Pat, Pse36, Clfsh, Mmx, Fxsr, Sse, Sse2,

    // CPUID 1 ECX
    Sse3, Pcid, Cx16, X2Apic, Movbe, TscDeadline, Popcnt, Xsave, Hypervisor,

    // CPUID 7.0 EBX / ECX
    FsGsBase, TscAdjust, Smep, Invpcid, Smap, ClflushOpt, Clwb, Umip, La57, Rdpid,

    // CPUID 0xD.1 EAX (XSAVE extensions)
    XsaveOpt, XsaveC, XgetBv1,

    // CPUID 0x80000001 ECX / EDX
    LahfSahf, Svm, AltMovCr8, Syscall, Nx, Ffxsr, Page1Gb, Rdtscp, Lm,

    // CPUID 0x8000000A EDX (SVM features)
    Npt, LbrVirt, SvmLock, NRips, TscRateMsr, VmcbClean, FlushByAsid, DecodeAssists, PauseFilter, PauseFilterThreshold, Avic, VmsaveVirt, Vgif,
}

/// <summary>Which CPUID output register a feature bit lives in.</summary>
public enum CpuidReg : byte
{
    Eax, Ebx, Ecx, Edx,
}

/// <summary>One row of the feature table: the name <c>--cpu</c> uses, where CPUID reports it, and whether it is on by default.</summary>
/// <param name="Implemented">False for bits that exist in the table only so later work can switch them on;
/// such a feature is off by default and <c>--cpu +name</c> still refuses it.</param>
/// <param name="Reported">False for a feature of the machine L0 uses itself but does not offer its guest in CPUID.</param>
public readonly record struct CpuFeatureInfo(CpuFeature Feature, string Name, uint Leaf, uint Subleaf, CpuidReg Reg, int Bit, bool Default, bool Implemented, bool Reported = true);

/// <summary>
/// The feature set presented to the guest (PLATFORM.md, "CPU presented to L1"): data, not code. CPUID
/// reads it, and so do the checks that must agree with it (CR4 and EFER reserved bits, 1 GiB pages,
/// PCID, x2APIC enable). The CLI toggles entries by name (<c>--cpu -avic,-x2apic</c>).
/// </summary>
public sealed class CpuFeatures
{
    private const uint L1 = 1, L7 = 7, LXsave = 0xD, E1 = 0x8000_0001, SvmLeaf = 0x8000_000A;

    /// <summary>
    /// Every modelled feature bit (AMD64 APM vol. 3 appendix E, CPUID function reference). Default = what
    /// emu reports out of the box: only implemented features. Bits of leaf 1 EDX marked here also appear
    /// in 0x80000001 EDX, where AMD mirrors them.
    /// </summary>
    public static readonly CpuFeatureInfo[] Table =
    [
        new(CpuFeature.Fpu, "fpu", L1, 0, CpuidReg.Edx, 0, true, true),
        // VME/PVI (virtual-8086 mode extensions) are not implemented: CR4.VME/PVI are refused with it.
        new(CpuFeature.Vme, "vme", L1, 0, CpuidReg.Edx, 1, false, false),
        new(CpuFeature.De, "de", L1, 0, CpuidReg.Edx, 2, true, true),
        new(CpuFeature.Pse, "pse", L1, 0, CpuidReg.Edx, 3, true, true),
        new(CpuFeature.Tsc, "tsc", L1, 0, CpuidReg.Edx, 4, true, true),
        new(CpuFeature.Msr, "msr", L1, 0, CpuidReg.Edx, 5, true, true),
        new(CpuFeature.Pae, "pae", L1, 0, CpuidReg.Edx, 6, true, true),
        new(CpuFeature.Mce, "mce", L1, 0, CpuidReg.Edx, 7, true, true),
        new(CpuFeature.Cx8, "cx8", L1, 0, CpuidReg.Edx, 8, true, true),
        new(CpuFeature.Apic, "apic", L1, 0, CpuidReg.Edx, 9, true, true),
        new(CpuFeature.Sep, "sep", L1, 0, CpuidReg.Edx, 11, true, true),
        new(CpuFeature.Mtrr, "mtrr", L1, 0, CpuidReg.Edx, 12, true, true),
        new(CpuFeature.Pge, "pge", L1, 0, CpuidReg.Edx, 13, true, true),
        // MCA needs MCG_CTL and the bank MSRs; only MCG_CAP = 0 and MCG_STATUS exist.
        new(CpuFeature.Mca, "mca", L1, 0, CpuidReg.Edx, 14, false, false),
        new(CpuFeature.Cmov, "cmov", L1, 0, CpuidReg.Edx, 15, true, true),
        new(CpuFeature.Pat, "pat", L1, 0, CpuidReg.Edx, 16, true, true),
        new(CpuFeature.Pse36, "pse36", L1, 0, CpuidReg.Edx, 17, true, true),
        new(CpuFeature.Clfsh, "clflush", L1, 0, CpuidReg.Edx, 19, true, true),
        new(CpuFeature.Mmx, "mmx", L1, 0, CpuidReg.Edx, 23, true, true),
        new(CpuFeature.Fxsr, "fxsr", L1, 0, CpuidReg.Edx, 24, true, true),
        new(CpuFeature.Sse, "sse", L1, 0, CpuidReg.Edx, 25, true, true),
        new(CpuFeature.Sse2, "sse2", L1, 0, CpuidReg.Edx, 26, true, true),

        new(CpuFeature.Sse3, "sse3", L1, 0, CpuidReg.Ecx, 0, false, false),
        new(CpuFeature.Pcid, "pcid", L1, 0, CpuidReg.Ecx, 17, true, true),
        new(CpuFeature.Cx16, "cx16", L1, 0, CpuidReg.Ecx, 13, true, true),
        // x2APIC: the local APIC implements the x2APIC MSRs 0x800–0x8FF and the EXTD transitions.
        new(CpuFeature.X2Apic, "x2apic", L1, 0, CpuidReg.Ecx, 21, true, true),
        new(CpuFeature.Movbe, "movbe", L1, 0, CpuidReg.Ecx, 22, true, true),
        // TSC-deadline timer mode (LVT timer mode 2, IA32_TSC_DEADLINE), emulated by the APIC as KVM does on AMD.
        new(CpuFeature.TscDeadline, "tsc-deadline", L1, 0, CpuidReg.Ecx, 24, true, true),
        new(CpuFeature.Popcnt, "popcnt", L1, 0, CpuidReg.Ecx, 23, false, false),
        // XSAVE/XRSTOR/XSETBV/XGETBV with the x87 and SSE state components (XCR0 bits 0 and 1). Bit 27
        // (OSXSAVE) is not a feature: CPUID copies it from CR4.OSXSAVE.
        new(CpuFeature.Xsave, "xsave", L1, 0, CpuidReg.Ecx, 26, true, true),
        new(CpuFeature.Hypervisor, "hypervisor", L1, 0, CpuidReg.Ecx, 31, false, true),

        new(CpuFeature.FsGsBase, "fsgsbase", L7, 0, CpuidReg.Ebx, 0, true, true),
        // IA32_TSC_ADJUST (MSR 0x3B): KVM emulates it for every vendor and always reports it.
        new(CpuFeature.TscAdjust, "tsc_adjust", L7, 0, CpuidReg.Ebx, 1, true, true),
        new(CpuFeature.Smep, "smep", L7, 0, CpuidReg.Ebx, 7, true, true),
        new(CpuFeature.Invpcid, "invpcid", L7, 0, CpuidReg.Ebx, 10, true, true),
        new(CpuFeature.Smap, "smap", L7, 0, CpuidReg.Ebx, 20, true, true),
        // CLFLUSHOPT/CLWB: no cache is modelled; they check the address like CLFLUSH.
        new(CpuFeature.ClflushOpt, "clflushopt", L7, 0, CpuidReg.Ebx, 23, true, true),
        new(CpuFeature.Clwb, "clwb", L7, 0, CpuidReg.Ebx, 24, true, true),
        // UMIP: SGDT/SIDT/SLDT/SMSW/STR fault above CPL 0 when CR4.UMIP is set.
        new(CpuFeature.Umip, "umip", L7, 0, CpuidReg.Ecx, 2, true, true),
        // LA57: 5-level paging (CR4.LA57) in the guest walk and 57-bit canonical checks. Zen 4 has it, the
        // Zen 3 model emu presents does not, so it is off unless asked for (--cpu +la57).
        new(CpuFeature.La57, "la57", L7, 0, CpuidReg.Ecx, 16, false, true),
        new(CpuFeature.Rdpid, "rdpid", L7, 0, CpuidReg.Ecx, 22, true, true),

        // XSAVE extensions: XSAVEOPT (saves like XSAVE: the init and modified optimisations are optional),
        // XSAVEC and the compacted form of XRSTOR, XGETBV with ECX = 1 (XCR0 AND XINUSE). No XSAVES.
        new(CpuFeature.XsaveOpt, "xsaveopt", LXsave, 1, CpuidReg.Eax, 0, true, true),
        new(CpuFeature.XsaveC, "xsavec", LXsave, 1, CpuidReg.Eax, 1, true, true),
        new(CpuFeature.XgetBv1, "xgetbv1", LXsave, 1, CpuidReg.Eax, 2, true, true),

        new(CpuFeature.LahfSahf, "lahf_lm", E1, 0, CpuidReg.Ecx, 0, true, true),
        // SVM: EFER.SVME, VM_CR, VM_HSAVE_PA, VMRUN/VMLOAD/VMSAVE/STGI/CLGI/INVLPGA with nested SVM in L0
        // (Emulator.Svm/Nested). Feature bits of leaf 0x8000000A are reported only as far as they work.
        new(CpuFeature.Svm, "svm", E1, 0, CpuidReg.Ecx, 2, true, true),
        // LOCK MOV CR0 = MOV CR8: the block cache decodes with DecoderOptions.AMD, so Iced decodes it.
        new(CpuFeature.AltMovCr8, "cr8legacy", E1, 0, CpuidReg.Ecx, 4, true, true),
        new(CpuFeature.Syscall, "syscall", E1, 0, CpuidReg.Edx, 11, true, true),
        new(CpuFeature.Nx, "nx", E1, 0, CpuidReg.Edx, 20, true, true),
        // FFXSR: FXSAVE/FXRSTOR skip the XMM registers in 64-bit mode at CPL 0 when EFER.FFXSR is set.
        new(CpuFeature.Ffxsr, "fxsr_opt", E1, 0, CpuidReg.Edx, 25, true, true),
        new(CpuFeature.Page1Gb, "pdpe1gb", E1, 0, CpuidReg.Edx, 26, true, true),
        new(CpuFeature.Rdtscp, "rdtscp", E1, 0, CpuidReg.Edx, 27, true, true),
        new(CpuFeature.Lm, "lm", E1, 0, CpuidReg.Edx, 29, true, true),

        // SVM feature identifiers (APM vol. 3 E.4.9), reported only with SVM. VMCB clean bits: every VMRUN reloads
        // everything, which the APM allows. FlushByAsid: TLB_CONTROL 3 and 7 flush the guest ASID's set of the tagged TLB
        // (Cpu.TlbSets.cs; 7 flushes global entries too, a superset).
        // NPT: L2 runs on the shadow of L1's nested tables (Emulator.Mmu/Shadow).
        new(CpuFeature.Npt, "npt", SvmLeaf, 0, CpuidReg.Edx, 0, true, true),
        // LbrVirt: vmcb12's VIRT_EXT bit 0 swaps DebugCtl and the LBR MSRs at VMRUN and #VMEXIT (NestedSvm).
        new(CpuFeature.LbrVirt, "lbrv", SvmLeaf, 0, CpuidReg.Edx, 1, true, true),
        new(CpuFeature.SvmLock, "svm_lock", SvmLeaf, 0, CpuidReg.Edx, 2, false, false),
        new(CpuFeature.NRips, "nrip_save", SvmLeaf, 0, CpuidReg.Edx, 3, true, true),
        new(CpuFeature.TscRateMsr, "tsc_scale", SvmLeaf, 0, CpuidReg.Edx, 4, false, false),
        new(CpuFeature.VmcbClean, "vmcb_clean", SvmLeaf, 0, CpuidReg.Edx, 5, true, true),
        new(CpuFeature.FlushByAsid, "flushbyasid", SvmLeaf, 0, CpuidReg.Edx, 6, true, true),
        new(CpuFeature.DecodeAssists, "decodeassists", SvmLeaf, 0, CpuidReg.Edx, 7, false, false),
        // Pause filter count and threshold (Exec.Misc PAUSE; the threshold counts modeled cycles).
        new(CpuFeature.PauseFilter, "pause_filter", SvmLeaf, 0, CpuidReg.Edx, 10, true, true),
        new(CpuFeature.PauseFilterThreshold, "pfthreshold", SvmLeaf, 0, CpuidReg.Edx, 12, true, true),
        // AVIC: the machine's (L0 uses it for L1, docs/avic.md; --cpu -avic is KVM's enable_apicv=0). KVM does not offer
        // AVIC to a nested hypervisor, so L1's CPUID does not report it.
        new(CpuFeature.Avic, "avic", SvmLeaf, 0, CpuidReg.Edx, 13, true, true, Reported: false),
        new(CpuFeature.VmsaveVirt, "v_vmsave_vmload", SvmLeaf, 0, CpuidReg.Edx, 15, false, false),
        // VGIF: with V_GIF_ENABLE in int_ctl, L2's STGI/CLGI write V_GIF and V_GIF gates L2's interrupts
        // (Cpu.EffectiveGif); the #VMEXIT writes V_GIF back to vmcb12 (Emulator.Svm/Nested).
        new(CpuFeature.Vgif, "vgif", SvmLeaf, 0, CpuidReg.Edx, 16, true, true),
    ];

    /// <summary>Leaf-1 EDX bits that AMD repeats in 0x80000001 EDX (FPU..APIC, MTRR..PSE36, MMX, FXSR).</summary>
    public const uint MirroredLeaf1Edx = 0x0183_F3FF;

    private static readonly Dictionary<string, CpuFeature> s_byName = BuildNameIndex();

    private readonly bool[] _on = new bool[Enum.GetValues<CpuFeature>().Length];

    /// <summary>The default set: every implemented feature whose row says on.</summary>
    public CpuFeatures()
    {
        foreach (CpuFeatureInfo f in Table)
        {
            _on[(int)f.Feature] = f.Default;
        }
    }

    public bool Has(CpuFeature f) => _on[(int)f];

    public bool this[CpuFeature f]
    {
        get => _on[(int)f];
        set => _on[(int)f] = value;
    }

    public static CpuFeatureInfo Info(CpuFeature f)
    {
        foreach (CpuFeatureInfo i in Table)
        {
            if (i.Feature == f)
            {
                return i;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(f));
    }

    public static bool TryParseName(string name, out CpuFeature f) => s_byName.TryGetValue(name, out f);

    /// <summary>
    /// Applies a <c>--cpu</c> list such as <c>-avic,-x2apic,+pdpe1gb</c> (a bare name means +). A name that is
    /// unknown, or a feature switched on that emu does not implement, is an error; nothing changes then.
    /// </summary>
    public bool TryApply(string spec, out string? error)
    {
        error = null;
        var changes = new List<(CpuFeature, bool)>();
        foreach (string raw in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            bool on = raw[0] != '-';
            string name = raw[0] is '-' or '+' ? raw[1..] : raw;
            if (!s_byName.TryGetValue(name, out CpuFeature f))
            {
                error = $"unknown CPU feature '{name}'";
                return false;
            }

            if (on && !Info(f).Implemented)
            {
                error = $"CPU feature '{name}' is not implemented";
                return false;
            }

            changes.Add((f, on));
        }

        foreach ((CpuFeature f, bool on) in changes)
        {
            _on[(int)f] = on;
        }

        return true;
    }

    /// <summary>The bits of (leaf, subleaf, reg) that the current set reports.</summary>
    public uint Bits(uint leaf, uint subleaf, CpuidReg reg)
    {
        uint v = 0;
        foreach (CpuFeatureInfo f in Table)
        {
            if (f.Leaf == leaf && f.Subleaf == subleaf && f.Reg == reg && _on[(int)f.Feature] && f.Reported)
            {
                v |= 1u << f.Bit;
            }
        }

        return v;
    }

    private static Dictionary<string, CpuFeature> BuildNameIndex()
    {
        var d = new Dictionary<string, CpuFeature>(StringComparer.OrdinalIgnoreCase);
        foreach (CpuFeatureInfo f in Table)
        {
            d.Add(f.Name, f.Feature);
        }

        return d;
    }
}
