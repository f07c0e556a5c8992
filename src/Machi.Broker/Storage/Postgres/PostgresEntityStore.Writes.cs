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
/// Rows nothing stored can conflict with (new entities and their index rows, the change log, history) are copied
/// instead (<see cref="CopyRows{TRow}"/>).
/// </summary>
internal sealed partial class PostgresEntityStore
{
    /// <param name="created">The index and history rows of the write's new entity, worked out when it was queued (null: none).</param>
    /// <returns>The mutation's failure, or null (the write is in <paramref name="group"/>).</returns>
    private async Task<Exception?> PlanWriteAsync(GroupWrites group, string tenant, EntityWrite write, CreatedRows? created)
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

            // A creation from prepared rows is written from them and the rows worked out when it was queued: its entity
            // stands in as a shell (id, types, times), and its access marks come from the rows.
            var prepared = mutation.Kind == MutationKind.Put && current is null ? mutation.Created : null;
            var after = mutation.Kind != MutationKind.Put ? null : prepared?.Shell() ?? mutation.Entity!;
            byte[]? doc = null;
            if (prepared is not null)
            {
                HistoryDiff.CheckLimit(prepared.InstanceCount);
                doc = prepared.Doc;
            }
            else if (after is not null)
            {
                HistoryDiff.CheckLimit(after);
                doc = EntityCodec.Encode(after);
            }

            var at = _time.GetUtcNow();
            // A creation's history is one folded row (FoldedCreation); other writes record a row an instance they touch.
            var history = prepared is not null ? [] : HistoryDiff.Rows(stampsBefore, after, at).ToList();
            foreach (var row in history)
            {
                if (!_termIds.ContainsKey(row.Attr))
                {
                    await TermIdsAsync(history.Select(r => r.Attr)).ConfigureAwait(false);
                    break;
                }
            }

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
            group.Changes.Add(new ChangeRow(seq, tenant, write.Id, (short)kind, entity.Doc, doc, at.UtcTicks));
            var hid = group.HistoryEntity(tenant, write.Id, at, typesBefore, after, prepared?.TypesJson,
                prepared?.Access ?? EntityAccess.ForHistory(accessBefore, current is not null, after));
            if (prepared is { InstanceCount: > 0 })
            {
                var (time, stamp) = FoldedCreation.Bounds(prepared);
                group.History.Add(new HistoryRow(tenant, hid, FoldedCreation.Attr, time, seq << 16, null, (short)AttributeKind.Property, null,
                    stamp, string.Empty, prepared.Doc));
            }

            for (var i = 0; i < history.Count; i++)
            {
                var row = history[i];
                var encoded = row.Instance is { } instance ? EntityCodec.EncodeInstance(instance) : null;
                group.History.Add(new HistoryRow(tenant, hid, _termIds[row.Attr], row.Time, (seq << 16) | (long)i, row.DatasetId, (short)row.Kind, row.ObservedAt,
                    row.At, row.Value, encoded));
            }

            entity.Doc = doc;
            entity.After = after;
            entity.AfterAccess = prepared?.Access;
            // The index rows of a creation: as worked out when queued, or (an entity the group deleted before creating it
            // again, whose rows are diffed against the stored ones) from the entity itself, decoded — its shell has none.
            entity.AfterRows = prepared is null ? null : created?.Index ?? (entity.WasStored ? IndexedRows.Of(prepared.Entity) : null);
            entity.AfterEncoded = prepared is null ? null : created?.EncodedIndex;
            entity.Written = true;
            return null;
        }
        catch (Exception ex) when (ex is not NpgsqlException)
        {
            return ex;
        }
    }

    /// <summary>
    /// Adds the group's statements to <paramref name="batch"/>, each table's rows in one statement; the rows nothing
    /// stored can conflict with (new entities and their index rows, the change log, history) are left in
    /// <paramref name="group"/> for <see cref="GroupWrites.CopyAsync"/>, after the batch.
    /// </summary>
    private async Task AddGroupAsync(NpgsqlBatch batch, GroupWrites group)
    {
        var written = group.Written;
        var rows = new List<IndexedRows?>(written.Count);
        var missing = new List<string>();
        foreach (var entity in written)
        {
            // A creation's rows encoded ahead name only terms that have ids; an entity stored before the group needs its rows to diff.
            var after = entity.AfterEncoded is not null && !entity.WasStored ? null : entity.AfterRows ?? IndexedRows.Of(entity.After);
            rows.Add(after);
            entity.Stored!.AllKnown(_termIds, missing);
            after?.AllKnown(_termIds, missing);
        }

        // Usually every term is known (numbered by an earlier write), and the store's own map serves.
        IReadOnlyDictionary<string, long> terms = missing.Count == 0 ? _termIds : await TermIdsAsync(missing.Concat(written.SelectMany(e => e.Stored!.Names)).Concat(rows.SelectMany(r => r?.Names ?? []))).ConfigureAwait(false);
        var tenants = new ArrayRows("INSERT INTO tenants (name, created_at) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO NOTHING",
            NpgsqlDbType.Text, NpgsqlDbType.Text);
        // attrs: the text form of the new attribute names (cast to bigint[]), or null when they stay.
        var updates = new ArrayRows("""
            UPDATE entities e SET doc = u.doc, access = u.access, owner = u.owner, category = u.category, attrs = coalesce(u.attrs::bigint[], e.attrs)
            FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::smallint[], $5::text[], $6::text[], $7::text[]) u(tenant, rid, doc, access, owner, category, attrs)
            WHERE e.tenant = u.tenant AND e.rid = u.rid
            """, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bytea, NpgsqlDbType.Smallint, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text);
        var deletes = new ArrayRows("DELETE FROM entities e USING unnest($1::text[], $2::bigint[]) u(tenant, rid) WHERE e.tenant = u.tenant AND e.rid = u.rid",
            NpgsqlDbType.Text, NpgsqlDbType.Bigint);
        var index = group.Index;
        foreach (var tenant in group.NewTenants)
        {
            tenants.Add(tenant, NgsiText.FormatDateTime(_time.GetUtcNow()));
        }

        for (var i = 0; i < written.Count; i++)
        {
            var entity = written[i];
            var rid = entity.Rid!.Value;
            if (rows[i] is null)
            {
                index.FreshEncoded(entity.AfterEncoded!, rid);
            }
            else if (entity.WasStored)
            {
                index.Change(entity.Tenant, rid, entity.Stored!, rows[i]!, terms);
            }
            else
            {
                index.Fresh(entity.Tenant, rid, rows[i]!, terms);
            }

            if (entity.After is { } after)
            {
                var access = entity.AfterAccess ?? EntityAccess.Of(after);
                if (entity.WasStored)
                {
                    var attrs = EntityAttrs.Same(entity.Stored!, rows[i]!) ? null : EntityAttrs.Literal(EntityAttrs.Ids(rows[i]!, terms));
                    updates.Add(entity.Tenant, rid, entity.Doc, (short)access.Level, access.Owner, access.Category, attrs);
                }
                else
                {
                    group.Inserts.Add(new EntityRow(entity.Tenant, after.Id, rid, entity.Doc!, (short)access.Level, access.Owner, access.Category,
                        rows[i] is { } fresh ? EntityAttrs.Ids(fresh, terms) : entity.AfterEncoded!.Attrs));
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
        group.Inserts.AddTo(batch);
        group.AddHistoryEntities(batch);
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

        /// <summary>The entity after the group's last write to it (null: deleted; a shell when it created it from prepared rows).</summary>
        public Entity? After { get; set; }

        /// <summary>The access marks of <see cref="After"/> when its write created it from prepared rows, else null (read them from it).</summary>
        public EntityAccess? AfterAccess { get; set; }

        /// <summary>The index rows of <see cref="After"/> when its write prepared them (a creation), else null.</summary>
        public IndexedRows? AfterRows { get; set; }

        /// <summary>The index rows of <see cref="After"/> encoded ahead when its write did (a creation in a batch), else null.</summary>
        public CreationIndex? AfterEncoded { get; set; }

        /// <summary>The index rows as stored, taken at the group's first write to the entity.</summary>
        public IndexedRows? Stored { get; set; }

        /// <summary>Whether a write of the group changed the entity.</summary>
        public bool Written { get; set; }
    }

    /// <summary>
    /// A group of writes as its statements will record them: the entities it touches (rows prefetched at the start),
    /// the rids, history ids and change seqs taken for it under the writers' lock, and the change-log and history rows
    /// in order.
    /// </summary>
    private sealed class GroupWrites
    {
        private Dictionary<(string Tenant, string Id), GroupEntity> _entities = [];
        private List<GroupEntity> _order = [];
        private Dictionary<(string Tenant, string Id), HistoryEntityRow> _historyEntities = [];

        /// <summary>Stored rows, by key, read at the start of the group.</summary>
        public Dictionary<(string Tenant, string Id), (long Rid, byte[] Doc)> Prefetched { get; private set; } = [];

        /// <summary>
        /// The history id of every entity of the group, by key, read at the start of the group (Stored) or taken
        /// from its sequence for those that have no history row yet.
        /// </summary>
        public Dictionary<(string Tenant, string Id), (long Hid, bool Stored)> HistoryIds { get; private set; } = [];

        public Stack<long> FreeRids { get; } = new();

        /// <summary>Change seqs taken for the group, one a write, ascending (a write that records nothing leaves a gap).</summary>
        public Queue<long> Seqs { get; } = new();

        public long LastSeq { get; set; }

        public List<string> NewTenants { get; } = [];

        public IndexChanges Index { get; } = new();

        /// <summary>Rows of the entities the group creates.</summary>
        public CopyRows<EntityRow> Inserts { get; } = new CopyRows<EntityRow>("entities")
            .Text("tenant", r => r.Tenant).Text("id", r => r.Id).Bigint("rid", r => r.Rid).Bytea("doc", r => r.Doc)
            .Smallint("access", r => r.Access).Text("owner", r => r.Owner).Text("category", r => r.Category).BigintArray("attrs", r => r.Attrs);

        public CopyRows<ChangeRow> Changes { get; } = new CopyRows<ChangeRow>("entity_changes")
            .Bigint("seq", r => r.Seq).Text("tenant", r => r.Tenant).Text("entity_id", r => r.EntityId).Smallint("kind", r => r.Kind)
            .Bytea("before", r => r.Before).Bytea("after", r => r.After).Bigint("at", r => r.At);

        public CopyRows<HistoryRow> History { get; } = new CopyRows<HistoryRow>("history")
            .Text("tenant", r => r.Tenant).Bigint("hid", r => r.Hid).Bigint("attr", r => r.Attr).Bigint("t", r => r.Time).Bigint("n", r => r.N)
            .Text("dataset_id", r => r.DatasetId).Smallint("kind", r => r.Kind).Bigint("observed_at", r => r.ObservedAt)
            .Bigint("created_at", r => r.At).Bigint("modified_at", r => r.At).Text("value", r => r.Value).Bytea("instance", r => r.Instance)
            .Boolean("deleted", r => r.Instance is null);

        /// <summary>The history's rows of entities that had none before the group.</summary>
        private CopyRows<HistoryEntityRow> NewHistoryEntities { get; } = new CopyRows<HistoryEntityRow>("history_entities")
            .Text("tenant", r => r.Tenant).Text("id", r => r.Id).Bigint("hid", r => r.Hid).Text("types", r => r.Types)
            .Bigint("created_at", r => r.Created).Bigint("modified_at", r => r.Modified).Bigint("deleted_at", r => r.Deleted)
            .Smallint("access", r => (short)(r.Marks?.Level ?? 0)).Text("owner", r => r.Marks?.Owner).Text("category", r => r.Marks?.Category);

        /// <summary>The entities the group's writes changed, in the order first touched.</summary>
        public List<GroupEntity> Written => _order.FindAll(e => e.Written);

        /// <summary>Sizes the group's maps for <paramref name="entities"/> entities (a batch's ~1,000, grown one doubling at a time, allocated each size on the way).</summary>
        public void Expect(int entities)
        {
            _entities = new(entities);
            _order = new(entities);
            _historyEntities = new(entities);
            HistoryIds = new(entities);
        }

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
        /// <returns>The entity's history id.</returns>
        /// <param name="typesJson">The JSON of <paramref name="after"/>'s types when its write worked them out already (a creation).</param>
        public long HistoryEntity(string tenant, string id, DateTimeOffset at, string[]? typesBefore, Entity? after, string? typesJson, EntityAccess? marks)
        {
            var types = typesJson ?? JsonSerializer.Serialize((IReadOnlyList<string>?)after?.Types ?? typesBefore ?? []);
            var modified = after?.ModifiedAt.UtcTicks ?? at.UtcTicks;
            var set = typesBefore is null || after is null || !typesBefore.SequenceEqual(after.Types);
            if (!_historyEntities.TryGetValue((tenant, id), out var row))
            {
                var (hid, stored) = HistoryIds[(tenant, id)];
                row = new HistoryEntityRow
                {
                    Tenant = tenant, Id = id, Hid = hid, Stored = stored, Created = after?.CreatedAt.UtcTicks ?? at.UtcTicks, Types = types, Modified = modified,
                };
                _historyEntities[(tenant, id)] = row;
            }

            if (set)
            {
                (row.Set, row.Types, row.Modified, row.Deleted) = (true, types, modified, after is null ? at.UtcTicks : null);
            }

            row.Marks = marks ?? row.Marks;
            return row.Hid;
        }

        /// <summary>Adds the changes of the history rows that existed before the group (the new ones are copied).</summary>
        public void AddHistoryEntities(NpgsqlBatch batch)
        {
            var set = new ArrayRows("""
                UPDATE history_entities h SET types = u.types, modified_at = u.modified_at, deleted_at = u.deleted_at
                FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) u(tenant, hid, types, modified_at, deleted_at)
                WHERE h.tenant = u.tenant AND h.hid = u.hid
                """, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint);
            var marks = new ArrayRows("""
                UPDATE history_entities h SET access = u.access, owner = u.owner, category = u.category
                FROM unnest($1::text[], $2::bigint[], $3::smallint[], $4::text[], $5::text[]) u(tenant, hid, access, owner, category)
                WHERE h.tenant = u.tenant AND h.hid = u.hid
                """, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Smallint, NpgsqlDbType.Text, NpgsqlDbType.Text);
            foreach (var row in _historyEntities.Values)
            {
                if (!row.Stored)
                {
                    NewHistoryEntities.Add(row);
                    continue;
                }

                if (row.Set)
                {
                    set.Add(row.Tenant, row.Hid, row.Types, row.Modified, row.Deleted);
                }

                if (row.Marks is { } access)
                {
                    marks.Add(row.Tenant, row.Hid, (short)access.Level, access.Owner, access.Category);
                }
            }

            set.AddTo(batch);
            marks.AddTo(batch);
            NewHistoryEntities.AddTo(batch);
            History.AddTo(batch);
            Changes.AddTo(batch);
        }

        /// <summary>Copies the group's new rows, after its batch of statements.</summary>
        public async Task CopyAsync(NpgsqlConnection connection)
        {
            await Inserts.CopyAsync(connection).ConfigureAwait(false);
            await Index.CopyFreshAsync(connection).ConfigureAwait(false);
            await NewHistoryEntities.CopyAsync(connection).ConfigureAwait(false);
            await History.CopyAsync(connection).ConfigureAwait(false);
            await Changes.CopyAsync(connection).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The index rows of each write's new entity (null for a write that creates none), worked out on the request's
    /// thread when the writes are queued (<see cref="WriteAsync"/>) so that the single writer, which PostgreSQL waits on
    /// between groups, does not: used when the write does create the entity it was made for, as
    /// <see cref="NewEntityRows"/> is.
    /// </summary>
    /// <remarks>
    /// In a batch (<see cref="CreationIndex.MinWrites"/> writes or more) whose names all have term ids, they are encoded
    /// here in COPY's form, one array an entity: fewer objects live until the writer reaches them (each one promoted by
    /// the collector costs), and the writer only writes the rid in.
    /// </remarks>
    private CreatedRows?[] Created(string tenant, IReadOnlyList<EntityWrite> writes)
    {
        var rows = new CreatedRows?[writes.Count];
        var encode = writes.Count >= CreationIndex.MinWrites;
        for (var i = 0; i < writes.Count; i++)
        {
            if (writes[i].Prepared is { } prepared)
            {
                var index = IndexedRows.Of(prepared.Entity);
                var encodedIndex = encode ? CreationIndex.Encode(tenant, index, _termIds) : null;
                rows[i] = new CreatedRows(encodedIndex is null ? index : null, encodedIndex);
            }
        }

        return rows;
    }

    /// <summary>
    /// A new entity prepared for this writer: the parsed entity is kept until <see cref="Created"/> has encoded its rows
    /// when the writes are queued (how depends on the batch's size and tenant, known only then); then it goes.
    /// </summary>
    NewEntityRows IEntityStore.Prepare(Entity entity) => NewEntityRows.Of(entity);

    /// <param name="Index">The index rows, unless encoded ahead (<paramref name="EncodedIndex"/>).</param>
    private sealed record CreatedRows(IndexedRows? Index, CreationIndex? EncodedIndex);

    private readonly record struct EntityRow(string Tenant, string Id, long Rid, byte[] Doc, short Access, string? Owner, string? Category, long[] Attrs);

    private readonly record struct ChangeRow(long Seq, string Tenant, string EntityId, short Kind, byte[]? Before, byte[]? After, long At);

    /// <summary>One history row; <see cref="Instance"/> null for a deletion.</summary>
    private readonly record struct HistoryRow(string Tenant, long Hid, long Attr, long Time, long N, string? DatasetId, short Kind, long? ObservedAt, long At,
        string Value, byte[]? Instance);

    private sealed class HistoryEntityRow
    {
        public required string Tenant { get; init; }

        public required string Id { get; init; }

        public required long Hid { get; init; }

        /// <summary>Whether the row existed before the group (it is updated, not copied).</summary>
        public required bool Stored { get; init; }

        public required long Created { get; init; }

        public required string Types { get; set; }

        public required long Modified { get; set; }

        public long? Deleted { get; set; }

        public bool Set { get; set; }

        public EntityAccess? Marks { get; set; }
    }
}
