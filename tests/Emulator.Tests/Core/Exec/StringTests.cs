using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

public class StringTests
{
    private static void Fill(TestGuest g, ulong at, params byte[] bytes) => g.Mem.TryLoad(at, bytes);

    private static TestGuest Guest(int bits, Action<Iced.Intel.Assembler> body) => ControlTests.Guest(bits, body);

    /// <summary>REP MOVSB with DF = 1 copies from the top down, so an overlapping move to a higher address is exact (memmove).</summary>
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void RepMovsbBackwardsOverlapping(int bits)
    {
        ulong buf = ControlTests.Data(bits);
        using var g = Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.push(0x402);
                a.popfq();
                a.mov(rsi, buf + 7);
                a.mov(rdi, buf + 9);
                a.mov(rcx, 8);
            }
            else if (bits == 32)
            {
                a.push(0x402);
                a.popfd();
                a.mov(esi, (uint)buf + 7);
                a.mov(edi, (uint)buf + 9);
                a.mov(ecx, 8);
            }
            else
            {
                a.push((short)0x402);
                a.popf();
                a.mov(si, (ushort)(buf + 7));
                a.mov(di, (ushort)(buf + 9));
                a.mov(cx, 8);
            }

            a.rep.movsb();
            a.hlt();
        });
        Fill(g, buf, 1, 2, 3, 4, 5, 6, 7, 8, 0xAA, 0xBB);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        byte[] expect = [1, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        for (int i = 0; i < expect.Length; i++)
        {
            Assert.That(g.ReadPhys(buf + (ulong)i, 1), Is.EqualTo((ulong)expect[i]), $"byte {i}");
        }

        Assert.That(g[Reg.RCX] & 0xFFFF, Is.EqualTo(0));
        Assert.That(g[Reg.RSI] & 0xFFFF, Is.EqualTo((buf - 1) & 0xFFFF));
        Assert.That(g[Reg.RDI] & 0xFFFF, Is.EqualTo((buf + 1) & 0xFFFF));
    }

    /// <summary>A run longer than one chunk restarts the instruction and still completes exactly.</summary>
    [Test]
    public void RepStosdLongRunCompletes()
    {
        const int n = 5000;
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rdi, buf);
            a.mov(ecx, n);
            a.mov(eax, 0x11223344);
            a.rep.stosd();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RCX], Is.EqualTo(0));
        Assert.That(g[Reg.RDI], Is.EqualTo(buf + (4 * n)));
        Assert.That(g.ReadPhys(buf, 4), Is.EqualTo(0x11223344));
        Assert.That(g.ReadPhys(buf + (4 * (n - 1)), 4), Is.EqualTo(0x11223344));
        Assert.That(g.ReadPhys(buf + (4 * n), 4), Is.EqualTo(0));
    }

    /// <summary>REPE CMPSB stops after the first mismatch with rCX counting what is left and the flags of that compare.</summary>
    [TestCase(32)]
    [TestCase(64)]
    [TestCase(16)]
    public void RepeCmpsbStopsAtMismatch(int bits)
    {
        ulong buf = ControlTests.Data(bits);
        using var g = Guest(bits, a =>
        {
            if (bits == 16)
            {
                a.mov(si, (ushort)buf);
                a.mov(di, (ushort)(buf + 0x10));
                a.mov(cx, 8);
            }
            else
            {
                a.mov(esi, (uint)buf);
                a.mov(edi, (uint)buf + 0x10);
                a.mov(ecx, 8);
            }

            a.repe.cmpsb();
            a.lahf();
            a.hlt();
        });
        Fill(g, buf, 1, 2, 3, 4, 5, 6, 7, 8);
        Fill(g, buf + 0x10, 1, 2, 3, 9, 5, 6, 7, 8);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RCX] & 0xFFFF, Is.EqualTo(4));
        Assert.That(g[Reg.RSI] & 0xFFFF, Is.EqualTo((buf + 4) & 0xFFFF));
        Assert.That(g[Reg.RDI] & 0xFFFF, Is.EqualTo((buf + 0x14) & 0xFFFF));

        // 4 − 9: ZF = 0, CF = 1 (borrow), SF = 1.
        ulong ah = (g[Reg.RAX] >> 8) & 0xFF;
        Assert.That(ah & 0x41, Is.EqualTo(0x01));
        Assert.That(ah & 0x80, Is.EqualTo(0x80));
    }

    /// <summary>REPNE SCASB as strlen: stops on the terminator, ZF = 1.</summary>
    [Test]
    public void RepneScasbFindsTerminator()
    {
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rdi, buf);
            a.mov(rcx, -1L);
            a.mov(al, 0);
            a.repne.scasb();
            a.lahf();
            a.hlt();
        });
        Fill(g, buf, (byte)'h', (byte)'e', (byte)'l', (byte)'l', (byte)'o', 0);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RDI], Is.EqualTo(buf + 6));
        Assert.That(g[Reg.RCX], Is.EqualTo(ulong.MaxValue - 6));
        Assert.That((g[Reg.RAX] >> 8) & 0x40, Is.EqualTo(0x40));
    }

    /// <summary>LODS, STOS and MOVS in every element size step rSI/rDI by that size.</summary>
    [Test]
    public void ElementSizesLong64()
    {
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rsi, buf);
            a.lodsb();
            a.mov(r8, rax);
            a.lodsw();
            a.mov(r9, rax);
            a.lodsd();
            a.mov(r10, rax);
            a.lodsq();
            a.mov(r11, rax);
            a.mov(rdi, buf + 0x100);
            a.stosq();
            a.mov(rsi, buf);
            a.movsw();
            a.hlt();
        });
        Fill(g, buf, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.R8] & 0xFF, Is.EqualTo(0x11));
        Assert.That(g[Reg.R9] & 0xFFFF, Is.EqualTo(0x3322));
        Assert.That(g[Reg.R10], Is.EqualTo(0x77665544));
        Assert.That(g[Reg.R11], Is.EqualTo(0xFFEEDDCCBBAA9988));
        Assert.That(g.ReadPhys(buf + 0x100, 8), Is.EqualTo(0xFFEEDDCCBBAA9988));
        Assert.That(g.ReadPhys(buf + 0x108, 2), Is.EqualTo(0x2211));
        Assert.That(g[Reg.RSI], Is.EqualTo(buf + 2));
        Assert.That(g[Reg.RDI], Is.EqualTo(buf + 0x10A));
    }

    /// <summary>With a 16-bit address size (67h in 32-bit code) SI wraps at 64 KiB and the upper half of ESI is kept.</summary>
    [Test]
    public void AddressSize16WrapsSi()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(esi, 0x0005FFFF);
            a.db(0x67, 0xAC); // lodsb with SI
            a.hlt();
        });
        g.Mem.TryLoad(0xFFFF, [0x5A]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX] & 0xFF, Is.EqualTo(0x5A));
        Assert.That(g[Reg.RSI], Is.EqualTo(0x00050000));
    }

    /// <summary>A segment override applies to the source (FS:rSI), never to ES:rDI.</summary>
    [Test]
    public void SourceSegmentOverride()
    {
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rsi, 0x10);
            a.mov(rdi, buf + 0x40);
            a.db(0x64, 0xA4); // movsb fs:[rsi] → es:[rdi]
            a.hlt();
        });
        g.Cpu.Seg[SegReg.FS].Base = buf;
        Fill(g, buf + 0x10, 0x7E);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(buf + 0x40, 1), Is.EqualTo(0x7E));
    }

    /// <summary>REP with rCX = 0 does nothing.</summary>
    [Test]
    public void RepWithZeroCountIsANop()
    {
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rdi, buf);
            a.mov(ecx, 0);
            a.mov(eax, 0x55);
            a.rep.stosb();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RDI], Is.EqualTo(buf));
        Assert.That(g.ReadPhys(buf, 1), Is.EqualTo(0));
    }

    /// <summary>
    /// A fault in the middle of REP STOSB leaves ECX and EDI describing the remaining work (here #GP at
    /// the ES limit after 16 bytes), and the frame's EIP points at the string instruction.
    /// </summary>
    [Test]
    public void RepFaultMidwayLeavesRemainingCount()
    {
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(edi, (uint)buf);   // 5 bytes
            a.mov(ecx, 32);          // 5 bytes
            a.mov(al, 0xEE);         // 2 bytes
            a.rep.stosb();
            a.hlt();
        });
        VectorCatcher.Install32(g);
        g.Cpu.Seg[SegReg.ES].Limit = (uint)buf + 15;
        g.Cpu.SegmentLoaded(SegReg.ES);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(13));
        Assert.That(g[Reg.RCX], Is.EqualTo(16));
        Assert.That(g[Reg.RDI], Is.EqualTo(buf + 16));
        Assert.That(g.ReadPhys(buf + 15, 1), Is.EqualTo(0xEE));
        Assert.That(g.ReadPhys(buf + 16, 1), Is.EqualTo(0));
        Assert.That(g.ReadPhys(g[Reg.RSP] + 4, 4), Is.EqualTo(TestGuest.CodeBase + 12));
    }

    /// <summary>
    /// With a 32-bit address size in 64-bit mode, REP writes ECX/EDI (zero-extending RCX/RDI) even when
    /// the count is zero, and a run steps EDI with the upper half cleared (values measured on hardware).
    /// </summary>
    [TestCase(0x1_0000_0000UL, 0UL, 0x0020_0000UL)]
    [TestCase(0x1_0000_0002UL, 0UL, 0x0020_0002UL)]
    public void AddressSize32RepZeroExtends(ulong rcx, ulong rcxAfter, ulong rdiAfter)
    {
        using var g = TestGuest.Long64(a =>
        {
            a.db(0x67, 0xF3, 0xAA); // rep stosb with EDI/ECX
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RCX] = rcx;
        g.Cpu.Gpr[Reg.RDI] = 0x1_0020_0000UL;
        g.Cpu.Gpr[Reg.RAX] = 0x55;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RCX], Is.EqualTo(rcxAfter));
        Assert.That(g[Reg.RDI], Is.EqualTo(rdiAfter));
    }

    /// <summary>
    /// A long REP run returns to the loop after each chunk with RIP still at the instruction and the
    /// registers describing the remaining work; resuming completes it.
    /// </summary>
    [Test]
    public void RepRunStopsBetweenChunksAndResumes()
    {
        ulong buf = TestGuest.DataBase;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rsi, buf);                // 10 bytes
            a.mov(rdi, buf + 0x10000);      // 10 bytes
            a.mov(ecx, 3000);               // 5 bytes
            a.rep.movsb();
            a.hlt();
        });
        Assert.That(g.Run(4), Is.EqualTo(RunExit.InstructionLimit));
        Assert.That(g.Cpu.Rip, Is.EqualTo(TestGuest.CodeBase + 25));
        ulong left = g[Reg.RCX];
        Assert.That(left, Is.GreaterThan(0UL).And.LessThan(3000UL));
        Assert.That(g[Reg.RSI], Is.EqualTo(buf + 3000 - left));
        Assert.That(g[Reg.RDI], Is.EqualTo(buf + 0x10000 + 3000 - left));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RCX], Is.EqualTo(0));
        Assert.That(g[Reg.RSI], Is.EqualTo(buf + 3000));
    }
}
