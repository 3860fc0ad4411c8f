using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;

namespace Emulator.Svm.Exits;

/// <summary>
/// Numbers and results of KVM's hypercall interface (Linux's kvm_para.h and Documentation/virt/kvm/x86/hypercalls;
/// facts only). Results are returned negated in RAX.
/// </summary>
public static class KvmHypercall
{
    public const ulong VapicPollIrq = 1, KickCpu = 5, ClockPairing = 9, SendIpi = 10, SchedYield = 11;

    public const long EPerm = 1, EFault = 14, EInval = 22, EOpNotSupp = 95, ENoSys = 1000;

    /// <summary>VMMCALL's encoding, which L0 writes over a VMCALL (0F 01 D9; VMCALL is 0F 01 C1).</summary>
    public static ReadOnlySpan<byte> VmmcallBytes => [0x0F, 0x01, 0xD9];
}

/// <summary>
/// L0's hypercall exits, as KVM on AMD handles them. VMMCALL exits with the call number in RAX and arguments in
/// RBX, RCX, RDX, RSI; the result goes to RAX and RIP moves past the instruction (the next RIP the exit reports).
/// Outside 64-bit mode the registers and the result are 32 bits. Only CPL 0 may call (-EPERM otherwise), and
/// an unknown number gives -ENOSYS. A VMCALL (Intel's instruction) reaches L0 through its #UD intercept: KVM
/// rewrites it into VMMCALL in guest memory and lets the guest execute it again (the default
/// KVM_X86_QUIRK_FIX_HYPERCALL_INSN), so it costs two exits and then behaves the same.
/// </summary>
public sealed class Hypercalls
{
    private readonly IReadOnlyList<LocalApic> _apics;

    /// <summary>The highest initial APIC ID in the VM (fixed when the vCPUs are created): SEND_IPI looks no further.</summary>
    private readonly uint _maxApicId;

    public Hypercalls(IReadOnlyList<LocalApic> apics)
    {
        _apics = apics;
        foreach (var apic in apics)
        {
            _maxApicId = Math.Max(_maxApicId, apic.InitialApicId);
        }
    }

    /// <summary>Hypercalls completed (KVM's per-vCPU <c>hypercalls</c> statistic, summed).</summary>
    public ulong Count { get; private set; }

    /// <summary>VMCALLs rewritten into VMMCALL by the #UD intercept.</summary>
    public ulong Patched { get; private set; }

    /// <summary>
    /// L0's VMMCALL exit handler (<see cref="Run.L0Svm"/>): makes the call; Continue, with RIP to move to NextRip.
    /// </summary>
    public int Vmmcall(Cpu cpu)
    {
        cpu.Cycles += cpu.Costs.HypervisorExit;
        Count++;
        bool wide = cpu.Mode == CpuMode.Long64;
        ulong mask = wide ? ulong.MaxValue : uint.MaxValue;
        ulong nr = cpu.Gpr[Reg.RAX] & mask;
        ulong a0 = cpu.Gpr[Reg.RBX] & mask, a1 = cpu.Gpr[Reg.RCX] & mask;
        ulong a2 = cpu.Gpr[Reg.RDX] & mask, a3 = cpu.Gpr[Reg.RSI] & mask;
        long ret = cpu.Cpl != 0 ? -KvmHypercall.EPerm : nr switch
        {
            // Only makes L0 look at pending interrupts, which the re-entry does anyway.
            KvmHypercall.VapicPollIrq => 0,
            KvmHypercall.KickCpu => Kick((uint)a1),
            KvmHypercall.SendIpi => SendIpi(cpu, a0, a1, (uint)a2, a3, wide),
            // The host yields its thread to the named vCPU; the round-robin scheduler gives no such hint.
            KvmHypercall.SchedYield => 0,
            // Needs a TSC-based host clocksource, which this host does not offer (KVM's answer then).
            KvmHypercall.ClockPairing => -KvmHypercall.EOpNotSupp,
            _ => -KvmHypercall.ENoSys,
        };
        cpu.Gpr[Reg.RAX] = (ulong)ret & mask;
        return ExecStatus.Continue;
    }

    /// <summary>
    /// L0's #UD exit handler for a VMCALL at RIP: rewrites it into VMMCALL; EndBlock with NextRip = RIP, so the
    /// guest executes it again; Fault when the rewrite faults.
    /// </summary>
    public int VmcallUd(Cpu cpu)
    {
        cpu.Cycles += cpu.Costs.HypervisorExit + cpu.Costs.InstructionEmulation;
        Patched++;
        // The rewrite is an emulated data write at the instruction's linear address with the guest's
        // privilege; a page fault on it goes to the guest.
        ulong lin = cpu.CodeLinear;

        var code = KvmHypercall.VmmcallBytes;
        if (!cpu.WriteLinearSlow(lin, 2, (ulong)code[0] | ((ulong)code[1] << 8)) || !cpu.WriteLinearSlow(lin + 2, 1, code[2]))
        {
            return ExecStatus.Fault;
        }

        // Enter the guest again at the same instruction, now VMMCALL.
        cpu.NextRip = cpu.Rip;
        return ExecStatus.EndBlock;
    }

    /// <summary>
    /// KVM_HC_KICK_CPU: wakes the vCPU with APIC ID <paramref name="apicId"/> from HLT (its spinlock holder
    /// released the lock). KVM also latches the kick for a vCPU that has not halted yet; here it is dropped.
    /// </summary>
    private long Kick(uint apicId)
    {
        foreach (var apic in _apics)
        {
            if (apic.HardwareEnabled && apic.ApicId == apicId)
            {
                Wake(apic);
            }
        }

        return 0;
    }

    /// <summary>
    /// KVM_HC_SEND_IPI: one interrupt, described by an ICR value, to every vCPU whose physical APIC ID is
    /// <paramref name="min"/> + i for a set bit i of the bitmap (low half) or <paramref name="min"/> + width + i
    /// (high half), width being 64 bits (32 outside 64-bit mode). The ICR may not ask for logical destinations or a
    /// shorthand (-EINVAL). <paramref name="min"/> is 32 bits and wraps. Returns how many APICs took it.
    /// </summary>
    private long SendIpi(Cpu cpu, ulong low, ulong high, uint min, ulong icr, bool wide)
    {
        const ulong destLogical = 1 << 11, shorthandMask = 3 << 18;
        if ((icr & (destLogical | shorthandMask)) != 0)
        {
            return -KvmHypercall.EInval;
        }

        var message = new ApicMessage(
            (byte)icr,
            (ApicDeliveryMode)((icr >> 8) & 7),
            LogicalDestination: false,
            Destination: 0,
            LevelTriggered: (icr & (1 << 15)) != 0,
            Assert: (icr & (1 << 14)) != 0,
            Source: cpu.Apic);
        int width = wide ? 64 : 32;
        long count = SendToBitmap(low, min, width, message);
        count += SendToBitmap(high, unchecked(min + (uint)width), width, message);
        return count;
    }

    private long SendToBitmap(ulong bitmap, uint min, int width, ApicMessage message)
    {
        uint maxId = _maxApicId;
        if (min > maxId)
        {
            return 0;
        }

        // Only IDs up to the highest one in the VM are looked at (and never past the bitmap's width).
        int bits = (int)Math.Min(maxId - min + 1, (ulong)width);
        long count = 0;
        for (int i = 0; i < bits; i++)
        {
            if ((bitmap & (1UL << i)) == 0)
            {
                continue;
            }

            uint id = min + (uint)i;
            foreach (var apic in _apics)
            {
                if (apic.HardwareEnabled && apic.ApicId == id)
                {
                    count += Deliver(apic, message with { Destination = id });
                    break;
                }
            }
        }

        return count;
    }

    /// <summary>
    /// One delivery; 1 when the APIC took it, as KVM counts: a fixed interrupt needs an enabled APIC, and a
    /// level-triggered de-assert of a fixed interrupt or INIT carries nothing.
    /// </summary>
    private static int Deliver(LocalApic apic, in ApicMessage message)
    {
        bool deassert = message.LevelTriggered && !message.Assert;
        switch (message.Mode)
        {
            case ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority when deassert || !apic.TakesFixedInterrupts:
            case ApicDeliveryMode.Init when deassert:
            case ApicDeliveryMode.ExtInt:
                return 0;
            case (ApicDeliveryMode)3:
                // Mode 3 (remote read) is how KVM kicks a halted vCPU.
                Wake(apic);
                return 1;
        }

        apic.Accept(message);
        return 1;
    }

    /// <summary>Ends a halted vCPU's HLT and makes it look at its state again (KVM's kick).</summary>
    private static void Wake(LocalApic apic)
    {
        apic.Cpu.Halted = false;
        apic.Cpu.ExitRequest = 1;
    }
}
