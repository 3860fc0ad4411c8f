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
}
