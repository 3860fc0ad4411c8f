using Emulator.Core.Cpu;

namespace Emulator.Core.Svm;

/// <summary>Reads one byte of the memory that holds a permission map; false when nothing backs the address.</summary>
public interface IPermissionMapReader
{
    bool ReadByte(ulong address, out byte value);
}

/// <summary>
/// Reads the maps of the current VMCB, which L0 keeps in host memory (vmcb01's, and vmcb02's merged ones): the
/// address is a host address, as a VMCB holds host-physical addresses. The gates never read through a map base of
/// 0 (no map: every access is intercepted).
/// </summary>
public readonly unsafe struct HostMemoryReader : IPermissionMapReader
{
    public bool ReadByte(ulong address, out byte value)
    {
        value = *(byte*)address;
        return true;
    }
}

/// <summary>
/// The SVM I/O and MSR permission maps (APM vol. 2 §15.10.1 "I/O Permissions Map", §15.11 "MSR Intercepts";
/// spec/svm-avic.md §2.3), and the EXITINFO1 of an IOIO exit (§15.10.2). Pure functions over a byte reader so the
/// lookups are tested without a guest. A map byte that cannot be read counts as "intercepted": the hypervisor
/// then sees the access instead of the guest touching a port or MSR it may not have meant to allow.
/// </summary>
public static class PermissionMaps
{
    /// <summary>
    /// True when the IOPM at <paramref name="iopmBase"/> intercepts an access of <paramref name="size"/> bytes at
    /// <paramref name="port"/>: one bit per port, and a multi-byte access exits when any of its ports' bits is set.
    /// Ports past 0xFFFF (an access at 0xFFFF of two or four bytes) use the bits of the map's third page.
    /// </summary>
    public static bool IoIntercepted<TReader>(ref TReader reader, ulong iopmBase, ushort port, int size)
        where TReader : struct, IPermissionMapReader
    {
        uint first = port;
        uint last = first + (uint)size - 1;
        for (uint p = first; p <= last; p++)
        {
            if (!reader.ReadByte(iopmBase + (p >> 3), out byte b) || ((b >> (int)(p & 7)) & 1) != 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// True when the MSRPM at <paramref name="msrpmBase"/> intercepts RDMSR (<paramref name="write"/> false) or
    /// WRMSR of <paramref name="msr"/>: two bits per MSR (even = read, odd = write) in three 2-KB ranges for
    /// 0–0x1FFF, 0xC0000000–0xC0001FFF and 0xC0010000–0xC0011FFF; any other MSR always exits.
    /// </summary>
    public static bool MsrIntercepted<TReader>(ref TReader reader, ulong msrpmBase, uint msr, bool write)
        where TReader : struct, IPermissionMapReader
    {
        ulong rangeOffset;
        if (msr <= 0x1FFF)
        {
            rangeOffset = 0;
        }
        else if (msr - 0xC000_0000u <= 0x1FFF)
        {
            rangeOffset = 0x800;
        }
        else if (msr - 0xC001_0000u <= 0x1FFF)
        {
            rangeOffset = 0x1000;
        }
        else
        {
            return true;
        }

        uint bit = ((msr & 0x1FFF) * 2) + (write ? 1u : 0u);
        return !reader.ReadByte(msrpmBase + rangeOffset + (bit >> 3), out byte b) || ((b >> (int)(bit & 7)) & 1) != 0;
    }

    /// <summary>IOIO EXITINFO1 bits (APM vol. 2 §15.10.2, Figure 15-2).</summary>
    public const ulong IoIn = 1, IoString = 1 << 2, IoRep = 1 << 3;

    /// <summary>
    /// EXITINFO1 of an IOIO exit: TYPE (1 = IN), STR, REP, the operand size (SZ8/16/32 in bits 6:4), the address
    /// size (A16/32/64 in bits 9:7), the segment of a string instruction's memory operand (bits 12:10, the SegReg
    /// number: ES 0 … GS 5; 0 for IN/OUT) and the port in bits 31:16.
    /// </summary>
    public static ulong IoExitInfo(ushort port, int size, int addrSize, bool input, bool str, bool rep, int segment)
    {
        ulong info = (ulong)port << 16;
        info |= input ? IoIn : 0;
        info |= str ? IoString : 0;
        info |= rep ? IoRep : 0;
        info |= size switch { 1 => 1UL << 4, 2 => 1UL << 5, _ => 1UL << 6 };
        info |= addrSize switch { 2 => 1UL << 7, 4 => 1UL << 8, _ => 1UL << 9 };
        info |= str ? (ulong)(segment & 7) << 10 : 0;
        return info;
    }

    /// <summary>The IOIO_PROT gate of IN/OUT/INS/OUTS: Continue, or the #VMEXIT status (EXITINFO2 = the next RIP).</summary>
    internal static int IoGate(Cpu.Cpu c, ushort port, int size, int addrSize, bool input, bool str, bool rep, int segment)
    {
        if (!c.Intercepted(SvmIntercept.IoioProt))
        {
            return ExecStatus.Continue;
        }

        var reader = default(HostMemoryReader);
        ulong iopm = c.Intercepts.IopmBase;
        if (iopm != 0 && !IoIntercepted(ref reader, iopm, port, size))
        {
            return ExecStatus.Continue;
        }

        return c.InterceptExit(SvmExit.Ioio, IoExitInfo(port, size, addrSize, input, str, rep, segment), c.NextRip);
    }

    /// <summary>The MSR_PROT gate of RDMSR/WRMSR: Continue, or the #VMEXIT status (EXITINFO1 0 read, 1 write).</summary>
    internal static int MsrGate(Cpu.Cpu c, uint msr, bool write)
    {
        if (!c.Intercepted(SvmIntercept.MsrProt))
        {
            return ExecStatus.Continue;
        }

        var reader = default(HostMemoryReader);
        ulong msrpm = c.Intercepts.MsrpmBase;
        return msrpm == 0 || MsrIntercepted(ref reader, msrpm, msr, write)
            ? c.InterceptExit(SvmExit.Msr, write ? 1UL : 0UL)
            : ExecStatus.Continue;
    }
}
