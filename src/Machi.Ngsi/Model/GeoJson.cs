using System.Text.Json;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;

namespace Machi.Ngsi.Model;

/// <summary>GeoProperty value checks at parse time, delegating to the full GeoJSON validator.</summary>
internal static class GeoJson
{
    public static bool IsGeometryType(string type) => type is "Point" or "MultiPoint" or "LineString"
        or "MultiLineString" or "Polygon" or "MultiPolygon";

    /// <summary>Null when the geometry is valid GeoJSON (RFC 7946), else the reason.</summary>
    public static string? Validate(JsonElement geometry)
    {
        try
        {
            GeoJsonGeometry.Parse(geometry);
            return null;
        }
        catch (NgsiException ex)
        {
            return ex.Message;
        }
    }
}
