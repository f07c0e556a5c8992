using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Machi.Broker.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Access;

/// <summary>
/// The access log (<see cref="IAccessLog"/>) of one node in <c>access-log.db</c> in the data directory: the append-only,
/// hash-chained log of every access to personal data.
/// Each record stores the SHA-256 digest of its content and the hash of the chain up to it: hash = SHA-256(previous hash
/// ‖ digest). Altering a record changes its digest; deleting or reordering records breaks the chain. Erasure on a
/// resident's request redacts the content of their records but keeps digest and hash, so the chain still verifies and
/// shows that a record existed.
/// </summary>
/// <remarks>
/// One writer numbers and chains the records and appends each group of them to a journal file
/// (<c>access-log.journal</c>) with one write; a request that shows personal data waits for that write, so a crash of
/// the process (kill -9) loses no record. A second thread flushes the journal to disk continuously, one fdatasync for
/// every group written meanwhile (as the entity store's <see cref="WalSyncer"/> does), without the request waiting: a
/// power failure can lose only the records written since the last flush, a few milliseconds' worth. The writer moves
/// the journal's records into the indexed SQLite table in large transactions (every <see cref="IndexDelay"/>, or
/// <see cref="IndexBatch"/> records, or before anything reads the log), then empties the journal; records the
/// journal still holds at start-up are moved first. Measured: a SQLite transaction per group made a consent-checked
/// read cost ~50 % more server CPU than the owner's own read; one per journal write removes most of that.
/// </remarks>
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

    /// <summary>How long records may wait in the journal before they are indexed while the log is written to.</summary>
    internal TimeSpan IndexDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Records in the journal past which they are indexed at once.</summary>
    private const int IndexBatch = 4_096;

    private readonly ILogger _logger;
    private readonly Segment[] _segments;
    private readonly List<(long Seq, TaskCompletionSource Done)> _waitingForIndex = [];
    private int _current;
    private Task<Exception?> _indexing = Task.FromResult<Exception?>(null);
    private WalCheckpointer? _checkpointer;

    /// <summary>
    /// One of the two journal files: the writer appends to one while the other's records are moved into the table, so
    /// indexing never holds up an append.
    /// </summary>
    private sealed class Segment(string path)
    {
        public string Path { get; } = path;

        public FileStream? File { get; set; }

        public WalSyncer? Syncer { get; set; }

        /// <summary>Its records not yet in the table (a failed index leaves them here, to go with the next one).</summary>
        public List<Journaled> Records { get; } = [];

        public long Oldest { get; set; }
    }

    /// <summary>A record with its place in the chain, as the journal holds it until it is indexed.</summary>
    private sealed record Journaled(long Seq, AccessRecord Record, string Digest, string Hash);

    public SqliteAccessLog(string path, ILogger<SqliteAccessLog>? logger = null)
    {
        Path = path;
        JournalPath = System.IO.Path.ChangeExtension(path, ".journal");
        _segments = [new Segment(JournalPath + ".0"), new Segment(JournalPath + ".1")];
        _logger = logger ?? NullLogger<SqliteAccessLog>.Instance;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        _loop = new Lazy<Task>(() => Task.Factory.StartNew(WriterLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap());
    }

    public string Path { get; }

    /// <summary>The journal's two files are this path with <c>.0</c> and <c>.1</c>.</summary>
    public string JournalPath { get; }

    /// <summary>Appends records; completes when they are written to the journal (safe from a crash of the process).</summary>
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

    /// <summary>Records in order, filtered; newest first when <paramref name="newestFirst"/>. Every record appended before the call is included.</summary>
    public async Task<IReadOnlyList<AccessLogEntry>> ReadAsync(string? resident = null, string? clientId = null, DateTimeOffset? since = null,
        DateTimeOffset? until = null, int limit = 100, int offset = 0, bool newestFirst = true, CancellationToken cancellationToken = default)
    {
        var (from, to) = (since, until);
        await IndexAsync().ConfigureAwait(false);
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

    /// <summary>
    /// Recomputes every digest and the chain, in order (the indexed records, then those still in the journal); the first
    /// record that does not fit is reported. Works beside a running server.
    /// </summary>
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
        var verifier = new AccessLogVerifier();
        foreach (var entry in Entries(r).Concat(ReadJournals().Select(j => new AccessLogEntry(j.Seq, j.Record, j.Digest, j.Hash))))
        {
            // A journal record indexed meanwhile was checked in the table already.
            if (entry.Seq >= verifier.Expected && verifier.Check(entry) is { } broken)
            {
                return broken;
            }
        }

        return verifier.Intact();
    }

    /// <summary>Erases the content of a resident's records (keeping digest and hash), then appends one record of the erasure.</summary>
    public async Task<int> RedactAsync(string resident, AccessRecord erasure)
    {
        await IndexAsync().ConfigureAwait(false);
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

        if (_checkpointer is not null)
        {
            await _checkpointer.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var segment in _segments)
        {
            if (segment.Syncer is not null)
            {
                await segment.Syncer.DisposeAsync().ConfigureAwait(false);
            }

            if (segment.File is not null)
            {
                await segment.File.DisposeAsync().ConfigureAwait(false);
            }
        }

        _writer?.Dispose();
    }

    private static readonly string[] InsertParameters =
        ["$seq", "$at", "$resident", "$client", "$subject", "$purpose", "$reason", "$operation", "$tenant", "$entity", "$attributes", "$node", "$digest", "$hash"];

    private const string Select =
        "SELECT seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, redacted, digest, hash FROM access_log";

    private static IEnumerable<AccessLogEntry> Entries(SqliteDataReader r)
    {
        while (r.Read())
        {
            yield return Entry(r);
        }
    }

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

    private SqliteConnection? Open(bool readOnly, string synchronous = "FULL")
    {
        if (readOnly && !File.Exists(Path))
        {
            return null;
        }

        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous={synchronous};
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

    /// <summary>Completes once every record appended before the call is in the indexed table.</summary>
    private Task IndexAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_pending.Writer.TryWrite(([], done)))
        {
            return Task.CompletedTask; // disposed: everything was indexed on the way out
        }

        _ = _loop.Value;
        return done.Task;
    }

    private async Task WriterLoop()
    {
        // NORMAL: the journal is what must survive a crash; the table is written in large transactions, each flushed
        // (below) before the journal segment holding the same records is emptied. Checkpoints run beside the writer.
        _writer = Open(readOnly: false, synchronous: "NORMAL")!;
        using (var noAutoCheckpoint = _writer.CreateCommand())
        {
            noAutoCheckpoint.CommandText = "PRAGMA wal_autocheckpoint=0";
            noAutoCheckpoint.ExecuteNonQuery();
        }

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
            INSERT OR IGNORE INTO access_log (seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, digest, hash)
            VALUES ($seq, $at, $resident, $client, $subject, $purpose, $reason, $operation, $tenant, $entity, $attributes, $node, $digest, $hash)
            """;
        var parameters = InsertParameters.Select(name => insert.Parameters.Add(new SqliteParameter(name, DBNull.Value))).ToArray();
        insert.Prepare();

        // Records a crash left in the journal (written, not yet indexed) are indexed first, into the first segment.
        var left = ReadJournals().Where(j => j.Seq > _lastSeq).ToList();
        foreach (var segment in _segments)
        {
            segment.File = new FileStream(segment.Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
            segment.File.Position = segment.File.Length;
            segment.Syncer = new WalSyncer(segment.Path, _logger);
        }

        if (left.Count > 0)
        {
            _segments[0].Records.AddRange(left);
            (_lastSeq, _lastHash) = (left[^1].Seq, Convert.FromHexString(left[^1].Hash));
        }

        if (Index(_segments[0], insert, parameters) is { } failure)
        {
            throw new IOException("The access log's journal could not be indexed at start-up", failure);
        }

        _segments[1].File!.SetLength(0);
        _checkpointer = new WalCheckpointer(_connectionString, _logger);

        var batch = new List<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)>();
        var requests = new List<TaskCompletionSource>();
        var buffer = new MemoryStream();
        while (await WaitForWorkAsync().ConfigureAwait(false))
        {
            batch.Clear();
            requests.Clear();
            while (_pending.Reader.TryRead(out var item))
            {
                if (item.Records.Count == 0)
                {
                    requests.Add(item.Done);
                }
                else
                {
                    batch.Add(item);
                }
            }

            if (batch.Count > 0)
            {
                Journal(_segments[_current], batch, buffer);
            }

            _waitingForIndex.AddRange(requests.Select(done => (_lastSeq, done)));

            HandOff(insert, parameters);
        }

        await _indexing.ConfigureAwait(false);
        Index(_segments[_current], insert, parameters);
        Index(_segments[1 - _current], insert, parameters);
        CompleteIndexRequests();
    }

    /// <summary>
    /// Waits until there is something to do: appends or index requests, records in the journal due for the table, or
    /// the indexer free again while records wait for it. False once the log is disposed and every append was taken.
    /// </summary>
    private async Task<bool> WaitForWorkAsync()
    {
        if (_pending.Reader.TryPeek(out _))
        {
            return true;
        }

        Task? wake = null;
        var waiting = _segments.Where(s => s.Records.Count > 0).ToList();
        if (waiting.Count > 0 || _waitingForIndex.Count > 0)
        {
            if (!_indexing.IsCompleted)
            {
                wake = _indexing;
            }
            else
            {
                var due = waiting.Count == 0 ? TimeSpan.Zero : IndexDelay - Stopwatch.GetElapsedTime(waiting.Min(s => s.Oldest));
                if (due <= TimeSpan.Zero || _waitingForIndex.Count > 0)
                {
                    return true;
                }

                wake = Task.Delay(due);
            }
        }

        using var stop = new CancellationTokenSource();
        var read = _pending.Reader.WaitToReadAsync(stop.Token).AsTask();
        if (wake is not null && await Task.WhenAny(read, wake).ConfigureAwait(false) != read)
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await ((Task)read).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return true;
        }

        return await read.ConfigureAwait(false);
    }

    /// <summary>
    /// When the indexer is free: finishes the index requests it satisfied, then hands it a segment — records a failed
    /// attempt left in the other segment first; else the current one when it is due (old or full enough, or an index
    /// request waits for it), the writer going on in the other segment.
    /// </summary>
    private void HandOff(SqliteCommand insert, SqliteParameter[] parameters)
    {
        if (!_indexing.IsCompleted)
        {
            return;
        }

        CompleteIndexRequests();
        var current = _segments[_current];
        var other = _segments[1 - _current];
        var pressed = _waitingForIndex.Count > 0;
        if (other.Records.Count > 0 && (pressed || Stopwatch.GetElapsedTime(other.Oldest) >= IndexDelay))
        {
            other.Oldest = Stopwatch.GetTimestamp();
            _indexing = Task.Run(() => Index(other, insert, parameters));
            return;
        }

        if (other.Records.Count > 0 || current.Records.Count == 0
            || (current.Records.Count < IndexBatch && Stopwatch.GetElapsedTime(current.Oldest) < IndexDelay && !pressed))
        {
            return;
        }

        _current = 1 - _current;
        _indexing = Task.Run(() => Index(current, insert, parameters));
    }

    /// <summary>Completes the index requests whose records are all in the table now (indexer idle).</summary>
    private void CompleteIndexRequests()
    {
        var failure = _indexing.IsCompletedSuccessfully ? _indexing.Result : null;
        var unindexed = _segments.SelectMany(s => s.Records).Select(r => r.Seq).DefaultIfEmpty(long.MaxValue).Min();
        _waitingForIndex.RemoveAll(w =>
        {
            if (w.Seq < unindexed)
            {
                w.Done.TrySetResult();
                return true;
            }

            if (failure is not null)
            {
                w.Done.TrySetException(failure);
                return true;
            }

            return false;
        });
    }

    /// <summary>Numbers, chains and writes a group of records to the segment with one write, then acknowledges them.</summary>
    private void Journal(Segment segment, List<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)> batch, MemoryStream buffer)
    {
        var (seq, hash) = (_lastSeq, _lastHash);
        var journaled = new List<Journaled>();
        buffer.SetLength(0);
        using (var json = new Utf8JsonWriter(buffer))
        {
            foreach (var record in batch.SelectMany(b => b.Records))
            {
                seq++;
                var digest = AccessLogChain.Digest(seq, record);
                hash = AccessLogChain.Chain(hash, digest);
                var entry = new Journaled(seq, record, Convert.ToHexStringLower(digest), Convert.ToHexStringLower(hash));
                journaled.Add(entry);
                JsonSerializer.Serialize(json, entry);
                json.Flush();
                json.Reset();
                buffer.WriteByte((byte)'\n');
            }
        }

        try
        {
            segment.File!.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
        catch (IOException ex)
        {
            _logger.LogCritical(ex, "Writing the access log's journal failed: {Count} requests are refused", batch.Count);
            batch.ForEach(b => b.Done.TrySetException(ex));
            return;
        }

        if (segment.Records.Count == 0)
        {
            segment.Oldest = Stopwatch.GetTimestamp();
        }

        segment.Records.AddRange(journaled);
        (_lastSeq, _lastHash) = (seq, hash);
        batch.ForEach(b => b.Done.TrySetResult());
        segment.Syncer!.Add(NotFlushed);
    }

    /// <summary>
    /// Moves a segment's records into the table in one transaction, flushed to disk, then empties the segment; the
    /// failure, if any (the records then stay in the segment, which a later index or the next start moves).
    /// </summary>
    private Exception? Index(Segment segment, SqliteCommand insert, SqliteParameter[] parameters)
    {
        if (segment.Records.Count == 0)
        {
            return null;
        }

        try
        {
            using (var tx = _writer!.BeginTransaction())
            {
                insert.Transaction = tx;
                foreach (var (seq, record, digest, hash) in segment.Records)
                {
                    object?[] values =
                    [
                        seq, record.At.UtcTicks, record.Resident, record.ClientId, record.Subject, record.Purpose, record.EmergencyReason,
                        record.Operation, record.Tenant, record.EntityId, record.Attributes, record.Node, digest, hash,
                    ];
                    for (var i = 0; i < values.Length; i++)
                    {
                        parameters[i].Value = values[i] ?? DBNull.Value;
                    }

                    insert.ExecuteNonQuery();
                }

                tx.Commit();
            }

            // The table's write-ahead log must be on disk before the segment that holds the same records is emptied.
            using (var wal = new FileStream(Path + "-wal", FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0))
            {
                wal.Flush(flushToDisk: true);
            }

            segment.File!.SetLength(0);
            segment.File.Position = 0;
            segment.Records.Clear();
            _checkpointer?.Committed();
            if (_checkpointer?.TakeTailRequest() == true)
            {
                using var tail = _writer.CreateCommand();
                tail.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
                tail.ExecuteNonQuery();
            }

            return null;
        }
        catch (Exception ex) when (ex is SqliteException or IOException)
        {
            _logger.LogError(ex, "Indexing {Count} access log records failed; they stay in the journal", segment.Records.Count);
            return ex;
        }
    }

    /// <summary>The complete records of both journal segments, in order of seq.</summary>
    private List<Journaled> ReadJournals() => [.. _segments.SelectMany(s => ReadJournal(s.Path)).OrderBy(j => j.Seq)];

    /// <summary>The complete records of a journal file, in order; a torn last line (a write cut by power loss) is ignored.</summary>
    private static IEnumerable<Journaled> ReadJournal(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        byte[] bytes;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            bytes = new byte[file.Length];
            file.ReadExactly(bytes);
        }

        var rest = bytes.AsMemory();
        int end;
        while ((end = rest.Span.IndexOf((byte)'\n')) >= 0)
        {
            Journaled? entry = null;
            try
            {
                entry = JsonSerializer.Deserialize<Journaled>(rest.Span[..end]);
            }
            catch (JsonException)
            {
                // Not a record this log wrote: verification reports the gap it leaves.
            }

            rest = rest[(end + 1)..];
            if (entry is not null)
            {
                yield return entry;
            }
        }
    }

    private void NotFlushed(Exception? failure)
    {
        if (failure is not null)
        {
            _logger.LogCritical(failure, "The access log could not be flushed to disk");
        }
    }
}
