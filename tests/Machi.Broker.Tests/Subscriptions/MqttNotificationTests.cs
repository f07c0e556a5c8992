using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Subscriptions;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Subscriptions;

/// <summary>MQTT notifications (NGSI-LD clause 7) through a real mosquitto, read by a real MQTT client.</summary>
public abstract class MqttNotificationTests(Backend backend)
{
    private const string Topic = "aizu/snowplows/speed";

    private static string Subscription(Uri endpoint, string? version, string? qos, string receiverInfo = "")
    {
        var notifierInfo = new List<string>();
        if (version is not null)
        {
            notifierInfo.Add($$"""{"key":"MQTT-Version","value":"{{version}}"}""");
        }

        if (qos is not null)
        {
            notifierInfo.Add($$"""{"key":"MQTT-QoS","value":"{{qos}}"}""");
        }

        var info = notifierInfo.Count == 0 ? string.Empty : $""", "notifierInfo":[{string.Join(',', notifierInfo)}]""";
        return """{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":""" + $"\"{endpoint}\","
            + "\"accept\":\"application/json\"" + info + receiverInfo + "}}}";
    }

    [Theory]
    [InlineData(null, null, 0, false)]
    [InlineData("mqtt3.1.1", "0", 0, false)]
    [InlineData("mqtt3.1.1", "1", 1, false)]
    [InlineData("mqtt5.0", "0", 0, true)]
    [InlineData("mqtt5.0", "1", 1, true)]
    [InlineData("mqtt5.0", "2", 2, true)]
    public async Task Mqtt_endpoint_receives_each_notification_on_its_topic_as_metadata_and_body(string? version, string? qos, int expectedQoS, bool mqtt5)
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var subscriber = await MqttSubscriber.ConnectAsync(broker, Topic);
        await using var server = await backend.StartAsync();
        var location = await SubscriptionApiTests.SubscribeAsync(server.Client,
            Subscription(broker.Endpoint(Topic), version, qos, """, "receiverInfo":[{"key":"X-City","value":"aizuwakamatsu"}]"""));

        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:plow1", 10));
        await server.Client.PatchJson(NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:plow1/attrs", """{"speed":{"type":"Property","value":25}}""");
        var received = await subscriber.WaitForAsync(2);

        foreach (var message in received)
        {
            Assert.Equal(Topic, message.Topic);
            Assert.Equal(expectedQoS, message.QoS);
            Assert.Equal(mqtt5 ? "application/json" : null, message.ContentType); // only MQTT 5 carries a content type
            Assert.Equal("application/json", message.Metadata["Content-Type"]!.GetValue<string>());
            Assert.Contains("rel=\"http://www.w3.org/ns/json-ld#context\"", message.Metadata["Link"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("aizuwakamatsu", message.Metadata["X-City"]!.GetValue<string>());
            Assert.Equal("Notification", message.Body["type"]!.GetValue<string>());
            Assert.Equal(location[(location.LastIndexOf('/') + 1)..], message.Body["subscriptionId"]!.GetValue<string>());
            Assert.StartsWith("urn:", message.Body["id"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("urn:ngsi-ld:Vehicle:plow1", message.Entity["id"]!.GetValue<string>());
        }

        Assert.Equal([10.0, 25.0], received.Select(m => m.Entity["speed"]!["value"]!.GetValue<double>()));
        var subscription = await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["timesSent"]!.GetValue<int>() >= 2);
        Assert.Equal("ok", subscription["notification"]!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Mqtts_endpoint_is_reached_over_TLS_when_its_certificate_chains_to_a_trusted_authority_and_refused_otherwise()
    {
        using var certificates = new TestCertificates();
        await using var broker = await MosquittoBroker.StartAsync(tls: certificates);
        await using var subscriber = await MqttSubscriber.ConnectAsync(broker, Topic);
        var directory = TempDirectory.Create("machi-ca-");
        try
        {
            // Trusting the city's CA: notifications go out over TLS (the subscriber reads them on the plain listener).
            await using (var trusting = await backend.StartAsync(settings: new Dictionary<string, string?>
            {
                ["Broker:Subscriptions:TrustedCertificateAuthorities"] = certificates.WriteAuthority(directory),
            }))
            {
                var location = await SubscriptionApiTests.SubscribeAsync(trusting.Client, Subscription(broker.SecureEndpoint(Topic), null, "1"));
                await trusting.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:tls", 33));
                var message = (await subscriber.WaitForAsync(1))[0];
                Assert.Equal(33, message.Entity["speed"]!["value"]!.GetValue<double>());
                await WaitForSubscriptionAsync(trusting.Client, location, s => s["notification"]!["timesSent"]!.GetValue<int>() >= 1);
            }

            // Without it the certificate is not trusted: the notification fails, nothing is sent in clear.
            await using var doubting = await backend.StartAsync(settings: SubscriptionApiTests.FastRetries);
            var refused = await SubscriptionApiTests.SubscribeAsync(doubting.Client, Subscription(broker.SecureEndpoint(Topic), null, "1"));
            await doubting.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:untrusted", 44));
            var failed = await WaitForSubscriptionAsync(doubting.Client, refused, s => s["notification"]!["timesFailed"]?.GetValue<int>() >= 1);
            Assert.Equal("failed", failed["notification"]!["status"]!.GetValue<string>());
            Assert.Single(subscriber.Received);
        }
        finally
        {
            TempDirectory.Delete(directory);
        }
    }

    [Fact]
    public async Task Json_ld_notification_over_mqtt_carries_its_context_in_the_body_and_the_tenant_in_metadata()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var subscriber = await MqttSubscriber.ConnectAsync(broker, Topic);
        await using var server = await backend.StartAsync();
        var body = Subscription(broker.Endpoint(Topic), "mqtt5.0", "1").Replace("\"application/json\"", "\"application/ld+json\"", StringComparison.Ordinal);
        var subscribe = new HttpRequestMessage(HttpMethod.Post, SubscriptionApiTests.Subscriptions) { Content = NgsiHttp.Json(body), Headers = { { "NGSILD-Tenant", "aizu" } } };
        Assert.Equal(HttpStatusCode.Created, (await server.Client.SendAsync(subscribe)).StatusCode);
        var create = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = NgsiHttp.Json(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:plow1")), Headers = { { "NGSILD-Tenant", "aizu" } } };
        Assert.Equal(HttpStatusCode.Created, (await server.Client.SendAsync(create)).StatusCode);

        var message = (await subscriber.WaitForAsync(1))[0];
        Assert.Equal("application/ld+json", message.Metadata["Content-Type"]!.GetValue<string>());
        Assert.Null(message.Metadata["Link"]);
        Assert.Equal("aizu", message.Metadata["NGSILD-Tenant"]!.GetValue<string>());
        Assert.NotNull(message.Body["@context"]);
    }

    [Fact]
    public async Task Broker_down_then_back_receives_every_notification_in_order_per_entity()
    {
        await using var broker = await MosquittoBroker.StartAsync(persistent: true);
        await using var subscriber = await MqttSubscriber.ConnectAsync(broker, Topic);
        await using var server = await backend.StartAsync(settings: SubscriptionApiTests.FastRetries);
        var location = await SubscriptionApiTests.SubscribeAsync(server.Client, Subscription(broker.Endpoint(Topic), "mqtt5.0", "1"));
        const int entities = 3, updates = 5;
        for (var e = 0; e < entities; e++)
        {
            Assert.Equal(HttpStatusCode.Created, (await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle($"urn:ngsi-ld:Vehicle:v{e}", 0))).StatusCode);
        }

        await subscriber.WaitForAsync(entities); // the connection is up before the broker goes away

        await broker.StopAsync();
        for (var i = 1; i <= updates; i++)
        {
            for (var e = 0; e < entities; e++)
            {
                var response = await server.Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:v{e}/attrs", $$$"""{"speed":{"type":"Property","value":{{{i}}}}}""");
                Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            }
        }

        var failing = await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["timesFailed"]!.GetValue<int>() > 0);
        Assert.Equal("failed", failing["notification"]!["status"]!.GetValue<string>());
        await Task.Delay(TimeSpan.FromSeconds(3));
        await broker.StartAgainAsync();

        var received = await subscriber.WaitForAsync(entities * (updates + 1), TimeSpan.FromSeconds(30));
        var unique = received.DistinctBy(m => m.Body["id"]!.GetValue<string>()).ToList();
        for (var e = 0; e < entities; e++)
        {
            var speeds = unique.Where(m => m.Entity["id"]!.GetValue<string>() == $"urn:ngsi-ld:Vehicle:v{e}")
                .Select(m => (int)m.Entity["speed"]!["value"]!.GetValue<double>()).ToList();
            Assert.Equal(Enumerable.Range(0, updates + 1), speeds);
        }

        await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["status"]!.GetValue<string>() == "ok");
    }

    [Theory]
    [InlineData("mqtt://127.0.0.1:1883", null, null)]
    [InlineData("mqtt://127.0.0.1:1883/", null, null)]
    [InlineData("mqtt://127.0.0.1:1883/aizu/#", null, null)]
    [InlineData("mqtt://127.0.0.1:1883/aizu/+/speed", null, null)]
    [InlineData("mqtt://127.0.0.1:1883/aizu?retain=true", null, null)]
    [InlineData("mqtt://127.0.0.1:1883/aizu", "mqtt4", null)]
    [InlineData("mqtt://127.0.0.1:1883/aizu", "5.0", null)]
    [InlineData("mqtt://127.0.0.1:1883/aizu", null, "3")]
    [InlineData("mqtt://127.0.0.1:1883/aizu", null, "one")]
    [InlineData("mqtt://127.0.0.1:1883/aizu", null, "")]
    public async Task Invalid_mqtt_endpoint_or_notifierInfo_is_BadRequestData(string uri, string? version, string? qos)
    {
        await using var server = await backend.StartAsync();
        var response = await server.Client.PostJson(SubscriptionApiTests.Subscriptions, Subscription(new Uri(uri), version, qos));
        await response.AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Mqtt_endpoint_with_credentials_is_accepted_and_an_update_to_an_invalid_QoS_is_refused()
    {
        await using var server = await backend.StartAsync();
        var location = await SubscriptionApiTests.SubscribeAsync(server.Client, Subscription(new Uri("mqtts://city:s3cret@mqtt.example.org/aizu/plows"), "mqtt5.0", "2"));
        var read = await (await server.Client.GetAsync(location)).ReadJson();
        Assert.Equal("mqtts://city:s3cret@mqtt.example.org/aizu/plows", read["notification"]!["endpoint"]!["uri"]!.GetValue<string>());
        Assert.Equal("2", read["notification"]!["endpoint"]!["notifierInfo"]![1]!["value"]!.GetValue<string>());

        var update = """{"notification":{"endpoint":{"uri":"mqtt://127.0.0.1:1883/aizu","notifierInfo":[{"key":"MQTT-QoS","value":"7"}]}}}""";
        await (await server.Client.PatchJson(location, update)).AssertProblem(400, "BadRequestData");
    }

    [Theory]
    [InlineData("mqtt://127.0.0.1/a", "127.0.0.1", 1883, false, null, null, "a")]
    [InlineData("mqtts://broker.example.org/city/aizu/plows", "broker.example.org", 8883, true, null, null, "city/aizu/plows")]
    [InlineData("mqtt://user:p%40ss@broker:1884/t%20x", "broker", 1884, false, "user", "p@ss", "t x")]
    [InlineData("mqtt://user@broker/t", "broker", 1883, false, "user", null, "t")]
    public void Mqtt_endpoint_uri_names_broker_credentials_and_topic(string uri, string host, int port, bool secure, string? user, string? password, string topic)
    {
        Assert.True(MqttEndpoint.TryParse(new Uri(uri), [], out var endpoint, out var error), error);
        Assert.Equal(new MqttBroker(host, port, secure, user, password, MqttVersion.V311), endpoint.Broker);
        Assert.Equal(topic, endpoint.Topic);
        Assert.Equal(0, endpoint.QoS);
        Assert.DoesNotContain(password ?? "\u0001", endpoint.Broker.ToString(), StringComparison.Ordinal);
    }

    private static async Task<JsonNode> WaitForSubscriptionAsync(HttpClient client, string location, Func<JsonNode, bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var read = await (await client.GetAsync(location)).ReadJson();
            if (condition(read))
            {
                return read;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the subscription did not reach the expected state: {read.ToJsonString()}");
            await Task.Delay(100);
        }
    }
}

public sealed class MqttNotificationTestsOnSqlite() : MqttNotificationTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class MqttNotificationTestsOnPostgres(PostgresServer postgres) : MqttNotificationTests(Backend.Postgres(postgres));
