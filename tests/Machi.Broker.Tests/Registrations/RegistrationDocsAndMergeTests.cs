using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Registrations;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.Model;

namespace Machi.Broker.Tests.Registrations;

public abstract class RegistrationDocsAndMergeTests(Backend backend)
{
    [Fact]
    public async Task OpenApi_describes_discovery_and_registration_operations()
    {
        await using var server = await backend.StartAsync();
        using var document = JsonDocument.Parse(await server.Client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)));
        var paths = document.RootElement.GetProperty("paths");
        foreach (var path in new[] { "/ngsi-ld/v1/types", "/ngsi-ld/v1/types/{type}", "/ngsi-ld/v1/attributes", "/ngsi-ld/v1/attributes/{attrId}" })
        {
            Assert.True(paths.GetProperty(path).TryGetProperty("get", out _), path);
        }

        var registrations = paths.GetProperty("/ngsi-ld/v1/csourceRegistrations");
        Assert.True(registrations.TryGetProperty("post", out var post) && post.TryGetProperty("requestBody", out _));
        Assert.Contains(registrations.GetProperty("get").GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "idPattern");
        var byId = paths.GetProperty("/ngsi-ld/v1/csourceRegistrations/{registrationId}");
        Assert.True(byId.TryGetProperty("patch", out _) && byId.TryGetProperty("delete", out _) && byId.TryGetProperty("get", out _));
    }

    [Fact]
    public void Merge_keeps_dataset_instances_apart_and_prefers_the_latest_observation()
    {
        var local = Entity("urn:ngsi-ld:Vehicle:1", ("speed", null, "2026-11-25T08:00:00Z", 10), ("speed", "urn:ngsi-ld:dataset:gps", "2026-11-25T08:00:00Z", 11));
        var remote = Entity("urn:ngsi-ld:Vehicle:1", ("speed", null, "2026-11-25T09:00:00Z", 20), ("speed", "urn:ngsi-ld:dataset:radar", "2026-11-25T07:00:00Z", 30));
        remote.Types.Add("https://aizu.example/ns#Plow");

        EntityMerge.Into(local, remote, fillOnly: false);

        var speeds = local.Attributes["speed"];
        Assert.Equal(3, speeds.Count);
        Assert.Equal(20, speeds.Single(s => s.DatasetId is null).Payload.GetValue<double>());
        Assert.Equal(11, speeds.Single(s => s.DatasetId == "urn:ngsi-ld:dataset:gps").Payload.GetValue<double>());
        Assert.Equal(30, speeds.Single(s => s.DatasetId == "urn:ngsi-ld:dataset:radar").Payload.GetValue<double>());
        Assert.Contains("https://aizu.example/ns#Plow", local.Types);

        var older = Entity("urn:ngsi-ld:Vehicle:1", ("speed", null, "2026-11-25T01:00:00Z", 1));
        EntityMerge.Into(local, older, fillOnly: false);
        Assert.Equal(20, local.Attributes.Find("speed", null)!.Payload.GetValue<double>());

        var auxiliary = Entity("urn:ngsi-ld:Vehicle:1", ("speed", null, "2026-12-31T00:00:00Z", 99), ("fuel", null, "2026-12-31T00:00:00Z", 0.5));
        EntityMerge.Into(local, auxiliary, fillOnly: true);
        Assert.Equal(20, local.Attributes.Find("speed", null)!.Payload.GetValue<double>());
        Assert.Equal(0.5, local.Attributes.Find("fuel", null)!.Payload.GetValue<double>());
    }

    private static Entity Entity(string id, params (string Name, string? DatasetId, string ObservedAt, double Value)[] attributes)
    {
        var entity = new Entity(id, ["https://uri.etsi.org/ngsi-ld/default-context/Vehicle"]);
        foreach (var (name, datasetId, observedAt, value) in attributes)
        {
            entity.Attributes.Put(name, new AttributeInstance(AttributeKind.Property, JsonValue.Create(value)) { DatasetId = datasetId, ObservedAt = observedAt });
        }

        return entity;
    }
}

public sealed class RegistrationDocsAndMergeTestsOnSqlite() : RegistrationDocsAndMergeTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class RegistrationDocsAndMergeTestsOnPostgres(PostgresServer postgres) : RegistrationDocsAndMergeTests(Backend.Postgres(postgres));
