using Emulator.Cli.Suite;
using Emulator.Cli.Workloads;

namespace Emulator.Tests.Cli.Workloads;

/// <summary><c>builtin:mix</c> in a suite: the compiled workload prints the reference checksum and ends by isa-debug-exit.</summary>
public class BuiltinMixTests
{
    [Test]
    public void BuiltinMixPassesWithTheReferenceChecksum()
    {
        if (!CompiledWorkload.Mix.IsBuilt)
        {
            Assert.Ignore(CompiledWorkload.Mix.NotBuiltMessage);
        }

        string yaml = $$"""
            name: s
            cases:
              - name: mix
                guest: builtin:mix
                memory: 16M
                expect:
                  exit: 1
                  console: ["checksum: 0x{{CompiledWorkload.Mix.ExpectedChecksum(CompiledWorkload.BuiltinRounds):x16}}"]
                  counters: {cpu.unimplemented_codes: 0, cpu.exceptions: 0}
            """;
        var c = YamlSuite.Parse(yaml, Path.Combine(Path.GetTempPath(), "mix.yaml")).Single();
        var r = new SuiteRunner { Jobs = 1 }.RunOne(c);
        Assert.That(r.Outcome, Is.EqualTo(CaseOutcome.Pass), r.Reason);
    }
}
