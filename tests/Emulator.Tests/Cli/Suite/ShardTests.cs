using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary><c>--shard I/N</c>: every case in exactly one shard, shards balanced, independent of the files' order.</summary>
public sealed class ShardTests
{
    private static List<SuiteCase> Cases(int count, int seed)
    {
        var names = Enumerable.Range(0, count).Select(i => $"case-{i * 7919 % 1000:000}").ToList();
        var rng = new Random(seed);
        return [.. names.OrderBy(_ => rng.Next()).Select(n => new SuiteCase { Name = n, Suite = "s" })];
    }

    [Test]
    public void EveryCaseRunsInExactlyOneShard([Range(1, 7)] int n)
    {
        foreach (int count in new[] { 0, 1, 5, 23 })
        {
            var cases = Cases(count, seed: n);
            var seen = new Dictionary<SuiteCase, int>();
            var sizes = new List<int>();
            for (int i = 1; i <= n; i++)
            {
                var part = new Shard(i, n).Select(cases);
                sizes.Add(part.Count);
                foreach (var c in part)
                {
                    seen[c] = seen.GetValueOrDefault(c) + 1;
                }

                Assert.That(part, Is.EqualTo(cases.Where(part.Contains).ToList()), "a shard keeps the cases' order");
            }

            Assert.That(seen.Keys, Is.EquivalentTo(cases), $"{count} cases over {n} shards");
            Assert.That(seen.Values, Has.All.EqualTo(1));
            Assert.That(sizes.Max() - sizes.Min(), Is.LessThanOrEqualTo(1));
        }
    }

    [Test]
    public void TheSplitDoesNotDependOnTheOrderOfTheFiles()
    {
        var a = Cases(17, seed: 1);
        var b = Cases(17, seed: 2);
        Assert.That(a.Select(c => c.Name), Is.Not.EqualTo(b.Select(c => c.Name)));
        for (int i = 1; i <= 3; i++)
        {
            Assert.That(new Shard(i, 3).Select(a).Select(c => c.Name).Order(), Is.EqualTo(new Shard(i, 3).Select(b).Select(c => c.Name).Order()));
        }
    }

    [TestCase("1/1", 1, 1)]
    [TestCase("3/7", 3, 7)]
    public void ShardsParse(string text, int index, int count)
    {
        Assert.That(Shard.TryParse(text, out var s, out _), Is.True);
        Assert.That(s, Is.EqualTo(new Shard(index, count)));
        Assert.That(s.ToString(), Is.EqualTo(text));
    }

    [TestCase("0/3")]
    [TestCase("4/3")]
    [TestCase("1/0")]
    [TestCase("a/b")]
    [TestCase("1")]
    [TestCase("1/2/3")]
    [TestCase("-1/2")]
    public void BadShardsDoNotParse(string text) => Assert.That(Shard.TryParse(text, out _, out _), Is.False);
}
