using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Contexts;

public abstract class ContextApiTests(Backend backend) : IAsyncLifetime
{
    private const string UserContext = """
        {"@context":{"Vehicle":"https://smartdatamodels.org/dataModel.Transportation/Vehicle",
                     "speed":"https://smartdatamodels.org/dataModel.Transportation/speed",
                     "sdm":"https://smartdatamodels.org/"}}
        """;

    private MachiServer _server = null!;
    private HttpClient Client => _server.Client;

    public async Task InitializeAsync() => _server = await backend.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<string> HostContextAsync()
    {
        var response = await Client.PostJson("/ngsi-ld/v1/jsonldContexts", UserContext);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.Location!.OriginalString;
    }

    private static HttpRequestMessage WithLink(HttpMethod method, string path, string contextUrl, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        return request;
    }

    [Fact]
    public async Task Terms_are_expanded_with_the_Link_context_and_compacted_back_per_request()
    {
        var contextUrl = await HostContextAsync();
        using var create = WithLink(HttpMethod.Post, NgsiHttp.Entities, contextUrl, NgsiHttp.Json("""{"id":"urn:ngsi-ld:Vehicle:ctx1","type":"Vehicle","speed":12,"sdm:brand":"Isuzu"}"""));
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(create)).StatusCode);

        var plain = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ctx1?options=keyValues")).ReadJson();
        Assert.Equal("https://smartdatamodels.org/dataModel.Transportation/Vehicle", plain["type"]!.GetValue<string>());
        Assert.Equal(12, plain["https://smartdatamodels.org/dataModel.Transportation/speed"]!.GetValue<int>());

        using var get = WithLink(HttpMethod.Get, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ctx1?options=keyValues", contextUrl);
        var response = await Client.SendAsync(get);
        var compacted = await response.ReadJson();
        Assert.Equal("Vehicle", compacted["type"]!.GetValue<string>());
        Assert.Equal(12, compacted["speed"]!.GetValue<int>());
        Assert.Equal("Isuzu", compacted["sdm:brand"]!.GetValue<string>());
        Assert.Contains(contextUrl, response.Headers.GetValues("Link").Single(), StringComparison.Ordinal);

        using var byType = WithLink(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle", contextUrl);
        Assert.Single((await (await Client.SendAsync(byType)).ReadJson()).AsArray());
        Assert.Empty((await (await Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle")).ReadJson()).AsArray());
    }

    [Fact]
    public async Task Inline_context_in_a_json_ld_body_is_used_and_echoed_in_json_ld_responses()
    {
        var body = """
            {"id":"urn:ngsi-ld:Vehicle:ctx2","type":"Vehicle","speed":7,
             "@context":[{"Vehicle":"https://smartdatamodels.org/dataModel.Transportation/Vehicle"},"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]}
            """;
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(NgsiHttp.Entities, body, "application/ld+json")).StatusCode);
        var stored = await (await Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:ctx2")).ReadJson();
        Assert.Equal("https://smartdatamodels.org/dataModel.Transportation/Vehicle", stored["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Hosted_contexts_are_listed_served_and_deleted()
    {
        var contextUrl = await HostContextAsync();
        var list = (await (await Client.GetAsync("/ngsi-ld/v1/jsonldContexts")).ReadJson()).AsArray();
        Assert.Contains(list, u => u!.GetValue<string>() == contextUrl);

        var details = (await (await Client.GetAsync("/ngsi-ld/v1/jsonldContexts?details=true&kind=Hosted")).ReadJson()).AsArray();
        Assert.Contains(details, d => d!["URL"]!.GetValue<string>() == contextUrl && d["kind"]!.GetValue<string>() == "Hosted");

        var served = await Client.GetAsync(contextUrl);
        Assert.Equal("application/ld+json", served.Content.Headers.ContentType!.MediaType);
        Assert.Equal("https://smartdatamodels.org/dataModel.Transportation/Vehicle", (await served.ReadJson())["@context"]!["Vehicle"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(contextUrl)).StatusCode);
        await (await Client.GetAsync(contextUrl)).AssertProblem(404, "ResourceNotFound");
        await (await Client.PostJson("/ngsi-ld/v1/jsonldContexts", """{"notAContext":1}""")).AssertProblem(400, "InvalidRequest");
    }

    [Fact]
    public async Task Hosted_contexts_survive_a_restart()
    {
        var data = Path.Combine(Path.GetTempPath(), "machi-ctx-" + Guid.NewGuid().ToString("N"));
        try
        {
            string localPath;
            await using (var first = await backend.StartAsync(data))
            {
                var created = await first.Client.PostJson("/ngsi-ld/v1/jsonldContexts", UserContext);
                localPath = new Uri(created.Headers.Location!.OriginalString).AbsolutePath;
            }

            await using var second = await backend.StartAsync(data);
            var served = await second.Client.GetAsync(localPath);
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task An_unreachable_remote_context_is_LdContextNotAvailable()
    {
        using var get = WithLink(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle", "http://127.0.0.1:9/nothing.jsonld");
        await (await Client.SendAsync(get)).AssertProblem(503, "LdContextNotAvailable");
    }

    [Fact]
    public async Task Core_context_urls_of_every_version_work_offline()
    {
        foreach (var version in new[] { "", "-v1.3", "-v1.6", "-v1.8", "-v1.9" })
        {
            using var get = WithLink(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle", $"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context{version}.jsonld");
            Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(get)).StatusCode);
        }
    }
}

public sealed class ContextApiTestsOnSqlite() : ContextApiTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class ContextApiTestsOnPostgres(PostgresServer postgres) : ContextApiTests(Backend.Postgres(postgres));
