using System.Diagnostics;
using System.Text;
using Emulator.Core.Cpu;
using Iced.Intel;

namespace Emulator.Tests.Core.Differential;

/// <summary>
/// Differential test of the integer instruction set against the host CPU: random sequences run
/// natively and in the interpreter from the same GPRs, RFLAGS and data memory; every GPR but RSP,
/// the data region and RFLAGS (less the flags the manual leaves undefined, tracked per instruction in
/// <see cref="FlagEffect"/>) must agree. Seeds are fixed; a failure names the seed, the first
/// instruction whose result differs, and both states.
/// </summary>
[NonParallelizable]
public class DifferentialTests
{
    private const int PerSequence = 40;
    private const ulong Compared = Rflags.Arith | Rflags.DF;

    private static HostCpu? s_host;

    [OneTimeSetUp]
    public void Setup() => s_host = HostCpu.TryCreate();

    [OneTimeTearDown]
    public void Teardown()
    {
        s_host?.Dispose();
        s_host = null;
    }

    // Group, seed, instruction count. The default run totals 100,000 random instances.
    [TestCase(DiffGroup.Alu, 1001, 24_000)]
    [TestCase(DiffGroup.Shift, 2002, 20_000)]
    [TestCase(DiffGroup.MulDiv, 3003, 10_000)]
    [TestCase(DiffGroup.Bit, 4004, 10_000)]
    [TestCase(DiffGroup.Cond, 5005, 10_000)]
    [TestCase(DiffGroup.Move, 6006, 6_000)]
    [TestCase(DiffGroup.Mixed, 7007, 20_000)]
    [TestCase(DiffGroup.String, 8008, 4_000)]
    public void RandomSequencesMatchTheHost(DiffGroup group, int seed, int instructions)
    {
        HostCpu host = s_host ?? throw new IgnoreException("the host is not x86-64 Linux (or refuses RWX/fixed mappings)");
        if (SequenceGenerator.CodeCount(group) == 0)
        {
            Assert.Ignore($"no implemented instructions in group {group} yet");
        }

        var sw = Stopwatch.StartNew();
        var rng = new Random(seed);
        var gen = new SequenceGenerator(rng, host.DataAddress);
        int done = 0, sequence = 0;
        while (done < instructions)
        {
            List<Step> steps = gen.Generate(group, PerSequence);
            MachineState init = RandomState(rng);
            string? failure = Check(host, steps, init);
            if (failure != null)
            {
                Assert.Fail($"group {group}, seed {seed}, sequence {sequence}:\n{failure}");
            }

            done += PerSequence;
            sequence++;
        }

        TestContext.Out.WriteLine($"{group}: {done} instructions in {sequence} sequences, {sw.Elapsed.TotalSeconds:F2} s, {gen.RegisterAddressed} base/index memory operands");
        if (group != DiffGroup.Mixed)
        {
            var missing = SequenceGenerator.Codes(group).Where(c => !gen.Emitted.Contains(c)).ToList();
            Assert.That(missing, Is.Empty, "codes of the group never generated");
        }
    }

    private static MachineState RandomState(Random rng)
    {
        var s = new MachineState();
        for (int i = 0; i < 16; i++)
        {
            s.Gpr[i] = rng.Next(6) switch
            {
                0 => 0,
                1 => ulong.MaxValue,
                2 => (ulong)rng.Next(256),
                3 => 0x8000_0000_0000_0000UL >> (rng.Next(4) * 8 + 32),
                _ => (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63),
            };
        }

        s.Gpr[Reg.RSP] = 0;
        s.Flags = ((ulong)rng.Next() & Rflags.Arith) | Rflags.Reserved1;
        rng.NextBytes(s.Data);
        return s;
    }

    private static byte[] Assemble(List<Step> steps, int count)
    {
        var a = new Assembler(64);
        for (int i = 0; i < count; i++)
        {
            a.AddInstruction(steps[i].Ins);
        }

        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), 0);
        return ms.ToArray();
    }

    /// <summary>Runs the whole sequence; on a difference, finds the first instruction that causes it.</summary>
    private static string? Check(HostCpu host, List<Step> steps, MachineState init)
    {
        if (Compare(host, steps, steps.Count, init, out _) == null)
        {
            return null;
        }

        for (int k = 1; k <= steps.Count; k++)
        {
            string? d = Compare(host, steps, k, init, out MachineState before);
            if (d != null)
            {
                var sb = new StringBuilder();
                Instruction bad = steps[k - 1].Ins;
                byte[] all = Assemble(steps, k);
                byte[] prev = Assemble(steps, k - 1);
                sb.AppendLine($"first difference at instruction {k - 1}: {Format(bad)}   bytes {Convert.ToHexString(all, prev.Length, all.Length - prev.Length)}");
                sb.AppendLine("state before it (host):");
                sb.Append(Dump(before));
                sb.Append(d);
                sb.AppendLine("sequence:");
                for (int i = 0; i < k; i++)
                {
                    sb.AppendLine($"  {(steps[i].Counted ? ' ' : '+')} {Format(steps[i].Ins)}");
                }

                return sb.ToString();
            }
        }

        return "the whole sequence differs but no prefix does (flag masking?)";
    }

    private static string Format(in Instruction ins)
    {
        var f = new NasmFormatter();
        var o = new StringOutput();
        f.Format(ins, o);
        return o.ToStringAndReset();
    }

    private static string Dump(MachineState s)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < 16; i++)
        {
            sb.Append($"  {RegName(i),-3}={s.Gpr[i]:X16}");
            if (i % 4 == 3) sb.AppendLine();
        }

        sb.AppendLine($"  rflags={s.Flags & Compared:X}");
        return sb.ToString();
    }

    private static string RegName(int i) => ((Register)((int)Register.RAX + i)).ToString().ToLowerInvariant();

    /// <summary>Runs the first <paramref name="count"/> steps on both; null when they agree.</summary>
    private static string? Compare(HostCpu host, List<Step> steps, int count, MachineState init, out MachineState beforeLast)
    {
        byte[] code = Assemble(steps, count);
        MachineState native = init.Clone();
        host.Run(code, native);

        beforeLast = init.Clone();
        if (count > 1)
        {
            host.Run(Assemble(steps, count - 1), beforeLast);
        }

        MachineState emu = init.Clone();
        string? err = RunInterpreter(code, emu, host.DataAddress);
        if (err != null)
        {
            return err + "\n";
        }

        ulong poison = count > 0 ? steps[count - 1].PoisonAfter : 0;
        ulong mask = Compared & ~poison;
        var sb = new StringBuilder();
        for (int i = 0; i < 16; i++)
        {
            if (i != Reg.RSP && native.Gpr[i] != emu.Gpr[i])
            {
                sb.AppendLine($"  {RegName(i)}: host {native.Gpr[i]:X16} emu {emu.Gpr[i]:X16}");
            }
        }

        if ((native.Flags & mask) != (emu.Flags & mask))
        {
            sb.AppendLine($"  rflags (compared bits {mask:X}): host {native.Flags & mask:X} emu {emu.Flags & mask:X}");
        }

        for (int i = 0; i < HostCpu.DataSize; i++)
        {
            if (native.Data[i] != emu.Data[i])
            {
                sb.AppendLine($"  data +0x{i:X} (0x{host.DataAddress + (ulong)i:X}): host {native.Data[i]:X2} emu {emu.Data[i]:X2}");
                break;
            }
        }

        if (sb.Length == 0)
        {
            return null;
        }

        return "host final:\n" + Dump(native) + "emu final:\n" + Dump(emu) + "differences:\n" + sb;
    }

    /// <summary>Runs <paramref name="code"/> then HLT in a long-mode TestGuest from state <paramref name="s"/>.</summary>
    private static string? RunInterpreter(byte[] code, MachineState s, ulong dataAddress)
    {
        using var g = TestGuest.Long64(a =>
        {
            a.db(code);
            a.hlt();
        });
        Cpu c = g.Cpu;
        for (int i = 0; i < 16; i++)
        {
            if (i != Reg.RSP)
            {
                c.Gpr[i] = s.Gpr[i];
            }
        }

        c.FlagsBits = (s.Flags & Compared) | Rflags.Reserved1;
        c.LazyOp = LazyFlags.None;
        if (!g.Mem.TryLoad(dataAddress, s.Data))
        {
            return "data region outside guest RAM";
        }

        RunExit exit = g.Run(100_000);
        if (exit != RunExit.HaltedForever || c.Rip != TestGuest.CodeBase + (ulong)code.Length + 1)
        {
            return $"interpreter stopped with {exit} at RIP {c.Rip:X} (expected HLT at {TestGuest.CodeBase + (ulong)code.Length:X})";
        }

        for (int i = 0; i < 16; i++)
        {
            if (i != Reg.RSP)
            {
                s.Gpr[i] = c.Gpr[i];
            }
        }

        s.Flags = c.Rflags64;
        for (int i = 0; i < HostCpu.DataSize; i += 8)
        {
            BitConverter.TryWriteBytes(s.Data.AsSpan(i), g.ReadPhys(dataAddress + (ulong)i, 8));
        }

        return null;
    }
}
