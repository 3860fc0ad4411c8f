using System.Numerics;
using Emulator.Core.Cpu;
using Emulator.Core.Timing;

namespace Emulator.Core.Devices.Apic;

/// <summary>
/// The hypervisor's software local APIC of one vCPU (AMD64 APM vol. 2 ch. 16; Intel SDM vol. 3 ch. 10 for the
/// x2APIC rules AMD shares): the xAPIC MMIO page, the x2APIC MSRs 0x800–0x8FF, interrupt acceptance through
/// IRR/ISR/TMR against the processor priority, EOI with the EOI broadcast for level-triggered vectors, the
/// interrupt command register, the local vector table with LINT0/LINT1, and the APIC timer (one-shot,
/// periodic, TSC-deadline) on the cycle clock. Where the manuals leave a choice, KVM's behaviour on AMD is
/// followed (noted where it applies).
/// </summary>
/// <remarks>
/// The xAPIC page sits wherever the vCPU's IA32_APIC_BASE puts it (<see cref="MmioBase"/>): each vCPU's accesses
/// are matched against its own APIC's page before any other MMIO device (<see cref="TryReadMmio"/>), as KVM does,
/// so a relocated page leaves the old address to the rest of the address space.
/// </remarks>
public sealed partial class LocalApic : IInterruptController, IApicTarget
{
    public const ulong DefaultBase = 0xFEE0_0000;
    public const ulong PageSize = 0x1000;

    /// <summary>
    /// Version register: version 0x14 (an integrated APIC, the value KVM reports), max LVT entry 5 in bits
    /// 23:16 for the six LVTs modelled (timer, thermal, performance, LINT0, LINT1, error). Bit 24 (directed
    /// EOI / EOI-broadcast suppression) is clear, so SVR bit 12 is not writable and every EOI of a
    /// level-triggered vector is broadcast: QEMU's own APIC never reports it, and KVM reports it only when the
    /// I/O APIC is not in the kernel (a split irqchip, which QEMU's pc machine does not use by default).
    /// </summary>
    public const uint VersionValue = 0x0005_0014;

    /// <summary>Number of local vector table entries.</summary>
    public const int LvtCount = 6;

    /// <summary>LVT indices (register offset = 0x320 + 0x10·index).</summary>
    public const int LvtTimer = 0, LvtThermal = 1, LvtPerf = 2, LvtLint0 = 3, LvtLint1 = 4, LvtError = 5;

    // LVT and ICR fields (APM vol. 2 §16.4.1, Figure 16-7; §16.5, Figure 16-12).
    internal const uint VectorMask = 0xFF;
    internal const uint ModeMask = 0x700;
    internal const uint DestLogical = 1 << 11;
    internal const uint DeliveryStatus = 1 << 12;
    internal const uint Polarity = 1 << 13;
    internal const uint RemoteIrr = 1 << 14;
    internal const uint LevelAssert = 1 << 14;
    internal const uint TriggerLevel = 1 << 15;
    internal const uint Masked = 1 << 16;
    internal const int TimerModeShift = 17;
    internal const uint ExtIntLvt = (uint)ApicDeliveryMode.ExtInt << 8;

    /// <summary>Timer modes in LVT timer bits 18:17.</summary>
    internal const int TimerOneShot = 0, TimerPeriodic = 1, TimerTscDeadline = 2;

    // Spurious-interrupt vector register: vector 7:0, APIC software enable 8, focus-processor checking 9.
    internal const uint SvrEnable = 1 << 8;
    internal const uint SvrWritable = 0x3FF;

    // Error status bits (APM vol. 2 §16.4.6).
    public const uint EsrSendIllegalVector = 1 << 5;
    public const uint EsrReceiveIllegalVector = 1 << 6;

    private readonly ApicBus _bus;
    private readonly EventQueue _events;

    // 256-bit registers as eight 32-bit words, word i = vectors 32·i .. 32·i+31 (MMIO offset base + 0x10·i).
    private readonly uint[] _irr = new uint[8];
    private readonly uint[] _isr = new uint[8];
    private readonly uint[] _tmr = new uint[8];
    private readonly uint[] _lvt = new uint[LvtCount];
    private readonly bool[] _lintLevel = new bool[2];

    private int _highestIrr = -1;
    private int _highestIsr = -1;
    private byte _xapicId;
    private uint _ldr;
    private uint _dfr;
    private uint _svr;
    private uint _esr;
    private uint _esrPending;
    private uint _icrLow;
    private uint _icrHigh;
    private bool _extIntRequested;
    private bool _deliveringError;

    public LocalApic(Cpu.Cpu cpu, uint apicId, ApicBus bus, EventQueue events)
    {
        Cpu = cpu;
        InitialApicId = apicId;
        _bus = bus;
        _events = events;
        _timer = events.Create($"apic{apicId}.timer", TimerExpired);
        _xapicId = (byte)apicId;
        cpu.ApicId = (byte)apicId; // CPUID 1 EBX[31:24]: the initial APIC ID
        cpu.Apic = this;
        cpu.Interrupts = this;
        bus.Add(this);
        ResetRegisters();
    }

    public Cpu.Cpu Cpu { get; }

    /// <summary>The APIC ID given by the platform at reset; it is the x2APIC ID and the xAPIC ID after reset.</summary>
    public uint InitialApicId { get; }

    /// <summary>The ID this APIC answers to: the 32-bit x2APIC ID, or the (writable) 8-bit xAPIC ID.</summary>
    public uint ApicId => X2ApicMode ? InitialApicId : _xapicId;

    /// <summary>The PIC's INTR, seen through LINT0 in ExtINT mode (or directly while the APIC is disabled).</summary>
    public IExtIntSource? ExtInt { get; set; }

    public bool X2ApicMode => (Cpu.ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseExtd) != 0;

    public bool HardwareEnabled => (Cpu.ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseEnable) != 0;

    /// <summary>SVR bit 8: the APIC software enable.</summary>
    public bool SoftwareEnabled => (_svr & SvrEnable) != 0;

    public bool TakesFixedInterrupts => HardwareEnabled && SoftwareEnabled;

    /// <summary>Guest-physical address of the xAPIC page: IA32_APIC_BASE bits 51:12.</summary>
    public ulong MmioBase => Cpu.ApicBase & ~(PageSize - 1);

    /// <summary>
    /// Called when the guest first leaves the APIC's reset layout: an xAPIC ID other than the initial one, or the
    /// page enabled away from <see cref="DefaultBase"/>. The hypervisor's APIC virtualization assumes that layout
    /// (KVM inhibits APICv on these changes).
    /// </summary>
    public Action<LocalApic, ApicLayoutChange>? LayoutChanged { get; set; }

    // Counters (summed over vCPUs as apic.* in the machine's --stats).
    public ulong InterruptsAccepted;
    public ulong IpisSent;
    public ulong TimerFires;
    public ulong Eois;
    public ulong SpuriousInterrupts;
    public ulong SmisReceived;

    /// <summary>
    /// Processor priority (APM vol. 2 §16.6.4): the task priority, or the class of the highest in-service
    /// vector when that class is higher.
    /// </summary>
    public int ProcessorPriority
    {
        get
        {
            int tpr = Cpu.Tpr;
            int isrv = _highestIsr < 0 ? 0 : _highestIsr;
            return (tpr & 0xF0) >= (isrv & 0xF0) ? tpr : isrv & 0xF0;
        }
    }

    /// <summary>
    /// Arbitration priority (APM vol. 2 §16.6.3; Intel SDM vol. 3 §10.6.2.4): the TPR when it is at least the
    /// highest requested class and above the highest in-service class, otherwise the highest of the three
    /// classes. Lowest-priority delivery picks the APIC with the lowest value.
    /// </summary>
    public int ArbitrationPriority
    {
        get
        {
            int tpr = Cpu.Tpr;
            int isrv = (_highestIsr < 0 ? 0 : _highestIsr) & 0xF0;
            int irrv = (_highestIrr < 0 ? 0 : _highestIrr) & 0xF0;
            if ((tpr & 0xF0) >= irrv && (tpr & 0xF0) > isrv)
            {
                return tpr;
            }

            return Math.Max(tpr & 0xF0, Math.Max(isrv, irrv));
        }
    }

    /// <summary>Highest vector requested in the IRR, or -1.</summary>
    public int HighestRequested => _highestIrr;

    /// <summary>Highest vector in service in the ISR, or -1.</summary>
    public int HighestInService => _highestIsr;

    /// <summary>LINT0 is unmasked in ExtINT mode: the PIC's INTR reaches the processor through it.</summary>
    private bool Lint0RoutesPic => (_lvt[LvtLint0] & (Masked | ModeMask)) == ExtIntLvt;

    /// <summary>
    /// The PIC's INTR is deliverable: while the APIC is hardware-disabled the INTR pin goes to the core
    /// directly; otherwise through LINT0 in ExtINT mode, or once after an ExtINT message. ExtINT bypasses
    /// IRR/ISR and the priority check, and is taken ahead of APIC vectors (as KVM does).
    /// </summary>
    private bool ExtIntDeliverable =>
        ExtInt is { } pic && (_extIntRequested || ((!HardwareEnabled || Lint0RoutesPic) && pic.ExtIntPending));

    public bool HasPendingInterrupt
    {
        get
        {
            if (ExtIntDeliverable)
            {
                return true;
            }

            // A vector is delivered when its priority class is above the processor priority class
            // (APM vol. 2 §16.6.4).
            return _highestIrr >= 0 && HardwareEnabled && (_highestIrr & 0xF0) > ProcessorPriority;
        }
    }

    /// <summary>
    /// The interrupt-acknowledge cycle: an ExtINT goes to the PIC's INTA; otherwise the highest requested
    /// vector moves from IRR to ISR. When nothing deliverable is left the spurious vector (SVR[7:0]) is
    /// returned, and no ISR bit is set for it (APM vol. 2 §16.4.7).
    /// </summary>
    public int Acknowledge()
    {
        if (ExtIntDeliverable)
        {
            _extIntRequested = false;
            return ExtInt!.AcknowledgeExtInt();
        }

        if (!HardwareEnabled)
        {
            return -1;
        }

        int v = _highestIrr;
        if (v < 0 || (v & 0xF0) <= ProcessorPriority)
        {
            SpuriousInterrupts++;
            return (int)(_svr & VectorMask);
        }

        ClearBit(_irr, v);
        _highestIrr = Highest(_irr);
        SetBit(_isr, v);
        if (v > _highestIsr)
        {
            _highestIsr = v;
        }

        return v;
    }

    /// <summary>
    /// Logical destination match (APM vol. 2 §16.6.2): the broadcast address matches every APIC; in the flat
    /// model any common bit of the 8-bit logical ID; in the cluster model the same cluster (bits 7:4) and a
    /// common bit in 3:0; in x2APIC mode the same cluster (bits 31:16) and a common bit in 15:0.
    /// </summary>
    public bool MatchesLogical(uint destination)
    {
        if (X2ApicMode)
        {
            if (destination == 0xFFFF_FFFF)
            {
                return true;
            }

            uint ldr = X2ApicLdr;
            return (ldr >> 16) == (destination >> 16) && (ldr & destination & 0xFFFF) != 0;
        }

        destination &= 0xFF;
        if (destination == 0xFF)
        {
            return true;
        }

        uint id = _ldr >> 24;
        return (_dfr >> 28) switch
        {
            0xF => (id & destination) != 0,
            0x0 => (id >> 4) == (destination >> 4) && (id & destination & 0xF) != 0,
            _ => false,
        };
    }

    /// <summary>The x2APIC logical ID, derived from the x2APIC ID: cluster = ID[31:4], bit = 1 &lt;&lt; ID[3:0].</summary>
    private uint X2ApicLdr => ((InitialApicId >> 4) << 16) | (1u << (int)(InitialApicId & 0xF));

    /// <summary>
    /// Takes a message from the bus. A hardware-disabled APIC takes nothing (as KVM); a software-disabled one
    /// drops fixed and lowest-priority interrupts but still takes NMI, SMI, INIT and Startup
    /// (APM vol. 2 §16.4.7).
    /// </summary>
    public void Accept(in ApicMessage message)
    {
        if (!HardwareEnabled)
        {
            return;
        }

        switch (message.Mode)
        {
            case ApicDeliveryMode.Fixed:
            case ApicDeliveryMode.LowestPriority:
                // A level-triggered de-assert message carries no interrupt.
                if ((message.LevelTriggered && !message.Assert) || !SoftwareEnabled)
                {
                    return;
                }

                AcceptFixed(message.Vector, message.LevelTriggered);
                break;
            case ApicDeliveryMode.Smi:
                // Counted, and handed to the vCPU, which has no SMM: only an SMI intercept makes it visible.
                SmisReceived++;
                Cpu.RaiseSmi();
                break;
            case ApicDeliveryMode.Nmi:
                Cpu.RaiseNmi();
                break;
            case ApicDeliveryMode.Init:
                // INIT level de-assert (trigger = level, level = 0) only synchronises arbitration IDs on old
                // parts; it does not reset the processor.
                if (message.LevelTriggered && !message.Assert)
                {
                    return;
                }

                Cpu.Init();
                break;
            case ApicDeliveryMode.StartUp:
                Cpu.StartUp(message.Vector);
                break;
            case ApicDeliveryMode.ExtInt:
                // The vector comes from one INTA cycle of the 8259 (Intel SDM vol. 3 §10.11.2, delivery mode
                // 111b), whatever LINT0 says; with nothing pending there it answers IR7 (spurious).
                _extIntRequested = true;
                Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
                break;
        }
    }

    /// <summary>
    /// Accepts a fixed interrupt into the IRR; TMR records the trigger mode (Intel SDM vol. 3 §10.8.4).
    /// Vectors 0–15 are illegal: the interrupt is dropped and ESR "received illegal vector" set.
    /// </summary>
    private void AcceptFixed(byte vector, bool level)
    {
        if (vector < 16)
        {
            SetError(EsrReceiveIllegalVector);
            return;
        }

        InterruptsAccepted++;
        SetBit(_irr, vector);
        if (level)
        {
            SetBit(_tmr, vector);
        }
        else
        {
            ClearBit(_tmr, vector);
        }

        if (vector > _highestIrr)
        {
            _highestIrr = vector;
        }

        // The target vCPU re-evaluates its pending interrupts at its next instruction boundary.
        Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
    }

    /// <summary>
    /// EOI (APM vol. 2 §16.4.8): retires the highest in-service vector. A level-triggered vector (TMR set) is
    /// broadcast to the I/O APIC, and clears the remote IRR of a level-triggered LINT with that vector.
    /// </summary>
    private void Eoi()
    {
        int v = _highestIsr;
        if (v < 0)
        {
            return;
        }

        Eois++;
        ClearBit(_isr, v);
        _highestIsr = Highest(_isr);
        if (TestBit(_tmr, v))
        {
            LintEoi(v);
            _bus.BroadcastEoi((byte)v);
        }

        Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
    }

    /// <summary>
    /// Latches an error (APM vol. 2 §16.4.6): it becomes visible in ESR after the next ESR write, and an
    /// unmasked error LVT raises its interrupt.
    /// </summary>
    private void SetError(uint bits)
    {
        _esrPending |= bits;
        if (!_deliveringError)
        {
            // An illegal vector in the error LVT itself would recurse: deliver it once.
            _deliveringError = true;
            DeliverLocal(LvtError);
            _deliveringError = false;
        }
    }

    /// <summary>Delivers a local interrupt source through its LVT entry, unless masked.</summary>
    private void DeliverLocal(int index)
    {
        uint lvt = _lvt[index];
        if (!HardwareEnabled || (lvt & Masked) != 0)
        {
            return;
        }

        // The timer and error LVTs have no delivery-mode field: they are always fixed.
        var mode = index is LvtTimer or LvtError ? ApicDeliveryMode.Fixed : (ApicDeliveryMode)((lvt >> 8) & 7);
        switch (mode)
        {
            case ApicDeliveryMode.Fixed:
                AcceptFixed((byte)lvt, index is LvtLint0 or LvtLint1 && (lvt & TriggerLevel) != 0);
                break;
            case ApicDeliveryMode.Smi:
                SmisReceived++;
                Cpu.RaiseSmi();
                break;
            case ApicDeliveryMode.Nmi:
                Cpu.RaiseNmi();
                break;
            case ApicDeliveryMode.Init when index is LvtLint0 or LvtLint1:
                Cpu.Init();
                break;
        }
    }

    /// <summary>
    /// The LINT0/LINT1 input pins. While the APIC is hardware-disabled LINT1 is the processor's NMI pin
    /// (and LINT0 its INTR pin, which <see cref="ExtInt"/> models). Enabled, the LVT entry decides: NMI, SMI and
    /// INIT are edge-triggered; a fixed entry is edge- or level-triggered (level: remote IRR set on
    /// acceptance, cleared by the EOI, and the interrupt is taken again while the pin stays active).
    /// </summary>
    public void SetLint(int pin, bool level)
    {
        if (pin is < 0 or > 1)
        {
            return;
        }

        bool was = _lintLevel[pin];
        _lintLevel[pin] = level;
        if (!HardwareEnabled)
        {
            if (pin == 1 && level && !was)
            {
                Cpu.RaiseNmi();
            }

            return;
        }

        int index = LvtLint0 + pin;
        uint lvt = _lvt[index];
        if ((lvt & Masked) != 0 || (lvt & ModeMask) == ExtIntLvt)
        {
            return;
        }

        bool activeLow = (lvt & Polarity) != 0;
        bool active = level != activeLow;
        bool wasActive = was != activeLow;
        if ((lvt & ModeMask) == 0 && (lvt & TriggerLevel) != 0)
        {
            LintLevelDeliver(index);
        }
        else if (active && !wasActive)
        {
            DeliverLocal(index);
        }
    }

    /// <summary>Level-triggered fixed LINT: delivers while the pin is active and no earlier delivery awaits its EOI.</summary>
    private void LintLevelDeliver(int index)
    {
        uint lvt = _lvt[index];
        bool active = _lintLevel[index - LvtLint0] != ((lvt & Polarity) != 0);
        if (active && (lvt & (RemoteIrr | Masked)) == 0)
        {
            _lvt[index] = lvt | RemoteIrr;
            DeliverLocal(index);
        }
    }

    private void LintEoi(int vector)
    {
        for (int index = LvtLint0; index <= LvtLint1; index++)
        {
            uint lvt = _lvt[index];
            if ((lvt & RemoteIrr) != 0 && (lvt & VectorMask) == (uint)vector)
            {
                _lvt[index] = lvt & ~RemoteIrr;
                LintLevelDeliver(index);
            }
        }
    }

    /// <summary>
    /// IA32_APIC_BASE is changing from <paramref name="old"/> to <paramref name="value"/> (reserved bits already
    /// checked). False refuses an invalid transition (#GP), per Intel SDM vol. 3 §10.12.5 "x2APIC state
    /// transitions" (AMD follows it): EXTD without EN, disabled → x2APIC, and x2APIC → xAPIC are invalid.
    /// Clearing EN puts the APIC in its reset state; setting EN again gives back the initial xAPIC ID (as KVM).
    /// </summary>
    public bool ApicBaseChanging(ulong old, ulong value)
    {
        const ulong en = Emulator.Core.Cpu.Cpu.ApicBaseEnable, extd = Emulator.Core.Cpu.Cpu.ApicBaseExtd;
        bool oldEn = (old & en) != 0, oldX2 = (old & extd) != 0;
        bool newEn = (value & en) != 0, newX2 = (value & extd) != 0;
        if (newX2 && !newEn)
        {
            return false;
        }

        if ((!oldEn && newX2) || (oldX2 && newEn && !newX2))
        {
            return false;
        }

        if (oldEn && !newEn)
        {
            ResetRegisters();
        }
        else if (!oldEn && newEn)
        {
            _xapicId = (byte)InitialApicId;
        }

        if (newEn && (value & ~(PageSize - 1)) != DefaultBase)
        {
            LayoutChanged?.Invoke(this, ApicLayoutChange.BaseModified);
        }

        // A change of mode or enable can make the PIC's INTR (or an IRR vector) deliverable or not.
        Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
        return true;
    }

    /// <summary>INIT: every register back to its reset value except the APIC ID and IA32_APIC_BASE.</summary>
    public void Reset() => ResetRegisters();

    /// <summary>
    /// Register reset values (Intel SDM vol. 3 §10.4.7.1 / §10.12.5.1; APM vol. 2 §16.3.2): IRR, ISR, TMR, ICR,
    /// LDR, TPR, ESR, timer counts and divide configuration zero; every LVT masked; DFR all ones; SVR 0xFF
    /// (software-disabled). As QEMU and KVM do on the pc machine, the LINT0 entry of the APIC with ID 0 comes
    /// out of reset as ExtINT, unmasked, so the 8259's interrupts reach the bootstrap processor.
    /// </summary>
    private void ResetRegisters()
    {
        Array.Clear(_irr);
        Array.Clear(_isr);
        Array.Clear(_tmr);
        _highestIrr = -1;
        _highestIsr = -1;
        for (int i = 0; i < LvtCount; i++)
        {
            _lvt[i] = Masked;
        }

        if (InitialApicId == 0)
        {
            _lvt[LvtLint0] = ExtIntLvt;
        }

        _ldr = 0;
        _dfr = 0xFFFF_FFFF;
        _svr = 0xFF;
        _esr = 0;
        _esrPending = 0;
        _icrLow = 0;
        _icrHigh = 0;
        _extIntRequested = false;
        Cpu.Tpr = 0;
        ResetTimer();
    }

    private static void SetBit(uint[] reg, int v) => reg[v >> 5] |= 1u << (v & 31);

    private static void ClearBit(uint[] reg, int v) => reg[v >> 5] &= ~(1u << (v & 31));

    private static bool TestBit(uint[] reg, int v) => (reg[v >> 5] & (1u << (v & 31))) != 0;

    private static int Highest(uint[] reg)
    {
        for (int i = reg.Length - 1; i >= 0; i--)
        {
            if (reg[i] != 0)
            {
                return (i << 5) + 31 - BitOperations.LeadingZeroCount(reg[i]);
            }
        }

        return -1;
    }
}

/// <summary>How the guest moved its local APIC away from the reset layout (see <see cref="LocalApic.LayoutChanged"/>).</summary>
public enum ApicLayoutChange
{
    /// <summary>The xAPIC ID was written with a value other than the initial APIC ID.</summary>
    IdModified,

    /// <summary>IA32_APIC_BASE enabled the APIC at a page other than 0xFEE00000.</summary>
    BaseModified,
}
