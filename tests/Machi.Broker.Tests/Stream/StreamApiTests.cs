using System.Diagnostics;
using System.Net;
using Machi.Broker.Storage;
using Machi.Broker.Stream;
using Machi.Broker.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Tests.Stream;

/// <summary>GET /ngsi-ld/v1/x-machi/stream: entity changes pushed as server-sent events, resumable with Last-Event-ID.</summary>
public abstract class StreamApiTests(Backend backend) : IAsyncLifetime
{
    private const string Stream = "/ngsi-ld/v1/x-machi/stream";
    private const string Upsert = "/ngsi-ld/v1/entityOperations/upsert";
    private MachiServer _server = null!;

    private HttpClient Client => _server.Client;

    public async Task InitializeAsync() => _server = await backend.StartAsync(settings: new Dictionary<string, string?>
    {
        ["Broker:StreamHeartbeat"] = "00:00:00.300",
        ["Broker:ChangeRetention"] = "00:00:00",
        ["Broker:ChangePruneInterval"] = "01:00:00",
        ["Broker:StreamClientBuffer"] = "16",
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task With_many_clients_changes_are_handed_on_together_after_the_coalescing_interval_and_none_is_lost()
    {
        // "Many" is one client here; the interval is long enough that its effect cannot be timing noise.
        await using var server = await backend.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Broker:StreamCoalesceClients"] = "1",
            ["Broker:StreamCoalesce"] = "00:00:02",
        });
        await using var stream = await EventStreamClient.OpenAsync(server.Client, $"{Stream}?type=Vehicle");
        await server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:c", 1));
        Assert.Equal("create", (await stream.NextAsync(TimeSpan.FromSeconds(5))).Event);

        // The feed just handed on the create: changes made now wait for the rest of the interval, then go together.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var speed = 2; speed <= 4; speed++)
        {
            await server.Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:c/attrs/speed", $$"""{"value":{{speed}}}""");
        }

        var updates = await stream.TakeAsync(3, TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1), $"arrived after {clock.Elapsed.TotalMilliseconds} ms");
        Assert.Equal([2.0, 3.0, 4.0], updates.Select(u => u.Json["speed"]!["value"]!.GetValue<double>()));
    }

    [Fact]
    public async Task Streams_that_ask_the_same_share_events_and_streams_that_ask_otherwise_get_their_own()
    {
        await using var a = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle&options=keyValues");
        await using var b = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle&options=keyValues");
        await using var speedOnly = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle&attrs=speed");
        await using var fast = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle&q=speed>50");

        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:shared", 10));
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:shared/attrs/speed", """{"value":60}""");

        foreach (var same in new[] { a, b })
        {
            var events = await same.TakeAsync(2);
            Assert.Equal(["create", "update"], events.Select(e => e.Event));
            Assert.Equal(60, events[1].Json["speed"]!.GetValue<double>());
        }

        var normalized = await speedOnly.TakeAsync(2);
        Assert.Equal(60, normalized[1].Json["speed"]!["value"]!.GetValue<double>());
        Assert.Null(normalized[1].Json["location"]);

        // The first write does not match speed>50: the entity enters that view with the update.
        var entered = await fast.NextAsync();
        Assert.Equal("create", entered.Event);
        Assert.Equal(normalized[1].Id, entered.Id);
    }

    [Fact]
    public async Task A_client_receives_create_update_leave_and_delete_of_matching_entities_within_a_second()
    {
        await using var stream = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle&q=speed>5&options=keyValues");
        Assert.Equal("text/event-stream", stream.Response.Content.Headers.ContentType!.MediaType);

        var clock = Stopwatch.StartNew();
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:a", 10));
        var created = await stream.NextAsync(TimeSpan.FromSeconds(1));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");
        Assert.Equal("create", created.Event);
        Assert.Equal("urn:ngsi-ld:Vehicle:a", created.Json["id"]!.GetValue<string>());
        Assert.Equal(10, created.Json["speed"]!.GetValue<double>());
        Assert.NotNull(created.Id);

        // Neither a non-matching type nor a vehicle too slow for q makes an event.
        await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:Shelter:s1","type":"Shelter","capacity":{"type":"Property","value":10}}""");
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:slow", 1));

        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":30}""");
        var updated = await stream.NextAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("update", updated.Event);
        Assert.Equal(30, updated.Json["speed"]!.GetValue<double>());
        Assert.True(long.Parse(updated.Id!) > long.Parse(created.Id!));

        // Leaving the filter is a delete-like "leave"; entering it again is a create.
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":2}""");
        var left = await stream.NextAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("leave", left.Event);
        Assert.Equal("""{"id":"urn:ngsi-ld:Vehicle:a","type":"Vehicle"}""", left.Data);

        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:slow/attrs/speed", """{"value":50}""");
        Assert.Equal(("create", "urn:ngsi-ld:Vehicle:slow"), Summary(await stream.NextAsync(TimeSpan.FromSeconds(1))));

        await Client.DeleteAsync($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a");
        await Client.DeleteAsync($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:slow");
        var deleted = await stream.NextAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("delete", deleted.Event);
        Assert.Equal("""{"id":"urn:ngsi-ld:Vehicle:slow","type":"Vehicle"}""", deleted.Data);
    }

    [Fact]
    public async Task Reconnecting_with_Last_Event_ID_gets_exactly_the_missed_events_then_live_ones()
    {
        string lastSeen;
        await using (var stream = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle"))
        {
            await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:a", 10));
            lastSeen = (await stream.NextAsync()).Id!;
        }

        // While the client is away: two vehicle changes and one change it does not follow.
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":11}""");
        await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:Shelter:s1","type":"Shelter","capacity":{"type":"Property","value":10}}""");
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:b", 20));

        await using var resumed = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle", lastEventId: lastSeen);
        var missed = await resumed.TakeAsync(2);
        Assert.Equal([("update", "urn:ngsi-ld:Vehicle:a"), ("create", "urn:ngsi-ld:Vehicle:b")], missed.Select(Summary));
        Assert.True(long.Parse(missed[0].Id!) > long.Parse(lastSeen));

        // Then live, with nothing repeated in between.
        await Client.DeleteAsync($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:b");
        Assert.Equal(("delete", "urn:ngsi-ld:Vehicle:b"), Summary(await resumed.NextAsync()));

        // lastEventId= works like the header (EventSource cannot set headers on a first connection).
        await using var byQuery = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle&lastEventId={lastSeen}");
        Assert.Equal(["update", "create", "delete"], (await byQuery.TakeAsync(3)).Select(e => e.Event));
    }

    [Fact]
    public async Task An_id_older_than_the_retained_log_gets_a_reset_and_the_stream_goes_on_live()
    {
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:a", 10));
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":11}""");
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":12}""");

        // The other consumer (subscriptions) saves its cursor once it has caught up, shortly after the writes.
        var pruned = 0L;
        for (var attempt = 0; attempt < 50 && pruned < 2; attempt++)
        {
            pruned = await _server.Services.GetRequiredService<ChangeLogRetention>().PruneAsync(CancellationToken.None);
            if (pruned < 2)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(pruned >= 2, $"pruned through {pruned}");

        await using var stream = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle", lastEventId: "1");
        var reset = await stream.NextAsync();
        Assert.Equal("reset", reset.Event);
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":13}""");
        Assert.Equal("update", (await stream.NextAsync()).Event);

        // An id from the future (another database) is a reset too.
        await using var future = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle", lastEventId: "999999");
        Assert.Equal("reset", (await future.NextAsync()).Event);
    }

    [Fact]
    public async Task Pruning_keeps_every_change_a_consumer_has_not_processed()
    {
        var store = _server.Services.GetRequiredService<IEntityStore>();
        if (backend.IsPostgres)
        {
            await using var cmd = _server.Services.GetRequiredService<Machi.Broker.Storage.Postgres.PostgresEntityStore>().DataSource
                .CreateCommand("INSERT INTO change_cursors (consumer, seq) VALUES ('slow-consumer', $1)");
            cmd.Parameters.Add(new Npgsql.NpgsqlParameter { Value = store.LastChangeSeq });
            await cmd.ExecuteNonQueryAsync();
        }
        else
        {
            await using var connection = new SqliteConnection(_server.Services.GetRequiredService<SqliteEntityStore>().ConnectionString);
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "INSERT INTO change_cursors (consumer, seq) VALUES ('slow-consumer', $s)";
            cmd.Parameters.AddWithValue("$s", store.LastChangeSeq);
            cmd.ExecuteNonQuery();
        }

        var keptFrom = store.LastChangeSeq;
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:a", 10));
        await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", """{"value":11}""");
        await _server.Services.GetRequiredService<ChangeLogRetention>().PruneAsync(CancellationToken.None);

        var changes = await store.ReadChangesAsync(keptFrom, 10, CancellationToken.None);
        Assert.Equal(2, changes.Count);
        Assert.Equal(keptFrom + 1, changes[0].Seq);
    }

    [Fact]
    public async Task An_idle_stream_gets_heartbeats_and_a_client_that_falls_behind_is_dropped_not_the_server()
    {
        await using (var stream = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle"))
        {
            // Idle spells of a second each (heartbeats every 300 ms), each ended by a change; on a loaded machine one
            // spell may bring fewer heartbeats than it should, so a few more are allowed before the verdict.
            var waited = Stopwatch.StartNew();
            var speed = 10;
            do
            {
                await Task.Delay(1000);
                await Client.PostJson(Upsert, $"[{NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:a", speed++)}]");
                await stream.NextAsync();
            }
            while (stream.Heartbeats < 2 && waited.Elapsed < TimeSpan.FromSeconds(10));

            Assert.True(stream.Heartbeats >= 2, $"{stream.Heartbeats} heartbeats");
        }

        var feed = _server.Services.GetRequiredService<ChangeFeed>();
        var stalled = feed.Subscribe();
        try
        {
            var buffer = _server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<BrokerOptions>>().Value.StreamClientBuffer;
            for (var i = 0; i <= buffer; i++)
            {
                await Client.PatchJson($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a/attrs/speed", $$"""{"value":{{i}}}""");
            }

            var deadline = Stopwatch.StartNew();
            while (stalled.DropReason is null && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(20);
            }

            Assert.Contains("behind", stalled.DropReason);
            Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync($"{NgsiHttp.Entities}/urn:ngsi-ld:Vehicle:a")).StatusCode);
        }
        finally
        {
            feed.Unsubscribe(stalled);
        }
    }

    [Fact]
    public async Task A_stream_sees_only_its_own_tenant()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = NgsiHttp.Json(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:t0", 1)) };
        request.Headers.Add("NGSILD-Tenant", "aizu");
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(request)).StatusCode);

        await using var aizu = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle", tenant: "aizu");
        await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:default-tenant", 1));
        var inAizu = new HttpRequestMessage(HttpMethod.Post, NgsiHttp.Entities) { Content = NgsiHttp.Json(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:aizu", 1)) };
        inAizu.Headers.Add("NGSILD-Tenant", "aizu");
        await Client.SendAsync(inAizu);
        Assert.Equal(("create", "urn:ngsi-ld:Vehicle:aizu"), Summary(await aizu.NextAsync()));
    }

    [Fact]
    public async Task The_Link_context_expands_the_filter_and_compacts_the_events()
    {
        var hosted = await Client.PostJson("/ngsi-ld/v1/jsonldContexts", """
            {"@context":{"EvacuationSite":"https://aizu.example.org/ns#EvacuationSite","occupants":"https://aizu.example.org/ns#occupants"}}
            """);
        var contextUrl = hosted.Headers.Location!.OriginalString;
        await using var stream = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=EvacuationSite&q=occupants>10&options=keyValues", contextUrl: contextUrl);
        await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:EvacuationSite:x","type":"https://aizu.example.org/ns#EvacuationSite","https://aizu.example.org/ns#occupants":{"type":"Property","value":50}}""");
        var created = await stream.NextAsync();
        Assert.Equal("""{"id":"urn:ngsi-ld:EvacuationSite:x","type":"EvacuationSite","occupants":50}""", created.Data);
    }

    [Fact]
    public async Task Open_streams_do_not_hold_up_a_graceful_shutdown()
    {
        await using var stream = await EventStreamClient.OpenAsync(Client, $"{Stream}?type=Vehicle");
        var clock = Stopwatch.StartNew();
        await _server.StopAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"stopping took {clock.Elapsed}");
    }

    [Fact]
    public async Task Bad_parameters_are_ProblemDetails_before_the_stream_starts()
    {
        await (await Client.GetAsync($"{Stream}?q=speed>>")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync($"{Stream}?lastEventId=abc")).AssertProblem(400, "BadRequestData");
        using var request = new HttpRequestMessage(HttpMethod.Get, Stream);
        request.Headers.Add("NGSILD-Tenant", "nowhere");
        await (await Client.SendAsync(request)).AssertProblem(404, "NonexistentTenant");
    }

    [Fact]
    public async Task The_stream_and_the_temporal_API_are_in_the_OpenAPI_document()
    {
        var paths = (await (await Client.GetAsync("/openapi/v1.json")).ReadJson())["paths"]!.AsObject();
        Assert.Contains("text/event-stream", paths["/ngsi-ld/v1/x-machi/stream"]!["get"]!["responses"]!["200"]!["content"]!.AsObject().Select(c => c.Key));
        Assert.NotNull(paths["/ngsi-ld/v1/temporal/entities"]?["get"]);
        Assert.NotNull(paths["/ngsi-ld/v1/temporal/entities/{entityId}"]?["get"]);
        Assert.NotNull(paths["/ngsi-ld/v1/temporal/entities/{entityId}/attrs/{attrId}/{instanceId}"]?["patch"]);
    }

    private static (string, string) Summary(ServerEvent e) => (e.Event, e.Json["id"]!.GetValue<string>());
}

public sealed class StreamApiTestsOnSqlite() : StreamApiTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class StreamApiTestsOnPostgres(PostgresServer postgres) : StreamApiTests(Backend.Postgres(postgres));
