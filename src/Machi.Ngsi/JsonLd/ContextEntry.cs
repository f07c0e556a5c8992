using System.Globalization;
using System.Text.Json.Nodes;

namespace Machi.Ngsi.JsonLd;

/// <summary>The kinds of @context a broker keeps (NGSI-LD clause 5.13.1).</summary>
public enum ContextKind
{
    /// <summary>Posted by a client to /jsonldContexts; kept until deleted.</summary>
    Hosted,

    /// <summary>Fetched from its URL because a request referenced it; may be evicted or reloaded.</summary>
    Cached,

    /// <summary>Created by the broker to give an inline or compound @context a URL for a Link header.</summary>
    ImplicitlyCreated,
}

/// <summary>One @context the broker keeps, as GET /jsonldContexts shows it.</summary>
/// <param name="Url">Where the context lives: its original URL (Cached) or its URL on this broker.</param>
/// <param name="LocalId">The identifier in <c>/ngsi-ld/v1/jsonldContexts/{localId}</c>.</param>
/// <param name="Kind">Hosted, Cached or ImplicitlyCreated.</param>
/// <param name="CreatedAt">When the context was added or last fetched.</param>
/// <param name="LastUsage">When a request last used it (Cached contexts only).</param>
/// <param name="NumberOfHits">How many requests used it (Cached contexts only).</param>
/// <param name="DocumentJson">The document served by GET /jsonldContexts/{localId}: <c>{"@context": …}</c>.</param>
/// <param name="ExtraInfo">Implementation-specific remarks, if any.</param>
public sealed record ContextEntry(
    string Url,
    string LocalId,
    ContextKind Kind,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LastUsage,
    long? NumberOfHits,
    string DocumentJson,
    string? ExtraInfo = null)
{
    /// <summary>The entry as the details listing shows it (GET /jsonldContexts?details=true).</summary>
    public JsonObject ToDetailsJson()
    {
        var details = new JsonObject
        {
            ["URL"] = Url,
            ["localId"] = LocalId,
            ["kind"] = Kind.ToString(),
            ["createdAt"] = FormatDateTime(CreatedAt),
        };
        if (LastUsage is { } lastUsage)
        {
            details["lastUsage"] = FormatDateTime(lastUsage);
        }

        if (NumberOfHits is { } hits)
        {
            details["numberOfHits"] = hits;
        }

        if (ExtraInfo is not null)
        {
            details["extraInfo"] = ExtraInfo;
        }

        return details;
    }

    private static string FormatDateTime(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
