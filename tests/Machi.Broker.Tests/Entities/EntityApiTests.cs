using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Entities;

public abstract class EntityApiTests(Backend backend) : IAsyncLifetime
{
    private MachiServer _server = null!;
    private HttpClient Client => _server.Client;

    public async Task InitializeAsync() => _server = await backend.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Created_entity_is_returned_as_it_was_sent_with_its_location()
    {
        var created = await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:plow-1"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:plow-1", created.Headers.Location!.OriginalString);

        var got = await Client.GetAsync(created.Headers.Location.OriginalString);
        Assert.Equal(HttpStatusCode.OK, got.StatusCode);
        Assert.Equal("application/json", got.Content.Headers.ContentType!.MediaType);
        Assert.Contains("rel=\"http://www.w3.org/ns/json-ld#context\"", got.Headers.GetValues("Link").Single(), StringComparison.Ordinal);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:plow-1")), await got.ReadJson()));
    }

    [Fact]
    public async Task Creating_the_same_id_twice_is_AlreadyExists_and_keeps_the_first()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:dup", speed: 1));
        var again = await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:dup", speed: 2));
        await again.AssertProblem(409, "AlreadyExists");
        var kv = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:dup?options=keyValues")).ReadJson();
        Assert.Equal(1, kv["speed"]!.GetValue<double>());
    }

    [Fact]
    public async Task Unknown_and_invalid_ids_get_ResourceNotFound_and_BadRequestData()
    {
        await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:none")).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync(NgsiHttp.Entities + "/not-a-uri")).AssertProblem(400, "BadRequestData");
        await (await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:none")).AssertProblem(404, "ResourceNotFound");
    }

    [Fact]
    public async Task Representations_keyValues_concise_sysAttrs_and_lang()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:r"));
        var kv = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:r?options=keyValues&lang=ja")).ReadJson();
        Assert.Equal(10, kv["speed"]!.GetValue<double>());
        Assert.Equal("除雪車1号", kv["name"]!.GetValue<string>());
        Assert.Equal("urn:ngsi-ld:Organization:aizu-city", kv["operator"]!.GetValue<string>());
        Assert.Equal("Point", kv["location"]!["type"]!.GetValue<string>());

        var concise = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:r?format=concise")).ReadJson();
        Assert.Null(concise["speed"]!["type"]);
        Assert.Equal("KMH", concise["speed"]!["unitCode"]!.GetValue<string>());
        Assert.Equal("urn:ngsi-ld:Organization:aizu-city", concise["operator"]!["object"]!.GetValue<string>());

        var sys = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:r?options=sysAttrs&attrs=speed")).ReadJson();
        Assert.NotNull(sys["createdAt"]);
        Assert.NotNull(sys["speed"]!["modifiedAt"]);
        Assert.Null(sys["name"]);

        var en = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:r?lang=en")).ReadJson();
        Assert.Equal("Property", en["name"]!["type"]!.GetValue<string>());
        Assert.Equal("Snowplow 1", en["name"]!["value"]!.GetValue<string>());
        Assert.Equal("en", en["name"]!["lang"]!.GetValue<string>());
    }

    [Fact]
    public async Task Concise_input_is_accepted_and_stored_normalized()
    {
        var response = await Client.PostJson(NgsiHttp.Entities, """
            {"id":"urn:ngsi-ld:Shelter:1","type":"Shelter","capacity":120,"name":{"languageMap":{"ja":"鶴ヶ城体育館"}},
             "location":{"type":"Point","coordinates":[139.9297,37.4877]},"managedBy":{"object":"urn:ngsi-ld:Organization:aizu-city"}}
            """);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var e = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:1")).ReadJson();
        Assert.Equal("Property", e["capacity"]!["type"]!.GetValue<string>());
        Assert.Equal("LanguageProperty", e["name"]!["type"]!.GetValue<string>());
        Assert.Equal("GeoProperty", e["location"]!["type"]!.GetValue<string>());
        Assert.Equal("Relationship", e["managedBy"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Content_negotiation_gives_415_406_json_ld_and_geo_json()
    {
        await (await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:cn"), "text/plain")).AssertProblem(415, "UnsupportedMediaType");
        using var html = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:cn");
        html.Headers.Accept.ParseAdd("text/html");
        await (await Client.SendAsync(html)).AssertProblem(406, "NotAcceptable");

        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:cn"));
        using var ld = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:cn");
        ld.Headers.Accept.ParseAdd("application/ld+json");
        var ldResponse = await Client.SendAsync(ld);
        Assert.Equal("application/ld+json", ldResponse.Content.Headers.ContentType!.MediaType);
        Assert.NotNull((await ldResponse.ReadJson())["@context"]);

        using var geo = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:cn?options=keyValues");
        geo.Headers.Accept.ParseAdd("application/geo+json");
        var feature = await (await Client.SendAsync(geo)).ReadJson();
        Assert.Equal("Feature", feature["type"]!.GetValue<string>());
        Assert.Equal(139.9299, feature["geometry"]!["coordinates"]![0]!.GetValue<double>());
        Assert.Equal("Vehicle", feature["properties"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Context_placement_rules_are_enforced()
    {
        var ldWithout = await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:ctx"), "application/ld+json");
        Assert.Contains("@context", await ldWithout.AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        var jsonWith = await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:x:1","type":"T","@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}""");
        await jsonWith.AssertProblem(400, "BadRequestData");
        var ldWith = await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:x:2","type":"T","@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}""", "application/ld+json");
        Assert.Equal(HttpStatusCode.Created, ldWith.StatusCode);
    }

    [Fact]
    public async Task Append_update_and_noOverwrite_report_what_they_did()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:a"));
        var append = await Client.PostJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:a/attrs", """{"fuel":{"type":"Property","value":0.5}}""");
        Assert.Equal(HttpStatusCode.NoContent, append.StatusCode);

        var noOverwrite = await Client.PostJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:a/attrs?options=noOverwrite", """{"fuel":{"type":"Property","value":0.9},"plowState":"plowing"}""");
        Assert.Equal((HttpStatusCode)207, noOverwrite.StatusCode);
        var result = await noOverwrite.ReadJson();
        Assert.Equal("plowState", result["updated"]![0]!.GetValue<string>());
        Assert.Equal("fuel", result["notUpdated"]![0]!["attributeName"]!.GetValue<string>());

        var update = await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:a/attrs", """{"speed":{"type":"Property","value":42},"missing":{"type":"Property","value":1}}""");
        Assert.Equal((HttpStatusCode)207, update.StatusCode);
        var kv = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:a?options=keyValues")).ReadJson();
        Assert.Equal(42, kv["speed"]!.GetValue<double>());
        Assert.Equal(0.5, kv["fuel"]!.GetValue<double>());
        Assert.Equal("plowing", kv["plowState"]!.GetValue<string>());
        Assert.Null(kv["missing"]);
        await (await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:zzz/attrs", """{"speed":1}""")).AssertProblem(404, "ResourceNotFound");
    }

    [Fact]
    public async Task Partial_attribute_update_changes_only_the_members_given()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:p"));
        var patch = await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:p/attrs/speed", """{"value":33.3,"observedAt":"2026-11-25T09:00:00+09:00"}""");
        Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        var e = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:p")).ReadJson();
        Assert.Equal(33.3, e["speed"]!["value"]!.GetValue<double>());
        Assert.Equal("KMH", e["speed"]!["unitCode"]!.GetValue<string>());
        Assert.Equal("2026-11-25T00:00:00Z", e["speed"]!["observedAt"]!.GetValue<string>());
        await (await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:p/attrs/nothing", """{"value":1}""")).AssertProblem(404, "ResourceNotFound");
    }

    [Fact]
    public async Task Replace_and_delete_attribute_instances_by_datasetId()
    {
        await Client.PostJson(NgsiHttp.Entities, """
            {"id":"urn:ngsi-ld:Meter:1","type":"WaterMeter","flow":[
              {"type":"Property","value":1.0,"datasetId":"urn:ngsi-ld:Dataset:a"},
              {"type":"Property","value":2.0,"datasetId":"urn:ngsi-ld:Dataset:b"},
              {"type":"Property","value":3.0}]}
            """);
        var put = await Client.PutJson(NgsiHttp.Entities + "/urn:ngsi-ld:Meter:1/attrs/flow", """{"type":"Property","value":9.0,"datasetId":"urn:ngsi-ld:Dataset:b"}""");
        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        var del = await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Meter:1/attrs/flow?datasetId=urn:ngsi-ld:Dataset:a");
        Assert.Equal(HttpStatusCode.NoContent, del.StatusCode);
        var flow = (await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Meter:1")).ReadJson())["flow"]!.AsArray();
        Assert.Equal(2, flow.Count);
        Assert.Contains(flow, f => f!["datasetId"]?.GetValue<string>() == "urn:ngsi-ld:Dataset:b" && f["value"]!.GetValue<double>() == 9.0);
        Assert.Contains(flow, f => f!["datasetId"] is null && f["value"]!.GetValue<double>() == 3.0);

        await (await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Meter:1/attrs/flow?datasetId=urn:ngsi-ld:Dataset:a")).AssertProblem(404, "ResourceNotFound");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Meter:1/attrs/flow?deleteAll=true")).StatusCode);
        Assert.Null((await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Meter:1")).ReadJson())["flow"]);
    }

    [Fact]
    public async Task Replace_entity_keeps_createdAt_and_merge_patch_deletes_with_the_null_uri()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:m"));
        var before = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:m?options=sysAttrs")).ReadJson();
        var put = await Client.PutJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:m", """{"type":"Vehicle","speed":5,"heading":{"type":"Property","value":90}}""");
        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        var replaced = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:m?options=sysAttrs")).ReadJson();
        Assert.Equal(before["createdAt"]!.GetValue<string>(), replaced["createdAt"]!.GetValue<string>());
        Assert.Null(replaced["name"]);

        var merge = await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:m", """{"speed":{"value":6,"observedAt":"2026-11-25T10:00:00Z"},"heading":"urn:ngsi-ld:null","plowState":"salting"}""", "application/merge-patch+json");
        Assert.Equal(HttpStatusCode.NoContent, merge.StatusCode);
        var kv = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:m?options=keyValues")).ReadJson();
        Assert.Equal(6, kv["speed"]!.GetValue<double>());
        Assert.Null(kv["heading"]);
        Assert.Equal("salting", kv["plowState"]!.GetValue<string>());
    }

    [Fact]
    public async Task Tenants_are_isolated_and_an_unknown_tenant_is_NonexistentTenant()
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = NgsiHttp.Json(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:t")) };
        create.Headers.Add("NGSILD-Tenant", "aizu");
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(create)).StatusCode);

        using var inTenant = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:t");
        inTenant.Headers.Add("NGSILD-Tenant", "aizu");
        Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(inTenant)).StatusCode);
        await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:t")).AssertProblem(404, "ResourceNotFound");

        using var unknown = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle");
        unknown.Headers.Add("NGSILD-Tenant", "nowhere");
        await (await Client.SendAsync(unknown)).AssertProblem(404, "NonexistentTenant");
    }

    [Fact]
    public async Task Query_by_type_id_and_attrs_with_paging_and_count()
    {
        for (var i = 0; i < 7; i++)
        {
            await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle($"urn:ngsi-ld:Vehicle:q{i}", i));
        }

        await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:Shelter:q","type":"Shelter","capacity":10}""");

        var page = await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&limit=3&offset=2&count=true&options=keyValues");
        Assert.Equal("7", page.Headers.GetValues("NGSILD-Results-Count").Single());
        var items = (await page.ReadJson()).AsArray();
        Assert.Equal(["urn:ngsi-ld:Vehicle:q2", "urn:ngsi-ld:Vehicle:q3", "urn:ngsi-ld:Vehicle:q4"], items.Select(e => e!["id"]!.GetValue<string>()));

        var both = (await (await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle,Shelter&limit=100")).ReadJson()).AsArray();
        Assert.Equal(8, both.Count);
        var byId = (await (await Client.GetAsync(NgsiHttp.Entities + "?id=urn:ngsi-ld:Vehicle:q1,urn:ngsi-ld:Shelter:q")).ReadJson()).AsArray();
        Assert.Equal(2, byId.Count);
        var byAttr = (await (await Client.GetAsync(NgsiHttp.Entities + "?attrs=capacity")).ReadJson()).AsArray();
        Assert.Equal("urn:ngsi-ld:Shelter:q", Assert.Single(byAttr)!["id"]!.GetValue<string>());

        var countOnly = await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&limit=0&count=true");
        Assert.Equal("7", countOnly.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.Empty((await countOnly.ReadJson()).AsArray());

        using var geo = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle&limit=2");
        geo.Headers.Accept.ParseAdd("application/geo+json");
        var collection = await (await Client.SendAsync(geo)).ReadJson();
        Assert.Equal("FeatureCollection", collection["type"]!.GetValue<string>());
        Assert.Equal(2, collection["features"]!.AsArray().Count);

        await (await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&limit=100000")).AssertProblem(403, "TooManyResults");
        await (await Client.GetAsync(NgsiHttp.Entities)).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&limit=-1")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&options=bogus")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Type_and_attribute_indexes_follow_every_change()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:ix"));
        async Task<int> Count(string query) => (await (await Client.GetAsync(NgsiHttp.Entities + "?" + query)).ReadJson()).AsArray().Count;

        Assert.Equal(1, await Count("attrs=speed"));
        await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ix/attrs/speed");
        Assert.Equal(0, await Count("attrs=speed"));
        await Client.PostJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ix/attrs", "{\"fuel\":0.5}");
        Assert.Equal(1, await Count("attrs=fuel"));
        await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ix", "{\"type\":\"Snowplow\"}", "application/merge-patch+json");
        Assert.Equal(1, await Count("type=Snowplow"));
        Assert.Equal(1, await Count("type=Vehicle"));
        await Client.PutJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ix", "{\"type\":\"Truck\",\"load\":3}");
        Assert.Equal(0, await Count("type=Vehicle"));
        Assert.Equal(0, await Count("attrs=fuel"));
        Assert.Equal(1, await Count("type=Truck&attrs=load"));
        await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ix");
        Assert.Equal(0, await Count("type=Truck"));
        Assert.Equal(0, await Count("attrs=load"));
    }

    [Fact]
    public async Task Malformed_and_oversized_bodies_get_clear_4xx_and_change_nothing()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:safe"));
        await (await Client.PostJson(NgsiHttp.Entities, "{\"id\": ")).AssertProblem(400, "InvalidRequest");
        await (await Client.PostJson(NgsiHttp.Entities, "[1,2]")).AssertProblem(400, "BadRequestData");
        await (await Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:safe/attrs", "{\"speed\": {\"type\":\"Relationship\",\"object\":\"bad\"}}")).AssertProblem(400, "BadRequestData");
        // A body over the configured limit (small here, so the client finishes sending before the server answers).
        await using var small = await backend.StartAsync(settings: new Dictionary<string, string?> { ["Broker:MaxRequestBodyBytes"] = "4096" });
        var big = "{\"id\":\"urn:x:big\",\"type\":\"T\",\"blob\":\"" + new string('x', 20_000) + "\"}";
        await (await small.Client.PostJson(NgsiHttp.Entities, big)).AssertProblem(413, "PayloadTooLarge");
        await (await small.Client.GetAsync(NgsiHttp.Entities + "/urn:x:big")).AssertProblem(404, "ResourceNotFound");

        var kv = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:safe?options=keyValues")).ReadJson();
        Assert.Equal(10, kv["speed"]!.GetValue<double>());
    }
}

public sealed class EntityApiTestsOnSqlite() : EntityApiTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class EntityApiTestsOnPostgres(PostgresServer postgres) : EntityApiTests(Backend.Postgres(postgres));
