using System.Globalization;
using System.Text.RegularExpressions;
using Emulator.Cli.Suite;
using YamlDotNet.RepresentationModel;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// .github/workflows/suites.yml as shipped: its matrix is the shards 1..N of the N its <c>--shard</c> and its
/// report job use, so no shard is left out or run twice; and those N shards of <c>suites/</c> run every shipped
/// case exactly once.
/// </summary>
public sealed partial class SuiteWorkflowTests
{
    private static string RepositoryRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, ".github", "workflows", "suites.yml")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        Assert.That(dir, Is.Not.Null, ".github/workflows/suites.yml above the test binaries");
        return dir!;
    }

    private static YamlMappingNode Workflow(out string text)
    {
        text = File.ReadAllText(Path.Combine(RepositoryRoot(), ".github", "workflows", "suites.yml"));
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Map(YamlNode node, string key) => (YamlMappingNode)((YamlMappingNode)node).Children[new YamlScalarNode(key)];

    private static int WorkflowShardCount()
    {
        var root = Workflow(out string text);
        var shardJob = Map(Map(root, "jobs"), "shard");
        var matrix = (YamlSequenceNode)Map(Map(shardJob, "strategy"), "matrix").Children[new YamlScalarNode("shard")];
        int[] listed = [.. matrix.Children.Select(n => int.Parse(((YamlScalarNode)n).Value!, CultureInfo.InvariantCulture))];

        var runs = ((YamlSequenceNode)shardJob.Children[new YamlScalarNode("steps")]).Children
            .OfType<YamlMappingNode>()
            .Where(s => s.Children.ContainsKey(new YamlScalarNode("run")))
            .Select(s => ((YamlScalarNode)s.Children[new YamlScalarNode("run")]).Value!)
            .Select(r => ShardOption().Match(r))
            .Where(m => m.Success)
            .ToList();
        Assert.That(runs, Has.Count.EqualTo(1), "one step runs emu suite run --shard ${{ matrix.shard }}/N");
        int n = int.Parse(runs[0].Groups[1].Value, CultureInfo.InvariantCulture);

        Assert.That(listed, Is.EqualTo(Enumerable.Range(1, n).ToArray()), "the matrix lists the shards 1..N");
        var reportCount = ReportShards().Match(text);
        Assert.That(reportCount.Success, Is.True, "the report job's script sets shards = N");
        Assert.That(int.Parse(reportCount.Groups[1].Value, CultureInfo.InvariantCulture), Is.EqualTo(n), "the report job expects every shard");
        Assert.That(Map(shardJob, "strategy").Children[new YamlScalarNode("fail-fast")].ToString(), Is.EqualTo("false"), "one failing shard does not cancel the others");
        return n;
    }

    [Test]
    public void MatrixAndReportJobAgreeWithTheShardCount()
    {
        Assert.That(WorkflowShardCount(), Is.GreaterThan(1));
    }

    [Test]
    public void TheWorkflowsShardsRunEveryShippedCaseExactlyOnce()
    {
        int n = WorkflowShardCount();
        string suites = Path.Combine(RepositoryRoot(), "suites");
        var cases = SuiteCommand.SuiteFiles([suites])
            .SelectMany(f => YamlSuite.Parse(File.ReadAllText(f), f, _ => null))
            .ToList();
        Assert.That(cases, Is.Not.Empty);

        var seen = new List<SuiteCase>();
        for (int i = 1; i <= n; i++)
        {
            seen.AddRange(new Shard(i, n).Select(cases));
        }

        Assert.That(seen, Is.EquivalentTo(cases).And.Unique);
    }

    [GeneratedRegex(@"--shard \$\{\{ matrix\.shard \}\}/([0-9]+)\s")]
    private static partial Regex ShardOption();

    [GeneratedRegex(@"^\s*shards = ([0-9]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex ReportShards();
}
