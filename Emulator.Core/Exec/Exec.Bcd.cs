using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// BCD adjusts (APM vol. 3 "DAA", "DAS", "AAA", "AAS", "AAM", "AAD"), valid outside 64-bit mode only:
/// Iced decodes their opcodes as invalid in 64-bit code, so they raise #UD there.
/// <para>Undefined flags, our choice: DAA/DAS clear OF; AAA/AAS set SF/ZF/PF from the final AL and
/// clear OF; AAM/AAD clear CF, AF and OF. AAA/AAS follow the APM literally (AL ± 6 without a carry
/// into AH, then AH ± 1).</para>
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterBcd(HandlerTable t)
    {
        t.Add(Code.Daa, &Daa);
        t.Add(Code.Das, &Das);
        t.Add(Code.Aaa, &Aaa);
        t.Add(Code.Aas, &Aas);
        t.Add(Code.Aam_imm8, &Aam);
        t.Add(Code.Aad_imm8, &Aad);
    }

    /// <summary>Sets all six status flags: SF/ZF/PF from the byte result, CF, AF, OF as given.</summary>
    private static void SetByteFlags(Cpu.Cpu c, byte result, bool cf, bool af)
    {
        c.SetFlagsResult(1, result, cf, false, af);
    }

    public static int Daa(Cpu.Cpu c, ref DecodedOp op)
    {
        byte al = c.Get8(Reg.RAX);
        byte oldAl = al;
        bool oldCf = c.GetCF();
        bool af = false;
        if ((al & 0xF) > 9 || c.GetAF())
        {
            // The carry out of this +6 is overwritten by the second step (APM vol. 3 "DAA").
            al += 6;
            af = true;
        }

        bool cf = oldAl > 0x99 || oldCf;
        if (cf)
        {
            al += 0x60;
        }

        c.Set8(Reg.RAX, al);
        SetByteFlags(c, al, cf, af);
        return ExecStatus.Continue;
    }

    public static int Das(Cpu.Cpu c, ref DecodedOp op)
    {
        byte al = c.Get8(Reg.RAX);
        byte oldAl = al;
        bool oldCf = c.GetCF();
        bool cf = false, af = false;
        if ((al & 0xF) > 9 || c.GetAF())
        {
            cf = oldCf || al < 6;
            al -= 6;
            af = true;
        }

        if (oldAl > 0x99 || oldCf)
        {
            al -= 0x60;
            cf = true;
        }

        c.Set8(Reg.RAX, al);
        SetByteFlags(c, al, cf, af);
        return ExecStatus.Continue;
    }

    public static int Aaa(Cpu.Cpu c, ref DecodedOp op)
    {
        byte al = c.Get8(Reg.RAX);
        byte ah = c.Get8(Reg.AH);
        bool adjust = (al & 0xF) > 9 || c.GetAF();
        if (adjust)
        {
            al += 6;
            ah += 1;
        }

        al &= 0xF;
        c.Set8(Reg.RAX, al);
        c.Set8(Reg.AH, ah);
        SetByteFlags(c, al, adjust, adjust);
        return ExecStatus.Continue;
    }

    public static int Aas(Cpu.Cpu c, ref DecodedOp op)
    {
        byte al = c.Get8(Reg.RAX);
        byte ah = c.Get8(Reg.AH);
        bool adjust = (al & 0xF) > 9 || c.GetAF();
        if (adjust)
        {
            al -= 6;
            ah -= 1;
        }

        al &= 0xF;
        c.Set8(Reg.RAX, al);
        c.Set8(Reg.AH, ah);
        SetByteFlags(c, al, adjust, adjust);
        return ExecStatus.Continue;
    }

    /// <summary>AAM imm8: AH = AL / imm, AL = AL mod imm; #DE when imm is 0.</summary>
    public static int Aam(Cpu.Cpu c, ref DecodedOp op)
    {
        byte b = (byte)op.Imm;
        if (b == 0)
        {
            return c.RaiseDE();
        }

        byte al = c.Get8(Reg.RAX);
        byte q = (byte)(al / b), r = (byte)(al % b);
        c.Set8(Reg.AH, q);
        c.Set8(Reg.RAX, r);
        SetByteFlags(c, r, false, false);
        return ExecStatus.Continue;
    }

    /// <summary>AAD imm8: AL = AL + AH × imm (mod 256), AH = 0.</summary>
    public static int Aad(Cpu.Cpu c, ref DecodedOp op)
    {
        byte b = (byte)op.Imm;
        byte al = (byte)(c.Get8(Reg.RAX) + (c.Get8(Reg.AH) * b));
        c.Set8(Reg.RAX, al);
        c.Set8(Reg.AH, 0);
        SetByteFlags(c, al, false, false);
        return ExecStatus.Continue;
    }
}
