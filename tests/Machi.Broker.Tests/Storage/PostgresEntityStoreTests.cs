using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Broker.Storage.Postgres;
using Machi.Broker.Temporal;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Machi.Broker.Tests.Storage;

/// <summary>
/// The PostgreSQL store against a real PostgreSQL 15 + PostGIS (<see cref="PostgresServer"/>): entities, the change
/// log and the history are written in one transaction per batch, and a second store on the same database (a second
/// node) sees them and is woken by them.
/// </summary>
[Collection(PostgresGroup.Name)]
public sealed class PostgresEntityStoreTests(PostgresServer server) : IAsyncLifetime
{
    private string _connectionString = null!;
    private PostgresEntityStore _store = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await server.CreateDatabaseAsync("store");
        _store = await OpenAsync();
    }

    public async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    /// <summary>The instance's number: the order the writes recorded it in.</summary>
    private static long Number(HistoryRow row) => TemporalHistory.TryParseInstanceId(row.InstanceId, out var n) ? n : throw new FormatException(row.InstanceId);

    /// <summary>The history of an entity's speed as the temporal API reads it (in time order).</summary>
    private List<HistoryRow> SpeedHistory(string id)
    {
        using var reader = new PostgresTemporalHistory(_store).OpenReader();
        return reader.Entity("", id) is { } entity ? reader.History(entity, [LdContext.Core.ExpandTerm("speed")], new TemporalQuery()) : [];
    }

    [Fact]
    public async Task Every_write_records_its_history_in_the_same_transaction_in_the_month_partition()
    {
        var vehicle = Vehicle("urn:ngsi-ld:Vehicle:h", 10);
        await _store.WriteOneAsync("", EntityWrite.Creating(vehicle, EntityService.Create), CancellationToken.None);
        var faster = Vehicle("urn:ngsi-ld:Vehicle:h", 20);
        await _store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:h", _ => Mutation.Put(faster), CancellationToken.None);
        await _store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:h", _ => Mutation.Delete, CancellationToken.None);

        // The creation is one folded row (attr 0); the update and the deletion a row each for speed.
        var changes = await _store.ReadChangesAsync(0, 10, CancellationToken.None);
        await using var data = NpgsqlDataSource.Create(_connectionString);
        await using var cmd = data.CreateCommand("""
            SELECT h.n >> 16, h.attr = 0, h.deleted, h.tableoid::regclass::text FROM history h LEFT JOIN terms t ON t.id = h.attr
            WHERE h.attr = 0 OR t.iri = $1 ORDER BY h.n
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = LdContext.Core.ExpandTerm("speed") });
        var rows = new List<(long Seq, bool Folded, bool Deleted, string Partition)>();
        await using (var r = await cmd.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                rows.Add((r.GetInt64(0), r.GetBoolean(1), r.GetBoolean(2), r.GetString(3)));
            }
        }

        Assert.Equal(changes.Select(c => c.Seq), rows.Select(r => r.Seq));
        Assert.Equal([true, false, false], rows.Select(r => r.Folded));
        Assert.Equal([false, false, true], rows.Select(r => r.Deleted));
        Assert.All(rows, r => Assert.StartsWith("history_y", r.Partition, StringComparison.Ordinal));
        Assert.Equal(PostgresSchema.HistoryPartition(DateTime.UtcNow), rows[^1].Partition);
        Assert.Equal(["10", "20", "\"urn:ngsi-ld:null\""], SpeedHistory("urn:ngsi-ld:Vehicle:h").Select(row => row.Value));

        await using var entity = data.CreateCommand("SELECT deleted_at IS NOT NULL FROM history_entities WHERE id = 'urn:ngsi-ld:Vehicle:h'");
        Assert.True((bool)(await entity.ExecuteScalarAsync())!);
    }

    /// <param name="others">Entities created beside them in the batch: many enough, the group's new rows are copied
    /// (binary COPY) instead of inserted.</param>
    [Theory]
    [InlineData(0)]
    [InlineData(300)]
    public async Task A_batch_mixing_new_stored_and_recreated_entities_leaves_each_ones_index_and_history_rows(int others)
    {
        // Stored before the batch: a (replaced by it), b (deleted by it), c (deleted already: only its history is left),
        // f (deleted by it and created again: the creation's rows are diffed against the stored ones).
        foreach (var (id, speed) in new[] { ("a", 10.0), ("b", 20.0), ("c", 30.0), ("f", 60.0) })
        {
            var vehicle = Vehicle($"urn:ngsi-ld:Vehicle:{id}", speed);
            await _store.WriteOneAsync("", EntityWrite.Creating(vehicle, EntityService.Create), CancellationToken.None);
        }

        await _store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:c", _ => Mutation.Delete, CancellationToken.None);

        // One batch (one group): c created again, d created and then changed, e created, next to a replace and a delete.
        var c = Vehicle("urn:ngsi-ld:Vehicle:c", 31);
        var d = Vehicle("urn:ngsi-ld:Vehicle:d", 40);
        var e = Vehicle("urn:ngsi-ld:Vehicle:e", 50);
        var f = Vehicle("urn:ngsi-ld:Vehicle:f", 61);
        var fillers = Enumerable.Range(0, others).Select(i => Vehicle($"urn:ngsi-ld:Vehicle:other{i}", -1)).ToList();
        var results = await _store.WriteAsync("", [
            .. fillers.Take(others / 2).Select(v => EntityWrite.Creating(v, EntityService.Create)),
            new EntityWrite("urn:ngsi-ld:Vehicle:a", _ => Mutation.Put(Vehicle("urn:ngsi-ld:Vehicle:a", 11))),
            new EntityWrite("urn:ngsi-ld:Vehicle:b", _ => Mutation.Delete),
            new EntityWrite("urn:ngsi-ld:Vehicle:f", _ => Mutation.Delete),
            EntityWrite.Creating(f, EntityService.Create),
            EntityWrite.Creating(c, EntityService.Create),
            EntityWrite.Creating(d, EntityService.Create),
            new EntityWrite("urn:ngsi-ld:Vehicle:d", _ => Mutation.Put(Vehicle("urn:ngsi-ld:Vehicle:d", 41))),
            EntityWrite.Creating(e, EntityService.Create),
            .. fillers.Skip(others / 2).Select(v => EntityWrite.Creating(v, EntityService.Create)),
        ], CancellationToken.None);
        Assert.All(results, Assert.Null);

        async Task<string> QueryAsync(string q)
        {
            var filter = new EntityFilter { Q = QExpressions.Expand(QParser.Parse(q), LdContext.Core.ExpandTerm) };
            var page = await _store.QueryAsync("", new EntityQuery(filter) { Limit = 100 }, CancellationToken.None);
            return string.Join(' ', page.Entities.Select(v => v.Id["urn:ngsi-ld:Vehicle:".Length..]).Order(StringComparer.Ordinal));
        }

        Assert.Equal("a c d e f", await QueryAsync("speed>0"));
        Assert.Equal("a", await QueryAsync("speed==11"));
        Assert.Equal("d", await QueryAsync("speed==41"));
        Assert.Equal("f", await QueryAsync("speed==61"));
        Assert.Equal("", await QueryAsync("speed==60"));
        Assert.Equal("c e f", await QueryAsync("speed>=31;speed!=41"));

        await using var data = NpgsqlDataSource.Create(_connectionString);
        async Task<string> RowsAsync(string sql)
        {
            await using var cmd = data.CreateCommand(sql);
            cmd.Parameters.Add(new NpgsqlParameter { Value = LdContext.Core.ExpandTerm("speed") });
            var rows = new List<string>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync())
            {
                if (!r.GetString(0).Contains(":other", StringComparison.Ordinal))
                {
                    rows.Add($"{r.GetString(0)["urn:ngsi-ld:Vehicle:".Length..]}:{r.GetValue(1)}");
                }
            }

            return string.Join(' ', rows);
        }

        // Exactly the index rows of what is stored: none left of a's old speed, b or d's first state.
        Assert.Equal("a:11 c:31 d:41 e:50 f:61", await RowsAsync("""
            SELECT e.id, n.value FROM entity_numbers n JOIN entities e ON e.tenant = n.tenant AND e.rid = n.rid JOIN terms t ON t.id = n.attr
            WHERE t.iri = $1 ORDER BY e.id
            """));
        Assert.Equal("a:1 c:1 d:1 e:1 f:1", await RowsAsync("""
            SELECT e.id, count(*) FROM entity_geo g JOIN entities e ON e.tenant = g.tenant AND e.rid = g.rid WHERE $1 <> '' GROUP BY e.id ORDER BY e.id
            """));

        // Every write's history in the order of the writes, under one history id an entity (c's two lives too), with deletions marked.
        Assert.Equal("a:10 a:11 b:20 b:\"urn:ngsi-ld:null\" c:30 c:\"urn:ngsi-ld:null\" c:31 d:40 d:41 e:50 f:60 f:\"urn:ngsi-ld:null\" f:61", string.Join(' ',
            "abcdef".SelectMany(id => SpeedHistory($"urn:ngsi-ld:Vehicle:{id}").OrderBy(Number).Select(row => $"{id}:{row.Value}"))));
        Assert.Equal("a:False b:True c:False d:False e:False f:False", await RowsAsync("""
            SELECT id, deleted_at IS NOT NULL FROM history_entities WHERE $1 <> '' ORDER BY id
            """));
    }

    /// <summary>
    /// A batch of creations (300: many enough that its index rows are encoded on the request's thread and its geo rows
    /// copied as WKB) stores the same history and index rows as the same entities written alone (rows built by the
    /// writer, inserted, geographies built by PostGIS in SQL), and each creation's folded history row carries its
    /// write's change seq.
    /// </summary>
    [Fact]
    public async Task Creations_in_a_large_batch_store_the_same_history_and_geo_rows_as_the_same_creations_written_alone()
    {
        var modified = new DateTimeOffset(2026, 11, 27, 9, 0, 0, TimeSpan.Zero);
        // Every other one has an area whose edges PostGIS splits (its index rows are then made by the writer).
        Entity Sensor(string id, int i) => EntityParser.ParseEntity(JsonDocument.Parse($$$"""
            {"id":"{{{id}}}","type":["Sensor","Device"],
             "speed":{"type":"Property","value":12.5,"observedAt":"2026-11-25T08:00:00Z"},
             "reading":[{"type":"Property","value":"雪 10cm","datasetId":"urn:ngsi-ld:Dataset:a"},
                        {"type":"Property","value":{"depth":2},"datasetId":"urn:ngsi-ld:Dataset:b","observedAt":"2026-11-26T01:02:03.456Z"}],
             "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9299,37.4947]}},
             "route":{"type":"GeoProperty","value":{"type":"LineString","coordinates":[[139.92,37.49],[139.93,37.5],[139.96,37.52]]}},
             {{{(i % 2 == 0 ? "\"area\":{\"type\":\"GeoProperty\",\"value\":{\"type\":\"Polygon\",\"coordinates\":[[[139.9,37.4],[140.0,37.4],[140.0,37.5],[139.9,37.5],[139.9,37.4]]]}}," : "")}}}
             "since":{"type":"Property","value":{"@type":"DateTime","@value":"2026-11-20T00:00:00Z"}},
             "name":{"type":"LanguageProperty","languageMap":{"ja":"除雪車","en":"Snowplow"}},
             "operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"}}
            """).RootElement, LdContext.Core, modified);

        // The attribute names get their term ids first (rows are encoded ahead only for names that have one).
        var seed = Sensor("urn:ngsi-ld:Sensor:seed", 0);
        await _store.WriteOneAsync("", EntityWrite.Creating(seed, EntityService.Create), CancellationToken.None);
        var batch = Enumerable.Range(0, 300).Select(i => Sensor($"urn:ngsi-ld:Sensor:a{i}", i)).ToList();
        Assert.All(await _store.WriteAsync("", [.. batch.Select(e => EntityWrite.Creating(e, EntityService.Create))], CancellationToken.None), Assert.Null);
        for (var i = 0; i < 3; i++)
        {
            var alone = Sensor($"urn:ngsi-ld:Sensor:b{i}", i);
            await _store.WriteOneAsync("", EntityWrite.Creating(alone, EntityService.Create), CancellationToken.None);
        }

        await using var data = NpgsqlDataSource.Create(_connectionString);
        async Task<List<string>> RowsAsync(string sql, string id)
        {
            await using var cmd = data.CreateCommand(sql);
            cmd.Parameters.Add(new NpgsqlParameter { Value = id });
            var rows = new List<string>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync())
            {
                rows.Add(string.Join('|', Enumerable.Range(0, r.FieldCount).Select(c => r.IsDBNull(c) ? "null" : r.GetValue(c) is byte[] b ? Convert.ToHexString(b) : Convert.ToString(r.GetValue(c), System.Globalization.CultureInfo.InvariantCulture))));
            }

            return rows;
        }

        // A creation's history is one folded row (attr 0, the first instance's number), in its month's partition.
        const string history = """
            SELECT h.attr, h.n & 65535, (SELECT count(*) FROM entity_changes c WHERE c.seq = h.n >> 16 AND c.entity_id = he.id), h.tableoid::regclass::text
            FROM history h JOIN history_entities he ON he.tenant = h.tenant AND he.hid = h.hid WHERE he.id = $1
            """;
        using var reader = new PostgresTemporalHistory(_store).OpenReader();
        List<string> Instances(string id)
        {
            var entity = reader.Entity("", id)!;
            return [.. reader.History(entity, null, new TemporalQuery()).Select(h => string.Join('|', h.Attr, h.DatasetId, h.InstanceId[(h.InstanceId.LastIndexOf('-') + 1)..], h.Kind,
                h.ObservedAt?.UtcTicks, h.CreatedAt.UtcTicks, h.ModifiedAt.UtcTicks, h.Value, Convert.ToHexString(EntityCodec.EncodeInstance(h.ToInstance())), h.Deleted))];
        }

        const string geo = """
            SELECT t.iri, g.geog::text, ST_NPoints(g.geog::geometry) FROM entity_geo g JOIN entities e ON e.tenant = g.tenant AND e.rid = g.rid JOIN terms t ON t.id = g.attr
            WHERE e.id = $1 ORDER BY t.iri
            """;
        const string values = """
            SELECT 'n', t.iri, sign(v.attr)::text || ' ' || v.value::text FROM entity_numbers v JOIN entities e ON e.tenant = v.tenant AND e.rid = v.rid JOIN terms t ON t.id = abs(v.attr) WHERE e.id = $1
            UNION ALL SELECT 's', t.iri, v.value FROM entity_strings v JOIN entities e ON e.tenant = v.tenant AND e.rid = v.rid JOIN terms t ON t.id = v.attr WHERE e.id = $1
            UNION ALL SELECT 't', t.iri, '' FROM entity_types v JOIN entities e ON e.tenant = v.tenant AND e.rid = v.rid JOIN terms t ON t.id = v.type WHERE e.id = $1
            ORDER BY 1, 2, 3
            """;
        for (var i = 0; i < 3; i++)
        {
            var alone = await RowsAsync(history, $"urn:ngsi-ld:Sensor:b{i}");
            Assert.Equal(["0|0|1|" + PostgresSchema.HistoryPartition(new DateTime(2026, 11, 1, 0, 0, 0, DateTimeKind.Utc))], alone);
            Assert.Equal(alone, await RowsAsync(history, $"urn:ngsi-ld:Sensor:a{i}"));
            var instances = Instances($"urn:ngsi-ld:Sensor:b{i}");
            Assert.Equal(i % 2 == 0 ? 9 : 8, instances.Count);
            Assert.Equal(instances, Instances($"urn:ngsi-ld:Sensor:a{i}"));

            var geoAlone = await RowsAsync(geo, $"urn:ngsi-ld:Sensor:b{i}");
            Assert.Equal(i % 2 == 0 ? 3 : 2, geoAlone.Count);
            Assert.Equal(geoAlone, await RowsAsync(geo, $"urn:ngsi-ld:Sensor:a{i}"));
            Assert.Equal(await RowsAsync(values, $"urn:ngsi-ld:Sensor:b{i}"), await RowsAsync(values, $"urn:ngsi-ld:Sensor:a{i}"));
            const string attrs = "SELECT attrs::text, cardinality(attrs) FROM entities WHERE id = $1";
            Assert.Equal(await RowsAsync(attrs, $"urn:ngsi-ld:Sensor:b{i}"), await RowsAsync(attrs, $"urn:ngsi-ld:Sensor:a{i}"));
        }

        // The polygon's edges were split (PostGIS's segmentize, in SQL) in both.
        Assert.Contains(await RowsAsync(geo, "urn:ngsi-ld:Sensor:a0"), row => row.StartsWith(LdContext.Core.ExpandTerm("area"), StringComparison.Ordinal) && !row.EndsWith("|5", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(300)]
    public async Task Each_entity_row_names_exactly_its_attributes_after_a_batch_adds_and_drops_attributes(int others)
    {
        // others: new entities beside them, so that the group's new rows are copied (300) or inserted (0).
        var a = Vehicle("urn:ngsi-ld:Vehicle:a", 10);
        var b = Vehicle("urn:ngsi-ld:Vehicle:b", 20);
        Assert.All(await _store.WriteAsync("", [EntityWrite.Creating(a, EntityService.Create), EntityWrite.Creating(b, EntityService.Create)], CancellationToken.None), Assert.Null);

        // One batch: a gains an attribute, b loses two, c is created with one more, d is created then loses one, e is
        // created and deleted; f only changes a value (its names stay).
        var c = Vehicle("urn:ngsi-ld:Vehicle:c", 30, add: "extra");
        var d = Vehicle("urn:ngsi-ld:Vehicle:d", 40);
        var e = Vehicle("urn:ngsi-ld:Vehicle:e", 50);
        var fillers = Enumerable.Range(0, others).Select(i => Vehicle($"urn:ngsi-ld:Vehicle:other{i}", i)).ToList();
        Assert.All(await _store.WriteAsync("", [
            .. fillers.Select(v => EntityWrite.Creating(v, EntityService.Create)),
            new EntityWrite(a.Id, _ => Mutation.Put(Vehicle(a.Id, 11, add: "extra"))),
            new EntityWrite(b.Id, _ => Mutation.Put(Vehicle(b.Id, 21, drop: ["name", "operator"]))),
            EntityWrite.Creating(c, EntityService.Create),
            EntityWrite.Creating(d, EntityService.Create),
            new EntityWrite(d.Id, _ => Mutation.Put(Vehicle(d.Id, 41, drop: ["category"]))),
            EntityWrite.Creating(e, EntityService.Create),
            new EntityWrite(e.Id, _ => Mutation.Delete),
        ], CancellationToken.None), Assert.Null);
        var f = fillers.FirstOrDefault();
        if (f is not null)
        {
            await _store.WriteOneAsync("", new EntityWrite(f.Id, _ => Mutation.Put(Vehicle(f.Id, 1_000))), CancellationToken.None);
        }

        await using var data = NpgsqlDataSource.Create(_connectionString);
        await using var cmd = data.CreateCommand("""
            SELECT e.id, coalesce((SELECT string_agg(t.iri, ' ' ORDER BY t.iri) FROM unnest(e.attrs) a(id) JOIN terms t ON t.id = a.id), '')
            FROM entities e ORDER BY e.id
            """);
        var stored = new Dictionary<string, string>();
        await using (var r = await cmd.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                stored[r.GetString(0)] = r.GetString(1);
            }
        }

        Assert.Equal(new[] { a.Id, b.Id, c.Id, d.Id }.Concat(fillers.Select(v => v.Id)).Order(StringComparer.Ordinal), stored.Keys.Order(StringComparer.Ordinal));
        foreach (var (id, names) in stored)
        {
            var entity = await _store.GetAsync("", id, CancellationToken.None);
            Assert.Equal(string.Join(' ', entity!.Attributes.Keys.Order(StringComparer.Ordinal)), names);
        }

        Assert.Contains(LdContext.Core.ExpandTerm("extra"), stored[a.Id]);
        Assert.DoesNotContain(LdContext.Core.ExpandTerm("operator"), stored[b.Id]);
        Assert.DoesNotContain(LdContext.Core.ExpandTerm("category"), stored[d.Id]);

        // Queries by attribute name find them.
        var extra = await _store.QueryAsync("", new EntityQuery(new EntityFilter { Attrs = [LdContext.Core.ExpandTerm("extra")] }) { Limit = 1000 }, CancellationToken.None);
        Assert.Equal([a.Id, c.Id], extra.Entities.Select(v => v.Id).Order(StringComparer.Ordinal));
        var filter = new EntityFilter { Q = QExpressions.Expand(QParser.Parse("operator"), LdContext.Core.ExpandTerm) };
        var operated = await _store.QueryAsync("", new EntityQuery(filter) { Limit = 1000, Count = true }, CancellationToken.None);
        Assert.Equal(others + 3, operated.TotalCount);
        Assert.DoesNotContain(b.Id, operated.Entities.Select(v => v.Id));
    }

    [Fact]
    public async Task Attribute_rows_stored_before_the_attrs_step_move_into_the_entity_rows_when_it_is_applied()
    {
        var old = await server.CreateDatabaseAsync("before_attrs");
        var vehicle = Vehicle("urn:ngsi-ld:Vehicle:old", 12);
        await using (var data = NpgsqlDataSource.Create(old))
        {
            // As the writer of the version before left an entity: its row, a type row and a row each attribute name.
            await PostgresSchema.MigrateAsync(data, CancellationToken.None, upTo: PostgresSchema.AttrsVersion - 1);
            await using var insert = data.CreateBatch();
            var terms = new NpgsqlBatchCommand("INSERT INTO terms (iri) SELECT unnest($1::text[])");
            terms.Parameters.Add(new NpgsqlParameter { Value = vehicle.Attributes.Keys.Append(vehicle.Types[0]).ToArray() });
            var entity = new NpgsqlBatchCommand("INSERT INTO entities (tenant, id, doc) VALUES ('', $1, $2)");
            entity.Parameters.Add(new NpgsqlParameter { Value = vehicle.Id });
            entity.Parameters.Add(new NpgsqlParameter { Value = EntityCodec.Encode(vehicle) });
            var other = new NpgsqlBatchCommand("INSERT INTO entities (tenant, id, doc) VALUES ('', 'urn:ngsi-ld:Thing:none', $1)");
            other.Parameters.Add(new NpgsqlParameter { Value = EntityCodec.Encode(EntityParser.ParseEntity(JsonDocument.Parse("""{"id":"urn:ngsi-ld:Thing:none","type":"Thing"}""").RootElement, LdContext.Core, DateTimeOffset.UtcNow)) });
            var type = new NpgsqlBatchCommand("INSERT INTO entity_types (tenant, type, rid) SELECT '', t.id, e.rid FROM terms t, entities e WHERE t.iri = $1 AND e.id = $2");
            type.Parameters.Add(new NpgsqlParameter { Value = vehicle.Types[0] });
            type.Parameters.Add(new NpgsqlParameter { Value = vehicle.Id });
            var attrs = new NpgsqlBatchCommand("INSERT INTO entity_attrs (tenant, name, rid) SELECT '', t.id, e.rid FROM terms t, entities e WHERE t.iri <> $1 AND e.id = $2");
            attrs.Parameters.Add(new NpgsqlParameter { Value = vehicle.Types[0] });
            attrs.Parameters.Add(new NpgsqlParameter { Value = vehicle.Id });
            foreach (var command in new[] { terms, entity, other, type, attrs })
            {
                insert.BatchCommands.Add(command);
            }

            await insert.ExecuteNonQueryAsync();
        }

        var store = new PostgresEntityStore(old, NullLogger<PostgresEntityStore>.Instance);
        await using var owned = store;
        await store.InitializeAsync(CancellationToken.None);
        await using var names = store.DataSource.CreateCommand("""
            SELECT e.id, coalesce((SELECT string_agg(t.iri, ' ' ORDER BY t.iri) FROM unnest(e.attrs) a(id) JOIN terms t ON t.id = a.id), ''), to_regclass('entity_attrs') IS NULL
            FROM entities e ORDER BY e.id
            """);
        await using (var r = await names.ExecuteReaderAsync())
        {
            Assert.True(await r.ReadAsync());
            Assert.Equal(("urn:ngsi-ld:Thing:none", "", true), (r.GetString(0), r.GetString(1), r.GetBoolean(2)));
            Assert.True(await r.ReadAsync());
            Assert.Equal((vehicle.Id, string.Join(' ', vehicle.Attributes.Keys.Order(StringComparer.Ordinal))), (r.GetString(0), r.GetString(1)));
        }

        var speed = LdContext.Core.ExpandTerm("speed");
        var found = await store.QueryAsync("", new EntityQuery(new EntityFilter { Attrs = [speed] }) { Count = true }, CancellationToken.None);
        Assert.Equal([vehicle.Id], found.Entities.Select(v => v.Id));
        var catalog = await store.DescribeAsync("", new CatalogQuery(), CancellationToken.None);
        Assert.Equal(1, catalog.Attributes.Single(a => a.Name == speed).EntityCount);
        Assert.Contains(vehicle.Types[0], catalog.Attributes.Single(a => a.Name == speed).TypeNames);
    }

    [Fact]
    public async Task Entities_loaded_in_bulk_get_planner_statistics_before_autovacuum_would_take_them()
    {
        var vehicles = Enumerable.Range(0, 1_500).Select(i => Vehicle($"urn:ngsi-ld:Vehicle:bulk{i}", i % 40)).ToList();
        var results = await _store.WriteAsync("", [.. vehicles.Select(v => EntityWrite.Creating(v, EntityService.Create))], CancellationToken.None);
        Assert.All(results, Assert.Null);

        // Without the store's own ANALYZE the tables keep the statistics of empty tables until autovacuum's next
        // round (a minute or more), and a type + q query planned with them walks an index for every candidate.
        await using var data = NpgsqlDataSource.Create(_connectionString);
        await using var cmd = data.CreateCommand("""
            SELECT count(*) FROM pg_stat_user_tables
            WHERE relname IN ('entities', 'entity_types', 'entity_numbers', 'entity_strings') AND last_analyze IS NOT NULL
            """);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((long)(await cmd.ExecuteScalarAsync())! < 4)
        {
            Assert.True(DateTime.UtcNow < deadline, "the index tables were not analyzed after 1,500 entities were written");
            await Task.Delay(200);
        }

        await using var estimate = data.CreateCommand("SELECT reltuples FROM pg_class WHERE relname = 'entities'");
        Assert.Equal(1_500, (float)(await estimate.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task A_second_node_on_the_same_database_sees_the_writes_and_is_woken_by_them()
    {
        await using var other = await OpenAsync();
        var waiting = other.WaitForChangeAsync(other.LastChangeSeq, CancellationToken.None);
        var vehicle = Vehicle("urn:ngsi-ld:Vehicle:n", 10);
        await _store.WriteOneAsync("", EntityWrite.Creating(vehicle, EntityService.Create), CancellationToken.None);

        // Woken by NOTIFY, well before the backstop poll.
        await waiting.WaitAsync(TimeSpan.FromSeconds(3));
        Assert.Equal(_store.LastChangeSeq, other.LastChangeSeq);
        Assert.NotNull(await other.GetAsync("", "urn:ngsi-ld:Vehicle:n", CancellationToken.None));

        // Both nodes write the same entity at once: no update is lost.
        var writes = new List<Task>();
        for (var i = 0; i < 20; i++)
        {
            foreach (var store in new[] { _store, other })
            {
                writes.Add(store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:n", current =>
                {
                    var next = current!.Clone();
                    var speed = next.Attributes[LdContext.Core.ExpandTerm("speed")][0];
                    speed.Payload = JsonSerializer.SerializeToNode(speed.Payload.GetValue<double>() + 1)!;
                    return Mutation.Put(next);
                }, CancellationToken.None));
            }
        }

        await Task.WhenAll(writes);
        Assert.Equal(50, Speed((await _store.GetAsync("", "urn:ngsi-ld:Vehicle:n", CancellationToken.None))!));
        var changes = await other.ReadChangesAsync(0, 100, CancellationToken.None);
        Assert.Equal(41, changes.Count);
        Assert.True(changes.Zip(changes.Skip(1)).All(p => p.First.Seq < p.Second.Seq));
    }

    [Fact]
    public async Task Migrations_are_idempotent_and_two_nodes_migrating_at_once_apply_each_step_once()
    {
        var fresh = await server.CreateDatabaseAsync("migrate");
        await using var data = NpgsqlDataSource.Create(fresh);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => PostgresSchema.MigrateAsync(data, CancellationToken.None))));
        await PostgresSchema.MigrateAsync(data, CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, PostgresSchema.LatestVersion), await PostgresSchema.AppliedAsync(data, CancellationToken.None));

        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => PostgresSchema.EnsureHistoryPartitionsAsync(data, DateTimeOffset.UtcNow, 3, CancellationToken.None))));
        await using var cmd = data.CreateCommand("SELECT count(*) FROM pg_inherits WHERE inhparent = 'history'::regclass");
        Assert.Equal(4L, await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_node_starting_while_another_migrates_for_longer_than_the_command_timeout_waits_and_starts()
    {
        var fresh = await server.CreateDatabaseAsync("migrate_slow");
        var oneSecond = new NpgsqlConnectionStringBuilder(fresh) { CommandTimeout = 1 }.ConnectionString;
        await using var data = NpgsqlDataSource.Create(oneSecond);

        // The other node's migration: it holds the lock for 3 s, as a step over a large table would.
        await using var other = await data.OpenConnectionAsync();
        await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({PostgresSchema.MigrationLock})", other))
        {
            await take.ExecuteNonQueryAsync();
        }

        var migrating = Task.Run(() => PostgresSchema.MigrateAsync(data, CancellationToken.None));
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.False(migrating.IsCompleted);
        await using (var release = new NpgsqlCommand($"SELECT pg_advisory_unlock({PostgresSchema.MigrationLock})", other))
        {
            await release.ExecuteNonQueryAsync();
        }

        await migrating;
        Assert.Equal(Enumerable.Range(1, PostgresSchema.LatestVersion), await PostgresSchema.AppliedAsync(data, CancellationToken.None));
    }

    [Fact]
    public async Task Entities_stored_before_the_access_step_get_their_marks_when_it_is_applied()
    {
        var old = await server.CreateDatabaseAsync("before_access");
        await using (var data = NpgsqlDataSource.Create(old))
        {
            await PostgresSchema.MigrateAsync(data, CancellationToken.None, upTo: PostgresSchema.AccessVersion - 1);
            var reading = EntityParser.ParseEntity(JsonDocument.Parse("""
                {"id":"urn:ngsi-ld:Reading:old","type":"Reading","https://machi.city/ns/owner":{"type":"Property","value":"hanako"}}
                """).RootElement, LdContext.Core, DateTimeOffset.UtcNow);
            await using var insert = data.CreateBatch();
            var entity = new NpgsqlBatchCommand("INSERT INTO entities (tenant, id, doc) VALUES ('', $1, $2)");
            entity.Parameters.Add(new NpgsqlParameter { Value = reading.Id });
            entity.Parameters.Add(new NpgsqlParameter { Value = EntityCodec.Encode(reading) });
            var history = new NpgsqlBatchCommand("INSERT INTO history_entities (tenant, id, types, created_at, modified_at) VALUES ('', $1, '[]', 0, 0)");
            history.Parameters.Add(new NpgsqlParameter { Value = reading.Id });
            insert.BatchCommands.Add(entity);
            insert.BatchCommands.Add(history);
            await insert.ExecuteNonQueryAsync();
        }

        var store = new PostgresEntityStore(old, NullLogger<PostgresEntityStore>.Instance);
        await using var owned = store;
        await store.InitializeAsync(CancellationToken.None);
        Assert.Equal([("", "urn:ngsi-ld:Reading:old")], await store.OwnedEntitiesAsync("hanako", CancellationToken.None));
        var anonymous = new Machi.Broker.Access.AccessFilter(false, null, null, null, false, DateTimeOffset.UtcNow);
        Assert.Equal(0, (await store.QueryAsync("", new EntityQuery(new EntityFilter()) { Count = true, Access = anonymous }, CancellationToken.None)).TotalCount);
        Assert.Equal(1, (await store.QueryAsync("", new EntityQuery(new EntityFilter()) { Count = true, Access = anonymous with { Owner = "hanako" } }, CancellationToken.None)).TotalCount);
        await using var marks = store.DataSource.CreateCommand("SELECT access, owner, category FROM history_entities WHERE id = 'urn:ngsi-ld:Reading:old'");
        await using var r = await marks.ExecuteReaderAsync();
        Assert.True(await r.ReadAsync());
        Assert.Equal((short)2, r.GetInt16(0));
        Assert.Equal("hanako", r.GetString(1));
        Assert.Equal("other", r.GetString(2));
    }

    private async Task<PostgresEntityStore> OpenAsync()
    {
        var store = new PostgresEntityStore(_connectionString, NullLogger<PostgresEntityStore>.Instance);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    private static double Speed(Entity entity) => entity.Attributes[LdContext.Core.ExpandTerm("speed")][0].Payload.GetValue<double>();

    /// <summary>A vehicle with an attribute <paramref name="add"/> more, or without the attributes <paramref name="drop"/>.</summary>
    private static Entity Vehicle(string id, double speed, string? add = null, string[]? drop = null)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(NgsiHttp.Vehicle(id, speed))!.AsObject();
        if (add is not null)
        {
            json[add] = new System.Text.Json.Nodes.JsonObject { ["type"] = "Property", ["value"] = 1 };
        }

        foreach (var name in drop ?? [])
        {
            json.Remove(name);
        }

        return EntityParser.ParseEntity(JsonDocument.Parse(json.ToJsonString()).RootElement, LdContext.Core, DateTimeOffset.UtcNow);
    }
}
