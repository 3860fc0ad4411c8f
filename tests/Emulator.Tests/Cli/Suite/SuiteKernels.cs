using System.Text;
using Emulator.Tests.Core;
using static Emulator.Tests.Core.Loaders.ImageBuilder;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Cli.Suite;

/// <summary>Tiny Multiboot kernels for suite tests: print on COM1 and exit through isa-debug-exit, spin, or triple-fault.</summary>
internal static class SuiteKernels
{
    private const ulong Kernel = 0x400000, Text = Kernel + 0x800;

    /// <summary>Prints <paramref name="console"/> on COM1, then writes <paramref name="code"/> to port 0xF4 (exit status code*2+1).</summary>
    public static byte[] Printing(string console, int code) => Image(a =>
    {
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(esi, (uint)Text);
        a.mov(edx, 0x3F8);
        a.Label(ref loop);
        a.movzx(eax, __byte_ptr[esi]);
        a.test(al, al);
        a.jz(done);
        a.@out(dx, al);
        a.inc(esi);
        a.jmp(loop);
        a.Label(ref done);
        a.mov(eax, code);
        a.mov(edx, 0xF4);
        a.@out(dx, eax);
        a.hlt();
    }, console);

    /// <summary>Spins forever.</summary>
    public static byte[] Hang() => Image(a =>
    {
        var l = a.CreateLabel();
        a.Label(ref l);
        a.jmp(l);
    });

    /// <summary>No IDT: #UD → #GP → #DF → shutdown (exit status 4).</summary>
    public static byte[] TripleFault() => Image(a => a.ud2());

    /// <summary>A Multiboot ELF kernel running <paramref name="body"/> (32-bit), with <paramref name="text"/> at its data address.</summary>
    public static byte[] Image(Action<Iced.Intel.Assembler> body, string text = "")
    {
        var code = TestGuest.Assemble(32, body, Kernel + 12);
        var head = Concat(MultibootHeader(0), code);
        var str = Encoding.ASCII.GetBytes(text + "\0");
        return Elf(false, Kernel + 12, [new(Kernel, head, (ulong)head.Length), new(Text, str, (ulong)str.Length)]);
    }
}
