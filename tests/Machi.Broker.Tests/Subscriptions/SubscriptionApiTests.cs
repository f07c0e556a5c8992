using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Subscriptions;

/// <summary>Subscriptions over HTTP: CRUD, validation, triggers, watchedAttributes, q/geoQ, formats and showChanges.</summary>
public abstract class SubscriptionApiTests(Backend backend)
{
    public const string Subscriptions = "/ngsi-ld/v1/subscriptions";

    internal static readonly Dictionary<string, string?> FastRetries = new()
    {
        ["Broker:Subscriptions:InitialRetryDelay"] = "00:00:00.200",
        ["Broker:Subscriptions:MaxRetryDelay"] = "00:00:01",
    };

    internal static string Subscription(Uri endpoint, string extra = "", string notification = "") => $$$"""
        {"type":"Subscription","entities":[{"type":"Vehicle"}]{{{extra}}},
         "notification":{"endpoint":{"uri":"{{{endpoint}}}","accept":"application/json"}{{{notification}}}}}
        """;

    internal static async Task<string> SubscribeAsync(HttpClient client, string body, string mediaType = "application/json")
    {
        var response = await client.PostJson(Subscriptions, body, mediaType);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return response.Headers.Location!.OriginalString;
    }

    [Fact]
    public async Task Subscription_is_created_read_listed_paused_and_deleted()
    {
        await using var server = await backend.StartAsync();
        var endpoint = new Uri("http://127.0.0.1:9/notify");
        var location = await SubscribeAsync(server.Client, Subscription(endpoint, """, "watchedAttributes":["speed"], "q":"speed>50", "throttling":2, "subscriptionName":"fast plows" """,
            """, "attributes":["speed"], "format":"keyValues" """));
        Assert.StartsWith(Subscriptions + "/urn:ngsi-ld:Subscription:", location, StringComparison.Ordinal);

        var read = await (await server.Client.GetAsync(location)).ReadJson();
        Assert.Equal("Subscription", read["type"]!.GetValue<string>());
        Assert.Equal("speed", read["watchedAttributes"]![0]!.GetValue<string>());
        Assert.Equal("Vehicle", read["entities"]![0]!["type"]!.GetValue<string>());
        Assert.Equal("active", read["status"]!.GetValue<string>());
        Assert.True(read["isActive"]!.GetValue<bool>());
        Assert.Equal("speed>50", read["q"]!.GetValue<string>());
        Assert.Equal(0, read["notification"]!["timesSent"]!.GetValue<int>());
        Assert.Equal("keyValues", read["notification"]!["format"]!.GetValue<string>());
        Assert.Equal(endpoint.ToString(), read["notification"]!["endpoint"]!["uri"]!.GetValue<string>());

        await SubscribeAsync(server.Client, Subscription(endpoint));
        var list = await server.Client.GetAsync(Subscriptions + "?count=true&limit=1");
        Assert.Equal("2", list.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.Single((await list.ReadJson()).AsArray());

        var paused = await server.Client.PatchJson(location, """{"isActive":false}""");
        Assert.Equal(HttpStatusCode.NoContent, paused.StatusCode);
        Assert.Equal("paused", (await (await server.Client.GetAsync(location)).ReadJson())["status"]!.GetValue<string>());

        var other = await server.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, location) { Headers = { { "NGSILD-Tenant", "other" } } });
        await other.AssertProblem(404, "ResourceNotFound");

        Assert.Equal(HttpStatusCode.NoContent, (await server.Client.DeleteAsync(location)).StatusCode);
        await (await server.Client.GetAsync(location)).AssertProblem(404, "ResourceNotFound");
        await (await server.Client.DeleteAsync(location)).AssertProblem(404, "ResourceNotFound");
    }

    [Theory]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}]}""")]
    [InlineData("""{"type":"Subscription","notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Sub","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"not a uri"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"ftp://x/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"notificationTrigger":["entityExploded"],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","watchedAttributes":["speed"],"timeInterval":5,"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"q":"speed>>","notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"geoQ":{"georel":"near","geometry":"Point","coordinates":[1,2]},"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"throttling":-1,"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"expiresAt":"2001-01-01T00:00:00Z","notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"format":"keyValues","showChanges":true,"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n","accept":"text/plain"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n","receiverInfo":[{"key":"bad header","value":"x"}]}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"idPattern":"("}],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    [InlineData("""{"type":"Subscription","entities":[{"type":"Vehicle"}],"wat":1,"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""")]
    public async Task Invalid_subscription_is_refused_with_BadRequestData(string body)
    {
        await using var server = await backend.StartAsync();
        await (await server.Client.PostJson(Subscriptions, body)).AssertProblem(400, "BadRequestData");
        Assert.Empty((await (await server.Client.GetAsync(Subscriptions)).ReadJson()).AsArray());
    }

    [Fact]
    public async Task Same_id_twice_is_AlreadyExists_and_bad_update_keeps_the_subscription()
    {
        await using var server = await backend.StartAsync();
        var body = """{"id":"urn:ngsi-ld:Subscription:s1","type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}""";
        await SubscribeAsync(server.Client, body);
        await (await server.Client.PostJson(Subscriptions, body)).AssertProblem(409, "AlreadyExists");
        var location = Subscriptions + "/urn:ngsi-ld:Subscription:s1";
        await (await server.Client.PatchJson(location, """{"timeInterval":5,"watchedAttributes":["speed"]}""")).AssertProblem(400, "BadRequestData");
        Assert.Null((await (await server.Client.GetAsync(location)).ReadJson())["timeInterval"]);
    }

    [Fact]
    public async Task Default_triggers_notify_attribute_creation_and_update_with_the_entity_in_normalized_form()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        var location = await SubscribeAsync(server.Client, Subscription(receiver.Url));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", """{"speed":{"type":"Property","value":42}}""");

        var received = await receiver.WaitForAsync(2);
        var first = received[0];
        Assert.Equal("Notification", first.Body["type"]!.GetValue<string>());
        Assert.Equal(location[(Subscriptions.Length + 1)..], first.Body["subscriptionId"]!.GetValue<string>());
        Assert.StartsWith("urn:ngsi-ld:Notification:", first.Body["id"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.NotNull(first.Body["notifiedAt"]);
        Assert.StartsWith("application/json", first.ContentType, StringComparison.Ordinal);
        Assert.Contains("json-ld#context", first.Headers["Link"], StringComparison.Ordinal);
        Assert.Equal("urn:ngsi-ld:Vehicle:v1", first.Entity["id"]!.GetValue<string>());
        Assert.Equal(10, first.Entity["speed"]!["value"]!.GetValue<double>());
        Assert.Equal(42, received[1].Entity["speed"]!["value"]!.GetValue<double>());
        Assert.Equal("Property", received[1].Entity["speed"]!["type"]!.GetValue<string>());

        // Deleting the entity is not among the default triggers.
        await server.Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1");
        await receiver.AssertNoMoreThanAsync(2, TimeSpan.FromSeconds(1));

        var read = await (await server.Client.GetAsync(location)).ReadJson();
        Assert.Equal(2, read["notification"]!["timesSent"]!.GetValue<int>());
        Assert.Equal("ok", read["notification"]!["status"]!.GetValue<string>());
        Assert.NotNull(read["notification"]!["lastSuccess"]);
    }

    [Fact]
    public async Task Entity_triggers_notify_creation_and_deletion_only()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "notificationTrigger":["entityCreated","entityDeleted"] """));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", """{"speed":{"type":"Property","value":42}}""");
        await server.Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1");

        var received = await receiver.WaitForAsync(2);
        await receiver.AssertNoMoreThanAsync(2, TimeSpan.FromSeconds(1));
        Assert.Equal(10, received[0].Entity["speed"]!["value"]!.GetValue<double>());
        var deleted = received[1].Entity;
        Assert.Equal("urn:ngsi-ld:Vehicle:v1", deleted["id"]!.GetValue<string>());
        Assert.Equal("Vehicle", deleted["type"]!.GetValue<string>());
        Assert.NotNull(deleted["deletedAt"]);
        Assert.Null(deleted["speed"]);
    }

    [Fact]
    public async Task Entity_updated_trigger_fires_on_update_but_not_on_creation()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "notificationTrigger":["entityUpdated"] """));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", """{"speed":{"type":"Property","value":42}}""");
        var received = await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(1));
        Assert.Equal(42, received[0].Entity["speed"]!["value"]!.GetValue<double>());
    }

    [Fact]
    public async Task Attribute_deleted_trigger_sends_NGSI_LD_null_and_the_previous_value()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "notificationTrigger":["attributeDeleted"] """, """, "showChanges":true """));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        Assert.Equal(HttpStatusCode.NoContent, (await server.Client.DeleteAsync(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs/speed")).StatusCode);
        var received = await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(0.5));
        var speed = received[0].Entity["speed"]!;
        Assert.Equal("urn:ngsi-ld:null", speed["value"]!.GetValue<string>());
        Assert.Equal(10, speed["previousValue"]!.GetValue<double>());
    }

    [Fact]
    public async Task Only_changes_of_watched_attributes_notify()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "watchedAttributes":["speed"] """));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", """{"name":{"type":"LanguageProperty","languageMap":{"ja":"除雪車2号"}}}""");
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", """{"speed":{"type":"Property","value":20}}""");
        var received = await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(1));
        Assert.Equal(20, received[0].Entity["speed"]!["value"]!.GetValue<double>());
    }

    [Fact]
    public async Task Q_and_geoQ_restrict_notifications_to_matching_entities()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        // Near Aizuwakamatsu city hall (within 1 km) and faster than 50.
        await SubscribeAsync(server.Client, Subscription(receiver.Url,
            """, "q":"speed>50", "geoQ":{"georel":"near;maxDistance==1000","geometry":"Point","coordinates":[139.9298,37.4948]} """));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:slow", 10));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:fast", 80));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:far", 90).Replace("139.9299,37.4947", "140.5,37.9", StringComparison.Ordinal));
        await server.Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:Bus:b1","type":"Bus","speed":{"type":"Property","value":99}}""");
        var received = await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(1));
        Assert.Equal("urn:ngsi-ld:Vehicle:fast", received[0].Entity["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task KeyValues_format_with_attributes_and_receiverInfo_headers_and_tenant()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        var tenant = new HttpRequestMessage(HttpMethod.Post, SubscriptionApiTests.Subscriptions)
        {
            Content = NgsiHttp.Json(Subscription(receiver.Url, notification: """, "format":"keyValues", "attributes":["speed"] """)
                .Replace("\"accept\":\"application/json\"", "\"accept\":\"application/json\",\"receiverInfo\":[{\"key\":\"X-Api-Key\",\"value\":\"secret-1\"}]", StringComparison.Ordinal)),
            Headers = { { "NGSILD-Tenant", "aizu" } },
        };
        Assert.Equal(HttpStatusCode.Created, (await server.Client.SendAsync(tenant)).StatusCode);
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:default-tenant", 10));
        var create = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities)
        {
            Content = NgsiHttp.Json(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 33)),
            Headers = { { "NGSILD-Tenant", "aizu" } },
        };
        Assert.Equal(HttpStatusCode.Created, (await server.Client.SendAsync(create)).StatusCode);

        var received = await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(0.5));
        var entity = received[0].Entity.AsObject();
        Assert.Equal(33, entity["speed"]!.GetValue<double>());
        Assert.False(entity.ContainsKey("name"));
        Assert.Equal("secret-1", received[0].Headers["X-Api-Key"]);
        Assert.Equal("aizu", received[0].Headers["NGSILD-Tenant"]);
    }

    [Fact]
    public async Task Concise_format_and_json_ld_notifications_carry_the_subscriptions_context()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        var context = """{"Plow":"https://aizu.example/Plow","velocity":"https://aizu.example/velocity"}""";
        await SubscribeAsync(server.Client, $$"""
            {"type":"Subscription","entities":[{"type":"Plow"}],"watchedAttributes":["velocity"],
             "notification":{"format":"concise","endpoint":{"uri":"{{receiver.Url}}","accept":"application/ld+json"} },
             "@context":[{{context}},"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]}
            """.Replace("\n", string.Empty, StringComparison.Ordinal), "application/ld+json");
        await server.Client.PostJson(NgsiHttp.Entities, $$"""
            {"id":"urn:ngsi-ld:Plow:p1","type":"Plow","velocity":{"type":"Property","value":12},"@context":[{{context}}]}
            """, "application/ld+json");
        var received = await receiver.WaitForAsync(1);
        Assert.StartsWith("application/ld+json", received[0].ContentType, StringComparison.Ordinal);
        Assert.NotNull(received[0].Body["@context"]);
        var entity = received[0].Entity;
        Assert.Equal("Plow", entity["type"]!.GetValue<string>());
        Assert.Equal(12, entity["velocity"]!.GetValue<double>()); // concise: a bare value

        // Read back with the core context, the names come out expanded.
        var listed = (await (await server.Client.GetAsync(Subscriptions)).ReadJson())[0]!;
        Assert.Equal("https://aizu.example/velocity", listed["watchedAttributes"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task ShowChanges_adds_the_previous_value_of_updated_attributes()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await SubscribeAsync(server.Client, Subscription(receiver.Url, notification: """, "showChanges":true """));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs",
            """{"speed":{"type":"Property","value":25},"operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:other"}}""");
        var entity = (await receiver.WaitForAsync(1))[0].Entity;
        Assert.Equal(25, entity["speed"]!["value"]!.GetValue<double>());
        Assert.Equal(10, entity["speed"]!["previousValue"]!.GetValue<double>());
        Assert.Equal("urn:ngsi-ld:Organization:aizu-city", entity["operator"]!["previousObject"]!.GetValue<string>());
        Assert.Null(entity["location"]!["previousValue"]);
    }

    [Fact]
    public async Task Throttling_drops_notifications_until_the_period_has_passed()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "throttling":3 """));
        for (var i = 0; i < 5; i++)
        {
            await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", $$$"""{"speed":{"type":"Property","value":{{{20 + i}}}}}""");
        }

        await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(1));
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:v1/attrs", """{"speed":{"type":"Property","value":99}}""");
        var received = await receiver.WaitForAsync(2);
        Assert.Equal(99, received[1].Entity["speed"]!["value"]!.GetValue<double>());
    }

    [Fact]
    public async Task TimeInterval_sends_every_matching_entity_periodically()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v2", 20));
        await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "timeInterval":1 """));
        var received = await receiver.WaitForAsync(2, TimeSpan.FromSeconds(10));
        Assert.All(received.Take(2), r => Assert.Equal(2, r.Data.Count));
    }

    [Fact]
    public async Task Paused_subscription_does_not_notify_until_resumed()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync();
        var location = await SubscribeAsync(server.Client, Subscription(receiver.Url, """, "isActive":false """));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v1", 10));
        await receiver.AssertNoMoreThanAsync(0, TimeSpan.FromSeconds(1));
        await server.Client.PatchJson(location, """{"isActive":true}""");
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v2", 10));
        var received = await receiver.WaitForAsync(1);
        Assert.Equal("urn:ngsi-ld:Vehicle:v2", received[0].Entity["id"]!.GetValue<string>());
    }
}

public sealed class SubscriptionApiTestsOnSqlite() : SubscriptionApiTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class SubscriptionApiTestsOnPostgres(PostgresServer postgres) : SubscriptionApiTests(Backend.Postgres(postgres));
