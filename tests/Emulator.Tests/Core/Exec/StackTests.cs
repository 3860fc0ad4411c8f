using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

public class StackTests
{
    private const ulong Top = TestGuest.StackTop;
    private const ulong RealTop = 0x8000;

    /// <summary>PUSH rSP pushes the value before the push; POP rSP loads the popped value (APM vol. 3 "PUSH", "POP").</summary>
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void PushAndPopOfTheStackPointer(int bits)
    {
        ulong newSp = bits == 16 ? 0x7000UL : TestGuest.DataBase + 0x800;
        using var g = ControlTests.Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.push(rsp);
                a.pop(rbx);
                a.mov(rax, newSp);
                a.push(rax);
                a.pop(rsp);
            }
            else if (bits == 32)
            {
                a.push(esp);
                a.pop(ebx);
                a.mov(eax, (uint)newSp);
                a.push(eax);
                a.pop(esp);
            }
            else
            {
                a.push(sp);
                a.pop(bx);
                a.mov(ax, (ushort)newSp);
                a.push(ax);
                a.pop(sp);
            }

            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(bits == 16 ? RealTop : Top));
        Assert.That(g[Reg.RSP], Is.EqualTo(newSp));
    }

    /// <summary>PUSH imm8/imm32 sign-extend to 8 bytes in 64-bit mode; 66h gives a 2-byte push.</summary>
    [Test]
    public void PushImmediateSizesLong64()
    {
        using var g = TestGuest.Long64(a =>
        {
            a.push(-2);                      // 6A FE
            a.push(-0x80000000);             // 68 00 00 00 80
            a.push(0x12345678);              // 68 78 56 34 12
            a.db(0x66, 0x6A, 0x80);          // push word -128
            a.db(0x66, 0x68, 0x34, 0x12);    // push word 0x1234
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(Top - 24 - 4));
        Assert.That(g.ReadPhys(Top - 8, 8), Is.EqualTo(0xFFFF_FFFF_FFFF_FFFEUL));
        Assert.That(g.ReadPhys(Top - 16, 8), Is.EqualTo(0xFFFF_FFFF_8000_0000UL));
        Assert.That(g.ReadPhys(Top - 24, 8), Is.EqualTo(0x12345678UL));
        Assert.That(g.ReadPhys(Top - 26, 2), Is.EqualTo(0xFF80UL));
        Assert.That(g.ReadPhys(Top - 28, 2), Is.EqualTo(0x1234UL));
    }

    /// <summary>POP to memory computes the address with rSP already incremented.</summary>
    [TestCase(32)]
    [TestCase(64)]
    public void PopToMemoryUsesTheIncrementedStackPointer(int bits)
    {
        using var g = ControlTests.Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.mov(rax, 0xAABBCCDD);
                a.push(rax);
                a.pop(__qword_ptr[rsp]);
                a.push(rsp);
                a.pop(__qword_ptr[rsp - 16]);
            }
            else
            {
                a.mov(eax, 0xAABBCCDD);
                a.push(eax);
                a.pop(__dword_ptr[esp]);
                a.push(esp);
                a.pop(__dword_ptr[esp - 8]);
            }

            a.hlt();
        });
        int w = bits / 8;
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(Top));
        Assert.That(g.ReadPhys(Top, w), Is.EqualTo(0xAABBCCDDUL));
        Assert.That(g.ReadPhys(Top - (ulong)(2 * w), w), Is.EqualTo(Top));
    }

    /// <summary>PUSHAD stores EAX, ECX, EDX, EBX, the original ESP, EBP, ESI, EDI; POPAD skips the ESP slot.</summary>
    [Test]
    public void PushadPopadProtected32()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.mov(eax, 1);
            a.mov(ecx, 2);
            a.mov(edx, 3);
            a.mov(ebx, 4);
            a.mov(ebp, 6);
            a.mov(esi, 7);
            a.mov(edi, 8);
            a.pushad();
            a.mov(eax, 0);
            a.mov(ecx, 0);
            a.mov(edx, 0);
            a.mov(ebx, 0);
            a.mov(ebp, 0);
            a.mov(esi, 0);
            a.mov(edi, 0);
            a.mov(__dword_ptr[esp + 12], 0x99); // the saved ESP slot is ignored by POPAD
            a.popad();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        uint[] order = [1, 2, 3, 4, 0x99, 6, 7, 8];
        for (int i = 0; i < 8; i++)
        {
            Assert.That(g.ReadPhys(Top - (ulong)(4 * (i + 1)), 4), Is.EqualTo(i == 4 ? 0x99UL : order[i]), $"slot {i}");
        }

        Assert.That(g[Reg.RAX], Is.EqualTo(1));
        Assert.That(g[Reg.RCX], Is.EqualTo(2));
        Assert.That(g[Reg.RDX], Is.EqualTo(3));
        Assert.That(g[Reg.RBX], Is.EqualTo(4));
        Assert.That(g[Reg.RSP], Is.EqualTo(Top));
        Assert.That(g[Reg.RBP], Is.EqualTo(6));
        Assert.That(g[Reg.RSI], Is.EqualTo(7));
        Assert.That(g[Reg.RDI], Is.EqualTo(8));
    }

    [Test]
    public void PushaPopaReal()
    {
        using var g = TestGuest.Real(a =>
        {
            a.mov(ax, 0x11);
            a.mov(bp, 0x66);
            a.pusha();
            a.mov(ax, 0);
            a.mov(bp, 0);
            a.popa();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g.ReadPhys(RealTop - 2, 2), Is.EqualTo(0x11));
        Assert.That(g.ReadPhys(RealTop - 10, 2), Is.EqualTo(RealTop));
        Assert.That(g.ReadPhys(RealTop - 12, 2), Is.EqualTo(0x66));
        Assert.That(g[Reg.RAX], Is.EqualTo(0x11));
        Assert.That(g[Reg.RBP], Is.EqualTo(0x66));
        Assert.That(g[Reg.RSP], Is.EqualTo(RealTop));
    }

    /// <summary>ENTER 16,0 then LEAVE restores rSP and rBP.</summary>
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void EnterLevel0AndLeave(int bits)
    {
        ulong top = bits == 16 ? RealTop : Top;
        int w = bits / 8;
        using var g = ControlTests.Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.mov(rbp, 0x1234);
                a.enter(16, 0);
                a.mov(r8, rsp);
                a.mov(r9, rbp);
            }
            else if (bits == 32)
            {
                a.mov(ebp, 0x1234);
                a.enter(16, 0);
                a.mov(esi, esp);
                a.mov(edi, ebp);
            }
            else
            {
                a.mov(bp, 0x1234);
                a.enter(16, 0);
                a.mov(si, sp);
                a.mov(di, bp);
            }

            a.leave();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong frame = top - (ulong)w;
        int spReg = bits == 64 ? Reg.R8 : Reg.RSI, bpReg = bits == 64 ? Reg.R9 : Reg.RDI;
        Assert.That(g[spReg], Is.EqualTo(frame - 16));
        Assert.That(g[bpReg], Is.EqualTo(frame));
        Assert.That(g.ReadPhys(frame, w), Is.EqualTo(0x1234));
        Assert.That(g[Reg.RSP], Is.EqualTo(top));
        Assert.That(g[Reg.RBP], Is.EqualTo(0x1234));
    }

    /// <summary>
    /// ENTER 8,3 (APM vol. 3 "ENTER"): push rBP, copy two frame pointers from the enclosing frame's
    /// display (at rBP−w, rBP−2w), push the new frame pointer, rBP = frame, rSP = last push − 8.
    /// </summary>
    [TestCase(32)]
    [TestCase(64)]
    public void EnterNestedCopiesTheDisplay(int bits)
    {
        int w = bits / 8;
        ulong oldBp = TestGuest.DataBase + 0x100;
        using var g = ControlTests.Guest(bits, a =>
        {
            if (bits == 64)
            {
                a.mov(rbp, oldBp);
            }
            else
            {
                a.mov(ebp, (uint)oldBp);
            }

            a.enter(8, 3);
            a.hlt();
        });
        g.Mem.TryLoad(oldBp - (ulong)w, BitConverter.GetBytes(0x1111UL).AsSpan(0, w));
        g.Mem.TryLoad(oldBp - (ulong)(2 * w), BitConverter.GetBytes(0x2222UL).AsSpan(0, w));
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        ulong frame = Top - (ulong)w;
        Assert.That(g.ReadPhys(Top - (ulong)w, w), Is.EqualTo(oldBp));
        Assert.That(g.ReadPhys(Top - (ulong)(2 * w), w), Is.EqualTo(0x1111));
        Assert.That(g.ReadPhys(Top - (ulong)(3 * w), w), Is.EqualTo(0x2222));
        Assert.That(g.ReadPhys(Top - (ulong)(4 * w), w), Is.EqualTo(frame));
        Assert.That(g[Reg.RBP], Is.EqualTo(frame));
        Assert.That(g[Reg.RSP], Is.EqualTo(Top - (ulong)(4 * w) - 8));
    }

    /// <summary>
    /// POPFQ at CPL 0 loads IOPL, IF, AC, ID, NT, DF and the status flags but never VM or RF; PUSHFQ's image
    /// has VM and RF clear.
    /// </summary>
    [Test]
    public void PopfqAtCpl0()
    {
        const ulong image = 0x3_0000 | 0x4_0000 | 0x20_0000 | 0x4000 | 0x3000 | 0x200 | 0x400 | 0x800 | 0xD5;
        using var g = TestGuest.Long64(a =>
        {
            a.mov(rax, image);
            a.push(rax);
            a.popfq();
            a.pushfq();
            a.pop(rbx);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        const ulong expect = (image & ~0x3_0000UL) | 2;
        Assert.That(g[Reg.RBX], Is.EqualTo(expect));
        Assert.That(g.Cpu.Rflags64 & 0x3_0000, Is.EqualTo(0));
    }

    /// <summary>A 16-bit POPF only loads FLAGS[15:0]: AC and ID set by an earlier POPFD survive.</summary>
    [Test]
    public void PopfWordKeepsTheUpperHalf()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.push(0x24_0002);
            a.popfd();
            a.db(0x66, 0x6A, 0x02); // push word 2
            a.db(0x66, 0x9D);       // popf (16-bit)
            a.pushfd();
            a.pop(ebx);
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RBX], Is.EqualTo(0x24_0002));
        Assert.That(g[Reg.RSP], Is.EqualTo(Top));
    }

    /// <summary>At CPL 3 with IOPL 0, POPFD silently keeps IF and IOPL and loads the status flags.</summary>
    [Test]
    public void PopfdAtCpl3KeepsIfAndIopl()
    {
        using var g = TestGuest.Protected32(a =>
        {
            a.push(0x3000 | 0x200 | 0xC1 | 0x2);
            a.popfd();
            a.pushfd();
            a.pop(ebx);
            a.hlt();
        });
        g.Cpu.SetCpl(3);
        g.Run(6);
        Assert.That(g[Reg.RBX], Is.EqualTo(0xC1 | 0x2));
    }

    /// <summary>PUSHF in real mode pushes 16 bits with bit 1 set.</summary>
    [Test]
    public void PushfReal()
    {
        using var g = TestGuest.Real(a =>
        {
            a.mov(ah, 0xD5);
            a.sahf();
            a.pushf();
            a.hlt();
        });
        Assert.That(g.Run(), Is.EqualTo(RunExit.HaltedForever));
        Assert.That(g[Reg.RSP], Is.EqualTo(RealTop - 2));
        Assert.That(g.ReadPhys(RealTop - 2, 2), Is.EqualTo(0xD7));
    }
}
