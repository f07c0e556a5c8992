using System.Text.Json;
using Machi.Broker.Access;
using Machi.Ngsi.Model;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>
/// A group of entity writes inside the writer's transaction. Each write, in order, takes its entity's state as the
/// group's earlier writes left it and runs its mutation (before anything is recorded, so a mutation that throws
/// leaves nothing to undo); it adds its change-log row and its history rows (<see cref="HistoryDiff"/>, as SQLite
/// records them). After the last write, each entity's row and index rows go from their state before the group to
/// their state after it. Every table then gets one statement for the whole group (<see cref="ArrayRows"/>): a
/// statement a write and table cost PostgreSQL ~10 statements an entity, which it parsed, bound and ran one by one.
/// </summary>
internal sealed partial class PostgresEntityStore
{
    /// <returns>The mutation's failure, or null (the write is in <paramref name="group"/>).</returns>
    private async Task<Exception?> PlanWriteAsync(GroupWrites group, string tenant, EntityWrite write)
    {
        var entity = group.Entity(tenant, write.Id);
        try
        {
            var current = entity.Doc is null ? null : EntityCodec.Decode(entity.Doc);

            // The index rows as stored, taken before the first mutation (which may change the entity in place).
            entity.Stored ??= IndexedRows.Of(current);
            string[]? typesBefore = current is null ? null : [.. current.Types];
            var stampsBefore = HistoryDiff.Stamps(current);
            var accessBefore = EntityAccess.Of(current);
            var mutation = write.Mutate(current);
            if (mutation.Kind == MutationKind.None || (mutation.Kind == MutationKind.Delete && current is null))
            {
                return null;
            }

            var after = mutation.Kind == MutationKind.Put ? mutation.Entity! : null;
            byte[]? doc = null;
            if (after is not null)
            {
                HistoryDiff.CheckLimit(after);
                doc = write.PreparedFor(current, after)?.Doc ?? EntityCodec.Encode(after);
            }

            var at = _time.GetUtcNow();
            var history = HistoryDiff.Rows(stampsBefore, after, at).ToList();
            var terms = await TermIdsAsync(history.Select(r => r.Attr)).ConfigureAwait(false);

            // Nothing below can fail: the write is recorded.
            if (after is not null && entity.Rid is null)
            {
                entity.Rid = group.FreeRids.Pop();
                if (tenant.Length > 0 && _knownTenants.TryAdd(tenant, true))
                {
                    group.NewTenants.Add(tenant);
                }
            }

            var seq = group.Seqs.Dequeue();
            group.LastSeq = seq;
            var kind = after is null ? ChangeKind.Deleted : current is null ? ChangeKind.Created : ChangeKind.Updated;
            group.Changes.Add(seq, tenant, write.Id, (short)kind, entity.Doc, doc, at.UtcTicks);
            group.HistoryEntity(tenant, write.Id, at, typesBefore, after, EntityAccess.ForHistory(accessBefore, current is not null, after));
            for (var i = 0; i < history.Count; i++)
            {
                var row = history[i];
                group.History.Add(tenant, write.Id, terms[row.Attr], row.Time, (seq << 16) | (long)i, row.DatasetId, (short)row.Kind, row.ObservedAt,
                    row.At, row.At, row.Value, row.Instance is { } instance ? HistoryDiff.EncodeInstance(instance) : null, row.Deleted);
            }

            entity.Doc = doc;
            entity.After = after;
            entity.Written = true;
            return null;
        }
        catch (Exception ex) when (ex is not NpgsqlException)
        {
            return ex;
        }
    }

    /// <summary>Adds the group's statements to <paramref name="batch"/>, each table's rows in one statement.</summary>
    private async Task AddGroupAsync(NpgsqlBatch batch, GroupWrites group)
    {
        var written = group.Written.ToList();
        var rows = written.Select(e => IndexedRows.Of(e.After)).ToList();
        var terms = await TermIdsAsync(written.SelectMany(e => e.Stored!.Names).Concat(rows.SelectMany(r => r.Names))).ConfigureAwait(false);
        var tenants = new ArrayRows("INSERT INTO tenants (name, created_at) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO NOTHING",
            NpgsqlDbType.Text, NpgsqlDbType.Text);
        var inserts = new ArrayRows("""
            INSERT INTO entities (tenant, id, rid, doc, access, owner, category)
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::smallint[], $6::text[], $7::text[])
            """, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bytea, NpgsqlDbType.Smallint, NpgsqlDbType.Text, NpgsqlDbType.Text);
        var updates = new ArrayRows("""
            UPDATE entities e SET doc = u.doc, access = u.access, owner = u.owner, category = u.category
            FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::smallint[], $5::text[], $6::text[]) u(tenant, rid, doc, access, owner, category)
            WHERE e.tenant = u.tenant AND e.rid = u.rid
            """, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bytea, NpgsqlDbType.Smallint, NpgsqlDbType.Text, NpgsqlDbType.Text);
        var deletes = new ArrayRows("DELETE FROM entities e USING unnest($1::text[], $2::bigint[]) u(tenant, rid) WHERE e.tenant = u.tenant AND e.rid = u.rid",
            NpgsqlDbType.Text, NpgsqlDbType.Bigint);
        var index = new IndexChanges();
        foreach (var tenant in group.NewTenants)
        {
            tenants.Add(tenant, NgsiText.FormatDateTime(_time.GetUtcNow()));
        }

        for (var i = 0; i < written.Count; i++)
        {
            var entity = written[i];
            var rid = entity.Rid!.Value;
            index.Change(entity.Tenant, rid, entity.Stored!, rows[i], terms);
            if (entity.After is { } after)
            {
                var access = EntityAccess.Of(after);
                if (entity.WasStored)
                {
                    updates.Add(entity.Tenant, rid, entity.Doc, (short)access.Level, access.Owner, access.Category);
                }
                else
                {
                    inserts.Add(entity.Tenant, after.Id, rid, entity.Doc, (short)access.Level, access.Owner, access.Category);
                }
            }
            else if (entity.WasStored)
            {
                deletes.Add(entity.Tenant, rid);
            }
        }

        // Removals first, so an index row a group takes out and another entity's write puts back cannot collide.
        tenants.AddTo(batch);
        deletes.AddTo(batch);
        index.AddTo(batch);
        updates.AddTo(batch);
        inserts.AddTo(batch);
        group.Changes.AddTo(batch);
        group.AddHistoryEntities(batch);
        group.History.AddTo(batch);
    }

    /// <summary>An entity through a group of writes.</summary>
    private sealed class GroupEntity(string tenant, long? rid, byte[]? doc)
    {
        public string Tenant { get; } = tenant;

        /// <summary>Whether the entity was stored before the group (its row is updated or deleted, not inserted).</summary>
        public bool WasStored { get; } = doc is not null;

        /// <summary>The entity's number: stored, taken by its creation in this group, or null while it has none.</summary>
        public long? Rid { get; set; } = rid;

        /// <summary>The document as the group's writes so far leave it (null: no entity).</summary>
        public byte[]? Doc { get; set; } = doc;

        /// <summary>The entity after the group's last write to it (null: deleted).</summary>
        public Entity? After { get; set; }

        /// <summary>The index rows as stored, taken at the group's first write to the entity.</summary>
        public IndexedRows? Stored { get; set; }

        /// <summary>Whether a write of the group changed the entity.</summary>
        public bool Written { get; set; }
    }

    /// <summary>
    /// A group of writes as its statements will record them: the entities it touches (rows prefetched at the start),
    /// the rids and change seqs taken for it under the writers' lock, and the change-log and history rows in order.
    /// </summary>
    private sealed class GroupWrites
    {
        private readonly Dictionary<(string Tenant, string Id), GroupEntity> _entities = [];
        private readonly List<GroupEntity> _order = [];
        private readonly Dictionary<(string Tenant, string Id), HistoryEntityRow> _historyEntities = [];

        /// <summary>Stored rows, by key, read at the start of the group.</summary>
        public Dictionary<(string Tenant, string Id), (long Rid, byte[] Doc)> Prefetched { get; } = [];

        public Stack<long> FreeRids { get; } = new();

        /// <summary>Change seqs taken for the group, one a write, ascending (a write that records nothing leaves a gap).</summary>
        public Queue<long> Seqs { get; } = new();

        public long LastSeq { get; set; }

        public List<string> NewTenants { get; } = [];

        public ArrayRows Changes { get; } = new("""
            INSERT INTO entity_changes (seq, tenant, entity_id, kind, before, after, at)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bytea[], $6::bytea[], $7::bigint[])
            """, NpgsqlDbType.Bigint, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Smallint, NpgsqlDbType.Bytea, NpgsqlDbType.Bytea, NpgsqlDbType.Bigint);

        public ArrayRows History { get; } = new("""
            INSERT INTO history (tenant, hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
            SELECT v.tenant, h.hid, v.attr, v.t, v.n, v.dataset_id, v.kind, v.observed_at, v.created_at, v.modified_at, v.value, v.instance, v.deleted
            FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::smallint[], $8::bigint[], $9::bigint[], $10::bigint[],
                        $11::text[], $12::bytea[], $13::boolean[])
                AS v(tenant, id, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
            JOIN history_entities h ON h.tenant = v.tenant AND h.id = v.id
            """, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Text, NpgsqlDbType.Smallint,
            NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Text, NpgsqlDbType.Bytea, NpgsqlDbType.Boolean);

        /// <summary>The entities the group's writes changed, in the order first touched.</summary>
        public IEnumerable<GroupEntity> Written => _order.Where(e => e.Written);

        public GroupEntity Entity(string tenant, string id)
        {
            if (!_entities.TryGetValue((tenant, id), out var entity))
            {
                var stored = Prefetched.TryGetValue((tenant, id), out var row);
                entity = new GroupEntity(tenant, stored ? row.Rid : null, stored ? row.Doc : null);
                _entities[(tenant, id)] = entity;
                _order.Add(entity);
            }

            return entity;
        }

        /// <summary>
        /// The entity's history row after one write: kept as it is (created if missing) while the types stay, else
        /// set to the write's types and times (deleted_at on deletion); the access marks when the write changes them.
        /// A group's writes to one entity fold into one row: the first write's creation time, the last setting write's
        /// types and times, the last marks.
        /// </summary>
        public void HistoryEntity(string tenant, string id, DateTimeOffset at, string[]? typesBefore, Entity? after, EntityAccess? marks)
        {
            var types = JsonSerializer.Serialize((IReadOnlyList<string>?)after?.Types ?? typesBefore ?? []);
            var modified = after?.ModifiedAt.UtcTicks ?? at.UtcTicks;
            var set = typesBefore is null || after is null || !typesBefore.SequenceEqual(after.Types);
            if (!_historyEntities.TryGetValue((tenant, id), out var row))
            {
                row = new HistoryEntityRow { Created = after?.CreatedAt.UtcTicks ?? at.UtcTicks, Types = types, Modified = modified };
                _historyEntities[(tenant, id)] = row;
            }

            if (set)
            {
                (row.Set, row.Types, row.Modified, row.Deleted) = (true, types, modified, after is null ? at.UtcTicks : null);
            }

            row.Marks = marks ?? row.Marks;
        }

        public void AddHistoryEntities(NpgsqlBatch batch)
        {
            var keep = new ArrayRows("""
                INSERT INTO history_entities (tenant, id, types, created_at, modified_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
                ON CONFLICT (tenant, id) DO NOTHING
                """, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint);
            var set = new ArrayRows("""
                INSERT INTO history_entities (tenant, id, types, created_at, modified_at, deleted_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, modified_at = excluded.modified_at, deleted_at = excluded.deleted_at
                """, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint);
            var marks = new ArrayRows("""
                UPDATE history_entities h SET access = u.access, owner = u.owner, category = u.category
                FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::text[]) u(tenant, id, access, owner, category)
                WHERE h.tenant = u.tenant AND h.id = u.id
                """, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Smallint, NpgsqlDbType.Text, NpgsqlDbType.Text);
            foreach (var ((tenant, id), row) in _historyEntities)
            {
                if (row.Set)
                {
                    set.Add(tenant, id, row.Types, row.Created, row.Modified, row.Deleted);
                }
                else
                {
                    keep.Add(tenant, id, row.Types, row.Created, row.Modified);
                }

                if (row.Marks is { } access)
                {
                    marks.Add(tenant, id, (short)access.Level, access.Owner, access.Category);
                }
            }

            keep.AddTo(batch);
            set.AddTo(batch);
            marks.AddTo(batch);
        }

        private sealed class HistoryEntityRow
        {
            public required long Created { get; init; }

            public required string Types { get; set; }

            public required long Modified { get; set; }

            public long? Deleted { get; set; }

            public bool Set { get; set; }

            public EntityAccess? Marks { get; set; }
        }
    }
}
