using Emulator.Core.Cpu;
using Emulator.Core.Devices.Apic;
using Emulator.Core.Devices.Legacy;
using Emulator.Core.Memory;
using Emulator.Core.Timing;

namespace Emulator.Core.Devices;

/// <summary>
/// The interrupt and timer side of QEMU's pc machine (PLATFORM.md): one local APIC per vCPU on an APIC
/// bus, the ISA interrupt router, and the timer queue every device arms on the cycle clock. Console and
/// test devices are attached by the machine; this class owns what the APIC, PIC, I/O APIC and timers share.
/// </summary>
public sealed class PcPlatform : IDisposable
{
    /// <param name="rtcEpoch">Time the RTC shows at cycle 0 (default <see cref="Rtc.DefaultEpoch"/>).</param>
    public PcPlatform(PhysicalMemory memory, IReadOnlyList<Cpu.Cpu> cpus, DateTime? rtcEpoch = null)
    {
        Memory = memory;
        Events = new EventQueue();
        ApicBus = new ApicBus();
        var apics = new LocalApic[cpus.Count];
        for (int i = 0; i < cpus.Count; i++)
        {
            apics[i] = new LocalApic(cpus[i], (uint)i, ApicBus, Events);
        }

        Apics = apics;
        Isa = new IsaIrqRouter(null, null);
        // No MMIO-bus window for the local APICs: each vCPU reaches its own APIC's page, wherever IA32_APIC_BASE
        // puts it, ahead of the bus (PhysicalMemory.EmulatedRead).

        Pic = new Pic8259();
        Pic.Attach(memory.Io);
        IoApic = new IoApic(ApicBus);
        memory.Mmio.Register(IoApic.DefaultBase, IoApic.Size, IoApic);
        Isa.Pic = Pic;
        Isa.IoApic = IoApic;
        // The PIC's INTR is offered to every local APIC, as QEMU's pc machine does (pic_irq_request): an APIC
        // takes it while hardware-disabled or with LINT0 unmasked in ExtINT mode (only the BSP's comes out of
        // reset that way), or once after an ExtINT message (ICR or I/O APIC). The first vCPU to run the INTA
        // cycle gets the vector; the round order makes that deterministic.
        foreach (var apic in apics)
        {
            apic.ExtInt = Pic;
        }

        Pic.IntrRaised = () =>
        {
            foreach (var apic in apics)
            {
                apic.Cpu.MakeRequestAndKick(VcpuRequest.Interrupt);
            }
        };

        // Channel 0 reaches IRQ 0 through KVM's reinject logic (off unless the machine turns it on); it counts an
        // acknowledgement at the 8259 (IR0) or at a local APIC for I/O APIC pin 2's vector.
        PitReinjection = new PitReinjection(level => Isa.SetIrq(0, level));
        Pic.Acked = irq =>
        {
            if (irq == 0)
            {
                PitReinjection.Acknowledged();
            }
        };
        IoApic.PinAcked = pin =>
        {
            if (pin == IsaIrqRouter.GsiOf(0))
            {
                PitReinjection.Acknowledged();
            }
        };
        Pit = new Pit8254(Events, PitReinjection.Out0);
        Pit.Attach(memory.Io);
        Rtc = new Rtc(Events, level => Isa.SetIrq(Rtc.Irq, level), rtcEpoch);
        Rtc.StoreMachineConfiguration(memory.LowRamEnd, memory.HighRamEnd == 0 ? 0 : memory.HighRamEnd - PhysicalMemory.HighRamBase, cpus.Count);
        Rtc.Attach(memory.Io);
        FirmwareHandoff(memory.Io);
    }

    public PhysicalMemory Memory { get; }

    public EventQueue Events { get; }

    public ApicBus ApicBus { get; }

    public IReadOnlyList<LocalApic> Apics { get; }

    /// <summary>ISA IRQ lines 0–15 (and GSIs above, to the I/O APIC).</summary>
    public IsaIrqRouter Isa { get; }

    public Pic8259 Pic { get; }

    /// <summary>The PIT's tick reinjection (KVM_REINJECT_CONTROL), between channel 0 and IRQ 0.</summary>
    public PitReinjection PitReinjection { get; }

    public Pit8254 Pit { get; }

    public Rtc Rtc { get; }

    public IoApic IoApic { get; }

    /// <summary>Frees what the local APICs hold outside the managed heap (their register pages).</summary>
    public void Dispose()
    {
        foreach (var apic in Apics)
        {
            apic.Dispose();
        }
    }

    /// <summary>The interrupt-controller and timer counters (irq.*) for <c>--stats</c>.</summary>
    public IEnumerable<(string Name, ulong Value)> IrqCounters()
    {
        foreach (var c in Pic.Counters())
        {
            yield return c;
        }

        foreach (var c in Pit.Counters())
        {
            yield return c;
        }

        foreach (var c in Rtc.Counters())
        {
            yield return c;
        }

        foreach (var c in IoApic.Counters())
        {
            yield return c;
        }
    }

    /// <summary>
    /// The state QEMU's firmware (SeaBIOS) leaves the legacy devices in when it starts a <c>-kernel</c> guest,
    /// reproduced by the same port writes: the PICs initialized with vectors 0x08 and 0x70 (ICW1 0x11, ICW3
    /// 4/2, ICW4 8086 mode), every IRQ masked except the cascade, the timer (0), keyboard (1), RTC (8) and
    /// mouse (12); PIT channel 0 in mode 2 with count 0 (18.2 Hz); RTC status A 0x26 and B 24-hour BCD, with C
    /// and D read. The PICs are initialized last so that the edge the PIT's control word makes is not left
    /// pending (the firmware would have serviced it long before the kernel runs). A guest that enables
    /// interrupts without reprogramming the PIC sees what it would under QEMU: vector 8 at 18.2 Hz.
    /// </summary>
    private static void FirmwareHandoff(IoBus io)
    {
        io.Out((ushort)(Pit8254.BasePort + 3), 1, 0x34);
        io.Out(Pit8254.BasePort, 1, 0x00);
        io.Out(Pit8254.BasePort, 1, 0x00);

        io.Out(Rtc.BasePort, 1, Rtc.StatusA);
        io.Out((ushort)(Rtc.BasePort + 1), 1, 0x26);
        io.Out(Rtc.BasePort, 1, Rtc.StatusB);
        io.Out((ushort)(Rtc.BasePort + 1), 1, Rtc.B24Hour);
        io.Out(Rtc.BasePort, 1, Rtc.StatusC);
        io.In((ushort)(Rtc.BasePort + 1), 1);
        io.Out(Rtc.BasePort, 1, Rtc.StatusD);
        io.In((ushort)(Rtc.BasePort + 1), 1);

        io.Out(Pic8259.MasterBase, 1, 0x11);
        io.Out(Pic8259.SlaveBase, 1, 0x11);
        io.Out((ushort)(Pic8259.MasterBase + 1), 1, 0x08);
        io.Out((ushort)(Pic8259.SlaveBase + 1), 1, 0x70);
        io.Out((ushort)(Pic8259.MasterBase + 1), 1, 0x04);
        io.Out((ushort)(Pic8259.SlaveBase + 1), 1, 0x02);
        io.Out((ushort)(Pic8259.MasterBase + 1), 1, 0x01);
        io.Out((ushort)(Pic8259.SlaveBase + 1), 1, 0x01);
        io.Out((ushort)(Pic8259.MasterBase + 1), 1, 0xF8);
        io.Out((ushort)(Pic8259.SlaveBase + 1), 1, 0xEE);
    }
}
