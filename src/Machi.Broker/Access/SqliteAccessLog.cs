using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Access;

/// <summary>
/// The access log (<see cref="IAccessLog"/>) in <c>access-log.db</c> in the data directory, one chain. Appends are
/// group-committed by one writer and acknowledged once on disk.
/// </summary>
public sealed class SqliteAccessLog : IAccessLog
{
    private static readonly byte[] Genesis = AccessLogChain.Start();
    private readonly string _connectionString;
    private readonly Channel<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)> _pending =
        Channel.CreateUnbounded<(IReadOnlyList<AccessRecord>, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lazy<Task> _loop;
    private SqliteConnection? _writer;
    private long _lastSeq;
    private byte[] _lastHash = Genesis;

    public SqliteAccessLog(string path)
    {
        Path = path;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        _loop = new Lazy<Task>(() => Task.Factory.StartNew(WriterLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap());
    }

    public string Path { get; }

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

    public Task<IReadOnlyList<AccessLogEntry>> ReadAsync(string? resident = null, string? clientId = null, DateTimeOffset? since = null, DateTimeOffset? until = null,
        int limit = 100, int offset = 0, bool newestFirst = true, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<AccessLogEntry>>(Read(resident, clientId, since, until, limit, offset, newestFirst));

    private List<AccessLogEntry> Read(string? resident, string? clientId, DateTimeOffset? from, DateTimeOffset? to, int limit, int offset, bool newestFirst)
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

    public Task<AccessLogVerification> VerifyAsync(CancellationToken cancellationToken = default) => Task.FromResult(Verify());

    private AccessLogVerification Verify()
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
            else if (!string.Equals(Convert.ToHexStringLower(AccessLogChain.Digest(entry.Seq, entry.Record)), entry.Digest, StringComparison.Ordinal))
            {
                return new AccessLogVerification(count, redacted, entry.Seq, $"record {entry.Seq} was altered (its content does not match its digest)");
            }

            var hash = AccessLogChain.Chain(previous, Convert.FromHexString(entry.Digest));
            if (!string.Equals(Convert.ToHexStringLower(hash), entry.Hash, StringComparison.Ordinal))
            {
                return new AccessLogVerification(count, redacted, entry.Seq, $"record {entry.Seq} does not follow its predecessor (chain hash differs)");
            }

            previous = hash;
            expectedSeq++;
        }

        return new AccessLogVerification(count, redacted, null, null);
    }

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
                    var digest = AccessLogChain.Digest(seq, record);
                    hash = AccessLogChain.Chain(hash, digest);
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
}
