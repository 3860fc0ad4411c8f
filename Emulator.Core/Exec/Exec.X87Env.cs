using Emulator.Core.Cpu;
using Emulator.Core.Decode;
using Emulator.Core.Timing;
using Iced.Intel;

namespace Emulator.Core.Exec;

/// <summary>
/// FNSTENV/FLDENV and FNSAVE/FRSTOR (APM vol. 5; layouts in vol. 1 §6.9): 14-byte (16-bit operand size)
/// and 28-byte (32/64-bit) environments, each in its protected-mode or real-mode form, followed by
/// ST(0)–ST(7) (10 bytes each) for FNSAVE. In real and virtual-8086 mode the pointers are stored as
/// 20-bit (16-bit form) or 32-bit (32-bit form) linear addresses split around the opcode.
/// </summary>
public static unsafe partial class Exec
{
    private static void RegisterX87Env(HandlerTable t)
    {
        t.Add(Code.Fnstenv_m14byte, &Fnstenv, CostClass.X87);
        t.Add(Code.Fnstenv_m28byte, &Fnstenv, CostClass.X87);
        t.Add(Code.Fstenv_m14byte, &Fnstenv, CostClass.X87);
        t.Add(Code.Fstenv_m28byte, &Fnstenv, CostClass.X87);
        t.Add(Code.Fldenv_m14byte, &Fldenv, CostClass.X87);
        t.Add(Code.Fldenv_m28byte, &Fldenv, CostClass.X87);
        t.Add(Code.Fnsave_m94byte, &Fnsave, CostClass.X87);
        t.Add(Code.Fnsave_m108byte, &Fnsave, CostClass.X87);
        t.Add(Code.Fsave_m94byte, &Fnsave, CostClass.X87);
        t.Add(Code.Fsave_m108byte, &Fnsave, CostClass.X87);
        t.Add(Code.Frstor_m94byte, &Frstor, CostClass.X87);
        t.Add(Code.Frstor_m108byte, &Frstor, CostClass.X87);
    }

    private static bool IsWaitingForm(Code code) => code is Code.Fstenv_m14byte or Code.Fstenv_m28byte or Code.Fsave_m94byte or Code.Fsave_m108byte;

    private static bool Is16BitEnv(Code code) => code is Code.Fnstenv_m14byte or Code.Fstenv_m14byte or Code.Fldenv_m14byte
        or Code.Fnsave_m94byte or Code.Fsave_m94byte or Code.Frstor_m94byte;

    /// <summary>Fills the environment image (7 fields of 2 or 4 bytes) in <paramref name="env"/>.</summary>
    private static int BuildEnv(Cpu.Cpu c, Span<byte> env, bool is16)
    {
        bool real = c.Mode is CpuMode.Real or CpuMode.Virtual8086;
        int w = is16 ? 2 : 4;
        env[..(7 * w)].Clear();
        uint ip = (uint)c.FpuIp, dp = (uint)c.FpuDp;
        Span<uint> f = stackalloc uint[7];
        f[0] = c.FpuCw;
        f[1] = c.FpuSwFull;
        f[2] = c.FpuTagWord();
        if (real)
        {
            uint lip = ((uint)c.FpuCs << 4) + ip, ldp = ((uint)c.FpuDs << 4) + dp;
            f[3] = lip & 0xFFFF;
            f[4] = (is16 ? ((lip >> 16) & 0xF) << 12 : (lip >> 16) << 12) | (c.FpuFop & 0x7FFu);
            f[5] = ldp & 0xFFFF;
            f[6] = is16 ? ((ldp >> 16) & 0xF) << 12 : (ldp >> 16) << 12;
        }
        else
        {
            f[3] = ip;
            f[4] = is16 ? c.FpuCs : c.FpuCs | ((uint)(c.FpuFop & 0x7FF) << 16);
            f[5] = dp;
            f[6] = c.FpuDs;
        }

        for (int i = 0; i < 7; i++)
        {
            if (is16)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(env[(i * 2)..], (ushort)f[i]);
            }
            else
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(env[(i * 4)..], f[i]);
            }
        }

        return 7 * w;
    }

    private static void LoadEnv(Cpu.Cpu c, ReadOnlySpan<byte> env, bool is16)
    {
        bool real = c.Mode is CpuMode.Real or CpuMode.Virtual8086;
        Span<uint> f = stackalloc uint[7];
        for (int i = 0; i < 7; i++)
        {
            f[i] = is16
                ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(env[(i * 2)..])
                : System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(env[(i * 4)..]);
        }

        c.FpuCw = (ushort)((f[0] & 0x1F3F) | 0x40);
        c.SetFpuSw((ushort)f[1]);
        c.SetFpuTagWord((ushort)f[2]);
        if (real)
        {
            c.FpuIp = f[3] | (is16 ? ((f[4] >> 12) & 0xF) << 16 : (f[4] >> 12) << 16);
            c.FpuFop = (ushort)(f[4] & 0x7FF);
            c.FpuDp = f[5] | (is16 ? ((f[6] >> 12) & 0xF) << 16 : (f[6] >> 12) << 16);
            c.FpuCs = c.FpuDs = 0;
        }
        else
        {
            c.FpuIp = f[3];
            c.FpuCs = (ushort)f[4];
            c.FpuFop = is16 ? (ushort)0 : (ushort)((f[4] >> 16) & 0x7FF);
            c.FpuDp = f[5];
            c.FpuDs = (ushort)f[6];
        }

        RecomputeSummary(c);
    }

    private static bool WriteBytes(Cpu.Cpu c, int seg, ulong off, ReadOnlySpan<byte> bytes)
    {
        if (!ProbeWrite(c, seg, off, bytes.Length))
        {
            return false;
        }

        int i = 0;
        for (; i + 8 <= bytes.Length; i += 8)
        {
            if (!c.WriteMem(seg, off + (ulong)i, 8, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes[i..])))
            {
                return false;
            }
        }

        for (; i < bytes.Length; i += 2)
        {
            if (!c.WriteMem(seg, off + (ulong)i, 2, System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(bytes[i..])))
            {
                return false;
            }
        }

        return true;
    }

    private static bool ReadBytes(Cpu.Cpu c, int seg, ulong off, Span<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i += 2)
        {
            if (!c.ReadMem(seg, off + (ulong)i, 2, out ulong v))
            {
                return false;
            }

            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes[i..], (ushort)v);
        }

        return true;
    }

    /// <summary>FNSTENV: stores the environment, then masks all exceptions (as the manual specifies).</summary>
    public static int Fnstenv(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, IsWaitingForm(op.Code));
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        Span<byte> env = stackalloc byte[28];
        int len = BuildEnv(c, env, Is16BitEnv(op.Code));
        if (!WriteBytes(c, op.Seg, c.Ea(ref op), env[..len]))
        {
            return ExecStatus.Fault;
        }

        c.FpuCw |= (ushort)FpFlags.All;
        RecomputeSummary(c);
        return ExecStatus.Continue;
    }

    public static int Fldenv(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, waiting: false);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        bool is16 = Is16BitEnv(op.Code);
        Span<byte> env = stackalloc byte[28];
        int len = is16 ? 14 : 28;
        if (!ReadBytes(c, op.Seg, c.Ea(ref op), env[..len]))
        {
            return ExecStatus.Fault;
        }

        LoadEnv(c, env, is16);
        return ExecStatus.Continue;
    }

    /// <summary>FNSAVE: environment plus ST(0)–ST(7), then the FNINIT state.</summary>
    public static int Fnsave(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, IsWaitingForm(op.Code));
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        Span<byte> area = stackalloc byte[108];
        int len = BuildEnv(c, area, Is16BitEnv(op.Code));
        for (int i = 0; i < 8; i++)
        {
            Float80 v = c.St(i);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(area[(len + (i * 10))..], v.Mantissa);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(area[(len + (i * 10) + 8)..], v.SignExp);
        }

        if (!WriteBytes(c, op.Seg, c.Ea(ref op), area[..(len + 80)]))
        {
            return ExecStatus.Fault;
        }

        c.FpuInit();
        return ExecStatus.Continue;
    }

    public static int Frstor(Cpu.Cpu c, ref DecodedOp op)
    {
        int st = X87Enter(c, waiting: false);
        if (st != ExecStatus.Continue)
        {
            return st;
        }

        bool is16 = Is16BitEnv(op.Code);
        int len = is16 ? 14 : 28;
        Span<byte> area = stackalloc byte[108];
        if (!ReadBytes(c, op.Seg, c.Ea(ref op), area[..(len + 80)]))
        {
            return ExecStatus.Fault;
        }

        LoadEnv(c, area, is16);
        for (int i = 0; i < 8; i++)
        {
            c.St(i) = new Float80(
                System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(area[(len + (i * 10) + 8)..]),
                System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(area[(len + (i * 10))..]));
        }

        return ExecStatus.Continue;
    }
}
