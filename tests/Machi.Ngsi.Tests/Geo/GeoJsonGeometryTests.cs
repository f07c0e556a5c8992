using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;
using NetTopologySuite.Geometries;

namespace Machi.Ngsi.Tests.Geo;

public class GeoJsonGeometryTests
{
    // The geometry examples of RFC 7946 Appendix A, and the Point every NGSI-LD example uses.
    [Theory]
    [InlineData("""{"type":"Point","coordinates":[100.0,0.0]}""", "Point", 1)]
    [InlineData("""{"type":"Point","coordinates":[-8.5,41.2]}""", "Point", 1)]
    [InlineData("""{"type":"LineString","coordinates":[[100.0,0.0],[101.0,1.0]]}""", "LineString", 2)]
    [InlineData("""{"type":"Polygon","coordinates":[[[100.0,0.0],[101.0,0.0],[101.0,1.0],[100.0,1.0],[100.0,0.0]]]}""", "Polygon", 5)]
    [InlineData("""{"type":"Polygon","coordinates":[[[100.0,0.0],[101.0,0.0],[101.0,1.0],[100.0,1.0],[100.0,0.0]],[[100.8,0.8],[100.8,0.2],[100.2,0.2],[100.2,0.8],[100.8,0.8]]]}""", "Polygon", 10)]
    [InlineData("""{"type":"MultiPoint","coordinates":[[100.0,0.0],[101.0,1.0]]}""", "MultiPoint", 2)]
    [InlineData("""{"type":"MultiLineString","coordinates":[[[100.0,0.0],[101.0,1.0]],[[102.0,2.0],[103.0,3.0]]]}""", "MultiLineString", 4)]
    [InlineData("""{"type":"MultiPolygon","coordinates":[[[[102.0,2.0],[103.0,2.0],[103.0,3.0],[102.0,3.0],[102.0,2.0]]],[[[100.0,0.0],[101.0,0.0],[101.0,1.0],[100.0,1.0],[100.0,0.0]],[[100.2,0.2],[100.2,0.8],[100.8,0.8],[100.8,0.2],[100.2,0.2]]]]}""", "MultiPolygon", 15)]
    public void Parse_reads_the_RFC_7946_geometry_examples(string json, string type, int positions)
    {
        var geometry = Parse(json);

        Assert.Equal(type, geometry.GeometryType);
        Assert.Equal(positions, geometry.NumPoints);
        Assert.Equal(4326, geometry.SRID);
        Assert.True(geometry.IsValid);
    }

    [Fact]
    public void Parse_keeps_longitude_as_x_and_latitude_as_y()
    {
        // 鶴ヶ城 (Tsuruga Castle), Aizuwakamatsu.
        var point = (Point)Parse("""{"type":"Point","coordinates":[139.929845,37.487769]}""");

        Assert.Equal(139.929845, point.X);
        Assert.Equal(37.487769, point.Y);
        Assert.True(double.IsNaN(point.Coordinate.Z));
    }

    [Fact]
    public void Parse_keeps_an_altitude_as_z()
    {
        var point = (Point)Parse("""{"type":"Point","coordinates":[139.7671,35.6812,40.5]}""");

        Assert.Equal(40.5, point.Coordinate.Z);
    }

    [Theory]
    [InlineData("""{"type":"Point","coordinates":[180,90]}""")]
    [InlineData("""{"type":"Point","coordinates":[-180,-90]}""")]
    [InlineData("""{"type":"Point","coordinates":[0,0,-10994]}""")]
    [InlineData("""{"type":"Point","coordinates":[1e1,-2.5E-3]}""")]
    public void Parse_accepts_positions_on_the_edges_of_the_range(string json)
    {
        Assert.IsType<Point>(Parse(json));
    }

    [Fact]
    public void Parse_accepts_a_clockwise_exterior_ring_and_keeps_its_order()
    {
        // RFC 7946 §3.1.6: exteriors should be counterclockwise, but parsers should not reject clockwise ones.
        var polygon = (Polygon)Parse("""{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[1,0],[0,0]]]}""");

        Assert.Equal(new Coordinate(0, 1), polygon.Shell.GetCoordinateN(1));
    }

    [Fact]
    public void Parse_accepts_foreign_members_and_a_bbox()
    {
        var geometry = Parse("""
            {"bbox":[100.0,0.0,101.0,1.0],"type":"LineString","title":"route","crs":null,
             "extra":{"deep":[[1,2],{"x":"y"}]},"coordinates":[[100.0,0.0],[101.0,1.0]]}
            """);

        Assert.IsType<LineString>(geometry);
    }

    [Theory]
    [InlineData("""{"type":"Pointy","coordinates":[1,2]}""", "unknown geometry type 'Pointy'")]
    [InlineData("""{"type":"point","coordinates":[1,2]}""", "unknown geometry type 'point'")]
    [InlineData("""{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]}]}""", "GeometryCollection is not allowed as a GeoProperty value")]
    [InlineData("""{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{}}""", "a Feature is not a geometry")]
    [InlineData("""{"type":"FeatureCollection","features":[]}""", "a FeatureCollection is not a geometry")]
    [InlineData("""{"coordinates":[1,2]}""", "geometry has no 'type' member")]
    [InlineData("""{"type":7,"coordinates":[1,2]}""", "geometry 'type' must be a string, not a number")]
    [InlineData("""{"type":"Point"}""", "Point has no 'coordinates' member")]
    [InlineData("""{"type":"Polygon","coordinates":null}""", "coordinates must be an array, not null")]
    [InlineData("""{"type":"Point","coordinates":"139.77,35.68"}""", "coordinates must be an array, not a string")]
    [InlineData("""{"type":"Point","coordinates":["139.77","35.68"]}""", "coordinates must be an array of numbers: coordinates[0] is a string")]
    [InlineData("""{"type":"Point","coordinates":[139.77,null]}""", "coordinates must be an array of numbers: coordinates[1] is null")]
    [InlineData("""{"type":"Point","coordinates":[]}""", "a position has 2 or 3 numbers (longitude, latitude and optional altitude), not 0 at coordinates")]
    [InlineData("""{"type":"Point","coordinates":[1,2,3,4]}""", "a position has 2 or 3 numbers (longitude, latitude and optional altitude), not 4 at coordinates")]
    [InlineData("""{"type":"Point","coordinates":[[1,2]]}""", "coordinates must be an array of numbers: coordinates[0] is an array")]
    [InlineData("""{"type":"Point","coordinates":[190,10]}""", "longitude 190 out of range [-180,180] at coordinates")]
    [InlineData("""{"type":"Point","coordinates":[10,-90.5]}""", "latitude -90.5 out of range [-90,90] at coordinates")]
    [InlineData("""{"type":"Point","coordinates":[35.681236,139.767125]}""", "latitude 139.767125 out of range [-90,90] at coordinates")]
    [InlineData("""{"type":"Point","coordinates":[1e400,0]}""", "coordinates[0] is not a finite number")]
    [InlineData("""{"type":"MultiPoint","coordinates":[[0,0],[1,1],[190,0]]}""", "longitude 190 out of range [-180,180] at coordinates[2]")]
    [InlineData("""{"type":"MultiPoint","coordinates":[]}""", "MultiPoint needs at least 1 position")]
    [InlineData("""{"type":"MultiPoint","coordinates":[[0,0],5]}""", "a position must be an array of numbers, not a number at coordinates[1]")]
    [InlineData("""{"type":"LineString","coordinates":[[0,0]]}""", "LineString needs at least 2 positions, has 1")]
    [InlineData("""{"type":"LineString","coordinates":[[0,0],[1,"1"]]}""", "a position must be an array of numbers: coordinates[1][1] is a string")]
    [InlineData("""{"type":"LineString","coordinates":[[0,0],[1,1,1,1]]}""", "not 4 at coordinates[1]")]
    [InlineData("""{"type":"MultiLineString","coordinates":[]}""", "MultiLineString needs at least 1 line")]
    [InlineData("""{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[0,0]]]}""", "MultiLineString line 1 needs at least 2 positions, has 1")]
    [InlineData("""{"type":"MultiLineString","coordinates":[[0,0],[1,1]]}""", "MultiLineString line 0 must be an array of positions, not of numbers, at coordinates[0]")]
    [InlineData("""{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[0,0],[0,95]]]}""", "latitude 95 out of range [-90,90] at coordinates[1][1]")]
    [InlineData("""{"type":"Polygon","coordinates":[]}""", "Polygon needs at least 1 linear ring")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}""", "Polygon ring 0 is not closed: the first position [0,0] differs from the last [0,1]")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}""", "Polygon ring 0 needs at least 4 positions (a closed linear ring), has 3")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0,5]]]}""", "Polygon ring 0 is not closed")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,4],[0,0]],[[1,1],[2,1],[2,2],[1,1.5]]]}""", "Polygon ring 1 is not closed")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,4],[0,0]],[[1,1],[2,1],[200,2],[1,1]]]}""", "longitude 200 out of range [-180,180] at coordinates[1][2]")]
    [InlineData("""{"type":"Polygon","coordinates":[[0,0],[1,0],[1,1],[0,0]]}""", "Polygon must be an array of linear rings (arrays of positions), not of positions, at coordinates")]
    [InlineData("""{"type":"MultiPolygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}""", "MultiPolygon polygon 0 must be an array of linear rings (arrays of positions), not of positions, at coordinates[0]")]
    [InlineData("""{"type":"LineString","coordinates":[0,0]}""", "LineString must be an array of positions, not of numbers, at coordinates")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}""", "Polygon is not valid: Self-intersection at [0.5,0.5]")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,4],[0,0]],[[5,5],[6,5],[6,6],[5,5]]]}""", "Polygon is not valid: Hole lies outside shell")]
    [InlineData("""{"type":"Polygon","coordinates":[[[1,1],[1,1],[1,1],[1,1]]]}""", "Polygon is not valid: Too few points")]
    [InlineData("""{"type":"MultiPolygon","coordinates":[]}""", "MultiPolygon needs at least 1 polygon")]
    [InlineData("""{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,5],[6,6],[5,6]]]]}""", "MultiPolygon polygon 1 ring 0 is not closed")]
    [InlineData("""{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[]]}""", "MultiPolygon polygon 1 needs at least 1 linear ring")]
    [InlineData("""{"type":"MultiPolygon","coordinates":[[[[0,0],[2,0],[2,2],[0,2],[0,0]]],[[[1,1],[3,1],[3,3],[1,3],[1,1]]]]}""", "MultiPolygon is not valid: Self-intersection")]
    [InlineData("""{"type":"Point","coordinates":[1,2],"properties":{"name":"x"}}""", "a Point must not have a 'properties' member")]
    [InlineData("""{"type":"Polygon","geometry":{},"coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}""", "a Polygon must not have a 'geometry' member")]
    [InlineData("""{"type":"MultiPoint","geometries":[],"coordinates":[[0,0]]}""", "a MultiPoint must not have a 'geometries' member")]
    [InlineData("""{"type":"LineString","coordinates":[[0,0],[1,1]],"features":[]}""", "a LineString must not have a 'features' member")]
    [InlineData("""{"type":"Point","coordinates":[1,2],"coordinates":[3,4]}""", "geometry has more than one 'coordinates' member")]
    [InlineData("""{"type":"Point","type":"Point","coordinates":[1,2]}""", "geometry has more than one 'type' member")]
    [InlineData("""{"type":"Point","coordinates":[1,2],"bbox":[1,2,1]}""", "bbox must have 4 or 6 numbers (RFC 7946 §5), has 3")]
    [InlineData("""{"type":"Point","coordinates":[1,2],"bbox":[1,2,"1",2]}""", "bbox[2] must be a finite number, not a string")]
    [InlineData("""{"type":"Point","coordinates":[1,2],"bbox":"1,2,1,2"}""", "bbox must be an array of numbers, not a string")]
    [InlineData("\"POINT (139.77 35.68)\"", "a GeoProperty value must be a GeoJSON geometry object, not a string")]
    [InlineData("""["Point",[1,2]]""", "a GeoProperty value must be a GeoJSON geometry object, not an array")]
    [InlineData("null", "a GeoProperty value must be a GeoJSON geometry object, not null")]
    [InlineData("42", "a GeoProperty value must be a GeoJSON geometry object, not a number")]
    public void Parse_rejects_an_invalid_geometry_as_BadRequestData_naming_the_problem(string json, string message)
    {
        var error = Assert.Throws<NgsiException>(() => Parse(json));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Equal(400, error.Status);
        Assert.Contains(message, error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_rejects_GeoJSON_serialised_into_a_string()
    {
        var value = JsonSerializer.SerializeToElement("""{"type":"Point","coordinates":[1,2]}""");

        var error = Assert.Throws<NgsiException>(() => GeoJsonGeometry.Parse(value));

        Assert.Contains("not a string", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_of_a_JsonNode_agrees_with_Parse_of_a_JsonElement()
    {
        const string Json = """{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]],[[0.6,0.2],[0.8,0.2],[0.8,0.4],[0.6,0.2]]]}""";

        var fromNode = GeoJsonGeometry.Parse(JsonNode.Parse(Json));

        Assert.True(fromNode.EqualsExact(Parse(Json)));
        Assert.Equal(4326, fromNode.SRID);
    }

    [Theory]
    [InlineData(null, "not null")]
    [InlineData("""{"type":"Point","coordinates":[1,91]}""", "latitude 91 out of range [-90,90] at coordinates")]
    public void Parse_of_a_JsonNode_rejects_what_Parse_of_a_JsonElement_rejects(string? json, string message)
    {
        var node = json is null ? null : JsonNode.Parse(json);

        var error = Assert.Throws<NgsiException>(() => GeoJsonGeometry.Parse(node));

        Assert.Contains(message, error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"Point","coordinates":[100.0,0.0]}""", """{"type":"Point","coordinates":[100,0]}""")]
    [InlineData("""{"coordinates":[139.7671,35.6812,40.5],"type":"Point"}""", """{"type":"Point","coordinates":[139.7671,35.6812,40.5]}""")]
    [InlineData("""{"type":"MultiPoint","coordinates":[[100.0,0.0],[101.0,1.0,7]]}""", """{"type":"MultiPoint","coordinates":[[100,0],[101,1,7]]}""")]
    [InlineData("""{"type":"LineString","coordinates":[[100.0,0.0],[101.0,1.0]],"bbox":[100,0,101,1],"title":"x"}""", """{"type":"LineString","coordinates":[[100,0],[101,1]]}""")]
    [InlineData("""{"type":"MultiLineString","coordinates":[[[100.0,0.0],[101.0,1.0]],[[102.0,2.0],[103.0,3.0]]]}""", """{"type":"MultiLineString","coordinates":[[[100,0],[101,1]],[[102,2],[103,3]]]}""")]
    [InlineData("""{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[1,0],[0,0]]]}""", """{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[1,0],[0,0]]]}""")]
    [InlineData("""{"type":"MultiPolygon","coordinates":[[[[102.0,2.0],[103.0,2.0],[103.0,3.0],[102.0,3.0],[102.0,2.0]]],[[[100.0,0.0],[101.0,0.0],[101.0,1.0],[100.0,1.0],[100.0,0.0]],[[100.2,0.2],[100.2,0.8],[100.8,0.8],[100.8,0.2],[100.2,0.2]]]]}""", """{"type":"MultiPolygon","coordinates":[[[[102,2],[103,2],[103,3],[102,3],[102,2]]],[[[100,0],[101,0],[101,1],[100,1],[100,0]],[[100.2,0.2],[100.2,0.8],[100.8,0.8],[100.8,0.2],[100.2,0.2]]]]}""")]
    [InlineData("""{"type":"Point","coordinates":[0.1,-0.30000000000000004]}""", """{"type":"Point","coordinates":[0.1,-0.30000000000000004]}""")]
    public void Write_gives_canonical_GeoJSON_type_first_without_foreign_members(string json, string canonical)
    {
        Assert.Equal(canonical, GeoJsonGeometry.ToJson(Parse(json)));
    }

    [Fact]
    public void Write_refuses_a_geometry_NGSI_LD_does_not_allow()
    {
        var collection = GeoJsonGeometry.Factory.CreateGeometryCollection([GeoJsonGeometry.Factory.CreatePoint(new Coordinate(1, 2))]);

        Assert.Throws<ArgumentException>(() => GeoJsonGeometry.ToJson(collection));
    }

    [Theory]
    [InlineData("""{"type":"Point","coordinates":[1,2]}""", true)]
    [InlineData("""{"type":"MultiPolygon","coordinates":[]}""", true)]
    [InlineData("""{"coordinates":[[1,2],[3,4]],"type":"LineString","name":"x"}""", true)]
    [InlineData("""{"type":"Point","coordinates":[1,200]}""", true)]
    [InlineData("""{"type":"GeometryCollection","geometries":[]}""", false)]
    [InlineData("""{"type":"Point"}""", false)]
    [InlineData("""{"type":"Point","coordinates":"1,2"}""", false)]
    [InlineData("""{"type":"Pointy","coordinates":[1,2]}""", false)]
    [InlineData("""{"type":"Property","value":{"type":"Point","coordinates":[1,2]}}""", false)]
    [InlineData("""{"type":["Point"],"coordinates":[1,2]}""", false)]
    [InlineData("""{"street":"本町","coordinates":[1,2]}""", false)]
    [InlineData("\"Point\"", false)]
    [InlineData("[1,2]", false)]
    [InlineData("null", false)]
    public void IsGeoJsonGeometry_recognises_the_shape_of_a_concise_GeoProperty(string json, bool expected)
    {
        using var document = JsonDocument.Parse(json);

        Assert.Equal(expected, GeoJsonGeometry.IsGeoJsonGeometry(document.RootElement));
        Assert.Equal(expected, GeoJsonGeometry.IsGeoJsonGeometry(JsonNode.Parse(json)));
    }

    private static Geometry Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return GeoJsonGeometry.Parse(document.RootElement);
    }
}
