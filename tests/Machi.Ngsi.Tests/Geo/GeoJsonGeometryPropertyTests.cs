using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;

namespace Machi.Ngsi.Tests.Geo;

public class GeoJsonGeometryPropertyTests
{
    private static readonly string[] TypeNames =
    [
        "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
        "GeometryCollection", "Feature", "Pointy", "point", "",
    ];

    private static readonly Gen<string> Number = Gen.Frequency(
        (4, Gen.Double[-200, 200].Select(Text)),
        (2, Gen.Int[-200, 200].Select(i => i.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Double.Select(d => double.IsFinite(d) ? Text(d) : "0")),
        (1, Gen.OneOfConst("1e400", "-1e400", "-0", "180", "-180", "90", "-90", "180.000000001", "4.9e-324", "1E2")));

    private static readonly Gen<string> Scalar = Gen.Frequency(
        (5, Number),
        (1, Gen.OneOfConst("null", "true", "false", "\"\"", "\"Point\"", "\"1\"", "\"POINT (1 2)\"")));

    /// <summary>Any JSON value, but leaning towards geometry-like objects and nested arrays of numbers, so that
    /// the generator reaches the deep checks as well as the shallow ones.</summary>
    private static readonly Gen<string> AnyJson = Gen.Recursive<string>((depth, json) =>
        depth >= 6
            ? Scalar
            : Gen.Frequency(
                (3, Scalar),
                (4, json.Array[0, 6].Select(items => "[" + string.Join(",", items) + "]")),
                (1, Gen.Select(Gen.OneOfConst("a", "type", "coordinates", "bbox", "properties"), json).Array[0, 4]
                    .Select(members => "{" + string.Join(",", members.Select(m => $"\"{m.Item1}\":{m.Item2}")) + "}")),
                (4, Gen.Select(Gen.OneOfConst(TypeNames), json, Gen.Int[0, 5])
                    .Select((type, coordinates, extra) => extra switch
                    {
                        0 => $"{{\"type\":\"{type}\",\"coordinates\":{coordinates},\"bbox\":{coordinates}}}",
                        1 => $"{{\"coordinates\":{coordinates},\"type\":\"{type}\",\"properties\":{{}}}}",
                        2 => $"{{\"type\":\"{type}\"}}",
                        _ => $"{{\"type\":\"{type}\",\"coordinates\":{coordinates}}}",
                    }))));

    /// <summary>Nested arrays of numbers, mostly in range: the right shape for some geometry, often.</summary>
    private static readonly Gen<string> NestedNumbers = Gen.Recursive<string>((depth, nested) =>
        depth >= 4
            ? Gen.Double[-90, 90].Select(Text)
            : Gen.Frequency(
                (1, Gen.Double[-90, 90].Select(Text)),
                (1, Number),
                (4, nested.Array[0, 6].Select(items => "[" + string.Join(",", items) + "]"))));

    private static readonly Gen<string> GeometryShaped =
        Gen.Select(Gen.OneOfConst(TypeNames), NestedNumbers)
            .Select((type, coordinates) => $"{{\"type\":\"{type}\",\"coordinates\":{coordinates}}}");

    private static readonly System.Text.RegularExpressions.Regex NumberToken =
        new(@"-?\d+(\.\d+)?([eE][-+]?\d+)?", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>A valid geometry with one number replaced by any JSON value, or two positions swapped out.</summary>
    private static Gen<string> Mutated => Gen.Select(ValidGeometry, Gen.Int[0, 1_000], AnyJson, Gen.Bool)
        .Select((json, at, replacement, keepNumber) =>
        {
            var numbers = NumberToken.Matches(json);
            var match = numbers[at % numbers.Count];
            var value = keepNumber ? Text(double.Parse(match.Value, CultureInfo.InvariantCulture) * 1.5 + 0.5) : replacement;
            return json[..match.Index] + value + json[(match.Index + match.Length)..];
        });

    private static Gen<string> AnyValue => Gen.Frequency(
        (4, AnyJson),
        (2, GeometryShaped),
        (3, Mutated),
        (1, ValidGeometry));

    [Fact]
    public void Parse_of_any_JSON_value_returns_a_geometry_or_throws_NgsiException_and_nothing_else()
    {
        AnyValue.Sample(json =>
        {
            using var document = JsonDocument.Parse(json);
            AssertParsesOrRejects(() => GeoJsonGeometry.Parse(document.RootElement));
            AssertParsesOrRejects(() => GeoJsonGeometry.Parse(JsonNode.Parse(json)));
        }, iter: 20_000);
    }

    [Fact]
    public void Parse_of_a_valid_geometry_written_back_gives_the_same_geometry()
    {
        ValidGeometry.Sample(json =>
        {
            var first = Parse(json);
            var written = GeoJsonGeometry.ToJson(first);
            var second = Parse(written);

            Assert.True(first.EqualsExact(second), $"{json} -> {written}");
            Assert.Equal(written, GeoJsonGeometry.ToJson(second));
            Assert.Equal(first.GeometryType, second.GeometryType);
            Assert.True(second.IsValid);
        }, iter: 5_000);
    }

    [Fact]
    public void IsGeoJsonGeometry_holds_for_every_valid_geometry()
    {
        ValidGeometry.Sample(json =>
        {
            using var document = JsonDocument.Parse(json);
            Assert.True(GeoJsonGeometry.IsGeoJsonGeometry(document.RootElement));
        }, iter: 1_000);
    }

    private static void AssertParsesOrRejects(Func<NetTopologySuite.Geometries.Geometry> parse)
    {
        try
        {
            var geometry = parse();
            Assert.Equal(4326, geometry.SRID);
        }
        catch (NgsiException e)
        {
            Assert.Equal(NgsiErrorType.BadRequestData, e.Type);
            Assert.False(string.IsNullOrWhiteSpace(e.Detail));
        }
    }

    // Valid geometries. A polygon ring is a star around a centre: 4 to 9 vertices at increasing angles, no two
    // more than 135° apart, so every edge faces the centre and the ring is simple. Its edges stay further than
    // 0.19 × radius from the centre, so a hole within radius / 10 lies inside the shell. The polygons of a
    // MultiPolygon are shifted into separate 30° bands of longitude, so they never touch.
    private static readonly Gen<bool> HasAltitude = Gen.Int[0, 3].Select(i => i == 0);

    private static Gen<double[]> Position(bool altitude) => altitude
        ? Gen.Select(Gen.Double[-180, 180], Gen.Double[-90, 90], Gen.Double[-500, 9000], (x, y, z) => new[] { x, y, z })
        : Gen.Select(Gen.Double[-180, 180], Gen.Double[-90, 90], (x, y) => new[] { x, y });

    private static Gen<double[][]> Positions(bool altitude, int min, int max) => Position(altitude).Array[min, max];

    private static Gen<double[][]> Star(double lon, double lat, double innerRadius, double outerRadius, bool altitude) =>
        Gen.Select(Gen.Int[4, 9], Gen.Double[0, 0.5].Array[9], Gen.Double[innerRadius, outerRadius].Array[9], Gen.Bool, Gen.Double[-100, 100])
            .Select((n, jitters, radii, clockwise, z) =>
            {
                var ring = new double[n + 1][];
                for (var i = 0; i < n; i++)
                {
                    var angle = (i + jitters[i]) * 2 * Math.PI / n;
                    var x = lon + radii[i] * Math.Cos(angle);
                    var y = lat + radii[i] * Math.Sin(angle);
                    ring[i] = altitude ? [x, y, z] : [x, y];
                }

                ring[^1] = ring[0];
                return clockwise ? ring.Reverse().ToArray() : ring;
            });

    private static Gen<double[][][]> PolygonAround(double lonFrom, double lonTo, bool altitude) =>
        Gen.Select(Gen.Double[lonFrom, lonTo], Gen.Double[-80, 80], Gen.Double[0.001, 5], Gen.Bool)
            .SelectMany((lon, lat, radius, hole) =>
                Gen.Select(
                    Star(lon, lat, radius / 2, radius, altitude),
                    Star(lon, lat, radius / 50, radius / 10, altitude),
                    (shell, inner) => hole ? new[] { shell, inner } : new[] { shell }));

    private static double[][][] ShiftLongitude(double[][][] rings, double degrees) =>
        rings.Select(ring => ring.Select(p => p.Select((v, i) => i == 0 ? v + degrees : v).ToArray()).ToArray()).ToArray();

    private static readonly Gen<string> ValidGeometry = HasAltitude.SelectMany(altitude => Gen.OneOf(
        Position(altitude).Select(p => Geometry("Point", Coordinates(p))),
        Positions(altitude, 1, 6).Select(ps => Geometry("MultiPoint", Coordinates(ps, Coordinates))),
        Positions(altitude, 2, 6).Select(ps => Geometry("LineString", Coordinates(ps, Coordinates))),
        Positions(altitude, 2, 5).Array[1, 4].Select(ls => Geometry("MultiLineString", Coordinates(ls, l => Coordinates(l, Coordinates)))),
        PolygonAround(-170, 170, altitude).Select(rings => Geometry("Polygon", Polygon(rings))),
        PolygonAround(-5, 5, altitude).Array[1, 5]
            .Select(polygons => polygons.Select((rings, i) => ShiftLongitude(rings, -150 + 30 * i)).ToArray())
            .Select(polygons => Geometry("MultiPolygon", Coordinates(polygons, Polygon)))));

    private static string Polygon(double[][][] rings) => Coordinates(rings, r => Coordinates(r, Coordinates));

    private static string Geometry(string type, string coordinates) =>
        $"{{\"type\":\"{type}\",\"coordinates\":{coordinates}}}";

    private static string Coordinates(double[] position) => "[" + string.Join(",", position.Select(Text)) + "]";

    private static string Coordinates<T>(T[] items, Func<T, string> each)
    {
        var text = new StringBuilder("[");
        for (var i = 0; i < items.Length; i++)
        {
            text.Append(i == 0 ? "" : ",").Append(each(items[i]));
        }

        return text.Append(']').ToString();
    }

    private static string Text(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static NetTopologySuite.Geometries.Geometry Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return GeoJsonGeometry.Parse(document.RootElement);
    }
}
