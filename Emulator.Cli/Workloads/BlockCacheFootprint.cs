using System.Reflection;
using System.Runtime.CompilerServices;
using Emulator.Core.Decode;
using Emulator.Svm.Run;

namespace Emulator.Cli.Workloads;

/// <summary>
/// Memory of a machine's decoded-block caches (<see cref="BlockCache"/>), measured from outside Emulator.Core: the
/// distinct caches its vCPUs reference and the arrays each one holds (ops pool, block keys and links, hash buckets).
/// Core exposes no accessor for this, so the caches and their arrays are found by reflection; a cache shared by
/// several vCPUs counts once. Only for reports (<c>emu bench cpu</c>, the benchmarks), never on a run's path.
/// </summary>
public static class BlockCacheFootprint
{
    /// <summary>Total bytes of array storage of the distinct decoded-block caches, and how many caches there are.</summary>
    public static (long Bytes, int Caches) Measure(Machine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        var caches = new HashSet<object>(ReferenceEqualityComparer.Instance);
        foreach (var cpu in machine.Cpus)
        {
            foreach (var field in InstanceFields(cpu.GetType()))
            {
                if (field.FieldType == typeof(BlockCache) && field.GetValue(cpu) is { } cache)
                {
                    caches.Add(cache);
                }
            }
        }

        long bytes = 0;
        foreach (object cache in caches)
        {
            foreach (var field in InstanceFields(cache.GetType()))
            {
                if (field.GetValue(cache) is Array array)
                {
                    bytes += ArrayBytes(array);
                }
            }
        }

        return (bytes, caches.Count);
    }

    /// <summary>An array's size on the heap: header, length and elements (64-bit runtime layout).</summary>
    private static long ArrayBytes(Array array)
    {
        var element = array.GetType().GetElementType()!;
        long elementSize = element.IsValueType ? RuntimeHelpers.SizeOf(element.TypeHandle) : IntPtr.Size;
        return (3 * IntPtr.Size) + (array.LongLength * elementSize);
    }

    private static IEnumerable<FieldInfo> InstanceFields(Type? type)
    {
        for (; type != null; type = type.BaseType)
        {
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                yield return field;
            }
        }
    }
}
