using Machi.Ngsi.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Machi.Broker.Http;

/// <summary>The media types of the NGSI-LD HTTP binding and content negotiation (clause 6.3.4–6.3.6).</summary>
internal static class MediaTypes
{
    public const string Json = "application/json";
    public const string JsonLd = "application/ld+json";
    public const string GeoJson = "application/geo+json";
    public const string MergePatch = "application/merge-patch+json";

    /// <summary>The media type of a request body: JSON or JSON-LD (or merge-patch where allowed), else 415.</summary>
    public static string RequestBodyType(HttpRequest request, bool allowMergePatch)
    {
        var header = request.ContentType;
        if (string.IsNullOrEmpty(header) || !MediaTypeHeaderValue.TryParse(header, out var parsed) || parsed.MediaType.Value is null)
        {
            throw new NgsiException(NgsiErrorType.UnsupportedMediaType, "Content-Type must be application/json or application/ld+json.");
        }

        var type = parsed.MediaType.Value.ToLowerInvariant();
        return type switch
        {
            Json or JsonLd => type,
            MergePatch when allowMergePatch => type,
            _ => throw new NgsiException(NgsiErrorType.UnsupportedMediaType,
                $"Content-Type '{type}' is not supported here; use application/json or application/ld+json{(allowMergePatch ? " or application/merge-patch+json" : string.Empty)}."),
        };
    }

    /// <summary>Picks the response media type from Accept (q-values honoured); 406 when none is offered.</summary>
    public static string Negotiate(HttpRequest request, bool allowGeoJson)
    {
        var accept = request.Headers.Accept;
        if (accept.Count == 0 || (accept.Count == 1 && accept[0] is Json or "*/*"))
        {
            return Json;
        }

        if (!MediaTypeHeaderValue.TryParseList(accept, out var values) || values.Count == 0)
        {
            return Json;
        }

        string? best = null;
        var bestQ = -1.0;
        foreach (var value in values)
        {
            var q = value.Quality ?? 1.0;
            if (q <= 0)
            {
                continue;
            }

            var candidate = value.MediaType.Value?.ToLowerInvariant() switch
            {
                Json => Json,
                JsonLd => JsonLd,
                GeoJson when allowGeoJson => GeoJson,
                "*/*" or "application/*" => Json,
                _ => null,
            };
            if (candidate is not null && q > bestQ)
            {
                best = candidate;
                bestQ = q;
            }
        }

        return best ?? throw new NgsiException(NgsiErrorType.NotAcceptable,
            $"None of the accepted media types can be produced; this resource offers application/json, application/ld+json{(allowGeoJson ? ", application/geo+json" : string.Empty)}.");
    }
}
