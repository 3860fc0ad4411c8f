using System.Text;
using Emulator.Cli.Suite;

namespace Emulator.Tests.Cli.Suite;

/// <summary>
/// <c>${NAME}</c> in a YAML suite's guest and initrd paths: replaced by the environment variable, a case whose
/// variable is unset is skipped with the variable's name, and a malformed reference is a file:line:column error.
/// </summary>
public sealed class YamlSuiteVariablesTests
{
    private const string File = "/suites/kut.yaml";

    private static readonly Dictionary<string, string> s_env = new(StringComparer.Ordinal)
    {
        ["KVM_UNIT_TESTS_DIR"] = "/images/x86",
        ["RD"] = "initrds",
        ["EMPTY"] = "",
    };

    private static List<SuiteCase> Parse(string text) => YamlSuite.Parse(text, File, name => s_env.GetValueOrDefault(name));

    private static string Case(string keys) =>
        $"name: s\ncases:\n  - name: a\n{keys}    expect: {{kvm-unit-tests: PASS}}\n";

    [Test]
    public void AVariableInTheGuestPathIsReplacedByItsValue()
    {
        var c = Parse(Case("    guest: ${KVM_UNIT_TESTS_DIR}/apic.flat\n")).Single();
        Assert.That(c.ImagePath, Is.EqualTo("/images/x86/apic.flat"), "an absolute result is not put under the suite's folder");
        Assert.That(c.File, Is.EqualTo("${KVM_UNIT_TESTS_DIR}/apic.flat"), "reports show the path as the suite writes it");
        Assert.That(c.SkipReason, Is.Null);
    }

    [Test]
    public void VariablesInTheInitrdAndSeveralInOnePathAreReplacedAndARelativeResultIsUnderTheSuitesFolder()
    {
        var c = Parse(Case("    guest: k/${RD}-${RD}.flat\n    initrd: ${RD}/one.img\n")).Single();
        Assert.That(c.ImagePath, Is.EqualTo(Path.Combine("/suites", "k/initrds-initrds.flat")));
        Assert.That(c.InitrdPath, Is.EqualTo(Path.Combine("/suites", "initrds/one.img")));
    }

    [TestCase("guest: $HOME/a.flat", "$HOME/a.flat")]
    [TestCase("guest: a$.flat", "a$.flat")]
    [TestCase("guest: '{x}.flat'", "{x}.flat")]
    public void ADollarNotFollowedByABraceIsKeptAsItIs(string guest, string path) =>
        Assert.That(Parse(Case($"    {guest}\n")).Single().ImagePath, Is.EqualTo(Path.Combine("/suites", path)));

    [TestCase("guest: ${KVM_UNIT_TESTS_DIR}/apic.flat\n    initrd: ${NOPE}/x", "NOPE is not set")]
    [TestCase("guest: ${NOPE}/apic.flat", "NOPE is not set")]
    [TestCase("guest: ${EMPTY}/apic.flat", "EMPTY is not set")]
    [TestCase("guest: ${NOPE}/${OTHER}/apic.flat", "NOPE is not set")]
    public void ACaseWhoseVariableIsUnsetIsSkippedNotAnError(string keys, string reason) =>
        Assert.That(Parse(Case($"    {keys}\n")).Single().SkipReason, Is.EqualTo(reason));

    [Test]
    public void AnExplicitSkipReasonWinsOverAnUnsetVariable() =>
        Assert.That(Parse(Case("    guest: ${NOPE}/a.flat\n    skip: broken\n")).Single().SkipReason, Is.EqualTo("broken"));

    [Test]
    public void TheProcessEnvironmentIsUsedWhenNoneIsGiven()
    {
        const string name = "EMU_TEST_SUITE_IMAGES_7F3A";
        Environment.SetEnvironmentVariable(name, "/from/env");
        try
        {
            var c = YamlSuite.Parse(Case($"    guest: ${{{name}}}/a.flat\n"), File).Single();
            Assert.That(c.ImagePath, Is.EqualTo("/from/env/a.flat"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }

    [TestCase("guest: k/${KVM_UNIT_TESTS_DIR/apic.flat", 4, 14, "'k/${KVM_UNIT_TESTS_DIR/apic.flat': unterminated '${'")]
    [TestCase("guest: '${KVM_UNIT_TESTS_DIR'", 4, 13, "'${KVM_UNIT_TESTS_DIR': unterminated '${'")]
    [TestCase("guest: \"a/${\"", 4, 15, "'a/${': unterminated '${'")]
    [TestCase("guest: a.flat\n    initrd: x${", 5, 14, "'x${': unterminated '${'")]
    [TestCase("guest: ${}/a.flat", 4, 12, "'${}/a.flat': '${}' is not a variable name")]
    [TestCase("guest: ${1X}/a.flat", 4, 12, "'${1X}/a.flat': '${1X}' is not a variable name")]
    [TestCase("guest: ${A-B}/a.flat", 4, 12, "'${A-B}/a.flat': '${A-B}' is not a variable name")]
    public void AMalformedReferenceIsAnErrorAtItsPlace(string keys, int line, int column, string message)
    {
        var e = Assert.Throws<SuiteFileException>(() => Parse(Case($"    {keys}\n")))!;
        Assert.That(e.What, Does.StartWith(message));
        Assert.That((e.Line, e.Column), Is.EqualTo(((long)line, (long)column)), e.Message);
        Assert.That(e.Message, Does.StartWith($"{File}:{line}:{column}: "));
    }

    [Test]
    public void TheRunnerReportsAnUnsetVariableAsASkipWithoutLookingForTheImage()
    {
        var c = Parse(Case("    guest: ${NOPE}/apic.flat\n")).Single();
        var r = new SuiteRunner { Jobs = 1 }.RunOne(c);
        Assert.That((r.Outcome, r.Reason), Is.EqualTo((CaseOutcome.Skip, "NOPE is not set")));
    }
}
