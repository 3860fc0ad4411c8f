using System.Text;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// What the demo's parts share while it is assembled: the print routines (<c>puts</c> prints the string at RSI,
/// <c>puthex</c> prints R8 as 16 hex digits; both clobber RAX, RBX, RCX, RDX and RSI), the strings they print
/// (emitted after the code), and the L2 entry point (whose address goes into the VMCB).
/// </summary>
internal sealed class DemoLabels(Assembler a, Label puts, Label puthex)
{
    private readonly List<(Label Label, string Text)> _strings = [];

    /// <summary>The L2 entry point, once emitted (Iced records the place in the label value, so the emitted copy is kept).</summary>
    public Label L2Entry { get; set; } = a.CreateLabel();

    /// <summary>Prints <paramref name="s"/> (no newline added).</summary>
    public void Print(string s)
    {
        var label = a.CreateLabel();
        _strings.Add((label, s));
        a.lea(rsi, __[label]);
        a.call(puts);
    }

    /// <summary>Prints R8 as 16 lowercase hex digits.</summary>
    public void PrintHex() => a.call(puthex);

    /// <summary>The strings, NUL-terminated, after the code.</summary>
    public void EmitStrings(Assembler asm)
    {
        for (int i = 0; i < _strings.Count; i++)
        {
            var label = _strings[i].Label;
            asm.Label(ref label);
            asm.db(Encoding.ASCII.GetBytes(_strings[i].Text + "\0"));
        }
    }
}
