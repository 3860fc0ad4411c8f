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
/// L1 runs an L2 with VMRUN through L0's nested SVM: state in and out of vmcb12, exit information, the
/// consistency checks, VMLOAD/VMSAVE. The L1 program is assembled with Iced; the VMCB is filled from the test.
/// </summary>
public sealed unsafe class NestedSvmTests
{
    internal const ulong Vmcb = 0x400000;
    private const ulong L2Code = 0x180000;
    private const ulong L2Stack = 0x70000;

    /// <summary>L1: set EFER.SVME, VMRUN the VMCB at <see cref="Vmcb"/>, then HLT.</summary>
    internal static TestGuest L1()
    {
        var g = TestGuest.Long64(a =>
        {
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, (int)EferBits.SVME);
            a.wrmsr();
            a.mov(rax, Vmcb);
            a.vmrun();
            a.hlt();
        });
        g.Cpu.Features[CpuFeature.Svm] = true;
        new L0Svm(g.Mem).Attach(g.Cpu);
        return g;
    }

    internal static VmcbView View(TestGuest g) => new(g.Mem.HostPointer(g.Mem.RamOffset(Vmcb)));

    /// <summary>A VMCB that runs <paramref name="l2"/> in L1's own long mode, intercepting VMRUN and VMMCALL.</summary>
    internal static VmcbView Prepare(TestGuest g, Action<Assembler> l2)
    {
        g.Load(TestGuest.Assemble(64, l2, L2Code), L2Code);
        VmcbView v = View(g);
        Cpu c = g.Cpu;
        v.U64(VmcbOffset.InterceptMisc1) = 0;
        v.U32(VmcbOffset.InterceptMisc2) = (1u << (SvmIntercept.Vmrun - 32)) | (1u << (SvmIntercept.Vmmcall - 32));
        v.U32(VmcbOffset.Asid) = 1;
        v.SetGuestStateLike(c, L2Code, L2Stack);
        v.U64(VmcbOffset.Rax) = 0x1234;
        return v;
    }

    [Test]
    public void VmmcallInL2ExitsToL1WithTheGuestStateInVmcb12()
    {
        using var g = L1();
        VmcbView v = Prepare(g, a =>
        {
            a.mov(ebx, 42);
            a.inc(rax); // 48 FF C0: VMMCALL at +8
            a.vmmcall();
            a.hlt();
        });

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Cpu c = g.Cpu;
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That(g[Reg.RBX], Is.EqualTo(42UL), "GPRs other than RAX/RSP are shared by L1 and L2");
        Assert.That(v.U64(VmcbOffset.Rax), Is.EqualTo(0x1235UL), "L2's RAX saved in vmcb12");
        Assert.That(g[Reg.RAX], Is.EqualTo(Vmcb), "L1's RAX restored");
        Assert.That(v.U64(VmcbOffset.Rip), Is.EqualTo(L2Code + 8), "RIP of the intercepted VMMCALL");
        Assert.That(v.U64(VmcbOffset.NextRip), Is.EqualTo(L2Code + 11), "nRIP after it");
        Assert.That(c.GuestMode, Is.False);
        Assert.That(c.Gif, Is.False, "#VMEXIT clears GIF");
        // L1: mov ecx (5), rdmsr (2), or eax (5), wrmsr (2), mov rax imm64 (10), vmrun (3), hlt (1).
        Assert.That(c.Rip, Is.EqualTo(TestGuest.CodeBase + 28), "L1 resumes after VMRUN and halts at the next instruction");
        Assert.That(((L0Svm)c.Svm!).Nested.Stats.Reflected, Is.EqualTo(1UL));
    }

    [Test]
    public void InterceptedExceptionExitsWithItsCodeAndErrorCodeInsteadOfBeingDelivered()
    {
        using var g = L1();
        VmcbView v = Prepare(g, a =>
        {
            a.ud2();
            a.vmmcall();
        });
        v.U32(VmcbOffset.InterceptExceptions) = 1u << Vector.UD;

        g.Run();
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Exception0 + (ulong)Vector.UD));
        Assert.That(v.U64(VmcbOffset.Rip), Is.EqualTo(L2Code), "a fault exits with RIP at the faulting instruction");
    }

    [Test]
    public void InterceptedPageFaultReportsTheAddressInExitInfo2AndLeavesCr2()
    {
        using var g = L1();
        VmcbView v = Prepare(g, a =>
        {
            a.mov(rax, 0x7FFF_0000_0000UL);
            a.mov(rbx, __qword_ptr[rax]);
            a.vmmcall();
        });
        v.U32(VmcbOffset.InterceptExceptions) = 1u << Vector.PF;
        v.U64(VmcbOffset.Cr2) = 0x1111;

        g.Run();
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Exception0 + (ulong)Vector.PF));
        Assert.That(v.U64(VmcbOffset.ExitInfo2), Is.EqualTo(0x7FFF_0000_0000UL));
        Assert.That(v.U64(VmcbOffset.ExitInfo1) & 1, Is.EqualTo(0UL), "not-present #PF error code");
        Assert.That(v.U64(VmcbOffset.Cr2), Is.EqualTo(0x1111UL), "CR2 is not written for an intercepted #PF");
    }

    [Test]
    public void VmrunWithAsidZeroFailsWithVmexitInvalidAndRunsNoGuestCode()
    {
        using var g = L1();
        VmcbView v = Prepare(g, a =>
        {
            a.mov(ebx, 42);
            a.vmmcall();
        });
        v.U32(VmcbOffset.Asid) = 0;

        g.Run();
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Invalid));
        Assert.That(g[Reg.RBX], Is.Not.EqualTo(42UL));
        Assert.That(g.Cpu.GuestMode, Is.False);
    }

    [TestCase(VmcbOffset.Efer, 0UL, TestName = "SvmeClearInGuestEfer")]
    [TestCase(VmcbOffset.Cr0, 0x2000_0000UL, TestName = "NwWithoutCd")]
    [TestCase(VmcbOffset.Dr7, 0x1_0000_0400UL, TestName = "Dr7HighBits")]
    [TestCase(VmcbOffset.InterceptMisc2, 0UL, TestName = "NoVmrunIntercept")]
    public void ConsistencyCheckFailure(int offset, ulong value)
    {
        using var g = L1();
        VmcbView v = Prepare(g, a => a.vmmcall());
        if (offset == VmcbOffset.Cr0)
        {
            v.U64(offset) |= value;
        }
        else if (offset == VmcbOffset.InterceptMisc2)
        {
            v.U32(offset) = (uint)value;
        }
        else if (offset == VmcbOffset.Efer)
        {
            v.U64(offset) &= ~EferBits.SVME;
        }
        else
        {
            v.U64(offset) = value;
        }

        g.Run();
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Invalid));
    }

    [Test]
    public void VmrunWithoutSvmeRaisesUd()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, Vmcb);
            a.vmrun();
            a.hlt();
        });
        g.Cpu.Features[CpuFeature.Svm] = true;
        new L0Svm(g.Mem).Attach(g.Cpu);
        VectorCatcher.Install64(g);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void VmsaveThenVmloadMovesFsGsAndTheSyscallMsrs()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(ecx, 0xC000_0080);
            a.rdmsr();
            a.or(eax, (int)EferBits.SVME);
            a.wrmsr();
            a.mov(rax, Vmcb);
            a.vmsave();
            a.mov(ecx, 0xC000_0082); // LSTAR
            a.xor(eax, eax);
            a.xor(edx, edx);
            a.wrmsr();
            a.mov(rax, Vmcb);
            a.vmload();
            a.hlt();
        });
        g.Cpu.Features[CpuFeature.Svm] = true;
        new L0Svm(g.Mem).Attach(g.Cpu);
        g.Cpu.Lstar = 0xFFFF_8000_1234_5000;
        g.Run();
        Assert.That(View(g).U64(VmcbOffset.Lstar), Is.EqualTo(0xFFFF_8000_1234_5000UL));
        Assert.That(g.Cpu.Lstar, Is.EqualTo(0xFFFF_8000_1234_5000UL), "VMLOAD brought it back");
    }

    [TestCase(0u, true)]
    [TestCase(EventInj.Valid | (EventInj.TypeException << 8) | 14u, true)]
    [TestCase(EventInj.Valid | (EventInj.TypeException << 8) | 2u, false)]
    [TestCase(EventInj.Valid | (EventInj.TypeException << 8) | 32u, false)]
    [TestCase(EventInj.Valid | (1u << 8) | 32u, false)]
    [TestCase(EventInj.Valid | (EventInj.TypeSoftInt << 8) | 0x80u, true)]
    [TestCase(EventInj.Valid | 0x1000u | 0x20u, false)]
    public void EventInjectionValidity(uint inj, bool valid) => Assert.That(VmrunChecks.EventInjectionValid(inj), Is.EqualTo(valid));

    [TestCase(0x0007_0406_0007_0406UL, true)]
    [TestCase(0x0007_0406_0007_0402UL, false)]
    [TestCase(0x0807_0406_0007_0406UL, false)]
    public void GuestPatValidity(ulong pat, bool valid) => Assert.That(VmrunChecks.PatValid(pat), Is.EqualTo(valid));

    /// <summary>
    /// VGIF (APM vol. 2 §15.33): with V_GIF_ENABLE, L2's STGI/CLGI (not intercepted) write V_GIF, which the #VMEXIT
    /// writes back to vmcb12's int_ctl; without it they act on GIF and int_ctl's V_GIF bit is left as L1 wrote it.
    /// </summary>
    [TestCase(true, true, false)]
    [TestCase(true, false, true)]
    [TestCase(false, true, true)]
    public void StgiClgiInL2UnderVgifWriteVGif(bool vgifEnable, bool clgi, bool expectVGif)
    {
        using var g = L1();
        VmcbView v = Prepare(g, a =>
        {
            if (clgi)
            {
                a.clgi();
            }
            else
            {
                a.stgi();
            }

            a.vmmcall();
            a.hlt();
        });
        v.U32(VmcbOffset.IntCtl) = (vgifEnable ? IntCtl.VGifEnable : 0) | (clgi ? IntCtl.VGif : 0);
        g.Run();
        Assert.That(v.U64(VmcbOffset.ExitCode), Is.EqualTo(SvmExit.Vmmcall));
        Assert.That((v.U32(VmcbOffset.IntCtl) & IntCtl.VGif) != 0, Is.EqualTo(expectVGif));
    }

    [Test]
    public void SegmentAttributesPackAsTheVmcbDoes()
    {
        byte* page = stackalloc byte[4096];
        var v = new VmcbView(page);
        var cs = new SegmentCache { Selector = 8, Base = 0, Limit = 0xFFFF_FFFF, Attr = 0xA09B };
        v.SetSegment(VmcbOffset.Cs, cs);
        Assert.That(v.U16(VmcbOffset.Cs + 2), Is.EqualTo((ushort)0xA9B), "descriptor bits 55:52 in attrib 11:8");
        Assert.That(v.GetSegment(VmcbOffset.Cs).Attr, Is.EqualTo((ushort)0xA09B));
    }
}
