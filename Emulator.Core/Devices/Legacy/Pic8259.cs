namespace Emulator.Core.Devices.Legacy;

/// <summary>
/// The cascaded 8259A pair of the PC: master at 0x20/0x21, slave at 0xA0/0xA1 on master input 2, and the
/// edge/level control registers (ELCR) at 0x4D0/0x4D1 as QEMU's pc machine has them. ISA IRQ n is input
/// n (0–7 master, 8–15 slave). The master's INTR and INTA are what the BSP's local APIC sees on LINT0.
/// Programming model: Intel 8259A data sheet (ICW1–ICW4, OCW1–OCW3, poll, rotation, special mask).
/// </summary>
public sealed class Pic8259 : IIrqSink, IExtIntSource
{
    public const ushort MasterBase = 0x20;
    public const ushort SlaveBase = 0xA0;
    public const ushort ElcrBase = 0x4D0;

    /// <summary>Master input the slave's INTR is wired to.</summary>
    public const int CascadeLine = 2;

    private readonly Chip _master = new(elcrMask: 0xF8);
    private readonly Chip _slave = new(elcrMask: 0xDE);

    /// <summary>
    /// An in-service bit was cleared (an EOI, or the automatic EOI of an INTA), with its ISA IRQ (slave inputs are
    /// 8–15): L0's acknowledgement notice, which the PIT's reinjection counts.
    /// </summary>
    public Action<int>? Acked { get; set; }

    public Pic8259()
    {
        MasterPorts = new ChipPorts(this, _master);
        SlavePorts = new ChipPorts(this, _slave);
        ElcrPorts = new Elcr(this);
        _master.IsrCleared = ir => Acked?.Invoke(ir);
        _slave.IsrCleared = ir => Acked?.Invoke(8 + ir);
    }

    /// <summary>Ports 0x20–0x21.</summary>
    public IPortDevice MasterPorts { get; }

    /// <summary>Ports 0xA0–0xA1.</summary>
    public IPortDevice SlavePorts { get; }

    /// <summary>Ports 0x4D0–0x4D1: one bit per IRQ, 1 = level-triggered (QEMU's PIIX ELCR).</summary>
    public IPortDevice ElcrPorts { get; }

    /// <summary>INTA cycles that returned a real request.</summary>
    public ulong Acknowledges { get; private set; }

    /// <summary>INTA cycles that found the request gone and returned IRQ 7 or 15.</summary>
    public ulong SpuriousInterrupts { get; private set; }

    public bool ExtIntPending => _master.Resolve(isMaster: true) >= 0;

    /// <summary>
    /// Called when the master's INTR output rises, so the vCPUs look at it at their next instruction boundary
    /// (a port write that raises an IRQ is followed by the interrupt, not by the rest of the code block).
    /// </summary>
    public Action? IntrRaised { get; set; }

    private bool _intr;

    /// <summary>Tracks INTR after any change of requests, masks or in-service state; signals a rising edge.</summary>
    private void UpdateIntr()
    {
        bool intr = ExtIntPending;
        if (intr && !_intr)
        {
            IntrRaised?.Invoke();
        }

        _intr = intr;
    }

    public void Attach(IoBus io)
    {
        io.Register(MasterBase, 2, MasterPorts);
        io.Register(SlaveBase, 2, SlavePorts);
        io.Register(ElcrBase, 2, ElcrPorts);
    }

    /// <summary>Drives IRQ input <paramref name="line"/> (0–15).</summary>
    public void SetIrq(int line, bool level)
    {
        if ((uint)line >= 16)
        {
            return;
        }

        if (line < 8)
        {
            _master.SetInput(line, level);
        }
        else
        {
            _slave.SetInput(line - 8, level);
            UpdateCascade();
        }

        UpdateIntr();
    }

    /// <summary>
    /// INTA: the master resolves its highest-priority request; on the cascade input the slave supplies the
    /// vector. A request that went away before the INTA yields IRQ 7 of the chip that lost it, without an
    /// in-service bit on that chip (8259A data sheet, "Interrupt Sequence"); the master still marks IR2 in
    /// service when it was the slave's request that vanished, as the hardware does.
    /// </summary>
    public int AcknowledgeExtInt()
    {
        int irq = _master.Resolve(isMaster: true);
        int vector;
        if (irq < 0)
        {
            SpuriousInterrupts++;
            return _master.VectorBase + 7;
        }

        if (irq == CascadeLine)
        {
            int slaveIrq = _slave.Resolve(isMaster: false);
            if (slaveIrq >= 0)
            {
                _slave.Acknowledge(slaveIrq);
                vector = _slave.VectorBase + slaveIrq;
                Acknowledges++;
            }
            else
            {
                vector = _slave.VectorBase + 7;
                SpuriousInterrupts++;
            }
        }
        else
        {
            vector = _master.VectorBase + irq;
            Acknowledges++;
        }

        _master.Acknowledge(irq);
        UpdateCascade();
        UpdateIntr();
        return vector;
    }

    /// <summary>Counters for <c>--stats</c>.</summary>
    public IReadOnlyList<(string Name, ulong Value)> Counters() =>
    [
        ("irq.pic.acks", Acknowledges),
        ("irq.pic.spurious", SpuriousInterrupts),
    ];

    /// <summary>
    /// The slave's INTR reaches master IR2. The master latches it like an edge (it stays requested after the
    /// slave's request goes away, which is what makes a spurious IRQ 15 possible) but is also re-requested
    /// whenever the slave still asserts INTR, so a second slave request is never lost behind the first.
    /// </summary>
    private void UpdateCascade()
    {
        bool intr = _slave.Resolve(isMaster: false) >= 0;
        if (_master.IsLevelTriggered(CascadeLine))
        {
            _master.SetInput(CascadeLine, intr);
        }
        else if (intr)
        {
            _master.Irr |= 1 << CascadeLine;
        }
    }

    private sealed class Chip(byte elcrMask)
    {
        /// <summary>Interrupt request, in-service and mask registers.</summary>
        public byte Irr, Isr, Imr;

        /// <summary>Input levels as last driven (edge detection and level-mode IRR).</summary>
        public byte Inputs;

        /// <summary>ELCR bits (level-triggered inputs); bits outside <see cref="ElcrMask"/> are fixed at 0.</summary>
        public byte Elcr;

        public readonly byte ElcrMask = elcrMask;

        /// <summary>ICW2: vector of IR0 (bits 7:3; IR number in bits 2:0).</summary>
        public byte VectorBase;

        /// <summary>The input with the highest priority (0 after ICW1; rotation moves it).</summary>
        public int HighestPriority;

        /// <summary>ICW1 LTIM: every input level-triggered.</summary>
        public bool LevelMode;

        public bool SingleMode, NeedIcw4, AutoEoi, RotateOnAutoEoi, SpecialFullyNested, SpecialMask;

        /// <summary>Called with the input whose in-service bit an EOI or an automatic EOI cleared.</summary>
        public Action<int>? IsrCleared;

        /// <summary>OCW3 RR/RIS: a read of the command port returns ISR instead of IRR.</summary>
        public bool ReadIsr;

        /// <summary>OCW3 P: the next read of the command port is a poll.</summary>
        public bool Poll;

        /// <summary>Next initialization word expected on the data port: 2, 3 or 4; 0 = initialized (OCW1).</summary>
        public int InitStep;

        public byte Icw3;

        public bool IsLevelTriggered(int ir) => LevelMode || (Elcr & (1 << ir)) != 0;

        public void SetInput(int ir, bool level)
        {
            byte bit = (byte)(1 << ir);
            bool was = (Inputs & bit) != 0;
            if (level)
            {
                Inputs |= bit;
            }
            else
            {
                Inputs = (byte)(Inputs & ~bit);
            }

            if (IsLevelTriggered(ir))
            {
                // Level mode: the request follows the input (data sheet, "Level Triggered Mode").
                Irr = level ? (byte)(Irr | bit) : (byte)(Irr & ~bit);
            }
            else if (level && !was)
            {
                // Edge mode: latched on the rising edge, cleared only by the INTA that services it.
                Irr |= bit;
            }
        }

        /// <summary>Priority rank of input <paramref name="ir"/>: 0 is the highest.</summary>
        private int Rank(int ir) => (ir - HighestPriority) & 7;

        /// <summary>The highest-priority input set in <paramref name="bits"/>, or -1.</summary>
        public int HighestIn(int bits)
        {
            if (bits == 0)
            {
                return -1;
            }

            for (int i = 0; i < 8; i++)
            {
                int ir = (HighestPriority + i) & 7;
                if ((bits & (1 << ir)) != 0)
                {
                    return ir;
                }
            }

            return -1;
        }

        /// <summary>
        /// The request INTR would present: the highest-priority unmasked request that outranks everything in
        /// service. In special mask mode masked in-service levels do not block; in special fully nested mode
        /// the master's cascade input in service does not block further slave requests.
        /// </summary>
        public int Resolve(bool isMaster)
        {
            int irq = HighestIn(Irr & ~Imr);
            if (irq < 0)
            {
                return -1;
            }

            int inService = Isr;
            if (SpecialMask)
            {
                inService &= ~Imr;
            }

            if (SpecialFullyNested && isMaster)
            {
                inService &= ~(1 << CascadeLine);
            }

            int current = HighestIn(inService);
            return current < 0 || Rank(irq) < Rank(current) ? irq : -1;
        }

        /// <summary>INTA (or poll) for input <paramref name="ir"/>: IRR → ISR, or auto-EOI.</summary>
        public void Acknowledge(int ir)
        {
            byte bit = (byte)(1 << ir);
            if (!IsLevelTriggered(ir))
            {
                Irr = (byte)(Irr & ~bit);
            }

            if (AutoEoi)
            {
                if (RotateOnAutoEoi)
                {
                    HighestPriority = (ir + 1) & 7;
                }

                IsrCleared?.Invoke(ir);
            }
            else
            {
                Isr |= bit;
            }
        }

        /// <summary>ICW1: starts the initialization sequence and resets the chip (data sheet, "Initialization Command Words").</summary>
        public void Icw1(byte value)
        {
            NeedIcw4 = (value & 0x01) != 0;
            SingleMode = (value & 0x02) != 0;
            LevelMode = (value & 0x08) != 0;
            Imr = 0;

            // What the reset drops without an EOI is acknowledged all the same (KVM's PIC reset does so for its
            // edge requests), so whoever waits for an acknowledgement, as the PIT's reinjection does, is not left
            // waiting for ever.
            int dropped = Isr | Irr;
            Isr = 0;
            for (int ir = 0; ir < 8; ir++)
            {
                if ((dropped & (1 << ir)) != 0 && !IsLevelTriggered(ir))
                {
                    IsrCleared?.Invoke(ir);
                }
            }

            // The edge sense latch is reset: an input must go low and high again to request. Level-mode
            // requests keep following their inputs.
            Irr = 0;
            for (int ir = 0; ir < 8; ir++)
            {
                if (IsLevelTriggered(ir) && (Inputs & (1 << ir)) != 0)
                {
                    Irr |= (byte)(1 << ir);
                }
            }

            HighestPriority = 0;
            SpecialMask = false;
            ReadIsr = false;
            Poll = false;
            if (!NeedIcw4)
            {
                AutoEoi = false;
                SpecialFullyNested = false;
            }

            RotateOnAutoEoi = false;
            InitStep = 2;
        }

        public void WriteData(byte value)
        {
            switch (InitStep)
            {
                case 2:
                    VectorBase = (byte)(value & 0xF8);
                    InitStep = !SingleMode ? 3 : NeedIcw4 ? 4 : 0;
                    break;
                case 3:
                    Icw3 = value;
                    InitStep = NeedIcw4 ? 4 : 0;
                    break;
                case 4:
                    // ICW4: bit 1 AEOI, bit 4 SFNM; bit 0 (8086 mode) is assumed, buffered mode is irrelevant.
                    AutoEoi = (value & 0x02) != 0;
                    SpecialFullyNested = (value & 0x10) != 0;
                    InitStep = 0;
                    break;
                default:
                    Imr = value; // OCW1
                    break;
            }
        }

        /// <summary>OCW2: EOI and rotation commands (R, SL, EOI in bits 7:5; level in bits 2:0).</summary>
        public void Ocw2(byte value)
        {
            int level = value & 7;
            switch (value >> 5)
            {
                case 0: // rotate in automatic EOI mode: clear
                    RotateOnAutoEoi = false;
                    break;
                case 4: // rotate in automatic EOI mode: set
                    RotateOnAutoEoi = true;
                    break;
                case 1: // non-specific EOI
                case 5: // rotate on non-specific EOI
                    int ir = HighestIn(Isr);
                    if (ir >= 0)
                    {
                        ClearIsr(ir);
                        if (value >> 5 == 5)
                        {
                            HighestPriority = (ir + 1) & 7;
                        }
                    }

                    break;
                case 3: // specific EOI
                    ClearIsr(level);
                    break;
                case 7: // rotate on specific EOI
                    ClearIsr(level);
                    HighestPriority = (level + 1) & 7;
                    break;
                case 6: // set priority: the named level becomes the lowest
                    HighestPriority = (level + 1) & 7;
                    break;
            }
        }

        private void ClearIsr(int ir)
        {
            bool was = (Isr & (1 << ir)) != 0;
            Isr = (byte)(Isr & ~(1 << ir));
            if (was)
            {
                IsrCleared?.Invoke(ir);
            }
        }

        /// <summary>OCW3: poll, register read select, special mask mode.</summary>
        public void Ocw3(byte value)
        {
            if ((value & 0x04) != 0)
            {
                Poll = true;
            }

            if ((value & 0x02) != 0)
            {
                ReadIsr = (value & 0x01) != 0;
            }

            if ((value & 0x40) != 0)
            {
                SpecialMask = (value & 0x20) != 0;
            }
        }
    }

    private void WriteByte(Chip chip, int offset, byte value)
    {
        if (offset == 0)
        {
            if ((value & 0x10) != 0)
            {
                chip.Icw1(value);
            }
            else if ((value & 0x08) != 0)
            {
                chip.Ocw3(value);
            }
            else
            {
                chip.Ocw2(value);
            }
        }
        else
        {
            chip.WriteData(value);
        }

        UpdateCascade();
        UpdateIntr();
    }

    private byte ReadByte(Chip chip, int offset)
    {
        if (offset != 0)
        {
            return chip.Imr;
        }

        if (chip.Poll)
        {
            // Poll command: the read is the INTA; bit 7 says whether a request was pending, bits 2:0 which.
            chip.Poll = false;
            int irq = chip.Resolve(ReferenceEquals(chip, _master));
            if (irq < 0)
            {
                return 0;
            }

            chip.Acknowledge(irq);
            UpdateCascade();
            UpdateIntr();
            return (byte)(0x80 | irq);
        }

        return chip.ReadIsr ? chip.Isr : chip.Irr;
    }

    /// <summary>Wider accesses are split into consecutive byte ports, as on the ISA bus.</summary>
    private sealed class ChipPorts(Pic8259 pic, Chip chip) : IPortDevice
    {
        public uint In(ushort offset, int size)
        {
            uint value = 0;
            for (int i = 0; i < size; i++)
            {
                int port = offset + i;
                uint b = port < 2 ? pic.ReadByte(chip, port) : 0xFFu;
                value |= b << (8 * i);
            }

            return value;
        }

        public void Out(ushort offset, int size, uint value)
        {
            for (int i = 0; i < size && offset + i < 2; i++)
            {
                pic.WriteByte(chip, offset + i, (byte)(value >> (8 * i)));
            }
        }
    }

    private sealed class Elcr(Pic8259 pic) : IPortDevice
    {
        public uint In(ushort offset, int size)
        {
            uint value = 0;
            for (int i = 0; i < size; i++)
            {
                int port = offset + i;
                uint b = port switch { 0 => pic._master.Elcr, 1 => pic._slave.Elcr, _ => 0xFFu };
                value |= b << (8 * i);
            }

            return value;
        }

        public void Out(ushort offset, int size, uint value)
        {
            for (int i = 0; i < size && offset + i < 2; i++)
            {
                var chip = offset + i == 0 ? pic._master : pic._slave;
                chip.Elcr = (byte)((value >> (8 * i)) & chip.ElcrMask);

                // A line switched to level mode requests as long as it is high.
                for (int ir = 0; ir < 8; ir++)
                {
                    if (chip.IsLevelTriggered(ir))
                    {
                        chip.SetInput(ir, (chip.Inputs & (1 << ir)) != 0);
                    }
                }
            }

            pic.UpdateCascade();
            pic.UpdateIntr();
        }
    }
}
