using Emulator.Core.Devices.Apic;
using Emulator.Svm.Run;
using Iced.Intel;
using static Emulator.Tests.Core.Devices.Apic.ApicGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Devices.Apic;

/// <summary>
/// SMP guests: the BSP starts every AP with INIT, INIT de-assert and two Startup IPIs (the AP trampoline
/// switches to long mode), then a token travels round the ring of vCPUs as fixed IPIs. Each handler checks
/// that the token names it (a duplicate or misdirected IPI would not), counts itself, and passes the token
/// on; a lost IPI would stop the ring and leave every vCPU halted.
/// </summary>
public sealed class SmpIpiTests
{
    private const int RingVector = 0x60, DoneVector = 0x61;

    // Data layout (offsets from ApicGuest.Data).
    private const int Token = 0x00, Hops = 0x08, Done = 0x10, Errors = 0x18, Ready = 0x40, Counters = 0x100;

    /// <summary>The ring guest for <paramref name="cpus"/> vCPUs, through x2APIC MSRs or the xAPIC page.</summary>
    internal static byte[] RingGuest(int cpus, bool x2, int hops, out ulong apEntry)
    {
        Label apLabel = default;
        var image = Assemble(
            a =>
            {
                var ring = a.CreateLabel();
                var done = a.CreateLabel();
                var printHex = a.CreateLabel();
                apLabel = a.CreateLabel();

                // BSP.
                SetGate(a, RingVector, ring);
                SetGate(a, DoneVector, done);
                LoadIdt(a);
                EnableApic(a, x2);
                for (int id = 1; id < cpus; id++)
                {
                    SendIpi(a, x2, (uint)id, 0x4500); // INIT, level assert
                    SendIpi(a, x2, (uint)id, 0x8500); // INIT level de-assert (ignored)
                    SendIpi(a, x2, (uint)id, 0x4600 | SipiVector); // Startup
                    SendIpi(a, x2, (uint)id, 0x4600 | SipiVector); // second Startup: the AP no longer waits, ignored
                    var wait = a.CreateLabel();
                    a.Label(ref wait);
                    a.pause();
                    a.cmp(__qword_ptr[Data + Ready + ((ulong)id * 8)], 0);
                    a.je(wait);
                }

                a.mov(__qword_ptr[Data + Token], 1 % cpus);
                SendIpi(a, x2, (uint)(1 % cpus), RingVector);
                var idle = a.CreateLabel();
                var finish = a.CreateLabel();
                a.Label(ref idle);
                a.cli();
                a.cmp(__qword_ptr[Data + Done], 0);
                a.jne(finish);
                a.sti();
                a.hlt();
                a.jmp(idle);
                a.Label(ref finish);
                for (int id = 0; id < cpus; id++)
                {
                    a.mov(rax, __qword_ptr[Data + Counters + ((ulong)id * 8)]);
                    a.call(printHex);
                    PutChar(a, ' ');
                }

                a.mov(rax, __qword_ptr[Data + Errors]);
                a.call(printHex);
                PutChar(a, '\n');
                Exit(a, 0);

                // Application processors arrive here in long mode from the trampoline.
                a.Label(ref apLabel);
                a.mov(eax, BootStateData);
                a.mov(ds, ax);
                a.mov(es, ax);
                a.mov(ss, ax);
                a.mov(eax, 1);
                a.cpuid();
                a.shr(ebx, 24); // initial APIC ID
                a.mov(esi, ebx);
                a.mov(eax, ebx);
                a.shl(eax, 12);
                a.add(eax, (int)ApStacks);
                a.mov(esp, eax);
                a.lidt(__[IdtrAt]);
                EnableApic(a, x2);
                a.mov(__qword_ptr[rsi * 8 + (long)(Data + Ready)], 1);
                var apIdle = a.CreateLabel();
                a.sti();
                a.Label(ref apIdle);
                a.hlt();
                a.jmp(apIdle);

                // The ring handler: check and count the token, pass it on (or finish), EOI.
                var ok = a.CreateLabel();
                var pass = a.CreateLabel();
                var noWrap = a.CreateLabel();
                var eoi = a.CreateLabel();
                a.Label(ref ring);
                a.push(rax);
                a.push(rbx);
                a.push(rcx);
                a.push(rdx);
                a.push(rsi);
                if (x2)
                {
                    a.mov(ecx, 0x802);
                    a.rdmsr();
                    a.mov(esi, eax);
                }
                else
                {
                    a.mov(ebx, XapicBase);
                    a.mov(esi, __dword_ptr[rbx + ApicReg.Id]);
                    a.shr(esi, 24);
                }

                a.cmp(__qword_ptr[Data + Token], rsi);
                a.je(ok);
                a.inc(__qword_ptr[Data + Errors]);
                a.Label(ref ok);
                a.inc(__qword_ptr[rsi * 8 + (long)(Data + Counters)]);
                a.mov(rax, __qword_ptr[Data + Hops]);
                a.inc(rax);
                a.mov(__qword_ptr[Data + Hops], rax);
                a.cmp(rax, hops);
                a.jb(pass);
                a.mov(__qword_ptr[Data + Done], 1);
                SendIpi(a, x2, 0, DoneVector); // wake the BSP
                a.jmp(eoi);
                a.Label(ref pass);
                a.lea(edx, __[rsi + 1]);
                a.cmp(edx, cpus);
                a.jb(noWrap);
                a.xor(edx, edx);
                a.Label(ref noWrap);
                a.mov(__qword_ptr[Data + Token], rdx);
                if (x2)
                {
                    a.mov(ecx, 0x830);
                    a.mov(eax, RingVector); // fixed, physical; EDX = destination
                    a.wrmsr();
                }
                else
                {
                    a.shl(edx, 24);
                    a.mov(__dword_ptr[rbx + ApicReg.IcrHigh], edx);
                    ApicWrite(a, ApicReg.IcrLow, RingVector);
                }

                a.Label(ref eoi);
                Eoi(a, x2);
                a.pop(rsi);
                a.pop(rdx);
                a.pop(rcx);
                a.pop(rbx);
                a.pop(rax);
                a.iretq();

                a.Label(ref done);
                a.push(rax);
                a.push(rcx);
                a.push(rdx);
                a.push(rbx);
                Eoi(a, x2);
                a.pop(rbx);
                a.pop(rdx);
                a.pop(rcx);
                a.pop(rax);
                a.iretq();

                EmitPrintHex(a, printHex);
            },
            out var labelRip);
        apEntry = labelRip(apLabel);
        return image;
    }

    private const int BootStateData = Emulator.Core.Loaders.BootState.DataSelector;

    /// <summary>x2APIC: set EXTD (xAPIC → x2APIC) and SVR through MSRs; xAPIC: RBX = page, SVR store.</summary>
    private static void EnableApic(Assembler a, bool x2)
    {
        if (x2)
        {
            a.mov(ecx, 0x1B);
            a.rdmsr();
            a.or(eax, 0x400);
            a.wrmsr();
            Wrmsr(a, 0x80F, 0x1FF);
        }
        else
        {
            a.mov(ebx, XapicBase);
            ApicWrite(a, ApicReg.Svr, 0x1FF);
        }
    }

    private static void SendIpi(Assembler a, bool x2, uint destination, uint icrLow)
    {
        if (x2)
        {
            Wrmsr(a, 0x830, ((ulong)destination << 32) | icrLow);
        }
        else
        {
            a.mov(ebx, XapicBase);
            ApicWrite(a, ApicReg.IcrHigh, destination << 24);
            ApicWrite(a, ApicReg.IcrLow, icrLow);
        }
    }

    private static void Eoi(Assembler a, bool x2)
    {
        if (x2)
        {
            Wrmsr(a, 0x80B, 0);
        }
        else
        {
            a.mov(ebx, XapicBase);
            ApicWrite(a, ApicReg.Eoi, 0);
        }
    }

    private sealed record RingRun(string Console, ulong[] Counters, ulong Errors, ulong Hops, ulong[] Cycles, ulong IpisSent);

    private static RingRun Run(int cpus, bool x2, int hops)
    {
        var image = RingGuest(cpus, x2, hops, out ulong apEntry);
        using var console = new MemoryStream();
        using var m = Boot(image, cpus, console, apEntry);
        var r = m.Run(new RunLimits { MaxCycles = 20_000_000_000 });
        Assert.That(r.Reason, Is.EqualTo(StopReason.DebugExit), r.Message);
        var counters = new ulong[cpus];
        var cycles = new ulong[cpus];
        for (int i = 0; i < cpus; i++)
        {
            counters[i] = m.Memory.Read(Data + Counters + ((ulong)i * 8), 8);
            cycles[i] = Stat(m, $"vcpu.{i}.cycles");
            Assert.That(Stat(m, $"vcpu.{i}.startups"), Is.EqualTo(i == 0 ? 0UL : 2UL), $"vCPU {i} Startup IPIs");
        }

        return new RingRun(
            Text(console),
            counters,
            m.Memory.Read(Data + Errors, 8),
            m.Memory.Read(Data + Hops, 8),
            cycles,
            Stat(m, "apic.ipis_sent"));
    }

    private static void AssertRing(int cpus, bool x2, int hops)
    {
        var first = Run(cpus, x2, hops);
        Assert.That(first.Hops, Is.EqualTo((ulong)hops));
        Assert.That(first.Errors, Is.EqualTo(0UL), "no duplicate or misdirected IPI");
        for (int i = 0; i < cpus; i++)
        {
            Assert.That(first.Counters[i], Is.EqualTo((ulong)(hops / cpus)), $"vCPU {i} took its share: no loss");
        }

        // INIT, de-assert and two Startups per AP, the ring's hops, and the final wake-up.
        Assert.That(first.IpisSent, Is.EqualTo((ulong)((4 * (cpus - 1)) + hops + 1)));
        string expected = string.Concat(first.Counters.Select(c => $"{c:X8} ")) + "00000000\n";
        Assert.That(first.Console, Is.EqualTo(expected));

        var second = Run(cpus, x2, hops);
        Assert.That(second.Console, Is.EqualTo(first.Console), "deterministic console");
        Assert.That(second.Cycles, Is.EqualTo(first.Cycles), "deterministic vcpu.N.cycles");
    }

    [Test]
    public void TwoVcpusXapic() => AssertRing(2, x2: false, hops: 2_000);

    [Test]
    public void FourVcpusXapic() => AssertRing(4, x2: false, hops: 2_000);

    [Test]
    public void FourVcpusX2Apic() => AssertRing(4, x2: true, hops: 100_000);
}
