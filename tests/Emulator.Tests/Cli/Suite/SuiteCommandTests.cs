using System.Text;
using Emulator.Tests.Core;
using static Emulator.Tests.Cli.CliRunner;
using static Emulator.Tests.Core.Loaders.ImageBuilder;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// <c>emu suite run</c> on a folder of tiny Multiboot kernels that behave as kvm-unit-tests ones do: print
/// PASS/FAIL lines and a SUMMARY on COM1, then exit through isa-debug-exit.
/// </summary>
public sealed class SuiteCommandTests : IDisposable
{

    private readonly string _dir = Directory.CreateTempSubdirectory("emu-suite-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string Suite()
    {
        Write("pass.flat", SuiteKernels.Printing("PASS: one\nPASS: two\nSKIP: three\nSUMMARY: 3 tests, 1 skipped\n", 0));
        Write("fail.flat", SuiteKernels.Printing("PASS: one\nFAIL: two went wrong\nSUMMARY: 2 tests, 1 unexpected failures\n", 1));
        Write("skip.flat", SuiteKernels.Printing("SKIP: no such feature\nSUMMARY: 1 tests, 1 skipped\n", 38));
        Write("hang.flat", SuiteKernels.Hang());
        Write("triple.flat", SuiteKernels.TripleFault());
        return Write("unittests.cfg", Encoding.ASCII.GetBytes("""
            # a miniature of kvm-unit-tests' x86/unittests.cfg
            [pass]
            file = pass.flat
            smp = 2
            test_args = 'a b'
            qemu_params = -cpu qemu64,+x2apic,+vmx -m 64

            [fail]
            file = fail.flat
            groups = g1

            [skip]
            file = skip.flat

            [hang]
            file = hang.flat
            timeout = 0.3

            [triple]
            file = triple.flat

            [missing]
            file = missing.flat

            [kvm_only]
            file = pass.flat
            accel = kvm

            [i386_only]
            file = pass.flat
            arch = i386
            """));
    }

    [Test]
    public void EachCaseGetsOneLineInOrderAndATotal()
    {
        var r = Emu("suite", "run", Suite(), "--jobs", "2");
        Assert.That(r.Status, Is.EqualTo(1), r.Err + r.Out);
        string[] lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] cases = [.. lines.Where(l => !l.StartsWith(' '))];
        Assert.That(cases[0], Does.Match(@"^PASS +pass +\(3 tests, 0 failures, 1 skipped\) \d+\.\d\d s$"));
        Assert.That(cases[1], Does.Match(@"^FAIL +fail +\(2 tests, 1 failures, 0 skipped\)"));
        Assert.That(cases[2], Does.Match(@"^SKIP +skip +\(1 tests, 0 failures, 1 skipped\)"));
        Assert.That(cases[3], Does.Match(@"^TIMEOUT +hang +\(emu: timeout"));
        Assert.That(cases[4], Does.Match(@"^ERROR +triple +\(emu: triple fault"));
        Assert.That(cases[5], Does.Match(@"^ERROR +missing +\(.*missing.flat: image missing\)"));
        Assert.That(cases[6], Does.Match(@"^SKIP +kvm_only +\(needs KVM\)$"));
        Assert.That(cases[7], Does.Match(@"^SKIP +i386_only +\(i386 only\)$"));
        Assert.That(cases[8], Does.Match(@"^8 cases: 1 PASS, 3 SKIP, 1 FAIL, 1 TIMEOUT, 2 ERROR in \d+\.\d s$"));
        Assert.That(lines, Has.Some.EqualTo("    FAIL: two went wrong"));
    }

    [Test]
    public void TheCaseGetsItsCommandLineCpusAndFeatures()
    {
        // The kernel echoes its command line back; with two vCPUs fw_cfg reports NB_CPUS = 2.
        string cfg = Suite();
        Write("pass.flat", SuiteKernels.Image(a =>
        {
            var loop = a.CreateLabel();
            var done = a.CreateLabel();
            a.mov(esi, __dword_ptr[ebx + 16]); // Multiboot cmdline
            a.mov(edx, 0x3F8);
            a.Label(ref loop);
            a.movzx(eax, __byte_ptr[esi]);
            a.test(al, al);
            a.jz(done);
            a.@out(dx, al);
            a.inc(esi);
            a.jmp(loop);
            a.Label(ref done);
            a.mov(ax, 5); // FW_CFG_NB_CPUS
            a.mov(edx, 0x510);
            a.@out(dx, ax);
            a.mov(edx, 0x511);
            a.@in(al, dx);
            a.movzx(eax, al);
            a.mov(edx, 0xF4);
            a.@out(dx, eax);
            a.hlt();
        }));
        var runner = new Emulator.Cli.Suite.SuiteRunner { Jobs = 1 };
        var c = Emulator.Cli.Suite.UnittestsCfg.Parse(File.ReadAllText(cfg), _dir)[0];
        var result = runner.RunOne(c);
        Assert.That(result.Output, Is.EqualTo(Path.Combine(_dir, "pass.flat") + " a b"));
        Assert.That(result.Outcome, Is.EqualTo(Emulator.Cli.Suite.CaseOutcome.Error), "status 5 = NB_CPUS 2");
        Assert.That(result.Reason, Does.Contain("exit status 5"));
        Assert.That(c.CpuFeatures, Is.EqualTo(new[] { "+x2apic" }));
        Assert.That(c.Memory, Is.EqualTo(64UL << 20));
    }

    [Test]
    public void ExpectedFileDecidesTheStatusAndReportsImprovements()
    {
        string cfg = Suite();
        string ok = Write("ok.expected", Encoding.ASCII.GetBytes("pass PASS\nfail FAIL\nskip SKIP\nhang ERROR\ntriple ERROR\nmissing ERROR\nkvm_only SKIP\ni386_only SKIP\n"));
        var r = Emu("suite", "run", cfg, "--expected", ok);
        Assert.That(r.Status, Is.Zero, r.Out);
        Assert.That(r.Out, Does.Contain("improved: hang ERROR -> TIMEOUT"));
        Assert.That(r.Out, Does.Contain("no case did worse"));

        string strict = Write("strict.expected", Encoding.ASCII.GetBytes("pass PASS\nfail PASS\nskip PASS\n"));
        r = Emu("suite", "run", cfg, "--expected", strict, "--filter", "pass,fail,sk*");
        Assert.That(r.Status, Is.EqualTo(1), r.Out);
        Assert.That(r.Out, Does.Contain("REGRESSION: fail expected PASS, got FAIL"));
        Assert.That(r.Out, Does.Contain("REGRESSION: skip expected PASS, got SKIP"));
        Assert.That(r.Out, Does.Not.Contain("REGRESSION: pass"));
    }

    [Test]
    public void FilterAndGroupSelectCases()
    {
        string cfg = Suite();
        var r = Emu("suite", "run", cfg, "--group", "g1");
        Assert.That(r.Out, Does.StartWith("FAIL"));
        Assert.That(r.Out, Does.Contain("1 cases:"));
        r = Emu("suite", "run", cfg, "--filter", "pass");
        Assert.That(r.Status, Is.Zero, r.Out);
        Assert.That(r.Out, Does.Contain("1 cases: 1 PASS"));
        Assert.That(Emu("suite", "run", cfg, "--filter", "nothing*").Status, Is.EqualTo(2));
    }

    [TestCase("--jobs", "0")]
    [TestCase("--timeout-scale", "0")]
    public void BadOptionsAreUsageErrors(string option, string value) =>
        Assert.That(Emu("suite", "run", Suite(), option, value).Status, Is.EqualTo(2));

    [Test]
    public void AMissingSuiteFileOrBadExpectedFileIsAUsageError()
    {
        Assert.That(Emu("suite", "run", Path.Combine(_dir, "none.cfg")).Status, Is.EqualTo(2));
        string bad = Write("bad.expected", Encoding.ASCII.GetBytes("pass GOOD\n"));
        var r = Emu("suite", "run", Suite(), "--expected", bad);
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("line 1"));
    }
}
