using System.Text;
using System.Text.Json;
using Machi.Broker.Storage;
using Machi.Broker.Storage.Postgres;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Temporal;

/// <summary>
/// The temporal API on PostgreSQL: reads of the history the entity writer records, and the temporal API's own
/// changes to it, each in a transaction of its own (PostgreSQL has concurrent writers; the rows these touch are keyed
/// so that they never collide with the writer's: appended instances are numbered from a counter, negative).
/// </summary>
internal sealed class PostgresTemporalHistory(PostgresEntityStore store) : ITemporalHistory
{
    public IHistoryReader OpenReader()
    {
        // One snapshot for the request's reads: an entity's folded creations and its other rows (two statements) agree
        // even while an unfold commits between them.
        var connection = store.DataSource.OpenConnection();
        connection.BeginTransaction(System.Data.IsolationLevel.RepeatableRead);
        return new PostgresHistoryReader(connection);
    }

    public async Task<bool> AppendAsync(string tenant, string entityId, List<string>? types, IReadOnlyList<(string Attr, AttributeInstance Instance)> instances, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        string? existing;
        await using (var find = Command(connection, tx, "SELECT types FROM history_entities WHERE tenant = $1 AND id = $2", tenant, entityId))
        {
            existing = await find.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        }

        if (existing is null && types is null)
        {
            throw NgsiException.NotFound($"Entity '{entityId}' has no history.");
        }

        long hid;
        await using (var entity = Command(connection, tx, """
            INSERT INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at) VALUES ($1, $2, $3, $4, $4, NULL)
            ON CONFLICT (tenant, id) DO UPDATE SET types = coalesce($5, history_entities.types), modified_at = $4
            RETURNING hid
            """, tenant, entityId, types is null ? existing! : JsonSerializer.Serialize(types), now.UtcTicks, types is null ? DBNull.Value : JsonSerializer.Serialize(types)))
        {
            entity.Parameters[4].NpgsqlDbType = NpgsqlDbType.Text;
            hid = (long)(await entity.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        long number;
        await using (var counter = Command(connection, tx, """
            INSERT INTO counters (name, value) VALUES ('history', $1) ON CONFLICT (name) DO UPDATE SET value = counters.value + $1
            RETURNING value
            """, (long)instances.Count))
        {
            number = (long)(await counter.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! - instances.Count;
        }

        var terms = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (attr, _) in instances)
        {
            if (!terms.ContainsKey(attr))
            {
                await using var term = Command(connection, tx, "INSERT INTO terms (iri) VALUES ($1) ON CONFLICT (iri) DO UPDATE SET iri = excluded.iri RETURNING id", attr);
                terms[attr] = (long)(await term.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }
        }

        foreach (var (attr, instance) in instances)
        {
            instance.CreatedAt = instance.ModifiedAt = now;
            var observed = ObservedTicks(instance);
            await using var insert = Command(connection, tx, """
                INSERT INTO history (tenant, hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, false)
                """, tenant, hid, terms[attr], observed ?? now.UtcTicks, -(++number), (object?)instance.DatasetId ?? DBNull.Value, (short)instance.Kind,
                observed is { } o ? o : DBNull.Value, now.UtcTicks, Encoding.UTF8.GetString(instance.PayloadUtf8), EntityCodec.EncodeInstance(instance));
            insert.Parameters[5].NpgsqlDbType = NpgsqlDbType.Text;
            insert.Parameters[7].NpgsqlDbType = NpgsqlDbType.Bigint;
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return existing is null;
    }

    public async Task<bool> ReplaceInstanceAsync(string tenant, string entityId, string attr, string instanceId, Func<AttributeKind, AttributeInstance> replacement, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!TemporalHistory.TryParseInstanceId(instanceId, out var n))
        {
            return false;
        }

        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await UnfoldAsync(connection, tx, tenant, entityId, cancellationToken).ConfigureAwait(false);
        long hid, attrId, t, createdAt;
        AttributeKind kind;
        string? datasetId;
        await using (var find = InstanceCommand(connection, tx, "SELECT h.hid, h.attr, h.t, h.kind, h.dataset_id, h.created_at", tenant, entityId, attr, n, " FOR UPDATE"))
        await using (var r = await find.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return false;
            }

            (hid, attrId, t, kind) = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), (AttributeKind)r.GetInt16(3));
            datasetId = r.IsDBNull(4) ? null : r.GetString(4);
            createdAt = r.GetInt64(5);
        }

        var instance = replacement(kind);
        instance.DatasetId = datasetId;
        var modified = Math.Max(now.UtcTicks, createdAt);
        var observed = ObservedTicks(instance);
        await using (var update = Command(connection, tx, """
            UPDATE history SET t = $1, kind = $2, observed_at = $3, modified_at = $4, value = $5, instance = $6
            WHERE tenant = $7 AND hid = $8 AND attr = $9 AND t = $10 AND n = $11
            """, observed ?? modified, (short)instance.Kind, observed is { } o ? o : DBNull.Value, modified, Encoding.UTF8.GetString(instance.PayloadUtf8),
            EntityCodec.EncodeInstance(instance), tenant, hid, attrId, t, n))
        {
            update.Parameters[2].NpgsqlDbType = NpgsqlDbType.Bigint;
            await update.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<bool> DeleteEntityAsync(string tenant, string entityId, CancellationToken cancellationToken)
    {
        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var history = Command(connection, tx, "DELETE FROM history WHERE tenant = $1 AND hid = (SELECT hid FROM history_entities WHERE tenant = $1 AND id = $2)", tenant, entityId))
        {
            await history.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        int deleted;
        await using (var entity = Command(connection, tx, "DELETE FROM history_entities WHERE tenant = $1 AND id = $2", tenant, entityId))
        {
            deleted = await entity.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return deleted > 0;
    }

    public async Task<bool> DeleteAttributeAsync(string tenant, string entityId, string attr, string? datasetId, bool all, CancellationToken cancellationToken)
    {
        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await UnfoldAsync(connection, tx, tenant, entityId, cancellationToken).ConfigureAwait(false);
        const string Attribute = """
            DELETE FROM history WHERE tenant = $1 AND hid = (SELECT hid FROM history_entities WHERE tenant = $1 AND id = $2)
            AND attr = (SELECT id FROM terms WHERE iri = $3)
            """;
        await using var cmd = all ? Command(connection, tx, Attribute, tenant, entityId, attr)
            : datasetId is null ? Command(connection, tx, Attribute + " AND dataset_id IS NULL", tenant, entityId, attr)
            : Command(connection, tx, Attribute + " AND dataset_id = $4", tenant, entityId, attr, datasetId);
        var deleted = await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return deleted > 0;
    }

    public async Task<bool> DeleteInstanceAsync(string tenant, string entityId, string attr, string instanceId, CancellationToken cancellationToken)
    {
        if (!TemporalHistory.TryParseInstanceId(instanceId, out var n))
        {
            return false;
        }

        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await UnfoldAsync(connection, tx, tenant, entityId, cancellationToken).ConfigureAwait(false);
        await using var cmd = InstanceCommand(connection, tx, "DELETE FROM history WHERE (tenant, hid, attr, t, n) IN (SELECT h.tenant, h.hid, h.attr, h.t, h.n", tenant, entityId, attr, n, ")");
        var deleted = await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return deleted > 0;
    }

    /// <summary>Turns the entity's folded creations into a row an instance (<see cref="FoldedCreation"/>) before a change to single instances.</summary>
    private async Task UnfoldAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string tenant, string entityId, CancellationToken cancellationToken)
    {
        await using var find = Command(connection, tx, "SELECT hid FROM history_entities WHERE tenant = $1 AND id = $2", tenant, entityId);
        if (await find.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long hid)
        {
            await store.UnfoldCreationsAsync(connection, tx, [(hid, tenant, long.MaxValue)], cancellationToken).ConfigureAwait(false);
        }
    }

    private static NpgsqlCommand InstanceCommand(NpgsqlConnection connection, NpgsqlTransaction? tx, string select, string tenant, string entityId, string attr, long n, string close) =>
        Command(connection, tx, select + """
             FROM history h
            WHERE h.tenant = $1 AND h.hid = (SELECT hid FROM history_entities WHERE tenant = $1 AND id = $2)
              AND h.attr = (SELECT id FROM terms WHERE iri = $3) AND h.n = $4 AND NOT h.deleted
            """ + close, tenant, entityId, attr, n);

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql, params object[] values)
    {
        var cmd = new NpgsqlCommand(sql, connection, tx);
        foreach (var value in values)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return cmd;
    }

    private static long? ObservedTicks(AttributeInstance instance) =>
        NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o.UtcTicks : null;
}

/// <summary>Reads of the history for one request, on one pooled connection.</summary>
internal sealed class PostgresHistoryReader(NpgsqlConnection connection) : IHistoryReader
{
    private const string EntityColumns = "hid, id, types, created_at, modified_at, deleted_at, tenant, access, owner, category";

    private readonly TermNames _terms = new(
        id => (string)Scalar(connection, "SELECT iri FROM terms WHERE id = $1", id)!,
        iri => Scalar(connection, "SELECT id FROM terms WHERE iri = $1", iri) as long?);

    // The tenant of each entity row handed out: the history's keys lead with it.
    private readonly Dictionary<long, string> _tenants = [];

    public TemporalEntityRow? Entity(string tenant, string id)
    {
        using var cmd = new NpgsqlCommand($"SELECT {EntityColumns} FROM history_entities WHERE tenant = $1 AND id = $2", connection);
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        using var r = cmd.ExecuteReader();
        return r.Read() ? EntityRow(r) : null;
    }

    public List<TemporalEntityRow> Entities(string tenant, IReadOnlyList<string>? ids)
    {
        using var cmd = new NpgsqlCommand($"SELECT {EntityColumns} FROM history_entities WHERE tenant = $1" + (ids is null ? string.Empty : " AND id = ANY($2)") + " ORDER BY id COLLATE \"C\"", connection);
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        if (ids is not null)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        }

        var rows = new List<TemporalEntityRow>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            rows.Add(EntityRow(r));
        }

        return rows;
    }

    public TemporalEntityRow WithLastModified(TemporalEntityRow row)
    {
        using var cmd = new NpgsqlCommand("SELECT coalesce(max(modified_at), 0) FROM history WHERE tenant = $1 AND hid = $2", connection);
        cmd.Parameters.Add(new NpgsqlParameter { Value = _tenants[row.Hid] });
        cmd.Parameters.Add(new NpgsqlParameter { Value = row.Hid });
        var last = new DateTimeOffset((long)cmd.ExecuteScalar()!, TimeSpan.Zero);
        return last > row.ModifiedAt ? row with { ModifiedAt = last } : row;
    }

    public List<HistoryRow> History(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        var unfolded = Unfolded(entity, attrs, query);
        using var cmd = Select("h.attr, h.dataset_id, h.n, h.kind, h.observed_at, h.created_at, h.modified_at, h.value, h.instance, h.deleted", entity, attrs, query);
        var stored = new List<(long Attr, long N, HistoryRow Row)>();
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var n = r.GetInt64(2);
                stored.Add((r.GetInt64(0), n, new HistoryRow(
                    string.Empty,
                    r.IsDBNull(1) ? null : r.GetString(1),
                    TemporalHistory.InstanceId(n),
                    (AttributeKind)r.GetInt16(3),
                    r.IsDBNull(4) ? null : new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
                    new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero),
                    new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero),
                    r.GetString(7),
                    r.IsDBNull(8) ? null : r.GetFieldValue<byte[]>(8),
                    r.GetBoolean(9))));
            }
        }

        // Names once the reader is closed: a connection runs one command at a time.
        var rows = new List<HistoryRow>(stored.Count);
        foreach (var (attr, n, row) in stored)
        {
            unfolded?.Before(attr, row.Time(query.Property).UtcTicks, n, rows.Add);
            rows.Add(row with { Attr = _terms.Iri(attr) });
        }

        unfolded?.Rest(rows.Add);
        return rows;
    }

    public List<AggregatedSeries> Aggregate(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        var unfolded = Unfolded(entity, attrs, query);
        var time = TimeColumn(query);
        using var cmd = Select($"h.attr, h.dataset_id, h.kind, {time}, h.value, h.deleted, h.n", entity, attrs, query);
        var rows = new List<(long Attr, string? DatasetId, AttributeKind Kind, long Time, string Value, bool Deleted, long N)>();
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                rows.Add((r.GetInt64(0), r.IsDBNull(1) ? null : r.GetString(1), (AttributeKind)r.GetInt16(2), r.GetInt64(3), r.GetString(4), r.GetBoolean(5), r.GetInt64(6)));
            }
        }

        var builder = new AggregationBuilder(query);
        void Take(HistoryRow row) => builder.Add(row.Attr, row.DatasetId, row.Kind, row.Time(query.Property), Encoding.UTF8.GetBytes(row.Value), row.Deleted);
        foreach (var row in rows)
        {
            unfolded?.Before(row.Attr, row.Time, row.N, Take);
            builder.Add(_terms.Iri(row.Attr), row.DatasetId, row.Kind, new DateTimeOffset(row.Time, TimeSpan.Zero), Encoding.UTF8.GetBytes(row.Value), row.Deleted);
        }

        unfolded?.Rest(Take);
        return builder.Finish();
    }

    /// <summary>The instances of the entity's folded creations the read takes in; null when it has none.</summary>
    private UnfoldedInstances? Unfolded(TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        var folded = new List<(long, byte[])>();
        using (var cmd = new NpgsqlCommand("SELECT n, instance FROM history WHERE tenant = $1 AND hid = $2 AND attr = 0", connection))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = _tenants[entity.Hid] });
            cmd.Parameters.Add(new NpgsqlParameter { Value = entity.Hid });
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                folded.Add((r.GetInt64(0), r.GetFieldValue<byte[]>(1)));
            }
        }

        return folded.Count == 0 ? null : new UnfoldedInstances(folded, attrs, query, _terms.Id);
    }

    public void Dispose() => connection.Dispose();

    private NpgsqlCommand Select(string columns, TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery query)
    {
        var time = TimeColumn(query);
        var cmd = new NpgsqlCommand { Connection = connection };
        // attr 0: folded creations, read on their own (Unfolded).
        var sql = new StringBuilder($"SELECT {columns} FROM history h WHERE h.tenant = $1 AND h.hid = $2 AND h.attr > 0");
        cmd.Parameters.Add(new NpgsqlParameter { Value = _tenants[entity.Hid] });
        cmd.Parameters.Add(new NpgsqlParameter { Value = entity.Hid });
        if (attrs is not null)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = attrs.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            sql.Append(" AND h.attr IN (SELECT id FROM terms WHERE iri = ANY($3))");
        }

        var next = cmd.Parameters.Count + 1;
        switch (query.Relation)
        {
            case TimeRelation.Before:
                sql.Append(" AND ").Append(time).Append(" < $").Append(next);
                break;
            case TimeRelation.After:
                sql.Append(" AND ").Append(time).Append(" > $").Append(next);
                break;
            case TimeRelation.Between:
                sql.Append(" AND ").Append(time).Append(" >= $").Append(next).Append(" AND ").Append(time).Append(" < $").Append(next + 1);
                break;
        }

        if (query.Relation is not null)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = query.TimeAt.UtcTicks });
            if (query.Relation == TimeRelation.Between)
            {
                cmd.Parameters.Add(new NpgsqlParameter { Value = query.EndTimeAt.UtcTicks });
            }
        }

        cmd.CommandText = sql.Append(" ORDER BY h.attr, ").Append(time).Append(", h.n").ToString();
        return cmd;
    }

    private static string TimeColumn(TemporalQuery query) => query.Property switch
    {
        TimeProperty.CreatedAt => "h.created_at",
        TimeProperty.ModifiedAt => "h.modified_at",
        _ => "h.t",
    };

    private static object? Scalar(NpgsqlConnection connection, string sql, object value)
    {
        using var cmd = new NpgsqlCommand(sql, connection);
        cmd.Parameters.Add(new NpgsqlParameter { Value = value });
        return cmd.ExecuteScalar();
    }

    private TemporalEntityRow EntityRow(NpgsqlDataReader r)
    {
        var row = new TemporalEntityRow(
            r.GetInt64(0),
            r.GetString(1),
            JsonSerializer.Deserialize<List<string>>(r.GetString(2)) ?? [],
            new DateTimeOffset(r.GetInt64(3), TimeSpan.Zero),
            new DateTimeOffset(r.GetInt64(4), TimeSpan.Zero),
            r.IsDBNull(5) ? null : new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero))
        {
            Access = new Access.EntityAccess((Access.AccessLevel)r.GetInt16(7), r.IsDBNull(8) ? null : r.GetString(8), r.IsDBNull(9) ? null : r.GetString(9)),
        };
        _tenants[row.Hid] = r.GetString(6);
        return row;
    }
}
