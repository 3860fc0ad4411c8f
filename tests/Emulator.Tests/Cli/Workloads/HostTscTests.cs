using Emulator.Cli.Workloads;

namespace Emulator.Tests.Cli.Workloads;

public class HostTscTests
{
    [Test]
    public void TheTscIsReadOnLinuxX64AndAdvances()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64)
        {
            Assert.That(HostTsc.Available, Is.False);
            Assert.That(HostTsc.Unavailable, Does.Contain("Linux x86-64"));
            return;
        }

        Assert.That(HostTsc.Available, Is.True, HostTsc.Unavailable);
        ulong before = HostTsc.Read();
        Thread.Sleep(2);
        Assert.That(HostTsc.Read(), Is.GreaterThan(before));
    }
}
