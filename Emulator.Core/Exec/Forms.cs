namespace Emulator.Core.Exec.Forms;

// Type parameters that specialize one handler body per instruction form (operand width, branch
// condition), so the JIT folds the form's constants instead of the handler switching on Code.

/// <summary>An operand, address or counter width known at JIT time.</summary>
public interface IDataWidth
{
    static abstract int Bytes { get; }
}

public readonly struct Dw8 : IDataWidth { public static int Bytes => 1; }

public readonly struct Dw16 : IDataWidth { public static int Bytes => 2; }

public readonly struct Dw32 : IDataWidth { public static int Bytes => 4; }

public readonly struct Dw64 : IDataWidth { public static int Bytes => 8; }

/// <summary>A branch condition known at JIT time, so each Jcc form compiles to its own flag test.</summary>
public interface ICondition
{
    static abstract bool Holds(Emulator.Core.Cpu.Cpu c);
}

public readonly struct CcO : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetOF(); }

public readonly struct CcNo : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetOF(); }

public readonly struct CcB : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetCF(); }

public readonly struct CcAe : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetCF(); }

public readonly struct CcE : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetZF(); }

public readonly struct CcNe : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetZF(); }

public readonly struct CcBe : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetCF() || c.GetZF(); }

public readonly struct CcA : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetCF() && !c.GetZF(); }

public readonly struct CcS : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetSF(); }

public readonly struct CcNs : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetSF(); }

public readonly struct CcP : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetPF(); }

public readonly struct CcNp : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetPF(); }

public readonly struct CcL : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetSF() != c.GetOF(); }

public readonly struct CcGe : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetSF() == c.GetOF(); }

public readonly struct CcLe : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetZF() || c.GetSF() != c.GetOF(); }

public readonly struct CcG : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetZF() && c.GetSF() == c.GetOF(); }

public readonly struct LoopAlways : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => true; }

public readonly struct LoopWhileZero : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => c.GetZF(); }

public readonly struct LoopWhileNotZero : ICondition { public static bool Holds(Emulator.Core.Cpu.Cpu c) => !c.GetZF(); }

/// <summary>
/// How a memory operand's effective address is formed, known at JIT time: the decoder picks the
/// narrowest kind that fits the operand (<see cref="Exec.AddressingOf"/>), so the common 64-bit forms
/// skip the tests of the general <see cref="Emulator.Core.Cpu.Cpu.Ea"/>.
/// </summary>
public interface IAddressing
{
    static abstract ulong Ea(Emulator.Core.Cpu.Cpu c, ref Emulator.Core.Decode.DecodedOp op);
}

/// <summary>64-bit address size, [base + disp].</summary>
public readonly struct AddrBase64 : IAddressing
{
    public static ulong Ea(Emulator.Core.Cpu.Cpu c, ref Emulator.Core.Decode.DecodedOp op) => At(c, op.Base, op.Index, op.Scale, op.Disp);

    /// <summary>The address from the operand's parts (compiled blocks pass them as constants).</summary>
    public static ulong At(Emulator.Core.Cpu.Cpu c, int @base, int index, int scale, long disp) => Of(c.GprUnchecked(@base), 0, scale, disp);

    /// <summary>The address from the base register's value (compiled blocks pass the registers they hold in locals).</summary>
    public static ulong Of(ulong @base, ulong index, int scale, long disp) => @base + (ulong)disp;
}

/// <summary>64-bit address size, [base + index·scale + disp].</summary>
public readonly struct AddrBaseIndex64 : IAddressing
{
    public static ulong Ea(Emulator.Core.Cpu.Cpu c, ref Emulator.Core.Decode.DecodedOp op) => At(c, op.Base, op.Index, op.Scale, op.Disp);

    /// <summary>The address from the operand's parts (compiled blocks pass them as constants).</summary>
    public static ulong At(Emulator.Core.Cpu.Cpu c, int @base, int index, int scale, long disp) =>
        Of(c.GprUnchecked(@base), c.GprUnchecked(index), scale, disp);

    /// <summary>The address from the base and index registers' values (compiled blocks pass the registers they hold in locals).</summary>
    public static ulong Of(ulong @base, ulong index, int scale, long disp) => @base + (index << scale) + (ulong)disp;
}

/// <summary>64-bit address size, [rip + disp] (disp relative to the next instruction).</summary>
public readonly struct AddrRip64 : IAddressing
{
    public static ulong Ea(Emulator.Core.Cpu.Cpu c, ref Emulator.Core.Decode.DecodedOp op) => At(c, op.Base, op.Index, op.Scale, op.Disp);

    /// <summary>The address from the operand's parts (compiled blocks pass them as constants).</summary>
    public static ulong At(Emulator.Core.Cpu.Cpu c, int @base, int index, int scale, long disp) => c.NextRip + (ulong)disp;
}

/// <summary>
/// 64-bit address size, [index·scale + disp] or [disp] (no base): an <see cref="AddrAny"/> form the interpreter
/// computes generally; compiled blocks, which know the parts, compute it with this.
/// </summary>
public static class AddrNoBase64
{
    /// <summary>The address from the index register's value, 0 for none (compiled blocks pass the registers they hold in locals).</summary>
    public static ulong Of(ulong @base, ulong index, int scale, long disp) => (index << scale) + (ulong)disp;
}

/// <summary>Any other form (16/32-bit address size, no base, moffs): the general computation.</summary>
public readonly struct AddrAny : IAddressing
{
    public static ulong Ea(Emulator.Core.Cpu.Cpu c, ref Emulator.Core.Decode.DecodedOp op) => c.Ea(ref op);
}
