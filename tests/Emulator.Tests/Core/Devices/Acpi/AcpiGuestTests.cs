using Emulator.Core.Cpu;
using Emulator.Core.Devices.Acpi;
using Emulator.Core.Loaders;
using Emulator.Core.Timing;
using Emulator.Svm.Run;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Acpi;

/// <summary>
/// Guests that find the firmware interfaces the way test kernels do — ACPI tables by scanning the BIOS
/// area, the PM timer, PCI configuration space, fw_cfg — running on the whole machine.
/// </summary>
public class AcpiGuestTests
{
    private const ulong CodeBase = 0x100000, Buffer = 0x200000;
    private const ulong MemorySize = 64 << 20;

    internal static Machine NewMachine(int cpus = 1, Stream? console = null) => new(new MachineOptions { MemorySize = MemorySize, Cpus = cpus, ConsoleOutput = console });

    internal static RunResult Run(Machine m, Action<Assembler> body, ulong startCycles = 0)
    {
        var a = new Assembler(64);
        body(a);
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), CodeBase);
        m.Load(ms.ToArray(), new BootOptions { Format = ImageFormat.Flat, LoadAddress = CodeBase, Mode = EntryMode.Long });
        m.Cpu.Cycles = startCycles;
        return m.Run(new RunLimits { MaxInstructions = 20_000_000 });
    }

    /// <summary>AL = byte sum of [RDI, RDI + RCX); clobbers RDI, RCX.</summary>
    private static void EmitSum(Assembler a, Label sum)
    {
        var loop = a.CreateLabel();
        a.Label(ref sum);
        a.xor(eax, eax);
        a.Label(ref loop);
        a.add(al, __byte_ptr[rdi]);
        a.inc(rdi);
        a.dec(rcx);
        a.jnz(loop);
        a.ret();
    }

    /// <summary>
    /// Scans 0xE0000–0xFFFFF for "RSD PTR ", checks the RSDP's two checksums and the RSDT's, walks the RSDT
    /// checking each table's checksum, finds the MADT, checks the XSDT lists the same MADT, and counts the
    /// enabled Processor Local APIC entries. Exit status through isa-debug-exit: errors &lt;&lt; 8 | count.
    /// </summary>
    internal static void AcpiWalker(Assembler a)
    {
        var sum = a.CreateLabel();
        var scan = a.CreateLabel();
        var found = a.CreateLabel();
        var done = a.CreateLabel();
        var entries = a.CreateLabel();
        var notMadt = a.CreateLabel();
        var madtWalk = a.CreateLabel();
        var madtNext = a.CreateLabel();
        var xsdtLoop = a.CreateLabel();
        var xsdtNext = a.CreateLabel();
        var report = a.CreateLabel();

        a.xor(r15d, r15d); // error bits
        a.xor(r14d, r14d); // local APIC count
        a.xor(r13d, r13d); // MADT from the RSDT
        a.mov(rsi, 0xE0000);
        a.mov(rax, 0x2052_5450_2044_5352); // "RSD PTR "
        a.Label(ref scan);
        a.cmp(__qword_ptr[rsi], rax);
        a.je(found);
        a.add(rsi, 16);
        a.cmp(rsi, 0x100000);
        a.jb(scan);
        a.mov(r15d, 0x80);
        a.jmp(report);

        a.Label(ref found);
        a.mov(rdi, rsi);
        a.mov(ecx, 20);
        a.call(sum);
        a.test(al, al);
        a.setnz(al);
        a.movzx(eax, al);
        a.or(r15d, eax); // bit 0: RSDP checksum
        a.mov(rdi, rsi);
        a.mov(ecx, __dword_ptr[rsi + 20]);
        a.call(sum);
        a.test(al, al);
        a.jz(done);
        a.or(r15d, 2); // bit 1: RSDP extended checksum
        a.Label(ref done);

        // RSDT: signature, checksum, then every listed table.
        a.mov(ebx, __dword_ptr[rsi + 16]);
        a.cmp(__dword_ptr[rbx], 0x5444_5352); // "RSDT"
        var rsdtOk = a.CreateLabel();
        a.je(rsdtOk);
        a.or(r15d, 4);
        a.Label(ref rsdtOk);
        a.mov(rdi, rbx);
        a.mov(ecx, __dword_ptr[rbx + 4]);
        a.call(sum);
        a.test(al, al);
        var rsdtSum = a.CreateLabel();
        a.jz(rsdtSum);
        a.or(r15d, 4);
        a.Label(ref rsdtSum);
        a.lea(r8, __[rbx + 36]); // entry pointer
        a.mov(r9d, __dword_ptr[rbx + 4]);
        a.add(r9, rbx); // end of the RSDT
        a.Label(ref entries);
        a.cmp(r8, r9);
        a.jae(madtWalk);
        a.mov(edx, __dword_ptr[r8]);
        a.mov(rdi, rdx);
        a.mov(ecx, __dword_ptr[rdx + 4]);
        a.call(sum);
        a.test(al, al);
        var tableSum = a.CreateLabel();
        a.jz(tableSum);
        a.or(r15d, 8); // bit 3: a table's checksum
        a.Label(ref tableSum);
        a.cmp(__dword_ptr[rdx], 0x4349_5041); // "APIC"
        a.jne(notMadt);
        a.mov(r13, rdx);
        a.Label(ref notMadt);
        a.add(r8, 4);
        a.jmp(entries);

        // MADT: count enabled type-0 entries.
        a.Label(ref madtWalk);
        var haveMadt = a.CreateLabel();
        a.test(r13, r13);
        a.jnz(haveMadt);
        a.or(r15d, 16); // bit 4: no MADT
        a.jmp(report);
        a.Label(ref haveMadt);
        a.lea(r8, __[r13 + 44]);
        a.mov(r9d, __dword_ptr[r13 + 4]);
        a.add(r9, r13);
        var madtLoop = a.CreateLabel();
        a.Label(ref madtLoop);
        a.cmp(r8, r9);
        a.jae(xsdtLoop);
        a.cmp(__byte_ptr[r8], 0);
        a.jne(madtNext);
        a.test(__byte_ptr[r8 + 4], 1);
        a.jz(madtNext);
        a.inc(r14d);
        a.Label(ref madtNext);
        a.movzx(eax, __byte_ptr[r8 + 1]);
        a.add(r8, rax);
        a.jmp(madtLoop);

        // XSDT: it must list the same MADT (64-bit entries).
        a.Label(ref xsdtLoop);
        a.mov(rbx, __qword_ptr[rsi + 24]);
        a.lea(r8, __[rbx + 36]);
        a.mov(r9d, __dword_ptr[rbx + 4]);
        a.add(r9, rbx);
        var xsdtScan = a.CreateLabel();
        a.Label(ref xsdtScan);
        a.cmp(r8, r9);
        var xsdtMissing = a.CreateLabel();
        a.jae(xsdtMissing);
        a.cmp(__qword_ptr[r8], r13);
        a.je(report);
        a.Label(ref xsdtNext);
        a.add(r8, 8);
        a.jmp(xsdtScan);
        a.Label(ref xsdtMissing);
        a.or(r15d, 32); // bit 5: MADT not in the XSDT

        a.Label(ref report);
        a.mov(eax, r15d);
        a.shl(eax, 8);
        a.or(eax, r14d);
        a.mov(dx, 0xF4);
        a.@out(dx, eax);
        a.hlt();
        EmitSum(a, sum);
    }

    [TestCase(1)]
    [TestCase(4)]
    public void GuestFindsTheRsdpChecksTheTablesAndCountsOneLocalApicPerVcpu(int cpus)
    {
        using var m = NewMachine(cpus);
        var r = Run(m, AcpiWalker);
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        Assert.That(m.Cpu.Gpr[Reg.R15], Is.Zero, "error bits");
        Assert.That(r.ExitStatus, Is.EqualTo((cpus << 1) | 1));
    }

    /// <summary>The first cycle of the PM timer loop guest: 64 ticks before the 24-bit counter wraps.</summary>
    internal static readonly ulong PmTimerLoopStart = GuestClock.ToCycles(0xFF_FFC0, PmTimer.Frequency);

    /// <summary>
    /// Reads the PM timer 20,000 times: R13 counts steps that went backwards or jumped, R14 wraps, RBX/R8 the
    /// last and first counts, R10/R11 the TSC at both ends.
    /// </summary>
    internal static void PmTimerLoop(Assembler a)
    {
        const int Iterations = 20_000;
        var loop = a.CreateLabel();
        var noWrap = a.CreateLabel();
        var ok = a.CreateLabel();
        a.xor(r13d, r13d); // steps that went backwards (or jumped)
        a.xor(r14d, r14d); // wraps seen
        a.mov(r12d, Iterations);
        a.rdtsc();
        a.shl(rdx, 32);
        a.or(rax, rdx);
        a.mov(r10, rax); // TSC at the start
        a.mov(edx, 0x608);
        a.@in(eax, dx);
        a.mov(r8d, eax); // first count
        a.mov(ebx, eax);
        a.Label(ref loop);
        a.@in(eax, dx);
        a.mov(ecx, eax);
        a.sub(ecx, ebx);
        a.and(ecx, 0xFF_FFFF); // step modulo 2^24
        a.cmp(ecx, 0x1000);
        a.jbe(ok);
        a.inc(r13d);
        a.Label(ref ok);
        a.cmp(eax, ebx);
        a.jae(noWrap);
        a.inc(r14d);
        a.Label(ref noWrap);
        a.mov(ebx, eax);
        a.dec(r12d);
        a.jnz(loop);
        a.rdtsc();
        a.shl(rdx, 32);
        a.or(rax, rdx);
        a.mov(r11, rax); // TSC at the end
        a.hlt();
    }

    [Test]
    public void GuestSeesThePmTimerMonotonicAcrossTheWrapAtItsRate()
    {
        using var m = NewMachine();
        Run(m, PmTimerLoop, PmTimerLoopStart);

        var g = m.Cpu.Gpr;
        ulong ticks = (g[Reg.RBX] - g[Reg.R8]) & PmTimer.TimerMask;
        // Each IN exits to L0, which reads the counter inside the exit: the TSC window holds one round trip more
        // than the window between the first and the last read.
        ulong window = g[Reg.R11] - g[Reg.R10] - m.Cpu.Costs.VmexitRoundTrip;
        ulong expected = (ulong)((UInt128)window * PmTimer.Frequency / GuestClock.CyclesPerSecond);
        Assert.Multiple(() =>
        {
            Assert.That(g[Reg.R12], Is.Zero, "the loop ran to the end");
            Assert.That(g[Reg.R13], Is.Zero, "no step went backwards");
            Assert.That(g[Reg.R14], Is.EqualTo(1), "the counter wrapped once");
            Assert.That(ticks, Is.GreaterThan(64));
            Assert.That((double)ticks, Is.EqualTo((double)expected).Within(2), "3.579545 MHz against the TSC");
        });
    }

    [Test]
    public void GuestReadsTheHostBridgeAndAnAbsentFunctionThroughCf8()
    {
        using var m = NewMachine();
        Run(m, a =>
        {
            void Select(uint address)
            {
                a.mov(dx, 0xCF8);
                a.mov(eax, address);
                a.@out(dx, eax);
            }

            Select(0x8000_0000);
            a.mov(dx, 0xCFC);
            a.@in(eax, dx);
            a.mov(r8d, eax); // vendor, device
            a.mov(dx, 0xCFE);
            a.@in(ax, dx);
            a.movzx(r11d, ax); // device ID through the word lane
            Select(0x8000_0008);
            a.mov(dx, 0xCFC);
            a.@in(eax, dx);
            a.mov(r9d, eax); // class, revision
            Select(0x8000_0800); // device 1
            a.mov(dx, 0xCFC);
            a.@in(eax, dx);
            a.mov(r10d, eax);
            a.mov(dx, 0xCF8);
            a.@in(eax, dx);
            a.mov(r12d, eax); // CONFIG_ADDRESS reads back
            Select(0x0000_0000); // enable bit clear
            a.mov(dx, 0xCFC);
            a.@in(eax, dx);
            a.mov(r13d, eax);
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.Gpr[Reg.R8], Is.EqualTo(0x1237_8086));
            Assert.That(m.Cpu.Gpr[Reg.R11], Is.EqualTo(0x1237));
            Assert.That(m.Cpu.Gpr[Reg.R9], Is.EqualTo(0x0600_0002));
            Assert.That(m.Cpu.Gpr[Reg.R10], Is.EqualTo(0xFFFF_FFFF));
            Assert.That(m.Cpu.Gpr[Reg.R12], Is.EqualTo(0x8000_0800));
            Assert.That(m.Cpu.Gpr[Reg.R13], Is.EqualTo(0xFFFF_FFFF));
        });
    }

    [TestCase(1)]
    [TestCase(4)]
    public void GuestReadsCpuCountRamSizeAndTheE820FileFromFwCfg(int cpus)
    {
        using var m = NewMachine(cpus);
        Run(m, a =>
        {
            var ramLoop = a.CreateLabel();
            void Select(ushort key)
            {
                a.mov(dx, 0x510);
                a.mov(ax, key);
                a.@out(dx, ax);
                a.mov(dx, 0x511);
            }

            Select(0x0005); // NB_CPUS, le16
            a.@in(al, dx);
            a.movzx(r8d, al);
            a.@in(al, dx);
            a.movzx(eax, al);
            a.shl(eax, 8);
            a.or(r8d, eax);

            Select(0x0003); // RAM_SIZE, le64, read high byte last
            a.xor(r9d, r9d);
            a.mov(ecx, 8);
            a.Label(ref ramLoop);
            a.@in(al, dx);
            a.movzx(eax, al);
            a.shl(rax, 56);
            a.shr(r9, 8);
            a.or(r9, rax);
            a.dec(ecx);
            a.jnz(ramLoop);

            Select(0x0019); // file directory: be32 count, then 64-byte entries
            a.mov(rdi, Buffer);
            a.mov(ecx, 4 + 64);
            a.rep.insb();
            a.mov(r10d, __dword_ptr[Buffer]);
            a.bswap(r10d);
            a.mov(rax, 0x3032_3865_2F63_7465); // "etc/e820"
            a.xor(r11d, r11d);
            var notE820 = a.CreateLabel();
            a.cmp(__qword_ptr[Buffer + 4 + 8], rax);
            a.jne(notE820);
            a.movzx(eax, __word_ptr[Buffer + 4 + 4]);
            a.xchg(al, ah); // be16 select
            a.mov(r11d, eax);
            a.Label(ref notE820);

            a.mov(dx, 0x510);
            a.mov(eax, r11d);
            a.@out(dx, ax);
            a.mov(dx, 0x511);
            a.mov(rdi, Buffer + 0x100);
            a.mov(ecx, 40); // the first two e820 entries
            a.rep.insb();
            a.mov(r12, __qword_ptr[Buffer + 0x100 + 8]); // first entry's length
            a.mov(r13d, __dword_ptr[Buffer + 0x100 + 16]); // its type
            a.mov(r14, __qword_ptr[Buffer + 0x100 + 20]); // second entry's base
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.Gpr[Reg.R8], Is.EqualTo(cpus), "NB_CPUS");
            Assert.That(m.Cpu.Gpr[Reg.R9], Is.EqualTo(MemorySize), "RAM_SIZE");
            Assert.That(m.Cpu.Gpr[Reg.R10], Is.EqualTo(1), "files");
            Assert.That(m.Cpu.Gpr[Reg.R11], Is.EqualTo(0x20), "etc/e820 selector");
            Assert.That(m.Cpu.Gpr[Reg.R12], Is.EqualTo(0xA0000), "low RAM");
            Assert.That(m.Cpu.Gpr[Reg.R13], Is.EqualTo(1), "e820 RAM");
            Assert.That(m.Cpu.Gpr[Reg.R14], Is.EqualTo(0xA0000), "then the reserved hole");
        });
    }

    [Test]
    public void SoftOffThroughPm1aControlEndsTheRunWithStatusZero()
    {
        using var m = NewMachine();
        var r = Run(m, a =>
        {
            a.mov(dx, 0x604);
            a.mov(ax, 0x2000); // SLP_EN, SLP_TYP 0 (\_S5)
            a.@out(dx, ax);
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.jmp(spin); // the run stops before this spins
        });
        Assert.That(r.Reason, Is.EqualTo(StopReason.Shutdown));
        Assert.That(r.ExitStatus, Is.Zero);
    }

    [Test]
    public void ResetThroughCf9EndsTheRunWithStatusZero()
    {
        using var m = NewMachine();
        var r = Run(m, a =>
        {
            a.mov(dx, 0xCF9);
            a.mov(al, 0x06);
            a.@out(dx, al);
            a.hlt();
        });
        Assert.That(r.Reason, Is.EqualTo(StopReason.Shutdown));
        Assert.That(r.ExitStatus, Is.Zero);
    }

    [Test]
    public void PmTimerReadsFromTheMachinePortFollowTheCycleClock()
    {
        using var m = NewMachine();
        m.Cpu.Cycles = GuestClock.CyclesPerSecond;
        Assert.That(m.Memory.Io.In(PmTimer.PortBase + PmTimer.TimerOffset, 4), Is.EqualTo(3_579_545));
    }
}
