using Emulator.Core.Cpu;
using Iced.Intel;

namespace Emulator.Tests.Core.Exec;

/// <summary>Runs a few instructions in long (or 32-bit protected) mode from given registers and flags.</summary>
internal static class IntegerGuest
{
    public const ulong Flags0 = Rflags.Reserved1;

    /// <summary>Runs <paramref name="body"/> (HLT appended) with RAX, RBX, RCX, RDX and RFLAGS preset.</summary>
    public static TestGuest Run(Action<Assembler> body, ulong rax = 0, ulong rbx = 0, ulong rcx = 0, ulong rdx = 0,
        ulong flags = 0, int bitness = 64, Action<TestGuest>? setup = null)
    {
        void Program(Assembler a)
        {
            body(a);
            a.hlt();
        }

        TestGuest g = bitness == 64 ? TestGuest.Long64(Program) : TestGuest.Protected32(Program);
        g.Cpu.Gpr[Reg.RAX] = rax;
        g.Cpu.Gpr[Reg.RBX] = rbx;
        g.Cpu.Gpr[Reg.RCX] = rcx;
        g.Cpu.Gpr[Reg.RDX] = rdx;
        g.Cpu.FlagsBits = (flags & Rflags.Arith) | Rflags.Reserved1;
        g.Cpu.LazyOp = LazyFlags.None;
        setup?.Invoke(g);
        g.Run();
        return g;
    }

    /// <summary>Runs with an IDT whose handlers halt, so <see cref="VectorCatcher.CaughtVector"/> names a fault.</summary>
    public static TestGuest RunCatching(Action<Assembler> body, ulong rax = 0, ulong rbx = 0, ulong rcx = 0, ulong rdx = 0, int bitness = 64) =>
        Run(body, rax, rbx, rcx, rdx, 0, bitness, g =>
        {
            if (bitness == 64)
            {
                VectorCatcher.Install64(g);
            }
            else
            {
                VectorCatcher.Install32(g);
            }
        });

    /// <summary>The status flags after the run, as a string of set flags in the order "C P A Z S O".</summary>
    public static string FlagString(TestGuest g, ulong mask = Rflags.Arith)
    {
        ulong f = g.Cpu.Rflags64 & mask;
        var parts = new List<string>();
        if ((f & Rflags.CF) != 0) parts.Add("C");
        if ((f & Rflags.PF) != 0) parts.Add("P");
        if ((f & Rflags.AF) != 0) parts.Add("A");
        if ((f & Rflags.ZF) != 0) parts.Add("Z");
        if ((f & Rflags.SF) != 0) parts.Add("S");
        if ((f & Rflags.OF) != 0) parts.Add("O");
        return string.Join(" ", parts);
    }

    /// <summary>Flags given as "C P A Z S O" letters.</summary>
    public static ulong ParseFlags(string s)
    {
        ulong f = 0;
        foreach (string p in s.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            f |= p switch
            {
                "C" => Rflags.CF,
                "P" => Rflags.PF,
                "A" => Rflags.AF,
                "Z" => Rflags.ZF,
                "S" => Rflags.SF,
                "O" => Rflags.OF,
                _ => throw new ArgumentException(p),
            };
        }

        return f;
    }
}
