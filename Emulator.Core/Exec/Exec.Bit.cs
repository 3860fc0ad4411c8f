using System.Buffers.Binary;
using System.Numerics;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Bit instructions (APM vol. 3): BT, BTS, BTR, BTC, BSF, BSR, BSWAP. The condition-code users
/// (CMOVcc, SETcc, SALC) live in Exec.Cond.cs and are registered from here.
/// <para>Undefined flags, our choice: BT* leave OF, SF, AF, PF unchanged (ZF is not affected);
/// BSF/BSR leave CF, OF, SF, AF, PF unchanged. BSF/BSR with a zero source set ZF and leave the
/// destination unchanged (AMD documents this). BSWAP r16 is undefined in the manual: the low 16 bits
/// become 0, which is what x86 cores do (the upper 48 bits are kept).</para>
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterBit(HandlerTable t)
    {
        foreach (Code code in LegacyCodes)
        {
            switch (code.Mnemonic())
            {
                case Mnemonic.Bt: t.Add(code, &BitTest<BtOp>); break;
                case Mnemonic.Bts: t.Add(code, &BitTest<BtsOp>); break;
                case Mnemonic.Btr: t.Add(code, &BitTest<BtrOp>); break;
                case Mnemonic.Btc: t.Add(code, &BitTest<BtcOp>); break;
                case Mnemonic.Bsf: t.Add(code, &Bsf); break;
                case Mnemonic.Bsr: t.Add(code, &Bsr); break;
                case Mnemonic.Bswap: t.Add(code, &Bswap); break;
            }
        }

        RegisterCond(t);
    }

    /// <summary>What BT* does to the operand (BT leaves it alone).</summary>
    internal interface IBitOp
    {
        static abstract bool Writes { get; }

        static abstract ulong Apply(ulong v, ulong mask);
    }

    internal struct BtOp : IBitOp
    {
        public static bool Writes => false;

        public static ulong Apply(ulong v, ulong mask) => v;
    }

    internal struct BtsOp : IBitOp
    {
        public static bool Writes => true;

        public static ulong Apply(ulong v, ulong mask) => v | mask;
    }

    internal struct BtrOp : IBitOp
    {
        public static bool Writes => true;

        public static ulong Apply(ulong v, ulong mask) => v & ~mask;
    }

    internal struct BtcOp : IBitOp
    {
        public static bool Writes => true;

        public static ulong Apply(ulong v, ulong mask) => v ^ mask;
    }

    private static void SetCarryOnly(Cpu.Cpu c, bool cf)
    {
        c.MaterializeFlags();
        c.FlagsBits = cf ? c.FlagsBits | Rflags.CF : c.FlagsBits & ~Rflags.CF;
    }

    /// <summary>
    /// BT/BTS/BTR/BTC r/m, reg|imm8. An immediate offset and any register destination take the offset
    /// modulo the operand width. A register offset with a memory operand is a signed bit index relative
    /// to the operand's address, so it reaches memory before and beyond it (APM vol. 3 "BT"); we access
    /// the operand-sized unit that holds the bit.
    /// </summary>
    internal static int BitTest<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IBitOp
    {
        int size = op.OpSize;
        int w = size * 8;
        bool regOffset = op.R1 != Reg.NoReg;
        ulong offset = regOffset ? c.GetReg(op.R1, size) : op.Imm;
        ulong mask = 1UL << (int)(offset & (ulong)(w - 1));
        if (op.R0 != Reg.NoReg)
        {
            ulong v = c.GetReg(op.R0, size);
            if (T.Writes)
            {
                c.SetReg(op.R0, size, T.Apply(v, mask));
            }

            SetCarryOnly(c, (v & mask) != 0);
            return ExecStatus.Continue;
        }

        ChargeMemoryForm(c);
        ulong ea = c.Ea(ref op);
        if (regOffset)
        {
            long units = (long)SignExtend(offset, size) >> BitOperations.Log2((uint)w);
            ea += (ulong)(units * size);
            if (op.AddrSize != 8)
            {
                ea &= Cpu.Cpu.SizeMask(op.AddrSize);
            }
        }

        if (!T.Writes)
        {
            if (!c.ReadMem(op.Seg, ea, size, out ulong v))
            {
                return ExecStatus.Fault;
            }

            SetCarryOnly(c, (v & mask) != 0);
            return ExecStatus.Continue;
        }

        if (!c.ReadMemForWrite(op.Seg, ea, size, out ulong d) || !c.WriteMem(op.Seg, ea, size, T.Apply(d, mask)))
        {
            return ExecStatus.Fault;
        }

        SetCarryOnly(c, (d & mask) != 0);
        return ExecStatus.Continue;
    }

    private static bool ReadSource1(Cpu.Cpu c, ref DecodedOp op, out ulong v)
    {
        if (op.R1 != Reg.NoReg)
        {
            v = c.GetReg(op.R1, op.OpSize);
            return true;
        }

        ChargeMemoryForm(c);
        return c.ReadMem(op.Seg, c.Ea(ref op), op.OpSize, out v);
    }

    private static void SetZeroOnly(Cpu.Cpu c, bool zf)
    {
        c.MaterializeFlags();
        c.FlagsBits = zf ? c.FlagsBits | Rflags.ZF : c.FlagsBits & ~Rflags.ZF;
    }

    /// <summary>BSF: index of the lowest set bit; a zero source sets ZF and leaves the destination alone.</summary>
    public static int Bsf(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadSource1(c, ref op, out ulong src))
        {
            return ExecStatus.Fault;
        }

        if (src == 0)
        {
            SetZeroOnly(c, true);
            return ExecStatus.Continue;
        }

        c.SetReg(op.R0, op.OpSize, (ulong)BitOperations.TrailingZeroCount(src));
        SetZeroOnly(c, false);
        return ExecStatus.Continue;
    }

    /// <summary>BSR: index of the highest set bit; a zero source sets ZF and leaves the destination alone.</summary>
    public static int Bsr(Cpu.Cpu c, ref DecodedOp op)
    {
        if (!ReadSource1(c, ref op, out ulong src))
        {
            return ExecStatus.Fault;
        }

        if (src == 0)
        {
            SetZeroOnly(c, true);
            return ExecStatus.Continue;
        }

        c.SetReg(op.R0, op.OpSize, (ulong)BitOperations.Log2(src));
        SetZeroOnly(c, false);
        return ExecStatus.Continue;
    }

    /// <summary>BSWAP: reverses the bytes of a 32/64-bit register; the 16-bit form zeroes the low word.</summary>
    public static int Bswap(Cpu.Cpu c, ref DecodedOp op)
    {
        ref ulong r = ref c.Gpr[op.R0];
        r = op.OpSize switch
        {
            8 => BinaryPrimitives.ReverseEndianness(r),
            4 => BinaryPrimitives.ReverseEndianness((uint)r),
            _ => r & ~0xFFFFUL,
        };
        return ExecStatus.Continue;
    }
}
