using System.Globalization;
using Emulator.Core.Cpu;
using Emulator.Core.Loaders;

namespace Emulator.Cli.Workloads;

/// <summary>
/// A gcc-compiled guest of <c>emu bench cpu --workload NAME</c> (docs/workloads.md): a flat image linked at
/// <see cref="LoadBase"/> by Workloads/workload.ld, built from Workloads/NAME.c by the project's BuildWorkloads
/// target and embedded as a resource. It runs a number of rounds given in RDI, prints <c>checksum: 0x…</c> on
/// COM1 and ends the run through isa-debug-exit; <see cref="ExpectedChecksum"/> computes the same value on the host.
/// </summary>
public sealed class CompiledWorkload
{
    /// <summary>Where the image is linked and copied, and its entry point (its first byte).</summary>
    public const ulong LoadBase = 0x100000;

    /// <summary>The line the guest prints, before 16 lowercase hex digits.</summary>
    public const string ChecksumLabel = "checksum: 0x";

    /// <summary>isa-debug-exit status of a finished run (the guest writes 0 to port 0xf4).</summary>
    public const int ExitStatus = 1;

    /// <summary>Rounds of the suite guest <c>builtin:mix</c> (about 3.5 M instructions).</summary>
    public const ulong BuiltinRounds = 4;

    private readonly Func<ulong, ulong> _expected;
    private readonly Lazy<byte[]?> _image;

    private CompiledWorkload(string name, string description, ulong defaultRounds, Func<ulong, ulong> expected)
    {
        Name = name;
        Description = description;
        DefaultRounds = defaultRounds;
        _expected = expected;
        _image = new Lazy<byte[]?>(() => LoadResource(name));
    }

    /// <summary>mix: sieve, quicksort, CRC-32, matrix multiply, number formatting and gcd (about 0.85 M instructions a round).</summary>
    public static CompiledWorkload Mix { get; } = new("mix", "gcc -O2 C: sieve, quicksort, CRC-32, matrix multiply, formatting and gcd", 350, MixReference.Checksum);

    public static IReadOnlyList<CompiledWorkload> All { get; } = [Mix];

    public string Name { get; }

    public string Description { get; }

    /// <summary>Rounds of a default run, chosen for a few hundred million guest instructions.</summary>
    public ulong DefaultRounds { get; }

    /// <summary>The flat image, or null when the build had no gcc (see <see cref="NotBuiltMessage"/>).</summary>
    public byte[]? Image => _image.Value;

    public bool IsBuilt => Image != null;

    public string NotBuiltMessage => $"workload '{Name}' was not built: gcc not found";

    public static CompiledWorkload? Find(string name) => All.FirstOrDefault(w => w.Name == name);

    /// <summary>The checksum a correct run of <paramref name="rounds"/> rounds prints.</summary>
    public ulong ExpectedChecksum(ulong rounds) => _expected(rounds);

    /// <summary>
    /// Copies the image into guest RAM and enters it in 64-bit long mode with RDI = <paramref name="rounds"/>; a
    /// <see cref="LoaderException"/> when the image was not built or RAM is too small, as for an image emu cannot load.
    /// </summary>
    public void Install(Cpu cpu, ulong rounds)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        byte[] image = Image ?? throw new LoaderException(NotBuiltMessage);

        // The image's .bss follows it and is not in the file; the startup clears it, so only its room is checked here.
        if (!cpu.Phys.TryLoad(LoadBase, image) || ImageLoader.StackTop(cpu.Phys) < LoadBase + (uint)image.Length + (1 << 20))
        {
            throw new LoaderException($"guest RAM is too small for workload '{Name}'");
        }

        BootState.EnterLong64(cpu, LoadBase, ImageLoader.StackTop(cpu.Phys));
        cpu.Gpr[Reg.RDI] = rounds;
    }

    /// <summary>
    /// Whether <paramref name="guestOutput"/>, the console of a finished run of <paramref name="rounds"/> rounds, ends with
    /// the right checksum line; <paramref name="verdict"/> says what was printed and, when wrong, what was expected.
    /// </summary>
    public bool CheckOutput(string guestOutput, ulong rounds, out string verdict)
    {
        ulong expected = ExpectedChecksum(rounds);
        if (!TryParseChecksum(guestOutput, out ulong checksum))
        {
            verdict = $"printed no checksum line, expected 0x{expected:x16}";
            return false;
        }

        verdict = checksum == expected ? $"checksum 0x{checksum:x16} ok" : $"checksum 0x{checksum:x16} is wrong, expected 0x{expected:x16}";
        return checksum == expected;
    }

    /// <summary>The value of the guest's <c>checksum: 0x…</c> line in its console output, if it printed one.</summary>
    public static bool TryParseChecksum(string output, out ulong checksum)
    {
        ArgumentNullException.ThrowIfNull(output);
        checksum = 0;
        int at = output.LastIndexOf(ChecksumLabel, StringComparison.Ordinal);
        if (at < 0)
        {
            return false;
        }

        int start = at + ChecksumLabel.Length;
        int end = start;
        while (end < output.Length && Uri.IsHexDigit(output[end]))
        {
            end++;
        }

        return ulong.TryParse(output.AsSpan(start, end - start), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out checksum);
    }

    private static byte[]? LoadResource(string name)
    {
        using var stream = typeof(CompiledWorkload).Assembly.GetManifestResourceStream($"Emulator.Cli.Workloads.{name}.bin");
        if (stream == null)
        {
            return null;
        }

        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }
}
