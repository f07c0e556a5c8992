using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Temporal;

/// <summary>The history never loses an acknowledged change, whatever moment the server dies at.</summary>
public abstract class TemporalDurabilityTests(Backend backend)
{
    [Fact]
    public async Task After_SIGKILL_and_a_restart_the_history_holds_every_acknowledged_update()
    {
        const string id = "urn:ngsi-ld:Vehicle:plow-crash";
        var data = TempDirectory.Create("machi-temporal-crash-");
        try
        {
            var acknowledged = new List<double>();
            await using (var server = await backend.StartProcessAsync(data))
            {
                Assert.Equal(HttpStatusCode.Created, (await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle(id, 0))).StatusCode);
                acknowledged.Add(0);
                for (var i = 1; i <= 40; i++)
                {
                    var at = new DateTimeOffset(2026, 11, 25, 9, 0, 0, TimeSpan.Zero).AddSeconds(i).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
                    var response = await server.Client.PatchJson($"{NgsiHttp.Entities}/{id}/attrs",
                        $$$"""{"speed":{"type":"Property","value":{{{i}}},"observedAt":"{{{at}}}"}}""");
                    Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
                    acknowledged.Add(i);
                }

                server.Kill();
            }

            await using (var restarted = await backend.StartProcessAsync(data))
            {
                var response = await restarted.Client.GetAsync($"/ngsi-ld/v1/temporal/entities/{id}?attrs=speed");
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, body);
                var speeds = JsonNode.Parse(body)!["speed"]!.AsArray().Select(s => s!["value"]!.GetValue<double>()).ToList();
                Assert.Equal(acknowledged, speeds);
            }
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }
}

public sealed class TemporalDurabilityTestsOnSqlite() : TemporalDurabilityTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class TemporalDurabilityTestsOnPostgres(PostgresServer postgres) : TemporalDurabilityTests(Backend.Postgres(postgres));
