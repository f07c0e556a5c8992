using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Machi.Ngsi.Model;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>
/// The PostgreSQL (+ PostGIS) backend. Writes go through one writer per node that groups the writes waiting at the
/// same moment into one transaction, as <see cref="SqliteEntityStore"/> does: the entity row, its index rows, the
/// change-log row and the history rows of each write are in that transaction, and a write is acknowledged once the
/// commit is flushed (synchronous_commit). A group costs a few round trips whatever its size: read the current rows
/// of all its entities, send all its statements as one batch, copy its new rows (a COPY a table), commit. Each transaction takes one advisory lock first, so writers on every node
/// take turns: the change log's seqs then commit in order (a consumer reading "after seq" never skips a change that
/// commits late) and two nodes never lose each other's update of one entity. Reads use the data source's pool.
/// Waits for changes LISTEN on a channel each writer NOTIFYs in its transaction (delivered at commit, on every
/// node), with a poll every few seconds as a backstop for a listener connection that was lost.
/// </summary>
internal sealed partial class PostgresEntityStore : IEntityStore
{
    /// <summary>The advisory lock every writing transaction holds (any constant shared by the nodes).</summary>
    internal const long WriterLock = 0x6D61636869_02;

    internal const string ChangeChannel = "machi_changes";

    /// <summary>Announces a change to the subscriptions (every node reads them again).</summary>
    internal const string SubscriptionChannel = "machi_subscriptions";

    /// <summary>Announces a change to the context source registrations.</summary>
    internal const string RegistrationChannel = "machi_registrations";

    /// <summary>Announces a consent granted, revoked or erased.</summary>
    internal const string ConsentChannel = "machi_consents";

    private const int MaxWritesPerCommit = 512;
    private const int DefaultWriteBufferSize = 8192;
    private const int CopyWriteBufferSize = 64 * 1024;
    private const int CandidateChunk = 256;
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);

    private readonly string _connectionString;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Channel<WriteJob> _writes = Channel.CreateUnbounded<WriteJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, bool> _knownTenants = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _termIds = new(StringComparer.Ordinal);
    private readonly CandidateShares _candidateShares = new();
    private readonly CancellationTokenSource _stopping = new();
    private NpgsqlDataSource? _dataSource;
    private NpgsqlDataSource? _readSource;
    private Task? _writerLoop;
    private Task? _listenerLoop;
    private long _lastChangeSeq;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The first month without history partitions created ahead (writer only).
    private DateTime _partitionedUntil;
    private int _disposed;

    // Entities written since the index tables' statistics were last taken, and how many entities there were then.
    private long _writtenSinceAnalyze;
    private long _entitiesAtAnalyze;
    private Task _analyzing = Task.CompletedTask;

    public PostgresEntityStore(string connectionString, ILogger<PostgresEntityStore> logger, TimeProvider? time = null)
    {
        _connectionString = connectionString;
        _logger = logger;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// Some node changed the subscriptions (or the listener reconnected and may have missed that): raised on the
    /// listener's thread, so handlers only mark what they cache as stale.
    /// </summary>
    internal event Action? SubscriptionsChanged;

    /// <summary>As <see cref="SubscriptionsChanged"/>, for the context source registrations.</summary>
    internal event Action? RegistrationsChanged;

    /// <summary>As <see cref="SubscriptionsChanged"/>, for residents' consents.</summary>
    internal event Action? ConsentsChanged;

    /// <summary>The connection string the store was opened with (for connections of their own, e.g. leadership).</summary>
    internal string ConnectionString => _connectionString;

    internal NpgsqlDataSource DataSource => _dataSource ?? throw new InvalidOperationException("The store is not initialized.");

    /// <summary>The multiplexed source for reads and queries outside a transaction (no LISTEN, no session state).</summary>
    internal NpgsqlDataSource ReadSource => _readSource ?? throw new InvalidOperationException("The store is not initialized.");

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        // Statements a connection runs again and again (each kind of write and index statement, the entity lookups)
        // are prepared on it automatically: PostgreSQL then parses and plans each once per connection, not per use.
        // A connection string that sets its own value keeps it.
        var connection = new NpgsqlConnectionStringBuilder(_connectionString);
        if (connection.MaxAutoPrepare == 0)
        {
            connection.MaxAutoPrepare = 256;
        }

        // Query plans cost little to run; PostgreSQL's JIT compiler judged them by their worst-case estimates and spent
        // up to 0.8 s compiling a geo-query that then ran in milliseconds.
        if (connection.Options?.Contains("jit", StringComparison.Ordinal) != true)
        {
            connection.Options = (connection.Options + " -c jit=off").Trim();
        }

        // The writer streams a group's new rows (~6 MB for 1,000 entities) by COPY: a larger buffer sends them in fewer
        // socket writes (on loopback each write also runs the receiving side's TCP work on the sender's core).
        var writeBuffer = connection.WriteBufferSize;
        if (writeBuffer == DefaultWriteBufferSize)
        {
            connection.WriteBufferSize = CopyWriteBufferSize;
        }

        _dataSource = NpgsqlDataSource.Create(connection.ConnectionString);
        connection.WriteBufferSize = writeBuffer;

        // Reads by id and queries share a few connections, many commands in flight on each (Npgsql's multiplexing):
        // a command a connection at a time cost the broker ~170 µs of CPU a read (socket round trips, wake-ups) and
        // held reads near 4,000/s. Transactions, LISTEN and session locks stay on the other source. Two connections a
        // core: with four, PostgreSQL's backends took the cores from each other mid-statement, and 16 clients' queries
        // over 1,000,000 entities waited for it (p99 near 1 km 32 ms, with two a core 21–23 ms; bench/README.md).
        connection.Multiplexing = connection.Pooling;
        connection.MaxPoolSize = Math.Min(connection.MaxPoolSize, 2 * Environment.ProcessorCount);
        _readSource = NpgsqlDataSource.Create(connection.ConnectionString);
        await PostgresSchema.MigrateAsync(_dataSource, cancellationToken, afterStep: MigrateDataAsync).ConfigureAwait(false);
        await EnsurePartitionsAsync(cancellationToken).ConfigureAwait(false);
        await using (var cmd = _dataSource.CreateCommand("SELECT name FROM tenants"))
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                _knownTenants[r.GetString(0)] = true;
            }
        }

        _lastChangeSeq = await MaxSeqAsync(cancellationToken).ConfigureAwait(false);
        _writerLoop = Task.Run(WriterLoop, CancellationToken.None);
        _listenerLoop = Task.Run(() => ListenLoop(_stopping.Token), CancellationToken.None);
    }

    public async ValueTask<Entity?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        await using var cmd = ReadSource.CreateCommand("SELECT doc FROM entities WHERE tenant = $1 AND id = $2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is byte[] doc ? EntityCodec.Decode(doc) : null;
    }

    public async ValueTask<bool> TenantExistsAsync(string tenant, CancellationToken cancellationToken)
    {
        if (tenant.Length == 0 || _knownTenants.ContainsKey(tenant))
        {
            return true;
        }

        // Another node may have created it.
        await using var cmd = DataSource.CreateCommand("SELECT 1 FROM tenants WHERE name = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        if (await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
        {
            return false;
        }

        _knownTenants[tenant] = true;
        return true;
    }

    public async ValueTask<EntityPage> QueryAsync(string tenant, EntityQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await ReadSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var terms = await TermResolverAsync(connection, query.Filter, cancellationToken).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        var plan = PostgresQueryPlanner.Plan(cmd, tenant, query.Filter, terms, query.Access);
        if (!plan.Satisfiable)
        {
            return new EntityPage([], query.Count ? 0 : null);
        }

        var entities = new List<Entity>(Math.Min(query.Limit, 1000));
        if (plan.Exact)
        {
            long? total = null;
            if (query.Count)
            {
                cmd.CommandText = $"SELECT count(*) {plan.FromWhere}";
                total = (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }

            if (query.Limit > 0)
            {
                cmd.CommandText = $"SELECT e.doc {plan.FromWhere} ORDER BY e.rid LIMIT @limit OFFSET @offset";
                cmd.Parameters.Add(new NpgsqlParameter("limit", NpgsqlDbType.Bigint) { Value = (long)query.Limit });
                cmd.Parameters.Add(new NpgsqlParameter("offset", NpgsqlDbType.Bigint) { Value = (long)query.Offset });
                await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    entities.Add(EntityCodec.Decode(r.GetFieldValue<byte[]>(0)));
                }
            }

            return new EntityPage(entities, total);
        }

        // The evaluator decides on each candidate, streamed from the driving index in chunks (keyset), so a page reads
        // only the candidates it needs; counting needs every candidate. The first chunk is sized for a page at the share
        // of candidates that statement kept in earlier queries (nearly all for a geo or range condition alone).
        var wanted = (long)query.Offset + query.Limit;
        var seen = new HashSet<long>();
        var matched = 0L;
        var after = new NpgsqlParameter("after", NpgsqlDbType.Bigint);
        var size = new NpgsqlParameter("chunk", NpgsqlDbType.Bigint);
        cmd.Parameters.Add(after);
        cmd.Parameters.Add(size);
        var rows = new List<(long Rid, double Distance, byte[]? Doc)>();
        foreach (var phase in plan.Phases)
        {
            cmd.CommandText = phase.Sql;
            var key = phase.KeyParameter();
            if (key is not null)
            {
                cmd.Parameters.Add(key);
            }

            after.Value = long.MinValue;
            var chunk = query.Count ? CandidateChunk : CandidateShares.Chunk(wanted, _candidateShares.Of(phase.Sql), 16, CandidateChunk);
            var (readInPhase, matchedBefore) = (0L, matched);
            var ended = false;
            while (!ended)
            {
                size.Value = (long)chunk;
                rows.Clear();
                await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var rid = r.GetInt64(0);
                        after.Value = rid;
                        var distance = 0.0;
                        if (phase.Key == StreamKey.Distance)
                        {
                            distance = r.GetDouble(1);
                        }
                        else if (key is not null)
                        {
                            key.Value = phase.Key == StreamKey.Text ? r.GetString(1) : r.GetDouble(1);
                        }

                        rows.Add((rid, distance, r.IsDBNull(2) ? null : r.GetFieldValue<byte[]>(2)));
                    }
                }

                ended = rows.Count < chunk;
                var take = rows.Count;
                if (phase.Key == StreamKey.Distance && rows.Count > 0)
                {
                    // Rows come (distance, rid) in order, and the next chunk starts at the last distance: rows at that
                    // distance wait for it, so entities at one distance keep one order whatever the chunks. A chunk
                    // all at one distance is read again, twice as large.
                    var last = rows[^1].Distance;
                    if (!ended)
                    {
                        take = rows.FindIndex(row => row.Distance == last);
                        key!.Value = last;
                    }

                    var beyond = rows.FindIndex(row => row.Distance > phase.StopBeyond);
                    if (beyond >= 0)
                    {
                        (take, ended) = (beyond, true);
                    }
                    else if (take == 0)
                    {
                        chunk *= 2;
                        continue;
                    }
                }

                for (var i = 0; i < take; i++)
                {
                    if (rows[i].Doc is not { } doc || !seen.Add(rows[i].Rid))
                    {
                        continue;
                    }

                    var entity = EntityCodec.Decode(doc);
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
                        _candidateShares.Learn(phase.Sql, readInPhase + i + 1, matched - matchedBefore);
                        return new EntityPage(entities, null);
                    }
                }

                // The next chunk is sized for the page's rest at the share of candidates that matched so far (other
                // conditions and the evaluator reject some: a type + q query keeps about one in five).
                readInPhase += take;
                chunk = query.Count ? Math.Max(CandidateChunk, chunk)
                    : CandidateShares.Chunk(wanted - matched, (double)Math.Max(matched - matchedBefore, 1) / readInPhase, 16, Math.Max(CandidateChunk, chunk));
            }

            if (!query.Count)
            {
                _candidateShares.Learn(phase.Sql, readInPhase, matched - matchedBefore);
            }

            if (key is not null)
            {
                cmd.Parameters.Remove(key);
            }
        }

        return new EntityPage(entities, query.Count ? matched : null);
    }

    /// <summary>
    /// PostgreSQL's plan (EXPLAIN) for the first candidate statement of <paramref name="query"/>, to show which indexes
    /// serve it. Sequential scans and sorts are priced out, as a city's tables price them: on a test's few hundred rows
    /// PostgreSQL rightly reads and sorts whole tables instead.
    /// </summary>
    internal async Task<string> ExplainAsync(string tenant, EntityQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var terms = await TermResolverAsync(connection, query.Filter, cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var off = new NpgsqlCommand("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off", connection, transaction))
        {
            await off.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
        var plan = PostgresQueryPlanner.Plan(cmd, tenant, query.Filter, terms, query.Access);
        cmd.Parameters.Add(new NpgsqlParameter("after", NpgsqlDbType.Bigint) { Value = long.MinValue });
        cmd.Parameters.Add(new NpgsqlParameter("chunk", NpgsqlDbType.Bigint) { Value = 20L });
        if (plan.Exact)
        {
            cmd.CommandText = $"EXPLAIN SELECT e.doc {plan.FromWhere} ORDER BY e.rid LIMIT 20";
        }
        else
        {
            var phase = plan.Phases[0];
            cmd.CommandText = "EXPLAIN " + phase.Sql;
            if (phase.KeyParameter() is { } key)
            {
                cmd.Parameters.Add(key);
            }
        }

        var lines = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            lines.Add(r.GetString(0));
        }

        return string.Join('\n', lines);
    }

    /// <summary>Looks up (one round trip) the term ids a filter names that are not cached yet; the planner then resolves them synchronously.</summary>
    private async Task<Func<string, long?>> TermResolverAsync(NpgsqlConnection connection, Ngsi.Query.EntityFilter filter, CancellationToken cancellationToken)
    {
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var selector in filter.Selectors ?? [])
        {
            if (selector.Type is { } type)
            {
                wanted.UnionWith(type.Names);
            }
        }

        wanted.UnionWith(filter.Attrs ?? []);
        if (filter.Geo is { } geo)
        {
            wanted.Add(geo.GeoProperty);
        }

        if (filter.Q is { } q)
        {
            var terms = q is Ngsi.Query.QLogical { IsAnd: true } and ? and.Terms : [q];
            foreach (var term in terms)
            {
                switch (term)
                {
                    case Ngsi.Query.QExists { Path.Names.Count: 1 } e:
                        wanted.Add(e.Path.Attribute);
                        break;
                    case Ngsi.Query.QComparison { Path.Names.Count: 1 } c:
                        wanted.Add(c.Path.Attribute);
                        break;
                    default:
                        break;
                }
            }
        }

        wanted.RemoveWhere(_termIds.ContainsKey);
        if (wanted.Count > 0)
        {
            await using var cmd = new NpgsqlCommand("SELECT iri, id FROM terms WHERE iri = ANY($1)", connection);
            cmd.Parameters.Add(new NpgsqlParameter { Value = wanted.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                _termIds.TryAdd(r.GetString(0), r.GetInt64(1));
            }
        }

        return iri => _termIds.TryGetValue(iri, out var id) ? id : null;
    }

    public Task<Exception?[]> WriteAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken cancellationToken)
    {
        var job = new WriteJob(tenant, writes, Created(tenant, writes));

        // The writer creates a prepared entity from its rows and those worked out just now: the parsed one may go.
        foreach (var write in writes)
        {
            write.Prepared?.Release();
        }

        if (!_writes.Writer.TryWrite(job))
        {
            throw new ObjectDisposedException(nameof(PostgresEntityStore), "The store is shutting down.");
        }

        return job.Completion.Task;
    }

    public async ValueTask<long> CountAsync(CancellationToken cancellationToken)
    {
        await using var cmd = DataSource.CreateCommand("SELECT count(*) FROM entities");
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    public async ValueTask<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var cmd = DataSource.CreateCommand("SELECT 1");
            return (int)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 1;
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }

    /// <summary>Stops taking writes, commits everything already queued, and closes the connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _writes.Writer.TryComplete();
        if (_writerLoop is not null)
        {
            await _writerLoop.ConfigureAwait(false);
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _analyzing.ConfigureAwait(false);
        if (_listenerLoop is not null)
        {
            await _listenerLoop.ConfigureAwait(false);
        }

        _stopping.Dispose();
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }

        if (_readSource is not null)
        {
            await _readSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task WriterLoop()
    {
        var batch = new List<WriteJob>();
        NpgsqlConnection? connection = null;
        try
        {
            while (await _writes.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                batch.Clear();
                var items = 0;
                while (items < MaxWritesPerCommit && _writes.Reader.TryRead(out var job))
                {
                    batch.Add(job);
                    items += job.Writes.Count;
                }

                try
                {
                    await EnsurePartitionsAsync(CancellationToken.None).ConfigureAwait(false);
                    if (connection is not { State: System.Data.ConnectionState.Open })
                    {
                        if (connection is not null)
                        {
                            await connection.DisposeAsync().ConfigureAwait(false);
                        }

                        connection = await DataSource.OpenConnectionAsync().ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
                {
                    _logger.LogError(ex, "The writer could not reach the database");
                    foreach (var job in batch)
                    {
                        job.Completion.TrySetException(ex);
                    }

                    continue;
                }

                await CommitAsync(connection, batch).ConfigureAwait(false);
            }
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task CommitAsync(NpgsqlConnection connection, List<WriteJob> batch)
    {
        var group = new GroupWrites();
        try
        {
            await using var tx = await connection.BeginTransactionAsync().ConfigureAwait(false);
            await PrefetchAsync(connection, tx, batch, group).ConfigureAwait(false);
            foreach (var job in batch)
            {
                for (var i = 0; i < job.Writes.Count; i++)
                {
                    job.Results[i] = await PlanWriteAsync(group, job.Tenant, job.Writes[i], job.Creations[i]).ConfigureAwait(false);
                }
            }

            await using var statements = new NpgsqlBatch(connection, tx);
            await AddGroupAsync(statements, group).ConfigureAwait(false);
            if (group.LastSeq > 0)
            {
                // Announced at commit, to the listeners of every node: the seq of the last change (a hint; they read the log).
                var notify = new NpgsqlBatchCommand($"SELECT pg_notify('{ChangeChannel}', $1)");
                notify.Parameters.Add(new NpgsqlParameter { Value = group.LastSeq.ToString(CultureInfo.InvariantCulture), NpgsqlDbType = NpgsqlDbType.Text });
                statements.BatchCommands.Add(notify);
            }

            if (statements.BatchCommands.Count > 0)
            {
                await statements.ExecuteNonQueryAsync().ConfigureAwait(false);
            }

            await group.CopyAsync(connection).ConfigureAwait(false);

            await tx.CommitAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A statement or the commit itself failed: nothing in this batch was kept.
            _logger.LogError(ex, "Commit of {Count} write requests failed", batch.Count);
            foreach (var t in group.NewTenants)
            {
                _knownTenants.TryRemove(t, out _);
            }

            foreach (var job in batch)
            {
                job.Completion.TrySetException(ex);
            }

            return;
        }

        PublishChanges(group.LastSeq);
        foreach (var job in batch)
        {
            job.Completion.TrySetResult(job.Results);
        }

        NoteWritten(group.Written.Count);
    }

    /// <summary>The tables whose statistics decide the query plans (<see cref="AnalyzeAsync"/>).</summary>
    internal const string PlannedTables = "entities, entity_types, entity_numbers, entity_strings, entity_geo, history_entities";

    /// <summary>
    /// Takes the planner's statistics again in the background once the entities written since the last time reach a
    /// tenth of those there were then (at least 1,000), as autovacuum would but without its minute of delay: plans made
    /// with the statistics of nearly empty tables walked a whole index for every candidate (type + q over 30,000
    /// entities loaded a moment before: 40 s a statement instead of milliseconds).
    /// </summary>
    private void NoteWritten(int entities)
    {
        _writtenSinceAnalyze += entities;
        if (_writtenSinceAnalyze < Math.Max(1_000, _entitiesAtAnalyze / 10) || !_analyzing.IsCompleted)
        {
            return;
        }

        _writtenSinceAnalyze = 0;
        _analyzing = Task.Run(async () =>
        {
            try
            {
                _entitiesAtAnalyze = await AnalyzeAsync(DataSource, _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or ObjectDisposedException)
            {
                _logger.LogWarning(ex, "Taking the planner's statistics failed");
            }
        });
    }

    /// <summary>ANALYZE of the tables queries plan with; the entity count it found.</summary>
    internal static async Task<long> AnalyzeAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using (var analyze = dataSource.CreateCommand($"ANALYZE {PlannedTables}"))
        {
            await analyze.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var count = dataSource.CreateCommand("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'entities'::regclass");
        return (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>
    /// One round trip at the start of a group's transaction: takes the writers' lock, reads the current rows of
    /// every entity the group writes, numbers the ones that do not exist yet, reads or takes each one's history id
    /// and takes a change seq for every write, so that the whole group's statements can then go in one batch, and
    /// its new rows in binary copies, with every rid, history id and seq known.
    /// </summary>
    private static async Task PrefetchAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<WriteJob> batch, GroupWrites group)
    {
        var writes = 0;
        foreach (var job in batch)
        {
            writes += job.Writes.Count;
        }

        var keys = new HashSet<(string Tenant, string Id)>(writes);
        var (tenants, ids) = (new List<string>(writes), new List<string>(writes));
        foreach (var job in batch)
        {
            foreach (var write in job.Writes)
            {
                if (keys.Add((job.Tenant, write.Id)))
                {
                    tenants.Add(job.Tenant);
                    ids.Add(write.Id);
                }
            }
        }

        group.Expect(keys.Count);

        await using var prefetch = new NpgsqlBatch(connection, tx);
        prefetch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT pg_advisory_xact_lock({WriterLock})"));
        var select = new NpgsqlBatchCommand("SELECT e.tenant, e.id, e.rid, e.doc FROM unnest($1::text[], $2::text[]) k(tenant, id) JOIN entities e ON e.tenant = k.tenant AND e.id = k.id");
        select.Parameters.Add(new NpgsqlParameter<List<string>> { TypedValue = tenants, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        select.Parameters.Add(new NpgsqlParameter<List<string>> { TypedValue = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        prefetch.BatchCommands.Add(select);

        // coalesce evaluates nextval only for the entities without a history row. Each key comes back as its ordinal in
        // the parameters, not as text (a group's ~1,000 keys would be read and decoded into new strings again).
        var hids = new NpgsqlBatchCommand("""
            SELECT k.i, coalesce(h.hid, nextval('history_entity_seq')), h.hid IS NOT NULL
            FROM unnest($1::text[], $2::text[]) WITH ORDINALITY k(tenant, id, i) LEFT JOIN history_entities h ON h.tenant = k.tenant AND h.id = k.id
            """);
        hids.Parameters.Add(new NpgsqlParameter<List<string>> { TypedValue = tenants, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        hids.Parameters.Add(new NpgsqlParameter<List<string>> { TypedValue = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        prefetch.BatchCommands.Add(hids);
        var rids = new NpgsqlBatchCommand("SELECT nextval('entity_rid_seq') FROM generate_series(1, $1)");
        rids.Parameters.Add(new NpgsqlParameter { Value = keys.Count, NpgsqlDbType = NpgsqlDbType.Integer });
        prefetch.BatchCommands.Add(rids);
        var seqs = new NpgsqlBatchCommand("SELECT nextval('entity_change_seq') FROM generate_series(1, $1)");
        seqs.Parameters.Add(new NpgsqlParameter { Value = writes, NpgsqlDbType = NpgsqlDbType.Integer });
        prefetch.BatchCommands.Add(seqs);
        await using var r = await prefetch.ExecuteReaderAsync().ConfigureAwait(false);
        await r.NextResultAsync().ConfigureAwait(false);
        while (await r.ReadAsync().ConfigureAwait(false))
        {
            group.Prefetched[(r.GetString(0), r.GetString(1))] = (r.GetInt64(2), r.GetFieldValue<byte[]>(3));
        }

        await r.NextResultAsync().ConfigureAwait(false);
        while (await r.ReadAsync().ConfigureAwait(false))
        {
            var key = (int)r.GetInt64(0) - 1;
            group.HistoryIds[(tenants[key], ids[key])] = (r.GetInt64(1), r.GetBoolean(2));
        }

        await r.NextResultAsync().ConfigureAwait(false);
        while (await r.ReadAsync().ConfigureAwait(false))
        {
            group.FreeRids.Push(r.GetInt64(0));
        }

        await r.NextResultAsync().ConfigureAwait(false);
        var taken = new List<long>(writes);
        while (await r.ReadAsync().ConfigureAwait(false))
        {
            taken.Add(r.GetInt64(0));
        }

        taken.Sort();
        foreach (var seq in taken)
        {
            group.Seqs.Enqueue(seq);
        }
    }

    /// <summary>Creates the history partitions of this month and the next two when the month has turned.</summary>
    private async Task EnsurePartitionsAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (_partitionedUntil != default && now.UtcDateTime < _partitionedUntil.AddMonths(-2))
        {
            return;
        }

        var start = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(-1);
        try
        {
            await PostgresSchema.EnsureHistoryPartitionsAsync(DataSource, start, 4, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.CheckViolation)
        {
            // Rows of that month already sit in the default partition; they stay there.
            _logger.LogWarning(ex, "A history partition could not be created ahead");
        }

        _partitionedUntil = start.UtcDateTime.AddMonths(4);
    }

    private async Task<long> MaxSeqAsync(CancellationToken cancellationToken)
    {
        await using var cmd = DataSource.CreateCommand("SELECT coalesce(max(seq), 0) FROM entity_changes");
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>The ids of terms, numbering the new ones in their own committed statement (a term without entities is harmless, so ids never roll back).</summary>
    private async Task<Dictionary<string, long>> TermIdsAsync(IEnumerable<string> iris)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var iri in iris)
        {
            if (_termIds.TryGetValue(iri, out var id))
            {
                result[iri] = id;
            }
            else if (!missing.Contains(iri))
            {
                missing.Add(iri);
            }
        }

        if (missing.Count == 0)
        {
            return result;
        }

        await using var batch = DataSource.CreateBatch();
        var insert = new NpgsqlBatchCommand("INSERT INTO terms (iri) SELECT unnest($1::text[]) ON CONFLICT (iri) DO NOTHING");
        insert.Parameters.Add(new NpgsqlParameter { Value = missing.ToArray() });
        var select = new NpgsqlBatchCommand("SELECT iri, id FROM terms WHERE iri = ANY($1::text[])");
        select.Parameters.Add(new NpgsqlParameter { Value = missing.ToArray() });
        batch.BatchCommands.Add(insert);
        batch.BatchCommands.Add(select);
        await using var r = await batch.ExecuteReaderAsync().ConfigureAwait(false);
        do
        {
            while (r.FieldCount == 2 && await r.ReadAsync().ConfigureAwait(false))
            {
                _termIds[r.GetString(0)] = r.GetInt64(1);
                result[r.GetString(0)] = r.GetInt64(1);
            }
        }
        while (await r.NextResultAsync().ConfigureAwait(false));
        return result;
    }

    private sealed class WriteJob(string tenant, IReadOnlyList<EntityWrite> writes, CreatedRows?[] creations)
    {
        public string Tenant { get; } = tenant;

        public IReadOnlyList<EntityWrite> Writes { get; } = writes;

        public Exception?[] Results { get; } = new Exception?[writes.Count];

        /// <summary>The index and history rows of the writes' new entities, worked out on the caller's thread.</summary>
        public CreatedRows?[] Creations { get; } = creations;

        public TaskCompletionSource<Exception?[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
