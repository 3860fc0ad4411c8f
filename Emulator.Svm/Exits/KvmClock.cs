using Emulator.Core.Cpu;
using Emulator.Core.Memory;
using Emulator.Core.Timing;

namespace Emulator.Svm.Exits;

/// <summary>
/// L0's paravirtual identity and clock, as KVM presents them (Documentation/virt/kvm/x86/cpuid.rst and msr.rst;
/// facts only): the signature leaf 0x40000000 ("KVMKVMKVM"), the feature leaf 0x40000001, and kvmclock through
/// MSR_KVM_WALL_CLOCK_NEW and MSR_KVM_SYSTEM_TIME_NEW. Only what is implemented is reported: the new clock
/// MSRs (CLOCKSOURCE2) and the stable-TSC bit; the other KVM MSRs fault as KVM's do when their feature is hidden.
/// </summary>
public sealed class KvmClock
{
    public const uint MsrWallClockNew = 0x4B56_4D00, MsrSystemTimeNew = 0x4B56_4D01;

    /// <summary>CPUID 0x40000001 EAX bits: KVM_FEATURE_CLOCKSOURCE2 (3), KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (24).</summary>
    public const uint FeatureClocksource2 = 1u << 3, FeatureClocksourceStable = 1u << 24;

    /// <summary>pvclock flags: PVCLOCK_TSC_STABLE_BIT: every vCPU's clock reads the same time, no global fix-up needed.</summary>
    public const byte PvclockTscStable = 1 << 0;

    // "KVMKVMKVM\0\0\0" as EBX, ECX, EDX.
    private const uint SignatureEbx = 0x4B4D_564B, SignatureEcx = 0x564B_4D56, SignatureEdx = 0x0000_004D;

    private const ulong NsPerSecond = 1_000_000_000;

    private readonly PhysicalMemory _memory;
    private readonly IReadOnlyList<Cpu> _cpus;
    private readonly ulong[] _systemTime;
    private readonly ulong _bootSeconds;
    private ulong _wallClock;

    /// <param name="bootTime">The wall-clock time at cycle 0 (the time the RTC shows then), so kvmclock and the RTC agree.</param>
    public KvmClock(PhysicalMemory memory, IReadOnlyList<Cpu> cpus, DateTime bootTime)
    {
        _memory = memory;
        _cpus = cpus;
        _systemTime = new ulong[cpus.Count];
        _bootSeconds = (ulong)new DateTimeOffset(bootTime, TimeSpan.Zero).ToUnixTimeSeconds();
        Leaves = Cpuid;
        Msrs = Msr;
        (Multiplier, Shift) = TimeScale(GuestClock.CyclesPerSecond);
    }

    /// <summary>The CPUID hook the machine installs on each vCPU.</summary>
    public HypervisorCpuid Leaves { get; }

    /// <summary>The MSR hook the machine installs on each vCPU.</summary>
    public ParavirtMsr Msrs { get; }

    /// <summary>tsc_to_system_mul and tsc_shift for the guest TSC rate: ns = ((tsc &lt;&lt; shift) * mul) &gt;&gt; 32.</summary>
    public uint Multiplier { get; }

    public sbyte Shift { get; }

    /// <summary>
    /// The pvclock scale for <paramref name="hz"/>: a shift that brings 10^9/hz into [0.5, 1), and that
    /// fraction as a 32-bit fixed-point multiplier.
    /// </summary>
    public static (uint Multiplier, sbyte Shift) TimeScale(ulong hz)
    {
        ulong num = NsPerSecond, den = hz;
        int shift = 0;
        while (num >= den)
        {
            den <<= 1;
            shift++;
        }

        while (num * 2 < den)
        {
            num <<= 1;
            shift--;
        }

        return ((uint)((num << 32) / den), (sbyte)shift);
    }

    /// <summary>Nanoseconds of guest time after <paramref name="cycles"/> cycles.</summary>
    public static ulong Nanoseconds(ulong cycles) => (ulong)((UInt128)cycles * NsPerSecond / GuestClock.CyclesPerSecond);

    private static void Cpuid(uint leaf, out uint eax, out uint ebx, out uint ecx, out uint edx)
    {
        eax = ebx = ecx = edx = 0;
        switch (leaf)
        {
            case 0x4000_0000:
                eax = 0x4000_0001; // highest KVM leaf
                ebx = SignatureEbx;
                ecx = SignatureEcx;
                edx = SignatureEdx;
                break;
            case 0x4000_0001:
                eax = FeatureClocksource2 | FeatureClocksourceStable;
                break;
        }
    }

    private bool Msr(Cpu cpu, uint msr, bool write, ref ulong value)
    {
        int index = IndexOf(cpu);
        switch (msr)
        {
            case MsrWallClockNew when write:
                _wallClock = value;
                WriteWallClock(value);
                return true;
            case MsrWallClockNew:
                value = _wallClock;
                return true;
            case MsrSystemTimeNew when write:
                _systemTime[index] = value;
                // Bit 0 enables updates; the 32-byte structure must not cross a page (KVM ignores it then).
                if ((value & 1) != 0 && ((value & 0xFFE) + 32) <= 0x1000)
                {
                    WriteTimeInfo(cpu, value & ~1UL);
                }

                return true;
            case MsrSystemTimeNew:
                value = _systemTime[index];
                return true;
            default:
                return false;
        }
    }

    private int IndexOf(Cpu cpu)
    {
        for (int i = 0; i < _cpus.Count; i++)
        {
            if (ReferenceEquals(_cpus[i], cpu))
            {
                return i;
            }
        }

        return 0;
    }

    /// <summary>pvclock_wall_clock {u32 version, u32 sec, u32 nsec}: the wall-clock time at kvmclock zero.</summary>
    private void WriteWallClock(ulong gpa)
    {
        uint busy = BeginUpdate(gpa);
        _memory.Write(gpa + 4, 4, (uint)_bootSeconds);
        _memory.Write(gpa + 8, 4, 0);
        _memory.Write(gpa, 4, busy + 1);
    }

    /// <summary>
    /// Starts an update of a pvclock structure whose version is at <paramref name="gpa"/>: the version goes odd
    /// while L0 writes (a reader retries), and the caller stores the returned value + 1 (even) when done.
    /// </summary>
    private uint BeginUpdate(ulong gpa)
    {
        uint busy = (uint)_memory.Read(gpa, 4) + 1 | 1;
        _memory.Write(gpa, 4, busy);
        return busy;
    }

    /// <summary>
    /// pvclock_vcpu_time_info: version (odd while L0 writes), tsc_timestamp, system_time (ns), tsc_to_system_mul,
    /// tsc_shift, flags. Both times are taken from the vCPU's cycle counter at the same instant.
    /// </summary>
    private void WriteTimeInfo(Cpu cpu, ulong gpa)
    {
        uint busy = BeginUpdate(gpa);
        _memory.Write(gpa + 8, 8, cpu.Cycles + cpu.TscOffset);
        _memory.Write(gpa + 16, 8, Nanoseconds(cpu.Cycles));
        _memory.Write(gpa + 24, 4, Multiplier);
        _memory.Write(gpa + 28, 1, (byte)Shift);
        // KVM promises a stable clock only while every vCPU's TSC matches (its master clock). emu's vCPUs take
        // turns in scheduling quanta, so their counters drift apart by up to a quantum: only a lone vCPU qualifies,
        // and with several the guest keeps its own monotonic fix-up.
        _memory.Write(gpa + 29, 1, _cpus.Count == 1 ? PvclockTscStable : (byte)0);
        _memory.Write(gpa, 4, busy + 1);
    }
}
