using System.Globalization;
using System.Text.Json;
using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Query;
using NetTopologySuite.Geometries;
using static Machi.Ngsi.Tests.Query.QueryTestKit;

namespace Machi.Ngsi.Tests.Query;

public class GeoQueryTests
{
    private static GeoQuery Geo(string georel, string geometry, string coordinates, string? geoproperty = null) =>
        GeoQuery.Parse(georel, geometry, coordinates, geoproperty, Expand);

    private static Geometry Shape(string json) => GeoJsonGeometry.Parse(JsonDocument.Parse(json).RootElement);

    private const string Square = """{"type":"Polygon","coordinates":[[[100,0],[101,0],[101,1],[100,1],[100,0]]]}""";

    [Fact]
    public void Spec_example_near_with_maxDistance_reads_all_members()
    {
        var geo = Geo("near;maxDistance==2000", "Point", "[8,40]");
        Assert.Equal(GeoRelation.Near, geo.Relation);
        Assert.Equal(2000, geo.MaxDistance);
        Assert.Null(geo.MinDistance);
        Assert.Equal(new Coordinate(8, 40), geo.Geometry.Coordinate);
        Assert.Equal(Expand("location"), geo.GeoProperty);
    }

    [Fact]
    public void Query_with_near_maxDistance_returns_only_entities_inside_the_circle()
    {
        // Aizu-Wakamatsu station and two points 1.5 km and 2.5 km north of it along the meridian.
        var geo = Geo("near;maxDistance==2000", "Point", "[139.9322,37.5058]");
        Assert.True(geo.Matches(Shape("""{"type":"Point","coordinates":[139.9322,37.5193]}""")));
        Assert.False(geo.Matches(Shape("""{"type":"Point","coordinates":[139.9322,37.5283]}""")));
    }

    [Fact]
    public void Query_with_near_minDistance_returns_only_entities_at_least_that_far()
    {
        var geo = Geo("near;minDistance==2000", "Point", "[139.9322,37.5058]");
        Assert.False(geo.Matches(Shape("""{"type":"Point","coordinates":[139.9322,37.5193]}""")));
        Assert.True(geo.Matches(Shape("""{"type":"Point","coordinates":[139.9322,37.5283]}""")));
    }

    [Fact]
    public void Near_measures_to_the_nearest_point_of_a_line_or_polygon_and_is_zero_inside()
    {
        var line = Shape("""{"type":"LineString","coordinates":[[0,0],[1,0]]}""");
        var expected = GeoMath.DistanceMeters(0.1, 0.5, 0, 0.5);
        Assert.Equal(expected, GeoDistance.Meters(line, 0.1, 0.5), 1e-3);
        Assert.True(Geo($"near;maxDistance=={(expected + 1).ToString(CultureInfo.InvariantCulture)}", "Point", "[0.5,0.1]").Matches(line));
        Assert.False(Geo($"near;maxDistance=={(expected - 1).ToString(CultureInfo.InvariantCulture)}", "Point", "[0.5,0.1]").Matches(line));
        Assert.Equal(0, GeoDistance.Meters(Shape(Square), 0.5, 100.5));
        Assert.True(Geo("near;maxDistance==0", "Point", "[100.5,0.5]").Matches(Shape(Square)));
        Assert.False(Geo("near;minDistance==1", "Point", "[100.5,0.5]").Matches(Shape(Square)));
    }

    [Fact]
    public void Within_means_the_entity_geometry_lies_inside_the_query_geometry()
    {
        var geo = Geo("within", "Polygon", "[[[100,0],[101,0],[101,1],[100,1],[100,0]]]");
        Assert.True(geo.Matches(Shape("""{"type":"Point","coordinates":[100.5,0.5]}""")));
        Assert.False(geo.Matches(Shape("""{"type":"Point","coordinates":[102,0.5]}""")));
        Assert.False(geo.Matches(Shape("""{"type":"Polygon","coordinates":[[[99,-1],[102,-1],[102,2],[99,2],[99,-1]]]}""")));
    }

    [Fact]
    public void Contains_means_the_entity_geometry_contains_the_query_geometry()
    {
        var geo = Geo("contains", "Point", "[100.5,0.5]");
        Assert.True(geo.Matches(Shape(Square)));
        Assert.False(Geo("contains", "Polygon", "[[[99,-1],[102,-1],[102,2],[99,2],[99,-1]]]").Matches(Shape(Square)));
    }

    [Fact]
    public void Intersects_overlaps_disjoint_and_equals_follow_their_OGC_meaning()
    {
        var crossing = Shape("""{"type":"LineString","coordinates":[[99,0.5],[102,0.5]]}""");
        var half = Shape("""{"type":"Polygon","coordinates":[[[100.5,0.5],[101.5,0.5],[101.5,1.5],[100.5,1.5],[100.5,0.5]]]}""");
        var far = Shape("""{"type":"Point","coordinates":[0,0]}""");
        const string square = "[[[100,0],[101,0],[101,1],[100,1],[100,0]]]";
        Assert.True(Geo("intersects", "Polygon", square).Matches(crossing));
        Assert.False(Geo("intersects", "Polygon", square).Matches(far));
        Assert.True(Geo("overlaps", "Polygon", square).Matches(half));
        Assert.False(Geo("overlaps", "Polygon", square).Matches(crossing)); // different dimensions never overlap
        Assert.True(Geo("disjoint", "Polygon", square).Matches(far));
        Assert.False(Geo("disjoint", "Polygon", square).Matches(half));
        // The same square, clockwise and starting at another corner.
        Assert.True(Geo("equals", "Polygon", "[[[101,1],[101,0],[100,0],[100,1],[101,1]]]").Matches(Shape(Square)));
        Assert.False(Geo("equals", "Polygon", square).Matches(half));
    }

    [Fact]
    public void The_geoQ_object_of_a_query_body_takes_coordinates_as_an_array_or_a_string()
    {
        var fromArray = GeoQuery.FromJson(JsonDocument.Parse("""{"georel":"within","geometry":"Polygon","coordinates":[[[100,0],[101,0],[101,1],[100,1],[100,0]]],"geoproperty":"observationSpace"}""").RootElement, Expand);
        var fromString = GeoQuery.FromJson(JsonDocument.Parse("""{"georel":"within","geometry":"Polygon","coordinates":"[[[100,0],[101,0],[101,1],[100,1],[100,0]]]"}""").RootElement, Expand);
        Assert.True(fromArray.Geometry.EqualsExact(fromString.Geometry));
        Assert.Equal(Expand("observationSpace"), fromArray.GeoProperty);
        Assert.Equal(Expand("location"), fromString.GeoProperty);
    }

    [Theory]
    [InlineData(null, "Point", "[8,40]")]
    [InlineData("near", "Point", "[8,40]")]
    [InlineData("near;maxDistance=2000", "Point", "[8,40]")]
    [InlineData("near;maxDistance==-1", "Point", "[8,40]")]
    [InlineData("near;maxDistance==abc", "Point", "[8,40]")]
    [InlineData("near;maxDistance==1;minDistance==0", "Point", "[8,40]")]
    [InlineData("near;maxDistance==10", "Polygon", "[[[100,0],[101,0],[101,1],[100,1],[100,0]]]")]
    [InlineData("nearby", "Point", "[8,40]")]
    [InlineData("within;maxDistance==10", "Polygon", "[[[100,0],[101,0],[101,1],[100,1],[100,0]]]")]
    [InlineData("within", null, "[8,40]")]
    [InlineData("within", "Circle", "[8,40]")]
    [InlineData("within", "point", "[8,40]")]
    [InlineData("within", "Point", null)]
    [InlineData("within", "Point", "8,40")]
    [InlineData("within", "Point", "[8]")]
    [InlineData("within", "Point", "[8,91]")]
    [InlineData("within", "Point", "{\"a\":1}")]
    [InlineData("within", "Polygon", "[[[100,0],[101,0],[101,1],[100,0.5]]]")]
    public void Invalid_geo_queries_are_BadRequestData(string? georel, string? geometry, string? coordinates)
    {
        var ex = Assert.Throws<NgsiException>(() => GeoQuery.Parse(georel, geometry, coordinates, null, Expand));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
    }

    private static readonly Gen<(double Lat, double Lon)> PointGen = Gen.Select(Gen.Double[-60, 60], Gen.Double[-179, 179]);

    [Fact]
    public void Near_agrees_with_the_Vincenty_distance_on_random_points() =>
        Gen.Select(PointGen, Gen.Double[-0.05, 0.05], Gen.Double[-0.05, 0.05], Gen.Double[0, 8000]).Sample((p, dLat, dLon, radius) =>
            NearAgreesWithTheDistance(p.Lat, p.Lon, p.Lat + dLat, p.Lon + dLon, radius), iter: 3_000);

    [Theory]
    [InlineData(-1.32e-11, -6.913e-16, -8.731e-11, -6.913e-16, 5.43e-6)] // CsCheck seed akiD2iZe4v_6
    [InlineData(5e-11, 139.9, -5e-11, 139.9, 1e-6)]
    [InlineData(0, 0, 0, 1e-9, 1e-5)]
    public void Near_agrees_with_the_distance_for_points_micrometres_apart(double lat1, double lon1, double lat2, double lon2, double radius) =>
        // Near the equator the distance counts both points as on it, so it can be shorter than the latitudes
        // say by a few µm; the box that pre-filters the search must not drop what the distance keeps.
        NearAgreesWithTheDistance(lat1, lon1, lat2, lon2, radius);

    /// <summary>near;maxDistance and near;minDistance around point 1 decide on point 2 as its distance says.</summary>
    private static void NearAgreesWithTheDistance(double lat1, double lon1, double lat2, double lon2, double radius)
    {
        var distance = GeoMath.DistanceMeters(lat1, lon1, lat2, lon2);
        if (Math.Abs(distance - radius) < 1e-6)
        {
            return; // too close to the edge to say
        }

        var entity = GeoJsonGeometry.Factory.CreatePoint(new Coordinate(lon2, lat2));
        var coordinates = $"[{lon1.ToString("R", CultureInfo.InvariantCulture)},{lat1.ToString("R", CultureInfo.InvariantCulture)}]";
        var r = radius.ToString("R", CultureInfo.InvariantCulture);
        Assert.Equal(distance <= radius, Geo($"near;maxDistance=={r}", "Point", coordinates).Matches(entity));
        Assert.Equal(distance >= radius, Geo($"near;minDistance=={r}", "Point", coordinates).Matches(entity));
    }

    [Fact]
    public void Distance_to_a_line_is_the_least_geodesic_distance_to_any_of_its_points() =>
        Gen.Select(PointGen, Gen.Double[-0.3, 0.3].Array[4]).Sample((p, d) =>
        {
            var a = new Coordinate(p.Lon + d[0], p.Lat + d[1]);
            var b = new Coordinate(p.Lon + d[2], p.Lat + d[3]);
            var line = GeoJsonGeometry.Factory.CreateLineString([a, b]);
            var brute = Enumerable.Range(0, 2001).Min(i =>
            {
                var t = i / 2000.0;
                return GeoMath.DistanceMeters(p.Lat, p.Lon, a.Y + t * (b.Y - a.Y), a.X + t * (b.X - a.X));
            });
            var computed = GeoDistance.Meters(line, p.Lat, p.Lon);
            var length = GeoMath.DistanceMeters(a.Y, a.X, b.Y, b.X);
            Assert.InRange(computed, brute - length / 2000 - 1e-3, brute + 1e-3);
        }, iter: 300);

    private static readonly Gen<Geometry> SmallShapeGen = Gen.Select(Gen.Int[0, 6].Array[4], Gen.Int[0, 2]).Select((c, kind) =>
    {
        var (x0, x1) = (Math.Min(c[0], c[1]), Math.Max(c[0], c[1]) + 1);
        var (y0, y1) = (Math.Min(c[2], c[3]), Math.Max(c[2], c[3]) + 1);
        var f = GeoJsonGeometry.Factory;
        return kind switch
        {
            0 => (Geometry)f.CreatePoint(new Coordinate(x0, y0)),
            1 => f.CreateLineString([new Coordinate(x0, y0), new Coordinate(x1, y1)]),
            _ => f.CreatePolygon([new Coordinate(x0, y0), new Coordinate(x1, y0), new Coordinate(x1, y1), new Coordinate(x0, y1), new Coordinate(x0, y0)]),
        };
    });

    [Fact]
    public void Topological_relations_on_random_small_shapes_agree_with_NetTopologySuite() =>
        Gen.Select(SmallShapeGen, SmallShapeGen).Sample((query, entity) =>
        {
            var type = query.GeometryType;
            var coordinates = GeoJsonGeometry.ToJson(query);
            var raw = JsonDocument.Parse(coordinates).RootElement.GetProperty("coordinates").GetRawText();
            Assert.Equal(entity.Within(query), Geo("within", type, raw).Matches(entity));
            Assert.Equal(entity.Contains(query), Geo("contains", type, raw).Matches(entity));
            Assert.Equal(entity.Intersects(query), Geo("intersects", type, raw).Matches(entity));
            Assert.Equal(entity.Overlaps(query), Geo("overlaps", type, raw).Matches(entity));
            Assert.Equal(entity.Disjoint(query), Geo("disjoint", type, raw).Matches(entity));
            Assert.Equal(entity.EqualsTopologically(query), Geo("equals", type, raw).Matches(entity));
        }, iter: 2_000);
}
