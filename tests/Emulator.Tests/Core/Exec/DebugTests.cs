using Emulator.Core.Cpu;
using Iced.Intel;
using static Emulator.Tests.Core.CpuTests.SystemTables;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>
/// The debug architecture (APM vol. 2 §13.1): TF single-step, DR0–DR3 breakpoints, DR6, RF and the MOV SS
/// shadow. The #DB handler logs the return RIP and DR6 of every #DB it takes (r15 = log, r14 = count).
/// </summary>
public class DebugTests
{
    private const ulong Log = TestGuest.DataBase;
    private const ulong Data = TestGuest.DataBase + 0x10000;
    private const ulong Dr6Fixed = 0xFFFF_0FF0, Bs = 1 << 14, Bd = 1 << 13;

    /// <summary>Assembled guest code and the addresses of its marks.</summary>
    private sealed class Program
    {
        public readonly Dictionary<string, ulong> At = [];
        public byte[] Code = [];
    }

    /// <summary>
    /// A 64-bit guest whose body may call <c>mark(name)</c> to learn an instruction's address. Vector 1 logs;
    /// <paramref name="dbSetsRf"/> makes it set RF in the image (as a handler of instruction breakpoints does).
    /// Every other vector halts at its own stub.
    /// </summary>
    private static (TestGuest G, Program P) Long(Action<Assembler, Action<string>> body, bool dbSetsRf = false)
    {
        var a = new Assembler(64);
        var labels = new Dictionary<string, Label>();
        body(a, name =>
        {
            var l = a.CreateLabel(name);
            a.Label(ref l);
            labels[name] = l;
        });
        using var ms = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(ms), TestGuest.CodeBase, BlockEncoderOptions.ReturnNewInstructionOffsets);
        var p = new Program { Code = ms.ToArray() };
        foreach (var (name, l) in labels)
        {
            p.At[name] = result.GetLabelRIP(l);
        }

        var g = TestGuest.Long64(x => x.nop());
        g.Load(p.Code);
        Install(g, StandardGdt(longMode: true), 256);
        for (int v = 0; v < 256; v++)
        {
            SetIdt64(g, v, Gate64(Code64, Handler(v), 0xE, 3));
            SetHandler(g, 64, v, x => x.hlt());
        }

        SetHandler(g, 64, Vector.DB, x =>
        {
            x.mov(r13, __qword_ptr[rsp]);
            x.mov(__qword_ptr[r15 + (r14 * 8)], r13);
            x.mov(r13, dr6);
            x.mov(__qword_ptr[r15 + (r14 * 8) + 0x80], r13);
            if (dbSetsRf)
            {
                x.bts(__qword_ptr[rsp + 16], 16);
            }

            x.inc(r14);
            x.iretq();
        });
        Write64(g, TssBase + 4, 0x7F000);
        g.Cpu.Gpr[Reg.R15] = Log;
        return (g, p);
    }

    private static List<(ulong Rip, ulong Dr6)> Logged(TestGuest g)
    {
        var list = new List<(ulong, ulong)>();
        for (ulong i = 0; i < g[Reg.R14]; i++)
        {
            list.Add((g.ReadPhys(Log + (i * 8), 8), g.ReadPhys(Log + 0x80 + (i * 8), 8)));
        }

        return list;
    }

    /// <summary>pushf; pop rax; or rax, TF; push rax; popf — TF on from the next instruction.</summary>
    private static void SetTf(Assembler a)
    {
        a.pushfq();
        a.pop(rax);
        a.or(rax, 0x100);
        a.push(rax);
        a.popfq();
    }

    private static void ClearTf(Assembler a, Action<string> mark, string at)
    {
        a.and(rax, ~0x100);
        mark(at);
        a.push(rax);
        a.popfq();
    }

    [Test]
    public void PopfSettingTfTrapsAfterTheNextInstructionAndPopfClearingItStillTraps()
    {
        var (g, p) = Long((a, mark) =>
        {
            SetTf(a);
            ClearTf(a, mark, "start");
            mark("after");
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong start = p.At["start"];
        Assert.That(Logged(g), Is.EqualTo(new[] { (start, Dr6Fixed | Bs), (start + 1, Dr6Fixed | Bs), (start + 2, Dr6Fixed | Bs) }));
        Assert.That(p.At["after"], Is.EqualTo(start + 2));
    }

    [Test]
    public void MovSsHoldsTheSingleStepTrapUntilAfterTheNextInstruction()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.pushfq();
            a.pop(rax);
            a.or(rax, 0x100);
            a.push(rax);
            a.mov(bx, ss);
            a.popfq();
            a.mov(ss, bx);
            ClearTf(a, mark, "start");
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong start = p.At["start"];
        Assert.That(Logged(g).Select(e => e.Rip), Is.EqualTo(new[] { start, start + 1, start + 2 }), "no #DB right after MOV SS");
        Assert.That(Logged(g).Select(e => e.Dr6), Is.All.EqualTo(Dr6Fixed | Bs));
    }

    [Test]
    public void StiShadowDoesNotHoldTheSingleStepTrap()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.cli();
            SetTf(a);
            a.sti();
            ClearTf(a, mark, "push");
            a.cli();
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong push = p.At["push"];
        Assert.That(Logged(g).Select(e => e.Rip), Is.EqualTo(new[] { push - 6, push, push + 1, push + 2 }), "first #DB right after STI");
    }

    [Test]
    public void IcebpUnderTfReportsOnlyItsOwnDebugTrap()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.pushfq();
            a.pop(rax);
            a.or(rax, 0x100);
            a.push(rax);
            a.mov(bx, ss);
            a.popfq();
            a.mov(ss, bx);
            a.int1();
            mark("start");
            a.int1();
            ClearTf(a, mark, "push");
            a.hlt();
        });
        using var _ = g;
        g.Cpu.Dr6 = Dr6Fixed;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong start = p.At["start"];
        Assert.That(Logged(g), Is.EqualTo(new[]
        {
            (start, Dr6Fixed), (start + 1, Dr6Fixed),
            (start + 7, Dr6Fixed | Bs), (start + 8, Dr6Fixed | Bs), (start + 9, Dr6Fixed | Bs),
        }));
    }

    [Test]
    public void InstructionBreakpointFaultsBeforeTheInstructionAndRfLetsItRun()
    {
        var (g, p) = Long(
            (a, mark) =>
            {
                a.mov(rax, __qword_ptr[Data]);
                a.mov(dr2, rax);
                a.mov(rax, 0x400 | 0x20); // G2, R/W2 = 00 (execute), LEN2 = 00
                a.mov(dr7, rax);
                mark("bp");
                a.inc(rbx);
                a.hlt();
            },
            dbSetsRf: true);
        using var _ = g;
        Write64(g, Data, p.At["bp"]);
        g.Cpu.Dr6 = Dr6Fixed | Bs | 2; // B1 and BS left over from before
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(Logged(g), Is.EqualTo(new[] { (p.At["bp"], Dr6Fixed | Bs | 4) }), "B0–B3 replaced, BS kept");
        Assert.That(g[Reg.RBX], Is.EqualTo(1UL), "the instruction ran once after the handler set RF");
    }

    [Test]
    public void InstructionBreakpointPushesRfClear()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rax, __qword_ptr[Data]);
            a.mov(dr0, rax);
            a.mov(rax, 0x402);
            a.mov(dr7, rax);
            mark("bp");
            a.nop();
        });
        using var _ = g;
        SetHandler(g, 64, Vector.DB, x => x.hlt());
        Write64(g, Data, p.At["bp"]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(Handler(Vector.DB) + 1));
        Assert.That(g.ReadPhys(g[Reg.RSP], 8), Is.EqualTo(p.At["bp"]));
        Assert.That(g.ReadPhys(g[Reg.RSP] + 16, 8) & Rflags.RF, Is.EqualTo(0UL));
    }

    [TestCase(1, false, true, TestName = "WriteBreakpointHitByAStore")]
    [TestCase(1, true, false, TestName = "WriteBreakpointIgnoresALoad")]
    [TestCase(3, true, true, TestName = "ReadWriteBreakpointHitByALoad")]
    public void DataBreakpointTrapsAfterTheAccess(int rw, bool load, bool hit)
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rcx, __qword_ptr[Data + 8]); // puts the data page in the TLB before the breakpoint is set
            a.mov(rax, Data + 4);
            a.mov(dr1, rax);
            a.mov(rax, 0x408 | ((ulong)rw << 20) | (3UL << 22)); // G1, R/W1, LEN1 = 4 bytes
            a.mov(dr7, rax);
            if (load)
            {
                a.mov(rdx, __qword_ptr[Data]);
            }
            else
            {
                a.mov(__qword_ptr[Data], rax);
            }

            mark("after");
            a.hlt();
        });
        using var _ = g;
        g.Cpu.Dr6 = Dr6Fixed | Bs;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(Logged(g), Is.EqualTo(hit ? new[] { (p.At["after"], Dr6Fixed | Bs | 2) } : Array.Empty<(ulong, ulong)>()));
    }

    [Test]
    public void IoBreakpointNeedsCr4De()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rax, 0x80);
            a.mov(dr0, rax);
            a.mov(rax, 0x402 | (2UL << 16)); // G0, R/W0 = 10 (I/O), LEN0 = 1 byte
            a.mov(dr7, rax);
            a.@out(0x80, al);
            a.mov(rax, cr4);
            a.or(rax, (int)Cr4Bits.DE);
            a.mov(cr4, rax);
            a.mov(edx, 0x80);
            a.@out(dx, al);
            mark("second");
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(Logged(g), Is.EqualTo(new[] { (p.At["second"], Dr6Fixed | 1) }), "only with CR4.DE");
    }

    [Test]
    public void GeneralDetectUnderMovSsShadowDropsTheHeldSingleStep()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rax, 0x400 | (1 << 13));
            a.mov(dr7, rax);
            a.xor(ecx, ecx);
            a.pushfq();
            a.pop(rax);
            a.or(rax, 0x100);
            a.push(rax);
            a.mov(bx, ss);
            a.popfq();
            a.mov(ss, bx);
            mark("start");
            a.mov(dr6, rcx);
            ClearTf(a, mark, "push");
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong start = p.At["start"];
        Assert.That(Logged(g), Is.EqualTo(new[]
        {
            (start, Dr6Fixed | Bd),
            (start + 3, Dr6Fixed | Bs), (p.At["push"], Dr6Fixed | Bs), (p.At["push"] + 1, Dr6Fixed | Bs), (p.At["push"] + 2, Dr6Fixed | Bs),
        }));
    }

    [Test]
    public void HeldDataTrapFollowsInt3ToItsHandler()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rax, Data);
            a.mov(dr1, rax);
            a.mov(rax, 0x408 | (3UL << 20) | (3UL << 22)); // G1, read/write, 4 bytes
            a.mov(dr7, rax);
            a.mov(ss, __word_ptr[Data]);
            a.int3();
            mark("after");
            a.hlt();
        });
        using var _ = g;
        g.Mem.Write(Data, 2, Data0);
        SetHandler(g, 64, Vector.BP, x =>
        {
            x.mov(rbx, __qword_ptr[rsp]);
            x.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(Logged(g), Is.EqualTo(new[] { (Handler(Vector.BP), Dr6Fixed | 2) }), "#DB at the #BP handler's first instruction");
        Assert.That(g[Reg.RBX], Is.EqualTo(p.At["after"]));
    }

    [TestCase(true, TestName = "FaultImageHasRfForGp")]
    [TestCase(false, TestName = "FaultImageHasRfForUd")]
    public void FaultsPushRf(bool gp)
    {
        var (g, _) = Long((a, mark) =>
        {
            if (gp)
            {
                a.mov(rax, 0xFFFF_FFFFUL);
                a.mov(cr4, rax);
            }
            else
            {
                a.ud2();
            }
        });
        using var guest = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        int errorSlots = gp ? 1 : 0;
        Assert.That(g.ReadPhys(g[Reg.RSP] + (ulong)((2 + errorSlots) * 8), 8) & Rflags.RF, Is.EqualTo(Rflags.RF));
    }

    [Test]
    public void Int3ImageHasNoRf()
    {
        var (g, _) = Long((a, mark) => a.int3());
        using var guest = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(g[Reg.RSP] + 16, 8) & Rflags.RF, Is.EqualTo(0UL));
    }

    [Test]
    public void RfIsClearedAfterTheNextInstruction()
    {
        var (g, _) = Long((a, mark) =>
        {
            a.nop();
            a.hlt();
        });
        using var guest = g;
        g.Cpu.FlagsBits |= Rflags.RF;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.FlagsBits & Rflags.RF, Is.EqualTo(0UL));
    }

    [Test]
    public void RepInsSingleStepsEachIteration()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rdi, Data);
            a.mov(ecx, 3);
            a.mov(edx, 0x80); // an unclaimed port: reads all ones
            SetTf(a);
            mark("rep");
            a.rep.insb();
            ClearTf(a, mark, "push");
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong rep = p.At["rep"], push = p.At["push"];
        Assert.That(
            Logged(g).Select(e => e.Rip),
            Is.EqualTo(new[] { rep, rep, rep + 2, push, push + 1, push + 2 }),
            "INS traps after every iteration, as the memory string instructions do");
        Assert.That((g[Reg.RCX], g[Reg.RDI]), Is.EqualTo((0UL, Data + 3)));
    }

    [Test]
    public void InitResetsTheDebugRegisters()
    {
        using var g = TestGuest.Long64(a => a.hlt());
        Emulator.Core.Cpu.Cpu c = g.Cpu;
        c.Dr0 = c.Dr1 = c.Dr2 = c.Dr3 = 0x1000;
        c.Dr6 = Dr6Fixed | Bs | 1;
        c.Dr7 = 0x400 | 0xFF;
        c.Init();
        Assert.That((c.Dr0, c.Dr1, c.Dr2, c.Dr3), Is.EqualTo((0UL, 0UL, 0UL, 0UL)));
        Assert.That((c.Dr6, c.Dr7), Is.EqualTo((Dr6Fixed, 0x400UL)), "APM vol. 2 table 14-1: DR6 FFFF0FF0h, DR7 400h after INIT");
    }

    [Test]
    public void RepStringSingleStepsEachIteration()
    {
        var (g, p) = Long((a, mark) =>
        {
            a.mov(rdi, Data);
            a.mov(ecx, 3);
            SetTf(a);
            mark("rep");
            a.rep.stosb();
            ClearTf(a, mark, "push");
            a.hlt();
        });
        using var _ = g;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong rep = p.At["rep"], push = p.At["push"];
        Assert.That(
            Logged(g).Select(e => e.Rip),
            Is.EqualTo(new[] { rep, rep, rep + 2, push, push + 1, push + 2 }),
            "a trap after every iteration, with RIP at the instruction while iterations remain");
        Assert.That((g[Reg.RCX], g[Reg.RDI]), Is.EqualTo((0UL, Data + 3)));
    }

    [Test]
    public void SysretSettingTfTrapsAtTheUserInstructionAndSyscallClearingItDoesNot()
    {
        var (g, p) = Long((a, mark) =>
        {
            mark("user");
            a.syscall();
            a.hlt();
        });
        using var _ = g;
        MakeUserAccessible(g);
        var c = g.Cpu;
        c.Efer |= EferBits.SCE;
        c.Star = (0x20UL << 48) | (0x08UL << 32);
        c.Lstar = Handler(0x80);
        c.Sfmask = Rflags.TF | Rflags.IF;
        SetHandler(g, 64, 0x80, x => x.hlt());
        // Kernel code at Handler(0x81) returns to the user code with TF set in R11.
        SetHandler(g, 64, 0x81, x => x.sysretq());
        c.Rip = Handler(0x81);
        c.Gpr[Reg.RCX] = p.At["user"];
        c.Gpr[Reg.R11] = Rflags.TF | Rflags.Reserved1;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        var log = Logged(g);
        Assert.That(log, Is.EqualTo(new[] { (p.At["user"], Dr6Fixed | Bs) }), "one #DB after SYSRET, none after SYSCALL");
        Assert.That(c.Rip, Is.EqualTo(Handler(0x80) + 1), "SYSCALL reached its handler");
    }
    [Test]
    public void SingleSteppedIntNTrapsAtTheHandlersFirstInstruction()
    {
        var (g, _) = Long((a, mark) =>
        {
            SetTf(a);
            a.@int(0x40);
            a.hlt();
        });
        using var guest = g;
        SetHandler(g, 64, 0x40, x =>
        {
            x.mov(rbx, __qword_ptr[rsp + 16]);
            x.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(Logged(g), Is.EqualTo(new[] { (Handler(0x40), Dr6Fixed | Bs) }));
        Assert.That(g[Reg.RBX] & Rflags.TF, Is.EqualTo(Rflags.TF), "the INT image still has TF");
    }

    [Test]
    public void TrapAfterSysretGoesBeforeAPendingNmi()
    {
        var (g, p) = Long((a, mark) =>
        {
            mark("user");
            a.nop();
            a.hlt();
        });
        using var _ = g;
        MakeUserAccessible(g);
        var c = g.Cpu;
        c.Efer |= EferBits.SCE;
        c.Star = 0x20UL << 48;
        SetHandler(g, 64, 0x81, x => x.sysretq());
        c.Rip = Handler(0x81);
        c.Gpr[Reg.RCX] = p.At["user"];
        c.Gpr[Reg.R11] = Rflags.TF | Rflags.Reserved1;
        Assert.That(g.Run(1), Is.EqualTo(RunExit.InstructionLimit));
        c.NmiPending = true;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(c.Rip, Is.EqualTo(Handler(Vector.NMI) + 1));
        Assert.That(g.ReadPhys(g[Reg.RSP], 8), Is.EqualTo(Handler(Vector.DB)), "the NMI arrived at the #DB handler's first instruction");
    }
}
