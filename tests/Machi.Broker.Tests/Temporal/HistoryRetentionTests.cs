using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Temporal;
using Machi.Broker.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Tests.Temporal;

/// <summary>Broker:HistoryRetention deletes instances past their type's retention, and nothing else.</summary>
public abstract class HistoryRetentionTests(Backend backend) : IAsyncLifetime
{
    private const string Temporal = "/ngsi-ld/v1/temporal/entities";
    private MachiServer _server = null!;

    private HttpClient Client => _server.Client;

    public async Task InitializeAsync() => _server = await backend.StartAsync(settings: new Dictionary<string, string?>
    {
        // Snowplow positions: 30 days in every tenant but "short" (3 days). Shelters have no rule.
        ["Broker:HistoryRetention:0:Type"] = "Vehicle",
        ["Broker:HistoryRetention:0:Keep"] = "30.00:00:00",
        ["Broker:HistoryRetention:1:Type"] = "Vehicle",
        ["Broker:HistoryRetention:1:Tenant"] = "short",
        ["Broker:HistoryRetention:1:Keep"] = "3.00:00:00",
        ["Broker:HistoryRetention:2:Type"] = "Person",
        ["Broker:HistoryRetention:2:Keep"] = "1.00:00:00",
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Instances_older_than_the_longest_matching_rule_go_and_types_without_a_rule_keep_everything()
    {
        var now = DateTimeOffset.UtcNow;
        string Days(int days) => now.AddDays(-days).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        async Task Create(string id, string type, string? tenant = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, Temporal)
            {
                Content = new StringContent(
                    $$"""{"id":"{{id}}","type":{{type}},"speed":[{"type":"Property","value":60,"observedAt":"{{Days(60)}}"},{"type":"Property","value":20,"observedAt":"{{Days(20)}}"},{"type":"Property","value":2,"observedAt":"{{Days(2)}}"}]}""",
                    System.Text.Encoding.UTF8,
                    "application/json"),
            };
            if (tenant is not null)
            {
                request.Headers.Add("NGSILD-Tenant", tenant);
            }

            Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(request)).StatusCode);
        }

        async Task<double[]> Speeds(string id, string? tenant = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{Temporal}/{id}?attrs=speed");
            if (tenant is not null)
            {
                request.Headers.Add("NGSILD-Tenant", tenant);
            }

            var response = await Client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            return [.. JsonNode.Parse(body)!["speed"]!.AsArray().Select(s => s!["value"]!.GetValue<double>())];
        }

        await Create("urn:ngsi-ld:Vehicle:plow", "\"Vehicle\"");

        // A tenant comes to exist with its first entity (a type no rule names: nothing of it goes, whatever the date).
        using (var first = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = new StringContent("""{"id":"urn:ngsi-ld:Shelter:other","type":"Shelter","name":{"type":"Property","value":"other"}}""", System.Text.Encoding.UTF8, "application/json") })
        {
            first.Headers.Add("NGSILD-Tenant", "short");
            Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(first)).StatusCode);
        }

        await Create("urn:ngsi-ld:Vehicle:plow", "\"Vehicle\"", tenant: "short");
        await Create("urn:ngsi-ld:Shelter:s", "\"Shelter\"");
        await Create("urn:ngsi-ld:Vehicle:person", "[\"Vehicle\",\"Person\"]");
        await Create("urn:ngsi-ld:Vehicle:mixed", "[\"Vehicle\",\"Shelter\"]");

        var deleted = await _server.Services.GetRequiredService<HistoryRetention>().CompactAsync(CancellationToken.None);

        Assert.Equal(new double[] { 20, 2 }, await Speeds("urn:ngsi-ld:Vehicle:plow"));
        Assert.Equal(new double[] { 2 }, await Speeds("urn:ngsi-ld:Vehicle:plow", tenant: "short"));
        Assert.Equal(new double[] { 60, 20, 2 }, await Speeds("urn:ngsi-ld:Shelter:s"));
        Assert.Equal(new double[] { 20, 2 }, await Speeds("urn:ngsi-ld:Vehicle:person"));
        Assert.Equal(new double[] { 60, 20, 2 }, await Speeds("urn:ngsi-ld:Vehicle:mixed"));
        Assert.Equal(1 + 2 + 1, deleted);

        // Running it again finds nothing more.
        Assert.Equal(0, await _server.Services.GetRequiredService<HistoryRetention>().CompactAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Retention_cuts_inside_what_an_entity_was_created_with_and_keeps_its_later_instances()
    {
        var now = DateTimeOffset.UtcNow;
        string Days(int days) => now.AddDays(-days).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        const string id = "urn:ngsi-ld:Vehicle:created";
        var created = await Client.PostJson(NgsiHttp.Entities, $$$"""
            {"id":"{{{id}}}","type":"Vehicle",
             "speed":{"type":"Property","value":60,"observedAt":"{{{Days(60)}}}"},
             "heading":{"type":"Property","value":20,"observedAt":"{{{Days(20)}}}"},
             "fuelLevel":{"type":"Property","value":2,"observedAt":"{{{Days(2)}}}"}}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        Assert.Equal(1, await _server.Services.GetRequiredService<HistoryRetention>().CompactAsync(CancellationToken.None));

        var history = JsonNode.Parse(await Client.GetStringAsync($"{Temporal}/{id}"))!;
        Assert.Null(history["speed"]);
        Assert.Equal(20, history["heading"]![0]!["value"]!.GetValue<double>());
        Assert.Equal(2, history["fuelLevel"]![0]!["value"]!.GetValue<double>());
        Assert.Equal(0, await _server.Services.GetRequiredService<HistoryRetention>().CompactAsync(CancellationToken.None));
    }
}

public sealed class HistoryRetentionTestsOnSqlite() : HistoryRetentionTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class HistoryRetentionTestsOnPostgres(PostgresServer postgres) : HistoryRetentionTests(Backend.Postgres(postgres));
