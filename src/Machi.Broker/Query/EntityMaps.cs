using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Access;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Registrations;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Query;

/// <summary>
/// Entity maps (clauses 4.21, 5.2.35, 6.27): a query with entityMap=true finds every matching entity once — here and at
/// the registered context sources, up to <see cref="BrokerOptions.EntityMapMaxEntities"/> — records which entity came
/// from where, answers the first page and names the map in the NGSILD-EntityMap header. Later pages ask with
/// entityMap=&lt;that id&gt; and are cut from the map, so paging through a distributed query neither skips nor repeats
/// an entity while the sources change. Maps live in the city's database (any node pages through a map another node
/// made) until they expire, and only the caller who made a map (same client, resident and purpose) reads it.
/// </summary>
internal sealed class EntityMaps(IEntityMapStore store, TimeProvider time, IOptions<BrokerOptions> settings)
{
    public const string Header = "NGSILD-EntityMap";
    public const string IdPrefix = "urn:ngsi-ld:EntityMap:";

    public static RouteGroupBuilder MapEntityMaps(RouteGroupBuilder api)
    {
        var group = api.MapGroup("/entityMaps").WithTags("Entity maps").WithNgsiHeaders();
        group.MapGet("/{entityMapId}", Retrieve).WithName("RetrieveEntityMap").WithSummary("Retrieve an entity map (which entity a query found where)")
            .Produces<JsonObject>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(404);
        group.MapPatch("/{entityMapId}", Update).RequiresScope(null).WithName("UpdateEntityMap").WithSummary("Change when an entity map expires")
            .WithJsonBody("{\"expiresAt\": \"2026-12-01T00:00:00Z\"}").Produces(204).ProducesProblem(400).ProducesProblem(404);
        group.MapDelete("/{entityMapId}", Delete).RequiresScope(null).WithName("DeleteEntityMap").WithSummary("Delete an entity map")
            .Produces(204).ProducesProblem(404);
        return group;
    }

    /// <summary>
    /// Answers a query page through an entity map when the request asks for one (entityMap=true makes it, entityMap=id
    /// reads it); null when it does not, and the query is answered as usual.
    /// </summary>
    public async Task<EntityPage?> PageAsync(HttpContext http, string tenant, EntityQuery query, EntityService entities, DistributedQuery distributed, RenderOptions render)
    {
        var asked = RequestOptions.Single(http.Request.Query, "entityMap");
        if (asked is null or "false")
        {
            return null;
        }

        var caller = http.Caller();
        var local = entities.QueriesAs(tenant, caller);
        if (asked == "true")
        {
            var (found, sources) = await distributed.QueryWithSourcesAsync(http, tenant, query with { Limit = settings.Value.EntityMapMaxEntities }, render.Context, local);
            var entries = new JsonObject();
            foreach (var entity in found)
            {
                entries[entity.Id] = new JsonArray([.. sources[entity.Id].Select(s => JsonValue.Create(s))]);
            }

            var id = IdPrefix + Guid.NewGuid().ToString("N");
            await store.PutAsync(new EntityMapRecord(tenant, id, Owner(caller), time.GetUtcNow() + settings.Value.EntityMapLifetime, entries.ToJsonString()), http.RequestAborted);
            http.Response.Headers[Header] = id;
            return new EntityPage([.. found.Skip(query.Offset).Take(query.Limit)], query.Count ? found.Count : null);
        }

        var map = await OpenAsync(http, tenant, asked);
        var ids = EntityIds(map);
        var slice = ids.Skip(query.Offset).Take(query.Limit).ToArray();
        http.Response.Headers[Header] = map.Id;
        long? total = query.Count ? ids.Count : null;
        if (slice.Length == 0)
        {
            return new EntityPage([], total);
        }

        // The page's entities as they are now, wherever they are; an entity gone since the map was made is left out.
        var current = await distributed.QueryByIdsAsync(http, tenant, slice, render.Context, local);
        var order = slice.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i, StringComparer.Ordinal);
        return new EntityPage([.. current.OrderBy(e => order.GetValueOrDefault(e.Id, int.MaxValue))], total);
    }

    private static async Task<IResult> Retrieve(HttpContext http, string entityMapId, EntityMaps maps)
    {
        var map = await maps.OpenAsync(http, NgsiRequest.Tenant(http.Request), NgsiRequest.EntityId(entityMapId));
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        return new NgsiJsonResult(200, mediaType, null, w =>
        {
            w.WriteStartObject();
            w.WriteString("id", map.Id);
            w.WriteString("type", "EntityMap");
            w.WriteString("expiresAt", NgsiText.FormatDateTime(map.ExpiresAt));
            w.WritePropertyName("entityMap");
            w.WriteRawValue(map.Entries, skipInputValidation: true);
            w.WriteEndObject();
        });
    }

    private static async Task<IResult> Update(HttpContext http, string entityMapId, EntityMaps maps)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var map = await maps.OpenAsync(http, tenant, NgsiRequest.EntityId(entityMapId));
        var (body, _) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("expiresAt", out var expires) || expires.ValueKind != JsonValueKind.String
            || !NgsiText.TryParseDateTime(expires.GetString()!, out var expiresAt))
        {
            throw NgsiException.BadData("An entity map update is {\"expiresAt\": a date-time}.");
        }

        if (expiresAt <= maps.Now())
        {
            throw NgsiException.BadData("expiresAt must be in the future (DELETE removes a map).");
        }

        await maps.Store.PutAsync(map with { ExpiresAt = expiresAt }, http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Delete(HttpContext http, string entityMapId, EntityMaps maps)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var map = await maps.OpenAsync(http, tenant, NgsiRequest.EntityId(entityMapId));
        await maps.Store.DeleteAsync(tenant, map.Id, http.RequestAborted);
        return Results.NoContent();
    }

    private IEntityMapStore Store => store;

    private DateTimeOffset Now() => time.GetUtcNow();

    /// <summary>The caller's map; ResourceNotFound when there is none, it expired, or another caller made it.</summary>
    private async Task<EntityMapRecord> OpenAsync(HttpContext http, string tenant, string id)
    {
        if (!NgsiText.IsUri(id))
        {
            throw NgsiException.BadData("entityMap must be true, false or the id (a URI) of an entity map.");
        }

        var map = await store.GetAsync(tenant, id, http.RequestAborted);
        return map is not null && map.Owner == Owner(http.Caller())
            ? map
            : throw new NgsiException(NgsiErrorType.ResourceNotFound, $"There is no entity map '{EntityParser.Truncate(id)}' (or it has expired).");
    }

    private static List<string> EntityIds(EntityMapRecord map)
    {
        using var entries = JsonDocument.Parse(map.Entries);
        return [.. entries.RootElement.EnumerateObject().Select(e => e.Name)];
    }

    /// <summary>Who may read a map: what decides which entities its maker could see.</summary>
    private static string Owner(Caller caller) => $"{caller.ClientId}|{caller.Subject}|{caller.Purpose}|{caller.EmergencyReason is not null}";
}
