using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>kvm-unit-tests' unittests.cfg as upstream writes it, mapped to emu's machine settings.</summary>
public class UnittestsCfgTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);

    private static List<SuiteCase> Parse(string text, bool groupSelected = false) =>
        UnittestsCfg.Parse(text, "/img", groupSelected, Now);

    private static SuiteCase One(string body) => Parse("[t]\nfile = t.flat\n" + body).Single();

    [Test]
    public void SectionsBecomeCasesWithTheirKeys()
    {
        var cases = Parse("""
            ##############
            # header comment
            [x2apic]
            file = apic.flat
            smp = 2
            arch = x86_64
            timeout = 30
            groups = apic  timers

            # a comment between sections
            [emulator]
            file=emulator.flat
            """);
        Assert.That(cases.Select(c => c.Name), Is.EqualTo(new[] { "x2apic", "emulator" }));
        var a = cases[0];
        Assert.That(a.File, Is.EqualTo("apic.flat"));
        Assert.That(a.ImagePath, Is.EqualTo(Path.Combine("/img", "apic.flat")));
        Assert.That(a.Cpus, Is.EqualTo(2));
        Assert.That(a.Timeout, Is.EqualTo(TimeSpan.FromSeconds(30)));
        Assert.That(a.Groups, Is.EqualTo(new[] { "apic", "timers" }));
        Assert.That(a.SkipReason, Is.Null);
        var b = cases[1];
        Assert.That(b.File, Is.EqualTo("emulator.flat"));
        Assert.That((b.Cpus, b.Memory, b.Timeout, b.Append), Is.EqualTo((1, 128UL << 20, TimeSpan.FromSeconds(90), "")), "QEMU's and upstream's defaults");
    }

    [TestCase("test_args = 'cpuid'", "cpuid")]
    [TestCase("test_args = \"-pause_filter_test -svm_npt\"", "-pause_filter_test -svm_npt")]
    [TestCase("test_args = tscdeadline", "tscdeadline")]
    [TestCase("test_args = \"10000000 `date +%s`\"", "10000000 1700000000")]
    public void TestArgsLoseTheirQuotes(string line, string append) =>
        Assert.That(One(line).Append, Is.EqualTo(append));

    [Test]
    public void EveryCaseStartsItsClockAtTheHostTimeOfTheRunAsQemusDefaultRtcBase()
    {
        var now = new DateTimeOffset(2031, 5, 6, 7, 8, 9, TimeSpan.Zero).AddMilliseconds(600);
        var cases = UnittestsCfg.Parse("[a]\nfile = a.flat\n[b]\nfile = b.flat\ntest_args = `date +%s`\n", "/img", now: now);
        Assert.That(cases.Select(c => c.RtcBase), Is.All.EqualTo(new DateTime(2031, 5, 6, 7, 8, 9)), "whole seconds, one instant for all");
        Assert.That(cases[1].Append, Is.EqualTo(now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Test]
    public void CpuModelAndFeaturesMapToTheFeatureList()
    {
        var c = One("qemu_params = -cpu qemu64,+x2apic,-npt,tsc-deadline,pcid=off -m 4g -smp 3");
        Assert.That(c.CpuFeatures, Is.EqualTo(new[] { "+x2apic", "-npt", "+tsc-deadline", "-pcid" }));
        Assert.That(c.Memory, Is.EqualTo(4UL << 30));
        Assert.That(c.Cpus, Is.EqualTo(3));
        Assert.That(c.SkipReason, Is.Null);
        Assert.That(c.Notes, Has.Some.Contains("qemu64"));
    }

    [Test]
    public void FeaturesEmuLacksAreDroppedWithANote()
    {
        // vmx and host-phys-bits are unknown to emu, sse3 is known but not implemented, vendor= is a property.
        var c = One("qemu_params = -cpu max,+vmx,host-phys-bits,+sse3,vendor=GenuineIntel,-sse3,+x2apic");
        Assert.That(c.CpuFeatures, Is.EqualTo(new[] { "-sse3", "+x2apic" }));
        Assert.That(c.SkipReason, Is.Null);
        Assert.That(c.Notes, Has.Some.Contains("+vmx").And.Some.Contains("host-phys-bits")
            .And.Some.Contains("+sse3: feature not implemented").And.Some.Contains("vendor=GenuineIntel"));
    }

    [Test]
    public void SmpInQemuParamsWinsOverTheSmpKeyAsOnQemusCommandLine() =>
        Assert.That(One("smp = 2\nqemu_params = -smp 4").Cpus, Is.EqualTo(4));

    [TestCase("-m 2048", 2048UL << 20)]
    [TestCase("-m 2560", 2560UL << 20)]
    [TestCase("-m 4g", 4UL << 30)]
    [TestCase("-m size=1G", 1UL << 30)]
    public void MemorySizesAreReadAsQemuReadsThem(string option, ulong bytes) =>
        Assert.That(One("qemu_params = " + option).Memory, Is.EqualTo(bytes));

    [Test]
    public void ExtraParamsIsTheOlderNameOfQemuParams() =>
        Assert.That(One("extra_params = -cpu max,-x2apic").CpuFeatures, Is.EqualTo(new[] { "-x2apic" }));

    [Test]
    public void TripleQuotedParamsSpanLines()
    {
        var c = Parse("[t]\nfile = t.flat\nqemu_params = \"\"\"-cpu max,-x2apic \\\n -m 256\n -smp 2\"\"\"\ngroups = g\n").Single();
        Assert.That(c.CpuFeatures, Is.EqualTo(new[] { "-x2apic" }));
        Assert.That((c.Memory, c.Cpus), Is.EqualTo((256UL << 20, 2)));
        Assert.That(c.Groups, Is.EqualTo(new[] { "g" }));
    }

    [TestCase("accel = kvm", "needs KVM")]
    [TestCase("arch = i386", "i386 only")]
    [TestCase("qemu_params = -M q35,kernel-irqchip=split -device intel-iommu,intremap=on", "needs machine type q35")]
    [TestCase("qemu_params = -cpu host,hv_passthrough -device hyperv-testdev", "needs device hyperv-testdev")]
    [TestCase("qemu_params = -enable-kvm -m 2048 -cpu host", "needs KVM")]
    [TestCase("qemu_params = -machine accel=kvm", "needs KVM")]
    [TestCase("groups = vmx nodefault", "manual run only")]
    public void CasesEmuCannotRunAreSkippedWithTheReason(string line, string reason) =>
        Assert.That(One(line).SkipReason, Does.Contain(reason));

    [TestCase("arch = x86_64")]
    [TestCase("accel = tcg")]
    [TestCase("qemu_params = -machine pit=off")]
    [TestCase("qemu_params = -device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4")]
    [TestCase("qemu_params = -cpu max,+svm -overcommit cpu-pm=on -m 4g")]
    [TestCase("check = /sys/module/kvm/parameters/enable_pmu=Y")]
    public void OptionsThatDoNotMatterRun(string line) =>
        Assert.That(One(line).SkipReason, Is.Null);

    [Test]
    public void IgnoredOptionsAndHostChecksAreNoted()
    {
        var c = One("qemu_params = -machine pit=off -overcommit cpu-pm=on\ncheck = /proc/sys/kernel/nmi_watchdog=0");
        Assert.That(c.Notes, Has.Some.Contains("pit=off").And.Some.Contains("-overcommit cpu-pm=on").And.Some.Contains("nmi_watchdog"));
    }

    [Test]
    public void NodefaultCasesRunWhenAGroupIsSelected() =>
        Assert.That(Parse("[t]\nfile = t.flat\ngroups = vmx nodefault\n", groupSelected: true).Single().SkipReason, Is.Null);

    [TestCase("10", 10.0)]
    [TestCase("90s", 90.0)]
    [TestCase("1.5m", 90.0)]
    [TestCase("2h", 7200.0)]
    [TestCase("0.25", 0.25)]
    public void TimeoutsAreTimeoutDurations(string text, double seconds) =>
        Assert.That(One("timeout = " + text).Timeout, Is.EqualTo(TimeSpan.FromSeconds(seconds)));

    [Test]
    public void ABadTimeoutKeepsTheDefaultWithANote()
    {
        var c = One("timeout = soon");
        Assert.That(c.Timeout, Is.EqualTo(SuiteCase.DefaultTimeout));
        Assert.That(c.Notes, Has.Some.Contains("soon"));
    }

    [Test]
    public void TheSharedConfigurationParsesWhole()
    {
        // The x86 unittests.cfg layout of upstream, trimmed: every case gets a name and a file.
        var cases = Parse("""
            [vmexit_ipi]
            file = vmexit.flat
            smp = 2
            test_args = 'ipi'
            qemu_params = -machine pit=off
            groups = vmexit

            [access-reduced-maxphyaddr]
            file = access_test.flat
            arch = x86_64
            qemu_params = -cpu IvyBridge,phys-bits=36,host-phys-bits=off
            check = /sys/module/kvm_intel/parameters/allow_smaller_maxphyaddr=Y

            [pmu]
            file = pmu.flat
            qemu_params = -cpu max
            check = /sys/module/kvm/parameters/enable_pmu=Y /proc/sys/kernel/nmi_watchdog=0
            accel = kvm
            groups = pmu
            """);
        Assert.That(cases.Select(c => (c.Name, c.SkipReason)), Is.EqualTo(new (string, string?)[]
        {
            ("vmexit_ipi", null),
            ("access-reduced-maxphyaddr", null),
            ("pmu", "needs KVM"),
        }));
        Assert.That(cases[0].Append, Is.EqualTo("ipi"));
        Assert.That(cases[1].CpuFeatures, Is.Empty);
    }
}
