using Machi.Broker.Access;
using System.Globalization;
using System.Text;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Query;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Temporal;

/// <summary>
/// The temporal API (clauses 5.6.11–5.6.16, 5.7.3–5.7.4, HTTP binding 6.18–6.22): retrieve and query the history
/// of entities, and delete history. History is recorded from every entity change, so it needs no separate writes;
/// type, id, idPattern and the history's attributes select entities, q, geoQ and scopeQ apply to their current
/// state (an entity deleted since matches none of them).
/// </summary>
internal static class TemporalApi
{
    private static readonly (string, string)[] TemporalParameters =
    [
        ("timerel", "before, after or between (with timeAt, and endTimeAt for between)."),
        ("timeAt", "ISO 8601 date-time the relation compares with."),
        ("endTimeAt", "End of the between range (exclusive)."),
        ("timeproperty", "observedAt (default; instances without it count at modifiedAt), createdAt or modifiedAt."),
        ("lastN", "Only the last N instances of each attribute (per datasetId)."),
        ("options", "temporalValues (simplified), aggregatedValues, sysAttrs."),
        ("aggrMethods", "With options=aggregatedValues: totalCount, distinctCount, sum, avg, min, max, stddev (sample), sumsq."),
        ("aggrPeriodDuration", "ISO 8601 duration of each aggregation period, e.g. PT1H; PT0S (default) is the whole range."),
        NgsiOpenApi.Attrs, NgsiOpenApi.Lang,
    ];

    public static RouteGroupBuilder MapTemporal(this RouteGroupBuilder api)
    {
        var temporal = api.MapGroup("/temporal/entities").WithTags("Temporal");
        temporal.MapGet("/", Query).WithNgsiHeaders().WithName("QueryTemporalEntities")
            .WithSummary("Query the history of entities (type, id, idPattern, attrs, q, geoQ, scopeQ with a temporal query)")
            .WithQuery([.. TemporalParameters,
                ("type", "Type expression."), ("id", "Comma list of entity ids."), ("idPattern", "Regular expression over entity ids."),
                ("q", "Query over the current state."), ("georel", "Geo-query over the current state."), ("geometry", "Geo-query geometry."),
                ("coordinates", "Geo-query coordinates."), ("geoproperty", "Geo-query GeoProperty."), ("scopeQ", "Scope query."),
                ("limit", "Page size (entities)."), ("offset", "Entities to skip."), ("count", "true: total in NGSILD-Results-Count.")])
            .Produces<System.Text.Json.Nodes.JsonObject>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400).ProducesProblem(404);
        temporal.MapGet("/{entityId}", Retrieve).WithNgsiHeaders().WithName("RetrieveTemporalEntity")
            .WithSummary("Retrieve the history of one entity")
            .WithQuery(TemporalParameters)
            .Produces<System.Text.Json.Nodes.JsonObject>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400).ProducesProblem(404);
        temporal.MapPost("/", Create).WithNgsiHeaders().WithName("CreateOrUpdateTemporalEntity")
            .WithSummary("Add attribute instances to an entity's history (201 when it had none, else 204); the current state is not changed")
            .WithJsonBody("A temporal entity: {\"id\", \"type\", \"speed\": [{\"type\":\"Property\",\"value\":10,\"observedAt\":\"…\"}, …]}.")
            .Produces(201).Produces(204);
        temporal.MapPost("/{entityId}/attrs", AddAttributes).WithNgsiHeaders().WithName("AddTemporalAttributes")
            .WithSummary("Add attribute instances to an existing history")
            .WithJsonBody("Attributes, each an instance or an array of instances.").Produces(204);
        temporal.MapPatch("/{entityId}/attrs/{attrId}/{instanceId}", PatchInstance).WithNgsiHeaders().WithName("ModifyTemporalAttributeInstance")
            .WithSummary("Replace one recorded attribute instance").WithJsonBody("The instance: {\"type\", \"value\", \"observedAt\", …}.").Produces(204);
        temporal.MapDelete("/{entityId}", Delete).WithNgsiHeaders().WithName("DeleteTemporalEntity")
            .WithSummary("Delete the whole history of an entity (its current state is kept)");
        temporal.MapDelete("/{entityId}/attrs/{attrId}", DeleteAttribute).WithNgsiHeaders().WithName("DeleteTemporalAttribute")
            .WithSummary("Delete the history of one attribute (datasetId=, deleteAll=true)")
            .WithQuery(("datasetId", "Only this instance's history."), ("deleteAll", "true: every datasetId."));
        temporal.MapDelete("/{entityId}/attrs/{attrId}/{instanceId}", DeleteInstance).WithNgsiHeaders().WithName("DeleteTemporalAttributeInstance")
            .WithSummary("Delete one recorded attribute instance");
        return api;
    }

    private static async Task<IResult> Retrieve(
        string entityId, HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history, AccessPolicy access, AccessAudit audit)
    {
        NgsiRequest.EntityId(entityId);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var query = http.Request.Query;
        var options = RequestOptions.Parse(query);
        var temporal = TemporalQuery.Parse(query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);

        using var reader = history.OpenReader();
        var row = reader.Entity(tenant, entityId);
        if (row is null || !access.CanRead(http.Caller(), row.Access))
        {
            throw new NgsiException(NgsiErrorType.ResourceNotFound, $"Entity '{entityId}' has no history.");
        }

        await LogAsync(audit, http, tenant, [row]);
        var attrs = options.Attrs?.Select(context.ExpandTerm).ToList();
        var result = Read(reader, options.SysAttrs ? reader.WithLastModified(row) : row, attrs, temporal);
        var render = options.Render(context, mediaType);
        return new NgsiJsonResult(200, mediaType, context, w => TemporalRenderer.WriteEntity(w, result, temporal, render));
    }

    private static async Task<IResult> Query(
        HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history, IEntityStore store, IOptions<BrokerOptions> settings,
        AccessPolicy access, AccessAudit audit)
    {
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var query = http.Request.Query;
        var options = RequestOptions.Parse(query);
        QueryParameters.RejectUnsupported(query, "csf", "join", "joinLevel", "entityMap", "containedBy", "datasetId");
        var temporal = TemporalQuery.Parse(query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var (filter, pick, omit) = QueryParameters.FromUrl(query, options, context.ExpandTerm);
        QueryParameters.RequireRestriction(filter, options, "type, id, idPattern, attrs, q, geoQ or scopeQ");
        var limit = options.PageLimit(settings.Value);

        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);

        // Selectors judge the recorded id and types; q, geoQ and scopeQ the current state; attrs the history itself.
        var onState = filter.Q is not null || filter.Geo is not null || filter.Scope is not null;
        var selection = filter with { Attrs = null };
        var matched = new List<TemporalEntity>();
        var shown = new List<TemporalEntityRow>();
        var total = 0;
        var caller = http.Caller();
        using var reader = history.OpenReader();
        foreach (var row in reader.Entities(tenant, options.Ids))
        {
            http.RequestAborted.ThrowIfCancellationRequested();
            if (!access.CanRead(caller, row.Access))
            {
                continue;
            }

            Entity? subject;
            if (onState)
            {
                subject = await store.GetAsync(tenant, row.Id, http.RequestAborted);
            }
            else
            {
                subject = new Entity(row.Id, row.Types);
            }

            if (subject is null || !selection.Matches(subject))
            {
                continue;
            }

            var recorded = Read(reader, options.SysAttrs ? reader.WithLastModified(row) : row, filter.Attrs, temporal);
            if (filter.Attrs is not null && recorded.IsEmpty)
            {
                continue;
            }

            if (total >= options.Offset && matched.Count < limit)
            {
                matched.Add(recorded);
                shown.Add(row);
            }

            total++;
        }

        if (options.Count)
        {
            http.Response.Headers["NGSILD-Results-Count"] = total.ToString(CultureInfo.InvariantCulture);
        }

        await LogAsync(audit, http, tenant, shown);
        var render = options.Render(context, mediaType) with { Pick = pick, Omit = omit };
        return new NgsiJsonResult(200, mediaType, context, w => TemporalRenderer.WriteEntities(w, matched, temporal, render));
    }

    /// <summary>Logs the histories of residents' personal entities shown to someone other than the resident.</summary>
    private static Task LogAsync(AccessAudit audit, HttpContext http, string tenant, IEnumerable<TemporalEntityRow> rows)
    {
        var caller = http.Caller();
        var records = rows.Where(r => AccessPolicy.IsThirdParty(caller, r.Access))
            .Select(r => audit.Record(caller, tenant, r.Id, r.Access.Owner!, "temporal")).ToList();
        return records.Count == 0 ? Task.CompletedTask : audit.LogAsync(records);
    }

    private static async Task<NoContent> Delete(string entityId, HttpContext http, EntityService entities, ITemporalHistory history)
    {
        NgsiRequest.EntityId(entityId);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var removed = await history.DeleteEntityAsync(tenant, entityId, http.RequestAborted);
        return removed ? TypedResults.NoContent() : throw new NgsiException(NgsiErrorType.ResourceNotFound, $"Entity '{entityId}' has no history.");
    }

    private static async Task<NoContent> DeleteAttribute(string entityId, string attrId, HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history)
    {
        NgsiRequest.EntityId(entityId);
        var options = RequestOptions.Parse(http.Request.Query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var attr = context.ExpandTerm(attrId);
        var removed = await history.DeleteAttributeAsync(tenant, entityId, attr, options.DatasetId, options.DeleteAll, http.RequestAborted);
        return removed ? TypedResults.NoContent() : throw new NgsiException(NgsiErrorType.ResourceNotFound, $"Entity '{entityId}' has no history of attribute '{attrId}'.");
    }

    private static async Task<NoContent> DeleteInstance(string entityId, string attrId, string instanceId, HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history)
    {
        NgsiRequest.EntityId(entityId);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var removed = await history.DeleteInstanceAsync(tenant, entityId, context.ExpandTerm(attrId), instanceId, http.RequestAborted);
        return removed ? TypedResults.NoContent() : throw new NgsiException(NgsiErrorType.ResourceNotFound, $"No instance '{EntityParser.Truncate(instanceId)}' of attribute '{attrId}' of '{entityId}'.");
    }

    private static async Task<IResult> Create(HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history)
    {
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw NgsiException.BadData("A temporal entity must be a JSON object.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType);
        var id = body.TryGetProperty("id", out var idValue) && idValue.ValueKind == System.Text.Json.JsonValueKind.String
            ? NgsiRequest.EntityId(idValue.GetString()!)
            : throw NgsiException.BadData("A temporal entity needs an id (a URI).");
        var types = Types(body, context);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var created = await history.AppendAsync(tenant, id, types, Instances(body, context, entities.Now()), entities.Now(), http.RequestAborted);
        return created
            ? TypedResults.Created($"/ngsi-ld/v1/temporal/entities/{Uri.EscapeDataString(id)}")
            : TypedResults.NoContent();
    }

    private static async Task<NoContent> AddAttributes(string entityId, HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history)
    {
        NgsiRequest.EntityId(entityId);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw NgsiException.BadData("The body must be a JSON object of attributes.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        await history.AppendAsync(tenant, entityId, null, Instances(body, context, entities.Now()), entities.Now(), http.RequestAborted);
        return TypedResults.NoContent();
    }

    private static async Task<NoContent> PatchInstance(string entityId, string attrId, string instanceId, HttpContext http, EntityService entities, IContextResolver resolver, ITemporalHistory history)
    {
        NgsiRequest.EntityId(entityId);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType);
        var attr = EntityParser.ExpandAttributeName(attrId, context);
        var replacement = EntityParser.ParseInstance(attrId, body, context, entities.Now(), allowNullMarker: false, depth: 0);
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var found = await history.ReplaceInstanceAsync(tenant, entityId, attr, instanceId, _ => replacement, entities.Now(), http.RequestAborted);
        return found ? TypedResults.NoContent() : throw new NgsiException(NgsiErrorType.ResourceNotFound, $"No instance '{EntityParser.Truncate(instanceId)}' of attribute '{attrId}' of '{entityId}'.");
    }

    private static List<string> Types(System.Text.Json.JsonElement body, LdContext context)
    {
        if (!body.TryGetProperty("type", out var type))
        {
            throw NgsiException.BadData("A temporal entity needs a type.");
        }

        var names = type.ValueKind switch
        {
            System.Text.Json.JsonValueKind.String => [type.GetString()!],
            System.Text.Json.JsonValueKind.Array => type.EnumerateArray().Select(t => t.ValueKind == System.Text.Json.JsonValueKind.String ? t.GetString()! : string.Empty).ToList(),
            _ => [],
        };
        if (names.Count == 0 || names.Exists(n => !NgsiText.IsName(n)))
        {
            throw NgsiException.BadData("type must be a name or a non-empty array of names.");
        }

        return names.ConvertAll(context.ExpandTerm);
    }

    /// <summary>The attribute members of a temporal entity: each one instance or an array of instances (any datasetIds).</summary>
    private static List<(string Attr, AttributeInstance Instance)> Instances(System.Text.Json.JsonElement body, LdContext context, DateTimeOffset now)
    {
        var instances = new List<(string, AttributeInstance)>();
        foreach (var member in body.EnumerateObject())
        {
            if (member.Name is "id" or "type" or "@context" or "scope" or "createdAt" or "modifiedAt")
            {
                continue;
            }

            var attr = EntityParser.ExpandAttributeName(member.Name, context);
            if (member.Value.ValueKind == System.Text.Json.JsonValueKind.Array)
            {
                foreach (var item in member.Value.EnumerateArray())
                {
                    instances.Add((attr, EntityParser.ParseInstance(member.Name, item, context, now, allowNullMarker: false, depth: 0)));
                }
            }
            else
            {
                instances.Add((attr, EntityParser.ParseInstance(member.Name, member.Value, context, now, allowNullMarker: false, depth: 0)));
            }
        }

        if (instances.Count == 0)
        {
            throw NgsiException.BadData("A temporal entity needs at least one attribute instance.");
        }

        return instances;
    }

    /// <summary>
    /// One entity's history in the query's range: its instances (cut to the last N per attribute and datasetId), or
    /// their aggregation — computed while reading, unless lastN first needs the whole range.
    /// </summary>
    private static TemporalEntity Read(IHistoryReader reader, TemporalEntityRow entity, IReadOnlyCollection<string>? attrs, TemporalQuery temporal)
    {
        if (temporal.Format == TemporalFormat.Aggregated && temporal.LastN is null)
        {
            return new TemporalEntity(entity, [], reader.Aggregate(entity, attrs, temporal));
        }

        var rows = reader.History(entity, attrs, temporal);
        if (temporal.LastN is { } n)
        {
            rows = rows.GroupBy(r => (r.Attr, r.DatasetId))
                .SelectMany(g => g.OrderBy(r => r.Time(temporal.Property)).TakeLast(n))
                .ToList();
        }

        if (temporal.Format != TemporalFormat.Aggregated)
        {
            return new TemporalEntity(entity, rows, null);
        }

        var builder = new AggregationBuilder(temporal);
        foreach (var row in rows)
        {
            builder.Add(row.Attr, row.DatasetId, row.Kind, row.Time(temporal.Property), Encoding.UTF8.GetBytes(row.Value), row.Deleted);
        }

        return new TemporalEntity(entity, [], builder.Finish());
    }
}
