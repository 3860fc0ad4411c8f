using System.Text;
using Emulator.Core.Loaders;
using Emulator.Svm.Run;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// Building blocks for APIC guest programs: a 64-bit image at <see cref="Code"/> entered in long mode by the
/// flat loader, an IDT the guest fills itself, the 0xE9 console, isa-debug-exit, and a real-mode AP trampoline
/// that switches an application processor to long mode on the boot GDT and page tables and jumps to a label
/// of the image.
/// </summary>
internal static class ApicGuest
{
    public const ulong Code = 0x100000;
    public const ulong Data = 0x200000;
    public const ulong Idt = 0x10000;
    public const ulong IdtrAt = 0x11000;
    public const uint XapicBase = 0xFEE0_0000;

    /// <summary>Startup-IPI vector of the trampoline: real mode CS = 0x0800, code at 0x8000.</summary>
    public const byte SipiVector = 0x08;

    /// <summary>AP stacks: vCPU n's stack top is <c>ApStacks + n·0x1000</c> (below the loader's page tables).</summary>
    public const ulong ApStacks = 0x21000;

    /// <summary>Assembles a 64-bit image at <see cref="Code"/>; <paramref name="labelRip"/> resolves labels afterwards.</summary>
    public static byte[] Assemble(Action<Assembler> body, out Func<Label, ulong> labelRip)
    {
        var a = new Assembler(64);
        body(a);
        using var ms = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(ms), Code, BlockEncoderOptions.ReturnNewInstructionOffsets);
        labelRip = l => result.GetLabelRIP(l);
        return ms.ToArray();
    }

    /// <summary>A machine with <paramref name="cpus"/> vCPUs running <paramref name="image"/> (and the AP trampoline to <paramref name="apEntry"/>).</summary>
    public static Machine Boot(byte[] image, int cpus, Stream console, ulong apEntry = 0, string[]? cpu = null,
        Emulator.Mmu.Fault.ApicvToggle toggle = Emulator.Mmu.Fault.ApicvToggle.Zap, Emulator.Core.Timing.CostTable? costs = null,
        ApicvNestedInhibit nested = ApicvNestedInhibit.Vm)
    {
        var m = new Machine(new MachineOptions { MemorySize = 64 << 20, Cpus = cpus, ConsoleOutput = console, CpuFeatures = cpu ?? [], ApicvToggle = toggle, Costs = costs, ApicvNested = nested });
        m.Load(image, new BootOptions { Format = ImageFormat.Flat, LoadAddress = Code, Mode = EntryMode.Long });
        if (apEntry != 0)
        {
            InstallTrampoline(m, apEntry);
        }

        return m;
    }

    /// <summary>The AP trampoline at the Startup vector's page (<see cref="ApTrampoline"/>), far-jumping to <paramref name="apEntry"/>.</summary>
    private static void InstallTrampoline(Machine m, ulong apEntry) =>
        Assert.That(ApTrampoline.Install(m.Memory, SipiVector, apEntry), Is.True);

    /// <summary>Writes the 64-bit interrupt gate for <paramref name="vector"/> → <paramref name="handler"/> (clobbers RAX, RDI).</summary>
    public static void SetGate(Assembler a, int vector, Label handler)
    {
        a.lea(rax, __[handler]);
        a.mov(rdi, Idt + ((ulong)vector * 16));
        a.mov(__word_ptr[rdi], ax);
        a.mov(__word_ptr[rdi + 2], BootState.Code64Selector);
        a.mov(__word_ptr[rdi + 4], 0x8E00); // present, DPL 0, 64-bit interrupt gate
        a.shr(rax, 16);
        a.mov(__word_ptr[rdi + 6], ax);
        a.shr(rax, 16);
        a.mov(__dword_ptr[rdi + 8], eax);
        a.mov(__dword_ptr[rdi + 12], 0);
    }

    /// <summary>
    /// LIDT of the 256-entry IDT at <see cref="Idt"/>, after masking both 8259s as kvm-unit-tests' APIC tests do:
    /// the firmware handoff leaves the PIT's IRQ 0 unmasked at vector 8 through LINT0, which these guests do not
    /// handle (clobbers AL and flags).
    /// </summary>
    public static void LoadIdt(Assembler a)
    {
        a.mov(al, 0xFF);
        a.@out(0x21, al);
        a.@out(0xA1, al);
        a.mov(__word_ptr[IdtrAt], 0xFFF);
        a.mov(__qword_ptr[IdtrAt + 2], (int)Idt);
        a.lidt(__[IdtrAt]);
    }

    /// <summary>Loads RDX:RAX = TSC as one value in RAX (clobbers RDX).</summary>
    public static void Rdtsc64(Assembler a)
    {
        a.rdtsc();
        a.shl(rdx, 32);
        a.or(rax, rdx);
    }

    /// <summary>xAPIC register store through RBX = APIC base.</summary>
    public static void ApicWrite(Assembler a, int reg, uint value) => a.mov(__dword_ptr[rbx + reg], unchecked((int)value));

    /// <summary>WRMSR of a constant (clobbers RAX, RCX, RDX).</summary>
    public static void Wrmsr(Assembler a, uint msr, ulong value)
    {
        a.mov(ecx, msr);
        a.mov(eax, (uint)value);
        a.mov(edx, (uint)(value >> 32));
        a.wrmsr();
    }

    /// <summary>Ends the run through isa-debug-exit with status (<paramref name="code"/> &lt;&lt; 1) | 1.</summary>
    public static void Exit(Assembler a, int code)
    {
        a.mov(edx, 0xF4);
        a.mov(eax, code);
        a.@out(dx, eax);
        a.hlt();
    }

    /// <summary>Prints one character on the 0xE9 console (clobbers RAX, RDX).</summary>
    public static void PutChar(Assembler a, char c)
    {
        a.mov(edx, 0xE9);
        a.mov(al, (byte)c);
        a.@out(dx, al);
    }

    /// <summary>Emits a subroutine that prints EAX as eight hex digits on the 0xE9 console (preserves registers).</summary>
    public static void EmitPrintHex(Assembler a, Label entry)
    {
        var next = a.CreateLabel();
        var digit = a.CreateLabel();
        a.Label(ref entry);
        a.push(rax);
        a.push(rbx);
        a.push(rcx);
        a.push(rdx);
        a.mov(ebx, eax);
        a.mov(ecx, 8);
        a.Label(ref next);
        a.rol(ebx, 4);
        a.mov(eax, ebx);
        a.and(eax, 0xF);
        a.cmp(eax, 10);
        a.jb(digit);
        a.add(eax, 'A' - '0' - 10);
        a.Label(ref digit);
        a.add(eax, '0');
        a.mov(edx, 0xE9);
        a.@out(dx, al);
        a.dec(ecx);
        a.jnz(next);
        a.pop(rdx);
        a.pop(rcx);
        a.pop(rbx);
        a.pop(rax);
        a.ret();
    }

    public static string Text(MemoryStream console) => Encoding.ASCII.GetString(console.ToArray());

    public static ulong Stat(Machine m, string name)
    {
        foreach (var (n, v) in m.Stats())
        {
            if (n == name)
            {
                return v;
            }
        }

        throw new KeyNotFoundException(name);
    }
}
