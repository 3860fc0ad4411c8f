using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Iced.Intel;

namespace Emulator.Tests.Core.Svm;

/// <summary>
/// A world-switch unit that only records #VMEXITs: the exit code, EXITINFO1/2 and the RIP of the instruction
/// that exited. Like a real exit it leaves guest mode and the guest's intercepts (so later instructions run
/// unintercepted, as under a bare CPU's empty vector), but it switches no
/// other state: the vCPU goes on after the intercepted instruction as if the hypervisor had skipped it.
/// </summary>
internal sealed class RecordingSvmUnit : SvmUnit
{
    public readonly List<(ulong Code, ulong Info1, ulong Info2, ulong Rip)> Exits = [];

    public override int Vmrun(Cpu cpu, ulong vmcbPa) => throw new NotSupportedException();

    public override int VmloadVmsave(Cpu cpu, ulong vmcbPa, bool save) => throw new NotSupportedException();

    public override int Exit(Cpu cpu, ulong exitCode, ulong exitInfo1, ulong exitInfo2)
    {
        Exits.Add((exitCode, exitInfo1, exitInfo2, cpu.Rip));
        cpu.GuestMode = false;
        cpu.Intercepts = default;
        return ExecStatus.EndBlock;
    }
}

/// <summary>Test guests that run in SVM guest mode with a recording unit and chosen intercepts.</summary>
internal static class InterceptGuest
{
    /// <summary>Where tests put the I/O and MSR permission maps (clear of the VectorCatcher IDT and handlers).</summary>
    public const ulong IopmBase = 0x400000, MsrpmBase = 0x410000;

    /// <summary>A 64-bit guest in guest mode whose intercepts are <paramref name="misc"/>, <paramref name="cr"/> and <paramref name="dr"/>.</summary>
    public static TestGuest Long64(Action<Assembler> body, out RecordingSvmUnit svm, ulong misc = 0, uint cr = 0, uint dr = 0)
    {
        var g = TestGuest.Long64(body);
        svm = new RecordingSvmUnit();
        g.Cpu.Svm = svm;
        g.Cpu.GuestMode = true;
        // The current VMCB's map addresses are host addresses: here the maps live in the test's guest RAM.
        g.Cpu.Intercepts = new InterceptVector
        {
            Misc = misc,
            Cr = cr,
            Dr = dr,
            IopmBase = HostAddress(g, IopmBase),
            MsrpmBase = HostAddress(g, MsrpmBase),
        };
        return g;
    }

    public static ulong Bit(int miscBit) => 1UL << miscBit;

    private static unsafe ulong HostAddress(TestGuest g, ulong gpa) => (ulong)g.Mem.RamPointer(gpa, 4096);
}
