using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

public class ControlTests
{
    [Test]
    public void CallRetAndJumpsLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            var func = a.CreateLabel();
            var after = a.CreateLabel();
            a.mov(ebx, 0);
            a.call(func);
            a.lea(rbx, __[rbx + 0x10]);
            a.jmp(after);
            a.Label(ref func);
            a.mov(rbx, 1);
            a.mov(rcx, __qword_ptr[rsp]);
            a.ret();
            a.Label(ref after);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x11));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop));
        // The return address is the instruction after the 5-byte CALL (mov ebx,0 is 5 bytes).
        Assert.That(g[Reg.RCX], Is.EqualTo(TestGuest.CodeBase + 5 + 5));
    }

    private static readonly string[] ConditionNames =
        ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    /// <summary>The condition table of APM vol. 3 "Jcc", evaluated on an RFLAGS image.</summary>
    private static bool ConditionHolds(int cc, ulong f)
    {
        bool cf = (f & 1) != 0, pf = (f & 4) != 0, zf = (f & 0x40) != 0, sf = (f & 0x80) != 0, of = (f & 0x800) != 0;
        bool r = (cc >> 1) switch
        {
            0 => of,
            1 => cf,
            2 => zf,
            3 => cf || zf,
            4 => sf,
            5 => pf,
            6 => sf != of,
            _ => zf || sf != of,
        };
        return r ^ ((cc & 1) != 0);
    }

    private static void EmitJcc(Assembler a, int cc, Label l)
    {
        switch (cc)
        {
            case 0: a.jo(l); break;
            case 1: a.jno(l); break;
            case 2: a.jb(l); break;
            case 3: a.jae(l); break;
            case 4: a.je(l); break;
            case 5: a.jne(l); break;
            case 6: a.jbe(l); break;
            case 7: a.ja(l); break;
            case 8: a.js(l); break;
            case 9: a.jns(l); break;
            case 10: a.jp(l); break;
            case 11: a.jnp(l); break;
            case 12: a.jl(l); break;
            case 13: a.jge(l); break;
            case 14: a.jle(l); break;
            default: a.jg(l); break;
        }
    }

    internal static TestGuest Guest(int bits, Action<Assembler> body) =>
        bits == 64 ? TestGuest.Long64(body) : bits == 32 ? TestGuest.Protected32(body) : TestGuest.Real(body);

    /// <summary>Data address as the guest sees it (real-mode guests use DS = 0, so only the low 64 KiB is reachable).</summary>
    internal static ulong Data(int bits) => bits == 16 ? 0x6000UL : TestGuest.DataBase;

    // Flags images: CF, PF, ZF, SF, OF in combinations that separate every condition.
    [TestCase(16, 0x002UL)]
    [TestCase(16, 0x0C7UL)]
    [TestCase(32, 0x803UL)]
    [TestCase(32, 0x842UL)]
    [TestCase(64, 0x882UL)]
    [TestCase(64, 0x086UL)]
    [TestCase(64, 0x841UL)]
    [TestCase(32, 0x082UL)]
    public void EveryConditionFollowsTheFlags(int bits, ulong flags)
    {
        ulong data = Data(bits);
        using var g = Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.push((int)flags);
                a.popfq();
            }
            else if (bits == 32)
            {
                a.push((int)flags);
                a.popfd();
            }
            else
            {
                a.push((short)flags);
                a.popf();
            }

            for (int cc = 0; cc < 16; cc++)
            {
                var skip = a.CreateLabel();
                var taken = a.CreateLabel();
                EmitJcc(a, cc, taken);
                a.jmp(skip);
                a.Label(ref taken);
                a.mov(__byte_ptr[(long)data + cc], 1);
                a.Label(ref skip);
            }

            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        for (int cc = 0; cc < 16; cc++)
        {
            ulong gpa = bits == 16 ? data : data;
            Assert.That(g.ReadPhys(gpa + (ulong)cc, 1), Is.EqualTo(ConditionHolds(cc, flags) ? 1UL : 0UL), $"j{ConditionNames[cc]}");
        }
    }

    /// <summary>LOOP decrements the counter named by the address size: RCX, ECX (67h) in 64-bit mode.</summary>
    [TestCase(false, 3UL, 3UL, 0UL)]
    [TestCase(true, 0xFFFF_FFFF_0000_0003UL, 3UL, 0UL)]
    public void LoopCounterWidthLong64(bool addr32, ulong counter, ulong iterations, ulong ecxAfter)
    {
        using var g = TestGuest.Long64(a =>
        {
            var top = a.CreateLabel();
            a.mov(ebx, 0);
            a.Label(ref top);
            a.lea(rbx, __[rbx + 1]);
            if (addr32)
            {
                a.db(0x67);
            }

            a.loop(top);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RCX] = counter;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(iterations));
        Assert.That((uint)g[Reg.RCX], Is.EqualTo(ecxAfter));
    }

    /// <summary>In 32-bit code, 67h LOOP counts in CX only: ECX's upper half is untouched.</summary>
    [Test]
    public void LoopCounterCxProtected32()
    {
        using var g = TestGuest.Protected32(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 0x0001_0003);
            a.mov(ebx, 0);
            a.Label(ref top);
            a.lea(ebx, __[ebx + 1]);
            a.db(0x67);
            a.loop(top);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(3));
        Assert.That(g[Reg.RCX], Is.EqualTo(0x0001_0000));
    }

    /// <summary>In real mode, 67h LOOP counts in ECX (0x10001 iterations here, where CX alone would give 1).</summary>
    [Test]
    public void LoopCounterEcxReal()
    {
        using var g = TestGuest.Real(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 0x0001_0001);
            a.mov(ebx, 0);
            a.Label(ref top);
            a.lea(ebx, __[ebx + 1]);
            a.db(0x67);
            a.loop(top);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x10001));
        Assert.That(g[Reg.RCX], Is.EqualTo(0));
    }

    /// <summary>LOOPE runs while ZF = 1, LOOPNE while ZF = 0; both stop at rCX = 0.</summary>
    [TestCase(0x40, true, 4UL)]
    [TestCase(0x00, true, 1UL)]
    [TestCase(0x40, false, 1UL)]
    [TestCase(0x00, false, 4UL)]
    public void LoopeLoopne(int ahValue, bool loope, ulong iterations)
    {
        using var g = TestGuest.Long64(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 4);
            a.mov(ebx, 0);
            a.mov(ah, (byte)ahValue);
            a.sahf();
            a.Label(ref top);
            a.lea(rbx, __[rbx + 1]);
            if (loope)
            {
                a.loope(top);
            }
            else
            {
                a.loopne(top);
            }

            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(iterations));
        Assert.That(g[Reg.RCX], Is.EqualTo(4 - iterations));
    }

    /// <summary>JRCXZ tests all of RCX, JECXZ (67h) only ECX.</summary>
    [Test]
    public void JrcxzAndJecxz()
    {
        using var g = TestGuest.Long64(a =>
        {
            var t1 = a.CreateLabel();
            var n1 = a.CreateLabel();
            var t2 = a.CreateLabel();
            var n2 = a.CreateLabel();
            a.mov(rcx, 0x1_0000_0000);
            a.mov(ebx, 0);
            a.jrcxz(t1);
            a.jmp(n1);
            a.Label(ref t1);
            a.lea(rbx, __[rbx + 1]);
            a.Label(ref n1);
            a.db(0x67);
            a.jrcxz(t2); // 67 E3: JECXZ
            a.jmp(n2);
            a.Label(ref t2);
            a.lea(rbx, __[rbx + 2]);
            a.Label(ref n2);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(2));
    }

    /// <summary>RET imm16 pops the return address and then releases imm16 bytes of arguments.</summary>
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void RetImmReleasesArguments(int bits)
    {
        using var g = Guest(bits, a =>
        {
            var func = a.CreateLabel();
            var done = a.CreateLabel();
            a.push(7);
            a.push(8);
            a.call(func);
            a.jmp(done);
            a.Label(ref func);
            a.ret((ushort)(2 * (bits / 8)));
            a.Label(ref done);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(bits == 16 ? 0x8000UL : TestGuest.StackTop));
    }

    /// <summary>CALL [rSP] reads its target before pushing the return address.</summary>
    [Test]
    public void CallIndirectThroughStackTop()
    {
        using var g = TestGuest.Long64(a =>
        {
            var func = a.CreateLabel();
            var after = a.CreateLabel();
            a.lea(rax, __[func]);
            a.push(rax);
            a.call(__qword_ptr[rsp]);
            a.jmp(after);
            a.Label(ref func);
            a.mov(ebx, 0x77);
            a.pop(rcx);
            a.jmp(rcx);
            a.Label(ref after);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x77));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop - 8));
    }

    /// <summary>A 16-bit near jump wraps IP at 64 KiB: JMP -4 from IP 0 lands at 0xFFFE.</summary>
    [Test]
    public void RealModeJumpWrapsIp()
    {
        using var g = TestGuest.Real(a => a.db(0xEB, 0xFC));
        g.Mem.TryLoad(0x1FFFE, [0xF4]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0xFFFF));
    }

    /// <summary>A 66h near jump in 32-bit code truncates the target to 16 bits.</summary>
    [Test]
    public void OperandSize16JumpTruncatesEip()
    {
        using var g = TestGuest.Protected32(a => a.db(0x66, 0xE9, 0x00, 0x00)); // jmp rel16 → (EIP+4) & 0xFFFF
        g.Mem.TryLoad(0x0004, [0xF4]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x0005));
    }

    /// <summary>A non-canonical target raises #GP(0) at the jump (no IDT here, so the guest triple-faults); RBX is not touched.</summary>
    [Test]
    public void NonCanonicalTargetFaults()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, 0x0000_8000_0000_0000);
            a.jmp(rax);
            a.mov(ebx, 1);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.TripleFault));
        Assert.That(g[Reg.RBX], Is.EqualTo(0));
    }

    /// <summary>#GP(0) for a non-canonical target is raised at the jump: the frame's RIP is the JMP, the error code 0.</summary>
    [Test]
    public void NonCanonicalTargetIsGpAtTheJump()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, 0x0000_8000_0000_0000); // 10 bytes
            a.jmp(rax);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(13));
        ulong rsp = g[Reg.RSP];
        Assert.That(g.ReadPhys(rsp, 8), Is.EqualTo(0UL));
        Assert.That(g.ReadPhys(rsp + 8, 8), Is.EqualTo(TestGuest.CodeBase + 10));
    }

    /// <summary>Outside 64-bit mode a target beyond the CS limit is #GP(0), and CALL pushes nothing.</summary>
    [Test]
    public void TargetBeyondCsLimitFaults()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(eax, 0x0011_0000);
            a.call(eax);
            a.hlt();
        });
        VectorCatcher.Install32(g);
        g.Cpu.Seg[SegReg.CS].Limit = 0x0010_FFFF;
        g.Cpu.SegmentLoaded(SegReg.CS);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(13));
        // Frame: error code, EIP, CS, EFLAGS (no stack switch at CPL 0); nothing else was pushed.
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop - 16));
        Assert.That(g.ReadPhys(TestGuest.StackTop - 12, 4), Is.EqualTo(TestGuest.CodeBase + 5));
    }

    /// <summary>
    /// AMD honours 66h on near branches in 64-bit mode (APM vol. 3 "JMP (Near)": the operand size may be
    /// 16 bits): 66 E9 rel16 truncates RIP to 16 bits, 66 E8 pushes a 2-byte return address and 66 C3 pops one.
    /// </summary>
    [Test]
    public void OperandSize16NearBranchesLong64()
    {
        using var g = TestGuest.Long64(a => a.db(0x66, 0xE9, 0x00, 0x00)); // → (RIP + 4) & 0xFFFF = 4
        g.Mem.TryLoad(0x0004, [0x66, 0xE8, 0x02, 0x00, 0xF4, 0xF4, 0x66, 0xC3]); // call 0x000A; hlt; …; ret (16-bit)
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.Cpu.Rip, Is.EqualTo(0x0009));
        Assert.That(g[Reg.RSP], Is.EqualTo(TestGuest.StackTop));
        Assert.That(g.ReadPhys(TestGuest.StackTop - 2, 2), Is.EqualTo(0x0008));
    }

    /// <summary>
    /// With 5-level paging a near branch may go past bit 47 (canonical to bit 56). The test's PML5 maps both
    /// index 0 and the high index to the boot PML4, so the high address runs the same code.
    /// </summary>
    [TestCase(true, TestName = "NearJumpTo57BitTargetWithLa57")]
    [TestCase(false, TestName = "NearJumpTo57BitTargetWithoutLa57IsGp")]
    public void NearJumpTo57BitTarget(bool la57)
    {
        const ulong pml5 = 0x50000, high = 0xABUL << 48;
        using var g = TestGuest.Long64(a =>
        {
            a.jmp(rax);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        if (la57)
        {
            g.Cpu.Features[CpuFeature.La57] = true;
            g.Mem.Write(pml5, 8, g.Cpu.Cr3 | 7);
            g.Mem.Write(pml5 + (0xAB * 8), 8, g.Cpu.Cr3 | 7);
            g.Cpu.Cr3 = pml5;
            g.Cpu.Cr4 |= Cr4Bits.LA57;
            g.Cpu.FlushTranslations();
        }

        g.Cpu.Gpr[Reg.RAX] = high | (TestGuest.CodeBase + 2);
        Assert.That(g.Run(100), Is.EqualTo(RunExit.HaltedForever));
        if (la57)
        {
            Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
            Assert.That(g.Cpu.Rip, Is.EqualTo(high | (TestGuest.CodeBase + 3)));
        }
        else
        {
            Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.GP));
        }
    }
}
