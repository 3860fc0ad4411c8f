using Emulator.Core.Cpu;
using Emulator.Core.Devices;
using Emulator.Core.Svm;
using Emulator.Svm.Run;
using Emulator.Svm.Vmcb;
using Emulator.Tests.Core;
using Emulator.Tests.Svm.Nested;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Run;

/// <summary>
/// L0's side of the exits (<see cref="L0Svm"/>): L1 runs under vmcb01, whose intercepted instructions and events go
/// through L0's exit-handler table; L2 runs under the merged vmcb02, and only what vmcb12 intercepts is reflected.
/// </summary>
public sealed unsafe class L0ExitTests
{
    /// <summary>A port device that records OUTs and answers INs with a fixed value.</summary>
    private sealed class Port : IPortDevice
    {
        public readonly List<uint> Written = [];
        public int Reads;

        public uint In(ushort offset, int size)
        {
            Reads++;
            return 0xA5;
        }

        public void Out(ushort offset, int size, uint value) => Written.Add(value);
    }

    private const ushort TestPort = 0x510;

    private static TestGuest L1Guest(Action<Assembler> body, out L0Svm l0)
    {
        var g = TestGuest.Long64(a =>
        {
            body(a);
            a.hlt();
        });
        l0 = new L0Svm(g.Mem).Attach(g.Cpu);
        return g;
    }

    [Test]
    public void EveryNestedPageFaultL0HandlesForL1CountsAsAnL1NpfExit()
    {
        // The first touch of each page faults in L0's TDP; the MMU's handler is L0's #NPF handler.
        using var g = L1Guest(a =>
        {
            a.mov(rax, __qword_ptr[0x600000]);
            a.mov(__qword_ptr[0x900000], rax);
        }, out var l0);
        ulong before = g.Mem.Mmu!.Stats.Faults;
        g.Run();
        ulong faults = g.Mem.Mmu.Stats.Faults - before;
        Assert.That(faults, Is.GreaterThanOrEqualTo(2UL), "the data pages were never touched before");
        Assert.That(l0.L1Exits[SvmExit.Npf], Is.EqualTo(g.Mem.Mmu.Stats.Faults));
    }

    [Test]
    public void AnL1OutGoesThroughTheTableToTheDeviceAndCostsAnExit()
    {
        using var g = L1Guest(a => a.@out(dx, al), out var l0);
        var port = new Port();
        g.Mem.Io.Register(TestPort, 1, port);
        g.Cpu.Gpr[Reg.RDX] = TestPort;
        g.Cpu.Gpr[Reg.RAX] = 0x5A;
        g.Run();
        Assert.That(port.Written, Is.EqualTo(new[] { 0x5Au }));
        Assert.That(l0.L1Exits[SvmExit.Ioio], Is.EqualTo(1UL));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 2), "RIP moved to the exit's next RIP, then past the HLT");

        // The same program on a bare CPU: no exit, and a round trip cheaper.
        using var bare = TestGuest.Long64(a =>
        {
            a.@out(dx, al);
            a.hlt();
        });
        bare.Mem.Io.Register(TestPort, 1, new Port());
        bare.Cpu.Gpr[Reg.RDX] = TestPort;
        bare.Run();
        Assert.That(g.Cpu.Cycles - bare.Cpu.Cycles, Is.EqualTo(g.Cpu.Costs.VmexitRoundTrip + g.Cpu.Costs.VmexitRoundTrip), "the OUT's and the HLT's exits");
    }

    [Test]
    public void AnL1InFillsAlFromTheDevice()
    {
        using var g = L1Guest(a => a.@in(al, dx), out var l0);
        var port = new Port();
        g.Mem.Io.Register(TestPort, 1, port);
        g.Cpu.Gpr[Reg.RDX] = TestPort;
        g.Cpu.Gpr[Reg.RAX] = 0x1111_0000;
        g.Run();
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1111_00A5UL));
        Assert.That(l0.L1Exits[SvmExit.Ioio], Is.EqualTo(1UL));
    }

    [Test]
    public void L1CpuidAndHltExitToL0AndRunTheirOwnSemantics()
    {
        using var g = L1Guest(a => a.cpuid(), out var l0);
        g.Cpu.Gpr[Reg.RAX] = 0;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x68747541UL), "\"Auth\": CPUID ran");
        Assert.That(l0.L1Exits[SvmExit.Cpuid], Is.EqualTo(1UL));
        Assert.That(l0.L1Exits[SvmExit.Hlt], Is.EqualTo(1UL));
        Assert.That(l0.L0Exits.Nonzero(), Is.Empty);
    }

    [Test]
    public void MsrsKvmPassesThroughDoNotExitAndOthersDo()
    {
        using var g = L1Guest(
            a =>
            {
                a.mov(ecx, 0xC000_0100); // FS_BASE: passed through
                a.xor(eax, eax);
                a.xor(edx, edx);
                a.wrmsr();
                a.mov(ecx, 0x1B); // APIC_BASE: L0's
                a.rdmsr();
            },
            out var l0);
        g.Run();
        Assert.That(l0.L1Exits[SvmExit.Msr], Is.EqualTo(1UL));
    }

    [Test]
    public void AnExitWithNoHandlerIsReportedOnceAndInjectsUd()
    {
        using var g = L1Guest(_ => { }, out var l0);
        var lines = new List<string>();
        g.Cpu.Diagnostic = lines.Add;
        Assert.That(l0.Exit(g.Cpu, SvmExit.Rdtsc, 0, 0), Is.EqualTo(ExecStatus.Fault));
        Assert.That(g.Cpu.PendingVector, Is.EqualTo(Vector.UD));
        g.Cpu.PendingVector = -1;
        l0.Exit(g.Cpu, SvmExit.Rdtsc, 0, 0);
        Assert.That(lines, Has.Count.EqualTo(1));
        Assert.That(lines[0], Does.Contain("rdtsc"));
        Assert.That(l0.L1Exits[SvmExit.Rdtsc], Is.EqualTo(2UL));
    }

    [Test]
    public void Vmcb01IsAVmcbPageWithKvmsInterceptsAndAnIopmOfAllOnes()
    {
        using var vmcb = new Vmcb01();
        VmcbView v = vmcb.View;
        InterceptVector i = Vmcb01.ReadIntercepts(v);
        foreach (int bit in new[] { SvmIntercept.Intr, SvmIntercept.Nmi, SvmIntercept.Cpuid, SvmIntercept.Hlt, SvmIntercept.IoioProt, SvmIntercept.MsrProt, SvmIntercept.Shutdown, SvmIntercept.Vmrun, SvmIntercept.Vmmcall, SvmIntercept.Xsetbv })
        {
            Assert.That(i.Has(bit), $"bit {bit}");
        }

        Assert.That(i.Has(SvmIntercept.Rdtsc), Is.False);
        Assert.That(i.Exceptions & (1u << Vector.UD), Is.Not.Zero);
        Assert.That(i.Exceptions & (1u << Vector.PF), Is.Zero, "nested paging: #PF is the guest's");
        var reader = default(HostMemoryReader);
        Assert.That(PermissionMaps.IoIntercepted(ref reader, i.IopmBase, 0xFFFF, 4), Is.True);
        Assert.That(PermissionMaps.MsrIntercepted(ref reader, i.MsrpmBase, 0xC000_0101, write: true), Is.False, "GS_BASE");
        Assert.That(PermissionMaps.MsrIntercepted(ref reader, i.MsrpmBase, 0xC000_0080, write: true), Is.True, "EFER");
    }

    [Test]
    public void AnL2InOnAPortL1PassesThroughReachesTheDeviceThroughL0AndIsNotReflected()
    {
        using var g = NestedSvmTests.L1();
        VmcbView v = NestedSvmTests.Prepare(g, a =>
        {
            a.mov(edx, TestPort);
            a.@in(al, dx);
            a.vmmcall();
        });
        var port = new Port();
        g.Mem.Io.Register(TestPort, 1, port);
        // vmcb12 intercepts IOIO with an IOPM (all zero) that lets every port through.
        v.U32(VmcbOffset.InterceptMisc1) = 1u << SvmIntercept.IoioProt;
        v.U64(VmcbOffset.IopmBasePa) = NestedSvmTests.Vmcb + 0x10000;
        var l0 = new L0Svm(g.Mem).Attach(g.Cpu);
        g.Run();
        Assert.That(port.Reads, Is.EqualTo(1));
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Vmmcall), "the first exit L1 sees is the VMMCALL");
        Assert.That(v.U64(VmcbOffset.Rax) & 0xFF, Is.EqualTo(0xA5UL));
        Assert.That(l0.L0Exits[SvmExit.Ioio], Is.EqualTo(1UL));
        Assert.That(l0.Nested.Stats.Reflected, Is.EqualTo(1UL));
    }

    [Test]
    public void AnL2InOnAPortL1InterceptsIsReflected()
    {
        using var g = NestedSvmTests.L1();
        VmcbView v = NestedSvmTests.Prepare(g, a =>
        {
            a.mov(edx, TestPort);
            a.@in(al, dx);
            a.vmmcall();
        });
        var port = new Port();
        g.Mem.Io.Register(TestPort, 1, port);
        v.U32(VmcbOffset.InterceptMisc1) = 1u << SvmIntercept.IoioProt;
        ulong iopm = NestedSvmTests.Vmcb + 0x10000;
        v.U64(VmcbOffset.IopmBasePa) = iopm;
        g.Mem.Write(iopm + (TestPort >> 3), 1, 1UL << (TestPort & 7));
        var l0 = new L0Svm(g.Mem).Attach(g.Cpu);
        g.Run();
        Assert.That(port.Reads, Is.Zero);
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Ioio));
        Assert.That(l0.L0Exits[SvmExit.Ioio], Is.Zero);
    }

    [Test]
    public void AnL2HltThatL1DoesNotInterceptHaltsTheVcpuWithoutAReflectedExit()
    {
        using var g = NestedSvmTests.L1();
        NestedSvmTests.Prepare(g, a => a.hlt());
        var l0 = new L0Svm(g.Mem).Attach(g.Cpu);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.GuestMode, Is.True, "still in L2");
        Assert.That(g.Cpu.Halted, Is.True);
        Assert.That(l0.L0Exits[SvmExit.Hlt], Is.EqualTo(1UL));
        Assert.That(l0.Nested.Stats.Reflected, Is.Zero);
    }

    [Test]
    public void Vmcb02MergesTheInterceptsButLeavesVmmcallToL1()
    {
        using var g = NestedSvmTests.L1();
        VmcbView v = NestedSvmTests.Prepare(g, a => a.hlt());
        v.U32(VmcbOffset.InterceptMisc2) = 1u << (SvmIntercept.Vmrun - 32);
        v.U32(VmcbOffset.InterceptMisc1) = 1u << SvmIntercept.Rdtsc;
        new L0Svm(g.Mem).Attach(g.Cpu);
        g.Run();
        Assert.That(g.Cpu.GuestMode, Is.True);
        InterceptVector i = g.Cpu.Intercepts;
        Assert.That(i.Has(SvmIntercept.Rdtsc), "vmcb12's");
        Assert.That(i.Has(SvmIntercept.Cpuid), "vmcb01's");
        Assert.That(i.Has(SvmIntercept.Vmmcall), Is.False, "only vmcb12 can ask for VMMCALL");
    }

    [Test]
    public void AReflectedExitPutsVmcb01sInterceptsBack()
    {
        using var g = NestedSvmTests.L1();
        NestedSvmTests.Prepare(g, a => a.vmmcall());
        var l0 = new L0Svm(g.Mem).Attach(g.Cpu);
        g.Run();
        Assert.That(g.Cpu.GuestMode, Is.False);
        Assert.That(g.Cpu.Intercepts.Misc, Is.EqualTo(l0.Vmcb01.Intercepts.Misc));
        Assert.That(g.Cpu.Intercepts.MsrpmBase, Is.EqualTo(l0.Vmcb01.Intercepts.MsrpmBase));
    }

    [Test]
    public void L2sPassThroughMsrIsInterceptedWhenL1sMapInterceptsIt()
    {
        using var g = NestedSvmTests.L1();
        VmcbView v = NestedSvmTests.Prepare(g, a =>
        {
            a.mov(ecx, 0xC000_0100); // FS_BASE
            a.rdmsr();
            a.vmmcall();
        });
        ulong msrpm = NestedSvmTests.Vmcb + 0x10000;
        v.U32(VmcbOffset.InterceptMisc1) = 1u << SvmIntercept.MsrProt;
        v.U64(VmcbOffset.MsrpmBasePa) = msrpm;
        g.Mem.Write(msrpm + 0x800 + (0x100 * 2 / 8), 1, 1); // read bit of 0xC0000100
        new L0Svm(g.Mem).Attach(g.Cpu);
        g.Run();
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Msr));
        Assert.That(v.U64(VmcbOffset.ExitInfo1), Is.EqualTo(0UL), "RDMSR");
    }
}
