using Emulator.Core.Cpu;
using Emulator.Core.Devices.Legacy;
using Emulator.Core.Loaders;
using Emulator.Svm.Exits;
using Emulator.Svm.Run;
using Emulator.Tests.Core.Devices.Apic;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Exits;

/// <summary>L0's KVM identity (CPUID 0x40000000/1) and kvmclock MSRs, as a KVM guest sees them.</summary>
public sealed class KvmClockTests
{
    private const ulong TimeInfo = Data + 0x100, Wall = Data + 0x200;

    private MemoryStream _console = null!;

    [SetUp]
    public void SetUp() => _console = new MemoryStream();

    [TearDown]
    public void TearDown() => _console.Dispose();

    private static ulong Q(Machine m, ulong at, int size = 8) => m.Memory.Read(at, size);

    private Machine Run(byte[] image, int cpus = 1)
    {
        var m = new Machine(new MachineOptions { MemorySize = 64 << 20, Cpus = cpus, ConsoleOutput = _console });
        m.Load(image, new BootOptions { Format = ImageFormat.Flat, LoadAddress = ApicGuest.Code, Mode = EntryMode.Long });
        var r = m.Run(new RunLimits { MaxCycles = 50_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        return m;
    }

    [Test]
    public void CpuidReportsTheHypervisorBitTheKvmSignatureAndClocksource2()
    {
        var m = Run(Assemble(
            a =>
            {
                a.mov(eax, 1);
                a.cpuid();
                a.mov(__dword_ptr[Data], ecx);
                a.mov(eax, 0x4000_0000);
                a.cpuid();
                a.mov(__dword_ptr[Data + 4], eax);
                a.mov(__dword_ptr[Data + 8], ebx);
                a.mov(__dword_ptr[Data + 12], ecx);
                a.mov(__dword_ptr[Data + 16], edx);
                a.mov(eax, 0x4000_0001);
                a.cpuid();
                a.mov(__dword_ptr[Data + 20], eax);
                Exit(a, 0);
            },
            out _));
        Assert.That(Q(m, Data, 4) >> 31, Is.EqualTo(1), "CPUID.1:ECX.hypervisor");
        Assert.That(Q(m, Data + 4, 4), Is.EqualTo(0x4000_0001));
        var sig = new byte[12];
        m.Memory.ReadBytes(Data + 8, sig);
        Assert.That(System.Text.Encoding.ASCII.GetString(sig), Is.EqualTo("KVMKVMKVM\0\0\0"));
        Assert.That(Q(m, Data + 20, 4) & KvmClock.FeatureClocksource2, Is.Not.Zero);
    }

    [Test]
    public void SystemTimeMsrPublishesAConsistentTimeInfo()
    {
        var m = Run(Assemble(
            a =>
            {
                a.mov(ecx, KvmClock.MsrSystemTimeNew);
                a.mov(eax, (uint)TimeInfo | 1);
                a.xor(edx, edx);
                a.wrmsr();
                a.rdmsr();
                a.mov(__dword_ptr[Data], eax);
                a.mov(ecx, KvmClock.MsrWallClockNew);
                a.mov(eax, (uint)Wall);
                a.wrmsr();
                Exit(a, 0);
            },
            out _));
        Assert.That(Q(m, Data, 4), Is.EqualTo(TimeInfo | 1), "RDMSR returns the value written");
        Assert.That(Q(m, TimeInfo, 4), Is.EqualTo(2), "version: even once written");
        ulong tsc = Q(m, TimeInfo + 8), ns = Q(m, TimeInfo + 16);
        Assert.That(tsc, Is.Not.Zero);
        Assert.That(ns, Is.EqualTo(KvmClock.Nanoseconds(tsc)), "TSC offset 0: system_time is the TSC in ns");
        var (mul, shift) = ((uint)Q(m, TimeInfo + 24, 4), (sbyte)Q(m, TimeInfo + 28, 1));
        ulong oneSecond = (ulong)(((UInt128)(shift >= 0 ? 2_000_000_000UL << shift : 2_000_000_000UL >> -shift) * mul) >> 32);
        Assert.That(oneSecond, Is.EqualTo(1_000_000_000), "2 GHz TSC scales to ns");
        Assert.That(Q(m, TimeInfo + 29, 1), Is.EqualTo(KvmClock.PvclockTscStable), "one vCPU: stable");
        Assert.That(Q(m, Wall, 4), Is.EqualTo(2));
        Assert.That(Q(m, Wall + 4, 4), Is.EqualTo((ulong)new DateTimeOffset(Rtc.DefaultEpoch, TimeSpan.Zero).ToUnixTimeSeconds()));
    }

    [Test]
    public void OtherKvmMsrsFault()
    {
        using var m = new Machine(new MachineOptions { MemorySize = 64 << 20 });
        var cpu = m.Cpu;
        Assert.That(cpu.ReadMsr(0x4B56_4D02, out _), Is.False, "async PF is not reported");
        Assert.That(cpu.ReadMsr(KvmClock.MsrSystemTimeNew, out _), Is.True);
    }

    [TestCase(2_000_000_000UL)]
    [TestCase(1_000_000_000UL)]
    [TestCase(3_000_000_000UL)]
    [TestCase(100_000_000UL)]
    public void TimeScaleConvertsOneSecond(ulong hz)
    {
        var (mul, shift) = KvmClock.TimeScale(hz);
        ulong scaled = shift >= 0 ? hz << shift : hz >> -shift;
        ulong ns = (ulong)(((UInt128)scaled * mul) >> 32);
        Assert.That(ns, Is.InRange(999_999_990UL, 1_000_000_000UL));
    }
}
