using System.Numerics;
using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Svm;
using Emulator.Svm.Vmcb;

namespace Emulator.Svm.Avic;

/// <summary>
/// The AVIC hardware of one vCPU (APM vol. 2 §15.29): what the processor does with a guest access to the APIC page
/// (the VMCB's APIC_BAR, reached through a present nested-page entry) while the VMCB has AVIC_ENABLE. Its
/// configuration is read from the VMCB as VMRUN reads it (<see cref="Load"/>): the backing page, the physical and
/// logical APIC ID tables and the physical table's largest index.
///
/// Each access is one of three kinds (the APM's guest vAPIC register access table):
/// <list type="bullet">
/// <item>accelerated: served from the backing page with no exit, including what the hardware does itself for a TPR
/// write (new PPR), an EOI of an edge-triggered vector (ISR bit cleared, next interrupt evaluated) and an ICR write
/// (IPI virtualization, below);</item>
/// <item>trap: the write lands in the backing page, then #VMEXIT AVIC_NOACCEL (EXITINFO1 = offset, bit 32 write) after
/// the instruction, for L0 to do the side effects;</item>
/// <item>fault: nothing is done, #VMEXIT AVIC_NOACCEL before the access, and L0 emulates the instruction.</item>
/// </list>
/// Only 32-bit accesses at a register's 16-byte-aligned offset are accelerated or trapped; any other size or offset
/// faults, and L0's emulation gives the architectural result. (The APM defines the table for aligned 32-bit accesses;
/// treating the rest as faults is this model's choice, always correct since L0 emulates them.)
///
/// Exits are taken synchronously inside the access: L0's handler runs at once (a fault's emulation completes the
/// access with L0's result). The guest cannot tell, since a trap's handler only acts on state after the write and the
/// instruction has no later architectural effect on the APIC.
/// </summary>
internal sealed unsafe class AvicUnit : AvicPort
{
    /// <summary>INCOMPLETE_IPI causes (EXITINFO2 bits 63:32).</summary>
    public const uint InvalidIntType = 0, TargetNotRunning = 1, InvalidTarget = 2, InvalidBackingPage = 3, InvalidVector = 4;

    private readonly AvicTables _tables;
    private byte* _backing;
    private ulong* _physical;
    private uint* _logical;
    private int _maxIndex;

    // Targets of the last ICR write whose IsRunning was clear: L0 wakes them on the INCOMPLETE_IPI exit.
    private readonly ulong[] _notRunning = new ulong[4];

    public AvicUnit(AvicTables tables) => _tables = tables;

    /// <summary>The vCPU's APIC as L0 sees it (re-evaluation, trapped-write side effects, emulation).</summary>
    public IAvicBacking? Apic { get; set; }

    public ulong ApicBar { get; private set; }

    public ulong AcceleratedReads, AcceleratedWrites, Traps, Faults, IpisAccelerated, Doorbells;

    /// <summary>INCOMPLETE_IPI exits by cause (0–4).</summary>
    public ulong[] IncompleteIpis { get; } = new ulong[5];

    // The access a fault exit hands to L0's emulation (EXITINFO has only the offset; KVM decodes the instruction).
    internal int PendingOffset, PendingSize;
    internal bool PendingWrite;
    internal ulong PendingValue;

    /// <summary>
    /// The last AVIC_NOACCEL was a fault (else a trap). KVM tells them apart by the offset and, for a fault, decodes the
    /// instruction; this model's L0 reads the kind here instead, so an odd-sized write to a trap register is emulated.
    /// </summary>
    internal bool PendingIsFault;

    /// <summary>
    /// Reads the AVIC fields of <paramref name="v"/> as VMRUN does; true when AVIC_ENABLE is set. The pointers are
    /// host-physical addresses (pointers in this model), bits 51:12; the physical table's field holds the largest
    /// index in bits 7:0.
    /// </summary>
    public bool Load(VmcbView v)
    {
        if ((v.U32(VmcbOffset.IntCtl) & IntCtl.AvicEnable) == 0)
        {
            return false;
        }

        ApicBar = v.U64(VmcbOffset.AvicApicBar) & AvicTables.BackingMask;
        _backing = (byte*)(v.U64(VmcbOffset.AvicBackingPage) & AvicTables.BackingMask);
        ulong phys = v.U64(VmcbOffset.AvicPhysicalTable);
        _physical = (ulong*)(phys & AvicTables.BackingMask);
        _maxIndex = Math.Min((int)(phys & 0xFF), AvicTables.MaxXAvicIndex);
        _logical = (uint*)(v.U64(VmcbOffset.AvicLogicalTable) & AvicTables.BackingMask);
        return true;
    }

    private uint Reg(int offset) => *(uint*)(_backing + offset);

    private void SetReg(int offset, uint value) => *(uint*)(_backing + offset) = value;

    /// <summary>A write the unit completed without an exit (counted, and the backing-page access charged).</summary>
    private void Accelerated(Cpu cpu)
    {
        AcceleratedWrites++;
        cpu.Cycles += cpu.Costs.AvicAccess;
    }

    public override ulong Read(Cpu cpu, int offset, int size)
    {
        if (size == 4 && (offset & 0xF) == 0 && ReadAccelerated(offset))
        {
            AcceleratedReads++;
            cpu.Cycles += cpu.Costs.AvicAccess;
            return Reg(offset);
        }

        return Fault(cpu, offset, size, write: false, 0);
    }

    public override void Write(Cpu cpu, int offset, int size, ulong value)
    {
        if (size != 4 || (offset & 0xF) != 0)
        {
            Fault(cpu, offset, size, write: true, value);
            return;
        }

        uint v = (uint)value;
        switch (offset)
        {
            case ApicReg.Tpr:
                // Accelerated: the new TPR (bits 7:0) and with it PPR; a now-unmasked interrupt may be delivered.
                Accelerated(cpu);
                SetReg(ApicReg.Tpr, v & 0xFF);
                Apic?.CommitWrite(ApicReg.Tpr);
                break;
            case ApicReg.Eoi:
                int isr = ApicPage.Highest(_backing, ApicReg.Isr);
                if (isr >= 0 && ApicPage.TestBit(_backing, ApicReg.Tmr, isr))
                {
                    // A level-triggered vector's EOI must reach the I/O APIC: trap.
                    SetReg(ApicReg.Eoi, v);
                    Trap(cpu, ApicReg.Eoi);
                }
                else
                {
                    Accelerated(cpu);
                    SetReg(ApicReg.Eoi, v);
                    Apic?.CommitWrite(ApicReg.Eoi);
                }

                break;
            case ApicReg.IcrHigh:
                Accelerated(cpu);
                SetReg(ApicReg.IcrHigh, v);
                break;
            case ApicReg.IcrLow:
                SetReg(ApicReg.IcrLow, v & ~(1u << 12)); // delivery status reads idle
                SendIpi(cpu, v);
                break;
            case ApicReg.Id or ApicReg.Rrd or ApicReg.Ldr or ApicReg.Dfr or ApicReg.Svr or ApicReg.Esr or (>= ApicReg.LvtTimer and <= ApicReg.LvtError)
                or ApicReg.TimerInitial or ApicReg.TimerDivide:
                SetReg(offset, v);
                Trap(cpu, offset);
                break;
            default:
                Fault(cpu, offset, size, write: true, value);
                break;
        }
    }

    /// <summary>Registers the unit reads from the backing page (the current count, EOI and the rest fault).</summary>
    private static bool ReadAccelerated(int offset) => offset switch
    {
        ApicReg.Id or ApicReg.Version or ApicReg.Tpr or ApicReg.Apr or ApicReg.Ppr or ApicReg.Rrd or ApicReg.Ldr or ApicReg.Dfr or ApicReg.Svr => true,
        >= ApicReg.Isr and <= ApicReg.Irr + 0x70 => true,
        ApicReg.Esr or ApicReg.IcrLow or ApicReg.IcrHigh => true,
        >= ApicReg.LvtTimer and <= ApicReg.LvtError => true,
        ApicReg.TimerInitial or ApicReg.TimerDivide => true,
        _ => false,
    };

    private ulong Fault(Cpu cpu, int offset, int size, bool write, ulong value)
    {
        Faults++;
        PendingIsFault = true;
        PendingOffset = offset;
        PendingSize = size;
        PendingWrite = write;
        PendingValue = value;
        cpu.Svm!.Exit(cpu, SvmExit.AvicNoAccel, (uint)(offset & 0xFF0) | (write ? 1UL << 32 : 0), 0);
        return PendingValue;
    }

    private void Trap(Cpu cpu, int offset)
    {
        Traps++;
        PendingIsFault = false;
        cpu.Svm!.Exit(cpu, SvmExit.AvicNoAccel, (uint)offset | (1UL << 32), 0);
    }

    /// <summary>L0's emulation of the access a fault exit stopped (the read's result is what the access returns).</summary>
    internal void EmulatePending()
    {
        if (Apic is not { } apic)
        {
            PendingValue = PendingWrite ? 0 : ulong.MaxValue >> (64 - (8 * PendingSize));
            return;
        }

        if (PendingWrite)
        {
            apic.EmulateWrite(PendingOffset, PendingSize, PendingValue);
        }
        else
        {
            PendingValue = apic.EmulateRead(PendingOffset, PendingSize);
        }
    }

    /// <summary>
    /// IPI virtualization (APM vol. 2 §15.29.7): a fixed, edge-triggered IPI with a vector of 16 or more is delivered by
    /// the hardware: each target's IRR bit is set in its backing page, and a target marked IsRunning gets a doorbell to
    /// its core; if a target was not running the write completes and INCOMPLETE_IPI (cause 1) tells L0 to wake it. Any
    /// other IPI, or one with an invalid target, is not delivered at all and exits for L0 to emulate (causes 0 and 2).
    /// Targets are checked before any IRR bit is set (this model's choice), so L0's emulation never delivers twice.
    /// </summary>
    private void SendIpi(Cpu cpu, uint icrLow)
    {
        uint icrHigh = Reg(ApicReg.IcrHigh);
        int vector = (int)(icrLow & 0xFF);
        uint mode = (icrLow >> 8) & 7;
        bool level = (icrLow & (1u << 15)) != 0;
        uint shorthand = (icrLow >> 18) & 3;
        if (mode != 0 || level)
        {
            Incomplete(cpu, icrLow, icrHigh, InvalidIntType, 0);
            return;
        }

        if (vector < 16)
        {
            Incomplete(cpu, icrLow, icrHigh, InvalidVector, 0);
            return;
        }

        if (shorthand == 1)
        {
            // Self: no table lookup, the local IRR directly.
            IpisAccelerated++;
            SetBit(_backing, ApicReg.Irr, vector);
            Apic?.RescanIrr();
            return;
        }

        Array.Clear(_notRunning);
        byte dest = (byte)(icrHigh >> 24);
        bool broadcast = shorthand >= 2 || dest == 0xFF;
        if (!broadcast && !TargetsValid(dest, (icrLow & (1u << 11)) != 0, out int badIndex))
        {
            Incomplete(cpu, icrLow, icrHigh, InvalidTarget, badIndex);
            return;
        }

        IpisAccelerated++;
        if (broadcast)
        {
            for (int i = 0; i <= _maxIndex; i++)
            {
                ulong e = _physical[i];
                if ((e & AvicTables.Valid) != 0 && !(shorthand == 3 && (byte*)(e & AvicTables.BackingMask) == _backing))
                {
                    Deliver(i, vector);
                }
            }
        }
        else if ((icrLow & (1u << 11)) == 0)
        {
            Deliver(dest, vector);
        }
        else
        {
            ForEachLogicalTarget(dest, vector);
        }

        int first = FirstNotRunning();
        if (first >= 0)
        {
            Incomplete(cpu, icrLow, icrHigh, TargetNotRunning, first);
        }
    }

    /// <summary>True when every target of a physical or logical destination has a valid entry (else the first bad index).</summary>
    private bool TargetsValid(byte dest, bool logical, out int badIndex)
    {
        badIndex = dest;
        if (!logical)
        {
            return dest <= _maxIndex && (_physical[dest] & AvicTables.Valid) != 0;
        }

        bool flat = Reg(ApicReg.Dfr) >> 28 == 0xF;
        for (int bit = 0; bit < 8; bit++)
        {
            if ((dest & (1 << bit)) == 0 || (!flat && bit >= 4))
            {
                continue;
            }

            int index = LogicalIndex(dest, bit, flat);
            uint le = _logical[index];
            badIndex = index;
            if ((le & AvicTables.LogicalValid) == 0)
            {
                return false;
            }

            int id = (int)(le & AvicTables.LogicalIdMask);
            if (id > _maxIndex || (_physical[id] & AvicTables.Valid) == 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Logical table index: flat mode, the bit's position; cluster mode, cluster · 4 + the bit in the low nibble.</summary>
    private static int LogicalIndex(byte dest, int bit, bool flat) => flat ? bit : ((dest >> 4) * 4) + bit;

    private void ForEachLogicalTarget(byte dest, int vector)
    {
        bool flat = Reg(ApicReg.Dfr) >> 28 == 0xF;
        for (int bit = 0; bit < 8; bit++)
        {
            if ((dest & (1 << bit)) != 0 && (flat || bit < 4))
            {
                Deliver((int)(_logical[LogicalIndex(dest, bit, flat)] & AvicTables.LogicalIdMask), vector);
            }
        }
    }

    private void Deliver(int index, int vector)
    {
        ulong e = _physical[index];
        SetBit((byte*)(e & AvicTables.BackingMask), ApicReg.Irr, vector);
        if ((e & AvicTables.IsRunning) != 0)
        {
            Doorbells++;
            _tables.Doorbell(e & AvicTables.HostIdMask);
        }
        else
        {
            _notRunning[index >> 6] |= 1UL << (index & 63);
        }
    }

    private int FirstNotRunning()
    {
        for (int w = 0; w < _notRunning.Length; w++)
        {
            if (_notRunning[w] != 0)
            {
                return (w * 64) + BitOperations.TrailingZeroCount(_notRunning[w]);
            }
        }

        return -1;
    }

    /// <summary>True when the target with guest APIC ID <paramref name="index"/> of the last IPI was not running (L0 wakes it).</summary>
    internal bool WasNotRunning(int index) => (uint)index < 256 && (_notRunning[index >> 6] & (1UL << (index & 63))) != 0;

    private void Incomplete(Cpu cpu, uint icrLow, uint icrHigh, uint cause, int index)
    {
        IncompleteIpis[cause]++;
        cpu.Svm!.Exit(cpu, SvmExit.AvicIncompleteIpi, icrLow | ((ulong)icrHigh << 32), ((ulong)cause << 32) | (uint)index);
    }

    /// <summary>Sets a vector's bit in a register array of a backing page (atomic: another vCPU's unit may set bits too).</summary>
    private static void SetBit(byte* page, int bank, int vector) =>
        Interlocked.Or(ref ApicPage.VectorWord(page, bank, vector), 1u << (vector & 31));
}
