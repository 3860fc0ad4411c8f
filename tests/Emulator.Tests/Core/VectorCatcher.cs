using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Tests.Core;

/// <summary>
/// Helpers for system-instruction tests: an IDT whose every vector points at its own HLT (so the final
/// RIP names the vector that was delivered), and single-instruction execution through the real handler.
/// </summary>
public static class VectorCatcher
{
    public const ulong IdtBase = 0x300000;
    public const ulong HandlerBase = 0x310000;

    /// <summary>Installs 64-bit interrupt gates (selector 0x08) for all 256 vectors.</summary>
    public static void Install64(TestGuest g)
    {
        Span<byte> gate = stackalloc byte[16];
        for (int v = 0; v < 256; v++)
        {
            ulong h = HandlerBase + (ulong)v;
            gate.Clear();
            BitConverter.TryWriteBytes(gate, (ushort)h);
            BitConverter.TryWriteBytes(gate[2..], (ushort)0x08);
            gate[5] = 0x8E;
            BitConverter.TryWriteBytes(gate[6..], (ushort)(h >> 16));
            BitConverter.TryWriteBytes(gate[8..], (uint)(h >> 32));
            g.Mem.TryLoad(IdtBase + ((ulong)v * 16), gate);
        }

        InstallHlts(g);
        g.Cpu.Idtr = new TableRegister { Base = IdtBase, Limit = (256 * 16) - 1 };
    }

    /// <summary>Installs 32-bit interrupt gates (selector 0x18) for all 256 vectors.</summary>
    public static void Install32(TestGuest g)
    {
        Span<byte> gate = stackalloc byte[8];
        for (int v = 0; v < 256; v++)
        {
            ulong h = HandlerBase + (ulong)v;
            gate.Clear();
            BitConverter.TryWriteBytes(gate, (ushort)h);
            BitConverter.TryWriteBytes(gate[2..], (ushort)0x18);
            gate[5] = 0x8E;
            BitConverter.TryWriteBytes(gate[6..], (ushort)(h >> 16));
            g.Mem.TryLoad(IdtBase + ((ulong)v * 8), gate);
        }

        InstallHlts(g);
        g.Cpu.Idtr = new TableRegister { Base = IdtBase, Limit = (256 * 8) - 1 };
    }

    private static void InstallHlts(TestGuest g)
    {
        byte[] hlts = new byte[256];
        Array.Fill(hlts, (byte)0xF4);
        g.Mem.TryLoad(HandlerBase, hlts);
    }

    /// <summary>The vector whose handler the guest halted in, or -1 when it halted elsewhere.</summary>
    public static int CaughtVector(TestGuest g)
    {
        ulong rip = g.Cpu.Rip - 1;
        return rip >= HandlerBase && rip < HandlerBase + 256 ? (int)(rip - HandlerBase) : -1;
    }

    /// <summary>Decodes one instruction assembled for the CPU's current code size and runs its handler.</summary>
    public static unsafe int Step(Emulator.Core.Cpu.Cpu c, Action<Assembler> body)
    {
        byte[] bytes = TestGuest.Assemble(c.Bitness, body, c.Rip);
        var decoder = Decoder.Create(c.Bitness, new ByteArrayCodeReader(bytes), c.Rip);
        decoder.Decode(out Instruction ins);
        DecodedOp op = default;
        OpBuilder.Build(ins, ref op, Emulator.Core.Exec.Exec.Table, c.Costs);
        c.PendingVector = -1;
        c.NextRip = c.Rip + (ulong)ins.Length;
        return op.Handler(c, ref op);
    }
}
