using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Machi.Broker.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Win32.SafeHandles;
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
/// A request that shows personal data appends its records itself, under one lock: the records are numbered, chained and
/// written to a journal file (<c>access-log.journal.0</c> or <c>.1</c>) with one write, so a crash of the process
/// (kill -9) loses no acknowledged record, and the request goes on without waiting for another thread. A flusher thread
/// makes the journal durable (one fdatasync for whatever was written meanwhile, at most one every
/// <see cref="FlushPause"/>) without the request waiting: a power failure can lose only the records written since the
/// last flush, at most 20 ms' worth. An indexer thread moves
/// the journal's records into the indexed SQLite table in large transactions (every <see cref="IndexDelay"/>, or
/// <see cref="IndexBatch"/> records, or before anything reads the log) while appends go on in the other journal file,
/// then empties the journal it moved; records a journal still holds at start-up are moved first. The journal's records
/// are binary (<see cref="AccessLogJournal"/>), encoded by the request before it takes the lock; the log keeps no
/// object per record meanwhile (the indexer reads the segment's file back).
/// Measured (bench <c>--scenario consent</c>): a SQLite transaction per group of records made a consent-checked read
/// cost ~50 % more server CPU than the owner's own read; handing each append to a writer thread and back still cost
/// ~60–95 µs of CPU per request in thread wake-ups, which appending on the request's own thread removes.
/// </remarks>
public sealed class SqliteAccessLog : IAccessLog
{
    private readonly string _connectionString;
    private readonly ILogger _logger;
    private readonly Segment[] _segments;

    /// <summary>Guards the chain, the journal being written, the segments' record lists and the index requests.</summary>
    private readonly Lock _gate = new();
    private readonly List<(long Seq, TaskCompletionSource Done)> _waitingForIndex = [];
    private readonly SemaphoreSlim _indexWake = new(0, 1);
    private readonly SemaphoreSlim _flushWake = new(0, 1);
    private Thread? _indexer;
    private Thread? _flusher;
    private bool _started;
    private bool _disposed;
    private int _unflushed;
    private SqliteConnection? _writer;
    private RawStatement? _insert;
    private RawStatement? _nameId;
    private RawStatement? _addName;
    private RawStatement? _byResident;
    private RawStatement? _byClient;
    private WalCheckpointer? _checkpointer;
    private long _lastSeq;
    private byte[] _lastHash = AccessLogChain.Start();
    private int _current;

    /// <summary>The indexer's copy of the segment it moves (kept: a batch is megabytes).</summary>
    private byte[] _indexing = [];

    /// <summary>
    /// The numbers of the residents' and clients' names in the compact indexes, as far as the indexer looked them up
    /// (a name keeps its number; looking each up again in every batch cost ~0.5 µs of CPU per record with 10,000
    /// residents). Indexer thread only.
    /// </summary>
    private readonly Dictionary<string, long> _names = new(StringComparer.Ordinal);

    /// <summary>Names past which <see cref="_names"/> starts again, so it stays a few megabytes.</summary>
    private const int NamesKept = 100_000;

    /// <summary>
    /// How long records may wait in the journal before they are indexed while the log is written to. Anything that
    /// reads the log indexes what waits first, so the wait is never seen; it only makes the batches large.
    /// </summary>
    internal TimeSpan IndexDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Records in the journal past which they are indexed at once. Large batches are what make the indexes cheap: each
    /// record lands on its resident's last page of the resident index, and SQLite writes every page a transaction
    /// dirtied whole, so a batch costs about a page per distinct resident in it rather than a page per record.
    /// Measured on 10,000 residents (16 threads appending, indexing included): ~30 µs of CPU per record with text
    /// indexes on the table in batches of 4,096 or in resident order, ~15 µs with the rows in seq order and the
    /// compact index entries sorted, in batches of 65,536.
    /// </summary>
    private const int IndexBatch = 65_536;

    /// <summary>
    /// The least time between two flushes of the journal: under load each flush covers the appends of 20 ms, so the
    /// disk is asked at most 50 times a second (each fdatasync costs ~180 µs of CPU in a small VM, and its I/O kicks
    /// showed in profiles of consent-checked reads at 2 ms). A crash of the process loses nothing (each append is
    /// written before the request goes on); a power failure can lose the last 20 ms of records.
    /// </summary>
    private static readonly TimeSpan FlushPause = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// One of the two journal files: requests append to one while the other's records are moved into the table, so
    /// indexing never holds up an append.
    /// </summary>
    private sealed class Segment(string path)
    {
        public string Path { get; } = path;

        /// <summary>The handle appends write through, at <see cref="Length"/>.</summary>
        public SafeFileHandle? File { get; set; }

        /// <summary>The flusher's own handle (an fdatasync on it flushes the file, whoever wrote).</summary>
        public FileStream? Flush { get; set; }

        /// <summary>
        /// How many records it holds that are not in the table yet (a failed index leaves them here, to go with the next
        /// one); the table has every record before <see cref="First"/>'s.
        /// </summary>
        public int Count { get; set; }

        /// <summary>The seq of its first record, while it has any.</summary>
        public long First { get; set; }

        /// <summary>The bytes its records take.</summary>
        public long Length { get; set; }

        public long Oldest { get; set; }
    }


    public SqliteAccessLog(string path, ILogger<SqliteAccessLog>? logger = null)
    {
        Path = path;
        JournalPath = System.IO.Path.ChangeExtension(path, ".journal");
        _segments = [new Segment(JournalPath + ".0"), new Segment(JournalPath + ".1")];
        _logger = logger ?? NullLogger<SqliteAccessLog>.Instance;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
    }

    public string Path { get; }

    /// <summary>The journal's two files are this path with <c>.0</c> and <c>.1</c>.</summary>
    public string JournalPath { get; }

    /// <summary>Appends records; completes when they are written to the journal (safe from a crash of the process), which is before it returns.</summary>
    public Task AppendAsync(IReadOnlyList<AccessRecord> records)
    {
        if (records.Count == 0)
        {
            return Task.CompletedTask;
        }

        // The records are encoded before the lock is taken; under it they are only numbered, chained and written.
        var most = 0;
        for (var i = 0; i < records.Count; i++)
        {
            most += AccessLogJournal.MaxLength(records[i]);
        }

        var rented = most <= 4096 ? null : ArrayPool<byte>.Shared.Rent(most);
        Span<byte> framed = rented is null ? stackalloc byte[most] : rented;
        var length = 0;
        for (var i = 0; i < records.Count; i++)
        {
            length += AccessLogJournal.Frame(records[i], framed[length..]);
        }

        bool full;
        try
        {
            lock (_gate)
            {
                if (_disposed)
                {
                    return Task.FromException(new ObjectDisposedException(nameof(SqliteAccessLog)));
                }

                Start();
                var segment = _segments[_current];
                try
                {
                    Journal(segment, framed[..length], records.Count);
                }
                catch (IOException ex)
                {
                    _logger.LogCritical(ex, "Writing the access log's journal failed: {Count} records are refused", records.Count);
                    return Task.FromException(ex);
                }

                full = segment.Count >= IndexBatch;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        if (Interlocked.Exchange(ref _unflushed, 1) == 0)
        {
            Wake(_flushWake);
        }

        if (full)
        {
            Wake(_indexWake);
        }

        return Task.CompletedTask;
    }

    /// <summary>Records in order, filtered; newest first when <paramref name="newestFirst"/>. Every record appended before the call is included.</summary>
    public async Task<IReadOnlyList<AccessLogEntry>> ReadAsync(string? resident = null, string? clientId = null, DateTimeOffset? since = null,
        DateTimeOffset? until = null, int limit = 100, int offset = 0, bool newestFirst = true, CancellationToken cancellationToken = default)
    {
        await IndexAsync().ConfigureAwait(false);
        using var c = Open(readOnly: true);
        if (c is null)
        {
            return [];
        }

        using var cmd = c.CreateCommand();

        // The compact index of the one person or client asked about drives; every condition is checked on the row
        // itself too (a redacted row names nobody).
        var (from, where, order) = resident is not null ? ByName("access_log_by_resident", "resident", "$resident")
            : clientId is not null ? ByName("access_log_by_client", "client", "$client")
            : ("access_log a", new List<string> { "1 = 1" }, "a.seq");
        if (resident is not null)
        {
            where.Add("a.resident = $resident");
            cmd.Parameters.AddWithValue("$resident", resident);
        }

        if (clientId is not null)
        {
            where.Add("a.client_id = $client");
            cmd.Parameters.AddWithValue("$client", clientId);
        }

        if (since is not null)
        {
            where.Add("a.at >= $from");
            cmd.Parameters.AddWithValue("$from", since.Value.UtcTicks);
        }

        if (until is not null)
        {
            where.Add("a.at < $to");
            cmd.Parameters.AddWithValue("$to", until.Value.UtcTicks);
        }

        cmd.CommandText = $"{Select} FROM {from} WHERE {string.Join(" AND ", where)} ORDER BY {order} {(newestFirst ? "DESC" : "ASC")} LIMIT $limit OFFSET $offset";
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

        // The journal first: a record the indexer moves meanwhile is then in the table read next (a record is
        // removed from the journal only once it is in the table), so none is missed.
        var journaled = ReadJournals();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"{Select} FROM access_log a ORDER BY a.seq";
        using var r = cmd.ExecuteReader();
        var verifier = new AccessLogVerifier();
        foreach (var entry in Entries(r).Concat(journaled))
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
            using var tx = c.BeginTransaction();
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = """
                UPDATE access_log SET resident = NULL, client_id = NULL, subject = NULL, purpose = NULL, emergency_reason = NULL,
                    operation = NULL, tenant = NULL, entity_id = NULL, attributes = NULL, node = NULL, redacted = 1
                WHERE seq IN (SELECT seq FROM access_log_by_resident WHERE resident = (SELECT id FROM access_log_names WHERE name = $resident))
                    AND resident = $resident
                """;
            cmd.Parameters.AddWithValue("$resident", resident);
            redacted = cmd.ExecuteNonQuery();

            // The resident's index entries point at rows that name nobody now; the client index is checked on the
            // row when read, so its entries may stay.
            cmd.CommandText = "DELETE FROM access_log_by_resident WHERE resident = (SELECT id FROM access_log_names WHERE name = $resident)";
            cmd.ExecuteNonQuery();
            tx.Commit();
        }

        await AppendAsync([erasure]).ConfigureAwait(false);
        return redacted;
    }

    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        if (_started)
        {
            // The indexer moves everything left into the table on its way out; the flusher flushes once more.
            Wake(_indexWake);
            _indexer!.Join();
            Wake(_flushWake);
            _flusher!.Join();
            await _checkpointer!.DisposeAsync().ConfigureAwait(false);
            foreach (var segment in _segments)
            {
                segment.File!.Dispose();
                segment.Flush!.Dispose();
            }

            foreach (var statement in new[] { _insert, _nameId, _addName, _byResident, _byClient })
            {
                statement!.Dispose();
            }
            _writer!.Dispose();
        }

        _indexWake.Dispose();
        _flushWake.Dispose();
    }

    private const string Select =
        "SELECT a.seq, a.at, a.resident, a.client_id, a.subject, a.purpose, a.emergency_reason, a.operation, a.tenant, a.entity_id, a.attributes, a.node, a.redacted, a.digest, a.hash";

    /// <summary>
    /// The rows a compact index lists for one name (resident or client), joined to the log as <c>a</c>; the condition
    /// that picks the name; the order of the index (so a page is read from it, newest first, without a sort).
    /// </summary>
    private static (string From, List<string> Where, string Order) ByName(string index, string column, string parameter) =>
        ($"{index} x JOIN access_log a ON a.seq = x.seq", [$"x.{column} = (SELECT id FROM access_log_names WHERE name = {parameter})"], "x.seq");

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

    /// <summary>A connection to the log's table (created if missing), for machi export and import.</summary>
    internal SqliteConnection OpenTable() => Open(readOnly: false)!;

    /// <summary>
    /// The records in the journal now, read without writing. machi export reads them before the table, as verification
    /// does, so a record the indexer moves meanwhile is in the table read next.
    /// </summary>
    internal IReadOnlyList<AccessLogEntry> JournalEntries() => ReadJournals();

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
            -- Compact indexes: residents and clients are numbered once in access_log_names, and each record is listed
            -- under its numbers. An index on the text columns cost ~4 times the pages, and every record dirties a page
            -- of it at a random place (the resident's), which is what indexing the log costs.
            CREATE TABLE IF NOT EXISTS access_log_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE IF NOT EXISTS access_log_by_resident (resident INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (resident, seq)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS access_log_by_client (client INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (client, seq)) WITHOUT ROWID;
            """;
        cmd.ExecuteNonQuery();
        return c;
    }

    /// <summary>
    /// Lists in the compact indexes the rows written without them: all rows of a log written before they existed (it
    /// had an index on each text column, dropped here), or the rows machi import copied in. Idempotent, in one
    /// transaction, so two processes opening the log at once do it once.
    /// </summary>
    internal static void IndexRows(SqliteConnection c)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('access_log_resident', 'access_log_client'))
                + (SELECT count(*) FROM (SELECT 1 FROM access_log WHERE resident IS NOT NULL ORDER BY seq DESC LIMIT 1) a
                    WHERE NOT EXISTS (SELECT 1 FROM access_log_by_resident LIMIT 1))
            """;
        if ((long)cmd.ExecuteScalar()! == 0)
        {
            return;
        }

        using var tx = c.BeginTransaction();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT OR IGNORE INTO access_log_names (name) SELECT DISTINCT resident FROM access_log WHERE resident IS NOT NULL;
            INSERT OR IGNORE INTO access_log_names (name) SELECT DISTINCT client_id FROM access_log WHERE client_id IS NOT NULL;
            INSERT OR IGNORE INTO access_log_by_resident (resident, seq) SELECT n.id, a.seq FROM access_log a JOIN access_log_names n ON n.name = a.resident;
            INSERT OR IGNORE INTO access_log_by_client (client, seq) SELECT n.id, a.seq FROM access_log a JOIN access_log_names n ON n.name = a.client_id;
            DROP INDEX IF EXISTS access_log_resident;
            DROP INDEX IF EXISTS access_log_client;
            """;
        cmd.ExecuteNonQuery();
        tx.Commit();
    }

    /// <summary>Completes once every record appended before the call is in the indexed table.</summary>
    private Task IndexAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_disposed)
            {
                return Task.CompletedTask; // everything was indexed on the way out
            }

            Start();
            if (_segments.All(s => s.Count == 0))
            {
                return Task.CompletedTask;
            }

            _waitingForIndex.Add((_lastSeq, done));
        }

        Wake(_indexWake);
        return done.Task;
    }

    /// <summary>Releases a thread waiting on <paramref name="wake"/> (one pending wake-up is enough).</summary>
    private static void Wake(SemaphoreSlim wake)
    {
        try
        {
            wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
    }

    /// <summary>
    /// Opens the log on the first use (under the gate): the table, the chain's end, the records a crash left in the
    /// journal (moved into the table first), the journal files, and the indexer and flusher threads.
    /// </summary>
    private void Start()
    {
        if (_started)
        {
            return;
        }

        // NORMAL: the journal is what must survive a crash; the table is written in large transactions, each flushed
        // (in Index) before the journal segment holding the same records is emptied. Checkpoints run beside the writer.
        _writer = Open(readOnly: false, synchronous: "NORMAL")!;
        IndexRows(_writer); // once per start, not on every connection the log opens
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

        // Bound and stepped through SQLite's C API: Microsoft.Data.Sqlite's per-execution work (parameter names,
        // conversions) cost ~15 µs of CPU per record, most of the log's cost.
        _insert = new RawStatement(_writer, """
            INSERT OR IGNORE INTO access_log (seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, digest, hash)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
            """);
        _nameId = new RawStatement(_writer, "SELECT id FROM access_log_names WHERE name = ?1");
        _addName = new RawStatement(_writer, "INSERT INTO access_log_names (name) VALUES (?1) RETURNING id");
        _byResident = new RawStatement(_writer, "INSERT OR IGNORE INTO access_log_by_resident (resident, seq) VALUES (?1, ?2)");
        _byClient = new RawStatement(_writer, "INSERT OR IGNORE INTO access_log_by_client (client, seq) VALUES (?1, ?2)");

        // Records a crash left in the journal (written, not yet indexed; in either format) are indexed first, then
        // both segments are emptied: appends start a segment of the current format.
        var left = ReadJournals().Where(j => j.Seq > _lastSeq).ToList();
        if (left.Count > 0)
        {
            var journal = new byte[left.Sum(j => AccessLogJournal.MaxLength(j.Record!))];
            var length = 0;
            foreach (var entry in left)
            {
                length += AccessLogJournal.Frame(entry, journal.AsSpan(length));
            }

            if (Move(journal.AsSpan(0, length), left.Count) is { } failure)
            {
                throw new IOException("The access log's journal could not be indexed at start-up", failure);
            }

            (_lastSeq, _lastHash) = (left[^1].Seq, Convert.FromHexString(left[^1].Hash));
        }

        foreach (var segment in _segments)
        {
            segment.File = File.OpenHandle(segment.Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            RandomAccess.SetLength(segment.File, 0);
            segment.Flush = new FileStream(segment.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        }

        _checkpointer = new WalCheckpointer(_connectionString, _logger);
        _indexer = new Thread(IndexLoop) { IsBackground = true, Name = "Access log indexer" };
        _flusher = new Thread(FlushLoop) { IsBackground = true, Name = "Access log flusher" };
        _started = true;
        _indexer.Start();
        _flusher.Start();
    }

    /// <summary>
    /// The indexer thread: hands a segment to the table when it is due (old or full enough, or an index request waits
    /// for it) and appends go on in the other; records a failed attempt left in the other segment go first. On
    /// disposal moves everything left.
    /// </summary>
    private void IndexLoop()
    {
        var failed = false;
        while (true)
        {
            Segment? due = null;
            var wait = Timeout.InfiniteTimeSpan;
            bool stopping;
            lock (_gate)
            {
                stopping = _disposed;
                var current = _segments[_current];
                var other = _segments[1 - _current];
                var pressed = _waitingForIndex.Count > 0 || stopping;
                if (other.Count > 0)
                {
                    due = other;
                }
                else if (current.Count > 0)
                {
                    var age = Stopwatch.GetElapsedTime(current.Oldest);
                    if (pressed || current.Count >= IndexBatch || age >= IndexDelay)
                    {
                        _current = 1 - _current;
                        due = current;
                    }
                    else
                    {
                        wait = IndexDelay - age;
                    }
                }

                if (due is null)
                {
                    CompleteIndexRequests(null);
                    if (stopping)
                    {
                        return;
                    }
                }
            }

            if (due is not null)
            {
                if (failed && !stopping)
                {
                    // Do not spin on a failing disk; the records stay in the journal meanwhile.
                    _indexWake.Wait(IndexDelay);
                }

                var failure = Index(due);
                failed = failure is not null;
                lock (_gate)
                {
                    CompleteIndexRequests(failure);
                }

                if (failed && stopping)
                {
                    return; // the records stay in the journal for the next start
                }

                continue;
            }

            _indexWake.Wait(wait);
        }
    }

    /// <summary>The flusher thread: one fdatasync of the journal for whatever was appended since the last.</summary>
    private void FlushLoop()
    {
        while (true)
        {
            _flushWake.Wait();
            var stopping = Volatile.Read(ref _disposed);
            Volatile.Write(ref _unflushed, 0);
            foreach (var segment in _segments)
            {
                try
                {
                    segment.Flush!.Flush(flushToDisk: true);
                }
                catch (IOException ex)
                {
                    _logger.LogCritical(ex, "The access log's journal could not be flushed to disk");
                }
            }

            if (stopping)
            {
                return;
            }

            Thread.Sleep(FlushPause);
        }
    }

    /// <summary>Completes the index requests whose records are all in the table now; fails the rest if indexing failed (under the gate).</summary>
    private void CompleteIndexRequests(Exception? failure)
    {
        var unindexed = _segments.Where(s => s.Count > 0).Select(s => s.First).DefaultIfEmpty(long.MaxValue).Min();
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

    /// <summary>Numbers, chains and writes framed records to the segment with one write (under the gate).</summary>
    private void Journal(Segment segment, Span<byte> framed, int count)
    {
        var seq = _lastSeq;
        Span<byte> chain = stackalloc byte[_lastHash.Length];
        _lastHash.CopyTo(chain);
        for (var at = 0; at < framed.Length;)
        {
            var length = AccessLogJournal.HeaderLength + BinaryPrimitives.ReadInt32LittleEndian(framed[(at + 1)..]);
            AccessLogJournal.Seal(framed.Slice(at, length), ++seq, chain);
            at += length;
        }

        RandomAccess.Write(segment.File!, framed, segment.Length);
        if (segment.Count == 0)
        {
            (segment.Oldest, segment.First) = (Stopwatch.GetTimestamp(), _lastSeq + 1);
        }

        segment.Count += count;
        segment.Length += framed.Length;
        _lastSeq = seq;
        chain.CopyTo(_lastHash);
    }

    /// <summary>
    /// Moves a segment's records into the table (<see cref="Move"/>), then empties the segment; the failure, if any
    /// (the records then stay in the segment, which a later index or the next start moves). The segment is not the one
    /// appends go to.
    /// </summary>
    private Exception? Index(Segment segment)
    {
        if (segment.Count == 0)
        {
            return null;
        }

        try
        {
            if (_indexing.Length < segment.Length)
            {
                _indexing = new byte[Math.Max(segment.Length, 2L * _indexing.Length)];
            }

            var journal = _indexing.AsSpan(0, (int)segment.Length);
            for (var read = 0; read < journal.Length;)
            {
                var n = RandomAccess.Read(segment.File!, journal[read..], read);
                read += n > 0 ? n : throw new IOException($"The access log's journal {segment.Path} ends before its records do");
            }

            if (Move(journal, segment.Count) is { } failure)
            {
                return failure;
            }

            RandomAccess.SetLength(segment.File!, 0);
            lock (_gate)
            {
                (segment.Count, segment.Length) = (0, 0);
            }

            return null;
        }
        catch (IOException ex)
        {
            _logger.LogError(ex, "Indexing {Count} access log records failed; they stay in the journal", segment.Count);
            return ex;
        }
    }

    /// <summary>
    /// Moves journal records into the table in one transaction, flushed to disk before the journal holding them may be
    /// emptied; the failure, if any. Each row is bound from the record's bytes as they are (no string per field).
    /// </summary>
    private Exception? Move(ReadOnlySpan<byte> journal, int count)
    {
        try
        {
            using (var tx = _writer!.BeginTransaction())
            {
                // The rows in order (appended at the table's end), then the index entries in the indexes' order, so
                // each page of either is visited once.
                if (_names.Count > NamesKept)
                {
                    _names.Clear();
                }

                var byResident = new List<(long Name, long Seq)>(count);
                var byClient = new List<(long Name, long Seq)>(count);
                Span<byte> digest = stackalloc byte[64];
                Span<byte> hash = stackalloc byte[64];
                int taken;
                for (; (taken = AccessLogJournal.Next(journal, out var payload)) > 0; journal = journal[taken..])
                {
                    if (payload.IsEmpty)
                    {
                        continue; // not a record this log wrote: verification reports the gap
                    }

                    var seq = AccessLogJournal.Seq(payload);
                    _insert!.Bind(1, seq).Bind(2, AccessLogJournal.AtTicks(payload));
                    var fields = AccessLogJournal.Fields(payload);
                    ReadOnlySpan<byte> resident = default, client = default;
                    for (var i = 0; i < AccessLogChain.Fields; i++)
                    {
                        // Null fields stay unbound: NULL.
                        if (AccessLogJournal.NextField(ref fields, out var utf8))
                        {
                            _insert.BindText(3 + i, utf8);
                            if (i == 0)
                            {
                                resident = utf8;
                            }
                            else if (i == 1)
                            {
                                client = utf8;
                            }
                        }
                    }

                    _insert.BindText(13, Hex(AccessLogJournal.Digest(payload), digest)).BindText(14, Hex(AccessLogJournal.Hash(payload), hash)).Execute();
                    byResident.Add((NameId(resident), seq));
                    if (!client.IsEmpty)
                    {
                        byClient.Add((NameId(client), seq));
                    }
                }

                foreach (var (entries, statement) in new[] { (byResident, _byResident!), (byClient, _byClient!) })
                {
                    entries.Sort();
                    foreach (var (name, seq) in entries)
                    {
                        statement.Bind(1, name).Bind(2, seq).Execute();
                    }
                }

                tx.Commit();
            }

            // The table's write-ahead log must be on disk before the segment that holds the same records is emptied.
            using (var wal = new FileStream(Path + "-wal", FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0))
            {
                wal.Flush(flushToDisk: true);
            }

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
            _names.Clear(); // it may hold numbers of names the failed transaction added
            _logger.LogError(ex, "Indexing {Count} access log records failed; they stay in the journal", count);
            return ex;
        }
    }

    /// <summary>Lower-case hex of <paramref name="bytes"/> as UTF-8, written into <paramref name="into"/>.</summary>
    private static ReadOnlySpan<byte> Hex(ReadOnlySpan<byte> bytes, Span<byte> into)
    {
        var digits = "0123456789abcdef"u8;
        for (var i = 0; i < bytes.Length; i++)
        {
            into[2 * i] = digits[bytes[i] >> 4];
            into[(2 * i) + 1] = digits[bytes[i] & 0xF];
        }

        return into[..(2 * bytes.Length)];
    }

    /// <summary>The number of a resident's or client's name in the compact indexes, given one if new (indexer thread).</summary>
    private long NameId(ReadOnlySpan<byte> utf8)
    {
        var chars = utf8.Length <= 256 ? stackalloc char[utf8.Length] : new char[utf8.Length];
        var name = chars[..Encoding.UTF8.GetChars(utf8, chars)];
        var lookup = _names.GetAlternateLookup<ReadOnlySpan<char>>();
        if (lookup.TryGetValue(name, out var id))
        {
            return id;
        }

        try
        {
            var statement = _nameId!.BindText(1, utf8).Step() ? _nameId : _addName!.BindText(1, utf8);
            if (statement == _addName && !statement.Step())
            {
                throw new InvalidOperationException("SQLite returned no id for a new name");
            }

            id = statement.Int64(0);
        }
        finally
        {
            // Ready for the next name even when this one failed (the batch is then tried again whole).
            _nameId!.Reset();
            _addName!.Reset();
        }

        return lookup[name] = id;
    }

    /// <summary>The complete records of both journal segments, in order of seq.</summary>
    private List<AccessLogEntry> ReadJournals() => [.. _segments.SelectMany(s => ReadJournal(s.Path)).OrderBy(j => j.Seq)];

    /// <summary>The complete records of a journal file (in either format), in order; a torn last record (a write cut by power loss) is ignored.</summary>
    private static List<AccessLogEntry> ReadJournal(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        byte[] bytes;
        int length;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            // The indexer may empty the file meanwhile (its records are in the table then).
            bytes = new byte[file.Length];
            length = file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        }

        return AccessLogJournal.Entries(bytes.AsSpan(0, length));
    }
}
