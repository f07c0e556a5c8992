using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Machi.Snow.Ingestion;

/// <summary>
/// Positions over HTTP: the OsmAnd/Traccar protocol (<c>GET</c> or <c>POST</c> on <c>/snow/osmand</c>, fields in the query
/// string or a form body) and NGSI-LD attribute updates of the unit's own Vehicle entity
/// (<c>PATCH /snow/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:{id}/attrs</c> with the unit's token as bearer).
/// 200 when kept; otherwise 4xx with a ProblemDetails body whose <c>reason</c> says why.
/// </summary>
internal static class IngestionEndpoints
{
    private const long MaxBodyBytes = 64 * 1024;

    public static void MapIngestion(this IEndpointRouteBuilder app)
    {
        var snow = app.MapGroup("/snow").WithTags("Snowplow Navi");
        snow.MapGet("/osmand", OsmAnd).WithName("SnowOsmAndGet").WithSummary("Report a position (OsmAnd/Traccar protocol)");
        snow.MapPost("/osmand", OsmAnd).WithName("SnowOsmAndPost").WithSummary("Report a position (OsmAnd/Traccar protocol, form body)").DisableAntiforgery();
        snow.MapPatch("/ngsi-ld/v1/entities/{entityId}/attrs", NgsiUpdate).WithName("SnowNgsiUpdate")
            .WithSummary("Report a position as an NGSI-LD update of the unit's Vehicle entity");
    }

    private static async Task<IResult> OsmAnd(HttpContext http, SnowIngestion ingestion, TimeProvider time)
    {
        var fields = new List<KeyValuePair<string, string?>>();
        foreach (var (key, value) in http.Request.Query)
        {
            fields.Add(new(key, value.ToString()));
        }

        if (HttpMethods.IsPost(http.Request.Method) && http.Request.HasFormContentType)
        {
            if (http.Request.ContentLength > MaxBodyBytes)
            {
                return Problem(new Rejection(RejectReason.Malformed, "The body is too large for a position."));
            }

            try
            {
                var form = await http.Request.ReadFormAsync(http.RequestAborted);
                foreach (var (key, value) in form)
                {
                    fields.Add(new(key, value.ToString()));
                }
            }
            catch (Exception e) when (e is InvalidDataException or IOException or BadHttpRequestException)
            {
                return Problem(new Rejection(RejectReason.Malformed, "The form body could not be read."));
            }
        }

        var parsed = OsmAndParser.Parse(fields, BearerToken(http.Request), time.GetUtcNow());
        return await ingestion.IngestAsync(parsed, http.RequestAborted) is { } rejection ? Problem(rejection) : TypedResults.Ok();
    }

    private static async Task<IResult> NgsiUpdate(HttpContext http, string entityId, SnowIngestion ingestion, TimeProvider time)
    {
        JsonDocument document;
        try
        {
            if (http.Request.ContentLength > MaxBodyBytes)
            {
                return Problem(new Rejection(RejectReason.Malformed, "The body is too large for a position."));
            }

            document = await JsonDocument.ParseAsync(http.Request.Body, default, http.RequestAborted);
        }
        catch (JsonException)
        {
            return Problem(new Rejection(RejectReason.Malformed, "The body is not JSON."));
        }

        using (document)
        {
            var parsed = NgsiPositionParser.Parse(entityId, document.RootElement, BearerToken(http.Request), time.GetUtcNow());
            return await ingestion.IngestAsync(parsed, http.RequestAborted) is { } rejection ? Problem(rejection) : TypedResults.NoContent();
        }
    }

    public static string? BearerToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
    }

    public static IResult Problem(Rejection rejection) => TypedResults.Problem(
        detail: rejection.Detail,
        statusCode: rejection.Status,
        title: "Position rejected: " + rejection.Code,
        type: "urn:machi:snow:" + rejection.Code,
        extensions: new Dictionary<string, object?> { ["reason"] = rejection.Code });
}

/// <summary>
/// An NGSI-LD attribute update of a unit's Vehicle entity read as a position: <c>location</c> (GeoProperty Point, its
/// <c>observedAt</c> the fix time), <c>speed</c> (km/h), <c>heading</c> (degrees), <c>plowState</c>. Normalized or
/// concise (<c>"speed": 12</c>) attributes both work. Pure: never throws on any input.
/// </summary>
internal static class NgsiPositionParser
{
    public static ParseResult Parse(string entityId, JsonElement body, string? token, DateTimeOffset now)
    {
        if (!entityId.StartsWith(SnowIngestion.EntityPrefix, StringComparison.Ordinal))
        {
            return ParseResult.Bad($"Only Vehicle entities of units ({SnowIngestion.EntityPrefix}{{id}}) take positions here.");
        }

        var fields = new List<KeyValuePair<string, string?>> { new("id", entityId[SnowIngestion.EntityPrefix.Length..]) };
        if (body.ValueKind != JsonValueKind.Object)
        {
            return ParseResult.Bad("The body must be a JSON object of attributes.");
        }

        if (!body.TryGetProperty("location", out var location) || location.ValueKind != JsonValueKind.Object)
        {
            return ParseResult.Bad("location (a GeoProperty with a Point) is required.");
        }

        var point = location.TryGetProperty("value", out var value) ? value : location;
        if (point.ValueKind != JsonValueKind.Object || !point.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String
            || type.GetString() != "Point" || !point.TryGetProperty("coordinates", out var coordinates)
            || coordinates.ValueKind != JsonValueKind.Array || coordinates.GetArrayLength() < 2
            || coordinates[0].ValueKind != JsonValueKind.Number || coordinates[1].ValueKind != JsonValueKind.Number)
        {
            return ParseResult.Bad("location must be a GeoJSON Point [lon, lat].");
        }

        fields.Add(new("lon", coordinates[0].GetRawText()));
        fields.Add(new("lat", coordinates[1].GetRawText()));
        if (location.TryGetProperty("observedAt", out var observedAt))
        {
            fields.Add(new("timestamp", observedAt.ValueKind == JsonValueKind.String ? observedAt.GetString() : "?"));
        }

        var speedKmh = Number(body, "speed");
        if (speedKmh is { } s)
        {
            // The OsmAnd fields carry knots.
            fields.Add(new("speed", double.IsFinite(s) ? (s / OsmAndParser.KnotsToKmh).ToString("R", CultureInfo.InvariantCulture) : "?"));
        }

        if (Number(body, "heading") is { } heading)
        {
            fields.Add(new("heading", heading.ToString("R", CultureInfo.InvariantCulture)));
        }

        if (body.TryGetProperty("plowState", out var state))
        {
            var text = state.ValueKind == JsonValueKind.Object && state.TryGetProperty("value", out var v) ? v : state;
            fields.Add(new("plow", text.ValueKind == JsonValueKind.String ? text.GetString() : "?"));
        }

        if (body.TryGetProperty("speed", out var speedElement) && speedKmh is null && speedElement.ValueKind != JsonValueKind.Null)
        {
            return ParseResult.Bad("speed must be a number (km/h).");
        }

        return OsmAndParser.Parse(fields, token, now, source: "ngsi-ld");
    }

    private static double? Number(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var attribute))
        {
            return null;
        }

        var value = attribute.ValueKind == JsonValueKind.Object && attribute.TryGetProperty("value", out var v) ? v : attribute;
        return value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) ? d : null;
    }
}
