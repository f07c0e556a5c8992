using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Host.Cli;
using Machi.Snow.Ingestion;
using Machi.Snow.Storage;
using Machi.Snow.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Snow.Tests;

public sealed class OsmAndIngestionTests
{
    [Fact]
    public async Task An_accepted_position_updates_the_Vehicle_entity_and_its_history()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-01", "除雪車1号");
        var t0 = DateTimeOffset.UtcNow.AddSeconds(-20);

        var first = await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-01", token, Plows.CastleLat, Plows.CastleLon, t0, knots: 10, bearing: 90, plow: "plowing"));
        var second = await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-01", token, Plows.CastleLat + 0.0005, Plows.CastleLon, t0.AddSeconds(10), knots: 5, bearing: 0, plow: "salting"));

        Assert.Equal(200, first.Status);
        Assert.Equal(200, second.Status);
        var vehicle = await Plows.VehicleAsync(server.Client, "plow-01");
        Assert.NotNull(vehicle);
        Assert.Equal("Vehicle", vehicle["type"]!.GetValue<string>());
        Assert.Equal("除雪車1号", vehicle["name"]!.GetValue<string>());
        Assert.Equal("municipalServices", vehicle["category"]![0]!.GetValue<string>());
        Assert.Equal("constructionOrMaintenanceVehicle", vehicle["vehicleType"]!.GetValue<string>());
        Assert.Equal("onRoute", vehicle["serviceStatus"]!.GetValue<string>());
        Assert.Equal("salting", vehicle["plowState"]!.GetValue<string>());
        Assert.Equal(5 * 1.852, vehicle["speed"]!.GetValue<double>(), 2);
        Assert.Equal(0, vehicle["heading"]!.GetValue<double>());
        Assert.Equal(Plows.CastleLat + 0.0005, vehicle["location"]!["coordinates"]![1]!.GetValue<double>(), 6);

        // Its history comes from the broker's temporal store: both positions, at the times the unit took them.
        var history = JsonNode.Parse(await server.Client.GetStringAsync(new Uri(
            "ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:plow-01?attrs=location,plowState&options=temporalValues", UriKind.Relative)))!;
        var locations = history["location"]!["values"]!.AsArray();
        Assert.Equal(2, locations.Count);
        Assert.Equal(t0.ToUnixTimeSeconds(), DateTimeOffset.Parse(locations[0]![1]!.GetValue<string>(), CultureInfo.InvariantCulture).ToUnixTimeSeconds());
        Assert.Equal(["plowing", "salting"], history["plowState"]!["values"]!.AsArray().Select(v => v![0]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_form_post_with_a_bearer_token_and_an_ISO_timestamp_is_accepted()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-02");
        using var request = new HttpRequestMessage(HttpMethod.Post, "snow/osmand")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["id"] = "plow-02", ["lat"] = "37.5", ["lon"] = "139.93", ["timestamp"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
                ["speed"] = "3", ["bearing"] = "45", ["altitude"] = "210", ["accuracy"] = "5", ["batt"] = "80", ["plow"] = "plowing",
            }),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);

        using var response = await server.Anonymous.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("plowing", (await Plows.VehicleAsync(server.Client, "plow-02"))!["plowState"]!.GetValue<string>());
    }

    [Fact]
    public async Task Every_rejection_reason_is_a_clear_4xx_counted_and_nothing_is_stored()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-03");
        var now = DateTimeOffset.UtcNow;
        var cases = new (string Query, int Status, string Reason)[]
        {
            ("lat=37.5&lon=139.93", 400, "malformed"),
            ("id=plow-03&lat=north&lon=139.93&token=" + token, 400, "malformed"),
            ("id=plow-03&lat=37.5&lon=139.93&speed=-3&token=" + token, 400, "malformed"),
            ("id=plow-03&lat=37.5&lon=139.93&timestamp=yesterday&token=" + token, 400, "malformed"),
            ("id=plow-03&lat=37.5&lon=139.93&plow=dancing&token=" + token, 400, "malformed"),
            (Plows.OsmAndQuery("plow-03", null, 37.5, 139.93), 401, "missing_token"),
            (Plows.OsmAndQuery("ghost-9", token, 37.5, 139.93), 401, "unknown_device"),
            (Plows.OsmAndQuery("plow-03", "not-its-token", 37.5, 139.93), 401, "invalid_token"),
            (Plows.OsmAndQuery("plow-03", token, 35.68, 139.76), 422, "outside_city"), // Tokyo
            (Plows.OsmAndQuery("plow-03", token, 37.5, 139.93, knots: 90), 422, "too_fast"), // 167 km/h
            (Plows.OsmAndQuery("plow-03", token, 37.5, 139.93, now.AddHours(1)), 422, "future_timestamp"),
        };

        foreach (var (query, status, reason) in cases)
        {
            var answer = await Plows.ReportAsync(server.Anonymous, query);
            Assert.True(answer.Status == status && answer.Reason == reason, $"{query}: expected {status} {reason}, got {answer.Status} {answer.Body}");
            var problem = JsonNode.Parse(answer.Body)!;
            Assert.False(string.IsNullOrWhiteSpace(problem["detail"]?.GetValue<string>()), answer.Body);
        }

        Assert.Null(await Plows.VehicleAsync(server.Client, "plow-03"));
        Assert.Null(await Plows.VehicleAsync(server.Client, "ghost-9"));
        var store = server.Services.GetRequiredService<ISnowStore>();
        var counts = await store.RejectionCountsAsync(CancellationToken.None);
        foreach (var group in cases.GroupBy(c => c.Reason))
        {
            Assert.Equal(group.Count(), counts.GetValueOrDefault(group.Key));
        }

        var stored = 0;
        await foreach (var _ in store.TrackAsync(now.AddDays(-1), now.AddDays(1), CancellationToken.None))
        {
            stored++;
        }

        Assert.Equal(0, stored);
    }

    [Fact]
    public async Task A_jump_faster_than_150_kmh_from_the_last_position_is_rejected_as_too_fast()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-04");
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-1);
        Assert.Equal(200, (await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-04", token, 37.45, 139.90, t0))).Status);

        // 11 km in 10 s.
        var jump = await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-04", token, 37.55, 139.90, t0.AddSeconds(10)));
        var drive = await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-04", token, 37.451, 139.90, t0.AddSeconds(20)));

        Assert.Equal((422, "too_fast"), (jump.Status, jump.Reason));
        Assert.Equal(200, drive.Status);
    }

    [Fact]
    public async Task A_late_position_joins_the_track_but_does_not_move_the_vehicle_back()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-late");
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-5);
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-late", token, 37.50, 139.93, t0.AddSeconds(60), plow: "plowing"));

        var late = await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-late", token, 37.499, 139.93, t0, plow: "plowing"));

        Assert.Equal(200, late.Status);
        Assert.Equal(37.50, (await Plows.VehicleAsync(server.Client, "plow-late"))!["location"]!["coordinates"]![1]!.GetValue<double>(), 6);
        var answer = JsonNode.Parse(await server.Client.GetStringAsync(new Uri("snow/api/last-plowed?lat=37.499&lon=139.93", UriKind.Relative)))!;
        Assert.NotNull(answer["results"]![0]!["lastPlowed"]);
    }

    [Fact]
    public async Task Last_plowed_is_the_last_plowing_pass_within_30_m_of_a_point_or_a_town()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-05");
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-10);

        // Plowing due north 660 m in 60 s along lon 139.93; then travelling (not plowing) due east along lat 37.50.
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-05", token, 37.490, 139.930, t0, plow: "plowing"));
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-05", token, 37.496, 139.930, t0.AddSeconds(60), plow: "plowing"));
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-05", token, 37.496, 139.936, t0.AddSeconds(120), plow: "travelling"));

        var metre = 1 / (111_320 * Math.Cos(37.493 * Math.PI / 180));
        var beside = await LastPlowedAsync(server, 37.493, 139.930 + (25 * metre)); // mid-segment, 25 m off
        var tooFar = await LastPlowedAsync(server, 37.493, 139.930 + (40 * metre));
        var travelledOnly = await LastPlowedAsync(server, 37.496, 139.933);

        Assert.Equal(t0.AddSeconds(60).ToUnixTimeSeconds(), DateTimeOffset.Parse(beside!, CultureInfo.InvariantCulture).ToUnixTimeSeconds());
        Assert.Null(tooFar);
        Assert.Null(travelledOnly);

        // By town: the 栄町 point (37.496157, 139.930875) is 75 m from the segment's end, so not yet; then a pass through it.
        var before = JsonNode.Parse(await server.Client.GetStringAsync(new Uri("snow/api/last-plowed?q=" + Uri.EscapeDataString("栄町"), UriKind.Relative)))!;
        Assert.Null(before["results"]![0]!["lastPlowed"]);
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("plow-05", token, 37.4962, 139.9309, t0.AddSeconds(180), plow: "plowing"));
        var after = JsonNode.Parse(await server.Client.GetStringAsync(new Uri("snow/api/last-plowed?q=" + Uri.EscapeDataString("栄町"), UriKind.Relative)))!;
        Assert.Equal("栄町", after["results"]![0]!["name"]!.GetValue<string>());
        Assert.NotNull(after["results"]![0]!["lastPlowed"]);
    }

    private static async Task<string?> LastPlowedAsync(MachiServer server, double lat, double lon)
    {
        var answer = JsonNode.Parse(await server.Client.GetStringAsync(new Uri(
            string.Create(CultureInfo.InvariantCulture, $"snow/api/last-plowed?lat={lat:R}&lon={lon:R}"), UriKind.Relative)))!;
        return answer["results"]![0]!["lastPlowed"]?.GetValue<string>();
    }

    [Fact]
    public async Task No_query_string_gets_a_server_error()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "plow-06");
        var keys = Gen.OneOfConst("id", "lat", "lon", "timestamp", "speed", "bearing", "heading", "altitude", "accuracy", "batt", "plow", "token", "location", "x");
        var values = Gen.OneOf(Gen.String, Gen.Double.Select(d => d.ToString("R", CultureInfo.InvariantCulture)), Gen.Const("plow-06"), Gen.Const(token),
            Gen.Long.Select(l => l.ToString(CultureInfo.InvariantCulture)));
        await Gen.Select(keys, values).Array[0, 10].SampleAsync(async pairs =>
        {
            var query = string.Join('&', pairs.Select(p => Uri.EscapeDataString(p.Item1) + "=" + Uri.EscapeDataString(p.Item2)));
            var (status, _, body) = await Plows.ReportAsync(server.Anonymous, query);
            Assert.True(status is 200 or (>= 400 and < 500), $"{query}: {status} {body}");
        }, iter: 300, threads: 1);
    }

    [Fact]
    public async Task Acknowledged_positions_survive_a_kill_9()
    {
        var data = TempDirectory.Create("machi-snow-kill-");
        try
        {
            using var output = new StringWriter();
            using var errors = new StringWriter();
            Assert.Equal(0, await MachiCli.RunAsync(["snow", "device", "add", "--id", "crash-1", "--data", data], output, errors));
            var token = JsonNode.Parse(output.ToString())!["token"]!.GetValue<string>();

            var t0 = DateTimeOffset.UtcNow.AddMinutes(-5);
            double lastLat = 0;
            await using (var machi = await MachiProcess.StartAsync(data, startupTimeout: TimeSpan.FromMinutes(3)))
            {
                for (var i = 0; i < 40; i++)
                {
                    lastLat = 37.48 + (i * 0.0002);
                    var answer = await Plows.ReportAsync(machi.Client, Plows.OsmAndQuery("crash-1", token, lastLat, 139.93, t0.AddSeconds(i * 5), plow: "plowing"));
                    Assert.Equal(200, answer.Status);
                }

                machi.Kill();
            }

            await using var again = await MachiProcess.StartAsync(data, startupTimeout: TimeSpan.FromMinutes(3));
            var vehicles = JsonNode.Parse(await again.Client.GetStringAsync(new Uri("snow/api/vehicles", UriKind.Relative)))!.AsArray();
            Assert.Equal(lastLat, vehicles.Single()!["lat"]!.GetValue<double>(), 6);
            var entity = await Plows.VehicleAsync(again.Client, "crash-1");
            Assert.Equal(lastLat, entity!["location"]!["coordinates"]![1]!.GetValue<double>(), 6);
            var trail = JsonNode.Parse(await again.Client.GetStringAsync(new Uri("snow/api/trails?hours=1", UriKind.Relative)))!.AsArray();
            Assert.Equal(lastLat, trail.Single()!["points"]!.AsArray()[^1]![1]!.GetValue<double>(), 6);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }
}
