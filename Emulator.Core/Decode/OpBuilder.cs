using Emulator.Core.Cpu;
using Iced.Intel;

namespace Emulator.Core.Decode;

/// <summary>Turns Iced's <see cref="Instruction"/> into a <see cref="DecodedOp"/> (decode-cache miss path only).</summary>
public static unsafe class OpBuilder
{
    public static void Build(in Instruction ins, ref DecodedOp op, Exec.HandlerTable table, Timing.CostTable costs)
    {
        op = default;
        op.Code = ins.Code;
        op.MemorySize = ins.MemorySize;
        op.OpCount = (byte)ins.OpCount;
        op.Length = (byte)ins.Length;
        op.R0 = op.R1 = op.R2 = Reg.NoReg;
        op.MemOp = Reg.NoReg;
        op.Base = op.Index = Reg.NoReg;
        op.Seg = SegReg.DS;
        op.AddrSize = 8;
        op.Handler = table.Get(ins.Code);
        op.Cycles = costs.ClassCycles(table.CostOf(ins.Code));
        op.Rep = ins.HasRepPrefix || ins.HasRepePrefix ? (byte)1 : ins.HasRepnePrefix ? (byte)2 : (byte)0;
        op.Lock = ins.HasLockPrefix ? (byte)1 : (byte)0;

        int opSize = 0;
        ulong nextIp = ins.NextIP;
        int count = ins.OpCount;
        for (int i = 0; i < count && i < 3; i++)
        {
            OpKind kind = ins.GetOpKind(i);
            switch (kind)
            {
                case OpKind.Register:
                    {
                        Register reg = ins.GetOpRegister(i);
                        byte num = RegisterNumber(reg);
                        if (i == 0) op.R0 = num;
                        else if (i == 1) op.R1 = num;
                        else op.R2 = num;
                        if (opSize == 0 && reg.IsGPR())
                        {
                            opSize = reg.GetSize();
                        }

                        break;
                    }

                case OpKind.Memory:
                    {
                        op.MemOp = (byte)i;
                        op.Seg = (byte)SegmentNumber(ins.MemorySegment);
                        op.Scale = (byte)(ins.MemoryIndexScale switch { 1 => 0, 2 => 1, 4 => 2, _ => 3 });
                        Register b = ins.MemoryBase;
                        Register x = ins.MemoryIndex;
                        op.AddrSize = (byte)AddressSizeOf(ins);
                        if (b == Register.RIP || b == Register.EIP)
                        {
                            op.Base = Reg.Rip;
                            op.Disp = (long)(ins.MemoryDisplacement64 - nextIp);
                        }
                        else
                        {
                            op.Base = b == Register.None ? Reg.NoReg : RegisterNumber(b);
                            op.Disp = (long)ins.MemoryDisplacement64;
                        }

                        op.Index = x == Register.None ? Reg.NoReg : RegisterNumber(x);
                        if (opSize == 0)
                        {
                            int ms = ins.MemorySize.GetSize();
                            if (ms is 1 or 2 or 4 or 8)
                            {
                                opSize = ms;
                            }
                        }

                        break;
                    }

                case OpKind.NearBranch16:
                case OpKind.NearBranch32:
                case OpKind.NearBranch64:
                    op.Imm = ins.NearBranchTarget - nextIp;
                    break;
                case OpKind.FarBranch16:
                    op.Imm = ins.FarBranch16;
                    op.Imm2 = ins.FarBranchSelector;
                    break;
                case OpKind.FarBranch32:
                    op.Imm = ins.FarBranch32;
                    op.Imm2 = ins.FarBranchSelector;
                    break;
                case OpKind.Immediate8_2nd:
                    op.Imm2 = ins.Immediate8_2nd;
                    break;
                case OpKind.Immediate8:
                case OpKind.Immediate16:
                case OpKind.Immediate32:
                case OpKind.Immediate64:
                case OpKind.Immediate8to16:
                case OpKind.Immediate8to32:
                case OpKind.Immediate8to64:
                case OpKind.Immediate32to64:
                    op.Imm = ins.GetImmediate(i);
                    break;
                case OpKind.MemorySegSI:
                case OpKind.MemorySegESI:
                case OpKind.MemorySegRSI:
                case OpKind.MemorySegDI:
                case OpKind.MemorySegEDI:
                case OpKind.MemorySegRDI:
                case OpKind.MemoryESDI:
                case OpKind.MemoryESEDI:
                case OpKind.MemoryESRDI:
                    // String operands: segment override applies to the source; address size from the prefix.
                    op.Seg = (byte)SegmentNumber(ins.MemorySegment);
                    op.AddrSize = (byte)AddressSizeOf(ins);
                    if (opSize == 0)
                    {
                        int ms = ins.MemorySize.GetSize();
                        if (ms is 1 or 2 or 4 or 8)
                        {
                            opSize = ms;
                        }
                    }

                    break;
            }
        }

        op.OpSize = (byte)(opSize == 0 ? DefaultOperandSize(ins) : opSize);
        op.Handler = table.Select(ref op);
    }

    /// <summary>Address size from the code size and a 0x67 prefix.</summary>
    public static int AddressSizeOf(in Instruction ins)
    {
        int bitness = ins.CodeSize switch { CodeSize.Code16 => 16, CodeSize.Code32 => 32, _ => 64 };
        // Iced has no address-size property: derive it from the string operand kinds, the base/index
        // register size, or (absolute addresses) the displacement size, which Iced reports as 2, 4 or 8.
        for (int i = 0; i < ins.OpCount; i++)
        {
            switch (ins.GetOpKind(i))
            {
                case OpKind.MemorySegSI: case OpKind.MemorySegDI: case OpKind.MemoryESDI: return 2;
                case OpKind.MemorySegESI: case OpKind.MemorySegEDI: case OpKind.MemoryESEDI: return 4;
                case OpKind.MemorySegRSI: case OpKind.MemorySegRDI: case OpKind.MemoryESRDI: return 8;
                case OpKind.Memory:
                    {
                        Register r = ins.MemoryBase != Register.None ? ins.MemoryBase : ins.MemoryIndex;
                        if (r == Register.RIP) return 8;
                        if (r == Register.EIP) return 4;
                        if (r != Register.None) return r.GetSize();
                        // Absolute address: the displacement size tells (2, 4 or 8).
                        int ds = ins.MemoryDisplSize;
                        if (ds is 2 or 4 or 8) return ds;
                        break;
                    }
            }
        }

        return bitness / 8;
    }

    private static int DefaultOperandSize(in Instruction ins)
    {
        // Fallback for forms whose operand size is not in a register or memory operand (PUSH imm, JMP rel …).
        int bitness = ins.CodeSize switch { CodeSize.Code16 => 16, CodeSize.Code32 => 32, _ => 64 };
        return bitness == 16 ? 2 : 4;
    }

    public static int SegmentNumber(Register seg) => seg switch
    {
        Register.ES => SegReg.ES,
        Register.CS => SegReg.CS,
        Register.SS => SegReg.SS,
        Register.DS => SegReg.DS,
        Register.FS => SegReg.FS,
        Register.GS => SegReg.GS,
        _ => SegReg.DS,
    };

    /// <summary>Our register number for an Iced register (see Gpr; segment, control, debug, x87, MMX and XMM registers by index).</summary>
    public static byte RegisterNumber(Register r)
    {
        if (r >= Register.AL && r <= Register.R15L)
        {
            int i = r - Register.AL;
            return i switch
            {
                < 4 => (byte)i,
                < 8 => (byte)(Reg.AH + (i - 4)),
                < 12 => (byte)(4 + (i - 8)),
                _ => (byte)(i - 4),
            };
        }

        if (r >= Register.AX && r <= Register.R15W) return (byte)(r - Register.AX);
        if (r >= Register.EAX && r <= Register.R15D) return (byte)(r - Register.EAX);
        if (r >= Register.RAX && r <= Register.R15) return (byte)(r - Register.RAX);
        if (r >= Register.ES && r <= Register.GS) return (byte)(r - Register.ES);
        if (r >= Register.CR0 && r <= Register.CR15) return (byte)(r - Register.CR0);
        if (r >= Register.DR0 && r <= Register.DR15) return (byte)(r - Register.DR0);
        if (r >= Register.ST0 && r <= Register.ST7) return (byte)(r - Register.ST0);
        if (r >= Register.MM0 && r <= Register.MM7) return (byte)(r - Register.MM0);
        if (r >= Register.XMM0 && r <= Register.XMM31) return (byte)(r - Register.XMM0);
        if (r == Register.RIP || r == Register.EIP) return Reg.Rip;
        return Reg.NoReg;
    }
}
