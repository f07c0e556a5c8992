using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Machi.Ngsi;

/// <summary>
/// The text of JSON member names and of short string values that bodies repeat (attribute names, attribute types,
/// unit codes), as strings shared between requests instead of a new string each time they are read. A batch of a
/// thousand entities names the same few attributes a thousand times; reading each name afresh was a third of
/// what parsing one allocated.
/// </summary>
/// <remarks>
/// The table is a fixed array of slots, each holding the last text whose UTF-8 bytes hashed to it: bodies full of
/// names that never repeat only replace entries (one string each, as without the table) and cannot grow it, and a
/// text is found by hashing and comparing its bytes, without decoding them. Text with escapes, or longer than
/// <see cref="MaxLength"/>, is read the ordinary way.
/// </remarks>
internal static class JsonText
{
    /// <summary>A check of a text.</summary>
    public delegate bool TextTest(ReadOnlySpan<char> text);

    /// <summary>The longest text (in UTF-8 bytes) kept in the table.</summary>
    private const int MaxLength = 64;

    /// <summary>Slots in the table (a power of two).</summary>
    private const int Slots = 4096;

    /// <summary>The longest text (in UTF-8 bytes) <see cref="Satisfies"/> reads on the stack.</summary>
    private const int StackText = 512;

    private static readonly Entry?[] Table = new Entry?[Slots];

    /// <summary>The member's name.</summary>
    public static string Name(JsonProperty member) =>
        Lookup(JsonMarshal.GetRawUtf8PropertyName(member)) ?? member.Name;

    /// <summary>The text of a string value (the caller has checked it is a string).</summary>
    /// <exception cref="InvalidOperationException">The string escapes an unpaired surrogate.</exception>
    public static string String(JsonElement value)
    {
        var raw = JsonMarshal.GetRawUtf8Value(value);
        return (raw.Length >= 2 ? Lookup(raw[1..^1]) : null) ?? value.GetString()!;
    }

    /// <summary>Whether the text of a string value passes <paramref name="test"/>, read without making a string
    /// of it where it is short and has no escapes.</summary>
    /// <exception cref="InvalidOperationException">The string escapes an unpaired surrogate.</exception>
    public static bool Satisfies(JsonElement value, TextTest test)
    {
        var raw = JsonMarshal.GetRawUtf8Value(value);
        if (raw.Length < 2 || raw.Length - 2 > StackText || raw.Contains((byte)'\\'))
        {
            return test(value.GetString());
        }

        Span<char> chars = stackalloc char[StackText];
        return test(chars[..Encoding.UTF8.GetChars(raw[1..^1], chars)]);
    }

    private static string? Lookup(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > MaxLength || utf8.Contains((byte)'\\'))
        {
            return null;
        }

        var hash = new HashCode();
        hash.AddBytes(utf8);
        ref var slot = ref Table[hash.ToHashCode() & (Slots - 1)];
        if (Volatile.Read(ref slot) is { } entry && utf8.SequenceEqual(entry.Utf8))
        {
            return entry.Text;
        }

        // The parser has checked the bytes are UTF-8. Another thread may fill the slot meanwhile: either entry will do.
        var text = Encoding.UTF8.GetString(utf8);
        Volatile.Write(ref slot, new Entry(utf8.ToArray(), text));
        return text;
    }

    /// <summary>A text and its UTF-8 bytes.</summary>
    private sealed record Entry(byte[] Utf8, string Text);
}
