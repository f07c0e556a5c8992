using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Discovery;

public abstract class DiscoveryApiTests(Backend backend) : IAsyncLifetime
{
    private const string Aizu = "https://aizu.example/ns#";
    private MachiServer _server = null!;
    private string _contextUrl = null!;

    private HttpClient Client => _server.Client;

    public async Task InitializeAsync()
    {
        _server = await backend.StartAsync();
        var hosted = await Client.PostJson("/ngsi-ld/v1/jsonldContexts",
            $$$"""{"@context":{"Shelter":"{{{Aizu}}}Shelter","capacity":"{{{Aizu}}}capacity","managedBy":"{{{Aizu}}}managedBy"}}""");
        _contextUrl = hosted.Headers.Location!.ToString();
        await Send(HttpMethod.Post, NgsiHttp.Entities, _contextUrl, """
            {"id":"urn:ngsi-ld:Shelter:1","type":"Shelter","capacity":{"type":"Property","value":120},
             "managedBy":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"},
             "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.93,37.49]}}}
            """);
        await Send(HttpMethod.Post, NgsiHttp.Entities, _contextUrl, """
            {"id":"urn:ngsi-ld:Shelter:2","type":"Shelter","capacity":{"type":"Property","value":80}}
            """);
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:plow-1"))).StatusCode);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Types_list_names_every_type_compacted_with_the_request_context()
    {
        var list = await (await Send(HttpMethod.Get, "/ngsi-ld/v1/types", _contextUrl)).ReadJson();
        Assert.Equal("EntityTypeList", list["type"]!.GetValue<string>());
        Assert.StartsWith("urn:ngsi-ld:EntityTypeList:", list["id"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(["Shelter", "Vehicle"], Names(list["typeList"]).Order(StringComparer.Ordinal));

        // Without the context the Shelter type is not a term: it comes back as its IRI.
        var core = await (await Client.GetAsync("/ngsi-ld/v1/types")).ReadJson();
        Assert.Contains(Aizu + "Shelter", Names(core["typeList"]));
    }

    [Fact]
    public async Task Types_with_details_give_each_type_its_attribute_names_and_iri()
    {
        var types = (await (await Send(HttpMethod.Get, "/ngsi-ld/v1/types?details=true", _contextUrl)).ReadJson()).AsArray();
        var shelter = types.Single(t => t!["typeName"]!.GetValue<string>() == "Shelter")!;
        Assert.Equal(Aizu + "Shelter", shelter["id"]!.GetValue<string>());
        Assert.Equal("EntityType", shelter["type"]!.GetValue<string>());
        Assert.Equal(["capacity", "location", "managedBy"], Names(shelter["attributeNames"]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Type_info_counts_entities_and_reports_attribute_types()
    {
        var response = await Send(HttpMethod.Get, "/ngsi-ld/v1/types/Shelter", _contextUrl);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(_contextUrl, response.Headers.GetValues("Link").Single(), StringComparison.Ordinal);
        var info = await response.ReadJson();
        Assert.Equal("EntityTypeInfo", info["type"]!.GetValue<string>());
        Assert.Equal(Aizu + "Shelter", info["id"]!.GetValue<string>());
        Assert.Equal(2, info["entityCount"]!.GetValue<long>());
        var details = info["attributeDetails"]!.AsArray().ToDictionary(a => a!["attributeName"]!.GetValue<string>());
        Assert.Equal(["Relationship"], Names(details["managedBy"]!["attributeTypes"]));
        Assert.Equal(["GeoProperty"], Names(details["location"]!["attributeTypes"]));
        Assert.Equal(Aizu + "capacity", details["capacity"]!["id"]!.GetValue<string>());

        // A full IRI in the path works as well as the term.
        var byIri = await (await Client.GetAsync("/ngsi-ld/v1/types/" + Uri.EscapeDataString(Aizu + "Shelter"))).ReadJson();
        Assert.Equal(2, byIri["entityCount"]!.GetValue<long>());
    }

    [Fact]
    public async Task Attribute_types_follow_updates_and_deletes()
    {
        await Send(HttpMethod.Put, NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:1/attrs/managedBy", _contextUrl, """{"type":"Property","value":"city"}""");
        var info = await (await Send(HttpMethod.Get, "/ngsi-ld/v1/attributes/managedBy", _contextUrl)).ReadJson();
        Assert.Equal(["Property"], Names(info["attributeTypes"]));

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:2")).StatusCode);
        var type = await (await Send(HttpMethod.Get, "/ngsi-ld/v1/types/Shelter", _contextUrl)).ReadJson();
        Assert.Equal(1, type["entityCount"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:1")).StatusCode);
        await (await Send(HttpMethod.Get, "/ngsi-ld/v1/types/Shelter", _contextUrl)).AssertProblem(404, "ResourceNotFound");
    }

    [Fact]
    public async Task Attributes_list_and_details_give_counts_kinds_and_entity_types()
    {
        var list = await (await Send(HttpMethod.Get, "/ngsi-ld/v1/attributes", _contextUrl)).ReadJson();
        Assert.Equal("AttributeList", list["type"]!.GetValue<string>());
        Assert.Contains("capacity", Names(list["attributeList"]));
        Assert.Contains("speed", Names(list["attributeList"]));

        var details = (await (await Send(HttpMethod.Get, "/ngsi-ld/v1/attributes?details=true", _contextUrl)).ReadJson()).AsArray()
            .ToDictionary(a => a!["attributeName"]!.GetValue<string>());
        Assert.Equal(2, details["capacity"]!["attributeCount"]!.GetValue<long>());
        Assert.Equal(["Shelter"], Names(details["capacity"]!["typeNames"]));
        Assert.Equal(["Property"], Names(details["capacity"]!["attributeTypes"]));
        Assert.Equal(["Shelter", "Vehicle"], Names(details["location"]!["typeNames"]).Order(StringComparer.Ordinal));
        Assert.Equal(["LanguageProperty"], Names(details["name"]!["attributeTypes"]));
        Assert.Equal("Attribute", details["location"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Attribute_counts_and_type_names_follow_attributes_added_and_removed()
    {
        // Shelter 2 gains managedBy and the plow gains capacity; Shelter 1 loses capacity.
        Assert.Equal(HttpStatusCode.NoContent, (await Send(HttpMethod.Post, NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:2/attrs", _contextUrl,
            """{"managedBy":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"}}""")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Send(HttpMethod.Post, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:plow-1/attrs", _contextUrl,
            """{"capacity":{"type":"Property","value":2}}""")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Send(HttpMethod.Delete, NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:1/attrs/capacity", _contextUrl)).StatusCode);

        var details = (await (await Send(HttpMethod.Get, "/ngsi-ld/v1/attributes?details=true", _contextUrl)).ReadJson()).AsArray()
            .ToDictionary(a => a!["attributeName"]!.GetValue<string>());
        Assert.Equal(2, details["managedBy"]!["attributeCount"]!.GetValue<long>());
        Assert.Equal(2, details["capacity"]!["attributeCount"]!.GetValue<long>());
        Assert.Equal(["Shelter", "Vehicle"], Names(details["capacity"]!["typeNames"]).Order(StringComparer.Ordinal));

        // Scoped to a type, and to an attribute: only the entities of that type, only those that have it.
        var shelter = await (await Send(HttpMethod.Get, "/ngsi-ld/v1/types/Shelter", _contextUrl)).ReadJson();
        Assert.Equal(2, shelter["entityCount"]!.GetValue<long>());
        var managedBy = await (await Send(HttpMethod.Get, "/ngsi-ld/v1/attributes/managedBy", _contextUrl)).ReadJson();
        Assert.Equal(["Shelter"], Names(managedBy["typeNames"]));
        var types = (await (await Send(HttpMethod.Get, "/ngsi-ld/v1/types?details=true", _contextUrl)).ReadJson()).AsArray()
            .ToDictionary(t => t!["typeName"]!.GetValue<string>());
        Assert.DoesNotContain("speed", Names(types["Shelter"]!["attributeNames"]));
        Assert.Contains("capacity", Names(types["Vehicle"]!["attributeNames"]));

        // Entities by attribute name find the same.
        var withCapacity = (await (await Send(HttpMethod.Get, NgsiHttp.Entities + "?q=capacity&count=true", _contextUrl)).ReadJson()).AsArray();
        Assert.Equal(["urn:ngsi-ld:Shelter:2", "urn:ngsi-ld:Vehicle:plow-1"], withCapacity.Select(e => e!["id"]!.GetValue<string>()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Attribute_info_answers_with_ld_json_when_asked_and_404_for_unknown_names()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/ngsi-ld/v1/attributes/speed");
        request.Headers.Accept.ParseAdd("application/ld+json");
        var response = await Client.SendAsync(request);
        Assert.Equal("application/ld+json", response.Content.Headers.ContentType!.MediaType);
        var speed = await response.ReadJson();
        Assert.Equal(1, speed["attributeCount"]!.GetValue<long>());
        Assert.Equal(["Vehicle"], Names(speed["typeNames"]));
        Assert.NotNull(speed["@context"]);

        await (await Client.GetAsync("/ngsi-ld/v1/attributes/nothingHasThis")).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync("/ngsi-ld/v1/types/NoSuchType")).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync("/ngsi-ld/v1/types?details=maybe")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync("/ngsi-ld/v1/types/bad%20name")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Discovery_is_per_tenant()
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = NgsiHttp.Json(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:t1")) };
        create.Headers.Add("NGSILD-Tenant", "kitakata");
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(create)).StatusCode);

        using var types = new HttpRequestMessage(HttpMethod.Get, "/ngsi-ld/v1/types");
        types.Headers.Add("NGSILD-Tenant", "kitakata");
        Assert.Equal(["Vehicle"], Names((await (await Client.SendAsync(types)).ReadJson())["typeList"]));

        using var unknown = new HttpRequestMessage(HttpMethod.Get, "/ngsi-ld/v1/attributes");
        unknown.Headers.Add("NGSILD-Tenant", "nowhere");
        await (await Client.SendAsync(unknown)).AssertProblem(404, "NonexistentTenant");
    }

    private static List<string> Names(JsonNode? array) => [.. array!.AsArray().Select(n => n!.GetValue<string>())];

    private Task<HttpResponseMessage> Send(HttpMethod method, string path, string contextUrl, string? json = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = json is null ? null : NgsiHttp.Json(json) };
        request.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        return Client.SendAsync(request);
    }
}

public sealed class DiscoveryApiTestsOnSqlite() : DiscoveryApiTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class DiscoveryApiTestsOnPostgres(PostgresServer postgres) : DiscoveryApiTests(Backend.Postgres(postgres));
