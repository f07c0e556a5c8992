using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;
using NetTopologySuite.Geometries;

namespace Machi.Ngsi.Query;

/// <summary>The geo-relationships of clause 4.10, each read as "the entity's geometry … the query geometry".</summary>
public enum GeoRelation
{
    /// <summary>Within maxDistance of, or at least minDistance from, the query point (metres, geodesic).</summary>
    Near,

    /// <summary>The entity geometry is within the query geometry.</summary>
    Within,

    /// <summary>The entity geometry contains the query geometry.</summary>
    Contains,

    /// <summary>The two geometries share at least one point.</summary>
    Intersects,

    /// <summary>The geometries share interior points, each has points outside the other, and they have the same dimension.</summary>
    Overlaps,

    /// <summary>The two geometries share no point.</summary>
    Disjoint,

    /// <summary>The two geometries are the same point set.</summary>
    Equals,
}

/// <summary>
/// A geo-query (clause 4.10): a relation, a reference geometry (GeoJSON, longitude then latitude on WGS84), and
/// the GeoProperty of the entity it is tested against (expanded; "location" when not given).
/// </summary>
/// <remarks>
/// Topological relations are NetTopologySuite's OGC predicates on longitude/latitude taken as plane coordinates,
/// so a line or polygon edge is the straight line in degrees between its vertices (as PostGIS "geometry" does).
/// Distances are geodesic on WGS84 in metres, see <see cref="GeoDistance"/>.
/// </remarks>
public sealed class GeoQuery
{
    private GeoQuery(GeoRelation relation, Geometry geometry, string geoProperty, double? maxDistance, double? minDistance)
    {
        Relation = relation;
        Geometry = geometry;
        GeoProperty = geoProperty;
        MaxDistance = maxDistance;
        MinDistance = minDistance;
    }

    public GeoRelation Relation { get; }

    /// <summary>The reference geometry, SRID 4326, X = longitude, Y = latitude.</summary>
    public Geometry Geometry { get; }

    /// <summary>The expanded name of the GeoProperty the query is about.</summary>
    public string GeoProperty { get; }

    /// <summary>For <see cref="GeoRelation.Near"/>: the largest distance in metres, inclusive.</summary>
    public double? MaxDistance { get; }

    /// <summary>For <see cref="GeoRelation.Near"/>: the smallest distance in metres, inclusive.</summary>
    public double? MinDistance { get; }

    /// <summary>Reads the GET parameters georel, geometry, coordinates (the JSON array as text) and geoproperty.</summary>
    /// <exception cref="NgsiException">BadRequestData when a member is missing or invalid.</exception>
    public static GeoQuery Parse(string? georel, string? geometry, string? coordinates, string? geoproperty, Func<string, string> expandTerm)
    {
        ArgumentNullException.ThrowIfNull(expandTerm);
        if (string.IsNullOrEmpty(coordinates))
        {
            throw Bad("coordinates are missing");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(coordinates, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException)
        {
            throw Bad("coordinates must be a JSON array of numbers or of positions, e.g. [139.93,37.49]");
        }

        using (document)
        {
            return Create(georel, geometry, document.RootElement, geoproperty, expandTerm);
        }
    }

    /// <summary>
    /// Reads the geoQ member of a POST /entityOperations/query body or of a subscription: an object with georel,
    /// geometry, coordinates (a JSON array, or a string holding one) and optionally geoproperty.
    /// </summary>
    /// <exception cref="NgsiException">BadRequestData when a member is missing or invalid.</exception>
    public static GeoQuery FromJson(JsonElement geoQ, Func<string, string> expandTerm)
    {
        ArgumentNullException.ThrowIfNull(expandTerm);
        if (geoQ.ValueKind != JsonValueKind.Object)
        {
            throw Bad($"geoQ must be an object, not {JsonKinds.Describe(geoQ)}");
        }

        var georel = OptionalString(geoQ, "georel");
        var geometry = OptionalString(geoQ, "geometry");
        var geoproperty = OptionalString(geoQ, "geoproperty");
        if (!geoQ.TryGetProperty("coordinates", out var coordinates) || coordinates.ValueKind == JsonValueKind.Null)
        {
            throw Bad("coordinates are missing");
        }

        return coordinates.ValueKind == JsonValueKind.String
            ? Parse(georel, geometry, coordinates.GetString(), geoproperty, expandTerm)
            : Create(georel, geometry, coordinates, geoproperty, expandTerm);
    }

    /// <summary>Whether an entity's geometry (of the <see cref="GeoProperty"/>) stands in the relation.</summary>
    public bool Matches(Geometry entityGeometry)
    {
        ArgumentNullException.ThrowIfNull(entityGeometry);
        return Relation switch
        {
            GeoRelation.Near => MatchesNear(entityGeometry),
            GeoRelation.Within => entityGeometry.Within(Geometry),
            GeoRelation.Contains => entityGeometry.Contains(Geometry),
            GeoRelation.Intersects => entityGeometry.Intersects(Geometry),
            GeoRelation.Overlaps => entityGeometry.Overlaps(Geometry),
            GeoRelation.Disjoint => entityGeometry.Disjoint(Geometry),
            _ => entityGeometry.EqualsTopologically(Geometry),
        };
    }

    private bool MatchesNear(Geometry entityGeometry)
    {
        var point = (Point)Geometry;
        if (MaxDistance is { } max && !GeoDistance.IsWithin(entityGeometry, point.Y, point.X, max))
        {
            return false;
        }

        // At least minDistance away: no point of the entity geometry is closer than that.
        return MinDistance is not { } min || min == 0 || !GeoDistance.IsWithin(entityGeometry, point.Y, point.X, Math.BitDecrement(min));
    }

    private static GeoQuery Create(string? georel, string? geometryType, JsonElement coordinates, string? geoproperty, Func<string, string> expandTerm)
    {
        if (string.IsNullOrEmpty(georel))
        {
            throw Bad("georel is missing");
        }

        if (string.IsNullOrEmpty(geometryType))
        {
            throw Bad("geometry is missing");
        }

        if (!GeoJsonGeometry.IsGeometryType(geometryType))
        {
            throw Bad($"unknown geometry '{Truncate(geometryType)}' (expected Point, MultiPoint, LineString, MultiLineString, Polygon or MultiPolygon)");
        }

        if (coordinates.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"coordinates must be a JSON array, not {JsonKinds.Describe(coordinates)}");
        }

        var (relation, max, min) = ParseGeorel(georel);
        var geometry = ReadGeometry(geometryType, coordinates);
        if (relation == GeoRelation.Near && geometry is not Point)
        {
            throw Bad($"georel near needs a Point to measure from, not a {geometryType}");
        }

        if (geoproperty is not null && !Model.NgsiText.IsName(geoproperty))
        {
            throw Bad($"geoproperty '{Truncate(geoproperty)}' is not an attribute name");
        }

        return new GeoQuery(relation, geometry, expandTerm(string.IsNullOrEmpty(geoproperty) ? "location" : geoproperty), max, min);
    }

    /// <summary>"near;maxDistance==2000", "near;minDistance==5", or one of the topological relations.</summary>
    private static (GeoRelation Relation, double? Max, double? Min) ParseGeorel(string georel)
    {
        var parts = georel.Split(';');
        GeoRelation relation = parts[0] switch
        {
            "near" => GeoRelation.Near,
            "within" => GeoRelation.Within,
            "contains" => GeoRelation.Contains,
            "intersects" => GeoRelation.Intersects,
            "overlaps" => GeoRelation.Overlaps,
            "disjoint" => GeoRelation.Disjoint,
            "equals" => GeoRelation.Equals,
            _ => throw Bad($"unknown georel '{Truncate(parts[0])}' (expected near, within, contains, intersects, overlaps, disjoint or equals)"),
        };

        if (relation != GeoRelation.Near)
        {
            return parts.Length == 1 ? (relation, null, null) : throw Bad($"georel {parts[0]} takes no modifier");
        }

        if (parts.Length != 2)
        {
            throw Bad("georel near needs exactly one of maxDistance==<metres> or minDistance==<metres>, e.g. near;maxDistance==2000");
        }

        var modifier = parts[1];
        var separator = modifier.IndexOf("==", StringComparison.Ordinal);
        var name = separator < 0 ? modifier : modifier[..separator];
        if (separator < 0 || name is not ("maxDistance" or "minDistance"))
        {
            throw Bad($"georel near: '{Truncate(modifier)}' is not maxDistance==<metres> or minDistance==<metres>");
        }

        var text = modifier[(separator + 2)..];
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var metres) || !double.IsFinite(metres) || metres < 0)
        {
            throw Bad($"georel near: {name} must be a number of metres, zero or more, not '{Truncate(text)}'");
        }

        return name == "maxDistance" ? (relation, metres, null) : (relation, null, metres);
    }

    private static Geometry ReadGeometry(string type, JsonElement coordinates)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("type", type);
            writer.WritePropertyName("coordinates");
            coordinates.WriteTo(writer);
            writer.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        try
        {
            return GeoJsonGeometry.Parse(document.RootElement);
        }
        catch (NgsiException ex)
        {
            throw Bad($"geometry/coordinates: {ex.Message}");
        }
    }

    private static string? OptionalString(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Bad($"{name} must be a string, not {JsonKinds.Describe(value)}");
    }

    private static string Truncate(string s) => s.Length <= 60 ? s : string.Concat(s.AsSpan(0, 57), "...");

    private static NgsiException Bad(string message) => NgsiException.BadData($"geo-query: {message}.");
}
