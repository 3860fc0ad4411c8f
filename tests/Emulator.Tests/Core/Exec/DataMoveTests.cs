using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

public class DataMoveTests
{
    private const ulong Data = TestGuest.DataBase;

    /// <summary>
    /// Outside 64-bit mode a memory operand's segment applies on every access, a TLB hit included: the handlers'
    /// 64-bit shortcut (no look at the mode) is only for operands with a 64-bit address. DS has base 0x10 here, in
    /// the same page as the offsets used, so an access that skipped the base would hit the TLB at the wrong byte.
    /// </summary>
    [Test]
    public void ProtectedModeMemoryFormsAddTheSegmentBaseOnATlbHit()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(ebx, (uint)Data);
            a.mov(eax, __dword_ptr[ebx]);      // fills the TLB
            a.mov(ecx, __dword_ptr[ebx]);      // load, TLB hit
            a.add(edx, __dword_ptr[ebx + 4]);  // ALU register <- memory
            a.mov(__dword_ptr[ebx + 8], eax);  // store
            a.add(__dword_ptr[ebx + 12], 5);   // ALU memory <- immediate
            a.inc(__dword_ptr[ebx + 16]);      // INC on memory
            a.hlt();
        });
        g.Cpu.Seg[SegReg.DS].Base = 0x10;
        g.Cpu.SegmentLoaded(SegReg.DS);
        for (ulong i = 0; i < 12; i++)
        {
            g.Mem.Write(Data + (i * 4), 4, 100 + i);
        }

        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.Multiple(() =>
        {
            Assert.That(g[Reg.RAX], Is.EqualTo(104), "the first load");
            Assert.That(g[Reg.RCX], Is.EqualTo(104), "a load that hits the TLB");
            Assert.That(g[Reg.RDX], Is.EqualTo(105));
            Assert.That(g.ReadPhys(Data + 0x18, 4), Is.EqualTo(104), "the store");
            Assert.That(g.ReadPhys(Data + 0x1C, 4), Is.EqualTo(107 + 5));
            Assert.That(g.ReadPhys(Data + 0x20, 4), Is.EqualTo(108 + 1));
            Assert.That(g.ReadPhys(Data + 0x08, 4), Is.EqualTo(102), "nothing written without the base");
        });
    }

    /// <summary>32-bit register writes zero the upper half; 8/16-bit writes merge (APM vol. 1 §3.1.2.3).</summary>
    [Test]
    public void MovWidthsLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, unchecked((long)0xFFFF_FFFF_FFFF_FFFFUL));
            a.mov(rbx, rax);
            a.mov(rcx, rax);
            a.mov(rdx, rax);
            a.mov(eax, 0x12345678);
            a.mov(bx, 0x1234);
            a.mov(cl, 0x12);
            a.mov(dh, 0x34);
            a.mov(__qword_ptr[Data], -2); // C7 /0 imm32 sign-extended
            a.mov(r8, __qword_ptr[Data]);
            a.mov(__dword_ptr[Data + 8], ebx);
            a.mov(r9d, __dword_ptr[Data + 8]);
            a.mov(r10, 0x1122334455667788);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x12345678UL));
        Assert.That(g[Reg.RBX], Is.EqualTo(0xFFFF_FFFF_FFFF_1234UL));
        Assert.That(g[Reg.RCX], Is.EqualTo(0xFFFF_FFFF_FFFF_FF12UL));
        Assert.That(g[Reg.RDX], Is.EqualTo(0xFFFF_FFFF_FFFF_34FFUL));
        Assert.That(g[Reg.R8], Is.EqualTo(0xFFFF_FFFF_FFFF_FFFEUL));
        Assert.That(g[Reg.R9], Is.EqualTo(0xFFFF_1234UL));
        Assert.That(g[Reg.R10], Is.EqualTo(0x1122334455667788UL));
    }

    /// <summary>The moffs forms (A0–A3) with a 64-bit absolute address and with 67h (32-bit address).</summary>
    [Test]
    public void MovMoffsLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.db(0x48, 0xA1); // mov rax, [moffs64]
            a.dq(Data);
            a.db(0xA2);       // mov [moffs64], al
            a.dq(Data + 0x10);
            a.db(0x67, 0x66, 0xA1); // mov ax, [moffs32]
            a.dd((uint)Data + 2);
            a.db(0x67, 0xA3); // mov [moffs32], eax
            a.dd((uint)Data + 0x20);
            a.hlt();
        });
        g.Mem.TryLoad(Data, BitConverter.GetBytes(0x8877665544332211UL));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(Data + 0x10, 1), Is.EqualTo(0x11));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x8877665544334433UL));
        Assert.That(g.ReadPhys(Data + 0x20, 8), Is.EqualTo(0x44334433UL));
    }

    [Test]
    public void MovMoffsReal()
    {
        using var g = TestGuest.Real(a =>
        {
            a.db(0xA1, 0x00, 0x60); // mov ax, [0x6000]
            a.db(0xA2, 0x10, 0x60); // mov [0x6010], al
            a.hlt();
        });
        g.Mem.TryLoad(0x6000, [0x34, 0x12]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1234));
        Assert.That(g.ReadPhys(0x6010, 1), Is.EqualTo(0x34));
    }

    [Test]
    public void WideningMovesLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, -1L);
            a.mov(rbx, -1L);
            a.mov(ecx, 0x80F0);
            a.movzx(rax, cl);
            a.movsx(rbx, cl);
            a.movsx(edx, cx);
            a.movzx(si, cl);
            a.mov(rdi, -1L);
            a.movsx(di, cl);
            a.movsxd(r8, ecx);
            a.mov(__dword_ptr[Data], unchecked((int)0x8000_0001));
            a.movsxd(r9, __dword_ptr[Data]);
            a.movzx(r10d, __word_ptr[Data + 2]);
            a.movsx(r11, __byte_ptr[Data + 3]);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(0xF0UL));
        Assert.That(g[Reg.RBX], Is.EqualTo(0xFFFF_FFFF_FFFF_FFF0UL));
        Assert.That(g[Reg.RDX], Is.EqualTo(0xFFFF_80F0UL));
        Assert.That(g[Reg.RSI] & 0xFFFF, Is.EqualTo(0xF0UL));
        Assert.That(g[Reg.RDI], Is.EqualTo(0xFFFF_FFFF_FFFF_FFF0UL));
        Assert.That(g[Reg.R8], Is.EqualTo(0x80F0UL));
        Assert.That(g[Reg.R9], Is.EqualTo(0xFFFF_FFFF_8000_0001UL));
        Assert.That(g[Reg.R10], Is.EqualTo(0x8000UL));
        Assert.That(g[Reg.R11], Is.EqualTo(0xFFFF_FFFF_FFFF_FF80UL));
    }

    /// <summary>90 is NOP in 64-bit mode (RAX unchanged) but 87 C0 (xchg eax, eax) writes EAX and zero-extends.</summary>
    [Test]
    public void XchgEaxEaxLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, unchecked((long)0xAAAA_BBBB_1234_5678UL));
            a.mov(rbx, rax);
            a.db(0x90);
            a.mov(rcx, rax);
            a.db(0x87, 0xC0);
            a.db(0x41, 0x90); // xchg r8d, eax → both zero-extended
            a.hlt();
        });
        g.Cpu.Gpr[Reg.R8] = 0xFFFF_FFFF_0000_0005;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RCX], Is.EqualTo(0xAAAA_BBBB_1234_5678UL));
        Assert.That(g[Reg.RAX], Is.EqualTo(5UL));
        Assert.That(g[Reg.R8], Is.EqualTo(0x1234_5678UL));
    }

    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void XchgRegisterAndMemory(int bits)
    {
        ulong data = ControlTests.Data(bits);
        using var g = ControlTests.Guest(bits, a =>
        {
            if (bits == 16)
            {
                a.mov(ax, 0x1111);
                a.mov(bx, 0x2222);
                a.xchg(ax, bx);
                a.mov(cx, 0x3333);
                a.xchg(__word_ptr[(int)data], cx);
                a.mov(dl, 0x44);
                a.xchg(dl, dh);
            }
            else
            {
                a.mov(eax, 0x1111);
                a.mov(ebx, 0x2222);
                a.xchg(eax, ebx);
                a.mov(ecx, 0x3333);
                a.xchg(__word_ptr[(long)data], cx);
                a.mov(dl, 0x44);
                a.xchg(dl, dh);
            }

            a.hlt();
        });
        g.Mem.TryLoad(data, [0x99, 0x88]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x2222));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x1111));
        Assert.That(g[Reg.RCX], Is.EqualTo(0x8899));
        Assert.That(g.ReadPhys(data, 2), Is.EqualTo(0x3333));
        Assert.That(g[Reg.RDX] & 0xFFFF, Is.EqualTo(0x4400));
    }

    /// <summary>XADD: the destination gets the sum, the source the old destination; flags as ADD (read with LAHF).</summary>
    [Test]
    public void XaddMemoryAndRegister()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(__dword_ptr[Data], unchecked((int)0xFFFF_FFFF));
            a.mov(ecx, 1);
            a.xadd(__dword_ptr[Data], ecx);
            a.lahf();
            a.mov(ebx, 5);
            a.xadd(ebx, ebx);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(Data, 4), Is.EqualTo(0));
        Assert.That(g[Reg.RCX], Is.EqualTo(0xFFFF_FFFFUL));
        Assert.That((g[Reg.RAX] >> 8) & 0xFF, Is.EqualTo(0x57)); // ZF AF PF CF set, SF clear, bit 1
        Assert.That(g[Reg.RBX], Is.EqualTo(10));
    }

    /// <summary>CMPXCHG success stores the source and sets ZF; failure loads the accumulator and clears ZF.</summary>
    [TestCase(0x10U, 0x10U, true)]
    [TestCase(0x10U, 0x20U, false)]
    public void CmpxchgMemory(uint mem, uint eax, bool equal)
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, unchecked((long)(0xFFFF_FFFF_0000_0000UL | eax)));
            a.mov(ecx, 0x99);
            a.mov(__dword_ptr[Data], (int)mem);
            a.cmpxchg(__dword_ptr[Data], ecx);
            a.mov(rbx, rax);
            a.lahf();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(Data, 4), Is.EqualTo(equal ? 0x99UL : mem));
        Assert.That(g[Reg.RBX], Is.EqualTo(equal ? 0xFFFF_FFFF_0000_0000UL | eax : mem));
        Assert.That(((g[Reg.RAX] >> 8) & 0x40) != 0, Is.EqualTo(equal));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Cmpxchg8b(bool equal)
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(eax, equal ? 0x11111111 : 0x11111112);
            a.mov(edx, 0x22222222);
            a.mov(ebx, 0x33333333);
            a.mov(ecx, 0x44444444);
            a.cmpxchg8b(__qword_ptr[(int)Data]);
            a.mov(esi, eax);
            a.lahf();
            a.hlt();
        });
        g.Mem.TryLoad(Data, BitConverter.GetBytes(0x22222222_11111111UL));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(Data, 8), Is.EqualTo(equal ? 0x44444444_33333333UL : 0x22222222_11111111UL));
        Assert.That(g[Reg.RSI], Is.EqualTo(0x11111111UL));
        Assert.That(((g[Reg.RAX] >> 8) & 0x40) != 0, Is.EqualTo(equal));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Cmpxchg16b(bool equal)
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, equal ? 0x1111 : 0x1112);
            a.mov(rdx, 0x2222);
            a.mov(rbx, 0x3333);
            a.mov(rcx, 0x4444);
            a.cmpxchg16b(__xmmword_ptr[Data + 0x10]);
            a.mov(rsi, rax);
            a.mov(rdi, rdx);
            a.hlt();
        });
        g.Mem.TryLoad(Data + 0x10, BitConverter.GetBytes(0x1111UL));
        g.Mem.TryLoad(Data + 0x18, BitConverter.GetBytes(0x2222UL));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(Data + 0x10, 8), Is.EqualTo(equal ? 0x3333UL : 0x1111UL));
        Assert.That(g.ReadPhys(Data + 0x18, 8), Is.EqualTo(equal ? 0x4444UL : 0x2222UL));
        Assert.That(g[Reg.RSI], Is.EqualTo(0x1111UL));
        Assert.That(g[Reg.RDI], Is.EqualTo(0x2222UL));
    }

    /// <summary>CMPXCHG16B on an operand not aligned to 16 bytes is #GP(0) and stores nothing.</summary>
    [Test]
    public void Cmpxchg16bMisalignedFaults()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, 0);
            a.mov(rdx, 0);
            a.mov(rbx, 0x3333);
            a.mov(rcx, 0x4444);
            a.cmpxchg16b(__xmmword_ptr[Data + 8]);
            a.hlt();
        });
        VectorCatcher.Install64(g);
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(13));
        Assert.That(g.ReadPhys(Data + 8, 8), Is.EqualTo(0UL));
    }

    /// <summary>LEA computes at the address size and truncates or zero-extends to the operand size.</summary>
    [Test]
    public void LeaSizesLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rbx, unchecked((long)0x1_FFFF_FFFFUL));
            a.mov(rcx, 2);
            a.lea(rax, __[rbx + rcx * 4 + 1]);
            a.lea(rdx, __[ebx + ecx]);       // 67h: 32-bit wrap, zero-extended
            a.lea(si, __[rbx + rcx]);        // 66h: truncated to 16 bits
            a.lea(edi, __[rbx + 0x10]);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RSI] = 0xFFFF_FFFF_FFFF_FFFF;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x2_0000_0008UL));
        Assert.That(g[Reg.RDX], Is.EqualTo(1UL));
        Assert.That(g[Reg.RSI], Is.EqualTo(0xFFFF_FFFF_FFFF_0001UL));
        Assert.That(g[Reg.RDI], Is.EqualTo(0x0000_000FUL));
    }

    /// <summary>16-bit addressing wraps at 64 KiB even with a 32-bit operand size.</summary>
    [Test]
    public void Lea16BitAddressProtected32()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(ebx, 0x1_FFFF);
            a.mov(esi, 3);
            a.lea(eax, __[bx + si + 1]);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(3UL));
    }

    [Test]
    public void AccumulatorSignExtensions()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, unchecked((long)0xFFFF_FFFF_0000_8080UL));
            a.cbw();                 // AX = FF80
            a.mov(r8, rax);
            a.cwde();                // EAX = FFFFFF80, upper zero
            a.mov(r9, rax);
            a.cdqe();                // RAX = FFFF...FF80
            a.mov(r10, rax);
            a.mov(rdx, 0);
            a.cqo();
            a.mov(r11, rdx);
            a.mov(eax, 0x7FFF_FFFF);
            a.mov(rdx, -1L);
            a.cdq();                 // EDX = 0, upper zero
            a.mov(r12, rdx);
            a.mov(ax, unchecked((short)0x8000));
            a.cwd();                 // DX = FFFF
            a.mov(r13, rdx);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.R8], Is.EqualTo(0xFFFF_FFFF_0000_FF80UL));
        Assert.That(g[Reg.R9], Is.EqualTo(0x0000_0000_FFFF_FF80UL));
        Assert.That(g[Reg.R10], Is.EqualTo(0xFFFF_FFFF_FFFF_FF80UL));
        Assert.That(g[Reg.R11], Is.EqualTo(ulong.MaxValue));
        Assert.That(g[Reg.R12], Is.EqualTo(0UL));
        Assert.That(g[Reg.R13], Is.EqualTo(0xFFFFUL));
    }

    /// <summary>SAHF loads SF ZF AF PF CF from AH (OF kept); LAHF stores them with bit 1 set and bits 3, 5 clear.</summary>
    [Test]
    public void SahfLahfRoundTrip()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.push(0x802);
            a.popfq();
            a.mov(ah, 0xFF);
            a.sahf();
            a.mov(ah, 0);
            a.lahf();
            a.pushfq();
            a.pop(rbx);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That((g[Reg.RAX] >> 8) & 0xFF, Is.EqualTo(0xD7));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x8D7));
    }

    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void XlatIndexesWithAl(int bits)
    {
        ulong table = ControlTests.Data(bits);
        using var g = ControlTests.Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.mov(rbx, table);
                a.mov(rax, -1L);
                a.mov(al, 0x83);
            }
            else if (bits == 32)
            {
                a.mov(ebx, (uint)table);
                a.mov(eax, 0xFFFF_FF83);
            }
            else
            {
                a.mov(bx, (ushort)table);
                a.mov(ax, unchecked((short)0xFF83));
            }

            a.xlatb();
            a.hlt();
        });
        g.Mem.TryLoad(table + 0x83, [0x5C]);
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX] & 0xFFFF, Is.EqualTo(0xFF5C));
    }

    /// <summary>
    /// CMPXCHG with register operands in 64-bit mode (values measured on hardware): success writes the
    /// destination (zero-extending) and leaves RAX alone; failure writes EAX (zero-extending) and leaves the
    /// destination register alone.
    /// </summary>
    [TestCase(0xAAAA_AAAA_0000_0001UL, 0xBBBB_BBBB_0000_0002UL, 0x0000_0000_0000_0002UL, 0xBBBB_BBBB_0000_0002UL)]
    [TestCase(0xAAAA_AAAA_0000_0002UL, 0xBBBB_BBBB_0000_0002UL, 0xAAAA_AAAA_0000_0002UL, 0x0000_0000_0000_0003UL)]
    public void CmpxchgRegister32(ulong rax, ulong rcx, ulong raxAfter, ulong rcxAfter)
    {
        using var g = TestGuest.Long64(a =>
        {
            a.cmpxchg(ecx, edx);
            a.hlt();
        });
        g.Cpu.Gpr[Reg.RAX] = rax;
        g.Cpu.Gpr[Reg.RCX] = rcx;
        g.Cpu.Gpr[Reg.RDX] = 0xCCCC_CCCC_0000_0003UL;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RAX], Is.EqualTo(raxAfter));
        Assert.That(g[Reg.RCX], Is.EqualTo(rcxAfter));
    }

    /// <summary>MOVSXD with a 16-bit operand size moves 16 bits (register and memory source; measured on hardware).</summary>
    [Test]
    public void MovsxdOperandSize16()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, 0x1111_1111_1111_1111);
            a.mov(rcx, unchecked((long)0xFFFF_FFFF_8000_F234UL));
            a.db(0x66, 0x63, 0xC1); // movsxd ax, ecx
            a.mov(rbx, rax);
            a.mov(rax, 0x1111_1111_1111_1111);
            a.mov(rsi, Data);
            a.db(0x66, 0x63, 0x06); // movsxd ax, [rsi]
            a.hlt();
        });
        g.Mem.TryLoad(Data, BitConverter.GetBytes(0x8765F234U));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x1111_1111_1111_F234UL));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x1111_1111_1111_F234UL));
    }

    /// <summary>MOVBE (APM vol. 3): loads and stores with the byte order reversed; a 16-bit load merges.</summary>
    [Test]
    public void MovbeLoadsAndStoresByteSwapped()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, 0x1122334455667788);
            a.mov(__qword_ptr[Data], rax);
            a.mov(rbx, -1);
            a.mov(rcx, -1);
            a.mov(rdx, -1);
            a.movbe(rbx, __qword_ptr[Data]);
            a.movbe(ecx, __dword_ptr[Data]);
            a.movbe(dx, __word_ptr[Data]);
            a.movbe(__qword_ptr[Data + 8], rax);
            a.movbe(__dword_ptr[Data + 16], eax);
            a.movbe(__word_ptr[Data + 24], ax);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x8877665544332211UL));
        Assert.That(g[Reg.RCX], Is.EqualTo(0x88776655UL), "32-bit load zero-extends");
        Assert.That(g[Reg.RDX], Is.EqualTo(0xFFFF_FFFF_FFFF_8877UL), "16-bit load merges");
        Assert.That(g.ReadPhys(Data + 8, 8), Is.EqualTo(0x8877665544332211UL));
        Assert.That(g.ReadPhys(Data + 16, 4), Is.EqualTo(0x88776655UL));
        Assert.That(g.ReadPhys(Data + 24, 2), Is.EqualTo(0x8877UL));
    }

    [Test]
    public void MovbeIsUndefinedWhenNotReported()
    {
        using var mem = Emulator.Core.Memory.PhysicalMemory.Create(1 << 20);
        var c = new Emulator.Core.Cpu.Cpu(mem);
        Emulator.Core.Loaders.BootState.EnterLong64(c, 0x1000, 0x8000);
        c.Features[CpuFeature.Movbe] = false;
        Assert.That(VectorCatcher.Step(c, a => a.movbe(eax, __dword_ptr[0x2000])), Is.EqualTo(ExecStatus.Fault));
        Assert.That(c.PendingVector, Is.EqualTo(Vector.UD));
    }
}
