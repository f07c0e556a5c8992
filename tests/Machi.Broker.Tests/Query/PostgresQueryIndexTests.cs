using System.Globalization;
using CsCheck;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Broker.Storage.Postgres;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Query;

/// <summary>
/// The PostgreSQL store answers queries through its index tables (numbers, strings, PostGIS geography, types,
/// attributes): random entities and random filters (QueryIndexTests' generators), compared with evaluating every
/// entity; paging and counting agree; discovery answers as the SQLite store does on the same data.
/// </summary>
[Collection(PostgresGroup.Name)]
public sealed class PostgresQueryIndexTests(PostgresServer server) : IAsyncLifetime
{
    private readonly List<Entity> _all = [];
    private readonly string _directory = TempDirectory.Create("machi-pgquery-");
    private PostgresEntityStore _store = null!;
    private SqliteEntityStore _sqlite = null!;

    public async Task InitializeAsync()
    {
        _store = new PostgresEntityStore(await server.CreateDatabaseAsync("query"), NullLogger<PostgresEntityStore>.Instance);
        await _store.InitializeAsync(CancellationToken.None);
        _sqlite = new SqliteEntityStore(Path.Combine(_directory, "machi.db"), NullLogger<SqliteEntityStore>.Instance);
        await _sqlite.InitializeAsync(CancellationToken.None);

        // The same data as QueryIndexTests: created, then some replaced and some deleted.
        var random = new Random(7);
        var writes = new List<EntityWrite>();
        for (var i = 0; i < 400; i++)
        {
            var entity = QueryIndexTests.Parse(QueryIndexTests.RandomEntity(random, i));
            _all.Add(entity);
            writes.Add(EntityWrite.Creating(entity, EntityService.Create));
        }

        var updates = new List<EntityWrite>();
        for (var i = 0; i < 400; i += 7)
        {
            var replacement = QueryIndexTests.Parse(QueryIndexTests.RandomEntity(random, i));
            _all[i] = replacement;
            updates.Add(new EntityWrite(replacement.Id, _ => Mutation.Put(replacement)));
        }

        for (var i = 3; i < 400; i += 50)
        {
            var id = _all[i].Id;
            updates.Add(new EntityWrite(id, _ => Mutation.Delete));
        }

        foreach (var store in new IEntityStore[] { _store, _sqlite })
        {
            Assert.All(await store.WriteAsync(string.Empty, writes, CancellationToken.None), Assert.Null);
            Assert.All(await store.WriteAsync(string.Empty, updates, CancellationToken.None), Assert.Null);
        }

        _all.RemoveAll(e => int.Parse(e.Id[(e.Id.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture) % 50 == 3);
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (_store is not null)
            {
                await _store.DisposeAsync();
            }

            if (_sqlite is not null)
            {
                await _sqlite.DisposeAsync();
            }
        }
        finally
        {
            TempDirectory.Delete(_directory);
        }
    }

    [Fact]
    public async Task Indexed_queries_find_exactly_what_evaluating_every_entity_finds() =>
        await QueryIndexTests.AnswersLikeTheEvaluatorAsync(_store, _all);

    [Fact]
    public async Task Discovery_counts_what_the_stored_entities_hold() =>
        await QueryIndexTests.DescribesLikeTheEntitiesAsync(_store, _all);

    [Fact]
    public async Task Geo_queries_use_the_gist_index_and_value_queries_the_value_tables()
    {
        // Nearest first on the lon/lat plane; by the antimeridian, on the sphere.
        var near = new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==1000", "Point", "[139.93,37.49]", null, QueryIndexTests.Expand) };
        var plan = await _store.ExplainAsync(string.Empty, new EntityQuery(near), CancellationToken.None);
        Assert.True(plan.Contains("entity_geo_plane", StringComparison.Ordinal), plan);
        var dateLine = new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==1000", "Point", "[179.999,-16.5]", null, QueryIndexTests.Expand) };
        plan = await _store.ExplainAsync(string.Empty, new EntityQuery(dateLine), CancellationToken.None);
        Assert.True(plan.Contains("entity_geo_geog", StringComparison.Ordinal) && !plan.Contains("entity_geo_plane", StringComparison.Ordinal), plan);

        var value = new EntityFilter { Q = QExpressions.Expand(QParser.Parse("num==4"), QueryIndexTests.Expand) };
        plan = await _store.ExplainAsync(string.Empty, new EntityQuery(value), CancellationToken.None);
        Assert.True(plan.Contains("entity_numbers", StringComparison.Ordinal), plan);
    }

    [Fact]
    public async Task Near_queries_come_nearest_first_and_page_through_many_entities_at_one_place()
    {
        // 600 entities at one point (more than a chunk of candidates, all at one distance) and 60 along a line away
        // from it, in a tenant of their own.
        const string tenant = "nearest";
        var writes = new List<EntityWrite>();
        for (var i = 0; i < 660; i++)
        {
            var (lon, lat) = i < 600 ? (139.93, 37.49) : (139.93 + (i - 599) * 0.0001, 37.49);
            var entity = QueryIndexTests.Parse(string.Create(
                CultureInfo.InvariantCulture,
                $$"""{"id":"urn:ngsi-ld:P:{{i}}","type":"P","location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[{{lon}},{{lat}}]} } }"""));
            writes.Add(EntityWrite.Creating(entity, EntityService.Create));
        }

        Assert.All(await _store.WriteAsync(tenant, writes, CancellationToken.None), Assert.Null);
        var near = new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==300", "Point", "[139.93,37.49]", null, QueryIndexTests.Expand) };

        // Within 300 m: the 600 at the point and the 33 of the line within 0.0034° of longitude (8.85 m a step at 37.49°N), nearest first.
        var all = await _store.QueryAsync(tenant, new EntityQuery(near) { Limit = 1000, Count = true }, CancellationToken.None);
        Assert.Equal(all.Entities.Count, all.TotalCount);
        Assert.Equal(633, all.Entities.Count);
        Assert.Equal(633, all.Entities.Select(e => e.Id).Distinct().Count());
        var along = all.Entities.Select(e => int.Parse(e.Id[(e.Id.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture)).Where(n => n >= 600).ToList();
        Assert.Equal(Enumerable.Range(600, 33), along);

        var walked = new List<string>();
        for (var offset = 0; offset < 700; offset += 100)
        {
            var page = await _store.QueryAsync(tenant, new EntityQuery(near) { Limit = 100, Offset = offset }, CancellationToken.None);
            walked.AddRange(page.Entities.Select(e => e.Id));
        }

        Assert.Equal(all.Entities.Select(e => e.Id).Order(StringComparer.Ordinal), walked.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Every_point_within_a_distance_lies_within_the_planar_bound_of_its_nearest_first_scan() =>
        Gen.Select(Gen.Double[-179, 179], Gen.Double[-79, 79], Gen.Double[1, 200_000], Gen.Double[0, 1], Gen.Double[0, 1])
            .Sample((x, y, metres, u, v) =>
            {
                if (PostgresQueryPlanner.PlaneDegrees(x, y, metres) is not { } degrees)
                {
                    // Only near a pole or the antimeridian (200 km: 10° east at 80°N) does the scan stay on the sphere.
                    Assert.True(Math.Abs(y) > 78 || Math.Abs(x) > 169, $"no bound at ({x}, {y}) for {metres} m");
                    return;
                }

                // A point of the box around the circle (the box spans the reach on the sphere at the circle's
                // farthest latitude): whenever it is within reach on the ellipsoid, it is within the bound on the plane.
                var dLat = metres / 110_574 * ((2 * u) - 1);
                var dLon = metres / (111_319 * Math.Cos(Math.Min(89, Math.Abs(y) + (metres / 110_574)) * Math.PI / 180)) * ((2 * v) - 1);
                var (lat, lon) = (y + dLat, x + dLon);
                if (Math.Abs(lon) <= 180 && GeoMath.DistanceMeters(y, x, lat, lon) <= metres)
                {
                    Assert.True(Math.Sqrt((dLat * dLat) + (dLon * dLon)) <= degrees, $"({lon}, {lat}) from ({x}, {y}) within {metres} m, bound {degrees}°");
                }
            }, iter: 20_000);

    [Fact]
    public async Task Discovery_answers_as_the_sqlite_store_does()
    {
        foreach (var (type, attribute, kinds) in new (string?, string?, bool)[] { (null, null, false), (null, null, true), ("T1", null, true), (null, "num", false), ("T4", "str", true), ("T9", null, false) })
        {
            var query = new CatalogQuery
            {
                Type = type is null ? null : QueryIndexTests.Expand(type),
                Attribute = attribute is null ? null : QueryIndexTests.Expand(attribute),
                AttributeKinds = kinds,
            };
            var expected = await _sqlite.DescribeAsync(string.Empty, query, CancellationToken.None);
            var actual = await _store.DescribeAsync(string.Empty, query, CancellationToken.None);
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(expected), System.Text.Json.JsonSerializer.Serialize(actual));
        }
    }
}
