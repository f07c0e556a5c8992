using System.Globalization;
using System.Text.Json;
using Machi.Broker.Access;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Query;

/// <summary>
/// The SQLite store answers queries through its indexes (types in the database, attribute names, values and places
/// in memory): these tests check that the indexes never lose an entity the evaluator would match (random entities,
/// random queries, compared with evaluating every entity, also after a restart rebuilt the in-memory ones), that
/// paging and counting agree, that discovery counts what the entities hold, and that indexable queries never scan
/// the table.
/// </summary>
public sealed class QueryIndexTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 9, 0, 0, TimeSpan.Zero);
    private readonly string _directory = TempDirectory.Create("machi-query-");
    private readonly List<Entity> _all = [];
    private SqliteEntityStore _store = null!;

    public async Task InitializeAsync()
    {
        _store = new SqliteEntityStore(Path.Combine(_directory, "machi.db"), NullLogger<SqliteEntityStore>.Instance);
        await _store.InitializeAsync(CancellationToken.None);
        var random = new Random(7);
        var writes = new List<EntityWrite>();
        for (var i = 0; i < 400; i++)
        {
            var entity = Parse(RandomEntity(random, i));
            _all.Add(entity);
            writes.Add(EntityWrite.Creating(entity, EntityService.Create));
        }

        var results = await _store.WriteAsync(string.Empty, writes, CancellationToken.None);
        Assert.All(results, Assert.Null);

        // Change some entities afterwards so index rows are also removed and replaced, not only added.
        var updates = new List<EntityWrite>();
        for (var i = 0; i < 400; i += 7)
        {
            var replacement = Parse(RandomEntity(random, i));
            _all[i] = replacement;
            updates.Add(new EntityWrite(replacement.Id, _ => Mutation.Put(replacement)));
        }

        for (var i = 3; i < 400; i += 50)
        {
            var id = _all[i].Id;
            updates.Add(new EntityWrite(id, _ => Mutation.Delete));
        }

        Assert.All(await _store.WriteAsync(string.Empty, updates, CancellationToken.None), Assert.Null);
        _all.RemoveAll(e => int.Parse(e.Id[(e.Id.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture) % 50 == 3);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        TempDirectory.Delete(_directory);
    }

    [Fact]
    public async Task Indexed_queries_find_exactly_what_evaluating_every_entity_finds()
        => await AnswersLikeTheEvaluatorAsync(_store, _all);

    [Fact]
    public async Task Indexed_queries_find_the_same_after_a_restart_rebuilt_the_in_memory_indexes()
    {
        await _store.DisposeAsync();
        _store = new SqliteEntityStore(Path.Combine(_directory, "machi.db"), NullLogger<SqliteEntityStore>.Instance);
        await _store.InitializeAsync(CancellationToken.None);
        await AnswersLikeTheEvaluatorAsync(_store, _all);
    }

    [Fact]
    public async Task Discovery_counts_what_the_stored_entities_hold_also_after_a_restart_rebuilt_the_in_memory_names()
    {
        await DescribesLikeTheEntitiesAsync(_store, _all);
        await _store.DisposeAsync();
        _store = new SqliteEntityStore(Path.Combine(_directory, "machi.db"), NullLogger<SqliteEntityStore>.Instance);
        await _store.InitializeAsync(CancellationToken.None);
        await DescribesLikeTheEntitiesAsync(_store, _all);
    }

    /// <summary>
    /// Discovery (types and attributes with their counts and each other's names), unscoped, scoped to each type and to
    /// each attribute name, equals what counting over <paramref name="all"/> gives. Every backend's store must pass it.
    /// </summary>
    internal static async Task DescribesLikeTheEntitiesAsync(IEntityStore store, List<Entity> all)
    {
        var types = all.SelectMany(e => e.Types).Distinct().Order(StringComparer.Ordinal).ToList();
        var names = all.SelectMany(e => e.Attributes.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(types);
        Assert.True(names.Count > 3);
        var scopes = new List<CatalogQuery> { new() };
        scopes.AddRange(types.Select(t => new CatalogQuery { Type = t }));
        scopes.AddRange(names.Select(n => new CatalogQuery { Attribute = n }));
        scopes.Add(new CatalogQuery { Type = types[0], Attribute = names[0] });
        foreach (var scope in scopes)
        {
            var inScope = all.Where(e => (scope.Type is null || e.Types.Contains(scope.Type)) && (scope.Attribute is null || e.Attributes.ContainsKey(scope.Attribute))).ToList();
            var expectedTypes = inScope.SelectMany(e => e.Types).Distinct().Where(t => scope.Type is null || t == scope.Type).Order(StringComparer.Ordinal)
                .Select(t => Line(t, inScope.Count(e => e.Types.Contains(t)),
                    inScope.Where(e => e.Types.Contains(t)).SelectMany(e => e.Attributes.Keys).Where(n => scope.Attribute is null || n == scope.Attribute)));
            var expectedNames = inScope.SelectMany(e => e.Attributes.Keys).Distinct().Where(n => scope.Attribute is null || n == scope.Attribute).Order(StringComparer.Ordinal)
                .Select(n => Line(n, inScope.Count(e => e.Attributes.ContainsKey(n)),
                    inScope.Where(e => e.Attributes.ContainsKey(n)).SelectMany(e => e.Types).Where(t => scope.Type is null || t == scope.Type)));

            var catalog = await store.DescribeAsync(string.Empty, scope, CancellationToken.None);
            var what = $"discovery with type {scope.Type} and attribute {scope.Attribute}";
            Assert.True(expectedTypes.SequenceEqual(catalog.Types.Select(t => Line(t.Type, t.EntityCount, t.AttributeNames))),
                $"{what}: types expected [{string.Join(", ", expectedTypes)}], found [{string.Join(", ", catalog.Types.Select(t => Line(t.Type, t.EntityCount, t.AttributeNames)))}]");
            Assert.True(expectedNames.SequenceEqual(catalog.Attributes.Select(a => Line(a.Name, a.EntityCount, a.TypeNames))),
                $"{what}: attributes expected [{string.Join(", ", expectedNames)}], found [{string.Join(", ", catalog.Attributes.Select(a => Line(a.Name, a.EntityCount, a.TypeNames)))}]");
        }

        static string Line(string name, long count, IEnumerable<string> others) =>
            $"{name} {count} ({string.Join(' ', others.Distinct().Order(StringComparer.Ordinal))})";
    }

    /// <summary>
    /// 400 random filters: the store finds exactly the entities the evaluator accepts among <paramref name="all"/>, in
    /// its driving index's order (storage, value or R*Tree order — the set is exact), counts them, and pages through
    /// that order without gaps or repeats. Every backend's store must pass it.
    /// </summary>
    internal static async Task AnswersLikeTheEvaluatorAsync(IEntityStore store, List<Entity> all)
    {
        var random = new Random(11);
        for (var n = 0; n < 400; n++)
        {
            var (filter, text) = RandomFilter(random);
            var expected = all.Where(filter.Matches).Select(e => e.Id).ToList();
            var page = await store.QueryAsync(string.Empty, new EntityQuery(filter) { Limit = 1000, Count = true }, CancellationToken.None);
            var actual = page.Entities.Select(e => e.Id).ToList();
            Assert.True(
                expected.Order(StringComparer.Ordinal).SequenceEqual(actual.Order(StringComparer.Ordinal)),
                $"query {text}: expected [{string.Join(' ', expected)}] but the store answered [{string.Join(' ', actual)}]");
            Assert.Equal(expected.Count, page.TotalCount);

            var walked = new List<string>();
            for (var offset = 0; offset < expected.Count + 5; offset += 5)
            {
                var slice = await store.QueryAsync(string.Empty, new EntityQuery(filter) { Limit = 5, Offset = offset }, CancellationToken.None);
                walked.AddRange(slice.Entities.Select(e => e.Id));
            }

            Assert.Equal(actual, walked);
        }
    }

    [Theory]
    [InlineData("type=T1", "q=num==4")]
    [InlineData("type=T2", "q=str==\"b\"")]
    [InlineData(null, "q=num>5;num<9")]
    [InlineData(null, "q=when>2025-01-03T00:00:00Z")]
    [InlineData("type=T1,T2", "q=num==2..7")]
    [InlineData(null, "near")]
    [InlineData(null, "within")]
    [InlineData(null, "ids")]
    [InlineData("type=T3", null)]
    [InlineData("type=T1", "q=num==4", "owner")]
    [InlineData("type=T2", "q=str==\"b\"", "consent")]
    [InlineData(null, "near", "consent")]
    [InlineData("type=T3", null, "consent")]
    public void Indexable_queries_do_not_scan_the_entities_table(string? type, string? what, string? caller = null)
    {
        var filter = new EntityFilter
        {
            Selectors = what == "ids"
                ? [new EntitySelector(["urn:ngsi-ld:T:1", "urn:ngsi-ld:T:2"], null, null)]
                : type is null ? null : [new EntitySelector(null, null, TypeExpression.Parse(type[5..]).Expand(Expand))],
            Q = what?.StartsWith("q=", StringComparison.Ordinal) == true ? QExpressions.Expand(QParser.Parse(what[2..]), Expand) : null,
            Geo = what switch
            {
                "near" => GeoQuery.Parse("near;maxDistance==1000", "Point", "[139.93,37.49]", null, Expand),
                "within" => GeoQuery.Parse("within", "Polygon", "[[[139.92,37.48],[139.94,37.48],[139.94,37.50],[139.92,37.50],[139.92,37.48]]]", null, Expand),
                _ => null,
            },
        };
        // A resident's own data, or a service's under consent: the access rule is a condition on the rows found, never a scan.
        var access = caller switch
        {
            "owner" => new AccessFilter(true, "resident-1", null, null, false, DateTimeOffset.UtcNow),
            "consent" => new AccessFilter(true, null, "clinic", "monitoring", false, DateTimeOffset.UtcNow),
            _ => null,
        };
        var plan = _store.Explain(string.Empty, new EntityQuery(filter) { Access = access });
        Assert.DoesNotContain(plan, line => line == "SCAN e" || line.StartsWith("SCAN e ", StringComparison.Ordinal) || line.StartsWith("SCAN entities", StringComparison.Ordinal)
            || line.Contains("USING INDEX sqlite_autoindex_entities_1 (tenant=?)", StringComparison.Ordinal));
        Assert.Contains(plan, line => line.Contains("USING INTEGER PRIMARY KEY", StringComparison.Ordinal));
        if (caller == "consent")
        {
            // The consent is found by index in consent_grants for each row, within the same statement.
            Assert.Contains(plan, line => line.StartsWith("SEARCH g USING ", StringComparison.Ordinal));
        }
        if (what is "near" or "within" || what?.StartsWith("q=", StringComparison.Ordinal) == true)
        {
            // The in-memory index's candidates drive, bound as a JSON array of rids.
            Assert.Contains(plan, line => line.StartsWith("SCAN d VIRTUAL TABLE INDEX", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Index_rows_are_those_of_the_stored_entities_after_one_transaction_creates_replaces_deletes_and_recreates_them()
    {
        // The writer inserts a transaction's new entities' index rows together at its end: a later write of the same
        // transaction to such an entity must still find them, or a replaced value's row would stay behind.
        var random = new Random(11);
        var created = Enumerable.Range(1000, 40).Select(i => Parse(RandomEntity(random, i))).ToList();
        var writes = created.ConvertAll(e => EntityWrite.Creating(e, EntityService.Create));
        for (var i = 0; i < created.Count; i += 3)
        {
            var replacement = Parse(RandomEntity(random, 1000 + i));
            writes.Add(new EntityWrite(replacement.Id, _ => Mutation.Put(replacement)));
        }

        for (var i = 1; i < created.Count; i += 5)
        {
            writes.Add(new EntityWrite(created[i].Id, _ => Mutation.Delete));
        }

        var again = Parse(RandomEntity(random, 1001));
        writes.Add(EntityWrite.Creating(again, EntityService.Create));
        Assert.All(await _store.WriteAsync(string.Empty, writes, CancellationToken.None), Assert.Null);

        var stored = 0;
        foreach (var entity in created)
        {
            if (await _store.GetAsync(string.Empty, entity.Id, CancellationToken.None) is not { } current)
            {
                continue;
            }

            stored++;
            Assert.Equal(ExpectedIndexRows(current), IndexRows(_store, entity.Id));
        }

        Assert.Equal(40 - 8 + 1, stored);
        Assert.Equal(0L, _store.Read(c => SqliteEntityStore.Scalar(c, "SELECT count(*) FROM entity_types WHERE rid NOT IN (SELECT rid FROM entities)")));

        // The deleted entities' names, values and places are gone from memory too.
        var stillThere = _store.Read(c => Rids(c, "SELECT rid FROM entities")).ToHashSet();
        for (var rid = 1L; rid <= stillThere.Max() + 50; rid++)
        {
            if (!stillThere.Contains(rid))
            {
                var (values, boxes, names) = _store.MemoryIndexEntries(string.Empty, rid);
                Assert.True(values.Count + boxes.Count + names.Count == 0,
                    $"rid {rid} has no entity but {names.Count} names, {values.Count} values and {boxes.Count} boxes in memory");
            }
        }
    }

    [Fact]
    public async Task A_write_that_fails_after_naming_new_attributes_leaves_the_next_writes_index_rows_right()
    {
        // The refused entity names new attributes (numbered as terms) before its geo slots are checked; the writer's
        // term caches must not give the entities after it ids that do not match the terms table.
        var geo = string.Join(",", Enumerable.Range(0, SqliteEntityStore.GeoSlotsPerEntity + 1)
            .Select(i => "\"where" + i.ToString(CultureInfo.InvariantCulture) + "\":{\"type\":\"GeoProperty\",\"value\":{\"type\":\"Point\",\"coordinates\":[139.9,37.5]}}"));
        var refused = Parse("""{"id":"urn:ngsi-ld:X:refused","type":"FreshType","freshName":{"type":"Property","value":7},""" + geo + "}");
        var later = Parse("""{"id":"urn:ngsi-ld:X:later","type":"FreshType","freshName":{"type":"Property","value":8},"where0":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9,37.5]}}}""");
        var results = await _store.WriteAsync(string.Empty,
            [EntityWrite.Creating(refused, EntityService.Create), EntityWrite.Creating(later, EntityService.Create)], CancellationToken.None);

        Assert.NotNull(results[0]);
        Assert.Null(results[1]);
        var stored = await _store.GetAsync(string.Empty, later.Id, CancellationToken.None);
        Assert.Equal(ExpectedIndexRows(stored!), IndexRows(_store, later.Id));
    }

    private static List<string> ExpectedIndexRows(Entity entity)
    {
        var rows = entity.Types.Distinct().Select(t => "type " + t).ToList();
        rows.AddRange(entity.Attributes.Keys.Select(name => "attr " + name));
        rows.AddRange(EntityIndexRows.Values(entity).Select(v => IndexRow(v.Attribute, v.Kind == IndexedValueKind.Instant, IndexValue.Of(v.Value).Boxed)));
        rows.AddRange(EntityIndexRows.Boxes(entity).Select((_, i) => "geo " + i.ToString(CultureInfo.InvariantCulture)));
        rows.Sort(StringComparer.Ordinal);
        return rows;
    }

    /// <summary>The index rows of an entity: types from the database, names, values and places from memory.</summary>
    private static List<string> IndexRows(SqliteEntityStore store, string id)
    {
        var rid = store.Read(c => SqliteEntityStore.Scalar(c, $"SELECT rid FROM entities WHERE id = '{id}'"));
        var rows = store.Read(c =>
        {
            var found = new List<string>();
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"""
                SELECT 'type', t.iri FROM entity_types x JOIN terms t ON t.id = x.type WHERE x.rid = {rid}
                """;
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                found.Add(r.GetString(0) + " " + r.GetString(1));
            }

            return found;
        });
        var (values, boxes, names) = store.MemoryIndexEntries(string.Empty, rid);
        rows.AddRange(names.Select(name => "attr " + store.Read(c => Text(c, $"SELECT iri FROM terms WHERE id = {name}"))));
        foreach (var (attr, value) in values)
        {
            var iri = store.Read(c => Text(c, $"SELECT iri FROM terms WHERE id = {Math.Abs(attr)}"));
            rows.Add(IndexRow(iri, attr < 0, value));
        }

        rows.AddRange(boxes.Select(box => "geo " + (box - (rid * SqliteEntityStore.GeoSlotsPerEntity)).ToString(CultureInfo.InvariantCulture)));
        rows.Sort(StringComparer.Ordinal);
        return rows;
    }

    private static string Text(Microsoft.Data.Sqlite.SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        return (string)cmd.ExecuteScalar()!;
    }

    private static List<long> Rids(Microsoft.Data.Sqlite.SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        using var r = cmd.ExecuteReader();
        var rids = new List<long>();
        while (r.Read())
        {
            rids.Add(r.GetInt64(0));
        }

        return rids;
    }

    private static string IndexRow(string attribute, bool instant, object value) =>
        $"{(instant ? "instant" : "value")} {attribute} {value.GetType().Name} {(value is double d ? F(d) : Convert.ToString(value, CultureInfo.InvariantCulture))}";

    [Fact]
    public void A_type_and_q_query_checks_the_type_before_it_reads_the_entity_row()
    {
        // The value index drives; the type is probed on the candidate's rid from that index, so a candidate of
        // another type never costs a read of its (large) entity row.
        var filter = new EntityFilter
        {
            Selectors = [new EntitySelector(null, null, TypeExpression.Parse("T1").Expand(Expand))],
            Q = QExpressions.Expand(QParser.Parse("str==\"b\""), Expand),
        };
        var plan = _store.Explain(string.Empty, new EntityQuery(filter)).ToList();
        var typeProbe = plan.FindIndex(line => line.StartsWith("SEARCH x ", StringComparison.Ordinal) || line.StartsWith("CORRELATED SCALAR SUBQUERY", StringComparison.Ordinal));
        var entityRow = plan.FindIndex(line => line.StartsWith("SEARCH e USING INTEGER PRIMARY KEY", StringComparison.Ordinal));
        Assert.True(typeProbe >= 0 && entityRow > typeProbe, "plan: " + string.Join(" / ", plan));
    }

    internal static string Expand(string term) => LdContext.Core.ExpandTerm(term);

    internal static Entity Parse(string json) => EntityParser.ParseEntity(JsonDocument.Parse(json).RootElement, LdContext.Core, Now);

    private static readonly string[] Strings = ["a", "b", "c", "会津", "b2", "\uFF03", "😀"];

    internal static string RandomEntity(Random r, int i)
    {
        var attributes = new List<string>();
        if (r.Next(5) > 0)
        {
            var value = r.Next(3) == 0 ? (r.Next(100) / 10.0).ToString("R", CultureInfo.InvariantCulture) : r.Next(10).ToString(CultureInfo.InvariantCulture);
            attributes.Add($$"""
                "num": {"type": "Property", "value": {{value}}}
                """);
            if (r.Next(4) == 0)
            {
                attributes[^1] = $$"""
                    "num": [{"type": "Property", "value": {{value}}}, {"type": "Property", "value": {{r.Next(10)}}, "datasetId": "urn:ngsi-ld:Dataset:d"}]
                    """;
            }
        }

        if (r.Next(5) > 0)
        {
            attributes.Add($$"""
                "str": {"type": "Property", "value": "{{Strings[r.Next(Strings.Length)]}}"}
                """);
        }

        if (r.Next(3) == 0)
        {
            attributes.Add($$"""
                "flag": {"type": "Property", "value": {{(r.Next(2) == 0 ? "true" : "false")}}}
                """);
        }

        if (r.Next(3) > 0)
        {
            var offset = r.Next(2) == 0 ? "Z" : "+09:00";
            attributes.Add($$"""
                "when": {"type": "Property", "value": "2025-01-0{{r.Next(1, 6)}}T0{{r.Next(10)}}:00:00{{offset}}"}
                """);
        }

        if (r.Next(3) == 0)
        {
            attributes.Add($$"""
                "rel": {"type": "Relationship", "object": "urn:ngsi-ld:X:{{r.Next(4)}}"}
                """);
        }

        if (r.Next(3) == 0)
        {
            attributes.Add($$"""
                "tags": {"type": "Property", "value": ["{{Strings[r.Next(Strings.Length)]}}", "{{Strings[r.Next(Strings.Length)]}}"]}
                """);
        }

        if (r.Next(3) == 0)
        {
            attributes.Add($$"""
                "cat": {"type": "VocabProperty", "vocab": "w{{r.Next(3)}}"}
                """);
        }

        if (r.Next(4) == 0)
        {
            attributes.Add($$$"""
                "label": {"type": "LanguageProperty", "languageMap": {"ja": "{{{Strings[r.Next(Strings.Length)]}}}", "en": "{{{Strings[r.Next(Strings.Length)]}}}"} }
                """);
        }

        if (r.Next(5) > 0)
        {
            var lon = 139.90 + (r.NextDouble() * 0.06);
            var lat = 37.47 + (r.NextDouble() * 0.04);
            attributes.Add(r.Next(6) == 0
                ? $$$"""
                    "location": {"type": "GeoProperty", "value": {"type": "LineString", "coordinates": [[{{{F(lon)}}}, {{{F(lat)}}}], [{{{F(lon + 0.005)}}}, {{{F(lat + 0.003)}}}]]} }
                    """
                : $$$"""
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [{{{F(lon)}}}, {{{F(lat)}}}]} }
                    """);
        }

        var types = r.Next(5) == 0 ? $"[\"T{r.Next(1, 4)}\", \"T4\"]" : $"\"T{r.Next(1, 4)}\"";
        return $$"""
            {"id": "urn:ngsi-ld:T:{{i}}", "type": {{types}}{{(attributes.Count > 0 ? ", " : "")}}{{string.Join(", ", attributes)}}}
            """;
    }

    private static string F(double d) => d.ToString("R", CultureInfo.InvariantCulture);

    internal static (EntityFilter Filter, string Text) RandomFilter(Random r)
    {
        string[] comparisons =
        [
            $"num=={r.Next(10)}", $"num>{r.Next(10)}", $"num<={r.Next(100) / 10.0}", $"num=={r.Next(5)}..{r.Next(5, 10)}", $"num=={r.Next(10)},{r.Next(10)}",
            $"num!={r.Next(10)}", "num", "!num", $"str==\"{Strings[r.Next(Strings.Length)]}\"", $"str>\"{Strings[r.Next(Strings.Length)]}\"",
            $"str==\"a\",\"c\"", "str~=b.*", "flag==true", "flag==false", $"when>2025-01-0{r.Next(1, 6)}T03:00:00Z",
            $"when==2025-01-0{r.Next(1, 6)}T00:00:00Z..2025-01-0{r.Next(1, 6)}T12:00:00Z", $"rel==urn:ngsi-ld:X:{r.Next(4)}",
            $"tags==\"{Strings[r.Next(Strings.Length)]}\"", $"label==\"{Strings[r.Next(Strings.Length)]}\"", "num.observedAt", "nothere==1", $"cat==\"w{r.Next(3)}\"", $"str<\"{Strings[r.Next(Strings.Length)]}\"",
        ];
        var terms = Enumerable.Range(0, r.Next(1, 4)).Select(_ => comparisons[r.Next(comparisons.Length)]).ToList();
        var q = r.Next(3) == 0 ? string.Join('|', terms) : string.Join(';', terms);
        var useQ = r.Next(5) > 0;
        var type = r.Next(3) switch
        {
            0 => null,
            1 => $"T{r.Next(1, 5)}",
            _ => $"(T{r.Next(1, 5)};T4)|T{r.Next(1, 5)}",
        };
        GeoQuery? geo = null;
        var geoText = string.Empty;
        if (r.Next(3) == 0)
        {
            var lon = F(139.90 + (r.NextDouble() * 0.06));
            var lat = F(37.47 + (r.NextDouble() * 0.04));
            (geo, geoText) = r.Next(3) switch
            {
                0 => (GeoQuery.Parse($"near;maxDistance=={r.Next(100, 3000)}", "Point", $"[{lon},{lat}]", null, Expand), $"near {lon},{lat}"),
                1 => (GeoQuery.Parse("within", "Polygon", $"[[[139.9,37.47],[{lon},37.47],[{lon},{lat}],[139.9,{lat}],[139.9,37.47]]]", null, Expand), $"within {lon},{lat}"),
                _ => (GeoQuery.Parse("intersects", "Polygon", $"[[[{lon},{lat}],[139.96,{lat}],[139.96,37.51],[{lon},37.51],[{lon},{lat}]]]", null, Expand), $"intersects {lon},{lat}"),
            };
        }

        var ids = r.Next(6) == 0 ? Enumerable.Range(0, 5).Select(_ => $"urn:ngsi-ld:T:{r.Next(400)}").ToList() : null;
        var attrs = r.Next(6) == 0 ? new List<string> { Expand(r.Next(2) == 0 ? "tags" : "rel") } : null;
        if (!useQ && type is null && geo is null && ids is null && attrs is null)
        {
            useQ = true;
        }

        var filter = new EntityFilter
        {
            Selectors = type is null && ids is null ? null : [new EntitySelector(ids, null, type is null ? null : TypeExpression.Parse(type).Expand(Expand))],
            Attrs = attrs,
            Q = useQ ? QExpressions.Expand(QParser.Parse(q), Expand) : null,
            Geo = geo,
        };
        return (filter, $"type={type} ids={ids?.Count} attrs={attrs?.Count} q={(useQ ? q : null)} geo={geoText}");
    }
}
