using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Emulator.Svm.Nested;
using Emulator.Svm.Run;
using Emulator.Svm.Vmcb;
using Emulator.Tests.Core;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Svm.Nested;

/// <summary>
/// An L1 that sets EFER.SVME, VMRUNs the VMCB at <see cref="Vmcb"/> and halts, and an L2 program whose marked
/// instruction addresses the test can read back (for the SVM feature tests: LBR virtualization, pause filter).
/// </summary>
internal sealed unsafe class NestedGuest : IDisposable
{
    public const ulong Vmcb = 0x400000;
    public const ulong L2Code = 0x180000;
    public const ulong L2Stack = 0x70000;

    public TestGuest G { get; }

    /// <summary>Addresses of the L2 marks.</summary>
    public Dictionary<string, ulong> At { get; }

    public VmcbView V { get; }

    public Cpu Cpu => G.Cpu;

    /// <summary>L1's instructions before its VMRUN (run after SVME is set), e.g. to enable LBR.</summary>
    public NestedGuest(Action<Assembler, MarkedCode> l2, Action<Assembler>? l1BeforeVmrun = null)
    {
        G = TestGuest.Long64(a =>
        {
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, (int)EferBits.SVME);
            a.wrmsr();
            l1BeforeVmrun?.Invoke(a);
            a.mov(rax, Vmcb);
            a.vmrun();
            a.hlt();
        });
        G.Cpu.Features[CpuFeature.Svm] = true;
        new L0Svm(G.Mem).Attach(G.Cpu);
        VectorCatcher.Install64(G);

        var m = MarkedCode.Assemble(64, L2Code, l2);
        At = m.At;
        G.Load(m.Code, L2Code);
        V = new VmcbView(G.Mem.HostPointer(G.Mem.RamOffset(Vmcb)));
        Cpu c = G.Cpu;
        V.U32(VmcbOffset.InterceptMisc2) = (1u << (SvmIntercept.Vmrun - 32)) | (1u << (SvmIntercept.Vmmcall - 32));
        V.U32(VmcbOffset.Asid) = 1;
        V.SetGuestStateLike(c, L2Code, L2Stack);
    }

    public RunExit Run() => G.Run();

    public ulong this[int reg] => G[reg];

    public void Dispose() => G.Dispose();
}
