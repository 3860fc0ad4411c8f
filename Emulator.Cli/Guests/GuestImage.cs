using System.Text;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>Assembles a built-in guest with Iced and reports where its labels landed.</summary>
internal static class GuestImage
{
    public static byte[] Assemble(Assembler a, ulong at, out AssemblerResult result)
    {
        using var ms = new MemoryStream();
        result = a.Assemble(new StreamCodeWriter(ms), at, BlockEncoderOptions.ReturnNewInstructionOffsets);
        return ms.ToArray();
    }

    /// <summary>A NUL-terminated ASCII string at <paramref name="label"/>.</summary>
    public static void Text(Assembler a, ref Label label, string s)
    {
        a.Label(ref label);
        a.db(Encoding.ASCII.GetBytes(s + "\0"));
    }

    /// <summary>
    /// Bochs shutdown: the bytes of the NUL-terminated "Shutdown" at <paramref name="text"/>, one by one to port 0x8900,
    /// end the run with status 0; then HLT forever (a run without that port stops there).
    /// </summary>
    public static void EmitBochsShutdown(Assembler a, Label text)
    {
        var next = a.CreateLabel();
        var halt = a.CreateLabel();
        a.lea(rsi, __[text]);
        a.mov(edx, 0x8900);
        a.Label(ref next);
        a.mov(al, __byte_ptr[rsi]);
        a.test(al, al);
        a.jz(halt);
        a.@out(dx, al);
        a.inc(rsi);
        a.jmp(next);
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);
    }
}
