using System.Numerics;

namespace Emulator.Cli.Workloads;

/// <summary>
/// The checksum of Workloads/mix.c computed on the host, so <c>emu bench cpu --workload mix</c> can tell a right
/// run from a wrong one. It follows mix.c kernel by kernel and consumes the same LCG values in the same order;
/// the sort is the host's (any correct sort gives the same array). Keep it in step with mix.c.
/// </summary>
internal static class MixReference
{
    private const int SieveMax = 16384;
    private const int SortN = 1024;
    private const int CrcBytes = 4096;
    private const int MatN = 24;
    private const int FormatCount = 600;
    private const string Digits = "0123456789abcdefghijklmnopqrstuvwxyz";

    private static readonly uint[] s_crcTable = CrcTable();

    public static ulong Checksum(ulong rounds)
    {
        var state = new Lcg();
        var composite = new bool[SieveMax];
        var keys = new uint[SortN];
        ulong h = 0x6D69780000000000;
        for (ulong r = 0; r < rounds; r++)
        {
            state.Value = unchecked((uint)(r * 2654435761u)) ^ 0x1234567u;
            h = Fold(h, Sieve(composite, SieveMax - (64 * (int)(r % 16))));
            h = Fold(h, Sort(ref state, keys, SortN - (int)(r % 8)));
            h = Fold(h, Crc(ref state, CrcBytes - (int)(r % 5)));
            h = Fold(h, Matrix(ref state));
            h = Fold(h, Text(ref state, FormatCount));
        }

        return h;
    }

    private static ulong Fold(ulong h, ulong v) => unchecked((BitOperations.RotateLeft(h, 13) ^ v) * 0x9E3779B97F4A7C15);

    private static ulong Sieve(bool[] composite, int limit)
    {
        Array.Clear(composite);
        ulong count = 0, sum = 0;
        for (int i = 2; i < limit; i++)
        {
            if (composite[i])
            {
                continue;
            }

            count++;
            sum += (ulong)i;
            for (long j = (long)i * i; j < limit; j += i)
            {
                composite[j] = true;
            }
        }

        return sum ^ (count << 40);
    }

    private static ulong Sort(ref Lcg state, uint[] keys, int n)
    {
        for (int i = 0; i < n; i++)
        {
            keys[i] = state.Next() >> 8;
        }

        Array.Sort(keys, 0, n);
        ulong h = 0;
        for (int i = 0; i < n; i++)
        {
            h = unchecked(h + ((ulong)keys[i] * (ulong)(i + 1)));
        }

        return h;
    }

    private static uint[] CrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }

    private static ulong Crc(ref Lcg state, int n)
    {
        uint crc = 0xFFFFFFFFu;
        for (int i = 0; i < n; i++)
        {
            byte b = (byte)(state.Next() >> 24);
            crc = s_crcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc ^ 0xFFFFFFFFu;
    }

    private static ulong Matrix(ref Lcg state)
    {
        var a = new int[MatN, MatN];
        var b = new int[MatN, MatN];
        for (int i = 0; i < MatN; i++)
        {
            for (int j = 0; j < MatN; j++)
            {
                a[i, j] = (int)(state.Next() % 2001) - 1000;
                b[i, j] = (int)(state.Next() % 2001) - 1000;
            }
        }

        ulong h = 0;
        for (int i = 0; i < MatN; i++)
        {
            for (int j = 0; j < MatN; j++)
            {
                int s = 0;
                for (int k = 0; k < MatN; k++)
                {
                    s += a[i, k] * b[k, j];
                }

                h = unchecked((h * 31) + (ulong)(long)s);
            }
        }

        return h;
    }

    private static ulong Text(ref Lcg state, int count)
    {
        Span<char> text = stackalloc char[72];
        ulong hash = 0xCBF29CE484222325;
        ulong g = 0;
        for (int i = 0; i < count; i++)
        {
            ulong hi = state.Next();
            ulong v = (hi << 32) | state.Next();
            uint numberBase = 2 + (state.Next() % 35);
            int len = Format(v, numberBase, text);
            for (int k = 0; k < len; k++)
            {
                hash = unchecked((hash ^ text[k]) * 0x100000001B3);
            }

            g = unchecked(g + Gcd(v | 1, (ulong)(state.Next() | 1) * (numberBase + 1)));
        }

        return hash ^ g;
    }

    private static int Format(ulong v, uint numberBase, Span<char> text)
    {
        Span<char> tmp = stackalloc char[72];
        int n = 0;
        do
        {
            tmp[n++] = Digits[(int)(v % numberBase)];
            v /= numberBase;
        }
        while (v != 0);
        for (int i = 0; i < n; i++)
        {
            text[i] = tmp[n - 1 - i];
        }

        return n;
    }

    private static ulong Gcd(ulong a, ulong b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }

    private struct Lcg
    {
        public uint Value;

        public uint Next() => Value = unchecked((Value * 1664525u) + 1013904223u);
    }
}
