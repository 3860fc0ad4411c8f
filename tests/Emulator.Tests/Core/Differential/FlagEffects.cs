using Emulator.Core.Cpu;
using Iced.Intel;

namespace Emulator.Tests.Core.Differential;

/// <summary>
/// Which status flags an instruction reads, defines and leaves undefined (AMD64 APM vol. 3, each
/// instruction's "rFLAGS Affected" table). The differential test tracks undefined flags through a
/// sequence: they are not compared, and an instruction that would read one gets a CMP before it.
/// </summary>
internal readonly record struct FlagEffect(ulong Read, ulong Defined, ulong Undefined)
{
    public const ulong CF = Rflags.CF, PF = Rflags.PF, AF = Rflags.AF, ZF = Rflags.ZF, SF = Rflags.SF, OF = Rflags.OF;
    public const ulong All = Rflags.Arith;

    /// <summary>Poisoned set after an instruction with this effect.</summary>
    public ulong Apply(ulong poisoned) => (poisoned & ~Defined) | Undefined;

    public static ulong ConditionFlags(ConditionCode cc) => cc switch
    {
        ConditionCode.o or ConditionCode.no => OF,
        ConditionCode.b or ConditionCode.ae => CF,
        ConditionCode.e or ConditionCode.ne => ZF,
        ConditionCode.be or ConditionCode.a => CF | ZF,
        ConditionCode.s or ConditionCode.ns => SF,
        ConditionCode.p or ConditionCode.np => PF,
        ConditionCode.l or ConditionCode.ge => SF | OF,
        ConditionCode.le or ConditionCode.g => ZF | SF | OF,
        _ => 0,
    };

    /// <summary>Operand width in bits of operand 0.</summary>
    public static int Width(in Instruction ins)
    {
        if (ins.Op0Kind == OpKind.Register)
        {
            return ins.Op0Register.GetSize() * 8;
        }

        return ins.MemorySize.GetSize() * 8;
    }

    /// <summary>Effects of <paramref name="ins"/>; <paramref name="count"/> is the shift count the generator made known (before masking).</summary>
    public static FlagEffect Of(in Instruction ins, int count)
    {
        int w = Width(ins);
        int masked = count & (w == 64 ? 63 : 31);
        switch (ins.Mnemonic)
        {
            case Mnemonic.Add:
            case Mnemonic.Sub:
            case Mnemonic.Cmp:
            case Mnemonic.Neg:
            case Mnemonic.Xadd:
            case Mnemonic.Cmpxchg:
                return new(0, All, 0);
            case Mnemonic.Adc:
            case Mnemonic.Sbb:
                return new(CF, All, 0);
            case Mnemonic.And:
            case Mnemonic.Or:
            case Mnemonic.Xor:
            case Mnemonic.Test:
                return new(0, All & ~AF, AF);
            case Mnemonic.Inc:
            case Mnemonic.Dec:
                return new(0, All & ~CF, 0);
            case Mnemonic.Clc:
            case Mnemonic.Stc:
                return new(0, CF, 0);
            case Mnemonic.Cmc:
                return new(CF, CF, 0);
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
                {
                    if (masked == 0)
                    {
                        return new(0, 0, 0);
                    }

                    ulong undef = AF | (masked > 1 ? OF : 0) | (masked >= w ? CF : 0);
                    return new(0, All & ~undef, undef);
                }

            case Mnemonic.Shld:
            case Mnemonic.Shrd:
                {
                    if (masked == 0)
                    {
                        return new(0, 0, 0);
                    }

                    ulong undef = AF | (masked > 1 ? OF : 0);
                    return new(0, All & ~undef, undef);
                }

            case Mnemonic.Rol:
            case Mnemonic.Ror:
                return masked == 0 ? new(0, 0, 0) : masked == 1 ? new(0, CF | OF, 0) : new(0, CF, OF);
            case Mnemonic.Rcl:
            case Mnemonic.Rcr:
                return masked == 0 ? new(CF, 0, 0) : masked == 1 ? new(CF, CF | OF, 0) : new(CF, CF, OF);
            case Mnemonic.Mul:
            case Mnemonic.Imul:
                return new(0, CF | OF, SF | ZF | AF | PF);
            case Mnemonic.Div:
            case Mnemonic.Idiv:
                return new(0, 0, All);
            case Mnemonic.Bt:
            case Mnemonic.Bts:
            case Mnemonic.Btr:
            case Mnemonic.Btc:
                return new(0, CF, OF | SF | AF | PF);
            case Mnemonic.Bsf:
            case Mnemonic.Bsr:
                return new(0, ZF, CF | OF | SF | AF | PF);
            default:
                {
                    ConditionCode cc = ins.ConditionCode;
                    return cc == ConditionCode.None ? new(0, 0, 0) : new(ConditionFlags(cc), 0, 0);
                }
        }
    }
}
