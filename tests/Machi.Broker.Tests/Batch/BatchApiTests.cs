using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Batch;

public abstract class BatchApiTests(Backend backend) : IAsyncLifetime
{
    private const string Ops = "/ngsi-ld/v1/entityOperations/";
    private MachiServer _server = null!;
    private HttpClient Client => _server.Client;

    public async Task InitializeAsync() => _server = await backend.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<double?> SpeedOf(string id)
    {
        var response = await Client.GetAsync($"{NgsiHttp.Entities}/{id}?options=keyValues");
        return response.StatusCode == HttpStatusCode.OK ? (await response.ReadJson())["speed"]?.GetValue<double>() : null;
    }

    [Fact]
    public async Task Create_returns_the_created_ids_and_reports_each_failure_on_its_own()
    {
        var ok = await Client.PostJson(Ops + "create", $"[{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:b1")},{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:b2")}]");
        Assert.Equal(HttpStatusCode.Created, ok.StatusCode);
        Assert.Equal(["urn:ngsi-ld:Vehicle:b1", "urn:ngsi-ld:Vehicle:b2"], (await ok.ReadJson()).AsArray().Select(i => i!.GetValue<string>()));

        var mixed = await Client.PostJson(Ops + "create", $$"""[{{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:b1")}},{{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:b3")}},{"id":"bad id","type":"Vehicle"},{"id":"urn:ngsi-ld:Vehicle:b4"}]""");
        Assert.Equal((HttpStatusCode)207, mixed.StatusCode);
        var result = await mixed.ReadJson();
        Assert.Equal(["urn:ngsi-ld:Vehicle:b3"], result["success"]!.AsArray().Select(i => i!.GetValue<string>()));
        var errors = result["errors"]!.AsArray();
        Assert.Equal(3, errors.Count);
        Assert.Equal("https://uri.etsi.org/ngsi-ld/errors/AlreadyExists", errors.Single(e => e!["entityId"]!.GetValue<string>() == "urn:ngsi-ld:Vehicle:b1")!["error"]!["type"]!.GetValue<string>());
        Assert.All(errors, e => Assert.NotNull(e!["error"]!["detail"]));
        Assert.Equal(10, await SpeedOf("urn:ngsi-ld:Vehicle:b3"));
        Assert.Null(await SpeedOf("urn:ngsi-ld:Vehicle:b4"));
    }

    [Fact]
    public async Task Upsert_creates_then_replaces_or_with_update_appends()
    {
        var first = await Client.PostJson(Ops + "upsert", $"[{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:u1", 1)}]");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal("urn:ngsi-ld:Vehicle:u1", (await first.ReadJson())[0]!.GetValue<string>());

        var replace = await Client.PostJson(Ops + "upsert", """[{"id":"urn:ngsi-ld:Vehicle:u1","type":"Vehicle","speed":2}]""");
        Assert.Equal(HttpStatusCode.NoContent, replace.StatusCode);
        var replaced = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:u1?options=keyValues")).ReadJson();
        Assert.Equal(2, replaced["speed"]!.GetValue<double>());
        Assert.Null(replaced["name"]);

        var update = await Client.PostJson(Ops + "upsert?options=update", """[{"id":"urn:ngsi-ld:Vehicle:u1","type":"Vehicle","heading":90},{"id":"urn:ngsi-ld:Vehicle:u2","type":"Vehicle","speed":5}]""");
        Assert.Equal(HttpStatusCode.Created, update.StatusCode);
        Assert.Equal(["urn:ngsi-ld:Vehicle:u2"], (await update.ReadJson()).AsArray().Select(i => i!.GetValue<string>()));
        var appended = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:u1?options=keyValues")).ReadJson();
        Assert.Equal(2, appended["speed"]!.GetValue<double>());
        Assert.Equal(90, appended["heading"]!.GetValue<double>());
    }

    /// <summary>
    /// A batch is written in runs of 128 as its body is parsed: the outcome of every entity, the order of writes to one
    /// id and the ids listed as created hold across runs as within one.
    /// </summary>
    [Fact]
    public async Task A_batch_of_several_runs_keeps_each_entitys_outcome_and_the_order_of_its_writes()
    {
        static string Id(int i) => $"urn:ngsi-ld:Vehicle:run{i}";
        var items = Enumerable.Range(0, 300).Select(i => i switch
        {
            150 => """{"id":"bad id","type":"Vehicle"}""",
            200 => NgsiHttp.Vehicle(Id(5), 2),
            _ => NgsiHttp.Vehicle(Id(i), i),
        });
        var created = await Client.PostJson(Ops + "create", $"[{string.Join(',', items)}]");
        Assert.Equal((HttpStatusCode)207, created.StatusCode);
        var result = await created.ReadJson();
        var expected = Enumerable.Range(0, 300).Where(i => i is not (150 or 200)).Select(Id);
        Assert.Equal(expected, result["success"]!.AsArray().Select(i => i!.GetValue<string>()));
        var errors = result["errors"]!.AsArray();
        Assert.Equal(["bad id", Id(5)], errors.Select(e => e!["entityId"]!.GetValue<string>()));
        Assert.Equal("https://uri.etsi.org/ngsi-ld/errors/AlreadyExists", errors[1]!["error"]!["type"]!.GetValue<string>());
        Assert.Equal(5, await SpeedOf(Id(5)));
        Assert.Equal(299, await SpeedOf(Id(299)));

        // An upsert whose later runs write an id again (the last write wins) and create new ones (listed, in order).
        var upserts = Enumerable.Range(0, 260).Select(i => i switch
        {
            < 130 => NgsiHttp.Vehicle(Id(i), 1000 + i),
            < 250 => NgsiHttp.Vehicle(Id(1000 + i), i),
            _ => NgsiHttp.Vehicle(Id(i - 250), 2000 + i),
        });
        var upserted = await Client.PostJson(Ops + "upsert", $"[{string.Join(',', upserts)}]");
        Assert.Equal(HttpStatusCode.Created, upserted.StatusCode);
        Assert.Equal(Enumerable.Range(130, 120).Select(i => Id(1000 + i)), (await upserted.ReadJson()).AsArray().Select(i => i!.GetValue<string>()));
        Assert.Equal(2250, await SpeedOf(Id(0)));
        Assert.Equal(2259, await SpeedOf(Id(9)));
        Assert.Equal(1010, await SpeedOf(Id(10)));
        Assert.Equal(249, await SpeedOf(Id(1249)));
    }

    [Fact]
    public async Task Update_appends_to_existing_entities_only_and_honours_noOverwrite()
    {
        await Client.PostJson(Ops + "create", $"[{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:p1", 1)}]");
        var update = await Client.PostJson(Ops + "update", """[{"id":"urn:ngsi-ld:Vehicle:p1","speed":3},{"id":"urn:ngsi-ld:Vehicle:missing","speed":3}]""");
        Assert.Equal((HttpStatusCode)207, update.StatusCode);
        var result = await update.ReadJson();
        Assert.Equal("urn:ngsi-ld:Vehicle:missing", result["errors"]![0]!["entityId"]!.GetValue<string>());
        Assert.Equal("https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound", result["errors"]![0]!["error"]!["type"]!.GetValue<string>());
        Assert.Equal(3, await SpeedOf("urn:ngsi-ld:Vehicle:p1"));

        var keep = await Client.PostJson(Ops + "update?options=noOverwrite", """[{"id":"urn:ngsi-ld:Vehicle:p1","speed":9,"heading":180}]""");
        Assert.Equal(HttpStatusCode.NoContent, keep.StatusCode);
        Assert.Equal(3, await SpeedOf("urn:ngsi-ld:Vehicle:p1"));
    }

    [Fact]
    public async Task Merge_patches_and_delete_removes_with_per_entity_results()
    {
        await Client.PostJson(Ops + "create", $"[{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:m1", 1)},{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:m2", 1)}]");
        var merge = await Client.PostJson(Ops + "merge", """[{"id":"urn:ngsi-ld:Vehicle:m1","speed":4,"name":"urn:ngsi-ld:null"}]""");
        Assert.Equal(HttpStatusCode.NoContent, merge.StatusCode);
        var merged = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:m1?options=keyValues")).ReadJson();
        Assert.Equal(4, merged["speed"]!.GetValue<double>());
        Assert.Null(merged["name"]);

        var delete = await Client.PostJson(Ops + "delete", """["urn:ngsi-ld:Vehicle:m1","urn:ngsi-ld:Vehicle:gone",42]""");
        Assert.Equal((HttpStatusCode)207, delete.StatusCode);
        var result = await delete.ReadJson();
        Assert.Equal(["urn:ngsi-ld:Vehicle:m1"], result["success"]!.AsArray().Select(i => i!.GetValue<string>()));
        Assert.Equal(2, result["errors"]!.AsArray().Count);
        Assert.Null(await SpeedOf("urn:ngsi-ld:Vehicle:m1"));
        Assert.Equal(1, await SpeedOf("urn:ngsi-ld:Vehicle:m2"));

        Assert.Equal(HttpStatusCode.NoContent, (await Client.PostJson(Ops + "delete", """["urn:ngsi-ld:Vehicle:m2"]""")).StatusCode);
        await (await Client.PostJson(Ops + "delete", "[]")).AssertProblem(400, "BadRequestData");
        await (await Client.PostJson(Ops + "create", "{}")).AssertProblem(400, "BadRequestData");
    }
}

public sealed class BatchApiTestsOnSqlite() : BatchApiTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class BatchApiTestsOnPostgres(PostgresServer postgres) : BatchApiTests(Backend.Postgres(postgres));
