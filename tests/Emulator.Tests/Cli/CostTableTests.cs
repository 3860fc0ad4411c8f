using Emulator.Cli.Guests;
using Emulator.Core.Timing;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli;

/// <summary>The cycle model's table as data: <c>emu costs</c> prints it, <c>emu boot --cost-table FILE</c> reads it (PLATFORM.md "Cycle model").</summary>
public class CostTableTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "emu-costs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string Write(string text)
    {
        string path = Path.Combine(_dir, $"{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, text);
        return path;
    }

    private static ulong Cycles(Result r) =>
        ulong.Parse(Array.Find(r.ErrLines, l => l.StartsWith("cpu.cycles ", StringComparison.Ordinal))!.Split(' ')[1]);

    [Test]
    public void TheDefaultsPrintedByCostsReadBackAsTheSameTable()
    {
        var r = Emu("costs");
        Assert.That(r.Status, Is.Zero, r.Err);
        Assert.That(r.Out, Does.Contain("class.simple 1\n").And.Contain("vmexit_round_trip 1350\n").And.Contain("hypervisor_exit 2500\n"));
        Assert.That(CostTable.TryParse(r.Out, out var table, out string? error), Is.True, error);
        Assert.That(table.Format(), Is.EqualTo(CostTable.Default.Format()));
    }

    [Test]
    public void ParsedEntriesReplaceOnlyTheNamedCostsAndAcceptCommentsAndHex()
    {
        const string Text = "# doubled divide\n\nclass.divide 40   # per DIV\n  tlb_miss 0x10\r\n";
        Assert.That(CostTable.TryParse(Text, out var table, out string? error), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(table.ClassCycles(CostClass.Divide), Is.EqualTo(40));
            Assert.That(table.TlbMiss, Is.EqualTo(16));
            Assert.That(table.ClassCycles(CostClass.Simple), Is.EqualTo(CostTable.Default.ClassCycles(CostClass.Simple)));
            Assert.That(table.VmexitRoundTrip, Is.EqualTo(CostTable.Default.VmexitRoundTrip));
        });
    }

    [TestCase("class.simple", "line 1: expected 'name cycles'")]
    [TestCase("class.simple -1", "line 1: '-1' is not a number of cycles")]
    [TestCase("class.simple 1\nclass.simple 2", "line 2: 'class.simple' is given twice")]
    [TestCase("class.simple 70000", "line 1: class.simple 70000 is more than 65535 cycles")]
    [TestCase("\nclass.fancy 3", "line 2: unknown cost 'class.fancy'")]
    [TestCase("tlb_misses 3", "line 1: unknown cost 'tlb_misses'")]
    public void BadLinesAreRefusedWithTheLineNumber(string text, string expected)
    {
        Assert.That(CostTable.TryParse(text, out _, out string? error), Is.False);
        Assert.That(error, Does.StartWith(expected));
    }

    [Test]
    public void BootChargesTheCostsOfTheGivenTableAndStaysDeterministic()
    {
        var defaults = Emu("boot", "--stats");
        Assert.That(defaults.Status, Is.EqualTo(DemoGuest.SuccessStatus), defaults.Err);
        string same = Write(Emu("costs").Out);
        string dearer = Write("class.simple 2\n");
        var withSame = Emu("boot", "--stats", "--cost-table", same);
        var first = Emu("boot", "--stats", "--cost-table", dearer);
        var second = Emu("boot", "--stats", "--cost-table", dearer);
        Assert.That(Cycles(withSame), Is.EqualTo(Cycles(defaults)), "the printed defaults are the defaults");
        Assert.That(Cycles(first), Is.GreaterThan(Cycles(defaults)), "every simple instruction costs one more cycle");
        Assert.That(Cycles(second), Is.EqualTo(Cycles(first)));
        Assert.That(first.Guest, Is.EqualTo(defaults.Guest));
    }

    [Test]
    public void ABadTableIsOneUsageLineAndNoGuestRuns()
    {
        var r = Emu("boot", "--cost-table", Write("class.simple one\n"));
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.StartWith("emu: --cost-table ").And.Contain("line 1: 'one' is not a number of cycles"));
        Assert.That(r.Guest, Is.Empty);
    }

    [Test]
    public void AMissingTableFileIsOneUsageLine()
    {
        var r = Emu("boot", "--cost-table", Path.Combine(_dir, "absent.txt"));
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.ErrLines, Has.Length.EqualTo(1), r.Err);
        Assert.That(r.Err, Does.Contain("absent.txt: no such file"));
    }
}
