using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Storage;

/// <summary>
/// The embedded backend: one SQLite file in WAL mode. All writes go through a single writer that groups the
/// writes waiting at the same moment into one transaction (group commit), so each commit's fsync is shared by
/// every request in it; synchronous=FULL makes an acknowledged write survive a crash or power loss. Reads use a
/// pool of read-only connections with prepared statements and never wait for the writer.
/// </summary>
internal sealed class SqliteEntityStore : IEntityStore
{
    private const int MaxWritesPerCommit = 512;
    private const int MaxPooledReaders = 64;

    private readonly string _connectionString;
    private readonly ILogger _logger;
    private readonly Channel<WriteJob> _writes = Channel.CreateUnbounded<WriteJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentBag<Reader> _readers = [];
    private readonly ConcurrentDictionary<string, bool> _knownTenants = new(StringComparer.Ordinal);
    private SqliteConnection? _writer;
    private Task? _writerLoop;
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
        Execute(_writer, """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            PRAGMA busy_timeout=5000;
            PRAGMA foreign_keys=ON;
            PRAGMA cache_size=-16000;
            """);
        SqliteSchema.Migrate(_writer);
        using (var cmd = _writer.CreateCommand())
        {
            cmd.CommandText = "SELECT name FROM tenants";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                _knownTenants[r.GetString(0)] = true;
            }
        }

        _writerLoop = Task.Factory.StartNew(WriterLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public ValueTask<Entity?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            var cmd = reader.GetEntity;
            cmd.Parameters[0].Value = tenant;
            cmd.Parameters[1].Value = id;
            using var r = cmd.ExecuteReader();
            if (!r.Read())
            {
                return ValueTask.FromResult<Entity?>(null);
            }

            using var stream = r.GetStream(0);
            return ValueTask.FromResult<Entity?>(Decode(stream));
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    public ValueTask<bool> TenantExistsAsync(string tenant, CancellationToken cancellationToken) =>
        ValueTask.FromResult(tenant.Length == 0 || _knownTenants.ContainsKey(tenant));

    public ValueTask<IReadOnlyList<string>> ListTenantsAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<string>>([.. _knownTenants.Keys.Order(StringComparer.Ordinal)]);

    public ValueTask<EntityPage> QueryAsync(string tenant, EntityQuery query, CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            using var cmd = reader.Connection.CreateCommand();
            var where = new StringBuilder("e.tenant = $tenant");
            cmd.Parameters.AddWithValue("$tenant", tenant);
            AddInFilter(cmd, where, query.Types, "t", "EXISTS (SELECT 1 FROM entity_types t WHERE t.tenant = e.tenant AND t.rid = e.rid AND t.type IN ({0}))");
            AddInFilter(cmd, where, query.Ids, "i", "e.id IN ({0})");
            AddInFilter(cmd, where, query.Attrs, "a", "EXISTS (SELECT 1 FROM entity_attrs a WHERE a.tenant = e.tenant AND a.rid = e.rid AND a.name IN ({0}))");

            long? total = null;
            if (query.Count)
            {
                cmd.CommandText = $"SELECT count(*) FROM entities e WHERE {where}";
                total = (long)cmd.ExecuteScalar()!;
            }

            var entities = new List<Entity>(Math.Min(query.Limit, 1000));
            if (query.Limit > 0)
            {
                cmd.CommandText = $"SELECT e.doc FROM entities e WHERE {where} ORDER BY e.rid LIMIT $limit OFFSET $offset";
                cmd.Parameters.AddWithValue("$limit", query.Limit);
                cmd.Parameters.AddWithValue("$offset", query.Offset);
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    using var stream = r.GetStream(0);
                    entities.Add(Decode(stream));
                }
            }

            return ValueTask.FromResult(new EntityPage(entities, total));
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    private static void AddInFilter(SqliteCommand cmd, StringBuilder where, IReadOnlyList<string>? values, string prefix, string template)
    {
        if (values is null || values.Count == 0)
        {
            return;
        }

        var names = new StringBuilder();
        for (var i = 0; i < values.Count; i++)
        {
            var p = "$" + prefix + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            names.Append(i == 0 ? p : "," + p);
            cmd.Parameters.AddWithValue(p, values[i]);
        }

        where.Append(" AND ").AppendFormat(System.Globalization.CultureInfo.InvariantCulture, template, names);
    }

    public Task<Exception?[]> WriteAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken cancellationToken)
    {
        var job = new WriteJob(tenant, writes);
        if (!_writes.Writer.TryWrite(job))
        {
            throw new ObjectDisposedException(nameof(SqliteEntityStore), "The store is shutting down.");
        }

        return job.Completion.Task;
    }

    public ValueTask<long> CountAsync(CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            using var cmd = reader.Connection.CreateCommand();
            cmd.CommandText = "SELECT count(*) FROM entities";
            return ValueTask.FromResult((long)cmd.ExecuteScalar()!);
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
                    items += job.Writes.Count;
                }

                Commit(writer, batch);
            }
        }
        finally
        {
            writer.Dispose();
        }
    }

    private void Commit(WriterStatements writer, List<WriteJob> batch)
    {
        var newTenants = new List<string>();
        try
        {
            using var tx = _writer!.BeginTransaction(deferred: false);
            writer.Bind(tx);
            foreach (var job in batch)
            {
                for (var i = 0; i < job.Writes.Count; i++)
                {
                    job.Results[i] = ApplyOne(writer, job.Tenant, job.Writes[i], newTenants);
                }
            }

            tx.Commit();
        }
        catch (Exception ex)
        {
            // The commit itself failed (disk full, I/O error): nothing in this batch was kept.
            _logger.LogError(ex, "Commit of {Count} write requests failed", batch.Count);
            foreach (var t in newTenants)
            {
                _knownTenants.TryRemove(t, out _);
            }

            foreach (var job in batch)
            {
                job.Completion.TrySetException(ex);
            }

            return;
        }

        foreach (var job in batch)
        {
            job.Completion.TrySetResult(job.Results);
        }
    }

    private Exception? ApplyOne(WriterStatements s, string tenant, EntityWrite write, List<string> newTenants)
    {
        s.Savepoint.ExecuteNonQuery();
        try
        {
            long? rid = null;
            Entity? current = null;
            s.Select.Parameters[0].Value = tenant;
            s.Select.Parameters[1].Value = write.Id;
            using (var r = s.Select.ExecuteReader())
            {
                if (r.Read())
                {
                    rid = r.GetInt64(0);
                    using var stream = r.GetStream(1);
                    current = Decode(stream);
                }
            }

            IndexKey? before = current is null ? null : Names(current);
            var mutation = write.Mutate(current);
            switch (mutation.Kind)
            {
                case MutationKind.Put:
                    var entity = mutation.Entity!;
                    var doc = EntityCodec.Encode(entity);
                    if (rid is null)
                    {
                        if (tenant.Length > 0 && _knownTenants.TryAdd(tenant, true))
                        {
                            newTenants.Add(tenant);
                            s.InsertTenant.Parameters[0].Value = tenant;
                            s.InsertTenant.Parameters[1].Value = NgsiText.FormatDateTime(DateTimeOffset.UtcNow);
                            s.InsertTenant.ExecuteNonQuery();
                        }

                        s.Insert.Parameters[0].Value = tenant;
                        s.Insert.Parameters[1].Value = entity.Id;
                        s.Insert.Parameters[2].Value = doc;
                        rid = (long)s.Insert.ExecuteScalar()!;
                    }
                    else
                    {
                        s.Update.Parameters[0].Value = rid.Value;
                        s.Update.Parameters[1].Value = doc;
                        s.Update.ExecuteNonQuery();
                    }

                    var after = Names(entity);
                    if (before is null || !before.Value.Equals(after))
                    {
                        s.ReplaceIndexes(tenant, rid.Value, entity);
                    }

                    break;
                case MutationKind.Delete when rid is not null:
                    s.Delete.Parameters[0].Value = rid.Value;
                    s.Delete.ExecuteNonQuery();
                    s.DeleteIndexes(rid.Value);
                    break;
                default:
                    break;
            }

            s.Release.ExecuteNonQuery();
            return null;
        }
        catch (Exception ex) when (ex is not SqliteException)
        {
            s.Rollback.ExecuteNonQuery();
            s.Release.ExecuteNonQuery();
            return ex;
        }
    }

    /// <summary>A cheap fingerprint of what the type and attribute indexes hold for an entity.</summary>
    private static IndexKey Names(Entity entity) =>
        new(string.Join('\n', entity.Types), string.Join('\n', entity.Attributes.Keys));

    private readonly record struct IndexKey(string Types, string Attributes);

    private static Entity Decode(Stream stream)
    {
        var length = (int)stream.Length;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            stream.ReadExactly(buffer, 0, length);
            return EntityCodec.Decode(buffer.AsSpan(0, length));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

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

    internal static void Execute(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private sealed class WriteJob(string tenant, IReadOnlyList<EntityWrite> writes)
    {
        public string Tenant { get; } = tenant;

        public IReadOnlyList<EntityWrite> Writes { get; } = writes;

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
            Execute(Connection, "PRAGMA query_only=1; PRAGMA busy_timeout=5000; PRAGMA cache_size=-8000;");
            GetEntity = Connection.CreateCommand();
            GetEntity.CommandText = "SELECT doc FROM entities WHERE tenant = $tenant AND id = $id";
            GetEntity.Parameters.Add("$tenant", SqliteType.Text);
            GetEntity.Parameters.Add("$id", SqliteType.Text);
            GetEntity.Prepare();
        }

        public SqliteConnection Connection { get; }

        public SqliteCommand GetEntity { get; }

        public void Dispose()
        {
            GetEntity.Dispose();
            Connection.Dispose();
        }
    }

    /// <summary>The writer connection's prepared statements.</summary>
    private sealed class WriterStatements : IDisposable
    {
        private readonly List<SqliteCommand> _all = [];

        public WriterStatements(SqliteConnection c)
        {
            Select = Make(c, "SELECT rid, doc FROM entities WHERE tenant = $tenant AND id = $id", "$tenant", "$id");
            Insert = Make(c, "INSERT INTO entities(tenant, id, doc) VALUES ($tenant, $id, $doc) RETURNING rid", "$tenant", "$id", "$doc");
            Update = Make(c, "UPDATE entities SET doc = $doc WHERE rid = $rid", "$rid", "$doc");
            Delete = Make(c, "DELETE FROM entities WHERE rid = $rid", "$rid");
            DeleteTypes = Make(c, "DELETE FROM entity_types WHERE rid = $rid", "$rid");
            DeleteAttrs = Make(c, "DELETE FROM entity_attrs WHERE rid = $rid", "$rid");
            InsertType = Make(c, "INSERT OR IGNORE INTO entity_types(tenant, type, rid) VALUES ($tenant, $name, $rid)", "$tenant", "$name", "$rid");
            InsertAttr = Make(c, "INSERT OR IGNORE INTO entity_attrs(tenant, name, rid) VALUES ($tenant, $name, $rid)", "$tenant", "$name", "$rid");
            InsertTenant = Make(c, "INSERT OR IGNORE INTO tenants(name, created_at) VALUES ($name, $at)", "$name", "$at");
            Savepoint = Make(c, "SAVEPOINT w");
            Release = Make(c, "RELEASE w");
            Rollback = Make(c, "ROLLBACK TO w");
        }

        public SqliteCommand Select { get; }

        public SqliteCommand Insert { get; }

        public SqliteCommand Update { get; }

        public SqliteCommand Delete { get; }

        public SqliteCommand DeleteTypes { get; }

        public SqliteCommand DeleteAttrs { get; }

        public SqliteCommand InsertType { get; }

        public SqliteCommand InsertAttr { get; }

        public SqliteCommand InsertTenant { get; }

        public SqliteCommand Savepoint { get; }

        public SqliteCommand Release { get; }

        public SqliteCommand Rollback { get; }

        public void Bind(SqliteTransaction tx)
        {
            foreach (var cmd in _all)
            {
                cmd.Transaction = tx;
            }
        }

        public void ReplaceIndexes(string tenant, long rid, Entity entity)
        {
            DeleteIndexes(rid);
            foreach (var type in entity.Types)
            {
                InsertType.Parameters[0].Value = tenant;
                InsertType.Parameters[1].Value = type;
                InsertType.Parameters[2].Value = rid;
                InsertType.ExecuteNonQuery();
            }

            foreach (var name in entity.Attributes.Keys)
            {
                InsertAttr.Parameters[0].Value = tenant;
                InsertAttr.Parameters[1].Value = name;
                InsertAttr.Parameters[2].Value = rid;
                InsertAttr.ExecuteNonQuery();
            }
        }

        public void DeleteIndexes(long rid)
        {
            DeleteTypes.Parameters[0].Value = rid;
            DeleteTypes.ExecuteNonQuery();
            DeleteAttrs.Parameters[0].Value = rid;
            DeleteAttrs.ExecuteNonQuery();
        }

        public void Dispose()
        {
            foreach (var cmd in _all)
            {
                cmd.Dispose();
            }
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
