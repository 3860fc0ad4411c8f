namespace Emulator.Core.Svm;

/// <summary>
/// #VMEXIT codes (AMD64 APM vol. 2 appendix C, "SVM Intercept Exit Codes"; docs/svm.md). Core knows this
/// vocabulary because the intercept gate lives in the interpreter; what happens after the exit is Emulator.Svm's.
/// </summary>
public static class SvmExit
{
    public const ulong CrRead0 = 0x00, CrWrite0 = 0x10, DrRead0 = 0x20, DrWrite0 = 0x30;

    /// <summary>Exception vector v exits with 0x40 + v.</summary>
    public const ulong Exception0 = 0x40;
    public const ulong Intr = 0x60, Nmi = 0x61, Smi = 0x62, Init = 0x63, Vintr = 0x64, Cr0SelectiveWrite = 0x65;
    public const ulong IdtrRead = 0x66, GdtrRead = 0x67, LdtrRead = 0x68, TrRead = 0x69;
    public const ulong IdtrWrite = 0x6A, GdtrWrite = 0x6B, LdtrWrite = 0x6C, TrWrite = 0x6D;
    public const ulong Rdtsc = 0x6E, Rdpmc = 0x6F, Pushf = 0x70, Popf = 0x71, Cpuid = 0x72, Rsm = 0x73, Iret = 0x74;
    public const ulong Swint = 0x75, Invd = 0x76, Pause = 0x77, Hlt = 0x78, Invlpg = 0x79, Invlpga = 0x7A;
    public const ulong Ioio = 0x7B, Msr = 0x7C, TaskSwitch = 0x7D, FerrFreeze = 0x7E, Shutdown = 0x7F;
    public const ulong Vmrun = 0x80, Vmmcall = 0x81, Vmload = 0x82, Vmsave = 0x83, Stgi = 0x84, Clgi = 0x85;
    public const ulong Skinit = 0x86, Rdtscp = 0x87, Icebp = 0x88, Wbinvd = 0x89, Monitor = 0x8A, Mwait = 0x8B;
    public const ulong MwaitConditional = 0x8C, Xsetbv = 0x8D, Rdpru = 0x8E;
    public const ulong Invpcid = 0xA2, BusLock = 0xA5, IdleHlt = 0xA6;
    public const ulong Npf = 0x400, AvicIncompleteIpi = 0x401, AvicNoAccel = 0x402;

    /// <summary>VMRUN failed a consistency check (EXITCODE −1).</summary>
    public const ulong Invalid = ulong.MaxValue;

    /// <summary>A short name for statistics (<c>svm.exits.NAME</c>).</summary>
    public static string Name(ulong code) => code switch
    {
        < 0x10 => $"cr{code}_read",
        < 0x20 => $"cr{code - 0x10}_write",
        < 0x30 => $"dr{code - 0x20}_read",
        < 0x40 => $"dr{code - 0x30}_write",
        < 0x60 => $"excp{code - 0x40}",
        Intr => "intr",
        Nmi => "nmi",
        Smi => "smi",
        Init => "init",
        Vintr => "vintr",
        Cr0SelectiveWrite => "cr0_sel_write",
        >= IdtrRead and <= TrWrite => "desc_table",
        Rdtsc => "rdtsc",
        Rdpmc => "rdpmc",
        Pushf => "pushf",
        Popf => "popf",
        Cpuid => "cpuid",
        Rsm => "rsm",
        Iret => "iret",
        Swint => "swint",
        Invd => "invd",
        Pause => "pause",
        Hlt => "hlt",
        Invlpg => "invlpg",
        Invlpga => "invlpga",
        Ioio => "ioio",
        Msr => "msr",
        TaskSwitch => "task_switch",
        FerrFreeze => "ferr_freeze",
        Shutdown => "shutdown",
        Vmrun => "vmrun",
        Vmmcall => "vmmcall",
        Vmload => "vmload",
        Vmsave => "vmsave",
        Stgi => "stgi",
        Clgi => "clgi",
        Skinit => "skinit",
        Rdtscp => "rdtscp",
        Icebp => "icebp",
        Wbinvd => "wbinvd",
        Monitor => "monitor",
        Mwait or MwaitConditional => "mwait",
        Xsetbv => "xsetbv",
        Rdpru => "rdpru",
        Invpcid => "invpcid",
        Npf => "npf",
        AvicIncompleteIpi => "avic_incomplete_ipi",
        AvicNoAccel => "avic_noaccel",
        Invalid => "invalid",
        _ => $"0x{code:x}",
    };
}

/// <summary>
/// Bit numbers of the misc intercept words as one 64-bit vector: word 3 (VMCB 0x00C) in bits 31:0 and word 4
/// (0x010) in bits 63:32, so for exit codes 0x60–0x8E the bit is <c>code − 0x60</c> (APM vol. 2 §15.9, VMCB layout).
/// </summary>
public static class SvmIntercept
{
    public const int Intr = 0, Nmi = 1, Smi = 2, Init = 3, Vintr = 4, Cr0SelectiveWrite = 5;
    public const int IdtrRead = 6, GdtrRead = 7, LdtrRead = 8, TrRead = 9, IdtrWrite = 10, GdtrWrite = 11, LdtrWrite = 12, TrWrite = 13;
    public const int Rdtsc = 14, Rdpmc = 15, Pushf = 16, Popf = 17, Cpuid = 18, Rsm = 19, Iret = 20, Swint = 21;
    public const int Invd = 22, Pause = 23, Hlt = 24, Invlpg = 25, Invlpga = 26, IoioProt = 27, MsrProt = 28;
    public const int TaskSwitch = 29, FerrFreeze = 30, Shutdown = 31;
    public const int Vmrun = 32, Vmmcall = 33, Vmload = 34, Vmsave = 35, Stgi = 36, Clgi = 37, Skinit = 38;
    public const int Rdtscp = 39, Icebp = 40, Wbinvd = 41, Monitor = 42, Mwait = 43, MwaitConditional = 44, Xsetbv = 45, Rdpru = 46;

    /// <summary>The exit code of misc intercept bit <paramref name="bit"/>.</summary>
    public static ulong ExitCode(int bit) => 0x60 + (ulong)bit;
}

/// <summary>
/// The intercept vector of the guest running now: copied from the VMCB at VMRUN (APM vol. 2 §15.5.1) so the gate
/// in the interpreter is one bit test.
/// </summary>
public struct InterceptVector
{
    /// <summary>CR reads in bits 15:0, CR writes in bits 31:16 (VMCB 0x000).</summary>
    public uint Cr;
    /// <summary>DR reads in bits 15:0, DR writes in bits 31:16 (VMCB 0x004).</summary>
    public uint Dr;
    /// <summary>Exception vectors 0–31 (VMCB 0x008).</summary>
    public uint Exceptions;
    /// <summary>Words 3 and 4 (VMCB 0x00C, 0x010); bit numbers in <see cref="SvmIntercept"/>.</summary>
    public ulong Misc;
    /// <summary>Word 5 (VMCB 0x014): INVLPGB, INVPCID, MCOMMIT, TLBSYNC, bus lock, idle HLT.</summary>
    public uint Misc3;

    /// <summary>Host-physical (for L2: L1 guest-physical) addresses of the I/O and MSR permission maps, bits 11:0 clear.</summary>
    public ulong IopmBase, MsrpmBase;

    public readonly bool Has(int miscBit) => ((Misc >> miscBit) & 1) != 0;
}
