using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using NetTopologySuite.Geometries;
using NetTopologySuite.Geometries.Implementation;
using NetTopologySuite.Operation.Valid;

namespace Machi.Ngsi.Geo;

/// <summary>
/// The value of an NGSI-LD GeoProperty: a GeoJSON geometry (IETF RFC 7946) read into a NetTopologySuite
/// <see cref="Geometry"/> with SRID 4326, and written back as canonical GeoJSON.
/// </summary>
/// <remarks>
/// NGSI-LD admits six geometry types: Point, MultiPoint, LineString, MultiLineString, Polygon and MultiPolygon.
/// GeometryCollection is a GeoJSON geometry but not a GeoProperty value, and a string (WKT, or GeoJSON serialised
/// into a string) is not one either: the value is the GeoJSON object itself. Positions are
/// [longitude, latitude] or [longitude, latitude, altitude] on WGS84. Rings may wind either way (RFC 7946 §3.1.6
/// says parsers should not reject clockwise exteriors) and are kept as given; polygons must be valid in the OGC
/// sense (no self-intersection, holes inside their shell), because a geo-query against an invalid polygon has no
/// defined answer. Foreign members are allowed and dropped; a bbox member is checked for shape and dropped.
/// </remarks>
internal static class GeoJsonGeometry
{
    /// <summary>Every geometry this class builds comes from here: floating precision, SRID 4326 (WGS84).</summary>
    public static GeometryFactory Factory { get; } =
        new(new PrecisionModel(), 4326, CoordinateArraySequenceFactory.Instance);

    private const string TypeList = "Point, MultiPoint, LineString, MultiLineString, Polygon or MultiPolygon";

    private enum Kind
    {
        Point,
        MultiPoint,
        LineString,
        MultiLineString,
        Polygon,
        MultiPolygon,
    }

    /// <summary>Reads and validates a GeoProperty value.</summary>
    /// <exception cref="NgsiException">BadRequestData, with a message naming the problem and where it is.</exception>
    public static Geometry Parse(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw value.ValueKind == JsonValueKind.String
                ? Bad("a GeoProperty value must be a GeoJSON geometry object, not a string (WKT or GeoJSON text inside a string is not accepted)")
                : Bad($"a GeoProperty value must be a GeoJSON geometry object, not {JsonKinds.Describe(value)}");
        }

        JsonElement type = default, coordinates = default, bbox = default;
        bool hasType = false, hasCoordinates = false, hasBbox = false;
        string? forbidden = null;
        foreach (var member in value.EnumerateObject())
        {
            if (member.NameEquals("type"u8))
            {
                if (hasType)
                {
                    throw Bad("geometry has more than one 'type' member");
                }

                hasType = true;
                type = member.Value;
            }
            else if (member.NameEquals("coordinates"u8))
            {
                if (hasCoordinates)
                {
                    throw Bad("geometry has more than one 'coordinates' member");
                }

                hasCoordinates = true;
                coordinates = member.Value;
            }
            else if (member.NameEquals("bbox"u8))
            {
                if (hasBbox)
                {
                    throw Bad("geometry has more than one 'bbox' member");
                }

                hasBbox = true;
                bbox = member.Value;
            }
            else if (member.NameEquals("geometry"u8) || member.NameEquals("properties"u8) || member.NameEquals("features"u8)
                || member.NameEquals("geometries"u8))
            {
                forbidden ??= member.Name;
            }
        }

        if (!hasType)
        {
            throw Bad("geometry has no 'type' member");
        }

        var kind = ReadKind(type);
        if (forbidden is not null)
        {
            // RFC 7946 §7.1: a geometry must not have "geometry", "properties" or "features" members, whose
            // GeoJSON meaning it cannot have; "geometries" would make it half a GeometryCollection.
            throw Bad($"a {kind} must not have a '{forbidden}' member");
        }

        if (!hasCoordinates)
        {
            throw Bad($"{kind} has no 'coordinates' member");
        }

        if (coordinates.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"coordinates must be an array, not {JsonKinds.Describe(coordinates)}");
        }

        if (hasBbox)
        {
            CheckBbox(bbox);
        }

        return kind switch
        {
            Kind.Point => Factory.CreatePoint(ReadPosition(coordinates, Path.Root)),
            Kind.MultiPoint => ReadMultiPoint(coordinates),
            Kind.LineString => Factory.CreateLineString(ReadLine(coordinates, Path.Root, -1)),
            Kind.MultiLineString => ReadMultiLineString(coordinates),
            Kind.Polygon => Valid(ReadPolygon(coordinates, Path.Root, -1), "Polygon"),
            _ => Valid(ReadMultiPolygon(coordinates), "MultiPolygon"),
        };
    }

    /// <summary>
    /// Reads and validates a GeoProperty value held as a <see cref="JsonNode"/> (null is JSON null). The node is
    /// copied once into a <see cref="JsonElement"/>; nodes parsed from request bodies always copy, a node built in
    /// code with a non-finite number cannot be written as JSON and fails with the writer's ArgumentException.
    /// </summary>
    public static Geometry Parse(JsonNode? value)
    {
        if (value is null)
        {
            throw Bad("a GeoProperty value must be a GeoJSON geometry object, not null");
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { MaxDepth = NodeMaxDepth }))
        {
            value.WriteTo(writer);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory, new JsonDocumentOptions { MaxDepth = NodeMaxDepth });
        return Parse(document.RootElement);
    }

    private const int NodeMaxDepth = 1024;

    /// <summary>Reads and validates a GeoProperty value held as UTF-8 JSON (a stored payload), without building a node tree.</summary>
    public static Geometry ParseUtf8(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = NodeMaxDepth });
        using var document = JsonDocument.ParseValue(ref reader);
        return Parse(document.RootElement);
    }

    /// <summary>
    /// The cheap shape test for a concise attribute: an object whose "type" is one of the six geometry types and
    /// which has a "coordinates" array is a GeoProperty value. It does not validate: <see cref="Parse(JsonElement)"/> does.
    /// </summary>
    public static bool IsGeoJsonGeometry(JsonElement value) =>
        value.ValueKind == JsonValueKind.Object
        && value.TryGetProperty("type"u8, out var type)
        && type.ValueKind == JsonValueKind.String
        && IsGeometryType(type.GetString())
        && value.TryGetProperty("coordinates"u8, out var coordinates)
        && coordinates.ValueKind == JsonValueKind.Array;

    /// <summary>One of the six geometry types a GeoProperty may hold.</summary>
    public static bool IsGeometryType(string? name) =>
        name is "Point" or "MultiPoint" or "LineString" or "MultiLineString" or "Polygon" or "MultiPolygon";

    /// <inheritdoc cref="IsGeoJsonGeometry(JsonElement)"/>
    public static bool IsGeoJsonGeometry(JsonNode? value) =>
        value is JsonObject obj
        && obj.TryGetPropertyValue("type", out var type)
        && type is JsonValue typeValue
        && typeValue.TryGetValue(out string? name)
        && IsGeometryType(name)
        && obj.TryGetPropertyValue("coordinates", out var coordinates)
        && coordinates is JsonArray;

    /// <summary>
    /// Writes a geometry as canonical GeoJSON: "type" then "coordinates", numbers in shortest round-trip form,
    /// altitude only where the position has one. Anything <see cref="Parse(JsonElement)"/> returns can be written.
    /// </summary>
    /// <exception cref="ArgumentException">The geometry is not one of the six NGSI-LD geometry types.</exception>
    public static void Write(Utf8JsonWriter writer, Geometry geometry)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(geometry);

        writer.WriteStartObject();
        switch (geometry)
        {
            case Point point:
                Start(writer, "Point"u8);
                if (point.IsEmpty)
                {
                    writer.WriteStartArray();
                    writer.WriteEndArray();
                }
                else
                {
                    WritePosition(writer, point.CoordinateSequence, 0);
                }

                break;
            case LineString line:
                Start(writer, "LineString"u8);
                WriteSequence(writer, line.CoordinateSequence);
                break;
            case Polygon polygon:
                Start(writer, "Polygon"u8);
                WritePolygon(writer, polygon);
                break;
            case MultiPoint multiPoint:
                Start(writer, "MultiPoint"u8);
                writer.WriteStartArray();
                foreach (var part in multiPoint.Geometries)
                {
                    WritePosition(writer, ((Point)part).CoordinateSequence, 0);
                }

                writer.WriteEndArray();
                break;
            case MultiLineString multiLine:
                Start(writer, "MultiLineString"u8);
                writer.WriteStartArray();
                foreach (var part in multiLine.Geometries)
                {
                    WriteSequence(writer, ((LineString)part).CoordinateSequence);
                }

                writer.WriteEndArray();
                break;
            case MultiPolygon multiPolygon:
                Start(writer, "MultiPolygon"u8);
                writer.WriteStartArray();
                foreach (var part in multiPolygon.Geometries)
                {
                    WritePolygon(writer, (Polygon)part);
                }

                writer.WriteEndArray();
                break;
            default:
                throw new ArgumentException($"{geometry.GeometryType} is not an NGSI-LD GeoProperty geometry", nameof(geometry));
        }

        writer.WriteEndObject();

        static void Start(Utf8JsonWriter writer, ReadOnlySpan<byte> type)
        {
            writer.WriteString("type"u8, type);
            writer.WritePropertyName("coordinates"u8);
        }
    }

    /// <summary>The canonical GeoJSON text of a geometry (see <see cref="Write"/>).</summary>
    public static string ToJson(Geometry geometry)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, geometry);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static Kind ReadKind(JsonElement type)
    {
        if (type.ValueKind != JsonValueKind.String)
        {
            throw Bad($"geometry 'type' must be a string, not {JsonKinds.Describe(type)}");
        }

        if (type.ValueEquals("Point"u8))
        {
            return Kind.Point;
        }

        if (type.ValueEquals("MultiPoint"u8))
        {
            return Kind.MultiPoint;
        }

        if (type.ValueEquals("LineString"u8))
        {
            return Kind.LineString;
        }

        if (type.ValueEquals("MultiLineString"u8))
        {
            return Kind.MultiLineString;
        }

        if (type.ValueEquals("Polygon"u8))
        {
            return Kind.Polygon;
        }

        if (type.ValueEquals("MultiPolygon"u8))
        {
            return Kind.MultiPolygon;
        }

        var name = type.GetString();
        throw name switch
        {
            "GeometryCollection" => Bad(
                $"GeometryCollection is not allowed as a GeoProperty value; use one of {TypeList}"),
            "Feature" or "FeatureCollection" => Bad(
                $"a {name} is not a geometry; a GeoProperty value is a GeoJSON geometry ({TypeList})"),
            _ => Bad($"unknown geometry type '{name}' (expected {TypeList}; names are case-sensitive)"),
        };
    }

    private static MultiPoint ReadMultiPoint(JsonElement coordinates)
    {
        var count = coordinates.GetArrayLength();
        if (count == 0)
        {
            throw Bad("MultiPoint needs at least 1 position");
        }

        var points = new Point[count];
        var i = 0;
        foreach (var position in coordinates.EnumerateArray())
        {
            points[i] = Factory.CreatePoint(ReadPosition(position, Path.Root.Child(i)));
            i++;
        }

        return Factory.CreateMultiPoint(points);
    }

    private static MultiLineString ReadMultiLineString(JsonElement coordinates)
    {
        var count = coordinates.GetArrayLength();
        if (count == 0)
        {
            throw Bad("MultiLineString needs at least 1 line");
        }

        var lines = new LineString[count];
        var i = 0;
        foreach (var line in coordinates.EnumerateArray())
        {
            lines[i] = Factory.CreateLineString(ReadLine(line, Path.Root.Child(i), i));
            i++;
        }

        return Factory.CreateMultiLineString(lines);
    }

    private static MultiPolygon ReadMultiPolygon(JsonElement coordinates)
    {
        var count = coordinates.GetArrayLength();
        if (count == 0)
        {
            throw Bad("MultiPolygon needs at least 1 polygon");
        }

        var polygons = new Polygon[count];
        var i = 0;
        foreach (var polygon in coordinates.EnumerateArray())
        {
            polygons[i] = ReadPolygon(polygon, Path.Root.Child(i), i);
            i++;
        }

        return Factory.CreateMultiPolygon(polygons);
    }

    /// <param name="index">The line's index in a MultiLineString, or -1 for a LineString.</param>
    private static Coordinate[] ReadLine(JsonElement line, Path path, int index)
    {
        if (line.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"{LineName(index)} must be an array of positions, not {JsonKinds.Describe(line)} at {path}");
        }

        var count = line.GetArrayLength();
        if (count > 0 && line[0].ValueKind == JsonValueKind.Number)
        {
            throw Bad($"{LineName(index)} must be an array of positions, not of numbers, at {path}");
        }

        if (count < 2)
        {
            throw Bad($"{LineName(index)} needs at least 2 positions, has {count}");
        }

        return ReadPositions(line, path, count);
    }

    /// <param name="index">The polygon's index in a MultiPolygon, or -1 for a Polygon.</param>
    private static Polygon ReadPolygon(JsonElement rings, Path path, int index)
    {
        if (rings.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"{PolygonName(index)} must be an array of linear rings, not {JsonKinds.Describe(rings)} at {path}");
        }

        var count = rings.GetArrayLength();
        if (count == 0)
        {
            throw Bad($"{PolygonName(index)} needs at least 1 linear ring");
        }

        if (rings[0] is { ValueKind: JsonValueKind.Array } first && first.GetArrayLength() > 0 && first[0].ValueKind == JsonValueKind.Number)
        {
            throw Bad($"{PolygonName(index)} must be an array of linear rings (arrays of positions), not of positions, at {path}");
        }

        using var each = rings.EnumerateArray();
        each.MoveNext();
        var shell = ReadRing(each.Current, path.Child(0), index, 0);
        var holes = new LinearRing[count - 1];
        for (var r = 1; each.MoveNext(); r++)
        {
            holes[r - 1] = ReadRing(each.Current, path.Child(r), index, r);
        }

        return Factory.CreatePolygon(shell, holes);
    }

    private static LinearRing ReadRing(JsonElement ring, Path path, int polygon, int index)
    {
        if (ring.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"{PolygonName(polygon)} ring {index} must be an array of positions, not {JsonKinds.Describe(ring)} at {path}");
        }

        var count = ring.GetArrayLength();
        if (count > 0 && ring[0].ValueKind == JsonValueKind.Number)
        {
            throw Bad($"{PolygonName(polygon)} ring {index} must be an array of positions, not of numbers, at {path}");
        }

        if (count < 4)
        {
            throw Bad($"{PolygonName(polygon)} ring {index} needs at least 4 positions (a closed linear ring), has {count}");
        }

        var positions = ReadPositions(ring, path, count);
        var first = positions[0];
        var last = positions[^1];
        if (!SamePosition(first, last))
        {
            throw Bad($"{PolygonName(polygon)} ring {index} is not closed: the first position {Format(first)} differs from the last {Format(last)}");
        }

        return Factory.CreateLinearRing(positions);
    }

    private static string LineName(int index) => index < 0 ? "LineString" : $"MultiLineString line {index}";

    private static string PolygonName(int index) => index < 0 ? "Polygon" : $"MultiPolygon polygon {index}";

    private static Coordinate[] ReadPositions(JsonElement array, Path path, int count)
    {
        var positions = new Coordinate[count];
        var i = 0;
        foreach (var position in array.EnumerateArray())
        {
            positions[i] = ReadPosition(position, path.Child(i));
            i++;
        }

        return positions;
    }

    private static Coordinate ReadPosition(JsonElement position, Path path)
    {
        if (position.ValueKind != JsonValueKind.Array)
        {
            throw Bad(path.IsRoot
                ? $"coordinates must be an array of numbers, not {JsonKinds.Describe(position)}"
                : $"a position must be an array of numbers, not {JsonKinds.Describe(position)} at {path}");
        }

        var count = position.GetArrayLength();
        if (count is < 2 or > 3)
        {
            if (count > 0)
            {
                // [[1, 2]] for a Point is a nesting mistake rather than a position of one number.
                ReadNumber(position[0], path, 0);
            }

            throw Bad($"a position has 2 or 3 numbers (longitude, latitude and optional altitude), not {count} at {path}");
        }

        var lon = ReadNumber(position[0], path, 0);
        var lat = ReadNumber(position[1], path, 1);
        if (lon is < -180 or > 180)
        {
            throw Bad($"longitude {Format(lon)} out of range [-180,180] at {path}");
        }

        if (lat is < -90 or > 90)
        {
            throw Bad($"latitude {Format(lat)} out of range [-90,90] at {path}");
        }

        return count == 3 ? new CoordinateZ(lon, lat, ReadNumber(position[2], path, 2)) : new Coordinate(lon, lat);
    }

    private static double ReadNumber(JsonElement number, Path path, int index)
    {
        if (number.ValueKind != JsonValueKind.Number)
        {
            throw Bad(path.IsRoot
                ? $"coordinates must be an array of numbers: {path}[{index}] is {JsonKinds.Describe(number)}"
                : $"a position must be an array of numbers: {path}[{index}] is {JsonKinds.Describe(number)}");
        }

        // 1e400 is valid JSON but not a double: it reads as infinity.
        if (!number.TryGetDouble(out var value) || !double.IsFinite(value))
        {
            throw Bad($"{path}[{index}] is not a finite number");
        }

        return value;
    }

    private static void CheckBbox(JsonElement bbox)
    {
        if (bbox.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"bbox must be an array of numbers, not {JsonKinds.Describe(bbox)}");
        }

        var count = bbox.GetArrayLength();
        if (count is not (4 or 6))
        {
            throw Bad($"bbox must have 4 or 6 numbers (RFC 7946 §5), has {count}");
        }

        var i = 0;
        foreach (var number in bbox.EnumerateArray())
        {
            if (number.ValueKind != JsonValueKind.Number || !number.TryGetDouble(out var value) || !double.IsFinite(value))
            {
                throw Bad($"bbox[{i}] must be a finite number, not {JsonKinds.Describe(number)}");
            }

            i++;
        }
    }

    private static Geometry Valid(Geometry geometry, string name)
    {
        var validity = new IsValidOp(geometry);
        if (validity.IsValid)
        {
            return geometry;
        }

        var error = validity.ValidationError;
        var at = error.Coordinate is { } c ? $" at {Format(c)}" : "";
        throw Bad($"{name} is not valid: {error.Message}{at}");
    }

    private static bool SamePosition(Coordinate a, Coordinate b) =>
        a.X.Equals(b.X) && a.Y.Equals(b.Y) && a.Z.Equals(b.Z);

    private static void WritePolygon(Utf8JsonWriter writer, Polygon polygon)
    {
        writer.WriteStartArray();
        if (!polygon.IsEmpty)
        {
            WriteSequence(writer, polygon.Shell.CoordinateSequence);
            foreach (var hole in polygon.Holes)
            {
                WriteSequence(writer, hole.CoordinateSequence);
            }
        }

        writer.WriteEndArray();
    }

    private static void WriteSequence(Utf8JsonWriter writer, CoordinateSequence sequence)
    {
        writer.WriteStartArray();
        for (var i = 0; i < sequence.Count; i++)
        {
            WritePosition(writer, sequence, i);
        }

        writer.WriteEndArray();
    }

    private static void WritePosition(Utf8JsonWriter writer, CoordinateSequence sequence, int index)
    {
        writer.WriteStartArray();
        writer.WriteNumberValue(sequence.GetX(index));
        writer.WriteNumberValue(sequence.GetY(index));
        var z = sequence.HasZ ? sequence.GetZ(index) : double.NaN;
        if (!double.IsNaN(z))
        {
            writer.WriteNumberValue(z);
        }

        writer.WriteEndArray();
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Format(Coordinate c) =>
        double.IsNaN(c.Z) ? $"[{Format(c.X)},{Format(c.Y)}]" : $"[{Format(c.X)},{Format(c.Y)},{Format(c.Z)}]";

    private static NgsiException Bad(string detail) => NgsiException.BadData(detail);

    /// <summary>Where in "coordinates" a value sits, e.g. coordinates[1][0][3]; formatted only for an error.</summary>
    private readonly struct Path
    {
        private readonly int _depth;
        private readonly int _i0;
        private readonly int _i1;
        private readonly int _i2;

        private Path(int depth, int i0, int i1, int i2)
        {
            _depth = depth;
            _i0 = i0;
            _i1 = i1;
            _i2 = i2;
        }

        public static Path Root => default;

        public bool IsRoot => _depth == 0;

        public Path Child(int index) => _depth switch
        {
            0 => new Path(1, index, 0, 0),
            1 => new Path(2, _i0, index, 0),
            _ => new Path(3, _i0, _i1, index),
        };

        public override string ToString() => _depth switch
        {
            0 => "coordinates",
            1 => $"coordinates[{_i0}]",
            2 => $"coordinates[{_i0}][{_i1}]",
            _ => $"coordinates[{_i0}][{_i1}][{_i2}]",
        };
    }
}
