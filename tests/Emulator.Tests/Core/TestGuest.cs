using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;
using Iced.Intel;

namespace Emulator.Tests.Core;

/// <summary>
/// A small machine for instruction tests: guest code assembled with Iced's Assembler, loaded at
/// <see cref="CodeBase"/>, entered in the requested mode, run until HLT (or a limit).
/// </summary>
public sealed class TestGuest : IDisposable
{
    public const ulong CodeBase = 0x100000;
    public const ulong DataBase = 0x200000;
    public const ulong StackTop = 0x80000;

    public PhysicalMemory Mem { get; }
    public Cpu Cpu { get; }

    private TestGuest(ulong memory = 16 << 20)
    {
        Mem = PhysicalMemory.Create(memory);
        Cpu = new Cpu(Mem);
    }

    /// <summary>Assembles <paramref name="body"/> for <paramref name="bitness"/> at <paramref name="at"/> and returns the bytes.</summary>
    public static byte[] Assemble(int bitness, Action<Assembler> body, ulong at = CodeBase)
    {
        var a = new Assembler(bitness);
        body(a);
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), at);
        return ms.ToArray();
    }

    public static TestGuest Long64(Action<Assembler> body)
    {
        var g = new TestGuest();
        g.Load(Assemble(64, body));
        BootState.EnterLong64(g.Cpu, CodeBase, StackTop);
        return g;
    }

    public static TestGuest Protected32(Action<Assembler> body)
    {
        var g = new TestGuest();
        g.Load(Assemble(32, body));
        BootState.EnterProtected32(g.Cpu, CodeBase);
        g.Cpu.Gpr[Reg.RSP] = StackTop;
        return g;
    }

    /// <summary>Real mode: code at 0x1000:0000 (linear 0x10000), SS:SP = 0:0x8000.</summary>
    public static TestGuest Real(Action<Assembler> body)
    {
        const ulong at = 0x10000;
        var g = new TestGuest();
        g.Load(Assemble(16, body, 0), at);
        BootState.EnterReal(g.Cpu, at);
        g.Cpu.Gpr[Reg.RSP] = 0x8000;
        return g;
    }

    public void Load(byte[] code, ulong at = CodeBase)
    {
        if (!Mem.TryLoad(at, code))
        {
            throw new InvalidOperationException("test code does not fit in RAM");
        }
    }

    /// <summary>Runs until HLT with interrupts off (the normal end of a test guest) or the limit.</summary>
    public RunExit Run(ulong maxInstructions = 1_000_000) => Cpu.Run(maxInstructions);

    /// <summary>
    /// Runs three more windows of <paramref name="window"/> instructions after instruction <paramref name="at"/> and
    /// returns the fewest bytes one of them allocated on this thread: a one-off of the runtime (tiering up on this
    /// thread) shows in one window at most.
    /// </summary>
    public long LeastAllocatedPerWindow(ulong at, ulong window)
    {
        long least = long.MaxValue;
        for (int i = 0; i < 3 && least != 0; i++)
        {
            at += window;
            long before = GC.GetAllocatedBytesForCurrentThread();
            Run(at);
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return least;
    }

    public ulong this[int reg] => Cpu.Gpr[reg];

    public ulong ReadPhys(ulong gpa, int size) => Mem.Read(gpa, size);

    public void Dispose() => Mem.Dispose();
}
