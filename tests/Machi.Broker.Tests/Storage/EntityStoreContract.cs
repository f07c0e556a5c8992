using System.Text.Json;
using Machi.Broker.Access;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Broker.Storage.Postgres;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Storage;

/// <summary>
/// What every <see cref="IEntityStore"/> backend must do, run against each (SQLite file, real PostgreSQL): the change
/// log records every committed change in the change's own transaction, in order, durably; a batch keeps each write's
/// own outcome; values a backend cannot index exactly are still found.
/// </summary>
public abstract class EntityStoreContract : IAsyncLifetime
{
    protected IEntityStore Store { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await PrepareAsync();
        Store = await OpenAsync();
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Store is not null)
            {
                await Store.DisposeAsync();
            }
        }
        finally
        {
            await CleanupAsync();
        }
    }

    /// <summary>Creates the empty database the store opens.</summary>
    protected abstract Task PrepareAsync();

    /// <summary>Opens (again) a store on that database.</summary>
    protected abstract Task<IEntityStore> OpenAsync();

    protected virtual Task CleanupAsync() => Task.CompletedTask;

    /// <summary>The backend's consent store, on <see cref="Store"/>'s database.</summary>
    protected abstract IConsentStore Consents();

    [Fact]
    public async Task A_query_counts_and_pages_only_what_the_caller_may_see_and_a_consent_opens_one_residents_entity()
    {
        foreach (var (id, marks) in new[]
        {
            ("urn:ngsi-ld:Reading:shelter", """ "https://machi.city/ns/visibility":{"type":"Property","value":"public"} """),
            ("urn:ngsi-ld:Reading:plant", ""),
            ("urn:ngsi-ld:Reading:hanako", """ "https://machi.city/ns/owner":{"type":"Property","value":"hanako"},"https://machi.city/ns/dataCategory":{"type":"Property","value":"vitals"} """),
            ("urn:ngsi-ld:Reading:taro", """ "https://machi.city/ns/owner":{"type":"Property","value":"taro"},"https://machi.city/ns/dataCategory":{"type":"Property","value":"vitals"} """),
        })
        {
            var entity = EntityParser.ParseEntity(JsonDocument.Parse($$"""
                {"id":"{{id}}","type":"Reading","level":{"type":"Property","value":5}{{(marks.Length == 0 ? "" : "," + marks)}}}
                """).RootElement, LdContext.Core, DateTimeOffset.UtcNow);
            await Store.WriteOneAsync("", EntityWrite.Creating(entity, EntityService.Create), CancellationToken.None);
        }

        var now = DateTimeOffset.UtcNow;
        async Task<string> VisibleAsync(AccessFilter access)
        {
            var seen = new List<string>();
            foreach (var q in new[] { "", "level>0" })
            {
                var filter = new EntityFilter { Q = q.Length == 0 ? null : QExpressions.Expand(QParser.Parse(q), LdContext.Core.ExpandTerm) };
                var page = await Store.QueryAsync("", new EntityQuery(filter) { Count = true, Limit = 100, Access = access }, CancellationToken.None);
                Assert.Equal(page.Entities.Count, (int)page.TotalCount!);

                // Pages are cut from the visible entities: the last one is the last visible one.
                var last = await Store.QueryAsync("", new EntityQuery(filter) { Count = true, Limit = 1, Offset = page.Entities.Count - 1, Access = access }, CancellationToken.None);
                Assert.Equal(page.TotalCount, last.TotalCount);
                Assert.Equal(page.Entities[^1].Id, Assert.Single(last.Entities).Id);
                seen.Add(string.Join(' ', page.Entities.Select(e => e.Id["urn:ngsi-ld:Reading:".Length..]).Order(StringComparer.Ordinal)));
            }

            Assert.Equal(seen[0], seen[1]);
            return seen[0];
        }

        var anonymous = new AccessFilter(false, null, null, null, false, now);
        var clinic = new AccessFilter(true, null, "clinic", "monitoring", false, now);
        Assert.Equal("shelter", await VisibleAsync(anonymous));
        Assert.Equal("plant shelter", await VisibleAsync(anonymous with { Internal = true }));
        Assert.Equal("hanako shelter", await VisibleAsync(anonymous with { Owner = "hanako" }));
        Assert.Equal("plant shelter", await VisibleAsync(clinic));
        Assert.Equal("hanako plant shelter taro", await VisibleAsync(anonymous with { Internal = true, AllPersonal = true }));

        var consent = new Consent("urn:machi:consent:contract", "hanako", "clinic", "monitoring", ["vitals"], now.AddMinutes(-1), now.AddDays(1), "1");
        await Consents().AddAsync(consent, "{}", CancellationToken.None);
        Assert.Equal("hanako plant shelter", await VisibleAsync(clinic));
        Assert.Equal("plant shelter", await VisibleAsync(clinic with { ConsentPurpose = "marketing" }));
        Assert.Equal("plant shelter", await VisibleAsync(clinic with { Now = now.AddDays(2) }));
        Assert.Single(await Consents().ActiveAsync(now, CancellationToken.None));

        Assert.True(await Consents().RevokeAsync("hanako", consent.Id, now, "{}", CancellationToken.None));
        Assert.False(await Consents().RevokeAsync("hanako", consent.Id, now, "{}", CancellationToken.None));
        Assert.Equal("plant shelter", await VisibleAsync(clinic));
        Assert.Empty(await Consents().ActiveAsync(now, CancellationToken.None));
        Assert.Equal([("", "urn:ngsi-ld:Reading:hanako")], await Store.OwnedEntitiesAsync("hanako", CancellationToken.None));
    }

    [Fact]
    public async Task Creates_updates_and_deletes_are_logged_in_commit_order_with_both_states_and_survive_a_restart()
    {
        var waiting = Store.WaitForChangeAsync(Store.LastChangeSeq, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        var first = Vehicle("urn:ngsi-ld:Vehicle:a", 10);
        await Store.WriteOneAsync("", EntityWrite.Creating(first, EntityService.Create), CancellationToken.None);
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));

        var faster = Vehicle("urn:ngsi-ld:Vehicle:a", 20);
        await Store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:a", _ => Mutation.Put(faster), CancellationToken.None);
        await Store.WriteOneAsync("city-b", EntityWrite.Creating(Vehicle("urn:ngsi-ld:Vehicle:b", 5), EntityService.Create), CancellationToken.None);
        await Store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:a", _ => Mutation.Delete, CancellationToken.None);

        // A mutation that fails leaves nothing in the log.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:z", _ => throw new InvalidOperationException(), CancellationToken.None));

        await Store.DisposeAsync();
        Store = await OpenAsync();

        var changes = await Store.ReadChangesAsync(0, 100, CancellationToken.None);
        Assert.Equal([ChangeKind.Created, ChangeKind.Updated, ChangeKind.Created, ChangeKind.Deleted], changes.Select(c => c.Kind));
        Assert.Equal(["", "", "city-b", ""], changes.Select(c => c.Tenant));
        Assert.True(changes.Zip(changes.Skip(1)).All(p => p.First.Seq < p.Second.Seq));
        Assert.Equal(changes[^1].Seq, Store.LastChangeSeq);
        Assert.Null(changes[0].BeforeEntity());
        Assert.Equal(10, Speed(changes[1].BeforeEntity()!));
        Assert.Equal(20, Speed(changes[1].AfterEntity()!));
        Assert.Equal(20, Speed(changes[3].BeforeEntity()!));
        Assert.Null(changes[3].After);
        Assert.True(await Store.TenantExistsAsync("city-b", CancellationToken.None));
        Assert.False(await Store.TenantExistsAsync("city-c", CancellationToken.None));

        Assert.Equal(changes.Skip(2).Select(c => c.Seq), (await Store.ReadChangesAsync(changes[1].Seq, 100, CancellationToken.None)).Select(c => c.Seq));
        await Store.PruneChangesAsync(changes[1].Seq, CancellationToken.None);
        Assert.Equal(changes.Skip(2).Select(c => c.Seq), (await Store.ReadChangesAsync(0, 100, CancellationToken.None)).Select(c => c.Seq));
    }

    [Fact]
    public async Task Entities_read_back_as_written_and_a_batch_keeps_each_writes_own_outcome()
    {
        var a = Vehicle("urn:ngsi-ld:Vehicle:a", 10);
        var b = Vehicle("urn:ngsi-ld:Vehicle:b", 30);
        var results = await Store.WriteAsync("", [
            EntityWrite.Creating(a, EntityService.Create),
            new EntityWrite("urn:ngsi-ld:Vehicle:x", _ => throw new InvalidOperationException("refused")),
            EntityWrite.Creating(b, EntityService.Create),
            EntityWrite.Creating(a, EntityService.Create),
        ], CancellationToken.None);

        Assert.Null(results[0]);
        Assert.IsType<InvalidOperationException>(results[1]);
        Assert.Null(results[2]);
        Assert.NotNull(results[3]);
        Assert.Equal(10, Speed((await Store.GetAsync("", "urn:ngsi-ld:Vehicle:a", CancellationToken.None))!));
        Assert.Null(await Store.GetAsync("", "urn:ngsi-ld:Vehicle:x", CancellationToken.None));
        Assert.Null(await Store.GetAsync("other", "urn:ngsi-ld:Vehicle:a", CancellationToken.None));
        Assert.Equal(2, await Store.CountAsync(CancellationToken.None));
        Assert.True(await Store.PingAsync(CancellationToken.None));

        var catalog = await Store.DescribeAsync("", new CatalogQuery { AttributeKinds = true }, CancellationToken.None);
        var type = Assert.Single(catalog.Types);
        Assert.Equal(2, type.EntityCount);
        Assert.Contains(catalog.Attributes, attr => attr.Name == LdContext.Core.ExpandTerm("speed") && attr.EntityCount == 2);
    }

    [Fact]
    public async Task Values_postgresql_cannot_index_exactly_areStored_and_still_found()
    {
        var longText = new string('x', 300);
        var json = """
            {"id": "urn:ngsi-ld:T:odd", "type": "T",
             "long": {"type": "Property", "value": "LONG"},
             "nul": {"type": "Property", "value": "a\u0000b"},
             "far": {"type": "GeoProperty", "value": {"type": "LineString", "coordinates": [[170, 10], [-170, 10]]}}}
            """.Replace("LONG", longText + "b", StringComparison.Ordinal);
        var entity = EntityParser.ParseEntity(JsonDocument.Parse(json).RootElement, LdContext.Core, DateTimeOffset.UtcNow);
        await Store.WriteOneAsync("", EntityWrite.Creating(entity, EntityService.Create), CancellationToken.None);

        async Task<int> CountAsync(string q, GeoQuery? geo = null)
        {
            var filter = new EntityFilter { Q = q.Length == 0 ? null : QExpressions.Expand(QParser.Parse(q), LdContext.Core.ExpandTerm), Geo = geo };
            var page = await Store.QueryAsync("", new EntityQuery(filter) { Count = true }, CancellationToken.None);
            Assert.Equal(page.Entities.Count, (int)page.TotalCount!);
            return page.Entities.Count;
        }

        Assert.Equal(1, await CountAsync($"long==\"{longText}b\""));
        Assert.Equal(0, await CountAsync($"long==\"{longText}a\""));
        Assert.Equal(1, await CountAsync($"long>\"{longText}a\""));
        Assert.Equal(0, await CountAsync($"long<\"{longText}a\""));
        Assert.Equal(1, await CountAsync("nul>\"a\""));

        // A line across the antimeridian is, to the evaluator, the straight line the long way round (through 0°).
        var crossing = GeoQuery.Parse("intersects", "Polygon", "[[[-1,9],[1,9],[1,11],[-1,11],[-1,9]]]", "far", LdContext.Core.ExpandTerm);
        Assert.Equal(1, await CountAsync("", crossing));
    }


    [Fact]
    public async Task One_batch_may_create_update_delete_and_recreate_an_entity_and_the_indexes_follow()
    {
        var first = Vehicle("urn:ngsi-ld:Vehicle:r", 10);
        var faster = Vehicle("urn:ngsi-ld:Vehicle:r", 20);
        var again = Vehicle("urn:ngsi-ld:Vehicle:r", 30);
        var brief = Vehicle("urn:ngsi-ld:Vehicle:brief", 25);
        var after = Store.LastChangeSeq;
        var results = await Store.WriteAsync("", [
            EntityWrite.Creating(first, EntityService.Create),
            EntityWrite.Creating(brief, EntityService.Create),
            new EntityWrite(first.Id, _ => Mutation.Put(faster)),
            new EntityWrite(first.Id, _ => Mutation.Delete),
            new EntityWrite(brief.Id, _ => Mutation.Delete),
            EntityWrite.Creating(again, EntityService.Create),
        ], CancellationToken.None);

        Assert.All(results, Assert.Null);
        Assert.Equal(30, Speed((await Store.GetAsync("", first.Id, CancellationToken.None))!));
        Assert.Null(await Store.GetAsync("", brief.Id, CancellationToken.None));
        var changes = await Store.ReadChangesAsync(after, 10, CancellationToken.None);
        Assert.Equal([ChangeKind.Created, ChangeKind.Created, ChangeKind.Updated, ChangeKind.Deleted, ChangeKind.Deleted, ChangeKind.Created], changes.Select(c => c.Kind));
        Assert.Equal([first.Id, brief.Id, first.Id, first.Id, brief.Id, first.Id], changes.Select(c => c.EntityId));
        Assert.Equal(20, Speed(changes[3].BeforeEntity()!));
        foreach (var q in new[] { "speed==30", "speed>25", "speed" })
        {
            var filter = new EntityFilter { Q = QExpressions.Expand(QParser.Parse(q), LdContext.Core.ExpandTerm) };
            var page = await Store.QueryAsync("", new EntityQuery(filter) { Count = true }, CancellationToken.None);
            Assert.Equal(1, page.TotalCount);
        }

        var old = new EntityFilter { Q = QExpressions.Expand(QParser.Parse("speed==20"), LdContext.Core.ExpandTerm) };
        Assert.Empty((await Store.QueryAsync("", new EntityQuery(old), CancellationToken.None)).Entities);
    }

    private static double Speed(Entity entity) => entity.Attributes[LdContext.Core.ExpandTerm("speed")][0].Payload.GetValue<double>();

    private static Entity Vehicle(string id, double speed) => EntityParser.ParseEntity(
        JsonDocument.Parse(NgsiHttp.Vehicle(id, speed)).RootElement, LdContext.Core, DateTimeOffset.UtcNow);
}

public sealed class SqliteEntityStoreContractTests : EntityStoreContract
{
    private readonly string _directory = TempDirectory.Create("machi-changes-");

    protected override Task PrepareAsync() => Task.CompletedTask;

    protected override async Task<IEntityStore> OpenAsync()
    {
        var store = new SqliteEntityStore(Path.Combine(_directory, "machi.db"), NullLogger<SqliteEntityStore>.Instance);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override IConsentStore Consents() => new SqliteConsentStore((SqliteEntityStore)Store);

    protected override Task CleanupAsync()
    {
        TempDirectory.Delete(_directory);
        return Task.CompletedTask;
    }
}

[Collection(PostgresGroup.Name)]
public sealed class PostgresEntityStoreContractTests(PostgresServer server) : EntityStoreContract
{
    private string _connectionString = null!;

    protected override async Task PrepareAsync() => _connectionString = await server.CreateDatabaseAsync("contract");

    protected override async Task<IEntityStore> OpenAsync()
    {
        var store = new PostgresEntityStore(_connectionString, NullLogger<PostgresEntityStore>.Instance);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override IConsentStore Consents() => new PostgresConsentStore((PostgresEntityStore)Store);
}
