namespace Emulator.Core.Devices;

/// <summary>Something with interrupt input lines (the PIC pair, the I/O APIC, the ISA router).</summary>
public interface IIrqSink
{
    /// <summary>Drives input <paramref name="line"/> high or low. Edge-triggered inputs latch on a rising edge.</summary>
    void SetIrq(int line, bool level);
}

/// <summary>The 8259's INTR output and INTA cycle, seen by the local APIC's LINT0 in ExtINT mode.</summary>
public interface IExtIntSource
{
    /// <summary>INTR is asserted: an unmasked request is pending in the master (or cascaded slave).</summary>
    bool ExtIntPending { get; }

    /// <summary>The INTA cycle: moves the request to in-service and returns the vector (spurious 7/15 vectors if it vanished).</summary>
    int AcknowledgeExtInt();
}

/// <summary>
/// ISA interrupt routing as on QEMU's pc machine: ISA IRQ n drives PIC input n and I/O APIC input n,
/// except IRQ 0 (the PIT), which reaches I/O APIC pin 2 (the MADT's interrupt source override says so).
/// </summary>
public sealed class IsaIrqRouter(IIrqSink? pic, IIrqSink? ioApic) : IIrqSink
{
    public const int Lines = 16;

    public IIrqSink? Pic { get; set; } = pic;

    public IIrqSink? IoApic { get; set; } = ioApic;

    /// <summary>The I/O APIC pin (GSI) an ISA IRQ reaches.</summary>
    public static int GsiOf(int isaIrq) => isaIrq == 0 ? 2 : isaIrq;

    public void SetIrq(int line, bool level)
    {
        if (line < Lines)
        {
            Pic?.SetIrq(line, level);
        }

        IoApic?.SetIrq(line < Lines ? GsiOf(line) : line, level);
    }
}
