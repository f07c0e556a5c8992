using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
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
/// copied into the staging file in shared memory (<see cref="AccessLogStaging"/>), which outlives the process, so a
/// crash of the process (kill -9) loses no acknowledged record, and the request goes on without waiting for another
/// thread or a system call. A flusher thread writes the staged records out to a journal file
/// (<c>access-log.journal.0</c> or <c>.1</c>) with one write and makes it durable (one fdatasync for whatever was
/// staged meanwhile, at most one every <see cref="FlushPause"/>) without the request waiting: a power failure can lose
/// only the records appended since the last flush, at most 20 ms' worth. An indexer thread moves
/// the journal's records into the indexed SQLite table in large transactions (every <see cref="IndexDelay"/>, or
/// <see cref="IndexBatch"/> records, or before anything reads the log) while appends go on in the other journal file,
/// then empties the journal it moved; records a journal still holds at start-up are moved first. The journal's records
/// are binary (<see cref="AccessLogJournal"/>), encoded by the request before it takes the lock; the log keeps no
/// object per record meanwhile (the indexer reads the segment's file back). A row of the table is the record's journal
/// bytes as they are (seq, time and one blob), decoded when read; residents and clients are only in the compact indexes.
/// Tables of the older column format (a column per field) are converted when the log is first opened.
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
    private IndexInserts? _byResident;
    private IndexInserts? _byClient;
    private WalCheckpointer? _checkpointer;
    private long _lastSeq;
    private byte[] _lastHash = AccessLogChain.Start();

    /// <summary>The hasher that seals records (under the gate).</summary>
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private int _current;

    /// <summary>The staging file appends copy records into (<see cref="AccessLogStaging"/>), and the bytes staged (under the gate).</summary>
    private AccessLogStaging? _staging;
    private int _staged;

    /// <summary>The indexer's copy of the segment it moves (kept: a batch is megabytes).</summary>
    private byte[] _indexing = [];

    /// <summary>
    /// The numbers of the residents' and clients' names in the compact indexes, as far as the indexer looked them up
    /// (a name keeps its number; looking each up again in every batch cost ~0.5 µs of CPU per record with 10,000
    /// residents). Indexer thread only.
    /// </summary>
    private readonly Dictionary<byte[], long> _names = new(Utf8Names.Instance);

    /// <summary>The entries of a batch for the compact indexes (kept between batches: indexer thread only).</summary>
    private readonly IndexEntries _byResidentEntries = new(), _byClientEntries = new();

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
    /// A batch's entries for one compact index, (name, seq) pairs inserted in the index's order so each of its pages is
    /// visited once. Sorted as two arrays of numbers: a list of tuples sorted through their comparer cost ~10 % of the
    /// indexer's CPU.
    /// </summary>
    private sealed class IndexEntries
    {
        private long[] _names = [];
        private long[] _seqs = [];
        private int _count;

        /// <summary>Empties it, with room for <paramref name="capacity"/> entries.</summary>
        public void Clear(int capacity)
        {
            if (_names.Length < capacity)
            {
                (_names, _seqs) = (new long[capacity], new long[capacity]);
            }

            _count = 0;
        }

        public void Add(long name, long seq)
        {
            if (_count == _names.Length)
            {
                Array.Resize(ref _names, Math.Max(16, 2 * _count));
                Array.Resize(ref _seqs, _names.Length);
            }

            (_names[_count], _seqs[_count]) = (name, seq);
            _count++;
        }

        /// <summary>Inserts the entries in order of name, then seq.</summary>
        public void Insert(IndexInserts inserts)
        {
            Array.Sort(_names, _seqs, 0, _count);
            for (var start = 0; start < _count;)
            {
                // The sort is not stable: each name's seqs are put back in order.
                var end = start + 1;
                while (end < _count && _names[end] == _names[start])
                {
                    end++;
                }

                Array.Sort(_seqs, start, end - start);
                start = end;
            }

            var i = 0;
            for (; i + IndexInserts.Rows <= _count; i += IndexInserts.Rows)
            {
                for (var row = 0; row < IndexInserts.Rows; row++)
                {
                    inserts.Many.Bind((2 * row) + 1, _names[i + row]).Bind((2 * row) + 2, _seqs[i + row]);
                }

                inserts.Many.Run();
            }

            for (; i < _count; i++)
            {
                inserts.One.Bind(1, _names[i]).Bind(2, _seqs[i]).Run();
            }
        }
    }

    /// <summary>
    /// The statements that insert entries of a compact index: <see cref="Rows"/> at a time, and one at a time for the
    /// rest (stepping, resetting and clearing a statement per entry cost more than the B-tree insert).
    /// </summary>
    private sealed class IndexInserts(SqliteConnection writer, string table) : IDisposable
    {
        public const int Rows = 64;

        public RawStatement Many { get; } = new(writer,
            $"INSERT OR IGNORE INTO {table} VALUES {string.Join(", ", Enumerable.Range(0, Rows).Select(i => $"(?{(2 * i) + 1}, ?{(2 * i) + 2})"))}");

        public RawStatement One { get; } = new(writer, $"INSERT OR IGNORE INTO {table} VALUES (?1, ?2)");

        public void Dispose()
        {
            Many.Dispose();
            One.Dispose();
        }
    }

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

        /// <summary>The bytes its records take in the file (records still staged are not counted: they belong to the current segment).</summary>
        public long Length { get; set; }

        public long Oldest { get; set; }
    }


    public SqliteAccessLog(string path, ILogger<SqliteAccessLog>? logger = null)
    {
        Path = path;
        JournalPath = System.IO.Path.ChangeExtension(path, ".journal");
        _segments = [new Segment(JournalPath + ".0"), new Segment(JournalPath + ".1")];
        StagingPath = AccessLogStaging.PathFor(JournalPath);
        _logger = logger ?? NullLogger<SqliteAccessLog>.Instance;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
    }

    public string Path { get; }

    /// <summary>The journal's two files are this path with <c>.0</c> and <c>.1</c>.</summary>
    public string JournalPath { get; }

    /// <summary>The staging file in shared memory (<see cref="AccessLogStaging.PathFor"/>).</summary>
    public string StagingPath { get; }

    /// <summary>Appends records; completes when they are staged (safe from a crash of the process), which is before it returns.</summary>
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

        // The compact index of the one person or client asked about drives (the resident's when both are); a redacted
        // row names nobody, so rows asked for by name must still hold their record.
        var (from, where, order) = resident is not null ? ByName("access_log_by_resident", "resident", "$resident")
            : clientId is not null ? ByName("access_log_by_client", "client", "$client")
            : ("access_log a", new List<string> { "1 = 1" }, "a.seq");
        if (resident is not null)
        {
            cmd.Parameters.AddWithValue("$resident", resident);
        }

        if (clientId is not null)
        {
            if (resident is not null)
            {
                where.Add("x.seq IN (SELECT seq FROM access_log_by_client WHERE client = (SELECT id FROM access_log_names WHERE name = $client))");
            }

            cmd.Parameters.AddWithValue("$client", clientId);
        }

        if (resident is not null || clientId is not null)
        {
            where.Add($"length(a.record) > {AccessLogJournal.RedactedLength}");
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
        while (r.Read())
        {
            if (Entry(r) is not { } entry)
            {
                return verifier.Unreadable(r.GetInt64(0));
            }

            if (verifier.Check(entry) is { } broken)
            {
                return broken;
            }
        }

        foreach (var entry in journaled)
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
        var redacted = 0;
        using (var c = Open(readOnly: false)!)
        {
            // The bytes a redacted record gave up are overwritten with zeros, not left in the page's free space.
            using (var secure = c.CreateCommand())
            {
                secure.CommandText = "PRAGMA secure_delete = ON";
                secure.ExecuteNonQuery();
            }

            using var tx = c.BeginTransaction();
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"""
                SELECT a.seq, a.record FROM access_log_by_resident x JOIN access_log a ON a.seq = x.seq
                WHERE x.resident = (SELECT id FROM access_log_names WHERE name = $resident) AND length(a.record) > {AccessLogJournal.RedactedLength}
                """;
            cmd.Parameters.AddWithValue("$resident", resident);
            var named = new List<long>();
            using (var r = cmd.ExecuteReader())
            {
                while (r.Read())
                {
                    // The index names the resident; the record itself must too.
                    if (Entry(r) is { Record: { } record } && string.Equals(record.Resident, resident, StringComparison.Ordinal))
                    {
                        named.Add(r.GetInt64(0));
                    }
                }
            }

            // Only the digest and chain hash stay: the record's last bytes.
            cmd.CommandText = $"UPDATE access_log SET record = substr(record, -{AccessLogJournal.RedactedLength}) WHERE seq = $seq";
            var seq = cmd.Parameters.Add("$seq", SqliteType.Integer);
            foreach (var s in named)
            {
                seq.Value = s;
                redacted += cmd.ExecuteNonQuery();
            }

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

            // Records that could not be written out stay staged for the next start; otherwise the file goes.
            _staging!.Dispose();
            if (_staged == 0)
            {
                File.Delete(StagingPath);
            }

            foreach (var statement in new[] { _insert, _nameId, _addName })
            {
                statement!.Dispose();
            }

            _byResident!.Dispose();
            _byClient!.Dispose();
            _writer!.Dispose();
        }

        _indexWake.Dispose();
        _flushWake.Dispose();
        _sha256.Dispose();
    }

    private const string Select = "SELECT a.seq, a.record";

    /// <summary>
    /// The rows a compact index lists for one name (resident or client), joined to the log as <c>a</c>; the condition
    /// that picks the name; the order of the index (so a page is read from it, newest first, without a sort).
    /// </summary>
    private static (string From, List<string> Where, string Order) ByName(string index, string column, string parameter) =>
        ($"{index} x JOIN access_log a ON a.seq = x.seq", [$"x.{column} = (SELECT id FROM access_log_names WHERE name = {parameter})"], "x.seq");

    /// <summary>The entries of rows read as <see cref="Select"/>; a row whose record is unreadable (altered) is left out, as verification reports it.</summary>
    private static List<AccessLogEntry> Entries(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<AccessLogEntry>();
        while (r.Read())
        {
            if (Entry(r) is { } entry)
            {
                list.Add(entry);
            }
        }

        return list;
    }

    /// <summary>The entry of a row read as <see cref="Select"/> (seq, record); null when its record is unreadable.</summary>
    private static AccessLogEntry? Entry(SqliteDataReader r) =>
        !r.IsDBNull(1) && AccessLogJournal.TryStored(r.GetInt64(0), r.GetFieldValue<byte[]>(1), out var entry) ? entry : null;

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
            -- A record is stored as the journal holds it (AccessLogJournal: the encoding its digest covers, then digest and
            -- chain hash); once redacted, only its digest and hash. The time is a column too, for filters.
            CREATE TABLE IF NOT EXISTS access_log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, record BLOB NOT NULL);
            -- Compact indexes: residents and clients are numbered once in access_log_names, and each record is listed
            -- under its numbers. An index on the text columns cost ~4 times the pages, and every record dirties a page
            -- of it at a random place (the resident's), which is what indexing the log costs.
            CREATE TABLE IF NOT EXISTS access_log_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE IF NOT EXISTS access_log_by_resident (resident INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (resident, seq)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS access_log_by_client (client INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (client, seq)) WITHOUT ROWID;
            """;
        cmd.ExecuteNonQuery();
        if (ColumnFormat(c, null))
        {
            ConvertColumnFormat(c);
        }

        return c;
    }

    /// <summary>Whether the table is in the format written before records were stored whole: a column per field, digest and hash as hex.</summary>
    private static bool ColumnFormat(SqliteConnection c, SqliteTransaction? tx)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT 1 FROM pragma_table_info('access_log') WHERE name = 'digest'";
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>
    /// Converts a table of the column format (redacted rows included, digests and hashes as they are, so an alteration
    /// made before still shows) and lists every record in the compact indexes, which the oldest logs lacked (they had an
    /// index on each text column, dropped with the old table). In one transaction, so two processes opening the log at
    /// once convert it once.
    /// </summary>
    private static void ConvertColumnFormat(SqliteConnection c)
    {
        using var tx = c.BeginTransaction();
        if (!ColumnFormat(c, tx))
        {
            return;
        }

        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            ALTER TABLE access_log RENAME TO access_log_columns;
            CREATE TABLE access_log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, record BLOB NOT NULL);
            """;
        cmd.ExecuteNonQuery();
        cmd.CommandText = """
            SELECT seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, redacted, digest, hash
            FROM access_log_columns ORDER BY seq
            """;
        using (var r = cmd.ExecuteReader())
        {
            Store(c, tx, Rows(r));
        }

        cmd.CommandText = "DROP TABLE access_log_columns";
        cmd.ExecuteNonQuery();
        tx.Commit();

        static IEnumerable<(long At, AccessLogEntry Entry)> Rows(SqliteDataReader r)
        {
            string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
            while (r.Read())
            {
                var at = r.IsDBNull(1) ? 0 : r.GetInt64(1);
                var record = r.GetInt64(12) != 0
                    ? null
                    : new AccessRecord(new DateTimeOffset(at, TimeSpan.Zero), r.GetString(2), Text(3), Text(4), Text(5), Text(6),
                        r.GetString(7), r.GetString(8), r.GetString(9), Text(10), r.GetString(11));
                yield return (at, new AccessLogEntry(r.GetInt64(0), record, r.GetString(13), r.GetString(14)));
            }
        }
    }

    /// <summary>
    /// Writes stored entries (redacted or not, with their times) as rows, each listed in the compact indexes, in the
    /// caller's transaction: for a table converted from the column format, and for machi import.
    /// </summary>
    internal static void Store(SqliteConnection c, SqliteTransaction tx, IEnumerable<(long At, AccessLogEntry Entry)> rows)
    {
        using var insert = c.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = """
            INSERT INTO access_log (seq, at, record) VALUES ($seq, $at, $record);
            INSERT OR IGNORE INTO access_log_by_resident (resident, seq) SELECT id, $seq FROM access_log_names WHERE name = $resident;
            INSERT OR IGNORE INTO access_log_by_client (client, seq) SELECT id, $seq FROM access_log_names WHERE name = $client;
            """;
        var seq = insert.Parameters.Add("$seq", SqliteType.Integer);
        var at = insert.Parameters.Add("$at", SqliteType.Integer);
        var record = insert.Parameters.Add("$record", SqliteType.Blob);
        var resident = insert.Parameters.Add("$resident", SqliteType.Text);
        var client = insert.Parameters.Add("$client", SqliteType.Text);
        using var name = c.CreateCommand();
        name.Transaction = tx;
        name.CommandText = "INSERT OR IGNORE INTO access_log_names (name) VALUES ($name)";
        var named = name.Parameters.Add("$name", SqliteType.Text);
        foreach (var (time, entry) in rows)
        {
            var bytes = new byte[AccessLogJournal.MaxStoredLength(entry)];
            var length = AccessLogJournal.Stored(entry, bytes);
            (seq.Value, at.Value, record.Value) = (entry.Seq, time, bytes[..length]);
            (resident.Value, client.Value) = ((object?)entry.Record?.Resident ?? DBNull.Value, (object?)entry.Record?.ClientId ?? DBNull.Value);
            foreach (var text in (string?[])[entry.Record?.Resident, entry.Record?.ClientId])
            {
                if (text is not null)
                {
                    named.Value = text;
                    name.ExecuteNonQuery();
                }
            }

            insert.ExecuteNonQuery();
        }
    }

    /// <summary>Every row of the table in order of seq, with its time (machi export); an unreadable (altered) row is left out.</summary>
    internal static IEnumerable<(long At, AccessLogEntry Entry)> Rows(SqliteConnection c, SqliteTransaction tx)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT a.seq, a.record, a.at FROM access_log a ORDER BY a.seq";
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            if (Entry(r) is { } entry)
            {
                yield return (r.GetInt64(2), entry);
            }
        }
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
        using (var noAutoCheckpoint = _writer.CreateCommand())
        {
            noAutoCheckpoint.CommandText = "PRAGMA wal_autocheckpoint=0";
            noAutoCheckpoint.ExecuteNonQuery();
        }

        using (var last = _writer.CreateCommand())
        {
            last.CommandText = "SELECT seq, substr(record, -32) FROM access_log ORDER BY seq DESC LIMIT 1";
            using var r = last.ExecuteReader();
            if (r.Read())
            {
                _lastSeq = r.GetInt64(0);
                _lastHash = r.GetFieldValue<byte[]>(1);
            }
        }

        // Bound and stepped through SQLite's C API: Microsoft.Data.Sqlite's per-execution work (parameter names,
        // conversions) cost ~15 µs of CPU per record, most of the log's cost.
        _insert = new RawStatement(_writer, "INSERT OR IGNORE INTO access_log (seq, at, record) VALUES (?1, ?2, ?3)");
        _nameId = new RawStatement(_writer, "SELECT id FROM access_log_names WHERE name = ?1");
        _addName = new RawStatement(_writer, "INSERT INTO access_log_names (name) VALUES (?1) RETURNING id");
        _byResident = new IndexInserts(_writer, "access_log_by_resident (resident, seq)");
        _byClient = new IndexInserts(_writer, "access_log_by_client (client, seq)");

        // Records a crash left staged or in the journal (written, not yet indexed; in either format) are indexed first,
        // then both segments and the staging file are emptied: appends start a segment of the current format.
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

        // Created anew (zeros): what it held is in the table now. Files that killed servers left for data directories
        // removed since are deleted.
        _staging = new AccessLogStaging(StagingPath, JournalPath);
        AccessLogStaging.DeleteOrphans();

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
            Exception? writeOut = null;
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
                        // Its staged records go with it; if they cannot be written out, the segment waits for later.
                        writeOut = Catch(() => WriteOut(current));
                        if (writeOut is null)
                        {
                            _current = 1 - _current;
                            due = current;
                        }
                        else
                        {
                            wait = IndexDelay;
                        }
                    }
                    else
                    {
                        wait = IndexDelay - age;
                    }
                }

                if (due is null)
                {
                    CompleteIndexRequests(writeOut);
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
            Catch(WriteOutStaged);

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

    /// <summary>Numbers and chains framed records and stages them for the segment (under the gate).</summary>
    private void Journal(Segment segment, Span<byte> framed, int count)
    {
        var seq = _lastSeq;
        Span<byte> chain = stackalloc byte[_lastHash.Length];
        _lastHash.CopyTo(chain);
        for (var at = 0; at < framed.Length;)
        {
            var length = AccessLogJournal.HeaderLength + BinaryPrimitives.ReadInt32LittleEndian(framed[(at + 1)..]);
            AccessLogJournal.Seal(framed.Slice(at, length), ++seq, chain, _sha256);
            at += length;
        }

        if (framed.Length > AccessLogStaging.Capacity - _staged)
        {
            WriteOut(segment);
        }

        if (framed.Length <= AccessLogStaging.Capacity)
        {
            framed.CopyTo(_staging!.Bytes[_staged..]);
            _staged += framed.Length;
        }
        else
        {
            RandomAccess.Write(segment.File!, framed, segment.Length);
            segment.Length += framed.Length;
        }

        if (segment.Count == 0)
        {
            (segment.Oldest, segment.First) = (Stopwatch.GetTimestamp(), _lastSeq + 1);
        }

        segment.Count += count;
        _lastSeq = seq;
        chain.CopyTo(_lastHash);
    }

    /// <summary>
    /// Writes the staged records out to the end of <paramref name="segment"/> (the current one) with one write, then
    /// zeroes them in the staging file (under the gate). Until the write succeeds they stay staged.
    /// </summary>
    private void WriteOut(Segment segment)
    {
        if (_staged == 0)
        {
            return;
        }

        var staged = _staging!.Bytes[.._staged];
        RandomAccess.Write(segment.File!, staged, segment.Length);
        segment.Length += _staged;
        staged.Clear();
        _staged = 0;
    }

    /// <summary>Runs a write-out, logging its failure (the records stay staged; the next flush tries again); the failure, if any.</summary>
    private IOException? Catch(Action writeOut)
    {
        try
        {
            writeOut();
            return null;
        }
        catch (IOException ex)
        {
            _logger.LogCritical(ex, "Writing the access log's staged records to its journal failed; they stay staged");
            return ex;
        }
    }

    /// <summary>Writes the staged records out to the current journal segment now (the flusher; tests take crash images of both states).</summary>
    internal void WriteOutStaged()
    {
        lock (_gate)
        {
            WriteOut(_segments[_current]);
        }
    }

    /// <summary>Runs <paramref name="action"/> while nothing is appended or written out (tests copy the files as a crash would leave them).</summary>
    internal void WhileStill(Action action)
    {
        lock (_gate)
        {
            action();
        }
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

                _byResidentEntries.Clear(count);
                _byClientEntries.Clear(count);
                int taken;
                for (; (taken = AccessLogJournal.Next(journal, out var payload)) > 0; journal = journal[taken..])
                {
                    if (payload.IsEmpty)
                    {
                        continue; // not a record this log wrote: verification reports the gap
                    }

                    var seq = AccessLogJournal.Seq(payload);
                    _insert!.Bind(1, seq).Bind(2, AccessLogJournal.AtTicks(payload)).Bind(3, payload).Run();
                    var fields = AccessLogJournal.Fields(payload);
                    AccessLogJournal.NextField(ref fields, out var resident);
                    AccessLogJournal.NextField(ref fields, out var client);
                    _byResidentEntries.Add(NameId(resident), seq);
                    if (!client.IsEmpty)
                    {
                        _byClientEntries.Add(NameId(client), seq);
                    }
                }

                _byResidentEntries.Insert(_byResident!);
                _byClientEntries.Insert(_byClient!);

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

    /// <summary>The number of a resident's or client's name in the compact indexes, given one if new (indexer thread).</summary>
    private long NameId(ReadOnlySpan<byte> utf8)
    {
        var lookup = _names.GetAlternateLookup<ReadOnlySpan<byte>>();
        if (lookup.TryGetValue(utf8, out var id))
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

        return lookup[utf8] = id;
    }

    /// <summary>Names compared as their UTF-8 bytes, looked up by the journal's bytes without decoding them (~0.2 µs a record).</summary>
    private sealed class Utf8Names : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static Utf8Names Instance { get; } = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] name) => GetHashCode(name.AsSpan());

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = new HashCode();
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }

    /// <summary>
    /// The complete records staged and in both journal segments, in order of seq. The staging file is read first:
    /// records move from it to the journal (then to the table), so one written out meanwhile is read there. Of the
    /// staged records only those in an unbroken run of seqs are taken (a reading beside appends may see a later record
    /// without an earlier one).
    /// </summary>
    private List<AccessLogEntry> ReadJournals()
    {
        var staged = AccessLogJournal.Entries(AccessLogStaging.Read(StagingPath));
        var run = staged.Count == 0 ? 0 : 1;
        while (run < staged.Count && staged[run].Seq == staged[run - 1].Seq + 1)
        {
            run++;
        }

        return [.. _segments.SelectMany(s => ReadJournal(s.Path)).Concat(staged.Take(run)).DistinctBy(j => j.Seq).OrderBy(j => j.Seq)];
    }

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
