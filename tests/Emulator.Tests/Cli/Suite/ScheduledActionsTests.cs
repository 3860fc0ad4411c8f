using Emulator.Cli.Suite;
using Emulator.Svm.Run;

namespace Emulator.Tests.Cli.Suite;

/// <summary>The scheduled actions a suite may name, applied to a machine directly.</summary>
public class ScheduledActionsTests
{
    private static Action<Machine> Build(string name, params (string Key, string Value)[] args)
    {
        var factory = ScheduledActions.Find(name) ?? throw new AssertionException($"no action {name}");
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in args)
        {
            map[k] = v;
        }

        Assert.That(factory(map, out var apply, out string? error), Is.True, error);
        return apply;
    }

    /// <summary>A machine whose 8259s are initialized (vectors 0x20 and 0x28, cascade on IR2) with every line unmasked.</summary>
    private static Machine NewMachine()
    {
        var m = new Machine(new MachineOptions { MemorySize = 16UL << 20, CpuFeatures = ["-x2apic", "-svm"] });
        foreach (var (port, value) in new (ushort, uint)[]
        {
            (0x20, 0x11), (0xA0, 0x11), (0x21, 0x20), (0xA1, 0x28), (0x21, 0x04), (0xA1, 0x02), (0x21, 0x01), (0xA1, 0x01), (0x21, 0x00), (0xA1, 0x00),
        })
        {
            m.Memory.Io.Out(port, 1, value);
        }

        return m;
    }

    [Test]
    public void IrqPulsesAnIsaLineThroughThe8259()
    {
        using var m = NewMachine();
        Assert.That(m.Platform.Pic.ExtIntPending, Is.False);
        Build("irq", ("line", "3"))(m);
        Assert.That(m.Platform.Pic.ExtIntPending, Is.True, "the edge is latched in IRR");
    }

    [Test]
    public void IrqCanHoldALineHighAndLowerIt()
    {
        using var m = NewMachine();
        Build("irq", ("line", "9"), ("level", "high"))(m);
        Build("irq", ("line", "9"), ("level", "low"))(m);
        Build("irq", ("line", "9"), ("level", "high"))(m);
        Assert.That(m.Platform.Pic.ExtIntPending, Is.True, "the slave's request through the cascade");
    }

    [Test]
    public void DirtyLogTurnsLoggingOnForEveryUserMemslotAndOffAgain()
    {
        using var m = NewMachine();
        var mmu = m.Memory.Mmu!;
        Build("dirty-log", ("on", "true"))(m);
        foreach (var slot in mmu.Memslots.Current.Slots)
        {
            Assert.That(slot.LogsDirty, Is.EqualTo(!slot.IsPrivate), $"slot {slot.Id}");
        }

        Build("dirty-log", ("on", "false"))(m);
        foreach (var slot in mmu.Memslots.Current.Slots)
        {
            Assert.That(slot.LogsDirty, Is.False, $"slot {slot.Id}");
        }
    }

    [TestCase("irq", "line", "16", "needs 'line', an ISA IRQ from 0 to 15")]
    [TestCase("irq", "level", "up", "needs 'line', an ISA IRQ from 0 to 15")]
    [TestCase("dirty-log", "on", "maybe", "needs 'on': true or false")]
    public void BadArgumentsAreRefused(string name, string key, string value, string message)
    {
        var factory = ScheduledActions.Find(name)!;
        Assert.That(factory(new Dictionary<string, string> { [key] = value }, out _, out string? error), Is.False);
        Assert.That(error, Is.EqualTo(message));
    }
}
