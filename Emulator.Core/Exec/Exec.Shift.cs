using System.Runtime.CompilerServices;
using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Exec.Forms;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// Shifts and rotates (APM vol. 3 "SHL", "SHR", "SAR", "ROL", "ROR", "RCL", "RCR", "SHLD", "SHRD"):
/// by 1, CL or imm8. The count is masked to 5 bits (6 for 64-bit operands); a masked count of 0
/// changes no flags (the destination is still written, so a 32-bit register is zero-extended).
/// <para>Flags the manual leaves undefined, and our choice (the host of the differential test is
/// not a Zen part, so these are documented rather than measured):</para>
/// <list type="bullet">
/// <item>OF for counts above 1: computed with the count-1 formula from the final result.</item>
/// <item>AF after SHL/SHR/SAR/SHLD/SHRD: cleared.</item>
/// <item>CF of SHL/SHR with an 8/16-bit count beyond the width: the last bit shifted out of the
/// zero-extended value (0 for SHL, 0 for SHR), SAR: the sign.</item>
/// <item>16-bit SHLD/SHRD with a count above 16: the result continues into the destination again
/// (dst:src:dst), as x86 cores do.</item>
/// </list>
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterShift(HandlerTable t)
    {
        foreach (Code code in LegacyCodes)
        {
            switch (code.Mnemonic())
            {
                case Mnemonic.Shl:
                case Mnemonic.Sal: t.Add(code, &Shift<ShlOp>); t.AddForms(code, &PickShift<ShlOp>); break;
                case Mnemonic.Shr: t.Add(code, &Shift<ShrOp>); t.AddForms(code, &PickShift<ShrOp>); break;
                case Mnemonic.Sar: t.Add(code, &Shift<SarOp>); t.AddForms(code, &PickShift<SarOp>); break;
                case Mnemonic.Rol: t.Add(code, &Shift<RolOp>); t.AddForms(code, &PickShift<RolOp>); break;
                case Mnemonic.Ror: t.Add(code, &Shift<RorOp>); t.AddForms(code, &PickShift<RorOp>); break;
                case Mnemonic.Rcl: t.Add(code, &Shift<RclOp>); t.AddForms(code, &PickShift<RclOp>); break;
                case Mnemonic.Rcr: t.Add(code, &Shift<RcrOp>); t.AddForms(code, &PickShift<RcrOp>); break;
                case Mnemonic.Shld: t.Add(code, &DoubleShift<ShldOp>); break;
                case Mnemonic.Shrd: t.Add(code, &DoubleShift<ShrdOp>); break;
            }
        }
    }

    /// <summary>A shift or rotate of <paramref name="dst"/> by a masked, non-zero count; sets the flags it defines.</summary>
    internal interface IShiftOp
    {
        static abstract ulong Apply(Cpu.Cpu c, int size, ulong dst, int count);
    }

    /// <summary>The count operand of a shift: CL (R1/R2 = CL) or the immediate (1 for the D0/D1 forms).</summary>
    private static int ShiftCount(Cpu.Cpu c, ref DecodedOp op, byte countReg, int size)
    {
        int raw = countReg != Reg.NoReg ? (byte)c.Gpr[Reg.RCX] : (byte)op.Imm;
        return raw & (size == 8 ? 0x3F : 0x1F);
    }

    internal static int Shift<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IShiftOp
    {
        int size = op.OpSize;
        int count = ShiftCount(c, ref op, op.R1, size);
        if (op.R0 != Reg.NoReg)
        {
            ulong d = c.GetReg(op.R0, size);
            c.SetReg(op.R0, size, count == 0 ? d : T.Apply(c, size, d, count));
            return ExecStatus.Continue;
        }

        ChargeMemoryForm(c);
        ulong ea = c.Ea(ref op);
        if (!c.ReadMemForWrite(op.Seg, ea, size, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        if (count == 0)
        {
            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, ea, size, T.Apply(c, size, dst, count)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    /// <summary>Form selector for shifts and rotates of a register (not AH…BH) by an immediate or CL.</summary>
    private static delegate*<Cpu.Cpu, ref DecodedOp, int> PickShift<T>(ref DecodedOp op)
        where T : struct, IShiftOp
    {
        if (op.R0 >= 16)
        {
            return null;
        }

        return op.R1 != Reg.NoReg
            ? ByWidth(op.OpSize, &ShiftRC<T, Dw8>, &ShiftRC<T, Dw16>, &ShiftRC<T, Dw32>, &ShiftRC<T, Dw64>)
            : ByWidth(op.OpSize, &ShiftRI<T, Dw8>, &ShiftRI<T, Dw16>, &ShiftRI<T, Dw32>, &ShiftRI<T, Dw64>);
    }

    /// <summary><see cref="Shift{T}"/> of a register by CL.</summary>
    internal static int ShiftRC<T, TW>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IShiftOp
        where TW : struct, IDataWidth
    {
        ShiftV<T, TW>(c, ref c.GprUnchecked(op.R0), (int)(byte)c.Gpr[Reg.RCX]);
        return ExecStatus.Continue;
    }

    /// <summary><see cref="Shift{T}"/> of a register by an immediate (1 for the D0/D1 forms).</summary>
    internal static int ShiftRI<T, TW>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IShiftOp
        where TW : struct, IDataWidth
    {
        ShiftV<T, TW>(c, ref c.GprUnchecked(op.R0), (int)(byte)op.Imm);
        return ExecStatus.Continue;
    }

    /// <summary>
    /// A register's value shifted by <paramref name="raw"/>, masked here as the count is (compiled blocks pass the
    /// registers they hold in locals and an immediate count as a constant; docs/cpu.md, "Registers in locals").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ShiftV<T, TW>(Cpu.Cpu c, ref ulong dst, int raw)
        where T : struct, IShiftOp
        where TW : struct, IDataWidth
    {
        int count = raw & (TW.Bytes == 8 ? 0x3F : 0x1F);
        ulong d = Narrow<TW>(dst);
        Store<TW>(ref dst, count == 0 ? d : T.Apply(c, TW.Bytes, d, count));
    }

    private static void SetCfOf(Cpu.Cpu c, bool cf, bool of)
    {
        c.MaterializeFlags();
        ulong f = c.FlagsBits & ~(Rflags.CF | Rflags.OF);
        if (cf) f |= Rflags.CF;
        if (of) f |= Rflags.OF;
        c.FlagsBits = f;
    }

    internal struct ShlOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            int w = size * 8;
            ulong r = count < 64 ? dst << count : 0;
            bool cf = count <= w && ((dst >> (w - count)) & 1) != 0;
            bool msb = ((r >> (w - 1)) & 1) != 0;
            c.SetFlagsResult(size, r, cf, msb ^ cf);
            return r;
        }
    }

    internal struct ShrOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            int w = size * 8;
            ulong r = dst >> count;
            bool cf = ((dst >> (count - 1)) & 1) != 0;
            // OF = MSB of the original operand for count 1 (APM); the same formula for larger counts.
            bool of = ((dst >> (w - 1)) & 1) != 0;
            c.SetFlagsResult(size, r, cf, of);
            return r;
        }
    }

    internal struct SarOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            long s = (long)SignExtend(dst, size);
            ulong r = (ulong)(s >> count);
            bool cf = ((s >> (count - 1)) & 1) != 0;
            c.SetFlagsResult(size, r, cf, false);
            return r;
        }
    }

    internal struct RolOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            int w = size * 8;
            int n = count & (w - 1);
            ulong m = Cpu.Cpu.SizeMask(size);
            ulong r = n == 0 ? dst : ((dst << n) | (dst >> (w - n))) & m;
            bool cf = (r & 1) != 0;
            SetCfOf(c, cf, (((r >> (w - 1)) & 1) != 0) ^ cf);
            return r;
        }
    }

    internal struct RorOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            int w = size * 8;
            int n = count & (w - 1);
            ulong m = Cpu.Cpu.SizeMask(size);
            ulong r = n == 0 ? dst : ((dst >> n) | (dst << (w - n))) & m;
            bool msb = ((r >> (w - 1)) & 1) != 0;
            bool next = ((r >> (w - 2)) & 1) != 0;
            SetCfOf(c, msb, msb ^ next);
            return r;
        }
    }

    /// <summary>RCL: rotates the (w+1)-bit value CF:dst; 8/16-bit counts are taken mod 9/17.</summary>
    internal struct RclOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            int w = size * 8;
            int n = count % (w + 1);
            if (n == 0)
            {
                return dst;
            }

            UInt128 v = ((UInt128)(c.GetCF() ? 1u : 0u) << w) | dst;
            UInt128 all = (UInt128.One << (w + 1)) - 1;
            v = ((v << n) | (v >> (w + 1 - n))) & all;
            ulong r = (ulong)v & Cpu.Cpu.SizeMask(size);
            bool cf = ((v >> w) & 1) != 0;
            SetCfOf(c, cf, (((r >> (w - 1)) & 1) != 0) ^ cf);
            return r;
        }
    }

    /// <summary>RCR: rotates CF:dst right; OF = MSB(result) XOR the bit below it (= old MSB XOR old CF for count 1).</summary>
    internal struct RcrOp : IShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, int count)
        {
            int w = size * 8;
            int n = count % (w + 1);
            if (n == 0)
            {
                return dst;
            }

            UInt128 v = ((UInt128)(c.GetCF() ? 1u : 0u) << w) | dst;
            UInt128 all = (UInt128.One << (w + 1)) - 1;
            v = ((v >> n) | (v << (w + 1 - n))) & all;
            ulong r = (ulong)v & Cpu.Cpu.SizeMask(size);
            bool cf = ((v >> w) & 1) != 0;
            bool msb = ((r >> (w - 1)) & 1) != 0;
            bool next = ((r >> (w - 2)) & 1) != 0;
            SetCfOf(c, cf, msb ^ next);
            return r;
        }
    }

    /// <summary>SHLD/SHRD: shifts dst, filling from src; the count is operand 2 (imm8 or CL).</summary>
    internal interface IDoubleShiftOp
    {
        static abstract ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src, int count);
    }

    internal static int DoubleShift<T>(Cpu.Cpu c, ref DecodedOp op)
        where T : struct, IDoubleShiftOp
    {
        int size = op.OpSize;
        int count = ShiftCount(c, ref op, op.R2, size);
        ulong src = c.GetReg(op.R1, size);
        if (op.R0 != Reg.NoReg)
        {
            ulong d = c.GetReg(op.R0, size);
            c.SetReg(op.R0, size, count == 0 ? d : T.Apply(c, size, d, src, count));
            return ExecStatus.Continue;
        }

        ChargeMemoryForm(c);
        ulong ea = c.Ea(ref op);
        if (!c.ReadMemForWrite(op.Seg, ea, size, out ulong dst))
        {
            return ExecStatus.Fault;
        }

        if (count == 0)
        {
            return ExecStatus.Continue;
        }

        return c.WriteMem(op.Seg, ea, size, T.Apply(c, size, dst, src, count)) ? ExecStatus.Continue : ExecStatus.Fault;
    }

    internal struct ShldOp : IDoubleShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src, int count)
        {
            int w = size * 8;
            ulong r;
            bool cf;
            if (size == 8)
            {
                UInt128 v = ((UInt128)dst << 64) | src;
                r = (ulong)((v << count) >> 64);
                cf = ((dst >> (64 - count)) & 1) != 0;
            }
            else if (size == 4)
            {
                ulong v = (dst << 32) | src;
                r = (v << count) >> 32;
                cf = ((dst >> (32 - count)) & 1) != 0;
            }
            else
            {
                // dst:src:dst, so 16-bit counts above 16 keep going (undefined in the manual).
                ulong v = (dst << (2 * w)) | (src << w) | dst;
                r = (v << count) >> (2 * w);
                cf = ((v >> ((3 * w) - count)) & 1) != 0;
            }

            r &= Cpu.Cpu.SizeMask(size);
            bool of = ((r ^ dst) >> (w - 1) & 1) != 0;
            c.SetFlagsResult(size, r, cf, of);
            return r;
        }
    }

    internal struct ShrdOp : IDoubleShiftOp
    {
        public static ulong Apply(Cpu.Cpu c, int size, ulong dst, ulong src, int count)
        {
            int w = size * 8;
            ulong r;
            bool cf;
            if (size == 8)
            {
                UInt128 v = ((UInt128)src << 64) | dst;
                r = (ulong)(v >> count);
                cf = ((dst >> (count - 1)) & 1) != 0;
            }
            else if (size == 4)
            {
                ulong v = (src << 32) | dst;
                r = v >> count;
                cf = ((dst >> (count - 1)) & 1) != 0;
            }
            else
            {
                ulong v = (dst << (2 * w)) | (src << w) | dst;
                r = v >> count;
                cf = ((v >> (count - 1)) & 1) != 0;
            }

            r &= Cpu.Cpu.SizeMask(size);
            bool of = ((r ^ dst) >> (w - 1) & 1) != 0;
            c.SetFlagsResult(size, r, cf, of);
            return r;
        }
    }
}
