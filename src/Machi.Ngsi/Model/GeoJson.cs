using System.Text.Json.Nodes;

namespace Machi.Ngsi.Model;

/// <summary>Shape checks for GeoJSON geometries at parse time.</summary>
internal static class GeoJson
{
    public static bool IsGeometryType(string type) => type is "Point" or "MultiPoint" or "LineString"
        or "MultiLineString" or "Polygon" or "MultiPolygon";

    /// <summary>Null when valid, else the reason.</summary>
    public static string? Validate(JsonObject geometry) =>
        geometry["type"] is JsonValue t && t.TryGetValue<string>(out var type) && IsGeometryType(type) && geometry["coordinates"] is JsonArray
            ? null
            : "not a GeoJSON geometry";
}
