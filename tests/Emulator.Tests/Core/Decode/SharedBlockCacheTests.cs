using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;
using Emulator.Core.Timing;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Decode;

/// <summary>
/// One decoded-block cache per VM: a block one vCPU decoded runs on the others without decoding it again, and a
/// write to a code page by any vCPU makes every vCPU run the new bytes.
/// </summary>
public sealed class SharedBlockCacheTests
{
    private const ulong Code = TestGuest.CodeBase;
    private const ulong Data = TestGuest.DataBase;

    /// <summary>A loop summing 1..100 into RAX, then HLT.</summary>
    private static byte[] SumLoop() => TestGuest.Assemble(64, a =>
    {
        var top = a.CreateLabel();
        a.xor(rax, rax);
        a.mov(ecx, 100);
        a.Label(ref top);
        a.add(rax, rcx);
        a.dec(ecx);
        a.jnz(top);
        a.hlt();
    });

    private static Cpu StartAt(PhysicalMemory mem, ulong rip, ulong stack)
    {
        var cpu = new Cpu(mem);
        BootState.EnterLong64(cpu, rip, stack);
        return cpu;
    }

    [Test]
    public void VcpusOfOneVmShareOneCache()
    {
        using var mem = PhysicalMemory.Create(16 << 20);
        var cpus = new[] { new Cpu(mem), new Cpu(mem), new Cpu(mem) };
        var (bytes, caches) = Cpu.DecodedBlockCacheFootprint(cpus);
        Assert.That(caches, Is.EqualTo(1));

        using var single = PhysicalMemory.Create(16 << 20);
        Assert.That(bytes, Is.EqualTo(Cpu.DecodedBlockCacheFootprint([new Cpu(single)]).Bytes));
    }

    [Test]
    public void AnotherCostTableGetsItsOwnCache()
    {
        // An op carries the cycles its table charges, so vCPUs charging differently cannot share blocks.
        using var mem = PhysicalMemory.Create(16 << 20);
        var costs = new CostTable();
        costs.SetClassCycles(CostClass.Simple, 2);
        var (_, caches) = Cpu.DecodedBlockCacheFootprint([new Cpu(mem), new Cpu(mem, costs), new Cpu(mem)]);
        Assert.That(caches, Is.EqualTo(2));
    }

    [Test]
    public void ASecondVcpuRunsTheBlocksTheFirstDecoded()
    {
        using var mem = PhysicalMemory.Create(16 << 20);
        Assert.That(mem.TryLoad(Code, SumLoop()), Is.True);
        var first = StartAt(mem, Code, 0x80000);
        var second = StartAt(mem, Code, 0x70000);

        Assert.That(first.Run(10_000), Is.EqualTo(RunExit.HaltedForever));
        ulong decoded = first.DecodeCacheMisses;
        Assert.That(decoded, Is.GreaterThan(0UL));

        Assert.That(second.Run(10_000), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(second.Gpr[Reg.RAX], Is.EqualTo(5050UL));
        Assert.That(second.DecodeCacheMisses, Is.EqualTo(decoded), "the second vCPU decoded nothing");
        Assert.That(second.Instructions, Is.EqualTo(first.Instructions));
    }

    [Test]
    public void AWriteByOneVcpuToCodeAnotherRanIsSeenByIt()
    {
        // vCPU A runs "mov eax, 1; hlt" at Code. vCPU B, running elsewhere, overwrites the immediate with 2. A is
        // then sent back to Code: it must run the new bytes, not the block it ran before (from its RIP cache).
        using var mem = PhysicalMemory.Create(16 << 20);
        byte[] target = TestGuest.Assemble(64, a =>
        {
            a.mov(eax, 1);
            a.hlt();
        });
        Assert.That(mem.TryLoad(Code, target), Is.True);
        // The imm32 of B8 id starts one byte into the instruction.
        byte[] writer = TestGuest.Assemble(64, a =>
        {
            a.mov(rdi, Code + 1);
            a.mov(__dword_ptr[rdi], 2);
            a.hlt();
        }, Data);
        Assert.That(mem.TryLoad(Data, writer), Is.True);

        var a = StartAt(mem, Code, 0x80000);
        var b = StartAt(mem, Data, 0x70000);
        Assert.That(a.Run(100), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(a.Gpr[Reg.RAX], Is.EqualTo(1UL));

        Assert.That(b.Run(100), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(a.DecodeCacheInvalidations, Is.EqualTo(1UL), "the shared cache dropped the page's block once");

        a.Rip = Code;
        a.Halted = false;
        Assert.That(a.Run(100), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(a.Gpr[Reg.RAX], Is.EqualTo(2UL));
    }
}
