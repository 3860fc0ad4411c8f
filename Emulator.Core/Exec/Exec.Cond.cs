using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Condition-code consumers (APM vol. 3 "CMOVcc", "SETcc"): all 16 conditions in every size, plus
/// SALC (undocumented D6, outside 64-bit mode). The condition nibble of each code is taken from Iced
/// once at registration and kept in a table indexed by code.
/// </summary>
public static unsafe partial class Exec
{
    private static readonly byte[] s_conditionOf = new byte[Enum.GetValues<Code>().Length];

    private static void RegisterCond(HandlerTable t)
    {
        foreach (Code code in LegacyCodes)
        {
            Mnemonic m = code.Mnemonic();
            ConditionCode cc = code.ConditionCode();
            if (cc == ConditionCode.None)
            {
                continue;
            }

            // Iced's ConditionCode runs o, no, b, ae, … g from 1: one more than the encoding's nibble.
            if (m is >= Mnemonic.Cmova and <= Mnemonic.Cmovs)
            {
                s_conditionOf[(int)code] = (byte)(cc - 1);
                t.Add(code, &Cmovcc);
            }
            else if (m is >= Mnemonic.Seta and <= Mnemonic.Sets)
            {
                s_conditionOf[(int)code] = (byte)(cc - 1);
                t.Add(code, &Setcc);
            }
        }

        t.Add(Code.Salc, &Salc);
    }

    /// <summary>
    /// CMOVcc reg, r/m: the source is read (and may fault) whatever the condition; a 32-bit destination
    /// is zero-extended even when the condition is false (APM vol. 3 "CMOVcc").
    /// </summary>
    public static int Cmovcc(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadSource1(c, ref op, out ulong src))
        {
            return ExecStatus.Fault;
        }

        int size = op.OpSize;
        ulong v = c.Condition(s_conditionOf[(int)op.Code]) ? src : c.GetReg(op.R0, size);
        c.SetReg(op.R0, size, v);
        return ExecStatus.Continue;
    }

    /// <summary>SETcc r/m8: 1 when the condition holds, else 0.</summary>
    public static int Setcc(Cpu.Cpu c, ref DecodedOp op)
    {
        ulong v = c.Condition(s_conditionOf[(int)op.Code]) ? 1UL : 0UL;
        if (op.R0 != Reg.NoReg)
        {
            c.SetReg(op.R0, 1, v);
            return ExecStatus.Continue;
        }

        ChargeMemoryForm(c);
        return c.WriteMem(op.Seg, c.Ea(ref op), 1, v) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>SALC: AL = CF ? 0xFF : 0; flags unchanged. Iced decodes D6 as invalid in 64-bit mode.</summary>
    public static int Salc(Cpu.Cpu c, ref DecodedOp op)
    {
        c.Set8(Reg.RAX, c.GetCF() ? (byte)0xFF : (byte)0);
        return ExecStatus.Continue;
    }
}
