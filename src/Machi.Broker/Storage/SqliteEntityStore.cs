using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using Machi.Broker.Access;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Storage;

/// <summary>
/// The embedded backend: one SQLite file in WAL mode. All writes go through a single writer that groups the
/// writes waiting at the same moment into one transaction (group commit); a write is acknowledged only once the
/// log holding it has been flushed to disk (<see cref="WalSyncer"/>, one flush shared by every transaction committed
/// meanwhile), so an acknowledged write survives a crash or power loss. Reads use a
/// pool of read-only connections with prepared statements and never wait for the writer. All connections share a
/// memory map of the first 64 MB of the file, so hot pages come from the OS page cache without a system call each
/// (measured: 2–4× on batch writes against a 16 MB page cache alone); a larger map counts every page the change log
/// and history readers touch in the process's RSS (256 MB: 411 MB RSS with 100,000 entities, 64 MB: 265 MB).
/// Other parts that write (history, outbox, cursors) run their work inside this writer's transactions.
/// </summary>
internal sealed partial class SqliteEntityStore : IEntityStore
{
    private const int MaxWritesPerCommit = 512;
    private const int MaxPooledReaders = 16;

    /// <summary>
    /// The page size of a database this store creates (one it opens keeps its own: SQLite fixes the size when the file
    /// is made, and an export and import into a new data directory moves a city to this one). Measured on the 2-core
    /// host (bench/README, session 22): 1,000-entity batch upserts +15–25 % against 4 KB pages (a quarter of the
    /// log frames, and of the write calls, checksums and page-cache lookups that go with each), single updates within
    /// 5 % (each dirties whole pages) with a lower p99, reads and queries the same.
    /// </summary>
    internal const int PageSize = 16_384;

    // The index rows of no entity (never changed).
    private static readonly HashSet<IndexedValue> NoValues = [];
    private static readonly List<IndexedBox> NoBoxes = [];

    /// <summary>Geo index ids are rid * this + the ordinal of the GeoProperty name within the entity.</summary>
    internal const int GeoSlotsPerEntity = 1024;

    private readonly string _connectionString;
    private readonly ILogger _logger;
    private readonly Channel<WriteJob> _writes = Channel.CreateUnbounded<WriteJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentBag<Reader> _readers = [];
    private readonly ConcurrentDictionary<string, bool> _knownTenants = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _termIds = new(StringComparer.Ordinal);
    private readonly MemoryQueryIndex _memory = new();

    // Terms numbered by the write being applied: forgotten again if that write rolls back (writer thread only).
    private readonly List<string> _termsOfCurrentWrite = [];
    private SqliteConnection? _writer;

    // The change log's last committed seq, and the one the transaction in progress will publish (writer only).
    private long _lastChangeSeq;
    private long _pendingLastSeq;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _writerLoop;
    private WalCheckpointer? _checkpointer;
    private WalSyncer? _syncer;

    // The seq of the last change of the last transaction that committed (writer only).
    private long _committedSeq;
    private int _disposed;

    public SqliteEntityStore(string path, ILogger<SqliteEntityStore> logger)
    {
        Path = path;
        _logger = logger;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, Cache = SqliteCacheMode.Private }.ToString();
    }

    public string Path { get; }

    internal string ConnectionString => _connectionString;

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        _writer = new SqliteConnection(_connectionString);
        await _writer.OpenAsync(cancellationToken).ConfigureAwait(false);
        Execute(_writer, $"""
            PRAGMA page_size={PageSize};
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            PRAGMA busy_timeout=5000;
            PRAGMA foreign_keys=ON;
            PRAGMA cache_size=-16000;
            PRAGMA wal_autocheckpoint=0;
            PRAGMA mmap_size=67108864;
            """);
        SqliteSchema.Migrate(_writer, (version, tx) =>
        {
            if (version == SqliteSchema.QueryIndexVersion)
            {
                IndexAll(tx);
            }
            else if (version == SqliteSchema.HistoryVersion)
            {
                MigrateHistory(tx);
            }
            else if (version == SqliteSchema.AccessVersion)
            {
                MarkAccess(tx);
            }
        });
        using (var cmd = _writer.CreateCommand())
        {
            cmd.CommandText = "SELECT name FROM tenants";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                _knownTenants[r.GetString(0)] = true;
            }
        }

        _lastChangeSeq = _pendingLastSeq = _committedSeq = Scalar(_writer, "SELECT coalesce(max(seq), 0) FROM entity_changes");

        FillMemoryIndexes();
        _checkpointer = new WalCheckpointer(_connectionString, _logger);
        _syncer = new WalSyncer(Path + "-wal", _logger);
        _writerLoop = Task.Factory.StartNew(WriterLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public ValueTask<Entity?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            var statement = reader.GetEntity.Bind(1, tenant).Bind(2, id);
            try
            {
                return ValueTask.FromResult(statement.Step() ? EntityCodec.Decode(statement.Blob(0)) : null);
            }
            finally
            {
                statement.Reset();
            }
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    public ValueTask<bool> TenantExistsAsync(string tenant, CancellationToken cancellationToken) =>
        ValueTask.FromResult(tenant.Length == 0 || _knownTenants.ContainsKey(tenant));

    public ValueTask<EntityPage> QueryAsync(string tenant, EntityQuery query, CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            using var cmd = reader.Connection.CreateCommand();
            var plan = SqliteQueryPlanner.Plan(cmd, tenant, query.Filter, _memory, iri => TermId(reader, iri), query.Access);
            if (!plan.Satisfiable)
            {
                return ValueTask.FromResult(new EntityPage([], query.Count ? 0 : null));
            }

            var entities = new List<Entity>(Math.Min(query.Limit, 1000));
            long? total = null;
            if (plan.Exact)
            {
                if (query.Count)
                {
                    cmd.CommandText = $"SELECT count(*) {plan.Sql.FromWhere}";
                    total = (long)cmd.ExecuteScalar()!;
                }

                if (query.Limit > 0)
                {
                    var page = Prepare(reader, cmd, $"SELECT e.doc {plan.Sql.FromWhere} ORDER BY {plan.Sql.OrderBy} LIMIT $limit OFFSET $offset")
                        .BindNamed("$limit", (long)query.Limit).BindNamed("$offset", (long)query.Offset);
                    try
                    {
                        while (page.Step())
                        {
                            entities.Add(EntityCodec.Decode(page.Blob(0)));
                        }
                    }
                    finally
                    {
                        page.Reset();
                    }
                }

                return ValueTask.FromResult(new EntityPage(entities, total));
            }

            // The evaluator decides on each candidate, in the driving index's order; counting needs every
            // candidate, a page only enough of them to fill it.
            var streamed = plan.Streamed;
            var matched = 0L;
            var seen = new HashSet<long>();
            if (plan.Candidates is not { } candidates)
            {
                var statement = Prepare(reader, cmd, streamed);
                try
                {
                    Consume(statement);
                }
                finally
                {
                    statement.Reset();
                }
            }
            else
            {
                // Candidates from memory, a growing part at a time, all read in one snapshot, taken before the first
                // part (an entity committed before it was indexed before it too); the index keeps what that snapshot
                // may need until the query ends.
                var since = _memory.BeginRead();
                Execute(reader.Connection, "BEGIN; SELECT 1 FROM entities LIMIT 1;");
                try
                {
                    var rids = new List<long>();
                    var json = new StringBuilder();
                    for (var part = 64; candidates.Read(rids, part) > 0; part = Math.Min(part * 2, 4096), rids.Clear())
                    {
                        // Reset clears the bindings: bind the planner's again with each part.
                        json.Clear().Append('[').AppendJoin(',', rids).Append(']');
                        var statement = Prepare(reader, cmd, streamed).BindNamed("$rids", json.ToString());
                        try
                        {
                            if (!Consume(statement))
                            {
                                break;
                            }
                        }
                        finally
                        {
                            statement.Reset();
                        }
                    }
                }
                finally
                {
                    Execute(reader.Connection, "COMMIT");
                    _memory.EndRead(since);
                }
            }

            return ValueTask.FromResult(new EntityPage(entities, query.Count ? matched : null));

            // Evaluates the statement's candidates; false once the page is full and nothing is counted.
            bool Consume(RawStatement candidates)
            {
                while (candidates.Step())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (!seen.Add(candidates.Int64(0)))
                    {
                        continue;
                    }

                    var entity = EntityCodec.Decode(candidates.Blob(1));
                    if (!query.Filter.Matches(entity))
                    {
                        continue;
                    }

                    if (matched >= query.Offset && entities.Count < query.Limit)
                    {
                        entities.Add(entity);
                    }

                    matched++;
                    if (!query.Count && entities.Count >= query.Limit)
                    {
                        return false;
                    }
                }

                return true;
            }
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    /// <summary>SQLite's plan for the candidate query of <paramref name="query"/> (EXPLAIN QUERY PLAN details), to show which indexes serve it.</summary>
    internal IReadOnlyList<string> Explain(string tenant, EntityQuery query)
    {
        var reader = RentReader();
        try
        {
            using var cmd = reader.Connection.CreateCommand();
            var plan = SqliteQueryPlanner.Plan(cmd, tenant, query.Filter, _memory, iri => TermId(reader, iri), query.Access);
            cmd.CommandText = "EXPLAIN QUERY PLAN " + (plan.Exact ? $"SELECT e.doc {plan.Sql.FromWhere} ORDER BY {plan.Sql.OrderBy}" : plan.Streamed);
            var lines = new List<string>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                lines.Add(r.GetString(3));
            }

            return lines;
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    /// <summary>The in-memory value entries (index key, value) and geo ids of one entity (tests compare them with the entity).</summary>
    internal (List<(long Attr, object Value)> Values, List<long> Boxes, List<long> Names) MemoryIndexEntries(string tenant, long rid) => _memory.EntriesOf(tenant, rid);

    /// <summary>The reader's prepared statement for <paramref name="sql"/>, bound to the planner's parameters.</summary>
    private static RawStatement Prepare(Reader reader, SqliteCommand planned, string sql)
    {
        var statement = reader.Prepared(sql);
        foreach (SqliteParameter parameter in planned.Parameters)
        {
            statement.BindNamed(parameter.ParameterName, parameter.Value!);
        }

        return statement;
    }

    /// <summary>The id of a term, or null when no entity ever used it.</summary>
    private long? TermId(Reader reader, string iri)
    {
        if (_termIds.TryGetValue(iri, out var id))
        {
            return id;
        }

        reader.GetTerm.Parameters[0].Value = iri;
        if (reader.GetTerm.ExecuteScalar() is long found)
        {
            _termIds.TryAdd(iri, found);
            return found;
        }

        return null;
    }

    public Task<Exception?[]> WriteAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken cancellationToken)
    {
        // The writer creates a prepared entity from its rows alone: the parsed one need not wait in the queue. Its
        // index entries are worked out here, on the request's thread, not on the single writer's.
        foreach (var write in writes)
        {
            write.Prepared?.PrepareIndexEntries();
            write.Prepared?.Release();
        }

        var job = new WriteJob(tenant, writes);
        if (!_writes.Writer.TryWrite(job))
        {
            throw new ObjectDisposedException(nameof(SqliteEntityStore), "The store is shutting down.");
        }

        return job.Completion.Task;
    }

    /// <summary>
    /// Runs <paramref name="work"/> inside the single writer's next transaction, committed (durably) with the entity
    /// writes around it: the database's other writers (temporal history, notification outbox, change-log cursors and
    /// pruning) never take the write lock themselves, so they never make the entity writer wait or sleep on a busy
    /// lock. The work runs on the writer's thread: prepare what can be prepared before. It succeeds or fails alone.
    /// </summary>
    public async Task RunInWriterAsync(Action<SqliteConnection, SqliteTransaction> work, CancellationToken cancellationToken)
    {
        var job = new WriteJob(string.Empty, [default], work);
        if (!_writes.Writer.TryWrite(job))
        {
            throw new ObjectDisposedException(nameof(SqliteEntityStore), "The store is shutting down.");
        }

        var results = await job.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (results[0] is { } error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>Like <see cref="RunInWriterAsync(Action{SqliteConnection, SqliteTransaction}, CancellationToken)"/>, with a result.</summary>
    public async Task<T> RunInWriterAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken cancellationToken)
    {
        T result = default!;
        // A statement lambda: an expression one would return T and pick this overload again.
        await RunInWriterAsync((connection, tx) => { result = work(connection, tx); }, cancellationToken).ConfigureAwait(false);
        return result;
    }

    /// <summary>Runs <paramref name="read"/> on one of the pooled read-only connections (WAL: never waits for the writer).</summary>
    public T Read<T>(Func<SqliteConnection, T> read)
    {
        var reader = RentReader();
        try
        {
            return read(reader.Connection);
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    /// <summary>One piece of work inside a savepoint, so that its failure undoes only itself.</summary>
    private static Exception? RunWork(SqliteTransaction tx, Action<SqliteConnection, SqliteTransaction> work)
    {
        var connection = tx.Connection!;
        Execute(connection, "SAVEPOINT work", tx);
        try
        {
            work(connection, tx);
            Execute(connection, "RELEASE work", tx);
            return null;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Execute(connection, "ROLLBACK TO work", tx);
            Execute(connection, "RELEASE work", tx);
            return ex;
        }
    }

    public ValueTask<long> CountAsync(CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            return ValueTask.FromResult(Scalar(reader.Connection, "SELECT count(*) FROM entities"));
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    public ValueTask<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            var reader = RentReader();
            try
            {
                using var cmd = reader.Connection.CreateCommand();
                cmd.CommandText = "SELECT 1";
                return ValueTask.FromResult(Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 1);
            }
            finally
            {
                ReturnReader(reader);
            }
        }
        catch (SqliteException)
        {
            return ValueTask.FromResult(false);
        }
    }

    /// <summary>Stops taking writes, commits everything already queued, and closes the database.</summary>
    public async ValueTask DisposeAsync()
    {
        // The container may reach the store through more than one registration; dispose once.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _writes.Writer.TryComplete();
        if (_writerLoop is not null)
        {
            await _writerLoop.ConfigureAwait(false);
        }

        if (_syncer is not null)
        {
            await _syncer.DisposeAsync().ConfigureAwait(false);
        }

        if (_checkpointer is not null)
        {
            await _checkpointer.DisposeAsync().ConfigureAwait(false);
        }

        while (_readers.TryTake(out var reader))
        {
            reader.Dispose();
        }

        if (_writer is not null)
        {
            Execute(_writer, "PRAGMA wal_checkpoint(TRUNCATE);");
            await _writer.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task WriterLoop()
    {
        var batch = new List<WriteJob>();
        var writer = new WriterStatements(_writer!);
        try
        {
            while (await _writes.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                batch.Clear();
                var items = 0;
                while (items < MaxWritesPerCommit && _writes.Reader.TryRead(out var job))
                {
                    batch.Add(job);
                    items += job.Writes.Length;
                }

                Commit(writer, batch);
                if (_checkpointer!.TakeTailRequest())
                {
                    CheckpointTail();
                }
            }
        }
        finally
        {
            writer.Dispose();
        }
    }

    /// <summary>Copies the end of the write-ahead log the background checkpoint did not reach (between transactions).</summary>
    private void CheckpointTail()
    {
        try
        {
            Execute(_writer!, "PRAGMA wal_checkpoint(PASSIVE);");
        }
        catch (SqliteException ex)
        {
            _logger.LogWarning(ex, "Checkpoint of the write-ahead log failed");
        }
    }

    private void Commit(WriterStatements writer, List<WriteJob> batch)
    {
        var newTenants = new List<string>();
        try
        {
            using var tx = _writer!.BeginTransaction(deferred: false);
            writer.Bind(tx);
            writer.ClearNewIndexRows();
            foreach (var job in batch)
            {
                if (job.Work is { } work)
                {
                    InsertNewIndexRows(writer);
                    job.Results[0] = RunWork(tx, work);
                    continue;
                }

                for (var i = 0; i < job.Writes.Length; i++)
                {
                    job.Results[i] = ApplyOne(writer, job.Tenant, job.Writes[i], newTenants);

                    // Stored: its prepared rows need not wait in memory for the commit to be on disk.
                    job.Writes[i] = default;
                }
            }

            InsertNewIndexRows(writer);
            tx.Commit();
            _memory.Committed();
            _checkpointer!.Committed();
        }
        catch (Exception ex)
        {
            _pendingLastSeq = _committedSeq;
            _memory.RolledBack();

            // The commit itself failed (disk full, I/O error): nothing in this batch was kept.
            _logger.LogError(ex, "Commit of {Count} write requests failed", batch.Count);
            foreach (var t in newTenants)
            {
                _knownTenants.TryRemove(t, out _);
            }

            // Term ids handed out in the failed transaction do not exist; forget every cached id.
            _termIds.Clear();

            foreach (var job in batch)
            {
                job.Completion.TrySetException(ex);
            }

            return;
        }

        // Acknowledged (and its changes published) once the log is on disk, by the syncer; the writer goes on.
        _committedSeq = _pendingLastSeq;
        var committedSeq = _committedSeq;
        var jobs = batch.ToArray();
        _syncer!.Add(failure =>
        {
            if (failure is not null)
            {
                foreach (var job in jobs)
                {
                    job.Completion.TrySetException(failure);
                }

                return;
            }

            PublishChanges(committedSeq);
            foreach (var job in jobs)
            {
                job.Completion.TrySetResult(job.Results);
            }
        });
    }

    private Exception? ApplyOne(WriterStatements s, string tenant, EntityWrite write, List<string> newTenants)
    {
        // The mutation runs before this write touches the database (a creation tried first takes its row out again),
        // so a mutation that throws leaves nothing to undo; a failing SQL statement fails the whole commit instead.
        _termsOfCurrentWrite.Clear();
        try
        {
            if (TryCreate(s, tenant, write, newTenants, out var decided))
            {
                return null;
            }

            long? rid = null;
            Entity? current = null;
            byte[]? before = null;
            s.Select.Bind(1, tenant).Bind(2, write.Id);
            try
            {
                if (decided is null && s.Select.Step())
                {
                    rid = s.Select.Int64(0);
                    before = s.Select.Blob(1).ToArray();
                    current = EntityCodec.Decode(before);
                }
            }
            finally
            {
                s.Select.Reset();
            }

            // The entity may have been created earlier in this transaction: its type rows and index entries must be there
            // before this write compares against them.
            if (current is not null)
            {
                InsertNewIndexRows(s);
            }

            // Rows the index tables hold now; the mutation may change the entity in place.
            string[]? typesBefore = current is null ? null : [.. current.Types];
            string[]? attrsBefore = current is null ? null : [.. current.Attributes.Keys];
            var valuesBefore = current is null ? NoValues : EntityIndexRows.Values(current);
            var boxesBefore = current is null ? NoBoxes : EntityIndexRows.Boxes(current);
            var stampsBefore = HistoryDiff.Stamps(current);
            var accessBefore = EntityAccess.Of(current);
            var mutation = decided ?? write.Mutate(current);
            switch (mutation.Kind)
            {
                case MutationKind.Put when mutation.Created is { } created && rid is null:
                    Create(s, tenant, created, newTenants);
                    break;
                case MutationKind.Put:
                    var entity = mutation.Entity!;
                    HistoryDiff.CheckLimit(entity);
                    var doc = EntityCodec.Encode(entity);
                    var access = EntityAccess.Of(entity);
                    if (rid is null)
                    {
                        rid = InsertEntity(s, tenant, entity.Id, doc, access, newTenants);
                    }
                    else
                    {
                        s.Update.Bind(1, rid.Value).Bind(2, doc)
                            .Bind(3, (long)access.Level).BindOrNull(4, access.Owner).BindOrNull(5, access.Category).Execute();
                    }

                    var at = DateTimeOffset.UtcNow;
                    // Index rows change only by the names that came or went (usually none on an update).
                    s.Index(s.DeleteTypes, tenant, rid.Value, EntityIndexRows.Except(typesBefore, entity.Types), TermId);
                    s.Index(s.InsertTypes, tenant, rid.Value, EntityIndexRows.Except(entity.Types, typesBefore), TermId);
                    UpdateNames(s, tenant, rid.Value, attrsBefore, entity.Attributes.Keys);
                    UpdateQueryIndexes(s, tenant, rid.Value, valuesBefore, boxesBefore, EntityIndexRows.Values(entity), EntityIndexRows.Boxes(entity));
                    var seq = LogChange(s, tenant, entity.Id, before is null ? ChangeKind.Created : ChangeKind.Updated, before, doc, at);
                    RecordHistory(s, tenant, entity.Id, seq, at, stampsBefore, typesBefore, entity, accessBefore);
                    break;
                case MutationKind.Delete when rid is not null:
                    s.Delete.Bind(1, rid.Value).Execute();
                    s.Index(s.DeleteTypes, tenant, rid.Value, typesBefore!, TermId);
                    UpdateNames(s, tenant, rid.Value, attrsBefore, []);
                    UpdateQueryIndexes(s, tenant, rid.Value, valuesBefore, boxesBefore, [], []);
                    var deletedAt = DateTimeOffset.UtcNow;
                    var deletion = LogChange(s, tenant, write.Id, ChangeKind.Deleted, before, null, deletedAt);
                    RecordHistory(s, tenant, write.Id, deletion, deletedAt, stampsBefore, typesBefore, null);
                    break;
                default:
                    break;
            }

            return null;
        }
        catch (Exception ex) when (ex is not SqliteException)
        {
            foreach (var iri in _termsOfCurrentWrite)
            {
                _termIds.TryRemove(iri, out _);
            }

            return ex;
        }
    }

    /// <summary>
    /// Stores a prepared new entity (<see cref="NewEntityRows"/>): its row, index rows, change-log row and history, from
    /// the prepared arrays alone. Whatever can refuse it is checked before the first row is written.
    /// </summary>
    private void Create(WriterStatements s, string tenant, NewEntityRows created, List<string> newTenants)
    {
        HistoryDiff.CheckLimit(created.InstanceCount);
        var boxes = CheckGeoSlots(created.Index.Boxes);
        var rid = InsertEntity(s, tenant, created.Id, created.Doc, created.Access, newTenants);
        Created(s, tenant, created, rid, boxes);
    }

    /// <summary>
    /// A write that may create its prepared entity (create, upsert) tries that first: its row goes in unless the id is
    /// taken, so a new entity costs one probe of the (tenant, id) key instead of a look-up and then the insert (a batch
    /// of new entities is mostly that). False when the entity exists, or the write decides otherwise on no entity: its
    /// row is gone again and the write runs as any other, with the mutation it <paramref name="decided"/> on no entity.
    /// </summary>
    private bool TryCreate(WriterStatements s, string tenant, EntityWrite write, List<string> newTenants, out Mutation? decided)
    {
        decided = null;
        if (write.Prepared is not { } prepared || prepared.InstanceCount >= HistoryDiff.MaxInstancesPerWrite || prepared.Index.Boxes.Count > GeoSlotsPerEntity)
        {
            return false;
        }

        var access = prepared.Access;
        if (s.InsertNew.Bind(1, tenant).Bind(2, prepared.Id).Bind(3, prepared.Doc)
                .Bind(4, (long)access.Level).BindOrNull(5, access.Owner).BindOrNull(6, access.Category).InsertOrIgnore() is not { } rid)
        {
            return false;
        }

        Mutation mutation;
        try
        {
            mutation = write.Mutate(null);
        }
        catch
        {
            s.Delete.Bind(1, rid).Execute();
            throw;
        }

        if (mutation.Kind != MutationKind.Put || !ReferenceEquals(mutation.Created, prepared))
        {
            s.Delete.Bind(1, rid).Execute();
            decided = mutation;
            return false;
        }

        EnsureTenant(s, tenant, newTenants);
        Created(s, tenant, prepared, rid, prepared.Index.Boxes);
        return true;
    }

    /// <summary>The rows that follow a new entity's own row (rid): index rows, change-log row, history.</summary>
    private void Created(WriterStatements s, string tenant, NewEntityRows created, long rid, List<IndexedBox> boxes)
    {
        AddNewIndexRows(s, tenant, rid, created, boxes);
        var seq = LogChange(s, tenant, created.Id, ChangeKind.Created, null, created.Doc, DateTimeOffset.UtcNow);
        RecordCreation(s, tenant, seq, created);
    }

    /// <summary>Inserts a new entity's row (and its tenant's, the first time an entity is stored in it); its rid.</summary>
    private long InsertEntity(WriterStatements s, string tenant, string id, byte[] doc, EntityAccess access, List<string> newTenants)
    {
        EnsureTenant(s, tenant, newTenants);
        return s.Insert.Bind(1, tenant).Bind(2, id).Bind(3, doc)
            .Bind(4, (long)access.Level).BindOrNull(5, access.Owner).BindOrNull(6, access.Category).Insert();
    }

    /// <summary>Stores the tenant's row the first time an entity is stored in it.</summary>
    private void EnsureTenant(WriterStatements s, string tenant, List<string> newTenants)
    {
        if (tenant.Length > 0 && _knownTenants.TryAdd(tenant, true))
        {
            newTenants.Add(tenant);
            s.InsertTenant.Parameters[0].Value = tenant;
            s.InsertTenant.Parameters[1].Value = NgsiText.FormatDateTime(DateTimeOffset.UtcNow);
            s.InsertTenant.ExecuteNonQuery();
        }
    }

    /// <summary>Appends a change to the log; its seq.</summary>
    private long LogChange(WriterStatements s, string tenant, string id, ChangeKind kind, byte[]? before, byte[]? after, DateTimeOffset at)
    {
        s.InsertChange.Bind(1, tenant).Bind(2, id).Bind(3, (long)kind).Bind(6, at.UtcTicks);
        if (before is not null)
        {
            s.InsertChange.Bind(4, before);
        }

        if (after is not null)
        {
            s.InsertChange.Bind(5, after);
        }

        _pendingLastSeq = s.InsertChange.Insert();
        return _pendingLastSeq;
    }

    /// <summary>Adds a stored entity's attribute names, values and boxes to the in-memory indexes.</summary>
    private void IndexInMemory(WriterStatements s, string tenant, long rid, Entity entity)
    {
        UpdateNames(s, tenant, rid, null, entity.Attributes.Keys);
        UpdateQueryIndexes(s, tenant, rid, [], [], EntityIndexRows.Values(entity), EntityIndexRows.Boxes(entity));
    }

    /// <summary>Brings the attribute-name entries of one entity from the names it had (null: none) to those it has now (<see cref="MemoryQueryIndex"/>).</summary>
    private void UpdateNames(WriterStatements s, string tenant, long rid, IReadOnlyCollection<string>? before, IReadOnlyCollection<string> after)
    {
        foreach (var name in EntityIndexRows.Except(before, after))
        {
            _memory.RemoveName(tenant, TermId(s, name), rid);
        }

        foreach (var name in EntityIndexRows.Except(after, before))
        {
            _memory.AddName(tenant, TermId(s, name), rid);
        }
    }

    /// <summary>Brings the value and geo index entries of one entity from what they were to what they are now (<see cref="MemoryQueryIndex"/>).</summary>
    private void UpdateQueryIndexes(WriterStatements s, string tenant, long rid, HashSet<IndexedValue> valuesBefore, List<IndexedBox> boxesBefore,
        HashSet<IndexedValue> valuesAfter, List<IndexedBox> boxesAfter)
    {
        // Refused before anything changes: a removal recorded for a write that fails would be carried out at commit.
        CheckGeoSlots(boxesAfter);
        foreach (var row in valuesBefore)
        {
            if (!valuesAfter.Contains(row))
            {
                _memory.RemoveValue(tenant, ValueKey(s, row), row.Value, rid);
            }
        }

        foreach (var row in valuesAfter)
        {
            if (!valuesBefore.Contains(row))
            {
                _memory.AddValue(tenant, ValueKey(s, row), row.Value, rid);
            }
        }

        if (boxesAfter.SequenceEqual(boxesBefore))
        {
            return;
        }

        _memory.RemoveBoxes(tenant, rid, boxesBefore);
        _memory.AddBoxes(tenant, rid, boxesAfter);
    }

    /// <summary>
    /// The index rows of a new entity (no rows to compare with, so no sets to build): its type rows, attribute-name and
    /// value entries and boxes kept until <see cref="InsertNewIndexRows"/> adds them.
    /// </summary>
    private void AddNewIndexRows(WriterStatements s, string tenant, long rid, NewEntityRows entity, List<IndexedBox> boxes)
    {
        foreach (var type in entity.Types)
        {
            WriterStatements.NewRids(s.NewTypes, tenant, TermId(s, type)).Add(rid);
        }

        foreach (var name in entity.Names)
        {
            _memory.StageName(tenant, TermId(s, name), rid);
        }

        foreach (var (attribute, kind, value) in entity.Index.Values)
        {
            _memory.StageValue(tenant, ValueKey(s, attribute, kind), value, rid);
        }

        _memory.StageBoxes(tenant, rid, boxes);
    }

    /// <summary>An entity's geo boxes, when each has an id slot (<see cref="GeoSlotsPerEntity"/>).</summary>
    private static List<IndexedBox> CheckGeoSlots(List<IndexedBox> boxes) => boxes.Count <= GeoSlotsPerEntity
        ? boxes
        : throw Machi.Ngsi.Errors.NgsiException.BadData($"An entity may have at most {GeoSlotsPerEntity} GeoProperty names.");

    /// <summary>
    /// Inserts the type rows of the entities created so far in this transaction, one statement per type (the rows of
    /// one type are next to each other in its index), and adds their staged memory entries in order.
    /// </summary>
    private void InsertNewIndexRows(WriterStatements s)
    {
        // Many value entries (a batch's) are sorted and added on another core while this one, the single writer,
        // inserts the type rows; the writer goes on only once they are in.
        var values = _memory.StagedCount >= StagedInParallel ? Task.Run(_memory.AddStaged) : null;
        try
        {
            InsertNewRids(s.InsertTypeRids, s.NewTypes);
        }
        finally
        {
            if (values is null)
            {
                _memory.AddStaged();
            }
            else
            {
                values.GetAwaiter().GetResult();
            }
        }
    }

    /// <summary>How many staged value entries are worth handing to another thread (<see cref="InsertNewIndexRows"/>).</summary>
    private const int StagedInParallel = 1024;

    /// <summary>Runs <paramref name="statement"/> once for each (tenant, term) with its rids as a JSON array.</summary>
    private static void InsertNewRids(RawStatement statement, Dictionary<(string Tenant, long Term), List<long>> rids)
    {
        if (rids.Count == 0)
        {
            return;
        }

        var json = new StringBuilder();
        foreach (var ((tenant, term), list) in rids)
        {
            json.Clear().Append('[');
            foreach (var rid in list)
            {
                json.Append(rid).Append(',');
            }

            json[^1] = ']';
            statement.Bind(1, tenant).Bind(2, term).Bind(3, json.ToString()).Execute();
        }

        rids.Clear();
    }

    private long ValueKey(WriterStatements s, IndexedValue row) => ValueKey(s, row.Attribute, row.Kind);

    private long ValueKey(WriterStatements s, string attribute, IndexedValueKind kind)
    {
        var term = TermId(s, attribute);
        return kind == IndexedValueKind.Instant ? -term : term;
    }

    /// <summary>
    /// Indexes every stored entity: its types (already there when the query index tables are created; inserted if
    /// missing), and its names, values and boxes in memory. Run once when the query index tables are created, and after
    /// <see cref="ImportAsync"/> stored entities as they were.
    /// </summary>
    private void IndexAll(SqliteTransaction tx)
    {
        using var s = new WriterStatements(_writer!);
        s.Bind(tx);
        ForEachStored(tx, (rid, tenant, entity) =>
        {
            s.Index(s.InsertTypes, tenant, rid, entity.Types, TermId);
            IndexInMemory(s, tenant, rid, entity);
        });
    }

    /// <summary>Fills the in-memory indexes from every stored entity (at start, before any query or write).</summary>
    private void FillMemoryIndexes()
    {
        using var s = new WriterStatements(_writer!);
        ForEachStored(null, (rid, tenant, entity) => IndexInMemory(s, tenant, rid, entity));
        _memory.Committed();
    }

    /// <summary>Runs <paramref name="index"/> on every stored entity (rid, tenant, entity), on the writer's connection.</summary>
    private void ForEachStored(SqliteTransaction? tx, Action<long, string, Entity> index)
    {
        using var all = _writer!.CreateCommand();
        all.Transaction = tx;
        all.CommandText = "SELECT rid, tenant, doc FROM entities";
        using var r = all.ExecuteReader();
        while (r.Read())
        {
            index(r.GetInt64(0), r.GetString(1), Decode(r, 2));
        }
    }

    /// <summary>
    /// Runs <paramref name="copy"/> (rows stored as they were, for machi import) and then indexes every entity, in one
    /// transaction of the writer: the import is kept whole or not at all.
    /// </summary>
    internal Task ImportAsync(Action<SqliteConnection, SqliteTransaction> copy, CancellationToken cancellationToken) =>
        RunInWriterAsync((connection, tx) =>
        {
            copy(connection, tx);
            IndexAll(tx);
        }, cancellationToken);

    public ValueTask<IReadOnlyList<(string Tenant, string Id)>> OwnedEntitiesAsync(string resident, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<(string Tenant, string Id)>>(Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT tenant, id FROM entities WHERE owner = $owner AND access = 2";
            cmd.Parameters.AddWithValue("$owner", resident);
            using var r = cmd.ExecuteReader();
            var list = new List<(string, string)>();
            while (r.Read())
            {
                list.Add((r.GetString(0), r.GetString(1)));
            }

            return list;
        }));

    /// <summary>Sets the access columns of entities stored before they existed (only those naming Machi's vocabulary can differ from the default).</summary>
    private void MarkAccess(SqliteTransaction tx)
    {
        var marks = new List<(long Rid, EntityAccess Access)>();
        using (var all = _writer!.CreateCommand())
        {
            all.Transaction = tx;
            all.CommandText = "SELECT rid, doc FROM entities WHERE instr(doc, $vocabulary) > 0";
            all.Parameters.AddWithValue("$vocabulary", Encoding.UTF8.GetBytes(EntityAccess.Vocabulary));
            using var r = all.ExecuteReader();
            while (r.Read())
            {
                marks.Add((r.GetInt64(0), EntityAccess.Of(Decode(r, 1))));
            }
        }

        using var update = _writer.CreateCommand();
        update.Transaction = tx;
        update.CommandText = "UPDATE entities SET access = $access, owner = $owner, category = $category WHERE rid = $rid";
        Execute(_writer, """
            UPDATE history_entities SET access = e.access, owner = e.owner, category = e.category
            FROM entities e WHERE e.tenant = history_entities.tenant AND e.id = history_entities.id AND e.access <> 0
            """, tx);
        foreach (var (rid, access) in marks)
        {
            update.Parameters.Clear();
            update.Parameters.AddWithValue("$access", (long)access.Level);
            update.Parameters.AddWithValue("$owner", (object?)access.Owner ?? DBNull.Value);
            update.Parameters.AddWithValue("$category", (object?)access.Category ?? DBNull.Value);
            update.Parameters.AddWithValue("$rid", rid);
            update.ExecuteNonQuery();
        }
    }

    /// <summary>The id of a term, numbering it (inside the current write transaction) when new.</summary>
    private long TermId(WriterStatements s, string iri)
    {
        if (_termIds.TryGetValue(iri, out var id))
        {
            return id;
        }

        s.SelectTerm.Parameters[0].Value = iri;
        if (s.SelectTerm.ExecuteScalar() is not long existing)
        {
            s.InsertTerm.Parameters[0].Value = iri;
            existing = (long)s.InsertTerm.ExecuteScalar()!;
            _termsOfCurrentWrite.Add(iri);
        }

        _termIds[iri] = existing;
        return existing;
    }

    /// <summary>Decodes the document in column <paramref name="ordinal"/> (GetFieldValue reads the column's bytes
    /// directly; GetBytes and GetStream would open SQLite incremental blob I/O for every row).</summary>
    private static Entity Decode(SqliteDataReader r, int ordinal) => EntityCodec.Decode(r.GetFieldValue<byte[]>(ordinal));

    private Reader RentReader()
    {
        if (_readers.TryTake(out var reader))
        {
            return reader;
        }

        return new Reader(_connectionString);
    }

    private void ReturnReader(Reader reader)
    {
        if (_readers.Count < MaxPooledReaders)
        {
            _readers.Add(reader);
        }
        else
        {
            reader.Dispose();
        }
    }

    internal static void Execute(SqliteConnection connection, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <summary>The one integer a statement (or a pragma) returns.</summary>
    internal static long Scalar(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        return (long)cmd.ExecuteScalar()!;
    }

    private sealed class WriteJob(string tenant, IReadOnlyList<EntityWrite> writes, Action<SqliteConnection, SqliteTransaction>? work = null)
    {
        public string Tenant { get; } = tenant;

        public EntityWrite[] Writes { get; } = [.. writes];

        /// <summary>Other work for the writer's transaction (history, outbox, cursors), instead of entity writes.</summary>
        public Action<SqliteConnection, SqliteTransaction>? Work { get; } = work;

        public Exception?[] Results { get; } = new Exception?[writes.Count];

        public TaskCompletionSource<Exception?[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A read-only connection with its prepared statements.</summary>
    private sealed class Reader : IDisposable
    {
        public Reader(string connectionString)
        {
            Connection = new SqliteConnection(connectionString);
            Connection.Open();
            Execute(Connection, "PRAGMA query_only=1; PRAGMA busy_timeout=5000; PRAGMA cache_size=-2000; PRAGMA mmap_size=67108864;");
            GetEntity = new RawStatement(Connection, "SELECT doc FROM entities WHERE tenant = ?1 AND id = ?2");
            GetTerm = Connection.CreateCommand();
            GetTerm.CommandText = "SELECT id FROM terms WHERE iri = $iri";
            GetTerm.Parameters.Add("$iri", SqliteType.Text);
        }

        private readonly Dictionary<string, RawStatement> _prepared = new(StringComparer.Ordinal);

        public SqliteCommand GetTerm { get; }

        public SqliteConnection Connection { get; }

        public RawStatement GetEntity { get; }

        /// <summary>A statement for <paramref name="sql"/>, prepared on first use and kept (query shapes repeat).</summary>
        public RawStatement Prepared(string sql)
        {
            if (_prepared.TryGetValue(sql, out var statement))
            {
                return statement;
            }

            if (_prepared.Count >= 256)
            {
                foreach (var old in _prepared.Values)
                {
                    old.Dispose();
                }

                _prepared.Clear();
            }

            return _prepared[sql] = new RawStatement(Connection, sql);
        }

        public void Dispose()
        {
            foreach (var statement in _prepared.Values)
            {
                statement.Dispose();
            }

            GetEntity.Dispose();
            GetTerm.Dispose();
            Connection.Dispose();
        }
    }

    /// <summary>The writer connection's prepared statements.</summary>
    private sealed class WriterStatements : IDisposable
    {
        private readonly List<SqliteCommand> _all = [];
        private readonly List<RawStatement> _raw = [];
        private readonly SqliteConnection _connection;

        public WriterStatements(SqliteConnection c)
        {
            Select = Raw(c, "SELECT rid, doc FROM entities WHERE tenant = ?1 AND id = ?2");
            Delete = Raw(c, "DELETE FROM entities WHERE rid = ?1");

            // One statement per index and entity: the term ids travel as a JSON array (?2).
            DeleteTypes = Raw(c, "DELETE FROM entity_types WHERE tenant = ?1 AND type IN (SELECT value FROM json_each(?2)) AND rid = ?3");
            InsertTypes = Raw(c, "INSERT OR IGNORE INTO entity_types(tenant, type, rid) SELECT ?1, value, ?3 FROM json_each(?2)");
            InsertTypeRids = Raw(c, "INSERT OR IGNORE INTO entity_types(tenant, type, rid) SELECT ?1, ?2, value FROM json_each(?3)");
            InsertChange = Raw(c, "INSERT INTO entity_changes(tenant, entity_id, kind, before, after, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
            SelectTerm = Make(c, "SELECT id FROM terms WHERE iri = $iri", "$iri");
            InsertTerm = Make(c, "INSERT INTO terms(iri) VALUES ($iri) RETURNING id", "$iri");
            InsertTenant = Make(c, "INSERT OR IGNORE INTO tenants(name, created_at) VALUES ($name, $at)", "$name", "$at");
            _connection = c;
        }

        // The history statements are prepared on first use: earlier schema steps (re-indexing) run before their tables exist.
        public RawStatement InsertHistory => field ??= Raw(_connection, """
            INSERT INTO history (hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
            """);

        // Prepared on first use, like the history statements: the access columns come with a later schema step.
        public RawStatement Insert => field ??= Raw(_connection,
            "INSERT INTO entities(tenant, id, doc, access, owner, category) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");

        public RawStatement InsertNew => field ??= Raw(_connection,
            "INSERT INTO entities(tenant, id, doc, access, owner, category) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant, id) DO NOTHING");

        public RawStatement Update => field ??= Raw(_connection, "UPDATE entities SET doc = ?2, access = ?3, owner = ?4, category = ?5 WHERE rid = ?1");

        public RawStatement UpdateHistoryAccess => field ??= Raw(_connection, "UPDATE history_entities SET access = ?2, owner = ?3, category = ?4 WHERE hid = ?1");

        public RawStatement SelectHistoryEntity => field ??= Raw(_connection, "SELECT hid FROM history_entities WHERE tenant = ?1 AND id = ?2");

        public RawStatement UpsertHistoryEntity => field ??= Raw(_connection, """
            INSERT INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, modified_at = excluded.modified_at, deleted_at = excluded.deleted_at
            RETURNING hid
            """);

        public RawStatement InsertCreatedHistoryEntity => field ??= Raw(_connection, """
            INSERT OR IGNORE INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at, access, owner, category)
            VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8)
            """);

        // A created entity's history row takes the entity's access marks in the same statement (no UPDATE after it).
        public RawStatement UpsertCreatedHistoryEntity => field ??= Raw(_connection, """
            INSERT INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at, access, owner, category)
            VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8)
            ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, modified_at = excluded.modified_at, deleted_at = NULL,
                access = excluded.access, owner = excluded.owner, category = excluded.category
            RETURNING hid
            """);

        public RawStatement Select { get; }

        /// <summary>The type rows of the entities this transaction has created, by (tenant, term), not inserted yet.</summary>
        public Dictionary<(string Tenant, long Term), List<long>> NewTypes { get; } = [];

        public RawStatement Delete { get; }

        public RawStatement DeleteTypes { get; }

        public RawStatement InsertTypes { get; }

        /// <summary>One type's rows for many entities: the rids as a JSON array (?3).</summary>
        public RawStatement InsertTypeRids { get; }

        public RawStatement InsertChange { get; }

        public SqliteCommand InsertTenant { get; }

        public SqliteCommand SelectTerm { get; }

        public SqliteCommand InsertTerm { get; }

        /// <summary>The list of rids waiting for (tenant, term) in <paramref name="rows"/>.</summary>
        public static List<long> NewRids(Dictionary<(string Tenant, long Term), List<long>> rows, string tenant, long term)
        {
            if (!rows.TryGetValue((tenant, term), out var rids))
            {
                rows[(tenant, term)] = rids = [];
            }

            return rids;
        }

        /// <summary>Forgets the rows of a transaction that did not commit.</summary>
        public void ClearNewIndexRows()
        {
            NewTypes.Clear();
        }

        public void Bind(SqliteTransaction tx)
        {
            foreach (var cmd in _all)
            {
                cmd.Transaction = tx;
            }
        }

        /// <summary>Runs an index statement for the given names (as a JSON array of term ids); nothing when empty.</summary>
        public void Index(RawStatement statement, string tenant, long rid, IReadOnlyCollection<string> iris, Func<WriterStatements, string, long> termId)
        {
            if (iris.Count == 0)
            {
                return;
            }

            var ids = new StringBuilder("[");
            foreach (var iri in iris)
            {
                if (ids.Length > 1)
                {
                    ids.Append(',');
                }

                ids.Append(termId(this, iri));
            }

            statement.Bind(1, tenant).Bind(2, ids.Append(']').ToString()).Bind(3, rid).Execute();
        }

        public void Dispose()
        {
            foreach (var cmd in _all)
            {
                cmd.Dispose();
            }

            foreach (var statement in _raw)
            {
                statement.Dispose();
            }
        }

        private RawStatement Raw(SqliteConnection c, string sql)
        {
            var statement = new RawStatement(c, sql);
            _raw.Add(statement);
            return statement;
        }

        private SqliteCommand Make(SqliteConnection c, string sql, params string[] parameters)
        {
            var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            foreach (var p in parameters)
            {
                cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
            }

            _all.Add(cmd);
            return cmd;
        }
    }
}
