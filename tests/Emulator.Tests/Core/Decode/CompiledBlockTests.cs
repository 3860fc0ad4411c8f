using Emulator.Core.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Decode;

/// <summary>
/// Compiled blocks (docs/cpu.md, "Compiled blocks") are the host's shortcut, not part of the model: every program
/// here runs once with the interpreter alone and once with every block compiled at its first repeat, and the guest
/// must see the same: registers, flags, memory, RIP, cycles and instruction count, at the end and wherever it stops.
/// </summary>
public sealed class CompiledBlockTests
{
    private const ulong Data = TestGuest.DataBase;

    private sealed record Outcome(RunExit Exit, ulong Rip, ulong Rflags, ulong Cycles, ulong Instructions, ulong[] Gpr, ulong[] Memory, ulong Compiled, ulong LastPauseInstructions);

    private static Outcome Run(Action<Assembler> program, bool compile, ulong maxInstructions = 10_000_000, ulong maxCycles = ulong.MaxValue, bool vectors = false, bool yieldOnPause = false, bool background = false)
    {
        using var g = TestGuest.Long64(program);
        g.Cpu.Cr4 |= Cr4Bits.OSFXSR | Cr4Bits.OSXMMEXCPT; // SSE usable, as a kernel sets it up
        g.Cpu.YieldOnPause = yieldOnPause;
        if (vectors)
        {
            VectorCatcher.Install64(g);
        }

        g.Cpu.CompileThreshold = compile ? 1 : 0;
        g.Cpu.CompileInBackground = background;
        var exit = g.Cpu.Run(maxInstructions, maxCycles);
        for (int turns = 0; exit == RunExit.Yielded && turns < 100_000; turns++)
        {
            // A spinning PAUSE gave up the rest of its turn; with one vCPU it simply goes on.
            exit = g.Cpu.Run(maxInstructions, maxCycles);
        }

        var memory = new ulong[32];
        for (int i = 0; i < memory.Length; i++)
        {
            memory[i] = g.ReadPhys(Data + ((ulong)i * 8), 8);
        }

        // The stack's top words hold what an exception pushed.
        var gpr = new ulong[19];
        for (int i = 0; i < 16; i++)
        {
            gpr[i] = g.Cpu.Gpr[i];
        }

        for (int i = 0; i < 3; i++)
        {
            gpr[16 + i] = g.ReadPhys(g.Cpu.Gpr[Reg.RSP] + ((ulong)i * 8), 8);
        }

        return new Outcome(exit, g.Cpu.Rip, g.Cpu.Rflags64, g.Cpu.Cycles, g.Cpu.Instructions, gpr, memory, g.Cpu.CompiledBlocks, g.Cpu.LastPauseInstructions);
    }

    /// <summary>Runs <paramref name="program"/> both ways, checks the guest saw the same, returns the compiled run.</summary>
    private static Outcome Both(Action<Assembler> program, ulong maxInstructions = 10_000_000, ulong maxCycles = ulong.MaxValue, bool vectors = false, bool yieldOnPause = false, bool background = false)
    {
        var interpreted = Run(program, compile: false, maxInstructions, maxCycles, vectors, yieldOnPause);
        var compiled = Run(program, compile: true, maxInstructions, maxCycles, vectors, yieldOnPause, background);
        Assert.Multiple(() =>
        {
            Assert.That(interpreted.Compiled, Is.Zero, "threshold 0 never compiles");
            Assert.That(compiled.Compiled, Is.GreaterThan(0UL), "the program's loop was compiled");
            Assert.That(compiled.Exit, Is.EqualTo(interpreted.Exit));
            Assert.That(compiled.Rip, Is.EqualTo(interpreted.Rip), "RIP");
            Assert.That(compiled.Rflags, Is.EqualTo(interpreted.Rflags), "RFLAGS");
            Assert.That(compiled.Cycles, Is.EqualTo(interpreted.Cycles), "cycles");
            Assert.That(compiled.Instructions, Is.EqualTo(interpreted.Instructions), "instructions");
            Assert.That(compiled.Gpr, Is.EqualTo(interpreted.Gpr), "registers and the stack's top");
            Assert.That(compiled.Memory, Is.EqualTo(interpreted.Memory), "memory");
            Assert.That(compiled.LastPauseInstructions, Is.EqualTo(interpreted.LastPauseInstructions), "the count PAUSE saw");
        });
        return compiled;
    }

    /// <summary>A loop of register-only ops, memory ops, a call and a stack round trip; the sum lands in memory.</summary>
    private static void Mixed(Assembler a) => Mixed(a, halt: true);

    private static void Mixed(Assembler a, bool halt)
    {
        var top = a.CreateLabel();
        var fn = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(rsi, Data);
        a.xor(eax, eax);
        a.mov(ecx, 500);
        a.Label(ref top);
        a.add(rax, rcx);
        a.mov(rbx, rax);
        a.lea(rdx, __[rbx + rcx * 2 + 7]);
        a.xor(rdx, 0x55);
        a.mov(__qword_ptr[rsi + 8], rdx);
        a.mov(r11, __qword_ptr[rsi + 8]);
        a.add(r11, __qword_ptr[fn]); // RIP-relative right after a load that does not need the next RIP
        a.add(__qword_ptr[rsi], rdx);
        a.push(rbx);
        a.call(fn);
        a.pop(rbx);
        a.dec(ecx);
        a.jnz(top);
        a.jmp(done);
        a.Label(ref fn);
        a.imul(r8, rbx, 3);
        a.add(r9, r8);
        a.ret();
        a.Label(ref done);
        if (halt)
        {
            a.hlt();
        }
    }

    [Test]
    public void ALoopEndsInTheSameState() => Both(Mixed);

    [Test]
    public void ALoopCompiledInTheBackgroundEndsInTheSameState()
    {
        // The blocks run interpreted until a worker thread has compiled them, then compiled: which op runs which way
        // depends on host timing, and the guest must not see it.
        var outcome = Both(a =>
        {
            var outer = a.CreateLabel();
            a.mov(r12d, 200);
            a.Label(ref outer);
            Mixed(a, halt: false);
            a.dec(r12d);
            a.jnz(outer);
            a.hlt();
        }, background: true);
        Assert.That(outcome.Exit, Is.EqualTo(RunExit.HaltedForever));
    }

    // The Jcc forms by condition code (the low nibble of their opcodes: O, NO, B, AE, E, NE, BE, A, S, NS, P, NP, L,
    // GE, LE, G).
    private static readonly Action<Assembler, Label>[] s_jcc =
    [
        (a, l) => a.jo(l), (a, l) => a.jno(l), (a, l) => a.jb(l), (a, l) => a.jae(l),
        (a, l) => a.je(l), (a, l) => a.jne(l), (a, l) => a.jbe(l), (a, l) => a.ja(l),
        (a, l) => a.js(l), (a, l) => a.jns(l), (a, l) => a.jp(l), (a, l) => a.jnp(l),
        (a, l) => a.jl(l), (a, l) => a.jge(l), (a, l) => a.jle(l), (a, l) => a.jg(l),
    ];

    // Flag-setting ops whose kind a compiled block knows when a Jcc follows in the same block, at each size, on
    // RAX and RBX (register and immediate sources).
    private static readonly Action<Assembler>[] s_flagSetters =
    [
        a => a.add(rax, rbx), a => a.add(eax, ebx), a => a.add(ax, bx), a => a.add(al, bl),
        a => a.sub(rax, rbx), a => a.sub(eax, ebx), a => a.sub(ax, bx), a => a.sub(al, bl),
        a => a.cmp(rax, rbx), a => a.cmp(eax, ebx), a => a.cmp(ax, bx), a => a.cmp(al, bl),
        a => a.cmp(eax, 0x4000_0000), a => a.cmp(al, 0x80), a => a.add(eax, -1),
        a => a.and(rax, rbx), a => a.or(eax, ebx), a => a.xor(ax, bx), a => a.test(al, bl), a => a.test(rax, rax),
        a => a.inc(rax), a => a.inc(eax), a => a.dec(ax), a => a.dec(al), a => a.neg(rax), a => a.neg(eax),
    ];

    /// <summary>
    /// Starts a loop of <paramref name="passes"/> passes counted down in ECX (the caller ends it with DEC ECX, JNZ to
    /// the label returned) that clears R14, where the caller sums what it checks, and steps R12 through an LCG on
    /// each pass, so the operands derived from it reach many values.
    /// </summary>
    private static Label LcgLoop(Assembler a, int passes)
    {
        var top = a.CreateLabel();
        a.mov(r12, 0x0123_4567_89AB_CDEFUL);
        a.mov(r15, 0x5851_F42D_4C95_7F2DUL);
        a.xor(r14, r14);
        a.mov(ecx, passes);
        a.Label(ref top);
        a.imul(r12, r15);
        a.add(r12, 0x3C6E_F35F);
        return top;
    }

    [Test]
    public void EachJccConditionAfterEachKindOfFlagsTakesTheInterpretersBranch()
    {
        // A Jcc right after the op that set the flags, in one block, is tested by that op's formula in compiled code.
        // RAX and RBX step through values that reach every outcome (an LCG, then the values' sign, zero, carry and
        // overflow edges by shifting); every taken branch adds its own number to R14, so any wrong outcome shows.
        var outcome = Both(a =>
        {
            var top = LcgLoop(a, 60);
            int n = 0;
            foreach (var setFlags in s_flagSetters)
            {
                foreach (var jcc in s_jcc)
                {
                    var skip = a.CreateLabel();
                    a.mov(rax, r12);
                    a.mov(rbx, r12);
                    a.rol(rbx, (byte)(n % 61));
                    a.shr(rax, (byte)(ecxShift(n)));
                    setFlags(a);
                    jcc(a, skip);
                    a.add(r14, ++n);
                    a.Label(ref skip);
                }
            }

            a.dec(ecx);
            a.jnz(top);
            a.mov(__qword_ptr[Data], r14);
            a.hlt();
        });
        Assert.That(outcome.Exit, Is.EqualTo(RunExit.HaltedForever));

        static int ecxShift(int n) => (n * 7) % 64;
    }

    [Test]
    public void FlagsALaterOpSetsAgainAreLeftUnwrittenOnlyWhereNothingReadsThem()
    {
        // A compiled block skips the flags of a register ALU op, INC, DEC, NEG or IMUL when a later op of the block
        // sets them all again with only moves, LEA and NOT in between (docs/cpu.md, "Dead flags"). Each group below
        // ends in an op that reads what an earlier one left (ADC's and SBB's carry-in, INC's and DEC's kept CF,
        // SETcc, CMOVcc, PUSHF, a Jcc, the block's end), with ops in between that must or must not count as setting
        // the flags; every read is folded into R14, and the final RFLAGS is compared as well.
        var outcome = Both(a =>
        {
            var top = LcgLoop(a, 40);
            a.mov(rax, r12);
            a.mov(rbx, r12);
            a.ror(rbx, 17);

            // Dead: ADD's flags, then SUB sets them all; ADC reads SUB's carry.
            a.add(rax, rbx);
            a.mov(rdx, rax);
            a.lea(rsi, __[rax + rbx * 2 + 3]);
            a.not(rdx);
            a.sub(rdx, rbx);
            a.adc(r14, 0);

            // Live: ADD's carry is read by ADC, so the OR after it must not make ADD's flags dead.
            a.add(rax, rbx);
            a.adc(r14, rax);
            a.or(rax, rbx);

            // Live: INC keeps CF from the SUB before it; the XOR after INC sets every flag again.
            a.sub(eax, ebx);
            a.inc(r9);
            a.sbb(r14, 0);
            a.xor(r9, rax);

            // Dead CMP and TEST, then AND; SETcc and CMOVcc read AND's flags.
            a.cmp(rax, rbx);
            a.test(ebx, ebx);
            a.and(rax, rbx);
            a.setne(r8b);
            a.add(r14, r8);
            a.cmovs(rdx, r12);
            a.add(r14, rdx);

            // Narrow forms: the 8- and 16-bit ADD and SUB; PUSHF reads the last one's flags.
            a.add(al, bl);
            a.sub(cx, 0);
            a.add(bx, ax);
            a.sub(bl, 0x7F);
            a.pushfq();
            a.pop(r10);
            a.add(r14, r10);

            // Dead INC, DEC and IMUL before a CMP; NEG and IMUL set every flag, ADC reads their carry.
            a.inc(r9);
            a.dec(r10);
            a.imul(r11, r12);
            a.cmp(r9, r10);
            a.adc(r14, 0);
            a.add(rax, rbx);
            a.neg(rdx);
            a.adc(r14, rdx);
            a.inc(r9);
            a.imul(r10, r11, 0x1234_5679);
            a.adc(r14, r10);

            // Live: INC and DEC keep SUB's carry for ADC; IMUL's overflow is read by a Jcc.
            a.sub(rax, rbx);
            a.dec(r9);
            a.inc(r10);
            a.adc(r14, 0);
            var noOverflow = a.CreateLabel();
            a.imul(rax, rbx);
            a.jno(noOverflow);
            a.add(r14, 3);
            a.Label(ref noOverflow);

            // Dead across an immediate form, then a Jcc reads the second op's flags.
            var skip = a.CreateLabel();
            a.xor(edx, 0x55AA);
            a.mov(rdi, rdx);
            a.cmp(rdx, rbx);
            a.jae(skip);
            a.add(r14, 7);
            a.Label(ref skip);

            // The last flags of the block leave it: the loop's DEC, then JNZ.
            a.add(r13, rax);
            a.dec(ecx);
            a.jnz(top);
            a.add(rax, r12); // and the last ADD's flags reach the end of the run
            a.mov(__qword_ptr[Data], r14);
            a.hlt();
        });
        Assert.That(outcome.Exit, Is.EqualTo(RunExit.HaltedForever));
    }

    [Test]
    public void TrapFlagSetInsideAChainSingleStepsTheNextInstruction()
    {
        // A compiled block looks at the debug path on its way to the next block, as RunBlocks does between blocks
        // (docs/cpu.md, "Compiled blocks"). Here POPF sets TF in a loop that runs compiled and chained: the #DB must
        // come after the instruction that follows POPF, as the interpreter delivers it. VectorCatcher's handler for
        // vector 1 halts; the #DB frame's RIP is on the stack's top, which both runs must agree on. (No other test
        // failed when the chain's debug check was dropped.)
        var outcome = Both(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 200);
            a.Label(ref top);
            a.add(rax, rcx);
            a.mov(__qword_ptr[Data], rax);

            // RFLAGS with TF (bit 8) only on the pass with ECX = 3, worked out without a branch: this block, whose
            // other ops cannot turn the debug path on, runs compiled with its POPF on every pass long before that one.
            // IF (bit 9) flips on every pass, so POPF ends the block every time and the code after it is a block of
            // its own, compiled and linked from this one: the chain would run it at once if nothing looked at TF.
            a.mov(r9d, ecx);
            a.xor(r9d, 3);
            a.neg(r9d);
            a.sbb(r9d, r9d);
            a.not(r9d);
            a.and(r9d, 0x100);
            a.mov(r10d, ecx);
            a.and(r10d, 1);
            a.shl(r10d, 9);
            a.mov(r8d, 2);
            a.or(r8, r9);
            a.or(r8, r10);
            a.push(r8);
            a.popfq();
            a.add(rbx, rax);
            a.add(rdx, __qword_ptr[Data]);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }, vectors: true);
        Assert.That(outcome.Rip, Is.EqualTo(VectorCatcher.HandlerBase + 1 + 1), "#DB delivered");
    }

    [Test]
    public void AnInstructionLimitStopsAtTheSameInstruction()
    {
        // Limits that fall inside a block, at a block's end and inside a chain of compiled blocks.
        foreach (ulong limit in new ulong[] { 1001, 1234, 4321, 5000 })
        {
            var outcome = Both(Mixed, maxInstructions: limit);
            Assert.That(outcome.Instructions, Is.EqualTo(limit));
        }
    }

    [Test]
    public void ACycleLimitStopsAtTheSameInstruction()
    {
        // The first instructions' nested page faults take about half the run's cycles; the limits fall in the loop.
        ulong total = Run(Mixed, compile: false).Cycles;
        foreach (ulong limit in new[] { total - 7001, total - 3003, total - 2001 })
        {
            var outcome = Both(Mixed, maxCycles: limit);
            Assert.That(outcome.Exit, Is.EqualTo(RunExit.CycleLimit));
        }
    }

    /// <summary>
    /// Starts a loop of <paramref name="passes"/> passes counted down in ECX (the caller ends it with DEC ECX, JNZ to
    /// the label returned) whose last pass sets <paramref name="address"/> to a non-canonical address, then enters
    /// the loop's body by a jump, as every other pass does: the body is the same (compiled) block on every pass, and
    /// a memory op through that register raises #GP inside it on the last.
    /// </summary>
    private static Label LoopTurningNonCanonicalOnLastPass(Assembler a, int passes, AssemblerRegister64 address)
    {
        var top = a.CreateLabel();
        var body = a.CreateLabel();
        a.mov(ecx, passes);
        a.Label(ref top);
        a.cmp(ecx, 1);
        a.jne(body);
        a.mov(address, 0x8000_0000_0000_0000UL);
        a.jmp(body);
        a.Label(ref body);
        return top;
    }

    [Test]
    public void AFaultAfterRegisterOnlyOpsReportsTheFaultingInstruction()
    {
        // The load faults (#GP, non-canonical) on the last pass, after register-only ops whose RIP, cycle and
        // instruction commits a compiled block folds into the load's: the #GP frame's RIP, the cycles and the count
        // must be the interpreter's. VectorCatcher's handler for vector 13 halts.
        var outcome = Both(a =>
        {
            a.mov(rsi, Data);
            var top = LoopTurningNonCanonicalOnLastPass(a, 50, rsi);
            a.add(rax, 3);
            a.mov(rbx, rax);
            a.lea(rdx, __[rbx + rcx * 2]);
            a.mov(r8, __qword_ptr[rsi]);
            a.add(r9, r8);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }, vectors: true);
        Assert.That(outcome.Rip, Is.EqualTo(VectorCatcher.HandlerBase + 13 + 1), "#GP delivered");
    }

    [Test]
    public void MemoryFormsWithConstantOperandsComputeAndFaultAsInterpreted()
    {
        // A compiled block calls the memory forms of ALU ops, INC/DEC/NEG/NOT and immediate stores with their
        // register, immediate, segment and address parts as constants (docs/cpu.md, "Compiled blocks"): each form
        // here has its own registers, widths and addressing (base, base and index, RIP-relative, index or absolute
        // without a base), and flags they set are read back; PUSH and POP of registers take theirs too, RSP
        // included. On the last pass RDI turns non-canonical, so a memory op in the middle of the compiled block
        // raises #GP after the ones before it wrote memory; VectorCatcher's handler for vector 13 halts.
        var outcome = Both(a =>
        {
            var constant = a.CreateLabel();
            a.mov(rsi, Data);
            a.mov(rdi, Data);
            var top = LoopTurningNonCanonicalOnLastPass(a, 300, rdi);
            a.mov(r10d, ecx);
            a.and(r10d, 7);
            a.mov(r8, rcx);
            a.add(r8d, __dword_ptr[rsi + 4]);
            a.xor(r11w, __word_ptr[rsi + r10 * 2 + 16]);
            a.sub(r12, __qword_ptr[constant]);
            a.add(__dword_ptr[rsi + r10 * 4 + 32], r8d);
            a.add(__byte_ptr[rsi + 64], 3);
            a.cmp(__qword_ptr[rsi + 8], 1000);
            a.adc(r13, 0);
            a.test(__word_ptr[rsi + r10 * 2 + 16], r11w);
            a.setne(al);
            a.add(r14, rax);
            a.mov(__dword_ptr[rsi + r10 * 4 + 96], 0x1234_5678);
            a.mov(__qword_ptr[rsi + 128], -5);
            a.inc(__qword_ptr[rsi + 136]);
            a.neg(__dword_ptr[rsi + r10 * 4 + 144]);
            a.not(__word_ptr[rsi + 176]);
            a.dec(__byte_ptr[rsi + 184]);
            a.adc(r15, 0);
            a.or(__qword_ptr[rdi + 192], rcx);
            a.sbb(__qword_ptr[rsi + 200], r8);
            a.add(__qword_ptr[rsi + 8], rcx);
            a.mov(r9d, __dword_ptr[r10 * 4 + (long)Data + 32]);
            a.add(r9, __qword_ptr[Data + 8]);
            a.mov(__dword_ptr[r10 * 8 + (long)Data + 208], r9d);
            a.push(r9);
            a.push(rsp);
            a.pop(rsp);
            a.pop(rbx);
            a.push(r12);
            a.pop(rdx);
            a.add(rbx, rdx);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
            a.Label(ref constant);
            a.dq(0x0123_4567_89AB_CDEF);
        }, vectors: true);
        Assert.That(outcome.Rip, Is.EqualTo(VectorCatcher.HandlerBase + 13 + 1), "#GP delivered");
    }

    [Test]
    public void RegistersHeldInLocalsAreWrittenBackWhereverTheMachineCanSeeThem()
    {
        // A compiled block keeps the registers its register-only ops and memory forms use in locals (docs/cpu.md,
        // "Registers in locals"): here every width of those ops writes registers held so (8- and 16-bit writes keep
        // the rest, 32-bit ones clear the top), a register is both source and destination, loads write held
        // registers, stores and addresses read them, and ops the block calls without its locals (MUL, CPUID, XCHG,
        // PUSH and POP, CMOVcc, BSWAP; SSE moves and integer ops, which keep them held) read registers just written in
        // locals and write ones held before; MOVZX, MOVSX and MOVSXD widen from registers and memory. On the last pass RDI turns non-canonical, so the MOVZX through
        // it raises #GP after register ops changed several registers; VectorCatcher's handler for vector 13 halts,
        // and the registers must be the interpreter's.
        var outcome = Both(a =>
        {
            a.mov(rsi, Data);
            a.mov(rdi, Data);
            a.mov(rax, 0x1111_2222_3333_4444UL);
            a.mov(rbx, 0x5555_6666_7777_8888UL);
            var top = LoopTurningNonCanonicalOnLastPass(a, 200, rdi);
            a.mov(r12, rax);
            a.xor(edx, edx);
            a.mov(r9d, 7);
            a.div(r9);
            a.add(rbx, rdx);
            a.imul(r9d, __dword_ptr[rsi + 8]);
            a.add(rbx, r9);
            a.add(al, bl);
            a.sub(bx, ax);
            a.xor(edx, edx);
            a.add(rdx, rcx);
            a.imul(r8, rdx, 0x35);
            a.imul(r8, rax);
            a.lea(r9d, __[r8 + rcx * 4 + 8]);
            a.lea(r10w, __[r9 + 3]);
            a.mov(r11, r10);
            a.shl(r11, 3);
            a.mov(r12d, ecx);
            a.and(r12d, 31);
            a.xchg(r12, rcx);
            a.shr(rax, cl);
            a.xchg(r12, rcx);
            a.not(r11w);
            a.neg(r9);
            a.add(rax, rax);
            a.mov(__qword_ptr[rsi + 8], rax);
            a.mov(r13b, __byte_ptr[rsi + 8]);
            a.mov(r14w, __word_ptr[rsi + r12 * 2 + 16]);
            a.add(r14w, r13w);
            a.mov(__word_ptr[rsi + r12 * 2 + 16], r14w);
            a.or(r13b, 0x80);
            a.movzx(r10d, r13b);
            a.movsx(r10w, r14b);
            a.movsx(r9, r10w);
            a.movsxd(r8, r9d);
            a.add(r8, r10);
            a.or(__byte_ptr[rsi + r12 + 16], 0x80);
            a.movzx(r13d, __byte_ptr[rsi + r12 + 16]);
            a.movsx(r13w, __byte_ptr[rsi + 9]);
            a.movsxd(r14, __dword_ptr[rsi + r12 * 4 + 20]);
            a.add(r14, r13);
            a.movzx(r15, __word_ptr[rdi + 8]);
            a.add(r15, rbx);
            a.add(__qword_ptr[rsi + 96], r15);
            a.mov(r13, rax);
            a.mul(rbx);
            a.add(rdx, r13);
            a.push(rax);
            a.sub(rsp, 8);
            a.add(rsp, 8);
            a.pop(r13);
            a.xor(r13, rdx);
            a.cmp(r13, r11);
            a.cmovb(r11, r13);
            a.bswap(r11);
            a.add(r11, 1);
            a.mov(__qword_ptr[rsi + r12 * 4 + 128], r11);
            a.movd(xmm1, r11d);
            a.pshufd(xmm1, xmm1, 0x1B);
            a.paddd(xmm0, xmm1);
            a.nop();
            a.movdqa(__xmmword_ptr[rsi + 224], xmm0);
            a.add(r11, rcx);
            a.movdqa(xmm2, __xmmword_ptr[rsi + 224]);
            a.psrlq(xmm2, 3);
            a.movd(xmm3, r11d);
            a.movdqa(__xmmword_ptr[rsi + 240], xmm3);
            a.add(r11, __qword_ptr[rsi + 240]);
            a.mov(r10d, eax);
            a.push(rcx);
            a.mov(eax, 0);
            a.cpuid();
            a.pop(rcx);
            a.add(rbx, r10);
            a.add(rbx, rax);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }, vectors: true);
        Assert.That(outcome.Rip, Is.EqualTo(VectorCatcher.HandlerBase + 13 + 1), "#GP delivered");
    }

    [Test]
    public void ABlockCutAfterRegisterOnlyOpsWritesTheirRegistersBack()
    {
        // A decoded block ends after BlockCache.MaxBlockOps ops: the loop's body is 70 register-only ops, so its
        // first block ends with ops whose registers a compiled block holds in locals, and the next block (compiled
        // or not) must find them in the vCPU.
        Both(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 100);
            a.Label(ref top);
            for (int i = 0; i < 35; i++)
            {
                a.add(rax, rcx);
                a.xor(rbx, rax);
            }

            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        });
    }

    [Test]
    public void CodeRewrittenAfterItWasCompiledRunsAsWritten()
    {
        // A function on its own page returns an immediate the loop rewrites on every pass, then calls it three
        // times: by the third call the function is compiled, and the next pass's write must drop that code.
        var outcome = Both(a =>
        {
            var top = a.CreateLabel();
            var fn = a.CreateLabel();
            var done = a.CreateLabel();
            a.lea(rdi, __[fn]);
            a.mov(ecx, 40);
            a.xor(r10, r10);
            a.Label(ref top);
            a.mov(__dword_ptr[rdi + 1], ecx);
            for (int i = 0; i < 3; i++)
            {
                a.call(fn);
                a.add(r10, rax);
            }

            a.dec(ecx);
            a.jnz(top);
            a.jmp(done);
            a.db(new byte[4096]);
            a.Label(ref fn);
            a.mov(eax, 0);
            a.ret();
            a.Label(ref done);
            a.mov(__qword_ptr[Data], r10);
            a.hlt();
        });
        Assert.That(outcome.Memory[0], Is.EqualTo(3UL * 40 * 41 / 2), "three times the sum of 40..1: every call ran the bytes just written");
    }

    [Test]
    public void PauseSeesTheInstructionCountTheInterpreterKeeps()
    {
        // PAUSE reads the instruction count (spin detection); a compiled block adds its ops' count up at its end,
        // so it must bring the count up to date before PAUSE. Register-only ops sit before it in the same block.
        Both(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 3000);
            a.Label(ref top);
            a.add(rax, rcx);
            a.mov(rbx, rax);
            a.pause();
            a.add(rdx, rbx);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        }, yieldOnPause: true);
    }

    [Test]
    public void CompiledBlocksRunWithoutAllocating()
    {
        // Once its blocks are compiled and linked, an endless loop of the mixed program's kind runs and chains
        // through them without allocating (the least of three rounds, so a stray runtime allocation does not count).
        using var g = TestGuest.Long64(a =>
        {
            var top = a.CreateLabel();
            var fn = a.CreateLabel();
            a.mov(rsi, Data);
            a.Label(ref top);
            a.add(rax, 3);
            a.mov(__qword_ptr[rsi + 8], rax);
            a.add(rbx, __qword_ptr[rsi + 8]);
            a.call(fn);
            a.jmp(top);
            a.Label(ref fn);
            a.lea(rdx, __[rbx + rax * 2]);
            a.ret();
        });
        g.Cpu.CompileThreshold = 1;
        g.Cpu.CompileInBackground = false;
        ulong at = 100_000;
        g.Run(at);
        Assert.That(g.Cpu.CompiledBlocks, Is.GreaterThan(0UL));
        Assert.That(g.LeastAllocatedPerWindow(at, 300_000), Is.Zero, "bytes allocated by 300,000 instructions in compiled blocks");
    }
}
