using Emulator.Core.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace Emulator.Tests.Core.Exec;

/// <summary>The hint-NOP opcode space and UD0/UD1/UD2 (Exec.Misc).</summary>
public class HintNopTests
{
    private static TestGuest Long64WithIdt(Action<Iced.Intel.Assembler> body)
    {
        var g = TestGuest.Long64(body);
        VectorCatcher.Install64(g);
        return g;
    }

    // Each runs as a NOP on a CPU without CET, including forms with a memory operand that points nowhere.
    [TestCase(new byte[] { 0xF3, 0x0F, 0x1E, 0xFA }, TestName = "Endbr64")]
    [TestCase(new byte[] { 0xF3, 0x0F, 0x1E, 0xFB }, TestName = "Endbr32")]
    [TestCase(new byte[] { 0xF3, 0x48, 0x0F, 0x1E, 0xC8 }, TestName = "RdsspqIsNopWithoutCet")]
    [TestCase(new byte[] { 0x0F, 0x18, 0x04, 0x25, 0x00, 0x00, 0x00, 0xC0 }, TestName = "PrefetchntaOfUnmappedAddress")]
    [TestCase(new byte[] { 0x0F, 0x0D, 0x08 }, TestName = "PrefetchwViaRax")]
    [TestCase(new byte[] { 0x0F, 0x1C, 0x00 }, TestName = "Cldemote")]
    [TestCase(new byte[] { 0x0F, 0x19, 0xC0 }, TestName = "ReservedNop0F19")]
    [TestCase(new byte[] { 0x66, 0x0F, 0x1E, 0xC0 }, TestName = "ReservedNop0F1E")]
    public void HintNopRetiresWithoutEffect(byte[] bytes)
    {
        using var g = Long64WithIdt(a =>
        {
            a.mov(rax, 0xDEAD_0000_0000UL); // non-canonical as a pointer: a real access would #GP
            a.mov(rbx, 7);
            a.db(bytes);
            a.mov(rcx, 9);
            a.hlt();
        });
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(-1));
        Assert.That(g[Reg.RCX], Is.EqualTo(9));
        Assert.That(g[Reg.RAX], Is.EqualTo(0xDEAD_0000_0000UL));
        Assert.That(g.Cpu.UnimplementedSeen, Is.Empty);
    }

    [TestCase(new byte[] { 0x0F, 0x0B }, TestName = "Ud2")]
    [TestCase(new byte[] { 0x0F, 0xB9, 0xC0 }, TestName = "Ud1")]
    [TestCase(new byte[] { 0x0F, 0xFF, 0xC0 }, TestName = "Ud0")]
    public void UdInstructionsRaiseUdAndAreNotReportedAsGaps(byte[] bytes)
    {
        var notes = new List<string>();
        using var g = Long64WithIdt(a =>
        {
            a.db(bytes);
            a.hlt();
        });
        g.Cpu.Diagnostic = notes.Add;
        g.Run();
        Assert.That(VectorCatcher.CaughtVector(g), Is.EqualTo(Vector.UD));
        Assert.That(notes, Is.Empty);
        Assert.That(g.Cpu.UnimplementedSeen, Is.Empty);
    }
}
