using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Tests.Registrations;

/// <summary>
/// Two Machi servers on loopback: city A (Kitakata, 喜多方) is a context source, city B (Aizuwakamatsu) registers it
/// and answers queries and retrievals with A's entities merged into its own.
/// </summary>
public abstract class FederationTests(Backend backend) : IAsyncLifetime
{
    private const string Registrations = "/ngsi-ld/v1/csourceRegistrations";
    private readonly ConcurrentQueue<(string Query, string? Via, string? Tenant, string? Link)> _seen = new();
    private MachiServer _a = null!;
    private MachiServer _b = null!;

    public async Task InitializeAsync()
    {
        _a = await backend.StartAsync(
            settings: new Dictionary<string, string?> { ["Broker:Federation:BrokerId"] = "city-a" },
            configureApp: app =>
            {
                // Test-only endpoints standing in for misbehaving or observed context sources.
                app.MapGet("/slow/ngsi-ld/v1/entities", async (HttpContext http) =>
                {
                    await Task.Delay(TimeSpan.FromSeconds(5), http.RequestAborted);
                    return Results.Text("[]", "application/json");
                });
                app.MapGet("/garbage/ngsi-ld/v1/entities", () => Results.Text("this is not json", "application/json"));
                app.MapGet("/forbidden/ngsi-ld/v1/entities", () => Results.StatusCode(403));
                app.MapGet("/capture/ngsi-ld/v1/entities", (HttpContext http) =>
                {
                    _seen.Enqueue((http.Request.QueryString.Value ?? string.Empty, http.Request.Headers.Via.ToString(),
                        http.Request.Headers["NGSILD-Tenant"].ToString(), http.Request.Headers.Link.ToString()));
                    return Results.Text("[]", "application/json");
                });
            });
        _b = await backend.StartAsync(settings: new Dictionary<string, string?> { ["Broker:Federation:BrokerId"] = "city-b" });
    }

    public async Task DisposeAsync()
    {
        await _b.DisposeAsync();
        await _a.DisposeAsync();
    }

    private string A => _a.BaseAddress.ToString().TrimEnd('/');

    private string B => _b.BaseAddress.ToString().TrimEnd('/');

    private static string Vehicle(string id, double speed, string observedAt, string extra = "") => $$"""
        {"id":"urn:ngsi-ld:Vehicle:{{id}}","type":"Vehicle",
         "speed":{"type":"Property","value":{{speed.ToString(System.Globalization.CultureInfo.InvariantCulture)}},"observedAt":"{{observedAt}}"}{{extra}}}
        """;

    private static async Task Create(HttpClient client, string body, string? tenant = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = NgsiHttp.Json(body) };
        if (tenant is not null)
        {
            request.Headers.Add("NGSILD-Tenant", tenant);
        }

        var response = await client.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Registers a source; one of the two test cities gets the other city's token as contextSourceInfo (its credentials).</summary>
    private async Task Register(HttpClient client, string body)
    {
        var registration = System.Text.Json.Nodes.JsonNode.Parse(body)!.AsObject();
        var endpoint = registration["endpoint"]?.GetValue<string>()?.TrimEnd('/');
        var token = endpoint == B ? _b.AdminToken : endpoint == A ? _a.AdminToken : null;
        if (token is not null && registration["contextSourceInfo"] is null)
        {
            registration["contextSourceInfo"] = new System.Text.Json.Nodes.JsonArray(
                new System.Text.Json.Nodes.JsonObject { ["key"] = "Authorization", ["value"] = "Bearer " + token });
            body = registration.ToJsonString();
        }

        var response = await client.PostJson(Registrations, body);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    private static string Registration(string endpoint, string information, string mode = "inclusive", string extra = "") => $$"""
        {"type":"ContextSourceRegistration","mode":"{{mode}}","information":{{information}},"endpoint":"{{endpoint}}"{{extra}}}
        """;

    private static async Task<Dictionary<string, JsonNode>> QueryById(HttpClient client, string query)
    {
        var response = await client.GetAsync(NgsiHttp.Entities + query);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonNode.Parse(text)!.AsArray().ToDictionary(e => e!["id"]!.GetValue<string>()[("urn:ngsi-ld:".Length)..], e => e!);
    }

    [Fact]
    public async Task Inclusive_registration_merges_the_source_entities_with_the_local_ones()
    {
        await Create(_a.Client, Vehicle("kitakata-1", 50, "2026-11-25T09:00:00Z"));
        await Create(_a.Client, Vehicle("shared", 60, "2026-11-25T10:00:00Z", ""","fuel":{"type":"Property","value":0.4}"""));
        await Create(_b.Client, Vehicle("aizu-1", 20, "2026-11-25T09:00:00Z"));
        await Create(_b.Client, Vehicle("shared", 30, "2026-11-25T08:00:00Z", ""","name":{"type":"Property","value":"除雪車"}"""));
        await Register(_b.Client, Registration(A, """[{"entities":[{"type":"Vehicle"}]}]"""));

        var response = await _b.Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&count=true");
        Assert.Equal("3", response.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.False(response.Headers.Contains("NGSILD-Warning"));
        var all = await QueryById(_b.Client, "?type=Vehicle");
        Assert.Equal(["Vehicle:aizu-1", "Vehicle:kitakata-1", "Vehicle:shared"], all.Keys.Order(StringComparer.Ordinal));

        // The same attribute from both: the most recent observation wins; the others are united.
        var shared = all["Vehicle:shared"];
        Assert.Equal(60, shared["speed"]!["value"]!.GetValue<double>());
        Assert.Equal(0.4, shared["fuel"]!["value"]!.GetValue<double>());
        Assert.Equal("除雪車", shared["name"]!["value"]!.GetValue<string>());

        var retrieved = await (await _b.Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:kitakata-1?options=keyValues")).ReadJson();
        Assert.Equal(50, retrieved["speed"]!.GetValue<double>());

        // local=true answers from B alone; paging cuts the merged list.
        Assert.Equal(["Vehicle:aizu-1", "Vehicle:shared"], (await QueryById(_b.Client, "?type=Vehicle&local=true")).Keys.Order(StringComparer.Ordinal));
        Assert.Single(await QueryById(_b.Client, "?type=Vehicle&limit=1&offset=2"));
    }

    [Fact]
    public async Task An_entity_map_records_where_each_entity_was_found_and_pages_through_the_distributed_result()
    {
        await Create(_a.Client, Vehicle("kitakata-1", 50, "2026-11-25T09:00:00Z"));
        await Create(_a.Client, Vehicle("shared", 60, "2026-11-25T10:00:00Z"));
        await Create(_b.Client, Vehicle("aizu-1", 20, "2026-11-25T09:00:00Z"));
        await Create(_b.Client, Vehicle("shared", 30, "2026-11-25T08:00:00Z"));
        await Register(_b.Client, Registration(A, """[{"entities":[{"type":"Vehicle"}]}]"""));
        var registrationId = (await (await _b.Client.GetAsync(Registrations)).ReadJson()).AsArray().Single()!["id"]!.GetValue<string>();

        var first = await _b.Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle&entityMap=true&limit=2&count=true");
        Assert.Equal("3", first.Headers.GetValues("NGSILD-Results-Count").Single());
        var mapId = first.Headers.GetValues("NGSILD-EntityMap").Single();
        var map = (await (await _b.Client.GetAsync("/ngsi-ld/v1/entityMaps/" + mapId)).ReadJson())["entityMap"]!.AsObject();
        Assert.Equal(["@none"], map["urn:ngsi-ld:Vehicle:aizu-1"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Equal([registrationId], map["urn:ngsi-ld:Vehicle:kitakata-1"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Equal(["@none", registrationId], map["urn:ngsi-ld:Vehicle:shared"]!.AsArray().Select(s => s!.GetValue<string>()));

        // A vehicle that appears at the source meanwhile is not in the map: the pages cover the three, once each.
        await Create(_a.Client, Vehicle("kitakata-2", 40, "2026-11-25T11:00:00Z"));
        var second = await QueryById(_b.Client, $"?type=Vehicle&entityMap={mapId}&limit=2&offset=2");
        var firstIds = (await first.ReadJson()).AsArray().Select(e => e!["id"]!.GetValue<string>()["urn:ngsi-ld:".Length..]);
        Assert.Equal(["Vehicle:aizu-1", "Vehicle:kitakata-1", "Vehicle:shared"], firstIds.Concat(second.Keys).Order(StringComparer.Ordinal));
        Assert.Equal(4, (await QueryById(_b.Client, "?type=Vehicle")).Count);
    }

    [Fact]
    public async Task Exclusive_registration_takes_the_registered_attributes_only_from_the_source()
    {
        await Create(_b.Client, Vehicle("x", 1, "2026-11-25T12:00:00Z", ""","name":{"type":"Property","value":"local name"}"""));
        await Create(_a.Client, Vehicle("x", 99, "2026-11-25T01:00:00Z", ""","name":{"type":"Property","value":"remote name"}"""));
        await Register(_b.Client, Registration(A,
            """[{"entities":[{"type":"Vehicle","id":"urn:ngsi-ld:Vehicle:x"}],"propertyNames":["speed"]}]""", mode: "exclusive"));

        var x = await (await _b.Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:x?options=keyValues")).ReadJson();
        Assert.Equal(99, x["speed"]!.GetValue<double>());          // older, but the source owns it
        Assert.Equal("local name", x["name"]!.GetValue<string>()); // not registered: only B's value

        var queried = await QueryById(_b.Client, "?type=Vehicle&options=keyValues");
        Assert.Equal(99, queried["Vehicle:x"]["speed"]!.GetValue<double>());
    }

    [Fact]
    public async Task Redirect_registration_serves_entities_the_broker_does_not_hold_from_the_sources_tenant()
    {
        await Create(_a.Client, """{"id":"urn:ngsi-ld:Shelter:kitakata-gym","type":"Shelter","capacity":{"type":"Property","value":300}}""", tenant: "kitakata");
        await Register(_b.Client, Registration(A, """[{"entities":[{"type":"Shelter"}]}]""", mode: "redirect", extra: ""","tenant":"kitakata" """));

        var shelters = await QueryById(_b.Client, "?type=Shelter");
        Assert.Equal(300, Assert.Single(shelters).Value["capacity"]!["value"]!.GetValue<double>());
        var one = await _b.Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:kitakata-gym");
        Assert.Equal(HttpStatusCode.OK, one.StatusCode);

        // Without the registration B has no such entity.
        Assert.Empty(await QueryById(_b.Client, "?type=Shelter&local=true"));
        await (await _b.Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Shelter:none")).AssertProblem(404, "ResourceNotFound");
    }

    [Fact]
    public async Task Auxiliary_registration_only_fills_in_what_nothing_else_provides()
    {
        await Create(_b.Client, Vehicle("v", 1, "2026-11-25T01:00:00Z"));
        await Create(_a.Client, Vehicle("v", 99, "2026-11-25T23:00:00Z", ""","fuel":{"type":"Property","value":0.9}"""));
        await Create(_a.Client, Vehicle("only-a", 7, "2026-11-25T01:00:00Z"));
        await Register(_b.Client, Registration(A, """[{"entities":[{"type":"Vehicle"}]}]""", mode: "auxiliary"));

        var all = await QueryById(_b.Client, "?type=Vehicle&options=keyValues");
        Assert.Equal(1, all["Vehicle:v"]["speed"]!.GetValue<double>()); // B's value, though A's is newer
        Assert.Equal(0.9, all["Vehicle:v"]["fuel"]!.GetValue<double>()); // only A has it
        Assert.Equal(7, all["Vehicle:only-a"]["speed"]!.GetValue<double>());
    }

    [Fact]
    public async Task A_source_that_is_down_gives_a_partial_answer_with_a_warning()
    {
        await Create(_b.Client, Vehicle("aizu-1", 20, "2026-11-25T09:00:00Z"));
        await Register(_b.Client, Registration($"http://127.0.0.1:{FreePort.Next()}", """[{"entities":[{"type":"Vehicle"}]}]""",
            extra: ""","id":"urn:ngsi-ld:ContextSourceRegistration:down" """));

        var response = await _b.Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single((await response.ReadJson()).AsArray());
        var warning = response.Headers.GetValues("NGSILD-Warning").Single();
        Assert.Contains("urn:ngsi-ld:ContextSourceRegistration:down", warning, StringComparison.Ordinal);

        var missing = await _b.Client.GetAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:elsewhere");
        await missing.AssertProblem(404, "ResourceNotFound");
        Assert.True(missing.Headers.Contains("NGSILD-Warning"));

        var status = await (await _b.Client.GetAsync(Registrations + "/urn:ngsi-ld:ContextSourceRegistration:down")).ReadJson();
        Assert.Equal("failed", status["status"]!.GetValue<string>());
        Assert.Equal(2, status["timesFailed"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_source_that_times_out_or_answers_badly_does_not_fail_the_request()
    {
        await Create(_b.Client, Vehicle("aizu-1", 20, "2026-11-25T09:00:00Z"));
        await Register(_b.Client, Registration(A + "/slow", """[{"entities":[{"type":"Vehicle"}]}]""", extra: ""","management":{"timeout":300}"""));
        await Register(_b.Client, Registration(A + "/garbage", """[{"entities":[{"type":"Vehicle"}]}]"""));
        await Register(_b.Client, Registration(A + "/forbidden", """[{"entities":[{"type":"Vehicle"}]}]"""));

        var clock = Stopwatch.StartNew();
        var response = await _b.Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle");
        clock.Stop();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single((await response.ReadJson()).AsArray());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"took {clock.Elapsed}");
        var warnings = response.Headers.GetValues("NGSILD-Warning").ToList();
        Assert.Equal(3, warnings.Count);
        Assert.Contains(warnings, w => w.StartsWith("199 ", StringComparison.Ordinal) && w.Contains("300 ms", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.StartsWith("111 ", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.StartsWith("299 ", StringComparison.Ordinal) && w.Contains("403", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Forwarded_requests_carry_local_tenant_context_via_and_only_the_registered_attributes()
    {
        var hosted = await _b.Client.PostJson("/ngsi-ld/v1/jsonldContexts", """{"@context":{"blade":"https://aizu.example/ns#blade"}}""");
        var contextUrl = hosted.Headers.Location!.ToString();
        await Register(_b.Client, Registration(A + "/capture", """[{"entities":[{"type":"Vehicle"}],"propertyNames":["speed"]}]""",
            extra: ""","tenant":"kitakata" """));

        using var request = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle&attrs=speed,blade&options=keyValues");
        request.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        request.Headers.TryAddWithoutValidation("Via", "1.1 some-proxy");
        Assert.Equal(HttpStatusCode.OK, (await _b.Client.SendAsync(request)).StatusCode);

        var (query, via, tenant, link) = Assert.Single(_seen);
        var parameters = System.Web.HttpUtility.ParseQueryString(query);
        Assert.Equal("true", parameters["local"]);
        Assert.Equal("speed", parameters["attrs"]);
        Assert.Equal("Vehicle", parameters["type"]);
        Assert.Equal("sysAttrs", parameters["options"]);
        Assert.Equal("1.1 some-proxy, 1.1 city-b", via);
        Assert.Equal("kitakata", tenant);
        Assert.Contains(contextUrl, link, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mutual_registrations_do_not_loop()
    {
        await Create(_a.Client, Vehicle("kitakata-1", 50, "2026-11-25T09:00:00Z"));
        await Create(_b.Client, Vehicle("aizu-1", 20, "2026-11-25T09:00:00Z"));
        await Register(_b.Client, Registration(A, """[{"entities":[{"type":"Vehicle"}]}]"""));
        await Register(_a.Client, Registration(B, """[{"entities":[{"type":"Vehicle"}]}]"""));

        var fromB = await QueryById(_b.Client, "?type=Vehicle");
        var fromA = await QueryById(_a.Client, "?type=Vehicle");
        Assert.Equal(["Vehicle:aizu-1", "Vehicle:kitakata-1"], fromB.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["Vehicle:aizu-1", "Vehicle:kitakata-1"], fromA.Keys.Order(StringComparer.Ordinal));

        // A request that already passed through B (a source ignoring local=true) is answered by B alone.
        using var looped = new HttpRequestMessage(HttpMethod.Get, NgsiHttp.Entities + "?type=Vehicle");
        looped.Headers.TryAddWithoutValidation("Via", "1.1 city-a, 1.1 city-b");
        var response = await _b.Client.SendAsync(looped);
        Assert.Equal(["urn:ngsi-ld:Vehicle:aizu-1"], (await response.ReadJson()).AsArray().Select(e => e!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_registration_of_the_broker_itself_is_not_asked()
    {
        await Create(_b.Client, Vehicle("aizu-1", 20, "2026-11-25T09:00:00Z"));
        await Register(_b.Client, Registration(B, """[{"entities":[{"type":"Vehicle"}]}]"""));
        var response = await _b.Client.GetAsync(NgsiHttp.Entities + "?type=Vehicle");
        Assert.Single((await response.ReadJson()).AsArray());
        Assert.False(response.Headers.Contains("NGSILD-Warning"));
    }
}

public sealed class FederationTestsOnSqlite() : FederationTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class FederationTestsOnPostgres(PostgresServer postgres) : FederationTests(Backend.Postgres(postgres));
