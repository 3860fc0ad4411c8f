using System.Text;

namespace Emulator.Cli.Suite;

/// <summary>
/// The text of a suite file as the readers see it: UTF-8 without its byte-order mark. Editors on Windows save
/// UTF-8 with a mark (EF BB BF) that is not part of the text (Unicode 15, 23.8 "U+FEFF at the start of a
/// stream is a signature"); kept, it would become part of the first key. Positions the readers record (a
/// scalar's offset, line and column) are in this text, so a file with a mark reports and rewrites the same
/// places as one without.
/// </summary>
internal static class SuiteText
{
    private static ReadOnlySpan<byte> Utf8Mark => [0xEF, 0xBB, 0xBF];

    /// <summary>True when <paramref name="bytes"/> start with UTF-8's byte-order mark.</summary>
    public static bool HasByteOrderMark(ReadOnlySpan<byte> bytes) => bytes.StartsWith(Utf8Mark);

    /// <summary>The text of <paramref name="bytes"/>, without a leading byte-order mark.</summary>
    public static string Decode(byte[] bytes) =>
        HasByteOrderMark(bytes) ? Encoding.UTF8.GetString(bytes, Utf8Mark.Length, bytes.Length - Utf8Mark.Length) : Encoding.UTF8.GetString(bytes);

    /// <summary><paramref name="text"/> without a leading byte-order mark character (text decoded elsewhere).</summary>
    public static string WithoutMark(string text) => text.StartsWith('\uFEFF') ? text[1..] : text;

    /// <summary>The bytes of <paramref name="text"/>, with the byte-order mark first when <paramref name="mark"/> (the file had one).</summary>
    public static byte[] Encode(string text, bool mark)
    {
        var body = new UTF8Encoding(false).GetBytes(text);
        return mark ? [.. Utf8Mark, .. body] : body;
    }
}
