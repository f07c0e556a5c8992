using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Machi.Broker.Access;

/// <summary>
/// The records of <see cref="SqliteAccessLog"/>'s journal. Each is framed as a marker byte, the payload's length and
/// the payload's CRC-32C (so a record a crash cut off is recognised), then the payload: the record as its digest covers
/// it (<see cref="AccessLogChain.Encode"/>), its digest and its chain hash. The request encodes its record before it
/// takes the log's lock; under the lock only the seq, the two hashes and the checksum are written into it.
/// Journals written before this format hold one JSON <see cref="AccessLogEntry"/> a line; they are still read.
/// </summary>
/// <remarks>
/// Measured (bench <c>--scenario consent</c>, perf): serialising each record as JSON and its digest's input apart cost
/// ~1 µs of CPU per record under the lock, and the JSON was parsed again to index it.
/// </remarks>
internal static class AccessLogJournal
{
    /// <summary>Marker, payload length, CRC-32C of the payload.</summary>
    public const int HeaderLength = 9;

    /// <summary>The first byte of every record; never <c>{</c>, which starts a journal of the JSON format.</summary>
    private const byte Marker = 0xA7;

    private const int HashLength = 32;

    /// <summary>The most bytes <see cref="Frame(AccessRecord, Span{byte})"/> writes for a record.</summary>
    public static int MaxLength(AccessRecord record) => HeaderLength + AccessLogChain.MaxEncodedLength(record) + (2 * HashLength);

    /// <summary>Writes a record without its seq, hashes and checksum (<see cref="Seal"/> adds them); its length.</summary>
    public static int Frame(AccessRecord record, Span<byte> into)
    {
        var payload = AccessLogChain.Encode(0, record, into[HeaderLength..]) + (2 * HashLength);
        into[0] = Marker;
        BinaryPrimitives.WriteInt32LittleEndian(into[1..], payload);
        return HeaderLength + payload;
    }

    /// <summary>
    /// Numbers a framed record and chains it: its digest, then its hash = SHA-256(<paramref name="chain"/> ‖ digest),
    /// which is written into <paramref name="chain"/> too (the next record's predecessor), then the checksum. Both
    /// hashes go through <paramref name="sha256"/>, one hasher the caller keeps (under its lock): a one-shot hash sets up
    /// and frees OpenSSL's context each time, ~0.07 µs of the ~0.4 µs a hash of a record costs.
    /// </summary>
    public static void Seal(Span<byte> framed, long seq, Span<byte> chain, IncrementalHash sha256)
    {
        var payload = framed[HeaderLength..];
        var encoded = payload.Length - (2 * HashLength);
        BinaryPrimitives.WriteInt64BigEndian(payload, seq);
        var digest = payload.Slice(encoded, HashLength);
        sha256.AppendData(payload[..encoded]);
        sha256.GetHashAndReset(digest);
        sha256.AppendData(chain);
        sha256.AppendData(digest);
        sha256.GetHashAndReset(chain);
        chain.CopyTo(payload[(encoded + HashLength)..]);
        BinaryPrimitives.WriteUInt32LittleEndian(framed[5..], Crc32C(payload));
    }

    /// <summary>Writes a stored (never redacted) entry as it would have been sealed; its length.</summary>
    public static int Frame(AccessLogEntry entry, Span<byte> into)
    {
        var payload = into[HeaderLength..];
        var encoded = AccessLogChain.Encode(entry.Seq, entry.Record!, payload);
        Convert.FromHexString(entry.Digest, payload.Slice(encoded, HashLength), out _, out _);
        Convert.FromHexString(entry.Hash, payload.Slice(encoded + HashLength, HashLength), out _, out _);
        payload = payload[..(encoded + (2 * HashLength))];
        into[0] = Marker;
        BinaryPrimitives.WriteInt32LittleEndian(into[1..], payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(into[5..], Crc32C(payload));
        return HeaderLength + payload.Length;
    }

    /// <summary>
    /// The next record of a journal in this format: the bytes it takes (0 at the end: no more bytes, or a record cut
    /// off or not framed by this log, after which nothing is trusted) and its payload, empty when its checksum or
    /// content is wrong (skipped: verification reports the gap it leaves).
    /// </summary>
    public static int Next(ReadOnlySpan<byte> journal, out ReadOnlySpan<byte> payload)
    {
        payload = default;
        if (journal.Length < HeaderLength || journal[0] != Marker)
        {
            return 0;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(journal[1..]);
        if (length < 0 || length > journal.Length - HeaderLength)
        {
            return 0;
        }

        var candidate = journal.Slice(HeaderLength, length);
        if (Crc32C(candidate) == BinaryPrimitives.ReadUInt32LittleEndian(journal[5..]) && WellFormed(candidate))
        {
            payload = candidate;
        }

        return HeaderLength + length;
    }

    public static long Seq(ReadOnlySpan<byte> payload) => BinaryPrimitives.ReadInt64BigEndian(payload);

    public static long AtTicks(ReadOnlySpan<byte> payload) => BinaryPrimitives.ReadInt64BigEndian(payload[8..]);

    public static ReadOnlySpan<byte> Digest(ReadOnlySpan<byte> payload) => payload.Slice(payload.Length - (2 * HashLength), HashLength);

    public static ReadOnlySpan<byte> Hash(ReadOnlySpan<byte> payload) => payload[^HashLength..];

    /// <summary>The text fields of a payload, in <see cref="AccessLogChain.Encode"/>'s order: start with <c>Fields(payload)</c>, then <see cref="NextField"/>.</summary>
    public static ReadOnlySpan<byte> Fields(ReadOnlySpan<byte> payload) => payload[16..^(2 * HashLength)];

    /// <summary>Takes the next field off <paramref name="fields"/>: false for null, else its UTF-8 bytes.</summary>
    public static bool NextField(scoped ref ReadOnlySpan<byte> fields, out ReadOnlySpan<byte> utf8)
    {
        var size = BinaryPrimitives.ReadInt32BigEndian(fields);
        utf8 = fields.Slice(4, Math.Max(size, 0));
        fields = fields[(4 + utf8.Length)..];
        return size >= 0;
    }

    public static AccessLogEntry Entry(ReadOnlySpan<byte> payload)
    {
        var fields = Fields(payload);
        var text = new string?[AccessLogChain.Fields];
        for (var i = 0; i < text.Length; i++)
        {
            text[i] = NextField(ref fields, out var utf8) ? Encoding.UTF8.GetString(utf8) : null;
        }

        var record = new AccessRecord(new DateTimeOffset(AtTicks(payload), TimeSpan.Zero), text[0]!, text[1], text[2], text[3], text[4], text[5]!,
            text[6]!, text[7]!, text[8], text[9]!);
        return new AccessLogEntry(Seq(payload), record, Convert.ToHexStringLower(Digest(payload)), Convert.ToHexStringLower(Hash(payload)));
    }

    /// <summary>
    /// How many bytes a stored record keeps once redacted: only its digest and chain hash, the payload's last bytes (a
    /// payload is always longer).
    /// </summary>
    public const int RedactedLength = 2 * HashLength;

    /// <summary>
    /// A record as <see cref="SqliteAccessLog"/>'s table stores it (<paramref name="stored"/>: a payload, or its last
    /// <see cref="RedactedLength"/> bytes once redacted) as an entry numbered <paramref name="seq"/>; false when the
    /// bytes are neither (altered).
    /// </summary>
    public static bool TryStored(long seq, ReadOnlySpan<byte> stored, [NotNullWhen(true)] out AccessLogEntry? entry)
    {
        if (stored.Length == RedactedLength)
        {
            entry = new AccessLogEntry(seq, null, Convert.ToHexStringLower(Digest(stored)), Convert.ToHexStringLower(Hash(stored)));
            return true;
        }

        entry = WellFormed(stored) ? Entry(stored) with { Seq = seq } : null;
        return entry is not null;
    }

    /// <summary>An entry (redacted or not) in the form <see cref="TryStored"/> reads; its length.</summary>
    public static int Stored(AccessLogEntry entry, Span<byte> into)
    {
        if (entry.Record is not null)
        {
            var length = Frame(entry, into) - HeaderLength;
            into.Slice(HeaderLength, length).CopyTo(into);
            return length;
        }

        Convert.FromHexString(entry.Digest, into[..HashLength], out _, out _);
        Convert.FromHexString(entry.Hash, into[HashLength..RedactedLength], out _, out _);
        return RedactedLength;
    }

    /// <summary>The most bytes <see cref="Stored"/> writes for an entry.</summary>
    public static int MaxStoredLength(AccessLogEntry entry) => entry.Record is null ? RedactedLength : MaxLength(entry.Record);

    /// <summary>The complete records of a journal's bytes, in either format, in order.</summary>
    public static List<AccessLogEntry> Entries(ReadOnlySpan<byte> journal)
    {
        var entries = new List<AccessLogEntry>();
        if (!journal.IsEmpty && journal[0] == (byte)'{')
        {
            ReadJsonLines(journal, entries);
            return entries;
        }

        int taken;
        while ((taken = Next(journal, out var payload)) > 0)
        {
            if (!payload.IsEmpty)
            {
                entries.Add(Entry(payload));
            }

            journal = journal[taken..];
        }

        return entries;
    }

    /// <summary>A journal of the JSON format: one entry a line; a torn last line (a write cut by power loss) is ignored.</summary>
    private static void ReadJsonLines(ReadOnlySpan<byte> journal, List<AccessLogEntry> entries)
    {
        int end;
        while ((end = journal.IndexOf((byte)'\n')) >= 0)
        {
            try
            {
                if (JsonSerializer.Deserialize(journal[..end], JournalJson.Default.AccessLogEntry) is { Record: not null } entry)
                {
                    entries.Add(entry);
                }
            }
            catch (JsonException)
            {
                // Not a record this log wrote: verification reports the gap it leaves.
            }

            journal = journal[(end + 1)..];
        }
    }

    /// <summary>Whether a payload whose checksum fits holds seq, time, the fields (lengths in bounds) and the two hashes exactly.</summary>
    private static bool WellFormed(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 16 + (4 * AccessLogChain.Fields) + (2 * HashLength))
        {
            return false;
        }

        var fields = payload[16..^(2 * HashLength)];
        for (var i = 0; i < AccessLogChain.Fields; i++)
        {
            var size = fields.Length >= 4 ? BinaryPrimitives.ReadInt32BigEndian(fields) : int.MinValue;
            if (size < -1 || size > fields.Length - 4)
            {
                return false;
            }

            fields = fields[(4 + Math.Max(size, 0))..];
        }

        return fields.IsEmpty;
    }

    private static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = ~0u;
        for (; data.Length >= 8; data = data[8..])
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
        }

        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }
}

/// <summary>
/// The JSON format's entries, one a line (never redacted), generated at build time: journals written before the binary
/// format are read with it.
/// </summary>
[JsonSerializable(typeof(AccessLogEntry))]
internal sealed partial class JournalJson : JsonSerializerContext;
