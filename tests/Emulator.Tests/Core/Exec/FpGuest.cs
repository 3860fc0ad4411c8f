using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using Emulator.Core.Cpu;
using Iced.Intel;

namespace Emulator.Tests.Core.Exec;

/// <summary>
/// Test guests for the x87/SSE tests: long mode with CR4.OSFXSR and OSXMMEXCPT set, RBX pointing at
/// <see cref="TestGuest.DataBase"/>, and an IDT whose every vector leads to a HLT, so that the vector of a
/// fault can be read back from RIP.
/// </summary>
internal static class FpGuest
{
    public const ulong Data = TestGuest.DataBase;
    private const ulong IdtBase = 0x10000;
    private const ulong HandlerBase = 0x11000;

    public static TestGuest Create(Action<Assembler> body)
    {
        var g = TestGuest.Long64(body);
        g.Cpu.Cr4 |= Cr4Bits.OSFXSR | Cr4Bits.OSXMMEXCPT;
        g.Cpu.Gpr[Reg.RBX] = Data;
        Span<byte> gate = stackalloc byte[16];
        for (int v = 0; v < 32; v++)
        {
            ulong h = HandlerBase + ((ulong)v * 16);
            ulong lo = (h & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((h >> 16) & 0xFFFF) << 48);
            BinaryPrimitives.WriteUInt64LittleEndian(gate, lo);
            BinaryPrimitives.WriteUInt64LittleEndian(gate[8..], h >> 32);
            g.Mem.TryLoad(IdtBase + ((ulong)v * 16), gate);
            g.Mem.TryLoad(h, [0xF4]);
        }

        g.Cpu.Idtr = new TableRegister { Base = IdtBase, Limit = (32 * 16) - 1 };
        return g;
    }

    /// <summary>Runs the guest; returns -1 when it reached its own HLT, else the exception vector taken.</summary>
    public static int Run(TestGuest g)
    {
        var exit = g.Run();
        Assert.That(exit, Is.EqualTo(RunExit.HaltedForever));
        ulong rip = g.Cpu.Rip - 1;
        return rip >= HandlerBase && rip < HandlerBase + (32 * 16) ? (int)((rip - HandlerBase) / 16) : -1;
    }

    public static void RunOk(TestGuest g) => Assert.That(Run(g), Is.EqualTo(-1), "guest took an exception");

    public static void Write(TestGuest g, ulong gpa, ReadOnlySpan<byte> bytes) => g.Mem.TryLoad(gpa, bytes);

    public static void Write64(TestGuest g, ulong gpa, ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        g.Mem.TryLoad(gpa, b);
    }

    public static void WriteVec(TestGuest g, ulong gpa, Vector128<byte> v)
    {
        Span<byte> b = stackalloc byte[16];
        v.CopyTo(b);
        g.Mem.TryLoad(gpa, b);
    }

    public static Vector128<byte> ReadVec(TestGuest g, ulong gpa) =>
        Vector128.Create(g.ReadPhys(gpa, 8), g.ReadPhys(gpa + 8, 8)).AsByte();
}
