using System.Globalization;
using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Access;
using Machi.Broker.Http;
using Machi.Broker.Registrations;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Query;

/// <summary>
/// Query entities (clauses 5.7.2, 6.4.3.2 and 6.23): GET /entities with URL parameters and POST
/// /entityOperations/query with a Query body. Both build one <see cref="EntityFilter"/> (the evaluator that
/// subscriptions share) and one page request; the store answers through its indexes.
/// </summary>
internal static class QueryApi
{
    public static RouteGroupBuilder MapQuery(this RouteGroupBuilder api)
    {
        api.MapGet("/entities", QueryByUrl).WithTags("Entities").WithNgsiHeaders().WithName("QueryEntities")
            .WithSummary("Query entities: type expressions, ids, idPattern, attrs, q, geoQ, scopeQ, pick/omit")
            .WithQuery(
                ("type", "Type expression: A,B (any of), (A;B)|C (; is and, | and , are or)."),
                ("id", "Comma list of entity ids."),
                ("idPattern", "Regular expression the entity id must match (linear-time engine)."),
                NgsiOpenApi.Attrs,
                ("pick", "Comma list of members to return (id, type, scope, createdAt, modifiedAt, attribute names)."),
                ("omit", "Comma list of members to leave out."),
                ("q", "Query language expression (clause 4.9), e.g. speed>50;serviceStatus==\"active\"."),
                ("georel", "near;maxDistance==N, near;minDistance==N, within, contains, intersects, overlaps, disjoint, equals."),
                ("geometry", "Point, MultiPoint, LineString, MultiLineString, Polygon or MultiPolygon."),
                ("coordinates", "GeoJSON coordinates of the geometry, e.g. [139.93,37.49]."),
                ("geoproperty", "The GeoProperty the geo-query applies to (default location)."),
                ("scopeQ", "Scope query (clause 4.19), e.g. /Aizu/#."),
                ("local", "true: only this broker's entities, no context sources."),
                ("limit", "Page size (default 20, maximum Broker:MaxLimit; 0 with count=true for the count alone)."),
                ("offset", "Entities to skip."), ("count", "true: total in the NGSILD-Results-Count header."),
                NgsiOpenApi.Options, NgsiOpenApi.Format, NgsiOpenApi.Lang, NgsiOpenApi.GeometryProperty,
                NgsiOpenApi.DatasetId, NgsiOpenApi.ExpandValues, NgsiOpenApi.Join, NgsiOpenApi.JoinLevel, NgsiOpenApi.ContainedBy, NgsiOpenApi.EntityMap)
            .ProducesEntities();
        api.MapPost("/entityOperations/query", QueryByBody).RequiresScope(null).WithTags("Batch operations").WithNgsiHeaders().WithName("QueryEntitiesPost")
            .WithSummary("Query entities with a Query body (entities, attrs, pick, omit, q, geoQ, scopeQ, lang, datasetId, expandValues, join, joinLevel, containedBy)")
            .WithJsonBody("A Query: {\"type\":\"Query\", \"entities\":[{\"type\":\"Vehicle\"}], \"q\":\"speed>50\", \"geoQ\":{…}}.")
            .WithQuery(("limit", "Page size."), ("offset", "Entities to skip."), ("count", "true: total in the NGSILD-Results-Count header."),
                ("local", "true: only this broker's entities."), NgsiOpenApi.Options, NgsiOpenApi.Format, NgsiOpenApi.GeometryProperty,
                NgsiOpenApi.DatasetId, NgsiOpenApi.Join, NgsiOpenApi.JoinLevel, NgsiOpenApi.ContainedBy, NgsiOpenApi.EntityMap)
            .AcceptsEntity().ProducesEntities();
        return api;
    }

    private static async Task<IResult> QueryByUrl(HttpContext http, EntityService entities, IContextResolver resolver, IOptions<BrokerOptions> settings, DistributedQuery distributed, EntityMaps maps)
    {
        var query = http.Request.Query;
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: true);
        var options = RequestOptions.Parse(query);
        QueryParameters.RejectUnsupported(query, "csf");
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var (filter, pick, omit) = QueryParameters.FromUrl(query, options, context.ExpandTerm);
        QueryParameters.RequireRestriction(filter, options, "type, id, idPattern, attrs, q, geoQ, scopeQ or local=true");
        var render = options.Render(context, mediaType) with { Pick = pick, Omit = omit };
        return await AnswerAsync(http, entities, distributed, maps, settings.Value, options, filter, mediaType, render, EntityJoin.FromUrl(query));
    }

    private static async Task<IResult> QueryByBody(HttpContext http, EntityService entities, IContextResolver resolver, IOptions<BrokerOptions> settings, DistributedQuery distributed, EntityMaps maps)
    {
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: true);
        var options = RequestOptions.Parse(http.Request.Query);
        var (body, bodyMediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("A query must be a JSON object of type Query.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, bodyMediaType);
        var expand = context.ExpandTerm;
        if (String(body, "type") is { } type && type != "Query")
        {
            throw NgsiException.BadData($"A query body has type \"Query\", not \"{EntityParser.Truncate(type)}\".");
        }

        foreach (var unsupported in new[] { "csf", "temporalQ" })
        {
            if (body.TryGetProperty(unsupported, out _))
            {
                throw new NgsiException(NgsiErrorType.OperationNotSupported, $"Query member '{unsupported}' is not supported by this broker.");
            }
        }

        var attrs = Names(body, "attrs");
        var filter = new EntityFilter
        {
            Selectors = Selectors(body, expand),
            Attrs = attrs?.Select(expand).ToList(),
            Q = String(body, "q") is { } q ? QueryParameters.ParseQ(q, Names(body, "expandValues"), expand) : null,
            Geo = body.TryGetProperty("geoQ", out var geoQ) ? GeoQuery.FromJson(geoQ, expand) : null,
            Scope = String(body, "scopeQ") is { } scope ? ScopeQuery.Parse(scope) : null,
        };
        QueryParameters.RequireRestriction(filter, options, "entities, attrs, q, geoQ, scopeQ or local=true in the URL");

        var pickNames = Names(body, "pick");
        var omitNames = Names(body, "omit");
        var (pick, omit) = Projection.Parse(pickNames is null ? null : string.Join(',', pickNames), omitNames is null ? null : string.Join(',', omitNames), expand);
        var render = options.Render(context, mediaType) with
        {
            Attrs = attrs is null ? null : attrs.Select(expand).ToHashSet(StringComparer.Ordinal),
            Pick = pick,
            Omit = omit,
            Lang = String(body, "lang") is { } lang ? LanguagePreference.Parse(lang) : options.Lang,
            DatasetIds = DatasetIds(body) ?? options.DatasetIds?.ToHashSet(StringComparer.Ordinal),
        };
        return await AnswerAsync(http, entities, distributed, maps, settings.Value, options, filter, mediaType, render, EntityJoin.FromBody(body) ?? EntityJoin.FromUrl(http.Request.Query));
    }

    private static async Task<IResult> AnswerAsync(
        HttpContext http, EntityService entities, DistributedQuery distributed, EntityMaps maps, BrokerOptions settings, RequestOptions options, EntityFilter filter,
        string mediaType, RenderOptions render, EntityJoin? join)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var limit = options.PageLimit(settings);

        // Distributed operations (clause 4.3.6): matching registrations add entities from context sources; an entity
        // map, when asked for, fixes which entities the pages walk through.
        var query = new EntityQuery(filter) { Limit = limit, Offset = options.Offset, Count = options.Count };
        var page = await maps.PageAsync(http, tenant, query, entities, distributed, render)
            ?? await distributed.QueryAsync(http, tenant, query, render.Context, entities.QueriesAs(tenant, http.Caller()));
        if (page.TotalCount is { } total)
        {
            http.Response.Headers["NGSILD-Results-Count"] = total.ToString(CultureInfo.InvariantCulture);
        }

        var (written, joined) = join is null
            ? (page.Entities, render)
            : await join.ApplyAsync(ids => distributed.QueryByIdsAsync(http, tenant, ids, render.Context, entities.QueriesAs(tenant, http.Caller())), page.Entities, render);
        return new NgsiJsonResult(200, mediaType, render.Context, w => EntitiesApi.WriteEntities(w, written, joined));
    }

    /// <summary>The Query body's datasetId: the instances to return (a string or an array; "@none" for the default instance).</summary>
    private static HashSet<string>? DatasetIds(JsonElement body)
    {
        if (!body.TryGetProperty("datasetId", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var items = value.ValueKind switch
        {
            JsonValueKind.String => [value.GetString()!],
            JsonValueKind.Array => value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString()! : string.Empty).ToList(),
            _ => [],
        };
        RequestOptions.CheckDatasetIds(items);
        return items.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The entities member: EntitySelectors {id, idPattern, type}, ORed.</summary>
    private static List<EntitySelector>? Selectors(JsonElement body, Func<string, string> expand)
    {
        if (!body.TryGetProperty("entities", out var list))
        {
            return null;
        }

        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            throw NgsiException.BadData("entities must be a non-empty array of EntitySelectors ({id, idPattern, type}).");
        }

        var selectors = new List<EntitySelector>();
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw NgsiException.BadData("Every item of entities must be an object with id, idPattern or type.");
            }

            var id = String(item, "id");
            if (id is not null && !NgsiText.IsUri(id))
            {
                throw NgsiException.BadData($"entities: id '{EntityParser.Truncate(id)}' is not a URI.");
            }

            var pattern = String(item, "idPattern") is { } p ? EntitySelector.CompileIdPattern(p) : null;
            var type = String(item, "type") is { } t ? TypeExpression.Parse(t).Expand(expand) : null;
            if (id is null && pattern is null && type is null)
            {
                throw NgsiException.BadData("Every item of entities needs id, idPattern or type.");
            }

            selectors.Add(new EntitySelector(id is null ? null : [id], pattern, type));
        }

        return selectors;
    }

    private static string? String(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : throw NgsiException.BadData($"{name} must be a non-empty string.");
    }

    /// <summary>A list of names: a JSON array of strings (or one comma-separated string).</summary>
    private static List<string>? Names(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var names = value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!.Split(',', StringSplitOptions.TrimEntries).ToList(),
            JsonValueKind.Array => value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString()! : string.Empty).ToList(),
            _ => [],
        };
        if (names.Count == 0 || names.Exists(n => !NgsiText.IsName(n)))
        {
            throw NgsiException.BadData($"{name} must be a non-empty array of attribute names.");
        }

        return names;
    }
}
