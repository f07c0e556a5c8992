using Machi.Broker.Http;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Query;

/// <summary>What the URL of an entity query selects and shows: the filter and the pick/omit projection.</summary>
internal sealed record UrlQuery(EntityFilter Filter, IReadOnlySet<string>? Pick, IReadOnlySet<string>? Omit);

/// <summary>
/// The URL parameters that select entities (type, id, idPattern, attrs, q, georel/geometry/coordinates/geoproperty,
/// scopeQ, pick, omit), parsed once for every endpoint that takes them: GET /entities, the change stream and the
/// temporal queries. Names are expanded with the request's @context.
/// </summary>
internal static class QueryParameters
{
    public static UrlQuery FromUrl(IQueryCollection query, RequestOptions options, Func<string, string> expand)
    {
        var type = Text(query, "type") is { } typeText ? TypeExpression.Parse(typeText).Expand(expand) : null;
        var pattern = Text(query, "idPattern") is { } patternText ? EntitySelector.CompileIdPattern(patternText) : null;
        var filter = new EntityFilter
        {
            Selectors = type is null && pattern is null && options.Ids is null ? null : [new EntitySelector(options.Ids, pattern, type)],
            Attrs = options.Attrs?.Select(expand).ToList(),
            Q = Text(query, "q") is { } q ? ParseQ(q, RequestOptions.Names(query, "expandValues"), expand) : null,
            Geo = Text(query, "georel") is not null || Text(query, "geometry") is not null || Text(query, "coordinates") is not null
                ? GeoQuery.Parse(Text(query, "georel"), Text(query, "geometry"), Text(query, "coordinates"), Text(query, "geoproperty"), expand)
                : null,
            Scope = Text(query, "scopeQ") is { } scope ? ScopeQuery.Parse(scope) : null,
        };
        var (pick, omit) = Projection.Parse(Text(query, "pick"), Text(query, "omit"), expand);
        return new UrlQuery(filter, pick, omit);
    }

    /// <summary>
    /// A q expression with names expanded; the comparisons on the attributes named by expandValues compare with their
    /// values expanded as terms too.
    /// </summary>
    public static QExpression ParseQ(string q, IEnumerable<string>? expandValues, Func<string, string> expand)
    {
        var expression = QExpressions.Expand(QParser.Parse(q), expand);
        return expandValues is null ? expression : QExpressions.ExpandValues(expression, expandValues.Select(expand).ToHashSet(StringComparer.Ordinal));
    }

    /// <summary>
    /// Clause 5.7.2.4: a query with no entity selector, attrs, q, geo-query or scope query (and not local) is an
    /// error, whichever way it arrives, rather than a request for every entity.
    /// </summary>
    public static void RequireRestriction(EntityFilter filter, RequestOptions options, string members)
    {
        if (filter.Selectors is null && filter.Attrs is null && filter.Q is null && filter.Geo is null && filter.Scope is null && !options.Local)
        {
            throw NgsiException.BadData($"A query needs at least one of {members}.");
        }
    }

    /// <summary>A single, non-empty parameter; null when absent.</summary>
    public static string? Text(IQueryCollection query, string name) => RequestOptions.Single(query, name);

    public static void RejectUnsupported(IQueryCollection query, params string[] names)
    {
        foreach (var name in names)
        {
            if (query.ContainsKey(name))
            {
                throw new NgsiException(NgsiErrorType.OperationNotSupported, $"Parameter '{name}' is not supported by this broker.");
            }
        }
    }
}
