using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Machi.Broker.Access;

/// <summary>One access to a resident's personal data by someone other than the resident.</summary>
/// <param name="Operation">read, query, write, delete, temporal, notify, stream, emergency …</param>
/// <param name="Attributes">The attributes returned or changed (expanded names); null when the whole entity.</param>
public sealed record AccessRecord(
    DateTimeOffset At,
    string Resident,
    string? ClientId,
    string? Subject,
    string? Purpose,
    string? EmergencyReason,
    string Operation,
    string Tenant,
    string EntityId,
    string? Attributes,
    string Node);

/// <summary>A stored record: its place in the chain; <see cref="Record"/> is null once redacted (the resident's data was erased).</summary>
public sealed record AccessLogEntry(long Seq, AccessRecord? Record, string Digest, string Hash);

/// <summary>What <c>machi audit verify</c> found: every record in order, or the first one that breaks the chain.</summary>
public sealed record AccessLogVerification(long Records, long Redacted, long? FirstBrokenSeq, string? Problem)
{
    public bool Intact => FirstBrokenSeq is null;
}

/// <summary>
/// The append-only, hash-chained log of every access to personal data. Each record stores the SHA-256 digest of its
/// content and the hash of the chain up to it: hash = SHA-256(previous hash ‖ digest). Altering a record changes its
/// digest; deleting or reordering records breaks the chain. Erasure on a resident's request redacts the content of
/// their records but keeps digest and hash, so the chain still verifies and shows that a record existed. A request
/// that shows personal data waits until its access is logged. In the data directory's <c>access-log.db</c>
/// (<see cref="SqliteAccessLog"/>) or, with several nodes, in PostgreSQL with one chain per node (<see cref="PostgresAccessLog"/>).
/// </summary>
public interface IAccessLog : IAsyncDisposable
{
    /// <summary>Appends records; completes when they are durable.</summary>
    Task AppendAsync(IReadOnlyList<AccessRecord> records);

    /// <summary>Records in order, filtered; newest first when <paramref name="newestFirst"/>.</summary>
    Task<IReadOnlyList<AccessLogEntry>> ReadAsync(string? resident = null, string? clientId = null, DateTimeOffset? since = null, DateTimeOffset? until = null,
        int limit = 100, int offset = 0, bool newestFirst = true, CancellationToken cancellationToken = default);

    /// <summary>Recomputes every digest and chain, in order; the first record that does not fit is reported.</summary>
    Task<AccessLogVerification> VerifyAsync(CancellationToken cancellationToken = default);

    /// <summary>Erases the content of a resident's records (keeping digest and hash), then appends one record of the erasure.</summary>
    Task<int> RedactAsync(string resident, AccessRecord erasure);
}

/// <summary>The hashes every access log computes the same way.</summary>
internal static class AccessLogChain
{
    /// <summary>The hash before the first record of a chain.</summary>
    public static byte[] Start() => new byte[32];

    /// <summary>The hash of a chain up to a record: SHA-256(previous hash ‖ the record's digest).</summary>
    public static byte[] Chain(byte[] previous, byte[] digest)
    {
        Span<byte> both = stackalloc byte[64];
        previous.CopyTo(both);
        digest.CopyTo(both[32..]);
        return SHA256.HashData(both);
    }

    /// <summary>SHA-256 of the record's fields, each length-prefixed (so no two records share an encoding), with its seq.</summary>
    public static byte[] Digest(long seq, AccessRecord record)
    {
        var length = MaxEncodedLength(record);
        var buffer = length <= 1024 ? stackalloc byte[length] : new byte[length];
        return SHA256.HashData(buffer[..Encode(seq, record, buffer)]);
    }

    /// <summary>A length <see cref="Encode"/> never exceeds for <paramref name="record"/> (UTF-8 takes at most 3 bytes a UTF-16 char).</summary>
    public static int MaxEncodedLength(AccessRecord record)
    {
        var length = 16;
        for (var i = 0; i < Fields; i++)
        {
            length += 4 + (3 * (Field(record, i)?.Length ?? 0));
        }

        return length;
    }

    /// <summary>
    /// What the digest covers: seq and time (UTC ticks, big-endian), then each field's UTF-8 bytes after its length (-1
    /// for null); the length written. The journal stores records in this encoding too, so it is made once.
    /// </summary>
    public static int Encode(long seq, AccessRecord record, Span<byte> into)
    {
        BinaryPrimitives.WriteInt64BigEndian(into, seq);
        BinaryPrimitives.WriteInt64BigEndian(into[8..], record.At.UtcTicks);
        var at = 16;
        for (var i = 0; i < Fields; i++)
        {
            var field = Field(record, i);
            var size = field is null ? -1 : Encoding.UTF8.GetBytes(field, into[(at + 4)..]);
            BinaryPrimitives.WriteInt32BigEndian(into[at..], size);
            at += 4 + Math.Max(size, 0);
        }

        return at;
    }

    /// <summary>How many text fields <see cref="Encode"/> writes, in the order of the access_log table's columns.</summary>
    public const int Fields = 10;

    private static string? Field(AccessRecord record, int i) => i switch
    {
        0 => record.Resident,
        1 => record.ClientId,
        2 => record.Subject,
        3 => record.Purpose,
        4 => record.EmergencyReason,
        5 => record.Operation,
        6 => record.Tenant,
        7 => record.EntityId,
        8 => record.Attributes,
        _ => record.Node,
    };
}

/// <summary>
/// Checks stored records in order, one chain after another (each chain starts again at seq 1 from the start hash):
/// the first record missing, altered or out of its chain ends the check. Both logs verify with it.
/// </summary>
internal sealed class AccessLogVerifier
{
    private string? _chain;
    private byte[] _previous = AccessLogChain.Start();
    private long _expected = 1;
    private long _records;
    private long _redacted;

    /// <summary>The seq the next record of the current chain must have.</summary>
    public long Expected => _expected;

    /// <summary>Checks the next record (of the chain named <paramref name="chain"/>); the failed verification, or null while intact.</summary>
    public AccessLogVerification? Check(AccessLogEntry entry, string? chain = null)
    {
        if (!string.Equals(chain, _chain, StringComparison.Ordinal))
        {
            (_chain, _previous, _expected) = (chain, AccessLogChain.Start(), 1);
        }

        var of = chain is null ? "" : $" of node {chain}";
        _records++;
        if (entry.Seq != _expected)
        {
            return Broken(_expected, $"record {_expected}{of} is missing (next is {entry.Seq})");
        }

        if (entry.Record is null)
        {
            _redacted++;
        }
        else if (!string.Equals(Convert.ToHexStringLower(AccessLogChain.Digest(entry.Seq, entry.Record)), entry.Digest, StringComparison.Ordinal))
        {
            return Broken(entry.Seq, $"record {entry.Seq}{of} was altered (its content does not match its digest)");
        }

        var hash = AccessLogChain.Chain(_previous, Convert.FromHexString(entry.Digest));
        if (!string.Equals(Convert.ToHexStringLower(hash), entry.Hash, StringComparison.Ordinal))
        {
            return Broken(entry.Seq, $"record {entry.Seq}{of} does not follow its predecessor (chain hash differs)");
        }

        _previous = hash;
        _expected++;
        return null;
    }

    /// <summary>The verification that ends at a stored record that cannot be read as one (its bytes were altered).</summary>
    public AccessLogVerification Unreadable(long seq)
    {
        _records++;
        return Broken(seq, $"record {seq} was altered (its stored bytes are not a record)");
    }

    /// <summary>Every record checked fits.</summary>
    public AccessLogVerification Intact() => new(_records, _redacted, null, null);

    private AccessLogVerification Broken(long seq, string problem) => new(_records, _redacted, seq, problem);
}

