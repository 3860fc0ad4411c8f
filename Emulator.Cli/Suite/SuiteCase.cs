using Emulator.Mmu.Fault;

namespace Emulator.Cli.Suite;

/// <summary>
/// One test case of a suite, whatever file described it (kvm-unit-tests' <c>unittests.cfg</c> today): the
/// image, how the machine is built and booted, the time it may take, and why the runner skips it, if it does.
/// </summary>
internal sealed class SuiteCase
{
    /// <summary>QEMU's default RAM when a case names none (<c>-m</c> absent).</summary>
    public const ulong DefaultMemory = 128UL << 20;

    /// <summary>Upstream's runner gives a case 90 seconds when it names no <c>timeout</c>.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(90);

    public required string Name { get; init; }

    /// <summary>The suite the case belongs to (a YAML suite's name, or the suite file's name), for reports.</summary>
    public string Suite { get; init; } = "";

    /// <summary>Where the case is written (<c>file:line:column</c> for YAML suites; the file for others).</summary>
    public string Source { get; init; } = "";

    /// <summary>A guest built into emu (<c>builtin:NAME</c>) instead of an image; null boots <see cref="ImagePath"/>.</summary>
    public BuiltinGuest? Builtin { get; init; }

    /// <summary>A file loaded as the first Multiboot module (<c>--initrd</c>); null loads none.</summary>
    public string? InitrdPath { get; init; }

    /// <summary>How L0 hides the APIC-access page while APICv is inhibited (<c>--apicv-toggle</c>).</summary>
    public ApicvToggle ApicvToggle { get; init; } = ApicvToggle.Zap;

    /// <summary>Which kernel's NESTED inhibit L0 follows (<c>--apicv-nested</c>).</summary>
    public Emulator.Svm.Run.ApicvNestedInhibit ApicvNested { get; init; } = Emulator.Svm.Run.ApicvNestedInhibit.Vm;

    /// <summary>The PIT re-injects unacknowledged ticks (<c>--pit-reinject</c>).</summary>
    public bool PitReinject { get; init; }

    /// <summary>Guest instructions (all vCPUs) after which the run stops with status 124.</summary>
    public ulong MaxInstructions { get; init; } = ulong.MaxValue;

    /// <summary>Modeled cycles of the bootstrap vCPU after which the run stops with status 124.</summary>
    public ulong MaxCycles { get; init; } = ulong.MaxValue;

    /// <summary>What the run must show (YAML suites); null classifies it as kvm-unit-tests reports.</summary>
    public CaseExpectations? Expect { get; init; }

    /// <summary>Actions applied at given cycles, in cycle order.</summary>
    public IReadOnlyList<ScheduledAction> Actions { get; init; } = [];

    /// <summary>The image as the suite file names it; empty when it names none.</summary>
    public string File { get; init; } = "";

    /// <summary>The image on disk (<see cref="File"/> under the images folder).</summary>
    public string ImagePath { get; init; } = "";

    public int Cpus { get; init; } = 1;

    public ulong Memory { get; init; } = DefaultMemory;

    /// <summary>The kernel command line after the image name (QEMU's <c>-append</c>).</summary>
    public string Append { get; init; } = "";

    /// <summary>
    /// Wall-clock time the guest's RTC and kvmclock start at: the moment the suite file was read, as QEMU's
    /// default <c>-rtc base=utc</c> starts at the host's time (and the same instant a <c>`date +%s`</c> in
    /// <see cref="Append"/> became); null keeps emu's fixed, repeatable epoch.
    /// </summary>
    public DateTime? RtcBase { get; init; }

    /// <summary>CPU feature switches for <c>--cpu</c> ("+x2apic", "-npt"), only names emu knows and implements.</summary>
    public IReadOnlyList<string> CpuFeatures { get; init; } = [];

    public IReadOnlyList<string> Groups { get; init; } = [];

    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>Why the runner does not run the case (architecture, KVM, a machine emu does not model); null runs it.</summary>
    public string? SkipReason { get; init; }

    /// <summary>What the runner changed or ignored to run the case (dropped CPU features, ignored options, host checks).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}
