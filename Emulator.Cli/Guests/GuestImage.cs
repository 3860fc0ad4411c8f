using Iced.Intel;

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
}
