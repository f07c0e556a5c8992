using System.Globalization;
using System.Text;
using System.Text.Json;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Temporal;

/// <summary>One recorded attribute instance (a row of the history, or an instance of a folded creation).</summary>
internal sealed record HistoryRow(
    string Attr, string? DatasetId, string InstanceId, AttributeKind Kind, DateTimeOffset? ObservedAt,
    DateTimeOffset CreatedAt, DateTimeOffset ModifiedAt, string Value, byte[]? Instance, bool Deleted)
{
    /// <summary>The instance itself, already decoded, when it comes from a folded creation (<see cref="FoldedCreation"/>).</summary>
    public AttributeInstance? Unfolded { get; init; }

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
        if (Unfolded is not null)
        {
            instance = Unfolded;
        }
        else if (Instance is null)
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

/// <summary>An entity that has a history (a row of history_entities).</summary>
internal sealed record TemporalEntityRow(long Hid, string Id, List<string> Types, DateTimeOffset CreatedAt, DateTimeOffset ModifiedAt, DateTimeOffset? DeletedAt)
{
    /// <summary>The entity's last access marks: who may read this history.</summary>
    public Access.EntityAccess Access { get; init; }
}

/// <summary>The temporal API's view of the history the entity writer records, whichever the backend.</summary>
internal interface ITemporalHistory
{
    /// <summary>A read-only view of the history for one request (one connection, however many entities it reads).</summary>
    IHistoryReader OpenReader();

    /// <summary>
    /// Adds instances to an entity's history without touching its current state (POST /temporal/entities and
    /// /temporal/entities/{id}/attrs), numbered after the last instance added this way. True when the entity had no history.
    /// </summary>
    Task<bool> AppendAsync(string tenant, string entityId, List<string>? types, IReadOnlyList<(string Attr, AttributeInstance Instance)> instances, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Replaces the value (and metadata) of one recorded instance; false when there is no such instance.</summary>
    Task<bool> ReplaceInstanceAsync(string tenant, string entityId, string attr, string instanceId, Func<AttributeKind, AttributeInstance> replacement, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Deletes the whole history of an entity; false when it had none.</summary>
    Task<bool> DeleteEntityAsync(string tenant, string entityId, CancellationToken cancellationToken);

    /// <summary>Deletes the history of one attribute: the default instance's, one datasetId's, or all; false when there was none.</summary>
    Task<bool> DeleteAttributeAsync(string tenant, string entityId, string attr, string? datasetId, bool all, CancellationToken cancellationToken);

    /// <summary>Deletes one recorded instance; false when there is no such instance.</summary>
    Task<bool> DeleteInstanceAsync(string tenant, string entityId, string attr, string instanceId, CancellationToken cancellationToken);
}

/// <summary>Reads of the history for one request, on one connection.</summary>
internal interface IHistoryReader : IDisposable
{
    TemporalEntityRow? Entity(string tenant, string id);

    /// <summary>The entities with a history in a tenant, by id (only <paramref name="ids"/> when given).</summary>
    List<TemporalEntityRow> Entities(string tenant, IReadOnlyList<string>? ids);

    /// <summary>The entity's last change to its history (rendered as its modifiedAt): a write or an instance added or replaced.</summary>
    TemporalEntityRow WithLastModified(TemporalEntityRow row);

    /// <summary>
    /// The recorded instances of an entity's attributes (all, or the given expanded names) inside the query's time
    /// range: each attribute's instances oldest first.
    /// </summary>
    List<HistoryRow> History(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query);

    /// <summary>The same range aggregated while it is read (aggregatedValues).</summary>
    List<AggregatedSeries> Aggregate(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query);
}

/// <summary>
/// The temporal API's view of the history the entity writer records (SqliteEntityStore.History): reads on a
/// connection of their own, and the temporal API's own changes to the history (append, replace, delete), which run
/// in the entity writer's transactions like every other write.
/// </summary>
internal sealed class TemporalHistory(SqliteEntityStore store) : ITemporalHistory
{
    private const string InstancePrefix = "urn:ngsi-ld:attribute:instance:";

    /// <summary>The instanceId of instance number <paramref name="n"/> (see the history table).</summary>
    public static string InstanceId(long n) => n >= 0
        ? string.Create(CultureInfo.InvariantCulture, $"{InstancePrefix}{n >> 16}-{n & 0xFFFF}")
        : string.Create(CultureInfo.InvariantCulture, $"{InstancePrefix}h{-n}");

    /// <summary>The instance number an instanceId names; false for an id this broker never gave out.</summary>
    public static bool TryParseInstanceId(string instanceId, out long n)
    {
        n = 0;
        if (!instanceId.StartsWith(InstancePrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = instanceId.AsSpan(InstancePrefix.Length);
        if (rest.Length > 1 && rest[0] == 'h')
        {
            if (long.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var k) && k > 0)
            {
                n = -k;
                return true;
            }

            return false;
        }

        var dash = rest.IndexOf('-');
        if (dash > 0
            && long.TryParse(rest[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var seq) && seq < (1L << 47)
            && int.TryParse(rest[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal) && ordinal < HistoryDiff.MaxInstancesPerWrite)
        {
            n = (seq << 16) | (long)ordinal;
            return true;
        }

        return false;
    }

    /// <summary>A read-only view of the history for one request (one connection, however many entities it reads).</summary>
    public IHistoryReader OpenReader()
    {
        var connection = new SqliteConnection(store.ConnectionString);
        connection.Open();
        // One read transaction for the request: its reads see one state of the history, so that an entity's folded
        // creations and its other rows (two statements) agree even while an unfold commits between them.
        SqliteEntityStore.Execute(connection, "PRAGMA query_only=1; PRAGMA mmap_size=67108864; BEGIN;");
        return new HistoryReader(connection);
    }

    /// <summary>
    /// Adds instances to an entity's history without touching its current state (POST /temporal/entities and
    /// /temporal/entities/{id}/attrs), numbered after the last instance added this way. True when the entity had no history.
    /// </summary>
    public Task<bool> AppendAsync(string tenant, string entityId, List<string>? types, IReadOnlyList<(string Attr, AttributeInstance Instance)> instances, DateTimeOffset now, CancellationToken cancellationToken) =>
        store.RunInWriterAsync(
            (writer, tx) =>
            {
                string? existing;
                using (var find = Command(writer, tx, "SELECT types FROM history_entities WHERE tenant = $t AND id = $id"))
                {
                    find.Parameters.AddWithValue("$t", tenant);
                    find.Parameters.AddWithValue("$id", entityId);
                    existing = find.ExecuteScalar() as string;
                }

                if (existing is null && types is null)
                {
                    throw NgsiException.NotFound($"Entity '{entityId}' has no history.");
                }

                long hid;
                using (var entity = Command(writer, tx, """
                    INSERT INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at) VALUES ($t, $id, $types, $now, $now, NULL)
                    ON CONFLICT (tenant, id) DO UPDATE SET types = coalesce($newTypes, types), modified_at = $now
                    RETURNING hid
                    """))
                {
                    entity.Parameters.AddWithValue("$t", tenant);
                    entity.Parameters.AddWithValue("$id", entityId);
                    entity.Parameters.AddWithValue("$types", types is null ? existing! : JsonSerializer.Serialize(types));
                    entity.Parameters.AddWithValue("$newTypes", types is null ? DBNull.Value : JsonSerializer.Serialize(types));
                    entity.Parameters.AddWithValue("$now", now.UtcTicks);
                    hid = (long)entity.ExecuteScalar()!;
                }

                long number;
                using (var counter = Command(writer, tx, """
                    INSERT INTO counters (name, value) VALUES ('history', $count) ON CONFLICT (name) DO UPDATE SET value = value + $count
                    RETURNING value
                    """))
                {
                    counter.Parameters.AddWithValue("$count", (long)instances.Count);
                    number = (long)counter.ExecuteScalar()! - instances.Count;
                }

                using var terms = new TermNumbering(writer, tx);
                using var insert = Command(writer, tx, """
                    INSERT INTO history (hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
                    VALUES ($h, $a, $time, $n, $d, $k, $o, $now, $now, $v, $b, 0)
                    """);
                foreach (var (attr, instance) in instances)
                {
                    instance.CreatedAt = instance.ModifiedAt = now;
                    var observed = ObservedTicks(instance);
                    insert.Parameters.Clear();
                    insert.Parameters.AddWithValue("$h", hid);
                    insert.Parameters.AddWithValue("$a", terms.Id(attr));
                    insert.Parameters.AddWithValue("$time", observed ?? now.UtcTicks);
                    insert.Parameters.AddWithValue("$n", -(++number));
                    insert.Parameters.AddWithValue("$d", (object?)instance.DatasetId ?? DBNull.Value);
                    insert.Parameters.AddWithValue("$k", (long)instance.Kind);
                    insert.Parameters.AddWithValue("$o", observed is { } o ? o : DBNull.Value);
                    insert.Parameters.AddWithValue("$now", now.UtcTicks);
                    insert.Parameters.AddWithValue("$v", Encoding.UTF8.GetString(instance.PayloadUtf8));
                    insert.Parameters.AddWithValue("$b", EntityCodec.EncodeInstance(instance));
                    insert.ExecuteNonQuery();
                }

                return existing is null;
            },
            cancellationToken);

    /// <summary>Replaces the value (and metadata) of one recorded instance; false when there is no such instance.</summary>
    public Task<bool> ReplaceInstanceAsync(string tenant, string entityId, string attr, string instanceId, Func<AttributeKind, AttributeInstance> replacement, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!TryParseInstanceId(instanceId, out var n))
        {
            return Task.FromResult(false);
        }

        return store.RunInWriterAsync(
            (writer, tx) =>
            {
                Unfold(writer, tx, tenant, entityId);
                using var find = InstanceCommand(writer, tx, "SELECT h.hid, h.attr, h.t, h.kind, h.dataset_id, h.created_at", tenant, entityId, attr, n);
                long hid, attrId, t, createdAt;
                AttributeKind kind;
                string? datasetId;
                using (var r = find.ExecuteReader())
                {
                    if (!r.Read())
                    {
                        return false;
                    }

                    (hid, attrId, t, kind) = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), (AttributeKind)r.GetInt64(3));
                    datasetId = r.IsDBNull(4) ? null : r.GetString(4);
                    createdAt = r.GetInt64(5);
                }

                var instance = replacement(kind);
                instance.DatasetId = datasetId;
                var modified = Math.Max(now.UtcTicks, createdAt);
                var observed = ObservedTicks(instance);

                // The time is part of the key: a new observedAt moves the row.
                using var update = Command(writer, tx, """
                    UPDATE history SET t = $time, kind = $k, observed_at = $o, modified_at = $m, value = $v, instance = $b
                    WHERE hid = $h AND attr = $a AND t = $oldTime AND n = $n
                    """);
                update.Parameters.AddWithValue("$time", observed ?? modified);
                update.Parameters.AddWithValue("$k", (long)instance.Kind);
                update.Parameters.AddWithValue("$o", observed is { } o ? o : DBNull.Value);
                update.Parameters.AddWithValue("$m", modified);
                update.Parameters.AddWithValue("$v", Encoding.UTF8.GetString(instance.PayloadUtf8));
                update.Parameters.AddWithValue("$b", EntityCodec.EncodeInstance(instance));
                update.Parameters.AddWithValue("$h", hid);
                update.Parameters.AddWithValue("$a", attrId);
                update.Parameters.AddWithValue("$oldTime", t);
                update.Parameters.AddWithValue("$n", n);
                update.ExecuteNonQuery();
                return true;
            },
            cancellationToken);
    }

    /// <summary>Deletes the whole history of an entity; false when it had none.</summary>
    public Task<bool> DeleteEntityAsync(string tenant, string entityId, CancellationToken cancellationToken) =>
        store.RunInWriterAsync(
            (writer, tx) =>
            {
                using var cmd = Command(writer, tx, """
                    DELETE FROM history WHERE hid = (SELECT hid FROM history_entities WHERE tenant = $t AND id = $e);
                    DELETE FROM history_entities WHERE tenant = $t AND id = $e;
                    """);
                cmd.Parameters.AddWithValue("$t", tenant);
                cmd.Parameters.AddWithValue("$e", entityId);
                return cmd.ExecuteNonQuery() > 0;
            },
            cancellationToken);

    /// <summary>Deletes the history of one attribute: the default instance's, one datasetId's, or all; false when there was none.</summary>
    public Task<bool> DeleteAttributeAsync(string tenant, string entityId, string attr, string? datasetId, bool all, CancellationToken cancellationToken) =>
        store.RunInWriterAsync(
            (writer, tx) =>
            {
                Unfold(writer, tx, tenant, entityId);
                using var cmd = Command(writer, tx, """
                    DELETE FROM history WHERE hid = (SELECT hid FROM history_entities WHERE tenant = $t AND id = $e)
                    AND attr = (SELECT id FROM terms WHERE iri = $a)
                    """ + (all ? string.Empty : datasetId is null ? " AND dataset_id IS NULL" : " AND dataset_id = $d"));
                cmd.Parameters.AddWithValue("$t", tenant);
                cmd.Parameters.AddWithValue("$e", entityId);
                cmd.Parameters.AddWithValue("$a", attr);
                cmd.Parameters.AddWithValue("$d", (object?)datasetId ?? DBNull.Value);
                return cmd.ExecuteNonQuery() > 0;
            },
            cancellationToken);

    /// <summary>Deletes one recorded instance; false when there is no such instance.</summary>
    public Task<bool> DeleteInstanceAsync(string tenant, string entityId, string attr, string instanceId, CancellationToken cancellationToken)
    {
        if (!TryParseInstanceId(instanceId, out var n))
        {
            return Task.FromResult(false);
        }

        return store.RunInWriterAsync(
            (writer, tx) =>
            {
                Unfold(writer, tx, tenant, entityId);
                using var cmd = InstanceCommand(writer, tx, "DELETE FROM history WHERE (hid, attr, t, n) IN (SELECT h.hid, h.attr, h.t, h.n", tenant, entityId, attr, n, close: ")");
                return cmd.ExecuteNonQuery() > 0;
            },
            cancellationToken);
    }

    /// <summary>Turns the entity's folded creations into a row an instance (<see cref="FoldedCreation"/>) before a change to single instances.</summary>
    private static void Unfold(SqliteConnection writer, SqliteTransaction tx, string tenant, string entityId)
    {
        using var find = Command(writer, tx, "SELECT hid FROM history_entities WHERE tenant = $t AND id = $e");
        find.Parameters.AddWithValue("$t", tenant);
        find.Parameters.AddWithValue("$e", entityId);
        if (find.ExecuteScalar() is long hid)
        {
            SqliteEntityStore.UnfoldCreations(writer, tx, hid);
        }
    }

    /// <summary>A statement over one instance, found by its number within the entity's history of the attribute.</summary>
    private static SqliteCommand InstanceCommand(SqliteConnection writer, SqliteTransaction tx, string select, string tenant, string entityId, string attr, long n, string close = "")
    {
        var cmd = Command(writer, tx, select + """
             FROM history h
            WHERE h.hid = (SELECT hid FROM history_entities WHERE tenant = $t AND id = $e)
              AND h.attr = (SELECT id FROM terms WHERE iri = $a) AND h.n = $n AND h.deleted = 0
            """ + close);
        cmd.Parameters.AddWithValue("$t", tenant);
        cmd.Parameters.AddWithValue("$e", entityId);
        cmd.Parameters.AddWithValue("$a", attr);
        cmd.Parameters.AddWithValue("$n", n);
        return cmd;
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction tx, string sql)
    {
        var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd;
    }

    private static long? ObservedTicks(AttributeInstance instance) =>
        NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o.UtcTicks : null;
}

/// <summary>Reads of the history for one request, on one read-only connection.</summary>
internal sealed class HistoryReader(SqliteConnection connection) : IHistoryReader
{
    private readonly TermNames _terms = new(
        id => (string)Scalar(connection, "SELECT iri FROM terms WHERE id = $id", "$id", id)!,
        iri => Scalar(connection, "SELECT id FROM terms WHERE iri = $iri", "$iri", iri) as long?);

    private const string EntityColumns = "hid, id, types, created_at, modified_at, deleted_at, access, owner, category";

    public TemporalEntityRow? Entity(string tenant, string id)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT {EntityColumns} FROM history_entities WHERE tenant = $t AND id = $id";
        cmd.Parameters.AddWithValue("$t", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        using var r = cmd.ExecuteReader();
        return r.Read() ? EntityRow(r) : null;
    }

    /// <summary>The entities with a history in a tenant, by id (only <paramref name="ids"/> when given).</summary>
    public List<TemporalEntityRow> Entities(string tenant, IReadOnlyList<string>? ids)
    {
        using var cmd = connection.CreateCommand();
        var sql = new StringBuilder($"SELECT {EntityColumns} FROM history_entities WHERE tenant = $t");
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

    /// <summary>The entity's last change to its history (rendered as its modifiedAt): a write or an instance added or replaced.</summary>
    public TemporalEntityRow WithLastModified(TemporalEntityRow row)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT coalesce(max(modified_at), 0) FROM history WHERE hid = $h";
        cmd.Parameters.AddWithValue("$h", row.Hid);
        var last = new DateTimeOffset((long)cmd.ExecuteScalar()!, TimeSpan.Zero);
        return last > row.ModifiedAt ? row with { ModifiedAt = last } : row;
    }

    /// <summary>
    /// The recorded instances of an entity's attributes (all, or the given expanded names) inside the query's time
    /// range: each attribute's instances oldest first, in the order of the history's own key (no sort).
    /// </summary>
    public List<HistoryRow> History(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        var unfolded = Unfolded(entity, attrs, query);
        using var cmd = connection.CreateCommand();
        cmd.CommandText = Select("h.attr, h.dataset_id, h.n, h.kind, h.observed_at, h.created_at, h.modified_at, h.value, h.instance, h.deleted", entity, attrs, query, (name, value) => cmd.Parameters.AddWithValue(name, value));
        var rows = new List<HistoryRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var attr = r.GetInt64(0);
            var n = r.GetInt64(2);
            var row = new HistoryRow(
                _terms.Iri(attr),
                r.IsDBNull(1) ? null : r.GetString(1),
                TemporalHistory.InstanceId(n),
                (AttributeKind)r.GetInt64(3),
                r.IsDBNull(4) ? null : new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
                new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero),
                new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero),
                r.GetString(7),
                r.IsDBNull(8) ? null : (byte[])r.GetValue(8),
                r.GetInt64(9) != 0);
            unfolded?.Before(attr, row.Time(query.Property).UtcTicks, n, rows.Add);
            rows.Add(row);
        }

        unfolded?.Rest(rows.Add);
        return rows;
    }

    /// <summary>
    /// The same range aggregated while it is read (aggregatedValues): values and times only, straight from SQLite's
    /// buffers, one pass, nothing kept per instance.
    /// </summary>
    public List<AggregatedSeries> Aggregate(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        var unfolded = Unfolded(entity, attrs, query);
        var time = TimeColumn(query);
        var bindings = new List<(string Name, object Value)>();
        var sql = Select($"h.attr, h.dataset_id, h.kind, {time}, h.value, h.deleted, h.n", entity, attrs, query, (name, value) => bindings.Add((name, value)));
        using var statement = new RawStatement(connection, sql);
        foreach (var (name, value) in bindings)
        {
            statement.BindNamed(name, value);
        }

        var builder = new AggregationBuilder(query);
        void Take(HistoryRow row) => builder.Add(row.Attr, row.DatasetId, row.Kind, row.Time(query.Property), Encoding.UTF8.GetBytes(row.Value), row.Deleted);
        try
        {
            while (statement.Step())
            {
                var attr = statement.Int64(0);
                var at = statement.Int64(3);
                unfolded?.Before(attr, at, statement.Int64(6), Take);
                builder.Add(
                    _terms.Iri(attr),
                    statement.IsNull(1) ? null : statement.Text(1),
                    (AttributeKind)statement.Int64(2),
                    new DateTimeOffset(at, TimeSpan.Zero),
                    statement.Blob(4),
                    statement.Int64(5) != 0);
            }
        }
        finally
        {
            statement.Reset();
        }

        unfolded?.Rest(Take);
        return builder.Finish();
    }

    /// <summary>The instances of the entity's folded creations the read takes in; null when it has none.</summary>
    private UnfoldedInstances? Unfolded(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT n, instance FROM history WHERE hid = $h AND attr = 0";
        cmd.Parameters.AddWithValue("$h", entity.Hid);
        var folded = new List<(long, byte[])>();
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                folded.Add((r.GetInt64(0), (byte[])r.GetValue(1)));
            }
        }

        return folded.Count == 0 ? null : new UnfoldedInstances(folded, attrs, query, _terms.Id);
    }

    /// <summary>The SQL of a read of one entity's history in the query's range, in the order of the history's key.</summary>
    private static string Select(string columns, TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query, Action<string, object> bind)
    {
        var time = TimeColumn(query);
        // attr 0: folded creations, read on their own (Unfolded).
        var sql = new StringBuilder($"SELECT {columns} FROM history h WHERE h.hid = $h AND h.attr > 0");
        bind("$h", entity.Hid);
        if (attrs is not null)
        {
            sql.Append(" AND h.attr IN (SELECT id FROM terms WHERE iri IN (");
            var i = 0;
            foreach (var attr in attrs)
            {
                sql.Append(i == 0 ? "$a" : ", $a").Append(i);
                bind("$a" + i, attr);
                i++;
            }

            sql.Append("))");
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
                bind("$end", query.EndTimeAt.UtcTicks);
                break;
        }

        if (query.Relation is not null)
        {
            bind("$at", query.TimeAt.UtcTicks);
        }

        return sql.Append(" ORDER BY h.attr, ").Append(time).Append(", h.n").ToString();
    }

    /// <summary>The column the query's time property reads (observedAt: t, the instance's observedAt or modifiedAt).</summary>
    private static string TimeColumn(TemporalQuery query) => query.Property switch
    {
        TimeProperty.CreatedAt => "h.created_at",
        TimeProperty.ModifiedAt => "h.modified_at",
        _ => "h.t",
    };

    private static object? Scalar(SqliteConnection connection, string sql, string name, object value)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue(name, value);
        return cmd.ExecuteScalar();
    }

    private static TemporalEntityRow EntityRow(SqliteDataReader r) => new(
        r.GetInt64(0),
        r.GetString(1),
        JsonSerializer.Deserialize<List<string>>(r.GetString(2)) ?? [],
        new DateTimeOffset(r.GetInt64(3), TimeSpan.Zero),
        new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
        r.IsDBNull(5) ? null : new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero))
    {
        Access = new Access.EntityAccess((Access.AccessLevel)r.GetInt64(6), r.IsDBNull(7) ? null : r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8)),
    };

    public void Dispose() => connection.Dispose();
}

public static class TemporalModule
{
    /// <summary>The temporal history: recorded by the entity writer, read and amended by the temporal API, pruned by its retention rules.</summary>
    public static IServiceCollection AddMachiTemporal(this IServiceCollection services)
    {
        services.AddSingleton<HistoryRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<HistoryRetention>());
        return services;
    }
}
