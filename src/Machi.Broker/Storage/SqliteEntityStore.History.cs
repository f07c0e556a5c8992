using Machi.Broker.Access;
using System.Text;
using System.Text.Json;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>
/// The temporal history (clause 4.5.7), recorded by the writer in the transaction of each entity write: one row per
/// attribute instance the write created or changed, one deletion row per instance it removed. A write is in the
/// history exactly when it is in the entity table; nothing reads the change log back to derive it.
/// </summary>
internal sealed partial class SqliteEntityStore
{
    /// <summary>Records what one write did to an entity's attribute instances (writer thread, inside its transaction).</summary>
    private void RecordHistory(WriterStatements s, string tenant, string entityId, long changeSeq, DateTimeOffset at,
        List<HistoryDiff.InstanceStamp>? before, IReadOnlyList<string>? typesBefore, Entity? after, EntityAccess? accessBefore = null)
    {
        var hid = HistoryEntity(s, tenant, entityId, at, typesBefore, after);

        // The history keeps the entity's last access marks (a deleted entity's history stays as private as it was).
        if (accessBefore is { } was && EntityAccess.ForHistory(was, typesBefore is not null, after) is { } access)
        {
            s.UpdateHistoryAccess.Bind(1, hid).Bind(2, (long)access.Level).BindOrNull(3, access.Owner).BindOrNull(4, access.Category).Execute();
        }

        var ordinal = 0L;
        foreach (var row in HistoryDiff.Rows(before, after, at))
        {
            s.InsertHistory.Bind(10, row.Value);
            if (row.Instance is { } instance)
            {
                s.InsertHistory.Bind(11, EntityCodec.EncodeInstance(instance));
            }

            InsertHistoryRow(s, hid, (changeSeq << 16) | ordinal++, row.Attr, row.DatasetId, row.Kind, row.Time, row.ObservedAt, row.At, row.Deleted);
        }
    }

    /// <summary>
    /// Records the creation of an entity from its prepared rows (<see cref="NewEntityRows"/>): one folded row
    /// (<see cref="FoldedCreation"/>) for all its instances.
    /// </summary>
    private static void RecordCreation(WriterStatements s, string tenant, long changeSeq, NewEntityRows created)
    {
        // Its history may exist from an entity of the same id deleted before: it takes this one's types and marks. Most
        // creations have none, and a plain insert costs less than the upsert (whose RETURNING fills a temporary table).
        RawStatement Bound(RawStatement statement)
        {
            var access = created.Access;
            return statement.Bind(1, tenant).Bind(2, created.Id).Bind(3, created.TypesJson).Bind(4, created.CreatedAt).Bind(5, created.ModifiedAt)
                .Bind(6, (long)access.Level).BindOrNull(7, access.Owner).BindOrNull(8, access.Category);
        }

        var hid = Bound(s.InsertCreatedHistoryEntity).InsertOrIgnore();
        if (hid is null)
        {
            var upsert = Bound(s.UpsertCreatedHistoryEntity);
            try
            {
                upsert.Step();
                hid = upsert.Int64(0);
            }
            finally
            {
                upsert.Reset();
            }
        }

        if (created.InstanceCount == 0)
        {
            return;
        }

        var (time, stamp) = FoldedCreation.Bounds(created);
        s.InsertHistory.Bind(1, hid.Value).Bind(2, FoldedCreation.Attr).Bind(3, time).Bind(4, changeSeq << 16)
            .Bind(6, (long)AttributeKind.Property).Bind(8, stamp).Bind(9, stamp).BindText(10, ""u8).Bind(11, created.Doc).Bind(12, 0L).Execute();
    }

    /// <summary>
    /// Turns an entity's folded creations (<see cref="FoldedCreation"/>) into a row an instance, before something
    /// changes single instances of its history: all of them, or those whose earliest instance is before
    /// <paramref name="before"/> (UTC ticks). Writer thread, inside its transaction.
    /// </summary>
    internal static void UnfoldCreations(SqliteConnection writer, SqliteTransaction tx, long hid, long? before = null)
    {
        var folded = new List<(long N, byte[] Doc)>();
        using (var delete = writer.CreateCommand())
        {
            delete.Transaction = tx;
            delete.CommandText = "DELETE FROM history WHERE hid = $h AND attr = 0 AND t < $before RETURNING n, instance";
            delete.Parameters.AddWithValue("$h", hid);
            delete.Parameters.AddWithValue("$before", before ?? long.MaxValue);
            using var r = delete.ExecuteReader();
            while (r.Read())
            {
                folded.Add((r.GetInt64(0), (byte[])r.GetValue(1)));
            }
        }

        if (folded.Count == 0)
        {
            return;
        }

        using var terms = new TermNumbering(writer, tx);
        using var insert = writer.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = """
            INSERT INTO history (hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
            VALUES ($h, $a, $t, $n, $d, $k, $o, $at, $at, $v, $b, 0)
            """;
        var p = insert.Parameters;
        p.AddWithValue("$h", hid);
        var (attr, time, n, dataset, kind, observed, at, value, instance) = (p.Add("$a", SqliteType.Integer), p.Add("$t", SqliteType.Integer),
            p.Add("$n", SqliteType.Integer), p.Add("$d", SqliteType.Text), p.Add("$k", SqliteType.Integer), p.Add("$o", SqliteType.Integer),
            p.Add("$at", SqliteType.Integer), p.Add("$v", SqliteType.Text), p.Add("$b", SqliteType.Blob));
        foreach (var (first, doc) in folded)
        {
            foreach (var (number, row) in FoldedCreation.Unfold(first, doc))
            {
                (attr.Value, time.Value, n.Value, dataset.Value, kind.Value) = (terms.Id(row.Attr), row.Time, number, (object?)row.DatasetId ?? DBNull.Value, (long)row.Kind);
                (observed.Value, at.Value, value.Value, instance.Value) = (row.ObservedAt is { } o ? o : DBNull.Value, row.At, row.Value, EntityCodec.EncodeInstance(row.Instance!));
                insert.ExecuteNonQuery();
            }
        }
    }

    /// <summary>Binds the rest of a history row (value and instance are bound by the caller) and inserts it.</summary>
    private void InsertHistoryRow(WriterStatements s, long hid, long n, string attr, string? datasetId, AttributeKind kind, long time, long? observedAt, long at, bool deleted)
    {
        s.InsertHistory.Bind(1, hid).Bind(2, TermId(s, attr)).Bind(3, time).Bind(4, n)
            .Bind(6, (long)kind).Bind(8, at).Bind(9, at).Bind(12, deleted ? 1L : 0L);
        if (datasetId is not null)
        {
            s.InsertHistory.Bind(5, datasetId);
        }

        if (observedAt is { } observed)
        {
            s.InsertHistory.Bind(7, observed);
        }

        s.InsertHistory.Execute();
    }

    /// <summary>
    /// The number of the entity's history, written when the write creates or deletes the entity or changes its
    /// types (an update of attributes only reads it).
    /// </summary>
    private static long HistoryEntity(WriterStatements s, string tenant, string entityId, DateTimeOffset at, IReadOnlyList<string>? typesBefore, Entity? after)
    {
        if (typesBefore is not null && after is not null && typesBefore.SequenceEqual(after.Types))
        {
            s.SelectHistoryEntity.Bind(1, tenant).Bind(2, entityId);
            try
            {
                if (s.SelectHistoryEntity.Step())
                {
                    return s.SelectHistoryEntity.Int64(0);
                }
            }
            finally
            {
                s.SelectHistoryEntity.Reset();
            }
        }

        var types = after?.Types ?? typesBefore ?? [];
        s.UpsertHistoryEntity.Bind(1, tenant).Bind(2, entityId).Bind(3, JsonSerializer.Serialize(types))
            .Bind(4, after?.CreatedAt.UtcTicks ?? at.UtcTicks).Bind(5, after?.ModifiedAt.UtcTicks ?? at.UtcTicks);
        if (after is null)
        {
            s.UpsertHistoryEntity.Bind(6, at.UtcTicks);
        }

        try
        {
            s.UpsertHistoryEntity.Step();
            return s.UpsertHistoryEntity.Int64(0);
        }
        finally
        {
            s.UpsertHistoryEntity.Reset();
        }
    }

    /// <summary>
    /// Moves the history of a database from before <see cref="SqliteSchema.HistoryVersion"/> into the new tables: the
    /// rows recorded so far, then the changes the old recorder had not reached yet (replayed like a write records
    /// them), and retires the old recorder's cursor so the change log can be pruned.
    /// </summary>
    private void MigrateHistory(SqliteTransaction tx)
    {
        Execute(_writer!, """
            INSERT INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at)
                SELECT tenant, id, types, created_at, modified_at, deleted_at FROM temporal_entities;
            INSERT OR IGNORE INTO terms (iri) SELECT DISTINCT attr FROM attribute_history;
            INSERT INTO history (hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
                SELECT e.hid, tm.id, coalesce(h.observed_at, h.modified_at),
                       CASE WHEN substr(h.instance_id, 32, 1) = 'h'
                            THEN -CAST(substr(h.instance_id, 33) AS INTEGER)
                            ELSE (CAST(substr(h.instance_id, 32, instr(substr(h.instance_id, 32), '-') - 1) AS INTEGER) << 16)
                                 | CAST(substr(h.instance_id, 32 + instr(substr(h.instance_id, 32), '-')) AS INTEGER)
                       END,
                       h.dataset_id, h.kind, h.observed_at, h.created_at, h.modified_at, h.value, h.instance, h.deleted
                FROM attribute_history h
                JOIN history_entities e ON e.tenant = h.tenant AND e.id = h.entity_id
                JOIN terms tm ON tm.iri = h.attr
                WHERE true
                ON CONFLICT DO NOTHING;
            INSERT INTO counters (name, value) SELECT 'history', coalesce(max(-n), 0) FROM history WHERE n < 0;
            """, tx);

        long cursor;
        using (var read = _writer!.CreateCommand())
        {
            read.Transaction = tx;
            read.CommandText = "SELECT coalesce((SELECT seq FROM change_cursors WHERE consumer = 'temporal'), 9223372036854775807)";
            cursor = (long)read.ExecuteScalar()!;
        }

        using var s = new WriterStatements(_writer!);
        s.Bind(tx);
        using (var changes = _writer!.CreateCommand())
        {
            changes.Transaction = tx;
            changes.CommandText = "SELECT seq, tenant, entity_id, kind, before, after, at FROM entity_changes WHERE seq > $after ORDER BY seq";
            changes.Parameters.AddWithValue("$after", cursor);
            using var r = changes.ExecuteReader();
            while (r.Read())
            {
                var before = r.IsDBNull(4) ? null : EntityCodec.Decode(r.GetFieldValue<byte[]>(4));
                var after = r.IsDBNull(5) ? null : EntityCodec.Decode(r.GetFieldValue<byte[]>(5));
                RecordHistory(s, r.GetString(1), r.GetString(2), r.GetInt64(0), new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero),
                    HistoryDiff.Stamps(before), before?.Types, after);
            }
        }

        Execute(_writer!, """
            DELETE FROM change_cursors WHERE consumer = 'temporal';
            DROP TABLE attribute_history;
            DROP TABLE temporal_entities;
            """, tx);
    }
}

/// <summary>
/// Term ids inside one of the writer's transactions, numbering a name no term has yet (the temporal API's own writes
/// and unfolded creations, which run as work items beside the store's cached numbering); each name asked once.
/// </summary>
internal sealed class TermNumbering : IDisposable
{
    private readonly SqliteCommand _command;
    private readonly SqliteParameter _iri;
    private readonly Dictionary<string, long> _ids = new(StringComparer.Ordinal);

    public TermNumbering(SqliteConnection writer, SqliteTransaction tx)
    {
        _command = writer.CreateCommand();
        _command.Transaction = tx;
        _command.CommandText = "INSERT INTO terms (iri) VALUES ($iri) ON CONFLICT (iri) DO UPDATE SET iri = iri RETURNING id";
        _iri = _command.Parameters.Add("$iri", SqliteType.Text);
    }

    public long Id(string iri)
    {
        if (!_ids.TryGetValue(iri, out var id))
        {
            _iri.Value = iri;
            _ids[iri] = id = (long)_command.ExecuteScalar()!;
        }

        return id;
    }

    public void Dispose() => _command.Dispose();
}
