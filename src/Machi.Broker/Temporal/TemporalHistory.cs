using System.Text;
using System.Text.Json;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Temporal;

/// <summary>One recorded attribute instance (a row of attribute_history).</summary>
internal sealed record HistoryRow(
    string Attr, string? DatasetId, string InstanceId, AttributeKind Kind, DateTimeOffset? ObservedAt,
    DateTimeOffset CreatedAt, DateTimeOffset ModifiedAt, string Value, byte[]? Instance, bool Deleted)
{
    /// <summary>The instant the query's time property names; an instance without observedAt counts at its modifiedAt.</summary>
    public DateTimeOffset Time(TimeProperty property) => property switch
    {
        TimeProperty.CreatedAt => CreatedAt,
        TimeProperty.ModifiedAt => ModifiedAt,
        _ => ObservedAt ?? ModifiedAt,
    };

    /// <summary>The instance as it was written; a deletion is the NGSI-LD Null of its kind (clause 5.2.1).</summary>
    public AttributeInstance ToInstance()
    {
        AttributeInstance instance;
        if (Instance is null)
        {
            instance = AttributeInstance.FromStored(Kind, Encoding.UTF8.GetBytes(Value));
            instance.DatasetId = DatasetId;
        }
        else
        {
            var carrier = EntityCodec.Decode(Instance);
            instance = carrier.Attributes.GetAt(0).Value[0];
        }

        instance.CreatedAt = CreatedAt;
        instance.ModifiedAt = ModifiedAt;
        return instance;
    }
}

/// <summary>An entity that has a history (a row of temporal_entities).</summary>
internal sealed record TemporalEntityRow(string Id, List<string> Types, DateTimeOffset CreatedAt, DateTimeOffset ModifiedAt, DateTimeOffset? DeletedAt);

/// <summary>
/// The temporal history (consumer "temporal" of the change log): every change becomes one row per attribute
/// instance it wrote (and one deletion row per instance it removed), in a transaction that also moves the
/// consumer's cursor, so a crash at any point neither loses nor repeats a change. Reads catch up with the log
/// first, so a write is in the history as soon as its 2xx is sent.
/// </summary>
internal sealed class TemporalHistory(SqliteEntityStore store, ILogger<TemporalHistory> logger) : BackgroundService
{
    public const string Consumer = "temporal";
    private const int BatchSize = 2048;
    private static readonly TimeSpan RecordInterval = TimeSpan.FromMilliseconds(250);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _cursor = -1;

    /// <summary>The seq of the last change recorded (-1 before the first catch-up).</summary>
    public long Cursor => Volatile.Read(ref _cursor);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CatchUpAsync(stoppingToken).ConfigureAwait(false);

                // Changes are recorded in batches at most every RecordInterval: each batch is a transaction of its
                // own (the write lock and an fsync), which must not compete with the entity writer change by change.
                // A temporal read never waits for this: it catches up first.
                await Task.Delay(RecordInterval, stoppingToken).ConfigureAwait(false);
                await store.WaitForChangeAsync(Math.Max(0, Cursor), stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Recording the temporal history failed; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Records every change committed so far.</summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        var target = store.LastChangeSeq;
        if (Cursor >= target && Cursor >= 0)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            LoadCursor();
            while (_cursor < target)
            {
                var changes = await store.ReadChangesAsync(_cursor, BatchSize, cancellationToken).ConfigureAwait(false);
                if (changes.Count == 0)
                {
                    break;
                }

                // In the entity writer's own transaction: history never competes with entity writes for the lock.
                await store.RunInWriterAsync((connection, tx) => Record(connection, tx, changes), cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _cursor, changes[^1].Seq);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Runs a change to the history itself (temporal DELETE operations) after catching up with the log.</summary>
    public Task<int> ExecuteAsync(string sql, Action<SqliteCommand> bind, CancellationToken cancellationToken) =>
        WriteAsync(
            (writer, tx) =>
            {
                using var cmd = writer.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = sql;
                bind(cmd);
                return cmd.ExecuteNonQuery();
            },
            cancellationToken);

    /// <summary>A read-only view of the history for one request (one connection, however many entities it reads).</summary>
    public HistoryReader OpenReader()
    {
        var connection = new SqliteConnection(store.ConnectionString);
        connection.Open();
        return new HistoryReader(connection);
    }

    /// <summary>
    /// Adds instances to an entity's history without touching its current state (POST /temporal/entities and
    /// /temporal/entities/{id}/attrs); instance ids are numbered after the last row. True when the entity had no history.
    /// </summary>
    public Task<bool> AppendAsync(string tenant, string entityId, List<string>? types, IReadOnlyList<(string Attr, AttributeInstance Instance)> instances, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(
            (writer, tx) =>
            {
                using var find = writer.CreateCommand();
                find.Transaction = tx;
                find.CommandText = "SELECT types FROM temporal_entities WHERE tenant = $t AND id = $id";
                find.Parameters.AddWithValue("$t", tenant);
                find.Parameters.AddWithValue("$id", entityId);
                var existing = find.ExecuteScalar() as string;
                if (existing is null && types is null)
                {
                    throw Machi.Ngsi.Errors.NgsiException.NotFound($"Entity '{entityId}' has no history.");
                }

                using (var entity = writer.CreateCommand())
                {
                    entity.Transaction = tx;
                    entity.CommandText = """
                        INSERT INTO temporal_entities (tenant, id, types, created_at, modified_at, deleted_at) VALUES ($t, $id, $types, $now, $now, NULL)
                        ON CONFLICT (tenant, id) DO UPDATE SET types = coalesce($newTypes, types), modified_at = $now
                        """;
                    entity.Parameters.AddWithValue("$t", tenant);
                    entity.Parameters.AddWithValue("$id", entityId);
                    entity.Parameters.AddWithValue("$types", types is null ? existing! : JsonSerializer.Serialize(types));
                    entity.Parameters.AddWithValue("$newTypes", types is null ? DBNull.Value : JsonSerializer.Serialize(types));
                    entity.Parameters.AddWithValue("$now", now.UtcTicks);
                    entity.ExecuteNonQuery();
                }

                using var next = writer.CreateCommand();
                next.Transaction = tx;
                next.CommandText = "SELECT coalesce(max(id), 0) FROM attribute_history";
                var number = (long)next.ExecuteScalar()!;
                using var insert = InsertCommand(writer, tx);
                var carrierTypes = types ?? JsonSerializer.Deserialize<List<string>>(existing!) ?? [];
                foreach (var (attr, instance) in instances)
                {
                    instance.CreatedAt = instance.ModifiedAt = now;
                    Insert(insert, tenant, entityId, attr, instance, $"urn:ngsi-ld:attribute:instance:h{++number}", now, carrierTypes);
                }

                return existing is null;
            },
            cancellationToken);

    /// <summary>Replaces the value (and metadata) of one recorded instance; false when there is no such instance.</summary>
    public Task<bool> ReplaceInstanceAsync(string tenant, string entityId, string attr, string instanceId, Func<AttributeKind, AttributeInstance> replacement, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(
            (writer, tx) =>
            {
                using var find = writer.CreateCommand();
                find.Transaction = tx;
                find.CommandText = "SELECT kind, dataset_id, created_at FROM attribute_history WHERE tenant = $t AND entity_id = $e AND attr = $a AND instance_id = $i AND deleted = 0";
                find.Parameters.AddWithValue("$t", tenant);
                find.Parameters.AddWithValue("$e", entityId);
                find.Parameters.AddWithValue("$a", attr);
                find.Parameters.AddWithValue("$i", instanceId);
                AttributeKind kind;
                string? datasetId;
                long createdAt;
                using (var r = find.ExecuteReader())
                {
                    if (!r.Read())
                    {
                        return false;
                    }

                    kind = (AttributeKind)r.GetInt64(0);
                    datasetId = r.IsDBNull(1) ? null : r.GetString(1);
                    createdAt = r.GetInt64(2);
                }

                var instance = replacement(kind);
                instance.DatasetId = datasetId;
                var carrier = new Entity(entityId, ["urn:x"]);
                carrier.Attributes[attr] = [instance];
                using var update = writer.CreateCommand();
                update.Transaction = tx;
                update.CommandText = "UPDATE attribute_history SET kind = $k, observed_at = $o, modified_at = $m, value = $v, instance = $b WHERE tenant = $t AND entity_id = $e AND attr = $a AND instance_id = $i";
                update.Parameters.AddWithValue("$k", (long)instance.Kind);
                update.Parameters.AddWithValue("$o", ObservedTicks(instance) is { } o ? o : DBNull.Value);
                update.Parameters.AddWithValue("$m", Math.Max(now.UtcTicks, createdAt));
                update.Parameters.AddWithValue("$v", Encoding.UTF8.GetString(instance.PayloadUtf8));
                update.Parameters.AddWithValue("$b", EntityCodec.Encode(carrier));
                update.Parameters.AddWithValue("$i", instanceId);
                update.Parameters.AddWithValue("$t", tenant);
                update.Parameters.AddWithValue("$e", entityId);
                update.Parameters.AddWithValue("$a", attr);
                update.ExecuteNonQuery();
                return true;
            },
            cancellationToken);

    private static long? ObservedTicks(AttributeInstance instance) =>
        NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o.UtcTicks : null;

    private static SqliteCommand InsertCommand(SqliteConnection writer, SqliteTransaction tx)
    {
        var insert = writer.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = """
            INSERT INTO attribute_history (tenant, entity_id, attr, dataset_id, instance_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
            VALUES ($t, $e, $a, $d, $i, $k, $o, $c, $m, $v, $b, $x)
            """;
        foreach (var name in new[] { "$t", "$e", "$a", "$d", "$i", "$k", "$o", "$c", "$m", "$v", "$b", "$x" })
        {
            insert.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        return insert;
    }

    private static void Insert(SqliteCommand insert, string tenant, string entityId, string attr, AttributeInstance instance, string instanceId, DateTimeOffset at, List<string> types)
    {
        var carrier = new Entity(entityId, [.. types]);
        carrier.Attributes[attr] = [instance];
        var p = insert.Parameters;
        p["$t"].Value = tenant;
        p["$e"].Value = entityId;
        p["$a"].Value = attr;
        p["$d"].Value = (object?)instance.DatasetId ?? DBNull.Value;
        p["$i"].Value = instanceId;
        p["$k"].Value = (long)instance.Kind;
        p["$o"].Value = ObservedTicks(instance) is { } o ? o : DBNull.Value;
        p["$c"].Value = at.UtcTicks;
        p["$m"].Value = at.UtcTicks;
        p["$v"].Value = Encoding.UTF8.GetString(instance.PayloadUtf8);
        p["$b"].Value = EntityCodec.Encode(carrier);
        p["$x"].Value = 0L;
        insert.ExecuteNonQuery();
    }

    public override void Dispose()
    {
        _gate.Dispose();
        base.Dispose();
    }

    /// <summary>Reads the consumer's cursor the first time it is needed.</summary>
    private void LoadCursor()
    {
        if (_cursor >= 0)
        {
            return;
        }

        using var connection = new SqliteConnection(store.ConnectionString);
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT seq FROM change_cursors WHERE consumer = $c";
        cmd.Parameters.AddWithValue("$c", Consumer);
        _cursor = cmd.ExecuteScalar() is long seq ? seq : 0;
    }

    /// <summary>
    /// Changes the history itself (temporal POST, PATCH, DELETE) after catching up with the change log, in the entity
    /// writer's transaction like the recording: one writer for the whole database.
    /// </summary>
    private async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken cancellationToken)
    {
        await CatchUpAsync(cancellationToken).ConfigureAwait(false);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await store.RunInWriterAsync(work, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private static void Record(SqliteConnection writer, SqliteTransaction tx, IReadOnlyList<EntityChange> changes)
    {
        using var insert = InsertCommand(writer, tx);
        using var entity = writer.CreateCommand();
        entity.Transaction = tx;
        entity.CommandText = """
            INSERT INTO temporal_entities (tenant, id, types, created_at, modified_at, deleted_at) VALUES ($t, $id, $types, $c, $m, $del)
            ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, modified_at = excluded.modified_at, deleted_at = excluded.deleted_at
            """;
        foreach (var name in new[] { "$t", "$id", "$types", "$c", "$m", "$del" })
        {
            entity.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        foreach (var change in changes)
        {
            RecordOne(insert, entity, change);
        }

        using (var cursor = writer.CreateCommand())
        {
            cursor.Transaction = tx;
            cursor.CommandText = "INSERT INTO change_cursors (consumer, seq) VALUES ($c, $s) ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq";
            cursor.Parameters.AddWithValue("$c", Consumer);
            cursor.Parameters.AddWithValue("$s", changes[^1].Seq);
            cursor.ExecuteNonQuery();
        }
    }

    private static void RecordOne(SqliteCommand insert, SqliteCommand entity, EntityChange change)
    {
        var before = change.BeforeEntity();
        var after = change.AfterEntity();
        var state = after ?? before;
        if (state is null)
        {
            return;
        }

        var p = entity.Parameters;
        p["$t"].Value = change.Tenant;
        p["$id"].Value = change.EntityId;
        p["$types"].Value = JsonSerializer.Serialize(state.Types);
        p["$c"].Value = state.CreatedAt.UtcTicks;
        p["$m"].Value = after is null ? change.At.UtcTicks : after.ModifiedAt.UtcTicks;
        p["$del"].Value = after is null ? change.At.UtcTicks : DBNull.Value;
        entity.ExecuteNonQuery();

        var n = 0;
        if (after is not null)
        {
            foreach (var (name, instances) in after.Attributes)
            {
                foreach (var instance in instances)
                {
                    var previous = before?.Attributes.Find(name, instance.DatasetId);
                    if (previous is not null && previous.ModifiedAt == instance.ModifiedAt && previous.ObservedAt == instance.ObservedAt)
                    {
                        continue;
                    }

                    var carrier = new Entity(change.EntityId, [.. after.Types]);
                    carrier.Attributes[name] = [instance];
                    DateTimeOffset? observed = NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o : null;
                    Insert(insert, change, name, instance.DatasetId, n++, instance.Kind, observed,
                        instance.ModifiedAt, Encoding.UTF8.GetString(instance.PayloadUtf8), EntityCodec.Encode(carrier));
                }
            }
        }

        if (before is not null)
        {
            foreach (var (name, instances) in before.Attributes)
            {
                foreach (var instance in instances)
                {
                    if (after?.Attributes.Find(name, instance.DatasetId) is not null)
                    {
                        continue;
                    }

                    var nullValue = instance.Kind == AttributeKind.LanguageProperty ? $"{{\"@none\":\"{NgsiText.NullUri}\"}}" : $"\"{NgsiText.NullUri}\"";
                    Insert(insert, change, name, instance.DatasetId, n++, instance.Kind, null, change.At, nullValue, null);
                }
            }
        }
    }

    private static void Insert(SqliteCommand insert, EntityChange change, string attr, string? datasetId, int ordinal, AttributeKind kind,
        DateTimeOffset? observedAt, DateTimeOffset at, string value, byte[]? instance)
    {
        var p = insert.Parameters;
        p["$t"].Value = change.Tenant;
        p["$e"].Value = change.EntityId;
        p["$a"].Value = attr;
        p["$d"].Value = (object?)datasetId ?? DBNull.Value;
        p["$i"].Value = $"urn:ngsi-ld:attribute:instance:{change.Seq}-{ordinal}";
        p["$k"].Value = (long)kind;
        p["$o"].Value = observedAt is { } o ? o.UtcTicks : DBNull.Value;
        p["$c"].Value = at.UtcTicks;
        p["$m"].Value = at.UtcTicks;
        p["$v"].Value = value;
        p["$b"].Value = (object?)instance ?? DBNull.Value;
        p["$x"].Value = instance is null ? 1L : 0L;
        insert.ExecuteNonQuery();
    }
}

/// <summary>Reads of the history for one request, on one read-only connection.</summary>
internal sealed class HistoryReader(SqliteConnection connection) : IDisposable
{
    public TemporalEntityRow? Entity(string tenant, string id)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT id, types, created_at, modified_at, deleted_at FROM temporal_entities WHERE tenant = $t AND id = $id";
        cmd.Parameters.AddWithValue("$t", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        using var r = cmd.ExecuteReader();
        return r.Read() ? EntityRow(r) : null;
    }

    /// <summary>The entities with a history in a tenant, by id (only <paramref name="ids"/> when given).</summary>
    public List<TemporalEntityRow> Entities(string tenant, IReadOnlyList<string>? ids)
    {
        using var cmd = connection.CreateCommand();
        var sql = new StringBuilder("SELECT id, types, created_at, modified_at, deleted_at FROM temporal_entities WHERE tenant = $t");
        cmd.Parameters.AddWithValue("$t", tenant);
        if (ids is not null)
        {
            sql.Append(" AND id IN (");
            for (var i = 0; i < ids.Count; i++)
            {
                sql.Append(i == 0 ? "$id" : ", $id").Append(i);
                cmd.Parameters.AddWithValue("$id" + i, ids[i]);
            }

            sql.Append(')');
        }

        cmd.CommandText = sql.Append(" ORDER BY id").ToString();
        var rows = new List<TemporalEntityRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows.Add(EntityRow(r));
        }

        return rows;
    }

    /// <summary>The recorded instances of an entity's attributes (all, or the given expanded names) inside the query's time range, oldest first.</summary>
    public List<HistoryRow> History(string tenant, string entityId, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        using var cmd = connection.CreateCommand();
        var time = query.Property switch
        {
            TimeProperty.CreatedAt => "created_at",
            TimeProperty.ModifiedAt => "modified_at",
            _ => "coalesce(observed_at, modified_at)",
        };
        // Aggregation reads values and times only: the stored instances (metadata, sub-attributes) stay on disk.
        var instance = query.Format == TemporalFormat.Aggregated ? "NULL" : "instance";
        var sql = new StringBuilder($"SELECT attr, dataset_id, instance_id, kind, observed_at, created_at, modified_at, value, {instance}, deleted FROM attribute_history WHERE tenant = $t AND entity_id = $e");
        cmd.Parameters.AddWithValue("$t", tenant);
        cmd.Parameters.AddWithValue("$e", entityId);
        if (attrs is not null)
        {
            sql.Append(" AND attr IN (");
            var i = 0;
            foreach (var attr in attrs)
            {
                sql.Append(i == 0 ? "$a" : ", $a").Append(i);
                cmd.Parameters.AddWithValue("$a" + i, attr);
                i++;
            }

            sql.Append(')');
        }

        switch (query.Relation)
        {
            case TimeRelation.Before:
                sql.Append(" AND ").Append(time).Append(" < $at");
                break;
            case TimeRelation.After:
                sql.Append(" AND ").Append(time).Append(" > $at");
                break;
            case TimeRelation.Between:
                sql.Append(" AND ").Append(time).Append(" >= $at AND ").Append(time).Append(" < $end");
                cmd.Parameters.AddWithValue("$end", query.EndTimeAt.UtcTicks);
                break;
        }

        cmd.Parameters.AddWithValue("$at", query.TimeAt.UtcTicks);
        cmd.CommandText = sql.Append(" ORDER BY attr, ").Append(time).Append(", id").ToString();
        var rows = new List<HistoryRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows.Add(new HistoryRow(
                r.GetString(0),
                r.IsDBNull(1) ? null : r.GetString(1),
                r.GetString(2),
                (AttributeKind)r.GetInt64(3),
                r.IsDBNull(4) ? null : new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
                new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero),
                new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero),
                r.GetString(7),
                r.IsDBNull(8) ? null : (byte[])r.GetValue(8),
                r.GetInt64(9) != 0));
        }

        return rows;
    }

    private static TemporalEntityRow EntityRow(SqliteDataReader r) => new(
        r.GetString(0),
        JsonSerializer.Deserialize<List<string>>(r.GetString(1)) ?? [],
        new DateTimeOffset(r.GetInt64(2), TimeSpan.Zero),
        new DateTimeOffset(r.GetInt64(3), TimeSpan.Zero),
        r.IsDBNull(4) ? null : new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero));

    public void Dispose() => connection.Dispose();
}

public static class TemporalModule
{
    /// <summary>The temporal history: recorded from the change log in the background, read by the temporal API.</summary>
    public static IServiceCollection AddMachiTemporal(this IServiceCollection services)
    {
        services.AddSingleton<TemporalHistory>();
        services.AddHostedService(sp => sp.GetRequiredService<TemporalHistory>());
        return services;
    }
}
