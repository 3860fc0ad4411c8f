using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// The integer workload of <c>emu bench cpu</c> and the CPU benchmarks: an endless 64-bit loop of ALU
/// operations, loads and stores over a 2 KiB table, a call/return and taken and not-taken branches.
/// It never stops by itself; runs end at an instruction limit, so every run executes the same mix.
/// </summary>
public static class WorkloadGuest
{
    public const ulong CodeBase = 0x100000;
    public const ulong TableBase = 0x200000;
    public const int TableEntries = 256;

    /// <summary>Instructions of <c>emu bench cpu</c> unless <c>--instructions</c> says otherwise.</summary>
    public const ulong DefaultInstructions = 200_000_000;

    public static void Install(Cpu cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        var a = new Assembler(64);
        var outer = a.CreateLabel();
        var inner = a.CreateLabel();
        var mix = a.CreateLabel();
        var odd = a.CreateLabel();

        a.mov(ebx, (uint)TableBase);
        a.xor(eax, eax);
        a.Label(ref outer);
        a.xor(ecx, ecx);
        a.Label(ref inner);
        a.mov(edx, ecx);
        a.and(edx, TableEntries - 1);
        a.mov(r8, __qword_ptr[rbx + rdx * 8]);
        a.add(r8, rax);
        a.xor(r8, rcx);
        a.mov(__qword_ptr[rbx + rdx * 8], r8);
        a.call(mix);
        a.inc(ecx);
        a.cmp(ecx, 1000);
        a.jb(inner);
        a.jmp(outer);

        // mix: RAX ← RAX + 2·R8 + φ, minus RDX when the result is odd.
        a.Label(ref mix);
        a.lea(rax, __[rax + r8 * 2]);
        a.add(rax, 0x7F4A7C15);
        a.test(al, 1);
        a.jz(odd);
        a.sub(rax, rdx);
        a.Label(ref odd);
        a.ret();

        byte[] code = GuestImage.Assemble(a, CodeBase, out _);
        if (!cpu.Phys.TryLoad(CodeBase, code))
        {
            throw new InvalidOperationException("guest RAM is too small for the workload guest");
        }

        BootState.EnterLong64(cpu, CodeBase, ImageLoader.StackTop(cpu.Phys));
    }
}
