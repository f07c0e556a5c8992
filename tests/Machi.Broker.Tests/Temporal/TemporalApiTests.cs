using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Temporal;

/// <summary>The temporal API over HTTP: history recorded from ordinary entity writes, read back per clause 4.5.7–4.5.19.</summary>
public abstract class TemporalApiTests(Backend backend) : IAsyncLifetime
{
    private const string Temporal = "/ngsi-ld/v1/temporal/entities";
    private const string Plow = "urn:ngsi-ld:Vehicle:plow-7";

    // Speeds observed at these times (hand-picked so that every period below is easy to compute by hand).
    private static readonly (string At, double Speed)[] Readings =
    [
        ("2026-11-25T08:00:00Z", 10),
        ("2026-11-25T08:20:00Z", 20),
        ("2026-11-25T08:40:00Z", 30),
        ("2026-11-25T09:00:00Z", 40),
        ("2026-11-25T09:30:00Z", 40),
        ("2026-11-25T10:15:00Z", 5),
    ];

    private MachiServer _server = null!;

    private HttpClient Client => _server.Client;

    public async Task InitializeAsync()
    {
        _server = await backend.StartAsync();
        await Create(Plow, Readings[0].Speed, Readings[0].At);
        foreach (var (at, speed) in Readings.Skip(1))
        {
            await UpdateSpeed(Plow, speed, at);
        }
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Every_update_is_in_the_history_right_after_its_2xx_with_instance_ids_in_time_order()
    {
        var entity = await Get($"{Temporal}/{Plow}");
        Assert.Equal(Plow, entity["id"]!.GetValue<string>());
        Assert.Equal("Vehicle", entity["type"]!.GetValue<string>());
        var speed = entity["speed"]!.AsArray();
        Assert.Equal(Readings.Select(r => r.Speed), speed.Select(i => i!["value"]!.GetValue<double>()));
        Assert.Equal(Readings.Select(r => r.At), speed.Select(i => i!["observedAt"]!.GetValue<string>()));
        Assert.All(speed, i => Assert.Equal("Property", i!["type"]!.GetValue<string>()));
        Assert.All(speed, i => Assert.Equal("KMH", i!["unitCode"]!.GetValue<string>()));
        Assert.Equal(speed.Count, speed.Select(i => i!["instanceId"]!.GetValue<string>()).Distinct().Count());

        // The next write shows at once: a read catches up with the change log first.
        await UpdateSpeed(Plow, 55, "2026-11-25T11:00:00Z");
        var after = await Get($"{Temporal}/{Plow}?lastN=1");
        Assert.Equal(55, after["speed"]!.AsArray().Single()!["value"]!.GetValue<double>());
    }

    [Theory]
    [InlineData("timerel=before&timeAt=2026-11-25T08:30:00Z", new double[] { 10, 20 })]
    [InlineData("timerel=after&timeAt=2026-11-25T09:00:00Z", new double[] { 40, 5 })]
    [InlineData("timerel=between&timeAt=2026-11-25T08:20:00Z&endTimeAt=2026-11-25T09:30:00Z", new double[] { 20, 30, 40 })]
    [InlineData("lastN=2", new double[] { 40, 5 })]
    [InlineData("timerel=before&timeAt=2026-11-25T09:45:00Z&lastN=3", new double[] { 30, 40, 40 })]
    public async Task Timerel_and_lastN_select_the_instances(string parameters, double[] expected)
    {
        var entity = await Get($"{Temporal}/{Plow}?{parameters}");
        Assert.Equal(expected, entity["speed"]!.AsArray().Select(i => i!["value"]!.GetValue<double>()));
    }

    [Fact]
    public async Task TimeProperty_modifiedAt_compares_the_time_of_recording()
    {
        var now = DateTimeOffset.UtcNow.AddMinutes(-5).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        var entity = await Get($"{Temporal}/{Plow}?timerel=after&timeAt={now}&timeproperty=modifiedAt");
        Assert.Equal(Readings.Length, entity["speed"]!.AsArray().Count);
        var none = await Get($"{Temporal}/{Plow}?timerel=before&timeAt={now}&timeproperty=modifiedAt");
        Assert.Null(none["speed"]);
    }

    [Fact]
    public async Task TemporalValues_is_the_simplified_representation_of_value_time_pairs()
    {
        var entity = await Get($"{Temporal}/{Plow}?options=temporalValues&timerel=before&timeAt=2026-11-25T08:30:00Z");
        var speed = entity["speed"]!;
        Assert.Equal("Property", speed["type"]!.GetValue<string>());
        Assert.Equal("""[[10,"2026-11-25T08:00:00Z"],[20,"2026-11-25T08:20:00Z"]]""", speed["values"]!.ToJsonString());
    }

    [Fact]
    public async Task Each_aggregation_method_over_hourly_periods_gives_the_hand_computed_values()
    {
        var entity = await Get($"{Temporal}/{Plow}?options=aggregatedValues&aggrMethods=totalCount,distinctCount,sum,avg,min,max,stddev,sumsq"
            + "&aggrPeriodDuration=PT1H&timerel=between&timeAt=2026-11-25T08:00:00Z&endTimeAt=2026-11-25T11:00:00Z");
        var speed = entity["speed"]!;
        Assert.Equal("Property", speed["type"]!.GetValue<string>());

        // 08:00–09:00: 10, 20, 30 · 09:00–10:00: 40, 40 · 10:00–11:00: 5
        string[] starts = ["2026-11-25T08:00:00Z", "2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z"];
        string[] ends = ["2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"];
        var expected = new Dictionary<string, double[]>
        {
            ["totalCount"] = [3, 2, 1],
            ["distinctCount"] = [3, 1, 1],
            ["sum"] = [60, 80, 5],
            ["avg"] = [20, 40, 5],
            ["min"] = [10, 40, 5],
            ["max"] = [30, 40, 5],
            ["stddev"] = [10, 0, 0], // sample: sqrt(((10-20)² + 0 + (30-20)²) / 2) = 10
            ["sumsq"] = [1400, 3200, 25],
        };
        foreach (var (method, values) in expected)
        {
            var periods = speed[method]!.AsArray();
            Assert.Equal(values, periods.Select(p => p![0]!.GetValue<double>()));
            Assert.Equal(starts, periods.Select(p => p![1]!.GetValue<string>()));
            Assert.Equal(ends, periods.Select(p => p![2]!.GetValue<string>()));
        }
    }

    [Fact]
    public async Task A_zero_period_aggregates_the_whole_range()
    {
        var entity = await Get($"{Temporal}/{Plow}?options=aggregatedValues&aggrMethods=totalCount,sum,avg,min,max,stddev,sumsq"
            + "&aggrPeriodDuration=PT0S&timerel=between&timeAt=2026-11-25T07:00:00Z&endTimeAt=2026-11-25T12:00:00Z");
        var speed = entity["speed"]!;
        double Value(string method) => speed[method]!.AsArray().Single()![0]!.GetValue<double>();
        Assert.Equal(6, Value("totalCount"));
        Assert.Equal(145, Value("sum"));
        Assert.Equal(145 / 6.0, Value("avg"), 9);
        Assert.Equal(5, Value("min"));
        Assert.Equal(40, Value("max"));
        Assert.Equal(4625, Value("sumsq"));
        // Σx² − n·mean² = 4625 − 145²/6 = 1120.8333…; over n − 1 = 5.
        Assert.Equal(Math.Sqrt((4625 - (145.0 * 145 / 6)) / 5), Value("stddev"), 9);
        var period = speed["sum"]!.AsArray().Single()!;
        Assert.Equal("2026-11-25T07:00:00Z", period[1]!.GetValue<string>());
        Assert.Equal("2026-11-25T12:00:00Z", period[2]!.GetValue<string>());
    }

    [Fact]
    public async Task A_deleted_attribute_and_entity_stay_in_the_history_as_NGSI_LD_Null_instances()
    {
        const string id = "urn:ngsi-ld:Vehicle:plow-gone";
        await Create(id, 12, "2026-11-25T08:00:00Z");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync($"{NgsiHttp.Entities}/{id}/attrs/speed")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync($"{NgsiHttp.Entities}/{id}")).StatusCode);

        var entity = await Get($"{Temporal}/{id}?options=sysAttrs");
        var speed = entity["speed"]!.AsArray();
        Assert.Equal(2, speed.Count);
        Assert.Equal(12, speed[0]!["value"]!.GetValue<double>());
        Assert.Equal("urn:ngsi-ld:null", speed[1]!["value"]!.GetValue<string>());
        Assert.NotNull(speed[1]!["deletedAt"]);
        Assert.NotNull(entity["deletedAt"]);
        Assert.Equal("urn:ngsi-ld:null", entity["location"]!.AsArray()[^1]!["value"]!.GetValue<string>());
    }

    [Fact]
    public async Task Query_selects_by_type_and_by_q_on_the_current_state_and_compacts_with_the_Link_context()
    {
        await Create("urn:ngsi-ld:Vehicle:slow", 3, "2026-11-25T08:00:00Z");
        await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:Shelter:s1","type":"Shelter","capacity":{"type":"Property","value":100}}""");

        var vehicles = await GetArray($"{Temporal}?type=Vehicle&attrs=speed&count=true");
        Assert.Equal(["urn:ngsi-ld:Vehicle:plow-7", "urn:ngsi-ld:Vehicle:slow"], vehicles.Select(e => e!["id"]!.GetValue<string>()).Where(i => !i.Contains("gone", StringComparison.Ordinal)));

        var fast = await GetArray($"{Temporal}?type=Vehicle&q=speed>4&timerel=before&timeAt=2026-11-25T08:30:00Z");
        Assert.Equal("urn:ngsi-ld:Vehicle:plow-7", Assert.Single(fast)!["id"]!.GetValue<string>());
        Assert.Equal([10.0, 20.0], fast[0]!["speed"]!.AsArray().Select(i => i!["value"]!.GetValue<double>()));

        using var request = new HttpRequestMessage(HttpMethod.Get, $"{Temporal}?type=https://uri.etsi.org/ngsi-ld/default-context/Shelter");
        var shelters = JsonNode.Parse(await (await Client.SendAsync(request)).Content.ReadAsStringAsync())!.AsArray();
        Assert.Equal(100, Assert.Single(shelters)!["capacity"]!.AsArray().Single()!["value"]!.GetValue<double>());
    }

    [Theory]
    [InlineData("timerel=before", "BadRequestData")]
    [InlineData("timerel=between&timeAt=2026-11-25T08:00:00Z", "BadRequestData")]
    [InlineData("timerel=sometime&timeAt=2026-11-25T08:00:00Z", "BadRequestData")]
    [InlineData("timeAt=yesterday&timerel=after", "BadRequestData")]
    [InlineData("lastN=0", "BadRequestData")]
    [InlineData("options=aggregatedValues", "BadRequestData")]
    [InlineData("options=aggregatedValues&aggrMethods=median", "BadRequestData")]
    [InlineData("options=aggregatedValues&aggrMethods=sum&aggrPeriodDuration=1H", "BadRequestData")]
    public async Task Malformed_temporal_queries_are_BadRequestData(string parameters, string error)
    {
        await (await Client.GetAsync($"{Temporal}/{Plow}?{parameters}")).AssertProblem(400, error);
    }

    [Fact]
    public async Task Unknown_entities_are_ResourceNotFound_and_a_query_needs_a_restriction()
    {
        await (await Client.GetAsync($"{Temporal}/urn:ngsi-ld:Vehicle:never")).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync($"{Temporal}?timerel=after&timeAt=2026-11-25T08:00:00Z")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Deleting_history_removes_an_instance_an_attribute_or_the_whole_entity_history()
    {
        const string id = "urn:ngsi-ld:Vehicle:plow-del";
        await Create(id, 1, "2026-11-25T08:00:00Z");
        await UpdateSpeed(id, 2, "2026-11-25T08:01:00Z");
        var first = (await Get($"{Temporal}/{id}"))["speed"]!.AsArray()[0]!["instanceId"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync($"{Temporal}/{id}/attrs/speed/{first}")).StatusCode);
        Assert.Equal([2.0], (await Get($"{Temporal}/{id}"))["speed"]!.AsArray().Select(i => i!["value"]!.GetValue<double>()));

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync($"{Temporal}/{id}/attrs/speed")).StatusCode);
        Assert.Null((await Get($"{Temporal}/{id}"))["speed"]);

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync($"{Temporal}/{id}")).StatusCode);
        await (await Client.GetAsync($"{Temporal}/{id}")).AssertProblem(404, "ResourceNotFound");
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync($"{NgsiHttp.Entities}/{id}")).StatusCode);
    }

    /// <summary>
    /// A creation records its instances together (one folded row), yet each is selected, corrected and deleted on its
    /// own, in time order with the instances later writes recorded, and keeps its instanceId when another one changes.
    /// </summary>
    [Fact]
    public async Task The_instances_an_entity_was_created_with_are_read_corrected_and_deleted_one_by_one()
    {
        const string id = "urn:ngsi-ld:Vehicle:plow-created";
        var created = await Client.PostJson(NgsiHttp.Entities, """
            {"id":"urn:ngsi-ld:Vehicle:plow-created","type":"Vehicle",
             "speed":[{"type":"Property","value":12,"observedAt":"2026-11-25T08:00:00Z"},
                      {"type":"Property","value":99,"datasetId":"urn:ngsi-ld:Dataset:radar","observedAt":"2026-11-25T08:30:00Z"}],
             "fuelLevel":{"type":"Property","value":0.5,"observedAt":"2026-11-25T09:00:00Z"},
             "name":{"type":"LanguageProperty","languageMap":{"ja":"除雪車","en":"Snowplow"}}}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await UpdateSpeed(id, 20, "2026-11-25T08:10:00Z");
        async Task<double[]> Values(string query, string attr = "speed") =>
            (await Get($"{Temporal}/{id}{query}"))[attr]?.AsArray().Select(i => i!["value"]!.GetValue<double>()).ToArray() ?? [];

        Assert.Equal(new[] { 12.0, 20, 99 }, await Values(""));
        Assert.Equal(new[] { 20.0, 99 }, await Values("?timerel=after&timeAt=2026-11-25T08:05:00Z"));
        Assert.Equal(new[] { 12.0, 20 }, await Values("?timerel=before&timeAt=2026-11-25T08:20:00Z"));
        Assert.Equal(new[] { 12.0 }, await Values("?timerel=between&timeAt=2026-11-25T07:00:00Z&endTimeAt=2026-11-25T08:10:00Z"));
        Assert.Equal(new[] { 0.5 }, await Values("?timerel=after&timeAt=2026-11-25T08:05:00Z", "fuelLevel"));
        Assert.Empty(await Values("?timerel=before&timeAt=2026-11-25T08:20:00Z", "fuelLevel"));
        var hourly = await Get($"{Temporal}/{id}?options=aggregatedValues&aggrMethods=sum&aggrPeriodDuration=PT1H&attrs=fuelLevel");
        Assert.Equal(0.5, hourly["fuelLevel"]!["sum"]![0]![0]!.GetValue<double>());

        var before = await Get($"{Temporal}/{id}");
        var first = before["speed"]![0]!["instanceId"]!.GetValue<string>();
        var patched = await Client.PatchJson($"{Temporal}/{id}/attrs/speed/{Uri.EscapeDataString(first)}", """{"type":"Property","value":13,"observedAt":"2026-11-25T08:00:00Z"}""");
        Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);
        var radar = before["speed"]![2]!["instanceId"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync($"{Temporal}/{id}/attrs/speed/{Uri.EscapeDataString(radar)}")).StatusCode);

        var after = await Get($"{Temporal}/{id}");
        Assert.Equal(new[] { 13.0, 20 }, await Values(""));
        Assert.Equal(first, after["speed"]![0]!["instanceId"]!.GetValue<string>());
        Assert.Equal(before["fuelLevel"]!.ToJsonString(), after["fuelLevel"]!.ToJsonString());
        Assert.Equal(before["name"]!.ToJsonString(), after["name"]!.ToJsonString());
    }

    [Fact]
    public async Task History_can_be_written_directly_added_to_and_corrected_without_changing_the_current_state()
    {
        const string id = "urn:ngsi-ld:WaterMeter:m1";
        var created = await Client.PostJson(Temporal, """
            {"id":"urn:ngsi-ld:WaterMeter:m1","type":"WaterMeter","volume":[
              {"type":"Property","value":100,"observedAt":"2026-11-01T00:00:00Z"},
              {"type":"Property","value":130,"observedAt":"2026-11-02T00:00:00Z"}]}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("/ngsi-ld/v1/temporal/entities/" + Uri.EscapeDataString(id), created.Headers.Location!.OriginalString);

        var again = await Client.PostJson(Temporal, """{"id":"urn:ngsi-ld:WaterMeter:m1","type":"WaterMeter","volume":{"type":"Property","value":170,"observedAt":"2026-11-03T00:00:00Z"}}""");
        Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        var added = await Client.PostJson($"{Temporal}/{id}/attrs", """{"volume":[{"type":"Property","value":190,"observedAt":"2026-11-04T00:00:00Z"}]}""");
        Assert.Equal(HttpStatusCode.NoContent, added.StatusCode);

        var volume = (await Get($"{Temporal}/{id}"))["volume"]!.AsArray();
        Assert.Equal([100.0, 130, 170, 190], volume.Select(i => i!["value"]!.GetValue<double>()));

        var second = volume[1]!["instanceId"]!.GetValue<string>();
        var patched = await Client.PatchJson($"{Temporal}/{id}/attrs/volume/{Uri.EscapeDataString(second)}", """{"type":"Property","value":131,"observedAt":"2026-11-02T00:00:00Z"}""");
        Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);
        var sum = await Get($"{Temporal}/{id}?options=aggregatedValues&aggrMethods=sum,max&timerel=before&timeAt=2026-11-03T00:00:00Z");
        Assert.Equal(231, sum["volume"]!["sum"]![0]![0]!.GetValue<double>());

        // The current state is untouched: there is no such entity.
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync($"{NgsiHttp.Entities}/{id}")).StatusCode);
        await (await Client.PostJson($"{Temporal}/urn:ngsi-ld:WaterMeter:none/attrs", """{"volume":{"type":"Property","value":1}}""")).AssertProblem(404, "ResourceNotFound");
        await (await Client.PatchJson($"{Temporal}/{id}/attrs/volume/urn:ngsi-ld:attribute:instance:nope", """{"type":"Property","value":1}""")).AssertProblem(404, "ResourceNotFound");
        await (await Client.PostJson(Temporal, """{"type":"WaterMeter","volume":{"type":"Property","value":1}}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Names_are_expanded_and_compacted_with_the_Link_context()
    {
        var hosted = await Client.PostJson("/ngsi-ld/v1/jsonldContexts", """
            {"@context":{"EvacuationSite":"https://aizu.example.org/ns#EvacuationSite","occupants":"https://aizu.example.org/ns#occupants"}}
            """);
        var contextUrl = hosted.Headers.Location!.OriginalString;
        await Client.PostJson(NgsiHttp.Entities, """{"id":"urn:ngsi-ld:EvacuationSite:x","type":"https://aizu.example.org/ns#EvacuationSite","https://aizu.example.org/ns#occupants":{"type":"Property","value":50}}""");

        using var request = new HttpRequestMessage(HttpMethod.Get, $"{Temporal}?type=EvacuationSite&attrs=occupants&options=temporalValues");
        request.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        var response = await Client.SendAsync(request);
        var site = Assert.Single((await response.ReadJson()).AsArray())!;
        Assert.Equal("EvacuationSite", site["type"]!.GetValue<string>());
        Assert.Equal(50, site["occupants"]!["values"]![0]![0]!.GetValue<double>());
        Assert.Contains(contextUrl, response.Headers.GetValues("Link").Single(), StringComparison.Ordinal);

        var plain = await Get($"{Temporal}/urn:ngsi-ld:EvacuationSite:x");
        Assert.NotNull(plain["https://aizu.example.org/ns#occupants"]);
    }

    private async Task Create(string id, double speed, string observedAt)
    {
        var body = NgsiHttp.Vehicle(id, speed).Replace("2026-11-25T08:00:00Z", observedAt, StringComparison.Ordinal);
        var response = await Client.PostJson(NgsiHttp.Entities, body);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    private async Task UpdateSpeed(string id, double speed, string observedAt)
    {
        var response = await Client.PatchJson($"{NgsiHttp.Entities}/{id}/attrs",
            $$$"""{"speed":{"type":"Property","value":{{{speed.ToString(CultureInfo.InvariantCulture)}}},"unitCode":"KMH","observedAt":"{{{observedAt}}}"}}""");
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
    }

    private async Task<JsonNode> Get(string path)
    {
        var response = await Client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonNode.Parse(text)!;
    }

    private async Task<JsonArray> GetArray(string path) => (await Get(path)).AsArray();
}

public sealed class TemporalApiTestsOnSqlite() : TemporalApiTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class TemporalApiTestsOnPostgres(PostgresServer postgres) : TemporalApiTests(Backend.Postgres(postgres));
