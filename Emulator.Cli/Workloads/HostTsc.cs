using System.Runtime.InteropServices;

namespace Emulator.Cli.Workloads;

/// <summary>
/// The host's time-stamp counter, for host cycles per guest instruction. .NET has no RDTSC intrinsic, so the bytes of
/// <c>rdtsc; shl rdx, 32; or rax, rdx; ret</c> go into a page mapped executable (mmap, then mprotect to read+execute)
/// and are called through a function pointer. Linux on x86-64 only; elsewhere <see cref="Available"/> is false and
/// <see cref="Unavailable"/> says why.
/// </summary>
internal static unsafe partial class HostTsc
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 2, MapAnonymous = 0x20;
    private const nuint PageSize = 4096;

    // 0F 31: rdtsc (EDX:EAX ← TSC); 48 C1 E2 20: shl rdx, 32; 48 09 D0: or rax, rdx; C3: ret.
    private static ReadOnlySpan<byte> Code => [0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3];

    private static readonly delegate* unmanaged<ulong> s_read = Create(out s_unavailable);
    private static readonly string? s_unavailable;

    public static bool Available => s_read != null;

    /// <summary>Why the TSC cannot be read, or null when it can.</summary>
    public static string? Unavailable => s_unavailable;

    /// <summary>The TSC now; only when <see cref="Available"/>.</summary>
    public static ulong Read() => s_read != null ? s_read() : throw new InvalidOperationException(s_unavailable);

    private static delegate* unmanaged<ulong> Create(out string? reason)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            reason = $"the host TSC is read only on Linux x86-64 (this is {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture})";
            return null;
        }

        try
        {
            void* page = Mmap(null, PageSize, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
            if (page == (void*)-1)
            {
                reason = $"mmap failed (errno {Marshal.GetLastPInvokeError()})";
                return null;
            }

            Code.CopyTo(new Span<byte>(page, Code.Length));
            if (Mprotect(page, PageSize, ProtRead | ProtExec) != 0)
            {
                reason = $"mprotect to read+execute failed (errno {Marshal.GetLastPInvokeError()})";
                return null;
            }

            reason = null;
            return (delegate* unmanaged<ulong>)page;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            reason = $"libc's mmap is not available: {e.Message}";
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(void* addr, nuint length, int prot);
}
