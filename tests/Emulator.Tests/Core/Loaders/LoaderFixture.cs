using Emulator.Core.Cpu;
using Emulator.Core.Loaders;
using Emulator.Core.Memory;

namespace Emulator.Tests.Core.Loaders;

/// <summary>A bare CPU and RAM to load images into.</summary>
public sealed class LoaderFixture : IDisposable
{
    public const ulong DefaultMemory = 16 << 20;

    public LoaderFixture(ulong memory = DefaultMemory)
    {
        Mem = PhysicalMemory.Create(memory);
        Cpu = new Cpu(Mem);
    }

    public PhysicalMemory Mem { get; }
    public Cpu Cpu { get; }

    public LoadedImage Load(byte[] image, BootOptions? options = null) => ImageLoader.Load(Cpu, image, options ?? new BootOptions());

    public byte[] ReadBytes(ulong gpa, int length)
    {
        var b = new byte[length];
        Mem.ReadBytes(gpa, b);
        return b;
    }

    public uint U32(ulong gpa) => (uint)Mem.Read(gpa, 4);

    public ulong U64(ulong gpa) => Mem.Read(gpa, 8);

    public string CString(ulong gpa)
    {
        var s = new List<byte>();
        for (ulong a = gpa; s.Count < 4096; a++)
        {
            byte b = (byte)Mem.Read(a, 1);
            if (b == 0)
            {
                break;
            }

            s.Add(b);
        }

        return System.Text.Encoding.UTF8.GetString([.. s]);
    }

    public void Dispose() => Mem.Dispose();
}
