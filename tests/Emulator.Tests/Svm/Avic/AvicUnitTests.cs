using System.Runtime.InteropServices;
using Emulator.Core.Svm;
using Emulator.Svm.Avic;
using Emulator.Svm.Run;
using Emulator.Tests.Core;

namespace Emulator.Tests.Svm.Avic;

/// <summary>
/// The AVIC hardware unit on its own (APM vol. 2 §15.29): the register-access table (accelerated, trap, fault), EOI
/// acceleration, and IPI virtualization through the physical and logical APIC ID tables, with L0's two exit handlers.
/// The vCPUs' APICs are stand-ins that record what L0 and the hardware asked of them.
/// </summary>
public sealed unsafe class AvicUnitTests
{
    /// <summary>A backing page plus a record of re-evaluations, committed writes and emulated accesses.</summary>
    private sealed class FakeApic : IAvicBacking, IDisposable
    {
        public FakeApic()
        {
            Page = (byte*)NativeMemory.AlignedAlloc(4096, 4096);
            new Span<byte>(Page, 4096).Clear();
        }

        public byte* Page { get; private set; }

        public int Rescans;
        public readonly List<int> Commits = [];
        public readonly List<(int Offset, int Size, ulong Value)> EmulatedWrites = [];
        public readonly List<(int Offset, int Size)> EmulatedReads = [];

        public void RescanIrr() => Rescans++;

        public void CommitWrite(int offset) => Commits.Add(offset);

        public ulong EmulateRead(int offset, int size)
        {
            EmulatedReads.Add((offset, size));
            return 0x5A5A;
        }

        public void EmulateWrite(int offset, int size, ulong value) => EmulatedWrites.Add((offset, size, value));

        public uint this[int offset]
        {
            get => *(uint*)(Page + offset);
            set => *(uint*)(Page + offset) = value;
        }

        public bool IrrHas(int vector) => (this[0x200 + ((vector >> 5) * 0x10)] & (1u << (vector & 31))) != 0;

        public void Dispose()
        {
            if (Page != null)
            {
                NativeMemory.AlignedFree(Page);
                Page = null;
            }
        }
    }

    /// <summary>vCPU 0 (APIC ID 0, the one under test) with AVIC on, and a peer with APIC ID 1 that is running.</summary>
    private sealed class Rig : IDisposable
    {
        public readonly TestGuest G = TestGuest.Long64(a => a.hlt());
        public readonly AvicTables Tables = new(2);
        public readonly FakeApic Me = new(), Peer = new();
        public readonly L0Svm L0;

        public Rig()
        {
            L0 = new L0Svm(G.Mem).Attach(G.Cpu);
            L0.ApicvActive = () => true;
            L0.SetUpAvic(G.Cpu, Tables, Me, apicId: 0, hostId: 0);
            L0.ApicvUpdate(G.Cpu);
            Tables.Physical[1] = (ulong)Peer.Page | AvicTables.Valid | AvicTables.IsRunning | 1;
            Tables.SetCore(1, Peer);
            Tables.SetVcpu(1, Peer);
        }

        public AvicUnit Unit => L0.Avic!;

        public ulong NoAccelExits => L0.L1Exits[SvmExit.AvicNoAccel];

        public ulong IncompleteExits => L0.L1Exits[SvmExit.AvicIncompleteIpi];

        public void Write(int offset, uint value) => Unit.Write(G.Cpu, offset, 4, value);

        public void Ipi(uint icrLow, byte dest)
        {
            Write(0x310, (uint)dest << 24);
            Write(0x300, icrLow);
        }

        public void Dispose()
        {
            Tables.Dispose();
            Me.Dispose();
            Peer.Dispose();
            L0.Dispose();
            G.Dispose();
        }
    }

    [Test]
    public void ApicvUpdateTurnsTheUnitOnWithVmcb01sFieldsAndMarksTheVcpuRunning()
    {
        using var r = new Rig();
        Assert.That(r.G.Cpu.Avic, Is.SameAs(r.Unit));
        Assert.That(r.Unit.ApicBar, Is.EqualTo(0xFEE0_0000UL));
        ulong e = r.Tables.Physical[0];
        Assert.That(e & AvicTables.BackingMask, Is.EqualTo((ulong)r.Me.Page));
        Assert.That(e & (AvicTables.Valid | AvicTables.IsRunning), Is.EqualTo(AvicTables.Valid | AvicTables.IsRunning));

        r.L0.ApicvActive = () => false;
        r.L0.ApicvUpdate(r.G.Cpu);
        Assert.That(r.G.Cpu.Avic, Is.Null);
        Assert.That(r.Tables.Physical[0] & AvicTables.IsRunning, Is.Zero, "avic_vcpu_put");
    }

    [Test]
    public void AnAllowedReadComesFromTheBackingPageWithoutAnExit()
    {
        using var r = new Rig();
        r.Me[0xD0] = 0x0100_0000;
        ulong cycles = r.G.Cpu.Cycles;
        Assert.That(r.Unit.Read(r.G.Cpu, 0xD0, 4), Is.EqualTo(0x0100_0000UL));
        Assert.That(r.NoAccelExits, Is.Zero);
        Assert.That(r.G.Cpu.Cycles, Is.EqualTo(cycles + r.G.Cpu.Costs.AvicAccess), "no exit: only the backing-page access");
    }

    [TestCase(0x390, 4, TestName = "TimerCurrentCount")]
    [TestCase(0x400, 4, TestName = "ExtendedRegister")]
    [TestCase(0x80, 2, TestName = "TwoByteTprRead")]
    public void AReadThatFaultsIsEmulatedByL0(int offset, int size)
    {
        using var r = new Rig();
        ulong cycles = r.G.Cpu.Cycles;
        Assert.That(r.Unit.Read(r.G.Cpu, offset, size), Is.EqualTo(0x5A5AUL));
        Assert.That(r.Me.EmulatedReads, Is.EqualTo(new[] { (offset, size) }));
        Assert.That(r.NoAccelExits, Is.EqualTo(1UL));
        Assert.That(r.G.Cpu.Cycles - cycles, Is.EqualTo(r.G.Cpu.Costs.VmexitRoundTrip));
    }

    [Test]
    public void ATprWriteIsAcceleratedAndTheHardwareUpdatesPriority()
    {
        using var r = new Rig();
        r.Write(0x80, 0x1_23);
        Assert.That(r.Me[0x80], Is.EqualTo(0x23u));
        Assert.That(r.Me.Commits, Is.EqualTo(new[] { 0x80 }));
        Assert.That(r.NoAccelExits, Is.Zero);
    }

    [TestCase(0xD0, TestName = "Ldr")]
    [TestCase(0xF0, TestName = "Svr")]
    [TestCase(0x320, TestName = "LvtTimer")]
    [TestCase(0x380, TestName = "TimerInitialCount")]
    public void ATrappedWriteLandsInThePageThenL0DoesItsSideEffects(int offset)
    {
        using var r = new Rig();
        ulong cycles = r.G.Cpu.Cycles;
        r.Write(offset, 0x1234);
        Assert.That(r.Me[offset], Is.EqualTo(0x1234u));
        Assert.That(r.Me.Commits, Is.EqualTo(new[] { offset }));
        Assert.That(r.Me.EmulatedWrites, Is.Empty);
        Assert.That(r.NoAccelExits, Is.EqualTo(1UL));
        Assert.That(r.G.Cpu.Cycles - cycles, Is.EqualTo(r.G.Cpu.Costs.VmexitRoundTrip));
    }

    [Test]
    public void AFaultingWriteLeavesThePageAndIsEmulated()
    {
        using var r = new Rig();
        r.Write(0x100, 0xFFFF); // ISR is read-only
        Assert.That(r.Me[0x100], Is.Zero);
        Assert.That(r.Me.EmulatedWrites, Is.EqualTo(new[] { (0x100, 4, 0xFFFFUL) }));
        Assert.That(r.Me.Commits, Is.Empty);

        // An odd-sized write to a trap register faults too, and L0 emulates it rather than replaying the page.
        r.Unit.Write(r.G.Cpu, 0xD0, 1, 0x7F);
        Assert.That(r.Me.EmulatedWrites[^1], Is.EqualTo((0xD0, 1, 0x7FUL)));
        Assert.That(r.Me.Commits, Is.Empty);
        Assert.That(r.NoAccelExits, Is.EqualTo(2UL));
    }

    [TestCase(false, 0UL, TestName = "EdgeTriggeredEoiIsAccelerated")]
    [TestCase(true, 1UL, TestName = "LevelTriggeredEoiTraps")]
    public void Eoi(bool level, ulong exits)
    {
        using var r = new Rig();
        r.Me[0x100 + (2 * 0x10)] = 1; // vector 0x40 in service
        if (level)
        {
            r.Me[0x180 + (2 * 0x10)] = 1;
        }

        r.Write(0xB0, 0);
        Assert.That(r.Me.Commits, Is.EqualTo(new[] { 0xB0 }));
        Assert.That(r.NoAccelExits, Is.EqualTo(exits));
    }

    [Test]
    public void AFixedIpiToARunningTargetSetsItsIrrAndRingsItsDoorbell()
    {
        using var r = new Rig();
        r.Ipi(0x41, dest: 1);
        Assert.That(r.Peer.IrrHas(0x41), Is.True);
        Assert.That(r.Peer.Rescans, Is.EqualTo(1));
        Assert.That(r.IncompleteExits, Is.Zero);
        Assert.That(r.Me[0x300], Is.EqualTo(0x41u), "the ICR write lands in the sender's page");
    }

    [Test]
    public void AnIpiToATargetNotRunningSetsIrrThenExitsForL0ToWakeIt()
    {
        using var r = new Rig();
        r.Tables.Physical[1] &= ~AvicTables.IsRunning;
        r.Ipi(0x42, dest: 1);
        Assert.That(r.Peer.IrrHas(0x42), Is.True, "set by the hardware before the exit");
        Assert.That(r.IncompleteExits, Is.EqualTo(1UL));
        Assert.That(r.Unit.IncompleteIpis[AvicUnit.TargetNotRunning], Is.EqualTo(1UL));
        Assert.That(r.Peer.Rescans, Is.EqualTo(1), "L0 woke it");
        Assert.That(r.Me.Commits, Is.Empty, "nothing to emulate");
    }

    [TestCase(5, TestName = "PhysicalIdWithNoEntry")]
    [TestCase(0xFE, TestName = "PhysicalIdPastTheTable")]
    public void AnIpiToAnInvalidTargetIsNotDeliveredAndL0EmulatesIt(int dest)
    {
        using var r = new Rig();
        r.Ipi(0x43, (byte)dest);
        Assert.That(r.Unit.IncompleteIpis[AvicUnit.InvalidTarget], Is.EqualTo(1UL));
        Assert.That(r.Me.Commits, Is.EqualTo(new[] { 0x300 }));
        Assert.That(r.Peer.IrrHas(0x43), Is.False);
    }

    [TestCase(0x4u << 8, TestName = "Nmi")]
    [TestCase(0x5u << 8, TestName = "Init")]
    [TestCase(0x1u << 8, TestName = "LowestPriority")]
    [TestCase((1u << 15) | (1u << 14), TestName = "LevelTriggered")]
    public void AnIpiOfAnotherTypeIsEmulatedByL0(uint typeBits)
    {
        using var r = new Rig();
        r.Ipi(0x44 | typeBits, dest: 1);
        Assert.That(r.Unit.IncompleteIpis[AvicUnit.InvalidIntType], Is.EqualTo(1UL));
        Assert.That(r.Me.Commits, Is.EqualTo(new[] { 0x300 }));
        Assert.That(r.Peer.IrrHas(0x44), Is.False);
    }

    [Test]
    public void AnIpiWithAVectorBelow16IsDropped()
    {
        using var r = new Rig();
        r.Ipi(0x0F, dest: 1);
        Assert.That(r.Unit.IncompleteIpis[AvicUnit.InvalidVector], Is.EqualTo(1UL));
        Assert.That(r.Peer[0x200], Is.Zero);
        Assert.That(r.Me.Commits, Is.Empty);
    }

    [TestCase(0xFFFF_FFFFu, (byte)0x02, 1, TestName = "FlatBit1")]
    [TestCase(0x0FFF_FFFFu, (byte)0x12, 5, TestName = "ClusterOneBit1")]
    public void ALogicalIpiGoesThroughTheLogicalTable(uint dfr, byte dest, int logicalIndex)
    {
        using var r = new Rig();
        r.Me[0xE0] = dfr;
        r.Tables.Logical[logicalIndex] = AvicTables.LogicalValid | 1;
        r.Ipi(0x45 | (1u << 11), dest);
        Assert.That(r.Peer.IrrHas(0x45), Is.True);
        Assert.That(r.Me.IrrHas(0x45), Is.False);
        Assert.That(r.IncompleteExits, Is.Zero);
    }

    [Test]
    public void ALogicalIpiToAnInvalidLogicalEntryIsEmulated()
    {
        using var r = new Rig();
        r.Me[0xE0] = 0xFFFF_FFFF;
        r.Ipi(0x46 | (1u << 11), dest: 0x04);
        Assert.That(r.Unit.IncompleteIpis[AvicUnit.InvalidTarget], Is.EqualTo(1UL));
        Assert.That(r.Peer.IrrHas(0x46), Is.False);
    }

    [TestCase(1u, true, false, TestName = "Self")]
    [TestCase(2u, true, true, TestName = "AllIncludingSelf")]
    [TestCase(3u, false, true, TestName = "AllExcludingSelf")]
    public void Shorthands(uint shorthand, bool me, bool peer)
    {
        using var r = new Rig();
        r.Ipi(0x47 | (shorthand << 18), dest: 0);
        Assert.That(r.Me.IrrHas(0x47), Is.EqualTo(me));
        Assert.That(r.Peer.IrrHas(0x47), Is.EqualTo(peer));
        Assert.That(r.IncompleteExits, Is.Zero);
    }

    [TestCase(0xFFFF_FFFFu, 0x0400_0000u, 2, TestName = "FlatBit2")]
    [TestCase(0x0FFF_FFFFu, 0x2800_0000u, 11, TestName = "Cluster2Bit3")]
    public void L0KeepsTheLogicalTableInStepWithTrappedLdrAndDfrWrites(uint dfr, uint ldr, int index)
    {
        using var r = new Rig();
        r.Write(0xE0, dfr);
        r.Write(0xD0, ldr);
        Assert.That(r.Tables.Logical[index], Is.EqualTo(AvicTables.LogicalValid | 0u));

        // A new LDR moves the entry; the old one is invalid again.
        r.Write(0xD0, 0);
        Assert.That(r.Tables.Logical[index], Is.Zero);
    }

    [Test]
    public void BlockingInHltClearsIsRunningAndRunningAgainSetsIt()
    {
        using var r = new Rig();
        r.L0.VcpuBlocking(r.G.Cpu, blocked: true);
        Assert.That(r.Tables.Physical[0] & AvicTables.IsRunning, Is.Zero);
        r.L0.VcpuBlocking(r.G.Cpu, blocked: false);
        Assert.That(r.Tables.Physical[0] & (AvicTables.IsRunning | AvicTables.HostIdMask), Is.EqualTo(AvicTables.IsRunning));
    }
}
