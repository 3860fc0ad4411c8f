using System.Reflection;
using System.Reflection.Emit;
using Emulator.Core.Cpu;

namespace Emulator.Core.Decode;

/// <summary>
/// Turns a hot block into a method of its own (IL the runtime compiles): the same handlers the interpreter calls,
/// in the same order, with the block's constants (next RIP offsets, handlers, op addresses and operands, cycle
/// costs) written into the code and one call site per op, so the host predicts each call where the interpreter's
/// one call site sees every handler, and the runtime inlines the small handlers. Commits are made where something
/// can observe them: an op that can fault or look at the machine finds RIP, NextRip and the cycle count as the
/// interpreter leaves them; the instruction count, which only PAUSE and the loop read, is added up at the block's
/// end and on every way out (docs/cpu.md, "Compiled blocks").
/// </summary>
internal static unsafe class BlockCompiler
{
    /// <summary>The block ran to its end (or an op ended it) and nobody asked the loop to look around.</summary>
    public const int Completed = -1;

    /// <summary>Ops up to and including the last retired; ExitRequest was set (the compiled code cleared it).</summary>
    public const int ExitRequested = -2;

    // A result that is neither: op index << StatusBits | the status it returned (not Continue or EndBlock).
    public const int StatusBits = 8;

    private static readonly FieldInfo s_rip = typeof(Cpu.Cpu).GetField(nameof(Cpu.Cpu.Rip))!;
    private static readonly FieldInfo s_nextRip = typeof(Cpu.Cpu).GetField(nameof(Cpu.Cpu.NextRip))!;
    private static readonly FieldInfo s_cycles = typeof(Cpu.Cpu).GetField(nameof(Cpu.Cpu.Cycles))!;
    private static readonly FieldInfo s_instructions = typeof(Cpu.Cpu).GetField(nameof(Cpu.Cpu.Instructions))!;
    private static readonly FieldInfo s_exitRequest = typeof(Cpu.Cpu).GetField(nameof(Cpu.Cpu.ExitRequest))!;
    private static readonly Type[] s_handlerArgs = [typeof(Cpu.Cpu), typeof(DecodedOp).MakeByRefType()];
    // The method's first argument is its CompiledBlock, which the delegate is closed over (a delegate closed over
    // its first argument is invoked by a plain call; an open static one goes through a thunk).
    private static readonly Type[] s_blockArgs = [typeof(CompiledBlock), typeof(Cpu.Cpu)];
    private static readonly MethodInfo s_chain = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.Chain), BindingFlags.Static | BindingFlags.NonPublic)!;
    private static readonly MethodInfo s_leave = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.LeaveChain), BindingFlags.Static | BindingFlags.NonPublic)!;

    /// <summary>
    /// Compiles the <paramref name="count"/> ops at <paramref name="ops"/> (in pinned memory that outlives the
    /// method: the ops pool until it is flushed). <paramref name="wideIp"/>: 64-bit code, where sequential RIP does
    /// not wrap at 4 GiB.
    /// </summary>
    public static CompiledBlock Compile(DecodedOp* ops, int start, int count, bool wideIp)
    {
        var method = new DynamicMethod("block", typeof(CompiledBlock), s_blockArgs, typeof(BlockCompiler).Module, skipVisibility: true);
        var il = method.GetILGenerator(64 + (count * 96));
        var rip = il.DeclareLocal(typeof(ulong));
        var next = il.DeclareLocal(typeof(ulong));
        var st = il.DeclareLocal(typeof(int));
        var tail = il.DefineLabel();
        var request = il.DefineLabel();
        var exits = new Label[count];

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldfld, s_rip);
        il.Emit(OpCodes.Stloc, rip);
        EmitClearExitRequest(il);

        ulong offset = 0;

        // Commits still owed. RIP and cycles: by register-only ops, until the next op that can observe them.
        // Instructions: by every op, until the block's end or a way out, since only PAUSE (and the loop, after the
        // block) reads the count.
        int owedOps = 0;
        ulong owedCycles = 0;
        int owedInstructions = 0;
        var exitInstructions = new int[count];
        for (int i = 0; i < count; i++)
        {
            ref DecodedOp op = ref ops[i];
            HandlerMethods.TryGetValue((nint)op.Handler, out var target);
            if (target != null && IsRegisterOnly(target, ref op))
            {
                // Nothing can observe RIP, NextRip, the counters or the exit request while it runs, and it cannot
                // fail: its commits are folded into the next op's (or the block's end), which sees the same state.
                if (!TryEmitWithConstants(il, ref op, target))
                {
                    EmitHandlerCall(il, ops + i, target);
                }

                il.Emit(OpCodes.Pop);
                offset += op.Length;
                owedOps++;
                owedCycles += op.Cycles;
                owedInstructions++;
                continue;
            }

            if (owedOps != 0)
            {
                EmitCommit(il, rip, offset, wideIp, owedCycles);
                owedOps = 0;
                owedCycles = 0;
            }

            if (target == null || ReadsInstructions(target))
            {
                EmitAddInstructions(il, owedInstructions);
                owedInstructions = 0;
            }

            offset += op.Length;
            exits[i] = il.DefineLabel();
            exitInstructions[i] = owedInstructions;
            var cont = il.DefineLabel();

            // next = (rip + offset) & IP mask; NextRip = next, unless nothing on the op's way can read it.
            bool setNextRip = target == null || ReadsNextRip(target);
            EmitRipAt(il, rip, offset, wideIp);
            il.Emit(OpCodes.Stloc, next);
            if (setNextRip)
            {
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldloc, next);
                il.Emit(OpCodes.Stfld, s_nextRip);
            }

            // st = op.Handler(c, ref op)
            if (target == null || !TryEmitWithConstants(il, ref op, target))
            {
                EmitHandlerCall(il, ops + i, target);
            }
            il.Emit(OpCodes.Stloc, st);
            il.Emit(OpCodes.Ldloc, st);
            il.Emit(OpCodes.Brfalse, cont);

            // EndBlock: RIP is where the handler sent it; retire and leave.
            il.Emit(OpCodes.Ldloc, st);
            il.Emit(OpCodes.Ldc_I4, ExecStatus.EndBlock);
            il.Emit(OpCodes.Bne_Un, exits[i]);
            il.Emit(OpCodes.Ldarg_1);
            if (setNextRip)
            {
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldfld, s_nextRip);
            }
            else
            {
                il.Emit(OpCodes.Ldloc, next);
            }

            il.Emit(OpCodes.Stfld, s_rip);
            EmitAddCycles(il, op.Cycles);
            EmitAddInstructions(il, owedInstructions + 1);
            il.Emit(OpCodes.Br, tail);

            // Continue: RIP = next, retire, leave if asked to.
            il.MarkLabel(cont);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldloc, next);
            il.Emit(OpCodes.Stfld, s_rip);
            EmitAddCycles(il, op.Cycles);
            owedInstructions++;
            if (i < count - 1)
            {
                var go = il.DefineLabel();
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldfld, s_exitRequest);
                il.Emit(OpCodes.Brfalse, go);
                EmitAddInstructions(il, owedInstructions);
                il.Emit(OpCodes.Br, request);
                il.MarkLabel(go);
            }
        }

        if (owedOps != 0)
        {
            EmitCommit(il, rip, offset, wideIp, owedCycles);
        }

        EmitAddInstructions(il, owedInstructions);

        // All retired and committed: on to the next block if the loop would go straight there.
        il.MarkLabel(tail);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldfld, s_exitRequest);
        il.Emit(OpCodes.Brtrue, request);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, s_chain);
        il.Emit(OpCodes.Ret);

        il.MarkLabel(request);
        EmitClearExitRequest(il);
        EmitLeave(il, ExitRequested);

        // An op that faulted, halted or stopped: the ops before it retired; the loop finishes it.
        for (int i = 0; i < count; i++)
        {
            if (exits[i] == default)
            {
                continue;
            }

            il.MarkLabel(exits[i]);
            EmitAddInstructions(il, exitInstructions[i]);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldloc, st);
            il.Emit(OpCodes.Ldc_I4, i << StatusBits);
            il.Emit(OpCodes.Or);
            il.Emit(OpCodes.Call, s_leave);
            il.Emit(OpCodes.Ret);
        }

        var block = new CompiledBlock(start, count);
        block.Code = method.CreateDelegate<BlockCode>(block);
        return block;
    }

    private static void EmitLeave(ILGenerator il, int result)
    {
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, result);
        il.Emit(OpCodes.Call, s_leave);
        il.Emit(OpCodes.Ret);
    }

    private static Dictionary<nint, MethodInfo>? s_handlerMethods;

    /// <summary>
    /// Handler entry points → their methods, so a compiled block calls a handler by name (a direct call the runtime
    /// may inline) rather than through its address. Generic handlers are instantiated over every struct of this
    /// assembly that meets their constraints. Built once, on the first compilation.
    /// </summary>
    private static Dictionary<nint, MethodInfo> HandlerMethods => s_handlerMethods ??= BuildHandlerMethods();

    private static Dictionary<nint, MethodInfo> BuildHandlerMethods()
    {
        var map = new Dictionary<nint, MethodInfo>();
        var types = typeof(BlockCompiler).Assembly.GetTypes();
        var structs = new List<Type>();
        foreach (var t in types)
        {
            if (t.IsValueType && !t.IsGenericTypeDefinition && !t.IsEnum)
            {
                structs.Add(t);
            }
        }

        foreach (var t in types)
        {
            if (t.IsGenericTypeDefinition)
            {
                continue;
            }

            foreach (var m in t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                var ps = m.GetParameters();
                if (m.ReturnType != typeof(int) || ps.Length != 2 || ps[0].ParameterType != s_handlerArgs[0] || ps[1].ParameterType != s_handlerArgs[1])
                {
                    continue;
                }

                if (!m.IsGenericMethodDefinition)
                {
                    map.TryAdd(m.MethodHandle.GetFunctionPointer(), m);
                    continue;
                }

                var args = m.GetGenericArguments();
                var candidates = new List<Type>[args.Length];
                for (int i = 0; i < args.Length; i++)
                {
                    candidates[i] = [];
                    foreach (var s in structs)
                    {
                        if (Meets(args[i], s))
                        {
                            candidates[i].Add(s);
                        }
                    }
                }

                var pick = new Type[args.Length];
                Instantiate(m, candidates, pick, 0, map);
            }
        }

        return map;
    }

    private static bool Meets(Type parameter, Type candidate)
    {
        foreach (var c in parameter.GetGenericParameterConstraints())
        {
            if (c.ContainsGenericParameters)
            {
                continue;
            }

            if (!c.IsAssignableFrom(candidate))
            {
                return false;
            }
        }

        return true;
    }

    private static void Instantiate(MethodInfo m, List<Type>[] candidates, Type[] pick, int i, Dictionary<nint, MethodInfo> map)
    {
        if (i == pick.Length)
        {
            try
            {
                var made = m.MakeGenericMethod(pick);
                map.TryAdd(made.MethodHandle.GetFunctionPointer(), made);
            }
            catch (ArgumentException)
            {
                // A constraint the simple check above could not test (one naming another type parameter).
            }

            return;
        }

        foreach (var t in candidates[i])
        {
            pick[i] = t;
            Instantiate(m, candidates, pick, i + 1, map);
        }
    }

    private static void EmitClearExitRequest(ILGenerator il)
    {
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stfld, s_exitRequest);
    }

    private static void EmitAddCycles(ILGenerator il, ulong cycles) => EmitAdd(il, s_cycles, (long)cycles);

    private static void EmitAddInstructions(ILGenerator il, int ops)
    {
        if (ops != 0)
        {
            EmitAdd(il, s_instructions, ops);
        }
    }

    /// <summary>c.<paramref name="counter"/> += <paramref name="value"/> (a ulong field of the vCPU).</summary>
    private static void EmitAdd(ILGenerator il, FieldInfo counter, long value)
    {
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldfld, counter);
        il.Emit(OpCodes.Ldc_I8, value);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Stfld, counter);
    }

    /// <summary>Pushes the block's entry RIP plus <paramref name="offset"/>, wrapped as sequential execution wraps it.</summary>
    private static void EmitRipAt(ILGenerator il, LocalBuilder rip, ulong offset, bool wideIp)
    {
        il.Emit(OpCodes.Ldloc, rip);
        il.Emit(OpCodes.Ldc_I8, (long)offset);
        il.Emit(OpCodes.Add);
        if (!wideIp)
        {
            il.Emit(OpCodes.Conv_U4);
            il.Emit(OpCodes.Conv_U8);
        }
    }

    /// <summary>The owed commits of register-only ops: RIP after them and their cycles.</summary>
    private static void EmitCommit(ILGenerator il, LocalBuilder rip, ulong offset, bool wideIp, ulong cycles)
    {
        il.Emit(OpCodes.Ldarg_1);
        EmitRipAt(il, rip, offset, wideIp);
        il.Emit(OpCodes.Stfld, s_rip);
        EmitAddCycles(il, cycles);
    }

    /// <summary>
    /// Calls the form of a handler that takes the op's fields as arguments, passing them as constants so the runtime
    /// addresses the registers directly: the K form of a register-only handler (the handler itself calls it with
    /// the op's fields), or for loads, stores and LEA the At forms (<see cref="TryEmitMemoryForm"/>). False: the
    /// handler has no such form and is called with the op.
    /// </summary>
    private static bool TryEmitWithConstants(ILGenerator il, ref DecodedOp op, MethodInfo handler)
    {
        bool imm;
        switch (handler.Name)
        {
            case nameof(Exec.Exec.AluRR):
            case nameof(Exec.Exec.MovRR):
            case nameof(Exec.Exec.ImulRR):
                imm = false;
                break;
            case nameof(Exec.Exec.AluRI):
            case nameof(Exec.Exec.MovRI):
                imm = true;
                break;
            case nameof(Exec.Exec.UnaryR):
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldc_I4, (int)op.R0);
                il.Emit(OpCodes.Call, WithConstants(handler));
                return true;
            case nameof(Exec.Exec.ShiftRI):
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldc_I4, (int)op.R0);
                il.Emit(OpCodes.Ldc_I4, (int)(byte)op.Imm);
                il.Emit(OpCodes.Call, WithConstants(handler));
                return true;
            case nameof(Exec.Exec.ImulRRI):
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldc_I4, (int)op.R0);
                il.Emit(OpCodes.Ldc_I4, (int)op.R1);
                il.Emit(OpCodes.Ldc_I8, (long)op.Imm);
                il.Emit(OpCodes.Call, WithConstants(handler));
                return true;
            default:
                return TryEmitMemoryForm(il, ref op, handler);
        }

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, (int)op.R0);
        if (imm)
        {
            il.Emit(OpCodes.Ldc_I8, (long)op.Imm);
        }
        else
        {
            il.Emit(OpCodes.Ldc_I4, (int)op.R1);
        }

        il.Emit(OpCodes.Call, WithConstants(handler));
        return true;
    }

    /// <summary>
    /// LEA and register loads and stores whose address needs only registers and constants (base, base and index,
    /// RIP-relative): the address is computed by the addressing kind's At from constant parts, then the handler's At
    /// form runs with the rest of the op as constants. NextRip is already set (RIP-relative addresses read it).
    /// </summary>
    private static bool TryEmitMemoryForm(ILGenerator il, ref DecodedOp op, MethodInfo handler)
    {
        string name = handler.Name;
        if (name is not (nameof(Exec.Exec.MovRM) or nameof(Exec.Exec.MovMR) or nameof(Exec.Exec.LeaR)))
        {
            return false;
        }

        var args = handler.GetGenericArguments();
        var at = args[1].GetMethod("At", BindingFlags.Static | BindingFlags.Public);
        if (at == null)
        {
            return false;
        }

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, name == nameof(Exec.Exec.MovMR) ? (int)op.R1 : (int)op.R0);
        if (name != nameof(Exec.Exec.LeaR))
        {
            il.Emit(OpCodes.Ldc_I4, (int)op.Seg);
        }

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, (int)op.Base);
        il.Emit(OpCodes.Ldc_I4, (int)op.Index);
        il.Emit(OpCodes.Ldc_I4, (int)op.Scale);
        il.Emit(OpCodes.Ldc_I8, op.Disp);
        il.Emit(OpCodes.Call, at);
        il.Emit(OpCodes.Call, typeof(Exec.Exec).GetMethod(name + "At", BindingFlags.Static | BindingFlags.NonPublic)!.MakeGenericMethod(args[0]));
        return true;
    }

    /// <summary>The K form of a generic handler, instantiated as the handler is.</summary>
    private static MethodInfo WithConstants(MethodInfo handler) =>
        typeof(Exec.Exec).GetMethod(handler.Name + "K", BindingFlags.Static | BindingFlags.NonPublic)!.MakeGenericMethod(handler.GetGenericArguments());

    /// <summary>
    /// False for register loads and stores whose address needs no RIP (base, base and index): their way reads
    /// NextRip nowhere. A fault reports RIP; a #VMEXIT saves NextRip (nRIP) only for instruction intercepts
    /// (docs/svm.md, "#VMEXIT to L1"), which a load or store never is; the block sets NextRip afresh before any op that reads it.
    /// </summary>
    private static bool ReadsNextRip(MethodInfo m)
    {
        if (m.DeclaringType != typeof(Exec.Exec) || m.Name is not (nameof(Exec.Exec.MovRM) or nameof(Exec.Exec.MovMR)))
        {
            return true;
        }

        var addressing = m.GetGenericArguments()[1];
        return addressing != typeof(Exec.Forms.AddrBase64) && addressing != typeof(Exec.Forms.AddrBaseIndex64);
    }

    /// <summary>Handlers that read the instruction count: PAUSE's spin detection.</summary>
    private static bool ReadsInstructions(MethodInfo m) => m.DeclaringType == typeof(Exec.Exec) && m.Name == nameof(Exec.Exec.Pause);

    /// <summary>Pushes the status of the op's handler, called by name when known, else through its address.</summary>
    private static void EmitHandlerCall(ILGenerator il, DecodedOp* op, MethodInfo? target)
    {
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I8, (long)op);
        il.Emit(OpCodes.Conv_U);
        if (target != null)
        {
            il.Emit(OpCodes.Call, target);
        }
        else
        {
            il.Emit(OpCodes.Ldc_I8, (long)op->Handler);
            il.Emit(OpCodes.Conv_U);
            il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, typeof(int), s_handlerArgs, null);
        }
    }

    /// <summary>
    /// Handlers that only compute on registers and flags: they cannot fault, always continue, and read none of RIP,
    /// NextRip, Cycles, Instructions or ExitRequest (so no RIP-relative or general addressing for LEA). Checked by
    /// name against the generic definitions in <see cref="Exec.Exec"/>.
    /// </summary>
    private static bool IsRegisterOnly(MethodInfo m, ref DecodedOp op)
    {
        if (m.DeclaringType != typeof(Exec.Exec))
        {
            return false;
        }

        if (!m.IsGenericMethod)
        {
            // IMUL's general handler: with a register source it only reads and writes registers and flags.
            return m.Name == nameof(Exec.Exec.Imul) && op.R1 != Cpu.Reg.NoReg;
        }

        switch (m.Name)
        {
            case nameof(Exec.Exec.AluRR):
            case nameof(Exec.Exec.AluRI):
            case nameof(Exec.Exec.UnaryR):
            case nameof(Exec.Exec.MovRR):
            case nameof(Exec.Exec.MovRI):
            case nameof(Exec.Exec.ImulRR):
            case nameof(Exec.Exec.ImulRRI):
            case nameof(Exec.Exec.ShiftRI):
            case nameof(Exec.Exec.ShiftRC):
                return true;
            case nameof(Exec.Exec.LeaR):
                var addressing = m.GetGenericArguments()[1];
                return addressing == typeof(Exec.Forms.AddrBase64) || addressing == typeof(Exec.Forms.AddrBaseIndex64);
            default:
                return false;
        }
    }
}
