using System.Globalization;
using System.Text;
using Emulator.Cli.Suite;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// <c>emu suite run --update-golden</c>: only the numbers of wrong golden values change, every other character of
/// the suite file stays; ranges, exit status and shared values measured differently are left alone.
/// </summary>
public sealed class GoldenUpdateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("emu-golden-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>What builtin:workload measures when it stops after <paramref name="instructions"/> instructions.</summary>
    private static ulong WorkloadCycles(ulong instructions)
    {
        var c = YamlSuite.Parse(
            $"name: m\ncases:\n  - {{name: m, guest: builtin:workload, max-instructions: {instructions}, expect: {{exit: 124}}}}\n", "m.yaml").Single();
        var r = new SuiteRunner { Jobs = 1 }.RunOne(c);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Pass), r.Reason);
        return r.Cycles!.Value;
    }

    private const string Suite = """
        # Golden values of the workload loop.
        name: golden   # the suite
        defaults:
          expect:
            counters:
              cpu.exceptions: 0
        cases:
          # Stops at the limit.
          - name: loop
            guest: builtin:workload
            max-instructions: 20_000
            expect:
              exit: 124            # the limit
              counters:
                cpu.instructions: "== {0}"   # recorded
                console.bytes: ">= 0"
                cpu.tlb.misses: 1..100000
              cycles: {{expected: {1}, tolerance: 0}}  # recorded too

        """;

    [Test]
    public void OnlyTheWrongGoldenScalarsChangeAndTheNextRunPasses()
    {
        ulong cycles = WorkloadCycles(20_000);
        string path = Write("a.yaml", string.Format(CultureInfo.InvariantCulture, Suite, "19_999", "1_200_358"));
        var r = Emu("suite", "run", path, "--update-golden");

        Assert.That(r.Status, Is.Zero, r.Out + r.Err);
        string after = File.ReadAllText(path);
        Assert.That(after, Is.EqualTo(string.Format(CultureInfo.InvariantCulture, Suite, "20_000", GoldenUpdate.Format(cycles, "1_200_358"))));
        Assert.That(r.Out, Does.Contain($"{path}:15:27: counter cpu.instructions 19999 -> 20000\n"));
        Assert.That(r.Out, Does.Contain($"{path}:18:26: cycles 1200358 -> {cycles}\n"));
        Assert.That(r.Out, Does.Contain("golden values: 2 updated in 1 file"));
        Assert.That(Directory.GetFiles(_dir, "*.tmp"), Is.Empty, "the temporary file was renamed");

        var again = Emu("suite", "run", path, "--update-golden");
        Assert.That(again.Status, Is.Zero, again.Out);
        Assert.That(again.Out, Does.Contain("golden values: nothing to update"));
        Assert.That(File.ReadAllText(path), Is.EqualTo(after));
    }

    [Test]
    public void RangesAndExitStatusAreNotGoldenAndKeepTheRunFailing()
    {
        ulong cycles = WorkloadCycles(20_000);
        string text = string.Format(CultureInfo.InvariantCulture, Suite, "20000", cycles + 5).Replace("exit: 124", "exit: 1", StringComparison.Ordinal);
        string path = Write("b.yaml", text);
        var r = Emu("suite", "run", path, "--update-golden");

        Assert.That(r.Status, Is.EqualTo(SuiteCommand.Worse), "the exit status is still wrong");
        Assert.That(File.ReadAllText(path), Is.EqualTo(text.Replace($"expected: {cycles + 5}", $"expected: {cycles}", StringComparison.Ordinal)));
        Assert.That(r.Out, Does.Contain("FAIL: loop: exit status 124, expected 1"));
    }

    [Test]
    public void ADefaultsValueCasesMeasuredDifferentlyIsLeftWithAWarning()
    {
        string text = """
            name: shared
            defaults:
              guest: builtin:workload
              expect:
                exit: 124
                counters:
                  cpu.instructions: 5      # differs per case
                  cpu.exceptions: 0x7      # wrong, the same for both
            cases:
              - {name: short, max-instructions: 1000}
              - {name: long, max-instructions: 2000}

            """;
        string path = Write("c.yaml", text);
        var r = Emu("suite", "run", path, "--update-golden");

        Assert.That(r.Out, Does.Contain(
            $"warning: {path}:7:25: counter cpu.instructions is shared by cases that measured different values (short 1000, long 2000); left at 5\n"));
        Assert.That(File.ReadAllText(path), Is.EqualTo(text.Replace("0x7 ", "0x0 ", StringComparison.Ordinal)), "only the value both measured alike changes");
        Assert.That(r.Status, Is.EqualTo(SuiteCommand.Worse), "cpu.instructions still fails both");
    }

    [Test]
    public void AUnittestsCfgSuiteHasNoGoldenValues()
    {
        string cfg = Write("unittests.cfg", "[none]\nfile = none.flat\n");
        var r = Emu("suite", "run", cfg, "--update-golden");
        Assert.That(r.Out, Does.StartWith($"{cfg}: a unittests.cfg suite records no golden values"));
        Assert.That(r.Out, Does.Contain("golden values: nothing to update"));
        Assert.That(File.ReadAllText(cfg), Is.EqualTo("[none]\nfile = none.flat\n"));
    }

    [TestCase(1234567UL, "1", "1234567")]
    [TestCase(1234567UL, "1_000", "1_234_567")]
    [TestCase(0x12345UL, "0x10", "0x12345")]
    [TestCase(0xABCDEUL, "0xFF", "0xABCDE")]
    [TestCase(0x12345UL, "0x_1", "0x1_2345")]
    public void ANewValueIsWrittenAsTheOldOneWas(ulong value, string like, string expected) =>
        Assert.That(GoldenUpdate.Format(value, like), Is.EqualTo(expected));

    [TestCase("5", true)]
    [TestCase("== 5", true)]
    [TestCase("5..5", false)]
    [TestCase("<= 0", false)]
    [TestCase(">= 1", false)]
    public void OnlyOneValueIsGolden(string text, bool golden)
    {
        Assert.That(CounterRange.TryParse(text, out var range), Is.True);
        Assert.That(GoldenUpdate.IsExact(range), Is.EqualTo(golden));
    }

    [Test]
    public void TheWrittenFileKeepsItsBytesOutsideTheScalars()
    {
        // CRLF line ends survive the rewrite.
        string path = Path.Combine(_dir, "d.yaml");
        string text = "name: d\r\ncases:\r\n  - name: x\r\n    guest: builtin:workload\r\n    max-instructions: 1000\r\n    expect: {exit: 124, counters: {cpu.instructions: 7}}\r\n";
        File.WriteAllBytes(path, Encoding.UTF8.GetBytes(text));
        var r = Emu("suite", "run", path, "--update-golden");
        Assert.That(r.Status, Is.Zero, r.Out);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(Encoding.UTF8.GetBytes(text.Replace(": 7}", ": 1000}", StringComparison.Ordinal))));
    }

    [Test]
    public void AFileWithAByteOrderMarkIsRewrittenAtTheSamePlacesAndKeepsTheMark()
    {
        ulong cycles = WorkloadCycles(20_000);
        byte[] mark = [0xEF, 0xBB, 0xBF];
        string path = Path.Combine(_dir, "bom.yaml");
        File.WriteAllBytes(path, [.. mark, .. Encoding.UTF8.GetBytes(string.Format(CultureInfo.InvariantCulture, Suite, "19_999", "1_200_358"))]);
        var r = Emu("suite", "run", path, "--update-golden");

        Assert.That(r.Status, Is.Zero, r.Out + r.Err);
        Assert.That(r.Out, Does.Contain($"{path}:15:27: counter cpu.instructions 19999 -> 20000\n"), "the same positions as without the mark");
        Assert.That(r.Out, Does.Contain($"{path}:18:26: cycles 1200358 -> {cycles}\n"));
        byte[] expected = [.. mark, .. Encoding.UTF8.GetBytes(string.Format(CultureInfo.InvariantCulture, Suite, "20_000", GoldenUpdate.Format(cycles, "1_200_358")))];
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(expected));
    }
}
