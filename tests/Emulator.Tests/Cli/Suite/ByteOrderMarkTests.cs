using System.Text;
using Emulator.Cli.Suite;
using static Emulator.Tests.Cli.CliRunner;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// Suite files saved as UTF-8 with a byte-order mark (as Windows editors do) read as the same text without
/// it: they run, and their errors have the positions they have without the mark.
/// </summary>
public sealed class ByteOrderMarkTests : IDisposable
{
    private static readonly byte[] s_mark = [0xEF, 0xBB, 0xBF];

    private readonly string _dir = Directory.CreateTempSubdirectory("emu-bom-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text, bool mark)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, mark ? [.. s_mark, .. Encoding.UTF8.GetBytes(text)] : Encoding.UTF8.GetBytes(text));
        return path;
    }

    [Test]
    public void ASuiteWithAByteOrderMarkRuns()
    {
        string path = Write("s.yaml", "name: s\ncases:\n  - {name: loop, guest: builtin:workload, max-instructions: 1000, expect: {exit: 124}}\n", mark: true);
        var r = Emu("suite", "run", path);
        Assert.That(r.Status, Is.Zero, r.Out + r.Err);
        Assert.That(r.Out, Does.StartWith("PASS    loop"));
    }

    [Test]
    public void AUnittestsCfgWithAByteOrderMarkReadsItsFirstSection()
    {
        string path = Write("unittests.cfg", "[first]\nfile = first.flat\n", mark: true);
        var r = Emu("suite", "run", path);
        Assert.That(r.Out, Does.StartWith("ERROR   first"), "the section name has no mark in it");
    }

    [TestCase("nme: s\ncases: []\n")]
    [TestCase("name: s\ncases:\n  - {name: a, guest: builtin:nope, expect: {exit: 0}}\n")]
    [TestCase("name: s\ncases:\n  - name: a\n    guest: builtin:workload\n    expect: {exit: 0, counters: {mmu.pf.emulat: 1}}\n")]
    [TestCase("name: [s\n")]
    public void ErrorsAreAtTheSamePlaceWithAndWithoutTheMark(string text)
    {
        string path = Write("e.yaml", text, mark: false);
        var plain = Emu("suite", "run", path);
        Write("e.yaml", text, mark: true);
        var marked = Emu("suite", "run", path);

        Assert.That(plain.Status, Is.EqualTo(2), plain.Err);
        Assert.That(plain.Err, Does.StartWith($"emu: {path}:"));
        Assert.That(marked.Err, Is.EqualTo(plain.Err));
        Assert.That(marked.Status, Is.EqualTo(plain.Status));
    }

    [Test]
    public void TextDecodedWithTheMarkParsesAsWithout()
    {
        var c = YamlSuite.Parse("\uFEFFname: s\ncases:\n  - {name: a, guest: builtin:workload, expect: {exit: 124}}\n", "s.yaml").Single();
        Assert.That(c.Suite, Is.EqualTo("s"));
        Assert.That(c.Source, Is.EqualTo("s.yaml:3:5"));
    }
}
