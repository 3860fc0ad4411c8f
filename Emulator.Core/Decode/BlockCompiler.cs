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
/// end and on every way out (docs/cpu.md, "Compiled blocks"). In 64-bit code the hot blocks of a small loop in one
/// page share one method and go from block to block inside it (a region, <see cref="Region"/>).
/// </summary>
internal static unsafe partial class BlockCompiler
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
    /// Most blocks of one region (<see cref="Region"/>) and most ops in all of them. Regions are for small loops,
    /// where going from block to block costs most: in a bigger method the runtime runs out of its inlining budget and
    /// calls the small handlers it inlines in a smaller one (seen at 48 ops and more; docs/cpu.md, "Regions").
    /// </summary>
    public const int MaxRegionBlocks = 8;

    /// <inheritdoc cref="MaxRegionBlocks"/>
    public const int MaxRegionOps = 24;

    /// <summary>A block of a region: its ops in the pool and where it starts relative to the region's entry.</summary>
    internal readonly record struct RegionBlock(int Block, int Start, int Count, long Delta);

    private static readonly FieldInfo s_delta = typeof(CompiledBlock).GetField(nameof(CompiledBlock.Delta))!;
    private static readonly FieldInfo s_members = typeof(CompiledBlock).GetField(nameof(CompiledBlock.Members))!;
    private static readonly FieldInfo s_regionIndex = typeof(CompiledBlock).GetField(nameof(CompiledBlock.RegionIndex))!;
    private static readonly MethodInfo s_chainLinked = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.ChainLinked), BindingFlags.Static | BindingFlags.NonPublic)!;
    private static readonly MethodInfo s_chainStops = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.ChainStops), BindingFlags.Static | BindingFlags.NonPublic)!;
    private static readonly MethodInfo s_codeEpoch = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.CodeEpochOf), BindingFlags.Static | BindingFlags.NonPublic)!;
    private static readonly MethodInfo s_enterRegionBlock = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.EnterBlock), BindingFlags.Static | BindingFlags.NonPublic)!;

    /// <summary>
    /// The region of <paramref name="entry"/> in 64-bit code: the entry, then the decoded blocks its static
    /// successors lead to (fall-through, relative jump, call and its return point) within the same page, breadth
    /// first, up to <see cref="MaxRegionBlocks"/> blocks and <see cref="MaxRegionOps"/> ops, taking only blocks that
    /// ran often on <paramref name="cpu"/> (compiling code that rarely runs costs more than it saves). One page maps to one
    /// physical page, so a RIP that differs from the entry's by the blocks' distance in the page is that block, for
    /// as long as the vCPU's code epoch holds; 64-bit code has no CS limit to check on the way.
    /// </summary>
    internal static List<RegionBlock> Region(BlockCache cache, int entry, bool wideIp, Cpu.Cpu cpu, ulong entryRip)
    {
        var region = new List<RegionBlock>();
        var blocks = new List<int> { entry };
        ulong entryHpa = cache.Hpa(entry);
        int ops = cache.Count(entry);
        region.Add(new RegionBlock(entry, cache.Start(entry), cache.Count(entry), 0));
        if (!wideIp)
        {
            return region;
        }

        Span<long> next = stackalloc long[2];
        for (int k = 0; k < blocks.Count && blocks.Count < MaxRegionBlocks; k++)
        {
            int b = blocks[k];
            ulong hpa = cache.Hpa(b);
            int n = cache.Count(b);
            long end = (long)(hpa & 0xFFF);
            for (int i = 0; i < n; i++)
            {
                end += cache.Op(cache.Start(b) + i).Length;
            }

            ref DecodedOp last = ref cache.Op(cache.Start(b) + n - 1);
            HandlerMethods.TryGetValue((nint)last.Handler, out var m);
            string name = m != null && m.DeclaringType == typeof(Exec.Exec) ? m.Name : "";
            bool near64 = m != null && m.IsGenericMethod && m.GetGenericArguments()[^1] == typeof(Exec.Forms.Dw64);
            int found = 0;
            if (name is not (nameof(Exec.Exec.JmpRel) or nameof(Exec.Exec.JmpRm) or nameof(Exec.Exec.RetNear)))
            {
                next[found++] = end;
            }

            if (near64 && name is nameof(Exec.Exec.Jcc) or nameof(Exec.Exec.JmpRel) or nameof(Exec.Exec.CallRel))
            {
                next[found++] = end + (long)last.Imm;
            }

            for (int j = 0; j < found && blocks.Count < MaxRegionBlocks; j++)
            {
                if (next[j] < 0 || next[j] >= 0x1000)
                {
                    continue;
                }

                ulong target = (hpa & ~0xFFFUL) + (ulong)next[j];
                int t = cache.Find(target, 64);
                if (t == 0 || blocks.Contains(t) || ops + cache.Count(t) > MaxRegionOps || !cpu.RanOften(entryRip + (target - entryHpa), t))
                {
                    continue;
                }

                blocks.Add(t);
                ops += cache.Count(t);
                region.Add(new RegionBlock(t, cache.Start(t), cache.Count(t), (long)(target - entryHpa)));
            }
        }

        return region;
    }

    /// <summary>
    /// Makes the entries of a region (<see cref="Region"/>; its first block is the entry) and the job that compiles
    /// them (<see cref="RegionJob.Run"/>), which may run on another thread: it reads a copy of the ops, taken here,
    /// and writes into the code only the ops' addresses in the pool (pinned memory that outlives the method: the pool
    /// until it is flushed, and a flush drops the entries unrun). The entries are not <see cref="CompiledBlock.Ready"/>
    /// until the job ran.
    /// </summary>
    public static RegionJob Prepare(DecodedOp* pool, List<RegionBlock> region, bool wideIp)
    {
        int total = 0;
        foreach (var blk in region)
        {
            total += blk.Count;
        }

        var copy = new DecodedOp[total];
        int at = 0;
        foreach (var blk in region)
        {
            new ReadOnlySpan<DecodedOp>(pool + blk.Start, blk.Count).CopyTo(copy.AsSpan(at));
            at += blk.Count;
        }

        var entries = new CompiledBlock[region.Count];
        for (int k = 0; k < region.Count; k++)
        {
            entries[k] = new CompiledBlock(region[k].Start, region[k].Count, k, region[k].Delta) { Members = entries };
        }

        return new RegionJob((nint)pool, copy, region, wideIp, entries);
    }

    /// <summary>A region to compile: see <see cref="Prepare"/>.</summary>
    internal sealed class RegionJob(nint pool, DecodedOp[] ops, List<RegionBlock> region, bool wideIp, CompiledBlock[] entries)
    {
        public CompiledBlock[] Entries => entries;

        /// <summary>
        /// Compiles the region's method, has the runtime compile it (the method returns at once for a null vCPU), then
        /// lets every entry run it. A method the runtime refuses leaves the blocks to the interpreter.
        /// </summary>
        public void Run()
        {
            try
            {
                Compile((DecodedOp*)pool, ops, region, wideIp, entries);
                entries[0].Code(null!);
            }
            catch (InvalidProgramException)
            {
                return;
            }

            foreach (var e in entries)
            {
                e.Ready = true;
            }
        }
    }

    /// <summary>
    /// Compiles a region into one method and gives each entry its delegate. Between two blocks of the region the
    /// method makes the checks <see cref="Cpu.Cpu.Chain"/> makes and jumps to the next block's code when the RIP is
    /// one of the region's; anything else goes through Chain. <paramref name="ops"/>: the region's ops, block after
    /// block; <paramref name="pool"/>: where they are in the pool. <paramref name="wideIp"/>: 64-bit code, where
    /// sequential RIP does not wrap at 4 GiB.
    /// </summary>
    private static void Compile(DecodedOp* pool, DecodedOp[] ops, List<RegionBlock> region, bool wideIp, CompiledBlock[] entries)
    {
        // Every local is written before it is read (a register local's address is passed before it was read only to
        // an op that writes the whole register), so the method need not clear them on each entry.
        var method = new DynamicMethod("block", typeof(CompiledBlock), s_blockArgs, typeof(BlockCompiler).Module, skipVisibility: true) { InitLocals = false };
        var il = method.GetILGenerator(64 + (ops.Length * 96) + (region.Count * region.Count * 16));
        var locals = new Locals(
            il.DeclareLocal(typeof(ulong)),
            il.DeclareLocal(typeof(ulong)),
            il.DeclareLocal(typeof(int)),
            il.DeclareLocal(typeof(ulong)),
            il.DeclareLocal(typeof(ulong)),
            il.DefineLabel(),
            new RegisterLocals(il));
        var starts = new Label[region.Count];
        var enters = new Label[region.Count];
        var tails = new Label[region.Count];
        for (int k = 0; k < region.Count; k++)
        {
            starts[k] = il.DefineLabel();
            enters[k] = il.DefineLabel();
            tails[k] = il.DefineLabel();
        }

        // A null vCPU: only compile the method (RegionJob.Run).
        var body = il.DefineLabel();
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Brtrue, body);
        il.Emit(OpCodes.Ldnull);
        il.Emit(OpCodes.Ret);
        il.MarkLabel(body);
        EmitClearExitRequest(il);
        if (region.Count > 1)
        {
            // Entered at any block of the region (self): the first block's RIP, the epoch, then that block's code.
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldfld, s_rip);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_delta);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Stloc, locals.EntryRip);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, s_codeEpoch);
            il.Emit(OpCodes.Stloc, locals.Epoch);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_regionIndex);
            il.Emit(OpCodes.Switch, starts);
        }

        var exits = new List<(Label Label, int PoolIndex, int Instructions)>();
        int copied = 0;
        for (int k = 0; k < region.Count; k++)
        {
            // Every way into a block has RIP at its start.
            il.MarkLabel(starts[k]);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldfld, s_rip);
            il.Emit(OpCodes.Stloc, locals.Rip);

            EmitBlock(il, pool, ops.AsSpan(copied, region[k].Count), region[k], wideIp, locals, tails[k], exits);
            copied += region[k].Count;
            il.MarkLabel(tails[k]);
            EmitTail(il, region, k, enters, locals);
        }

        // Entering another block of the region: the instruction budget must hold for it (as Chain checks).
        for (int k = 0; k < region.Count; k++)
        {
            il.MarkLabel(enters[k]);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldc_I4, region[k].Count);
            il.Emit(OpCodes.Call, s_enterRegionBlock);
            il.Emit(OpCodes.Brtrue, starts[k]);
            il.Emit(OpCodes.Ldnull);
            il.Emit(OpCodes.Ret);
        }

        il.MarkLabel(locals.Request);
        EmitClearExitRequest(il);
        EmitLeave(il, ExitRequested);

        // An op that faulted, halted or stopped: the ops before it retired; the loop finishes it.
        foreach (var (label, poolIndex, instructions) in exits)
        {
            il.MarkLabel(label);
            EmitAddInstructions(il, instructions);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldloc, locals.Status);
            il.Emit(OpCodes.Ldc_I4, poolIndex << StatusBits);
            il.Emit(OpCodes.Or);
            il.Emit(OpCodes.Call, s_leave);
            il.Emit(OpCodes.Ret);
        }

        foreach (var e in entries)
        {
            e.Code = method.CreateDelegate<BlockCode>(e);
        }
    }

    /// <summary>The locals and shared labels of a region's method.</summary>
    private readonly record struct Locals(LocalBuilder Rip, LocalBuilder Next, LocalBuilder Status, LocalBuilder EntryRip, LocalBuilder Epoch, Label Request, RegisterLocals Registers);

    /// <summary>
    /// After a block of the region with all its ops retired and committed (the stack is empty): leave if asked to;
    /// otherwise the checks Chain makes, then the region's block at the new RIP if there is one, else Chain's link.
    /// </summary>
    private static void EmitTail(ILGenerator il, List<RegionBlock> region, int k, Label[] enters, Locals locals)
    {
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldfld, s_exitRequest);
        il.Emit(OpCodes.Brtrue, locals.Request);
        if (region.Count == 1)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, s_chain);
            il.Emit(OpCodes.Ret);
            return;
        }

        var stop = il.DefineLabel();
        var link = il.DefineLabel();
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, s_chainStops);
        il.Emit(OpCodes.Brtrue, stop);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, s_codeEpoch);
        il.Emit(OpCodes.Ldloc, locals.Epoch);
        il.Emit(OpCodes.Bne_Un, link);
        for (int j = 0; j < region.Count; j++)
        {
            // RIP == entry RIP + the block's distance from the entry in the page.
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldfld, s_rip);
            il.Emit(OpCodes.Ldloc, locals.EntryRip);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Ldc_I8, region[j].Delta);
            il.Emit(OpCodes.Beq, enters[j]);
        }

        // Linked from the block that ran, not the one the method was entered at: each keeps its own successors.
        il.MarkLabel(link);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, s_members);
        il.Emit(OpCodes.Ldc_I4, k);
        il.Emit(OpCodes.Ldelem_Ref);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, s_chainLinked);
        il.Emit(OpCodes.Ret);
        il.MarkLabel(stop);
        il.Emit(OpCodes.Ldnull);
        il.Emit(OpCodes.Ret);
    }

    /// <summary>The ops of one block, ending at <paramref name="tail"/> (which the caller marks next) with all committed.</summary>
    private static void EmitBlock(ILGenerator il, DecodedOp* pool, Span<DecodedOp> copy, RegionBlock blk, bool wideIp, Locals locals, Label tail, List<(Label, int, int)> exits)
    {
        var rip = locals.Rip;
        var next = locals.Next;
        var st = locals.Status;
        var regs = locals.Registers;
        regs.StartBlock();
        DecodedOp* ops = pool + blk.Start;
        int count = blk.Count;
        ulong offset = 0;

        // Commits still owed. RIP and cycles: by register-only ops, until the next op that can observe them.
        // Instructions: by every op, until the block's end or a way out, since only PAUSE (and the loop, after the
        // block) reads the count.
        int owedOps = 0;
        ulong owedCycles = 0;
        int owedInstructions = 0;

        // Which op set the flags last, where this block knows it (an ALU op earlier in the block with only moves
        // and LEA after it): a Jcc then tests its condition by that op's formula (Cpu.ConditionAfter).
        var flags = default(KnownFlags);
        var targets = new MethodInfo?[count];
        for (int i = 0; i < count; i++)
        {
            HandlerMethods.TryGetValue((nint)copy[i].Handler, out targets[i]);
        }

        for (int i = 0; i < count; i++)
        {
            ref DecodedOp op = ref copy[i];
            var target = targets[i];
            var flagsBefore = flags;
            flags = FlagsAfter(target, flags);
            if (target != null && IsRegisterOnly(target))
            {
                // Nothing can observe RIP, NextRip, the counters or the exit request while it runs, and it cannot
                // fail: its commits are folded into the next op's (or the block's end), which sees the same state.
                if (!TryEmitInLocals(il, ref op, target, FlagsDead(targets, i), regs))
                {
                    regs.Flush();
                    EmitHandlerCall(il, ops + i, (nint)op.Handler, target);
                    il.Emit(OpCodes.Pop);
                    regs.Forget();
                }

                offset += op.Length;
                owedOps++;
                owedCycles += op.Cycles;
                owedInstructions++;
                continue;
            }

            // Anything else can look at the machine (a fault delivers with every register): write them back first.
            regs.Flush();
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
            var exit = il.DefineLabel();
            exits.Add((exit, blk.Start + i, owedInstructions));
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

            // st = op.Handler(c, ref op). A Jcc and the memory forms change no register in the vCPU (a load writes
            // its local); anything else may have changed any.
            int written = -1;
            bool memoryForm = false;
            if (target != null && (TryEmitJcc(il, ref op, target, flagsBefore) || (memoryForm = TryEmitMemoryForm(il, ref op, target, regs, out written))))
            {
                if (written >= 0)
                {
                    regs.Written(written);
                }
            }
            else
            {
                if (target == null || !TryEmitStackForm(il, ref op, target))
                {
                    EmitHandlerCall(il, ops + i, (nint)op.Handler, target);
                }

                regs.Forget(RegistersWritten(target, ref op));
            }

            il.Emit(OpCodes.Stloc, st);
            il.Emit(OpCodes.Ldloc, st);
            if (memoryForm)
            {
                // A memory form continues or faults; it never ends the block.
                il.Emit(OpCodes.Brtrue, exit);
                EmitContinue(il, ref op, i, count, locals, ref owedInstructions);
                continue;
            }

            il.Emit(OpCodes.Brfalse, cont);

            // EndBlock: RIP is where the handler sent it; retire and leave.
            il.Emit(OpCodes.Ldloc, st);
            il.Emit(OpCodes.Ldc_I4, ExecStatus.EndBlock);
            il.Emit(OpCodes.Bne_Un, exit);
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
            regs.EmitStores();
            il.Emit(OpCodes.Br, tail);

            il.MarkLabel(cont);
            EmitContinue(il, ref op, i, count, locals, ref owedInstructions);
        }

        regs.Flush();
        if (owedOps != 0)
        {
            EmitCommit(il, rip, offset, wideIp, owedCycles);
        }

        EmitAddInstructions(il, owedInstructions);
    }

    /// <summary>
    /// An op that can fault or look at the machine continued: RIP = its next RIP, its cycles, and, unless it is the
    /// block's last, a way out when something asked the loop to look around (with the registers it changed written back).
    /// </summary>
    private static void EmitContinue(ILGenerator il, ref DecodedOp op, int i, int count, Locals locals, ref int owedInstructions)
    {
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldloc, locals.Next);
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
            locals.Registers.EmitStores();
            il.Emit(OpCodes.Br, locals.Request);
            il.MarkLabel(go);
        }
    }

    private static void EmitLeave(ILGenerator il, int result)
    {
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, result);
        il.Emit(OpCodes.Call, s_leave);
        il.Emit(OpCodes.Ret);
    }

    private static readonly Lazy<Dictionary<nint, MethodInfo>> s_handlerMethods = new(BuildHandlerMethods);
    private static int s_warming;

    /// <summary>
    /// Handler entry points → their methods, so a compiled block calls a handler by name (a direct call the runtime
    /// may inline) rather than through its address. Generic handlers are instantiated over every struct of this
    /// assembly that meets their constraints. Built once (<see cref="WarmUp"/>), by whoever needs it first.
    /// </summary>
    private static Dictionary<nint, MethodInfo> HandlerMethods => s_handlerMethods.Value;

    /// <summary>Starts building the handler map on a worker thread (some 50 ms of reflection), so the first compilation does not wait for it.</summary>
    public static void WarmUp()
    {
        if (Interlocked.Exchange(ref s_warming, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static _ => _ = s_handlerMethods.Value, (object?)null, preferLocal: false);
        }
    }

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
    /// PUSH and POP of a 64-bit register: the K form, with the register as a constant. False for any other handler.
    /// </summary>
    private static bool TryEmitStackForm(ILGenerator il, ref DecodedOp op, MethodInfo handler)
    {
        if (handler.DeclaringType != typeof(Exec.Exec) || handler.Name is not (nameof(Exec.Exec.PushR64) or nameof(Exec.Exec.PopR64)))
        {
            return false;
        }

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, (int)op.R0);
        il.Emit(OpCodes.Call, typeof(Exec.Exec).GetMethod(handler.Name + "K", BindingFlags.Static | BindingFlags.NonPublic)!);
        return true;
    }

    /// <summary>
    /// LEA and the memory forms of loads, stores, ALU ops and INC/DEC/NEG/NOT whose address the block computes (from
    /// its register locals, <see cref="AddressFromLocals"/>, or RIP-relative): the handler's At form with the
    /// register it reads as a value, the one it writes as its local's address (<paramref name="written"/>, else -1),
    /// the immediate and the segment as constants. NextRip is already set (RIP-relative addresses read it).
    /// </summary>
    private static bool TryEmitMemoryForm(ILGenerator il, ref DecodedOp op, MethodInfo handler, RegisterLocals regs, out int written)
    {
        written = -1;
        string name = handler.Name;
        bool lea = name == nameof(Exec.Exec.LeaR);
        if (handler.DeclaringType != typeof(Exec.Exec) || !(lea || IsMemoryAccessForm(name)))
        {
            return false;
        }

        var args = handler.GetGenericArguments();
        var addressing = args[^1];
        bool fromLocals = AddressFromLocals(addressing, ref op);
        if (!fromLocals && addressing != typeof(Exec.Forms.AddrRip64))
        {
            return false;
        }

        // What the At form takes before the segment: the register it writes (CMP and TEST only read it), the one it
        // reads, the immediate.
        bool destination = name is nameof(Exec.Exec.MovRM) or nameof(Exec.Exec.MovxRM) or nameof(Exec.Exec.LeaR) or nameof(Exec.Exec.AluRM);
        bool writes = destination && WritesFirstOperand(handler);
        if (name == nameof(Exec.Exec.AluRM) || (writes && WritesPartOfRegister(handler)))
        {
            regs.Load(op.R0);
        }

        bool source = name is nameof(Exec.Exec.MovMR) or nameof(Exec.Exec.AluMR);
        if (source)
        {
            regs.Load(op.R1);
        }

        if (fromLocals)
        {
            LoadAddressRegisters(ref op, regs);
        }

        il.Emit(OpCodes.Ldarg_1);
        if (destination)
        {
            regs.PushAddress(op.R0);
        }
        else if (source)
        {
            regs.PushValue(op.R1);
        }
        else if (name is nameof(Exec.Exec.MovMI) or nameof(Exec.Exec.AluMI))
        {
            il.Emit(OpCodes.Ldc_I8, (long)op.Imm);
        }

        if (!lea)
        {
            il.Emit(OpCodes.Ldc_I4, (int)op.Seg);
        }

        if (fromLocals)
        {
            EmitAddressOf(il, ref op, addressing, regs);
        }
        else
        {
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldc_I4, (int)op.Base);
            il.Emit(OpCodes.Ldc_I4, (int)op.Index);
            il.Emit(OpCodes.Ldc_I4, (int)op.Scale);
            il.Emit(OpCodes.Ldc_I8, op.Disp);
            il.Emit(OpCodes.Call, typeof(Exec.Forms.AddrRip64).GetMethod(nameof(Exec.Forms.AddrRip64.At))!);
        }

        if (lea)
        {
            il.Emit(OpCodes.Call, ValueForm(nameof(Exec.Exec.MovV), args[..^1]));
            il.Emit(OpCodes.Ldc_I4, ExecStatus.Continue);
        }
        else
        {
            il.Emit(OpCodes.Call, ValueForm(name + "At", args[..^1]));
        }

        if (writes)
        {
            written = op.R0;
        }

        return true;
    }

    /// <summary>
    /// The handlers of a memory operand that go through memory (LEA does not), each with an At form taking the
    /// segment and the address (<see cref="TryEmitMemoryForm"/>); their addressing kind is their last type argument.
    /// </summary>
    private static bool IsMemoryAccessForm(string name) =>
        name is nameof(Exec.Exec.MovRM) or nameof(Exec.Exec.MovMR) or nameof(Exec.Exec.MovMI) or nameof(Exec.Exec.MovxRM)
            or nameof(Exec.Exec.AluRM) or nameof(Exec.Exec.AluMR) or nameof(Exec.Exec.AluMI) or nameof(Exec.Exec.UnaryM);

    /// <summary>The lazy-flags kind and size an op of the block left, where known (<see cref="FlagsAfter"/>).</summary>
    private readonly record struct KnownFlags(LazyFlags Kind, int Size);

    // The Jcc conditions by their ICondition type, numbered as the low nibble of the Jcc opcodes.
    private static readonly Type[] s_conditions =
    [
        typeof(Exec.Forms.CcO), typeof(Exec.Forms.CcNo), typeof(Exec.Forms.CcB), typeof(Exec.Forms.CcAe),
        typeof(Exec.Forms.CcE), typeof(Exec.Forms.CcNe), typeof(Exec.Forms.CcBe), typeof(Exec.Forms.CcA),
        typeof(Exec.Forms.CcS), typeof(Exec.Forms.CcNs), typeof(Exec.Forms.CcP), typeof(Exec.Forms.CcNp),
        typeof(Exec.Forms.CcL), typeof(Exec.Forms.CcGe), typeof(Exec.Forms.CcLe), typeof(Exec.Forms.CcG),
    ];

    private static readonly MethodInfo s_conditionAfter = typeof(Cpu.Cpu).GetMethod(nameof(Cpu.Cpu.ConditionAfter), BindingFlags.Instance | BindingFlags.NonPublic)!;

    /// <summary>
    /// What the lazy flags hold after an op with handler <paramref name="m"/>, given <paramref name="before"/>:
    /// the kind and size an ALU form (register or memory, no carry-in) sets; unchanged by moves, LEA and NOT, which
    /// write no flags; unknown (default) after anything else. An op that faults or leaves ends the block, so what
    /// follows it in the block runs only when it completed.
    /// </summary>
    private static KnownFlags FlagsAfter(MethodInfo? m, KnownFlags before)
    {
        if (m == null || m.DeclaringType != typeof(Exec.Exec))
        {
            return default;
        }

        if (!m.IsGenericMethod)
        {
            return m.Name == nameof(Exec.Exec.Nop) ? before : default;
        }

        switch (m.Name)
        {
            case nameof(Exec.Exec.MovRR):
            case nameof(Exec.Exec.MovRI):
            case nameof(Exec.Exec.MovRM):
            case nameof(Exec.Exec.MovMR):
            case nameof(Exec.Exec.MovxRR):
            case nameof(Exec.Exec.MovxRM):
            case nameof(Exec.Exec.LeaR):
                return before;
            case nameof(Exec.Exec.AluRR):
            case nameof(Exec.Exec.AluRI):
            case nameof(Exec.Exec.AluRM):
            case nameof(Exec.Exec.AluMR):
            case nameof(Exec.Exec.AluMI):
            case nameof(Exec.Exec.UnaryR):
            case nameof(Exec.Exec.UnaryM):
                break;
            default:
                return default;
        }

        var args = m.GetGenericArguments();
        int size = args[1] == typeof(Exec.Forms.Dw8) ? 1 : args[1] == typeof(Exec.Forms.Dw16) ? 2 : args[1] == typeof(Exec.Forms.Dw32) ? 4 : 8;
        var t = args[0];
        if (t == typeof(Exec.Exec.NotOp))
        {
            return before;
        }

        LazyFlags kind = t == typeof(Exec.Exec.AddOp) ? LazyFlags.Add
            : t == typeof(Exec.Exec.SubOp) || t == typeof(Exec.Exec.CmpOp) || t == typeof(Exec.Exec.NegOp) ? LazyFlags.Sub
            : t == typeof(Exec.Exec.AndOp) || t == typeof(Exec.Exec.OrOp) || t == typeof(Exec.Exec.XorOp) || t == typeof(Exec.Exec.TestOp) ? LazyFlags.Result
            : t == typeof(Exec.Exec.IncOp) ? LazyFlags.Inc
            : t == typeof(Exec.Exec.DecOp) ? LazyFlags.Dec
            : LazyFlags.None;
        return kind == LazyFlags.None ? default : new KnownFlags(kind, size);
    }

    /// <summary>
    /// A Jcc after an op of the block whose flags are known: the condition by that op's formula, then the jump
    /// (<see cref="Exec.Exec.JccK{TW}"/>). False: not a Jcc, or the flags are not known.
    /// </summary>
    private static bool TryEmitJcc(ILGenerator il, ref DecodedOp op, MethodInfo handler, KnownFlags flags)
    {
        if (flags.Kind == LazyFlags.None || handler.DeclaringType != typeof(Exec.Exec) || handler.Name != nameof(Exec.Exec.Jcc))
        {
            return false;
        }

        var args = handler.GetGenericArguments();
        int cc = Array.IndexOf(s_conditions, args[0]);
        if (cc < 0)
        {
            return false;
        }

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, cc);
        il.Emit(OpCodes.Ldc_I4, (int)flags.Kind);
        il.Emit(OpCodes.Ldc_I4, flags.Size);
        il.Emit(OpCodes.Call, s_conditionAfter);
        il.Emit(OpCodes.Ldc_I8, (long)op.Imm);
        il.Emit(OpCodes.Call, typeof(Exec.Exec).GetMethod(nameof(Exec.Exec.JccK), BindingFlags.Static | BindingFlags.NonPublic)!.MakeGenericMethod(args[1]));
        return true;
    }

    /// <summary>
    /// Whether the flags op <paramref name="i"/> of a block sets are dead: it is a register op whose flags can be left
    /// out (<see cref="MayLeaveOutFlags"/>), and the block's next op that is not a register move, LEA or NOT (none of
    /// which touch the flags, fault or look at the machine) is one that sets every flag (<see cref="SetsEveryFlag"/>).
    /// Nothing can read the flags in between, so the first op need not write them (docs/cpu.md, "Dead flags").
    /// </summary>
    private static bool FlagsDead(MethodInfo?[] targets, int i)
    {
        if (!MayLeaveOutFlags(targets[i]))
        {
            return false;
        }

        for (int j = i + 1; j < targets.Length; j++)
        {
            if (!LeavesFlags(targets[j]))
            {
                return SetsEveryFlag(targets[j]);
            }
        }

        return false; // the flags leave the block
    }

    /// <summary>
    /// A register-only op with a form that leaves its flags out: ALU ops without a carry-in
    /// (<see cref="Exec.Exec.IPlainBinaryOp"/>), INC, DEC and NEG (<see cref="Exec.Exec.IPlainUnaryOp"/>), IMUL.
    /// </summary>
    private static bool MayLeaveOutFlags(MethodInfo? m) =>
        m != null && IsRegisterOnly(m)
        && (m.Name is nameof(Exec.Exec.ImulRR) or nameof(Exec.Exec.ImulRRI)
            || (m.Name is nameof(Exec.Exec.AluRR) or nameof(Exec.Exec.AluRI) && typeof(Exec.Exec.IPlainBinaryOp).IsAssignableFrom(m.GetGenericArguments()[0]))
            || (m.Name == nameof(Exec.Exec.UnaryR) && typeof(Exec.Exec.IPlainUnaryOp).IsAssignableFrom(m.GetGenericArguments()[0])));

    /// <summary>
    /// A register-only op that sets all six status flags from its operands alone: the ALU ops without a carry-in,
    /// NEG, IMUL. Not INC and DEC, which keep CF; not shifts, which keep them all for a count of 0.
    /// </summary>
    private static bool SetsEveryFlag(MethodInfo? m) =>
        MayLeaveOutFlags(m) && !(m!.Name == nameof(Exec.Exec.UnaryR) && m.GetGenericArguments()[0] != typeof(Exec.Exec.NegOp));

    /// <summary>A register-only op that neither reads nor writes the flags: a move, LEA, NOT.</summary>
    private static bool LeavesFlags(MethodInfo? m) =>
        m != null && IsRegisterOnly(m)
        && (m.Name is nameof(Exec.Exec.MovRR) or nameof(Exec.Exec.MovRI) or nameof(Exec.Exec.MovxRR) or nameof(Exec.Exec.LeaR) or nameof(Exec.Exec.Nop)
            || (m.Name == nameof(Exec.Exec.UnaryR) && m.GetGenericArguments()[0] == typeof(Exec.Exec.NotOp)));

    /// <summary>
    /// False for the memory forms of moves, ALU ops and INC/DEC/NEG/NOT whose address needs no RIP (base, base and
    /// index): their way (the address, the TLB or a walk, memory or MMIO, the lazy flags) reads NextRip nowhere. A
    /// fault reports RIP; a #VMEXIT saves NextRip (nRIP) only for instruction intercepts (docs/svm.md, "#VMEXIT to
    /// L1"), which none of them is; the block sets NextRip afresh before any op that reads it.
    /// </summary>
    private static bool ReadsNextRip(MethodInfo m)
    {
        if (m.DeclaringType != typeof(Exec.Exec) || !IsMemoryAccessForm(m.Name))
        {
            return true;
        }

        var addressing = m.GetGenericArguments()[^1];
        return addressing != typeof(Exec.Forms.AddrBase64) && addressing != typeof(Exec.Forms.AddrBaseIndex64);
    }

    /// <summary>Handlers that read the instruction count: PAUSE's spin detection.</summary>
    private static bool ReadsInstructions(MethodInfo m) => m.DeclaringType == typeof(Exec.Exec) && m.Name == nameof(Exec.Exec.Pause);

    /// <summary>Pushes the status of the op's handler, called by name when known, else through its address.</summary>
    private static void EmitHandlerCall(ILGenerator il, DecodedOp* op, nint handler, MethodInfo? target)
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
            il.Emit(OpCodes.Ldc_I8, (long)handler);
            il.Emit(OpCodes.Conv_U);
            il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, typeof(int), s_handlerArgs, null);
        }
    }

    /// <summary>
    /// Handlers that only compute on registers and flags: they cannot fault, always continue, and read none of RIP,
    /// NextRip, Cycles, Instructions or ExitRequest (so no RIP-relative or general addressing for LEA). Checked by
    /// name against the generic definitions in <see cref="Exec.Exec"/>.
    /// </summary>
    private static bool IsRegisterOnly(MethodInfo m)
    {
        if (m.DeclaringType != typeof(Exec.Exec))
        {
            return false;
        }

        if (!m.IsGenericMethod)
        {
            return m.Name == nameof(Exec.Exec.Nop);
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
            case nameof(Exec.Exec.MovxRR):
                return true;
            case nameof(Exec.Exec.LeaR):
                var addressing = m.GetGenericArguments()[1];
                return addressing == typeof(Exec.Forms.AddrBase64) || addressing == typeof(Exec.Forms.AddrBaseIndex64);
            default:
                return false;
        }
    }
}
