using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

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
/// The append-only, hash-chained log of every access to personal data (<c>access-log.db</c> in the data directory).
/// Each record stores the SHA-256 digest of its content and the hash of the chain up to it: hash = SHA-256(previous hash
/// ‖ digest). Altering a record changes its digest; deleting or reordering records breaks the chain. Erasure on a
/// resident's request redacts the content of their records but keeps digest and hash, so the chain still verifies and
/// shows that a record existed. Appends are group-committed by one writer and acknowledged once on disk: a request that
/// shows personal data waits until its access is logged.
/// </summary>
public sealed class AccessLog : IAsyncDisposable
{
    private static readonly byte[] Genesis = new byte[32];
    private readonly string _connectionString;
    private readonly Channel<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)> _pending =
        Channel.CreateUnbounded<(IReadOnlyList<AccessRecord>, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lazy<Task> _loop;
    private SqliteConnection? _writer;
    private long _lastSeq;
    private byte[] _lastHash = Genesis;

    public AccessLog(string path)
    {
        Path = path;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        _loop = new Lazy<Task>(() => Task.Factory.StartNew(WriterLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap());
    }

    public string Path { get; }

    /// <summary>Appends records; completes when they are on disk.</summary>
    public Task AppendAsync(IReadOnlyList<AccessRecord> records)
    {
        if (records.Count == 0)
        {
            return Task.CompletedTask;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending.Writer.TryWrite((records, done));
        _ = _loop.Value;
        return done.Task;
    }

    /// <summary>Records in order, filtered; newest first when <paramref name="newestFirst"/>.</summary>
    public IReadOnlyList<AccessLogEntry> Read(string? resident = null, string? clientId = null, DateTimeOffset? from = null, DateTimeOffset? to = null,
        int limit = 100, int offset = 0, bool newestFirst = true)
    {
        using var c = Open(readOnly: true);
        if (c is null)
        {
            return [];
        }

        using var cmd = c.CreateCommand();
        var where = new List<string> { "1 = 1" };
        if (resident is not null)
        {
            where.Add("resident = $resident");
            cmd.Parameters.AddWithValue("$resident", resident);
        }

        if (clientId is not null)
        {
            where.Add("client_id = $client");
            cmd.Parameters.AddWithValue("$client", clientId);
        }

        if (from is not null)
        {
            where.Add("at >= $from");
            cmd.Parameters.AddWithValue("$from", from.Value.UtcTicks);
        }

        if (to is not null)
        {
            where.Add("at < $to");
            cmd.Parameters.AddWithValue("$to", to.Value.UtcTicks);
        }

        cmd.CommandText = $"{Select} WHERE {string.Join(" AND ", where)} ORDER BY seq {(newestFirst ? "DESC" : "ASC")} LIMIT $limit OFFSET $offset";
        cmd.Parameters.AddWithValue("$limit", limit);
        cmd.Parameters.AddWithValue("$offset", offset);
        return Entries(cmd);
    }

    /// <summary>Recomputes every digest and the chain, in order; the first record that does not fit is reported.</summary>
    public AccessLogVerification Verify()
    {
        using var c = Open(readOnly: true);
        if (c is null)
        {
            return new AccessLogVerification(0, 0, null, null);
        }

        using var cmd = c.CreateCommand();
        cmd.CommandText = $"{Select} ORDER BY seq";
        using var r = cmd.ExecuteReader();
        var previous = Genesis;
        long expectedSeq = 1, count = 0, redacted = 0;
        while (r.Read())
        {
            var entry = Entry(r);
            count++;
            if (entry.Seq != expectedSeq)
            {
                return new AccessLogVerification(count, redacted, expectedSeq, $"record {expectedSeq} is missing (next is {entry.Seq})");
            }

            if (entry.Record is null)
            {
                redacted++;
            }
            else if (!string.Equals(Convert.ToHexStringLower(Digest(entry.Seq, entry.Record)), entry.Digest, StringComparison.Ordinal))
            {
                return new AccessLogVerification(count, redacted, entry.Seq, $"record {entry.Seq} was altered (its content does not match its digest)");
            }

            var hash = Chain(previous, Convert.FromHexString(entry.Digest));
            if (!string.Equals(Convert.ToHexStringLower(hash), entry.Hash, StringComparison.Ordinal))
            {
                return new AccessLogVerification(count, redacted, entry.Seq, $"record {entry.Seq} does not follow its predecessor (chain hash differs)");
            }

            previous = hash;
            expectedSeq++;
        }

        return new AccessLogVerification(count, redacted, null, null);
    }

    /// <summary>Erases the content of a resident's records (keeping digest and hash), then appends one record of the erasure.</summary>
    public async Task<int> RedactAsync(string resident, AccessRecord erasure)
    {
        int redacted;
        using (var c = Open(readOnly: false)!)
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                UPDATE access_log SET resident = NULL, client_id = NULL, subject = NULL, purpose = NULL, emergency_reason = NULL,
                    operation = NULL, tenant = NULL, entity_id = NULL, attributes = NULL, node = NULL, redacted = 1
                WHERE resident = $resident
                """;
            cmd.Parameters.AddWithValue("$resident", resident);
            redacted = cmd.ExecuteNonQuery();
        }

        await AppendAsync([erasure]).ConfigureAwait(false);
        return redacted;
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        if (_loop.IsValueCreated)
        {
            await _loop.Value.ConfigureAwait(false);
        }

        _writer?.Dispose();
    }

    private const string Select =
        "SELECT seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, redacted, digest, hash FROM access_log";

    private static List<AccessLogEntry> Entries(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<AccessLogEntry>();
        while (r.Read())
        {
            list.Add(Entry(r));
        }

        return list;
    }

    private static AccessLogEntry Entry(SqliteDataReader r)
    {
        string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
        var record = r.GetInt64(12) != 0
            ? null
            : new AccessRecord(new DateTimeOffset(r.GetInt64(1), TimeSpan.Zero), r.GetString(2), Text(3), Text(4), Text(5), Text(6),
                r.GetString(7), r.GetString(8), r.GetString(9), Text(10), r.GetString(11));
        return new AccessLogEntry(r.GetInt64(0), record, r.GetString(13), r.GetString(14));
    }

    private SqliteConnection? Open(bool readOnly)
    {
        if (readOnly && !File.Exists(Path))
        {
            return null;
        }

        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            PRAGMA busy_timeout=5000;
            CREATE TABLE IF NOT EXISTS access_log (
                seq INTEGER PRIMARY KEY,
                at INTEGER,
                resident TEXT,
                client_id TEXT,
                subject TEXT,
                purpose TEXT,
                emergency_reason TEXT,
                operation TEXT,
                tenant TEXT,
                entity_id TEXT,
                attributes TEXT,
                node TEXT,
                redacted INTEGER NOT NULL DEFAULT 0,
                digest TEXT NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS access_log_resident ON access_log (resident, seq);
            CREATE INDEX IF NOT EXISTS access_log_client ON access_log (client_id, seq);
            """;
        cmd.ExecuteNonQuery();
        return c;
    }

    private async Task WriterLoop()
    {
        _writer = Open(readOnly: false)!;
        using (var last = _writer.CreateCommand())
        {
            last.CommandText = "SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1";
            using var r = last.ExecuteReader();
            if (r.Read())
            {
                _lastSeq = r.GetInt64(0);
                _lastHash = Convert.FromHexString(r.GetString(1));
            }
        }

        using var insert = _writer.CreateCommand();
        insert.CommandText = """
            INSERT INTO access_log (seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, digest, hash)
            VALUES ($seq, $at, $resident, $client, $subject, $purpose, $reason, $operation, $tenant, $entity, $attributes, $node, $digest, $hash)
            """;
        var batch = new List<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)>();
        while (await _pending.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (_pending.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            var (seq, hash) = (_lastSeq, _lastHash);
            try
            {
                using var tx = _writer.BeginTransaction();
                insert.Transaction = tx;
                foreach (var record in batch.SelectMany(b => b.Records))
                {
                    seq++;
                    var digest = Digest(seq, record);
                    hash = Chain(hash, digest);
                    insert.Parameters.Clear();
                    insert.Parameters.AddWithValue("$seq", seq);
                    insert.Parameters.AddWithValue("$at", record.At.UtcTicks);
                    insert.Parameters.AddWithValue("$resident", record.Resident);
                    insert.Parameters.AddWithValue("$client", (object?)record.ClientId ?? DBNull.Value);
                    insert.Parameters.AddWithValue("$subject", (object?)record.Subject ?? DBNull.Value);
                    insert.Parameters.AddWithValue("$purpose", (object?)record.Purpose ?? DBNull.Value);
                    insert.Parameters.AddWithValue("$reason", (object?)record.EmergencyReason ?? DBNull.Value);
                    insert.Parameters.AddWithValue("$operation", record.Operation);
                    insert.Parameters.AddWithValue("$tenant", record.Tenant);
                    insert.Parameters.AddWithValue("$entity", record.EntityId);
                    insert.Parameters.AddWithValue("$attributes", (object?)record.Attributes ?? DBNull.Value);
                    insert.Parameters.AddWithValue("$node", record.Node);
                    insert.Parameters.AddWithValue("$digest", Convert.ToHexStringLower(digest));
                    insert.Parameters.AddWithValue("$hash", Convert.ToHexStringLower(hash));
                    insert.ExecuteNonQuery();
                }

                tx.Commit();
                (_lastSeq, _lastHash) = (seq, hash);
                batch.ForEach(b => b.Done.TrySetResult());
            }
            catch (Exception ex) when (ex is SqliteException or IOException)
            {
                batch.ForEach(b => b.Done.TrySetException(ex));
            }
        }
    }

    private static byte[] Chain(byte[] previous, byte[] digest)
    {
        Span<byte> both = stackalloc byte[64];
        previous.CopyTo(both);
        digest.CopyTo(both[32..]);
        return SHA256.HashData(both);
    }

    /// <summary>SHA-256 of the record's fields, each length-prefixed (so no two records share an encoding), with its seq.</summary>
    private static byte[] Digest(long seq, AccessRecord record)
    {
        using var buffer = new MemoryStream();
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(number, seq);
        buffer.Write(number);
        BinaryPrimitives.WriteInt64BigEndian(number, record.At.UtcTicks);
        buffer.Write(number);
        foreach (var field in new[] { record.Resident, record.ClientId, record.Subject, record.Purpose, record.EmergencyReason, record.Operation, record.Tenant, record.EntityId, record.Attributes, record.Node })
        {
            if (field is null)
            {
                BinaryPrimitives.WriteInt32BigEndian(number, -1);
                buffer.Write(number[..4]);
                continue;
            }

            var bytes = Encoding.UTF8.GetBytes(field);
            BinaryPrimitives.WriteInt32BigEndian(number, bytes.Length);
            buffer.Write(number[..4]);
            buffer.Write(bytes);
        }

        return SHA256.HashData(buffer.ToArray());
    }
}
