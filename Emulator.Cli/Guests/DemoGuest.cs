using System.Buffers.Binary;
using System.Text;
using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Cli.Guests;

/// <summary>
/// The guest <c>emu boot</c> runs without an image: a 64-bit L1 (under L0's NPT, like every boot) that programs COM1,
/// prints a banner, a checksum computed by a loop (so the output depends on real execution) and the CPUID vendor
/// string, then walks through the paths of L0's AVIC model (DemoGuest.Apic.cs: APIC traffic served by AVIC, an L2
/// run under L1's nested paging in DemoGuest.Nested.cs, and an APICv inhibit/uninhibit cycle from the PIT's ExtINT),
/// and ends the run through the Bochs shutdown port (process exit status 0). It is entered by
/// <see cref="BootState.EnterLong64"/> with an IDT whose #UD gate reports CPUID as unavailable. After the run
/// <see cref="WriteSummary"/> prints the counters that show each path (DemoGuest.Summary.cs).
/// </summary>
public static partial class DemoGuest
{
    public const ulong CodeBase = 0x100000;

    /// <summary>Data the demo writes (the vendor string), on its own page so code pages stay unmodified.</summary>
    public const ulong DataBase = 0x110000;

    /// <summary>IDT of the demo (256 gates; #UD and the interrupt vectors are present), in low RAM below the boot GDT.</summary>
    public const ulong IdtBase = 0x8000;

    /// <summary>Guest RAM the demo needs: code and data in the second MiB, L2's result page at 2 MiB.</summary>
    public const ulong MinMemory = 4UL << 20;

    public const uint ChecksumSeed = 0x1234_5678;
    public const int ChecksumRounds = 100_000;

    public const string Banner = "emu: built-in guest (64-bit long mode)";
    public const string ChecksumLabel = "checksum: 0x";
    public const string VendorLabel = "cpu vendor: ";
    public const string NoCpuid = "cpu vendor: (CPUID unavailable)";
    public const string Farewell = "emu: built-in guest done";

    /// <summary>The demo's CPU (<c>--cpu</c> when the user gives none): the default minus x2APIC, which 5.15's AVIC lacks.</summary>
    public static readonly IReadOnlyList<string> MachineFeatures = ["-x2apic"];

    /// <summary>The demo's NESTED inhibit (<c>--apicv-nested</c> when the user gives none): 5.19's, so L1 keeps AVIC.</summary>
    public const Emulator.Svm.Run.ApicvNestedInhibit MachineNested = Emulator.Svm.Run.ApicvNestedInhibit.Vcpu;

    /// <summary>Exit status of a successful demo run (Bochs shutdown port).</summary>
    public const int SuccessStatus = 0;

    private const int UdVector = 6;

    /// <summary>The checksum loop's result: x ← x·31 + i for i = 1..rounds, modulo 2^64.</summary>
    public static ulong ExpectedChecksum()
    {
        ulong x = ChecksumSeed;
        for (ulong i = 1; i <= ChecksumRounds; i++)
        {
            x = unchecked((x * 31) + i);
        }

        return x;
    }

    /// <summary>Writes the demo into guest RAM and enters it in long mode.</summary>
    public static void Install(Cpu cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        ulong stack = ImageLoader.StackTop(cpu.Phys);
        var a = new Assembler(64);
        var puts = a.CreateLabel();
        var putc = a.CreateLabel();
        var puthex = a.CreateLabel();
        var sum = a.CreateLabel();
        var noCpuid = a.CreateLabel();
        var done = a.CreateLabel();
        var udHandler = a.CreateLabel();
        var fatal = a.CreateLabel();
        var banner = a.CreateLabel();
        var checksumLabel = a.CreateLabel();
        var vendorLabel = a.CreateLabel();
        var noCpuidText = a.CreateLabel();
        var farewell = a.CreateLabel();
        var newline = a.CreateLabel();
        var shutdownText = a.CreateLabel();

        a.xor(r14d, r14d);

        // COM1: interrupts off, 115200 baud (divisor 1), 8N1, FIFOs on, DTR|RTS|OUT2.
        Port(a, 0x3F9, 0x00);
        Port(a, 0x3FB, 0x80);
        Port(a, 0x3F8, 0x01);
        Port(a, 0x3F9, 0x00);
        Port(a, 0x3FB, 0x03);
        Port(a, 0x3FA, 0xC7);
        Port(a, 0x3FC, 0x0B);
        a.lea(rsi, __[banner]);
        a.call(puts);

        // Checksum: x = x*31 + i, with x*31 computed as (x << 5) - x.
        a.mov(eax, ChecksumSeed);
        a.mov(ecx, 1);
        a.Label(ref sum);
        a.mov(rdx, rax);
        a.shl(rdx, 5);
        a.sub(rdx, rax);
        a.lea(rax, __[rdx + rcx]);
        a.inc(ecx);
        a.cmp(ecx, ChecksumRounds);
        a.jbe(sum);
        a.mov(r8, rax);
        a.lea(rsi, __[checksumLabel]);
        a.call(puts);
        a.call(puthex);
        a.lea(rsi, __[newline]);
        a.call(puts);

        // CPUID leaf 0: vendor string in EBX, EDX, ECX. R15 = 1 tells the #UD handler we are probing.
        a.mov(r15d, 1);
        a.xor(eax, eax);
        a.cpuid();
        a.xor(r15d, r15d);
        a.mov(edi, (uint)DataBase);
        a.mov(__dword_ptr[rdi], ebx);
        a.mov(__dword_ptr[rdi + 4], edx);
        a.mov(__dword_ptr[rdi + 8], ecx);
        a.mov(__byte_ptr[rdi + 12], 0);
        a.mov(r14d, 1); // CPUID works: the L2 part may probe SVM
        a.lea(rsi, __[vendorLabel]);
        a.call(puts);
        a.mov(esi, (uint)DataBase);
        a.call(puts);
        a.lea(rsi, __[newline]);
        a.call(puts);
        a.jmp(done);

        a.Label(ref noCpuid);
        a.lea(rsi, __[noCpuidText]);
        a.call(puts);

        a.Label(ref done);

        // The paths of L0's AVIC model (DemoGuest.Apic.cs, DemoGuest.Nested.cs).
        var text = new DemoLabels(a, puts, puthex);
        EmitApicTraffic(a, text);
        EmitNestedRun(a, text);
        EmitInhibitCycle(a, text);

        // The pc-testdev memory window is MMIO: L0's fault handler sends these accesses to instruction
        // emulation (mmu.pf.emulate in --stats), while the RAM the demo touched was mapped (mmu.pf.fixed).
        a.mov(edi, 0xFF000000u);
        a.mov(__qword_ptr[rdi], r8);
        a.mov(r9, __qword_ptr[rdi]);

        a.lea(rsi, __[farewell]);
        a.call(puts);

        GuestImage.EmitBochsShutdown(a, shutdownText);

        // #UD: during the CPUID probe, abandon the frame and report; otherwise stop (exit status 3).
        a.Label(ref udHandler);
        a.test(r15d, r15d);
        a.jz(fatal);
        a.xor(r15d, r15d);
        a.mov(rsp, stack);
        a.jmp(noCpuid);
        a.Label(ref fatal);
        a.hlt();
        a.jmp(fatal);

        // puts: prints the NUL-terminated string at RSI (clobbers AL, BL, DX, RSI).
        var putsEnd = a.CreateLabel();
        a.Label(ref puts);
        a.mov(al, __byte_ptr[rsi]);
        a.test(al, al);
        a.jz(putsEnd);
        a.call(putc);
        a.inc(rsi);
        a.jmp(puts);
        a.Label(ref putsEnd);
        a.ret();

        // putc: waits for THR empty (LSR bit 5), then writes AL to THR.
        a.Label(ref putc);
        var wait = a.CreateLabel();
        a.mov(bl, al);
        a.mov(edx, 0x3FD);
        a.Label(ref wait);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        a.mov(edx, 0x3F8);
        a.mov(al, bl);
        a.@out(dx, al);
        a.ret();

        // puthex: prints R8 as 16 lowercase hex digits (clobbers ECX, EAX, BL, DX).
        a.Label(ref puthex);
        var digit = a.CreateLabel();
        var decimalDigit = a.CreateLabel();
        a.mov(ecx, 16);
        a.Label(ref digit);
        a.rol(r8, 4);
        a.mov(eax, r8d);
        a.and(eax, 0xF);
        a.cmp(al, 10);
        a.jb(decimalDigit);
        a.add(al, (byte)('a' - '0' - 10));
        a.Label(ref decimalDigit);
        a.add(al, (byte)'0');
        a.call(putc);
        a.dec(ecx);
        a.jnz(digit);
        a.ret();

        GuestImage.Text(a, ref banner, Banner + "\n");
        GuestImage.Text(a, ref checksumLabel, ChecksumLabel);
        GuestImage.Text(a, ref vendorLabel, VendorLabel);
        GuestImage.Text(a, ref noCpuidText, NoCpuid + "\n");
        GuestImage.Text(a, ref farewell, Farewell + "\n");
        GuestImage.Text(a, ref newline, "\n");
        GuestImage.Text(a, ref shutdownText, "Shutdown");
        var handlers = EmitHandlers(a);
        text.EmitStrings(a);

        if (cpu.Phys.RamSize < MinMemory)
        {
            throw new LoaderException($"the built-in guest needs at least {MinMemory >> 20} MiB of guest RAM");
        }

        byte[] code = GuestImage.Assemble(a, CodeBase, out var result);
        if (!cpu.Phys.TryLoad(CodeBase, code))
        {
            throw new LoaderException("guest RAM is too small for the built-in guest");
        }

        var idt = new byte[256 * 16];
        WriteGate(idt.AsSpan(UdVector * 16), result.GetLabelRIP(udHandler));
        foreach (var (vector, label) in handlers)
        {
            WriteGate(idt.AsSpan(vector * 16), result.GetLabelRIP(label));
        }

        cpu.Phys.TryLoad(IdtBase, idt);
        BootState.EnterLong64(cpu, CodeBase, stack);
        cpu.Idtr = new TableRegister { Base = IdtBase, Limit = (ushort)(idt.Length - 1) };
        PrepareL2State(cpu, result.GetLabelRIP(text.L2Entry));
    }

    /// <summary>A 64-bit interrupt gate (APM vol. 2 §4.8.4): selector 0x08, DPL 0, present, type 0xE.</summary>
    private static void WriteGate(Span<byte> gate, ulong handler)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(gate, (ushort)handler);
        BinaryPrimitives.WriteUInt16LittleEndian(gate[2..], BootState.Code64Selector);
        gate[4] = 0;
        gate[5] = 0x8E;
        BinaryPrimitives.WriteUInt16LittleEndian(gate[6..], (ushort)(handler >> 16));
        BinaryPrimitives.WriteUInt32LittleEndian(gate[8..], (uint)(handler >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(gate[12..], 0);
    }

    private static void Port(Assembler a, ushort port, byte value)
    {
        a.mov(edx, port);
        a.mov(al, value);
        a.@out(dx, al);
    }
}
