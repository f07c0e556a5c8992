using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Subscriptions;

/// <summary>At-least-once delivery: retries while an endpoint is down, across a crash, per-endpoint isolation, dead letters.</summary>
public abstract class SubscriptionDeliveryTests(Backend backend)
{
    private static async Task WriteSpeedsAsync(HttpClient client, int entities, int updates)
    {
        for (var e = 0; e < entities; e++)
        {
            Assert.Equal(HttpStatusCode.Created, (await client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle($"urn:ngsi-ld:Vehicle:v{e}", 0))).StatusCode);
        }

        for (var i = 1; i <= updates; i++)
        {
            for (var e = 0; e < entities; e++)
            {
                var response = await client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:v{e}/attrs", $$$"""{"speed":{"type":"Property","value":{{{i}}}}}""");
                Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            }
        }
    }

    /// <summary>Every write's notification arrived (duplicates allowed), and for each entity in the order of its writes.</summary>
    private static void AssertAllInOrder(IReadOnlyList<ReceivedNotification> received, int entities, int updates)
    {
        var unique = received.DistinctBy(r => r.Body["id"]!.GetValue<string>()).ToList();
        for (var e = 0; e < entities; e++)
        {
            var speeds = unique.Where(r => r.Entity["id"]!.GetValue<string>() == $"urn:ngsi-ld:Vehicle:v{e}")
                .Select(r => (int)r.Entity["speed"]!["value"]!.GetValue<double>()).ToList();
            Assert.Equal(Enumerable.Range(0, updates + 1).ToList(), speeds);
        }
    }

    private static async Task<JsonNode> WaitForSubscriptionAsync(HttpClient client, string location, Func<JsonNode, bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var read = await (await client.GetAsync(location)).ReadJson();
            if (condition(read))
            {
                return read;
            }

            Assert.True(clock.Elapsed < timeout, $"the subscription did not reach the expected state: {read.ToJsonString()}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Endpoint_down_then_up_receives_every_notification_in_order_per_entity()
    {
        await using var receiver = NotificationReceiver.Down();
        await using var server = await backend.StartAsync(settings: SubscriptionApiTests.FastRetries);
        var location = await SubscriptionApiTests.SubscribeAsync(server.Client, SubscriptionApiTests.Subscription(receiver.Url));
        await WriteSpeedsAsync(server.Client, entities: 3, updates: 5);

        var failing = await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["timesFailed"]!.GetValue<int>() > 0, TimeSpan.FromSeconds(10));
        Assert.Equal("failed", failing["notification"]!["status"]!.GetValue<string>());
        await Task.Delay(TimeSpan.FromSeconds(4));
        await receiver.StartListeningAsync();

        var received = await receiver.WaitForDistinctAsync(18, TimeSpan.FromSeconds(20));
        AssertAllInOrder(received, 3, 5);
        var healed = await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["status"]!.GetValue<string>() == "ok", TimeSpan.FromSeconds(5));
        Assert.NotNull(healed["notification"]!["lastFailure"]);
    }

    [Fact]
    public async Task Notifications_pending_when_the_server_is_killed_are_delivered_after_restart()
    {
        await using var receiver = NotificationReceiver.Down();
        var data = TempDirectory.Create("machi-subs-kill-");
        try
        {
            var environment = new Dictionary<string, string?>
            {
                ["Machi__Broker__Subscriptions__InitialRetryDelay"] = "00:00:00.200",
                ["Machi__Broker__Subscriptions__MaxRetryDelay"] = "00:00:01",
            };
            await using (var server = await backend.StartProcessAsync(data, environment))
            {
                var location = await SubscriptionApiTests.SubscribeAsync(server.Client, SubscriptionApiTests.Subscription(receiver.Url));
                await WriteSpeedsAsync(server.Client, entities: 2, updates: 4);
                await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["timesFailed"]!.GetValue<int>() >= 2, TimeSpan.FromSeconds(10));
                server.Kill();
            }

            await receiver.StartListeningAsync();
            await using var restarted = await backend.StartProcessAsync(data, environment);
            var received = await receiver.WaitForDistinctAsync(10, TimeSpan.FromSeconds(20));
            AssertAllInOrder(received, 2, 4);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task A_hanging_receiver_does_not_delay_another_one()
    {
        await using var hanging = await NotificationReceiver.StartAsync();
        hanging.Hang = true;
        await using var healthy = await NotificationReceiver.StartAsync();
        await using var server = await backend.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Broker:Subscriptions:RequestTimeout"] = "00:01:00",
        });
        await SubscriptionApiTests.SubscribeAsync(server.Client, SubscriptionApiTests.Subscription(hanging.Url));
        await SubscriptionApiTests.SubscribeAsync(server.Client, SubscriptionApiTests.Subscription(healthy.Url));

        var clock = Stopwatch.StartNew();
        await WriteSpeedsAsync(server.Client, entities: 4, updates: 3);
        var received = await healthy.WaitForDistinctAsync(16, TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"writes and the healthy receiver took {clock.Elapsed}");
        AssertAllInOrder(received, 4, 3);
        Assert.Empty(hanging.Received);
    }

    [Fact]
    public async Task After_the_last_attempt_a_notification_is_dead_lettered_and_the_subscription_shows_the_failure()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        receiver.Status = 500;
        var settings = new Dictionary<string, string?>(SubscriptionApiTests.FastRetries) { ["Broker:Subscriptions:MaxAttempts"] = "3" };
        await using var server = await backend.StartAsync(settings: settings);
        var location = await SubscriptionApiTests.SubscribeAsync(server.Client, SubscriptionApiTests.Subscription(receiver.Url));
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:v0", 0));

        var failed = await WaitForSubscriptionAsync(server.Client, location, s => s["notification"]!["timesFailed"]!.GetValue<int>() >= 3, TimeSpan.FromSeconds(10));
        Assert.Equal("failed", failed["notification"]!["status"]!.GetValue<string>());
        await Task.Delay(TimeSpan.FromSeconds(2));
        var after = await (await server.Client.GetAsync(location)).ReadJson();
        Assert.Equal(3, after["notification"]!["timesFailed"]!.GetValue<int>());

        // The receiver recovers: later notifications flow; the dead one is not retried.
        receiver.Status = 200;
        await server.Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:v0/attrs", """{"speed":{"type":"Property","value":1}}""");
        var received = await receiver.WaitForAsync(1);
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(1));
        Assert.Equal(1, received[0].Entity["speed"]!["value"]!.GetValue<double>());
    }
}

public sealed class SubscriptionDeliveryTestsOnSqlite() : SubscriptionDeliveryTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class SubscriptionDeliveryTestsOnPostgres(PostgresServer postgres) : SubscriptionDeliveryTests(Backend.Postgres(postgres));
