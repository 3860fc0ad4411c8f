using Emulator.Core.Cpu;
using Emulator.Core.Svm;
using Iced.Intel;
using NUnit.Framework;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Svm;

/// <summary>The misc instruction intercepts (APM vol. 2 §15.9): each handler's gate, its exit code and its place among the checks.</summary>
[TestFixture]
public class InstructionInterceptTests
{
    public static IEnumerable<TestCaseData> Cases()
    {
        TestCaseData Case(string name, int bit, Action<Assembler> insn) => new TestCaseData(bit, insn).SetName("Intercepted_" + name);
        yield return Case("cpuid", SvmIntercept.Cpuid, a => a.cpuid());
        yield return Case("hlt", SvmIntercept.Hlt, a => a.hlt());
        yield return Case("rdtsc", SvmIntercept.Rdtsc, a => a.rdtsc());
        yield return Case("rdtscp", SvmIntercept.Rdtscp, a => a.rdtscp());
        yield return Case("rdpmc", SvmIntercept.Rdpmc, a => a.rdpmc());
        yield return Case("invd", SvmIntercept.Invd, a => a.invd());
        yield return Case("wbinvd", SvmIntercept.Wbinvd, a => a.wbinvd());
        yield return Case("invlpg", SvmIntercept.Invlpg, a => a.invlpg(__[rax]));
        yield return Case("pause", SvmIntercept.Pause, a => a.pause());
        yield return Case("icebp", SvmIntercept.Icebp, a => a.int1());
        yield return Case("intn", SvmIntercept.Swint, a => a.@int(0x80));
        yield return Case("iret", SvmIntercept.Iret, a => a.iretq());
        yield return Case("pushf", SvmIntercept.Pushf, a => a.pushfq());
        yield return Case("popf", SvmIntercept.Popf, a => a.popfq());
        yield return Case("rsm", SvmIntercept.Rsm, a => a.rsm());
        yield return Case("xsetbv", SvmIntercept.Xsetbv, a => a.xsetbv());
        yield return Case("sidt", SvmIntercept.IdtrRead, a => a.sidt(__[rax]));
        yield return Case("sgdt", SvmIntercept.GdtrRead, a => a.sgdt(__[rax]));
        yield return Case("sldt", SvmIntercept.LdtrRead, a => a.sldt(ax));
        yield return Case("str", SvmIntercept.TrRead, a => a.str(ax));
        yield return Case("lidt", SvmIntercept.IdtrWrite, a => a.lidt(__[rax]));
        yield return Case("lgdt", SvmIntercept.GdtrWrite, a => a.lgdt(__[rax]));
        yield return Case("lldt", SvmIntercept.LdtrWrite, a => a.lldt(ax));
        yield return Case("ltr", SvmIntercept.TrWrite, a => a.ltr(ax));
    }

    private static TestGuest Guest(Action<Assembler> insn, ulong misc, out RecordingSvmUnit svm)
    {
        var g = InterceptGuest.Long64(
            a =>
            {
                insn(a);
                a.hlt();
            },
            out svm,
            misc);
        VectorCatcher.Install64(g);
        // Operands whose own checks come after the intercept: a bad RDPMC counter and a bad XCR number.
        g.Cpu.Gpr[Reg.RCX] = 99;
        g.Cpu.Gpr[Reg.RAX] = TestGuest.DataBase;
        g.Cpu.Cr4 |= Cr4Bits.OSXSAVE;
        return g;
    }

    [TestCaseSource(nameof(Cases))]
    public void TheInstructionExitsWithItsCodeOnlyWhenItsBitIsSet(int bit, Action<Assembler> insn)
    {
        using (var g = Guest(insn, InterceptGuest.Bit(bit), out var svm))
        {
            g.Run(1000);
            Assert.That(svm.Exits, Has.Count.EqualTo(1));
            Assert.That(svm.Exits[0].Code, Is.EqualTo(SvmIntercept.ExitCode(bit)));
            Assert.That(svm.Exits[0].Info1, Is.Zero);
            Assert.That(svm.Exits[0].Rip, Is.EqualTo(TestGuest.CodeBase), "RIP at the intercepted instruction");
        }

        // Every other intercept set: still no exit for this instruction.
        using (var g = Guest(insn, ~InterceptGuest.Bit(bit) & ~InterceptGuest.Bit(SvmIntercept.Hlt), out var svm))
        {
            g.Run(1000);
            Assert.That(svm.Exits.Where(e => e.Code == SvmIntercept.ExitCode(bit)), Is.Empty);
        }
    }

    [Test]
    public void AnUninterceptedCpuidRunsInGuestMode()
    {
        using var g = Guest(a => a.cpuid(), InterceptGuest.Bit(SvmIntercept.Rdtsc), out var svm);
        g.Cpu.Gpr[Reg.RAX] = 0;
        g.Run(1000);
        Assert.That(svm.Exits, Is.Empty);
        Assert.That(g[Reg.RBX], Is.Not.Zero, "the vendor string");
    }

    [Test]
    public void AnInterceptedPushfDoesNotTouchTheStack()
    {
        using var g = Guest(a => a.pushfq(), InterceptGuest.Bit(SvmIntercept.Pushf), out var svm);
        ulong rsp = g.Cpu.Gpr[Reg.RSP];
        g.Run(1000);
        Assert.That(svm.Exits, Has.Count.EqualTo(1));
        Assert.That(g[Reg.RSP], Is.EqualTo(rsp));
    }

    [Test]
    public void AnUnreportedRdtscpIsUdEvenWhenIntercepted()
    {
        using var g = Guest(a => a.rdtscp(), InterceptGuest.Bit(SvmIntercept.Rdtscp), out var svm);
        g.Cpu.Features[CpuFeature.Rdtscp] = false;
        g.Run(1000);
        Assert.That(svm.Exits, Is.Empty);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));

        // Reported, the same guest exits: the #UD above is the feature check, not a missing gate.
        using var g2 = Guest(a => a.rdtscp(), InterceptGuest.Bit(SvmIntercept.Rdtscp), out var svm2);
        g2.Run(1000);
        Assert.That(svm2.Exits.Select(e => e.Code), Is.EqualTo(new[] { SvmExit.Rdtscp }));
    }

    [Test]
    public void RsmOutsideSmmIsUdWhenNotIntercepted()
    {
        using var g = Guest(a => a.rsm(), 0, out var svm);
        g.Run(1000);
        Assert.That(svm.Exits, Is.Empty);
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void WithAPauseFilterCountOnlyThePauseThatEmptiesItExits()
    {
        using var g = Guest(
            a =>
            {
                a.pause();
                a.pause();
                a.pause();
                a.pause();
            },
            InterceptGuest.Bit(SvmIntercept.Pause),
            out var svm);
        g.Cpu.PauseFilterCount = 3;
        g.Run(1000);
        Assert.That(svm.Exits, Has.Count.EqualTo(1));
        Assert.That(svm.Exits[0].Code, Is.EqualTo(SvmExit.Pause));
        Assert.That(svm.Exits[0].Rip, Is.EqualTo(TestGuest.CodeBase + 4), "the third PAUSE (2 bytes each)");
        Assert.That(g.Cpu.PauseFilterCount, Is.Zero);
    }
}
