using System.Globalization;
using System.Text;
using System.Text.Json;
using CsCheck;
using Machi.Snow.Ingestion;

namespace Machi.Snow.Tests;

public sealed class ParserPropertyTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 15, 6, 0, 0, TimeSpan.Zero);

    private static readonly Gen<string> Keys = Gen.OneOf(
        Gen.OneOfConst("id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing", "heading", "altitude", "accuracy", "batt", "plow", "state", "token"),
        Gen.String);

    private static readonly Gen<string?> Values = Gen.OneOf(
        Gen.String.Select(s => (string?)s),
        Gen.Double.Select(d => (string?)d.ToString("R", CultureInfo.InvariantCulture)),
        Gen.Long.Select(l => (string?)l.ToString(CultureInfo.InvariantCulture)),
        Gen.OneOfConst<string?>(null, "", " ", "NaN", "Infinity", "-0", "1e309", "37.5,139.9", "plowing", "2026-01-15T06:00:00Z"));

    [Fact]
    public void The_OsmAnd_parser_never_throws_and_a_refusal_always_has_a_reason() =>
        Gen.Select(Keys, Values).Array[0, 16].Sample(pairs =>
        {
            var result = OsmAndParser.Parse(pairs.Select(p => new KeyValuePair<string, string?>(p.Item1, p.Item2)), null, Now);
            Assert.True((result.Report is null) != (result.Rejection is null));
            if (result.Rejection is { } r)
            {
                Assert.Equal(RejectReason.Malformed, r.Reason);
                Assert.False(string.IsNullOrWhiteSpace(r.Detail));
            }
            else
            {
                var p = result.Report!;
                Assert.True(p.Lat is >= -90 and <= 90 && p.Lon is >= -180 and <= 180);
                Assert.True(p.Heading is null or (>= 0 and < 360));
                Assert.True(p.SpeedKmh is null or >= 0);
            }
        }, iter: 20_000);

    [Fact]
    public void Valid_fields_come_back_as_sent() =>
        Gen.Select(Gen.Double[-90, 90], Gen.Double[-180, 180], Gen.Long[1_000_000_000, 4_000_000_000], Gen.Double[0, 80], Gen.Double[0, 359.9],
            Gen.OneOfConst("plowing", "salting", "travelling")).Sample((lat, lon, seconds, knots, bearing, state) =>
        {
            var fields = new Dictionary<string, string?>
            {
                ["id"] = "unit-1",
                ["lat"] = lat.ToString("R", CultureInfo.InvariantCulture),
                ["lon"] = lon.ToString("R", CultureInfo.InvariantCulture),
                ["timestamp"] = seconds.ToString(CultureInfo.InvariantCulture),
                ["speed"] = knots.ToString("R", CultureInfo.InvariantCulture),
                ["bearing"] = bearing.ToString("R", CultureInfo.InvariantCulture),
                ["plow"] = state,
                ["token"] = "t",
            };
            var p = OsmAndParser.Parse(fields, null, Now).Report!;
            Assert.Equal((lat, lon, seconds, state), (p.Lat, p.Lon, p.Time.ToUnixTimeSeconds(), PlowStates.Name(p.State)));
            Assert.Equal(knots * 1.852, p.SpeedKmh!.Value, tolerance: 1e-9);
            Assert.Equal(bearing, p.Heading!.Value, tolerance: 1e-9);
        });

    [Fact]
    public void Milliseconds_and_ISO_timestamps_mean_the_same_instant()
    {
        var ms = OsmAndParser.ParseTimestamp("1768456800000");
        var s = OsmAndParser.ParseTimestamp("1768456800");
        var iso = OsmAndParser.ParseTimestamp("2026-01-15T06:00:00Z");
        var jst = OsmAndParser.ParseTimestamp("2026-01-15T15:00:00+09:00");
        Assert.Equal(Now, ms);
        Assert.Equal(Now, s);
        Assert.Equal(Now, iso);
        Assert.Equal(Now, jst);
    }

    [Fact]
    public void The_MQTT_and_NGSI_LD_parsers_never_throw_on_any_payload()
    {
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            var result = MqttIngestion.Parse("unit-1", bytes, Now);
            Assert.True((result.Report is null) != (result.Rejection is null));
        }, iter: 5_000);

        var json = Gen.OneOf(
            Gen.String.Select(s => JsonSerializer.Serialize(s)),
            Gen.Select(Gen.Double[-1000, 1000], Gen.Double[-1000, 1000], Gen.String).Select((a, b, c) => string.Create(CultureInfo.InvariantCulture,
                $$"""{"location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [{{a:R}}, {{b:R}}]}, "observedAt": {{JsonSerializer.Serialize(c)}}}, "speed": {"type": "Property", "value": {{b:R}}}, "plowState": {{JsonSerializer.Serialize(c)}}}""")),
            Gen.OneOfConst("{}", "[]", "null", "1", """{"location": 1}""", """{"location": {"value": {"type": "Point", "coordinates": []}}}""", """{"location": {"type":"Point","coordinates":[139.9,37.5]},"speed":"fast"}"""));
        Gen.Select(json, Gen.OneOfConst("urn:ngsi-ld:Vehicle:unit-1", "urn:ngsi-ld:Vehicle:", "urn:ngsi-ld:Other:x", "")).Sample((text, id) =>
        {
            using var document = JsonDocument.Parse(Encoding.UTF8.GetBytes(text));
            var result = NgsiPositionParser.Parse(id, document.RootElement, "t", Now);
            Assert.True((result.Report is null) != (result.Rejection is null));
        }, iter: 5_000);
    }
}
