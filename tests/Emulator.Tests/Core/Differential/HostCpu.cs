using System.Runtime.InteropServices;
using Iced.Intel;

namespace Emulator.Tests.Core.Differential;

/// <summary>
/// Runs instruction sequences on the host CPU: an RWX code page holds prologue (load 15 GPRs and
/// RFLAGS from a state block), the sequence, and an epilogue (store them back with PUSHFQ); a data
/// region at a fixed low address is the operand memory, at the same address the guest uses.
/// RSP is never an operand of a generated instruction, so the host stack stays intact.
/// </summary>
internal sealed unsafe partial class HostCpu : IDisposable
{
    public const int DataSize = 0x2000;
    private const int CodeSize = 0x10000;

    // Candidate data addresses: inside the 16 MiB TestGuest RAM, clear of its code and page tables.
    private static readonly ulong[] s_dataCandidates = [0x0040_0000, 0x0060_0000, 0x0080_0000, 0x00A0_0000, 0x00C0_0000];

    private readonly byte* _code;
    private readonly ulong* _state;
    public ulong DataAddress { get; }

    public Span<byte> Data => new((void*)DataAddress, DataSize);

    private HostCpu(byte* code, ulong* state, ulong data)
    {
        _code = code;
        _state = state;
        DataAddress = data;
    }

    /// <summary>The host runner, or null when the host is not x86-64 Linux or refuses the mappings.</summary>
    public static HostCpu? TryCreate()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return null;
        }

        void* code = Mmap(null, CodeSize, ProtRead | ProtWrite | ProtExec, MapPrivate | MapAnonymous, -1, 0);
        if (code == MapFailed)
        {
            return null;
        }

        void* state = Mmap(null, 0x1000, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        foreach (ulong want in s_dataCandidates)
        {
            void* p = Mmap((void*)want, DataSize, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapFixedNoReplace, -1, 0);
            if (p == (void*)want)
            {
                return new HostCpu((byte*)code, (ulong*)state, want);
            }

            if (p != MapFailed)
            {
                _ = Munmap(p, DataSize);
            }
        }

        _ = Munmap(code, CodeSize);
        _ = Munmap(state, 0x1000);
        return null;
    }

    // State block layout: GPR i at slot i (RSP's slot unused), RFLAGS at slot 16.
    private const int FlagsSlot = 16;

    /// <summary>Runs <paramref name="sequence"/> (position-independent bytes) from <paramref name="s"/>; updates it in place.</summary>
    public void Run(ReadOnlySpan<byte> sequence, MachineState s)
    {
        byte[] pro = s_prologue ??= BuildPrologue();
        byte[] epi = s_epilogue ??= BuildEpilogue();
        if (pro.Length + sequence.Length + epi.Length > CodeSize)
        {
            throw new ArgumentException("sequence too long", nameof(sequence));
        }

        var code = new Span<byte>(_code, CodeSize);
        pro.CopyTo(code);
        sequence.CopyTo(code[pro.Length..]);
        epi.CopyTo(code[(pro.Length + sequence.Length)..]);
        for (int i = 0; i < 16; i++)
        {
            _state[i] = s.Gpr[i];
        }

        _state[FlagsSlot] = s.Flags;
        s.Data.CopyTo(Data);
        var fn = (delegate* unmanaged<ulong*, void>)_code;
        fn(_state);
        for (int i = 0; i < 16; i++)
        {
            if (i != 4)
            {
                s.Gpr[i] = _state[i];
            }
        }

        s.Flags = _state[FlagsSlot];
        Data.CopyTo(s.Data);
    }

    private static byte[]? s_prologue, s_epilogue;

    private static readonly AssemblerRegister64[] s_regs =
    [
        AssemblerRegisters.rax, AssemblerRegisters.rcx, AssemblerRegisters.rdx, AssemblerRegisters.rbx,
        AssemblerRegisters.rsp, AssemblerRegisters.rbp, AssemblerRegisters.rsi, AssemblerRegisters.rdi,
        AssemblerRegisters.r8, AssemblerRegisters.r9, AssemblerRegisters.r10, AssemblerRegisters.r11,
        AssemblerRegisters.r12, AssemblerRegisters.r13, AssemblerRegisters.r14, AssemblerRegisters.r15,
    ];

    private static byte[] BuildPrologue()
    {
        var a = new Assembler(64);
        var rdi = AssemblerRegisters.rdi;
        a.push(AssemblerRegisters.rbx);
        a.push(AssemblerRegisters.rbp);
        a.push(AssemblerRegisters.r12);
        a.push(AssemblerRegisters.r13);
        a.push(AssemblerRegisters.r14);
        a.push(AssemblerRegisters.r15);
        a.push(rdi);
        a.push(AssemblerRegisters.__qword_ptr[rdi + (FlagsSlot * 8)]);
        a.popfq();
        for (int i = 0; i < 16; i++)
        {
            if (i is not 4 and not 7)
            {
                a.mov(s_regs[i], AssemblerRegisters.__qword_ptr[rdi + (i * 8)]);
            }
        }

        a.mov(rdi, AssemblerRegisters.__qword_ptr[rdi + (7 * 8)]);
        return Assemble(a);
    }

    private static byte[] BuildEpilogue()
    {
        var a = new Assembler(64);
        var rdi = AssemblerRegisters.rdi;
        var rsp = AssemblerRegisters.rsp;
        a.pushfq();
        a.push(rdi);
        a.mov(rdi, AssemblerRegisters.__qword_ptr[rsp + 16]);
        a.pop(AssemblerRegisters.__qword_ptr[rdi + (7 * 8)]);
        a.pop(AssemblerRegisters.__qword_ptr[rdi + (FlagsSlot * 8)]);
        for (int i = 0; i < 16; i++)
        {
            if (i is not 4 and not 7)
            {
                a.mov(AssemblerRegisters.__qword_ptr[rdi + (i * 8)], s_regs[i]);
            }
        }

        a.add(rsp, 8);
        a.cld();
        a.pop(AssemblerRegisters.r15);
        a.pop(AssemblerRegisters.r14);
        a.pop(AssemblerRegisters.r13);
        a.pop(AssemblerRegisters.r12);
        a.pop(AssemblerRegisters.rbp);
        a.pop(AssemblerRegisters.rbx);
        a.ret();
        return Assemble(a);
    }

    private static byte[] Assemble(Assembler a)
    {
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), 0);
        return ms.ToArray();
    }

    public void Dispose()
    {
        _ = Munmap(_code, CodeSize);
        _ = Munmap(_state, 0x1000);
        _ = Munmap((void*)DataAddress, DataSize);
    }

    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20, MapFixedNoReplace = 0x100000;
    private static readonly void* MapFailed = (void*)-1;

    [LibraryImport("libc", EntryPoint = "mmap")]
    private static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Munmap(void* addr, nuint length);
}

/// <summary>GPRs, RFLAGS and the data region: the input and output of one differential run.</summary>
internal sealed class MachineState
{
    public ulong[] Gpr { get; } = new ulong[16];
    public ulong Flags { get; set; }
    public byte[] Data { get; } = new byte[HostCpu.DataSize];

    public MachineState Clone()
    {
        var c = new MachineState { Flags = Flags };
        Gpr.CopyTo(c.Gpr, 0);
        Data.CopyTo(c.Data, 0);
        return c;
    }
}
