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

    // State without an xAPIC offset; the registers themselves are in the register page (LocalApic.Page.cs).
    private readonly bool[] _lintLevel = new bool[2];

    // Derived from the page's IRR and ISR (rebuilt by RescanIrr).
    private int _highestIrr = -1;
    private int _highestIsr = -1;
    private uint _esrPending;
    private bool _extIntRequested;
    private bool _deliveringError;

    public LocalApic(Cpu.Cpu cpu, uint apicId, ApicBus bus, EventQueue events)
    {
        Cpu = cpu;
        InitialApicId = apicId;
        _bus = bus;
        _events = events;
        AllocatePage();
        _timer = events.Create($"apic{apicId}.timer", TimerExpired);
        cpu.ApicId = (byte)apicId; // CPUID 1 EBX[31:24]: the initial APIC ID
        cpu.Apic = this;
        cpu.Interrupts = this;
        bus.Add(this);
        Set(ApicReg.Id, apicId << 24);
        Set(ApicReg.Version, VersionValue);
        ResetRegisters(x2: false);
    }

    public Cpu.Cpu Cpu { get; }

    /// <summary>The APIC ID given by the platform at reset; it is the x2APIC ID and the xAPIC ID after reset.</summary>
    public uint InitialApicId { get; }

    /// <summary>The ID this APIC answers to: the 32-bit x2APIC ID, or the (writable) 8-bit xAPIC ID.</summary>
    public uint ApicId => X2ApicMode ? Reg(ApicReg.Id) : Reg(ApicReg.Id) >> 24;

    /// <summary>The PIC's INTR, seen through LINT0 in ExtINT mode (or directly while the APIC is disabled).</summary>
    public IExtIntSource? ExtInt { get; set; }

    public bool X2ApicMode => (Cpu.ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseExtd) != 0;

    public bool HardwareEnabled => (Cpu.ApicBase & Emulator.Core.Cpu.Cpu.ApicBaseEnable) != 0;

    /// <summary>SVR bit 8: the APIC software enable.</summary>
    public bool SoftwareEnabled => (Reg(ApicReg.Svr) & SvrEnable) != 0;

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
    /// Processor priority (APM vol. 2 §16.6.4): PPR in the page, kept current as TPR and ISR change
    /// (see <see cref="UpdatePriorities"/>).
    /// </summary>
    public int ProcessorPriority => (int)Reg(ApicReg.Ppr);

    /// <summary>
    /// Arbitration priority (APM vol. 2 §16.6.3): APR in the page, kept current as TPR, ISR and IRR change.
    /// Lowest-priority delivery picks the APIC with the lowest value.
    /// </summary>
    public int ArbitrationPriority => (int)Reg(ApicReg.Apr);

    /// <summary>Highest vector requested in the IRR, or -1.</summary>
    public int HighestRequested => _highestIrr;

    /// <summary>Highest vector in service in the ISR, or -1.</summary>
    public int HighestInService => _highestIsr;

    /// <summary>LINT0 is unmasked in ExtINT mode: the PIC's INTR reaches the processor through it.</summary>
    private bool Lint0RoutesPic => (Lvt(LvtLint0) & (Masked | ModeMask)) == ExtIntLvt;

    /// <summary>LVT entry <paramref name="index"/> (offset 0x320 + 0x10·index).</summary>
    private uint Lvt(int index) => Reg(ApicReg.LvtTimer + (index << 4));

    private void SetLvt(int index, uint value) => Set(ApicReg.LvtTimer + (index << 4), value);

    /// <summary>
    /// The PIC's INTR is deliverable: while the APIC is hardware-disabled the INTR pin goes to the core
    /// directly; otherwise through LINT0 in ExtINT mode, or once after an ExtINT message. ExtINT bypasses
    /// IRR/ISR and the priority check, and is taken ahead of APIC vectors (as KVM does).
    /// </summary>
    private bool ExtIntDeliverable =>
        ExtInt is { } pic && (_extIntRequested || ((!HardwareEnabled || Lint0RoutesPic) && pic.ExtIntPending));

    /// <summary>The next interrupt is the PIC's ExtINT (not an APIC vector from IRR).</summary>
    public bool ExtIntNext => ExtIntDeliverable;

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
            return (int)(Reg(ApicReg.Svr) & VectorMask);
        }

        ClearBit(ApicReg.Irr, v);
        _highestIrr = Highest(ApicReg.Irr);
        SetBit(ApicReg.Isr, v);
        if (v > _highestIsr)
        {
            _highestIsr = v;
        }

        UpdatePriorities();
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

            uint ldr = Reg(ApicReg.Ldr);
            return (ldr >> 16) == (destination >> 16) && (ldr & destination & 0xFFFF) != 0;
        }

        destination &= 0xFF;
        if (destination == 0xFF)
        {
            return true;
        }

        uint id = Reg(ApicReg.Ldr) >> 24;
        return (Reg(ApicReg.Dfr) >> 28) switch
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
        SetBit(ApicReg.Irr, vector);
        if (level)
        {
            SetBit(ApicReg.Tmr, vector);
        }
        else
        {
            ClearBit(ApicReg.Tmr, vector);
        }

        if (vector > _highestIrr)
        {
            _highestIrr = vector;
            UpdatePriorities();
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
        ClearBit(ApicReg.Isr, v);
        _highestIsr = Highest(ApicReg.Isr);
        UpdatePriorities();
        if (TestBit(ApicReg.Tmr, v))
        {
            LintEoi(v);
            _bus.BroadcastEoi((byte)v);
        }

        _bus.NotifyAck((byte)v);
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
        uint lvt = Lvt(index);
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
        uint lvt = Lvt(index);
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
        uint lvt = Lvt(index);
        bool active = _lintLevel[index - LvtLint0] != ((lvt & Polarity) != 0);
        if (active && (lvt & (RemoteIrr | Masked)) == 0)
        {
            SetLvt(index, lvt | RemoteIrr);
            DeliverLocal(index);
        }
    }

    private void LintEoi(int vector)
    {
        for (int index = LvtLint0; index <= LvtLint1; index++)
        {
            uint lvt = Lvt(index);
            if ((lvt & RemoteIrr) != 0 && (lvt & VectorMask) == (uint)vector)
            {
                SetLvt(index, lvt & ~RemoteIrr);
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
            ResetRegisters(x2: false);
            if (oldX2)
            {
                // Back to the xAPIC layout (unobservable while disabled; enabling sets it again below).
                Set(ApicReg.Id, InitialApicId << 24);
            }
        }
        else if (!oldEn && newEn)
        {
            Set(ApicReg.Id, InitialApicId << 24);
        }

        if (newX2 && !oldX2)
        {
            // x2APIC mode: ID is the full 32-bit x2APIC ID and LDR the logical ID derived from it, both read-only;
            // KVM stores them in its register page in that form when the mode is entered.
            Set(ApicReg.Id, InitialApicId);
            Set(ApicReg.Ldr, X2ApicLdr);
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
    public void Reset() => ResetRegisters(X2ApicMode);

    /// <summary>
    /// Register reset values (Intel SDM vol. 3 §10.4.7.1 / §10.12.5.1; APM vol. 2 §16.3.2): IRR, ISR, TMR, ICR,
    /// LDR, TPR, ESR, timer counts and divide configuration zero; every LVT masked; DFR all ones; SVR 0xFF
    /// (software-disabled). As QEMU and KVM do on the pc machine, the LINT0 entry of the APIC with ID 0 comes
    /// out of reset as ExtINT, unmasked, so the 8259's interrupts reach the bootstrap processor. In x2APIC mode
    /// (<paramref name="x2"/>) the LDR keeps the logical ID derived from the x2APIC ID.
    /// </summary>
    private void ResetRegisters(bool x2)
    {
        ClearBank(ApicReg.Irr);
        ClearBank(ApicReg.Isr);
        ClearBank(ApicReg.Tmr);
        _highestIrr = -1;
        _highestIsr = -1;
        for (int i = 0; i < LvtCount; i++)
        {
            SetLvt(i, Masked);
        }

        if (InitialApicId == 0)
        {
            SetLvt(LvtLint0, ExtIntLvt);
        }

        Set(ApicReg.Ldr, x2 ? X2ApicLdr : 0);
        Set(ApicReg.Dfr, 0xFFFF_FFFF);
        Set(ApicReg.Svr, 0xFF);
        Set(ApicReg.Esr, 0);
        _esrPending = 0;
        Set(ApicReg.IcrLow, 0);
        Set(ApicReg.IcrHigh, 0);
        _extIntRequested = false;
        // Through the CPU: TPR is the page's, and the CPU asks for an interrupt evaluation (PPR/APR follow).
        Cpu.Tpr = 0;
        ResetTimer();
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
