using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Access;
using Machi.Broker.Http;
using Machi.Broker.Query;
using Machi.Broker.Registrations;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Entities;

/// <summary>The entity endpoints of the NGSI-LD API (clauses 6.4–6.7).</summary>
internal static class EntitiesApi
{
    public static RouteGroupBuilder MapEntities(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/entities").WithTags("Entities").WithNgsiHeaders();
        group.MapPost("/", Create).WithName("CreateEntity").WithSummary("Create an entity")
            .WithJsonBody("An entity (normalized or concise), with id and type.").AcceptsEntity().Produces(201);
        group.MapGet("/{entityId}", Retrieve).WithName("RetrieveEntity").WithSummary("Retrieve an entity")
            .WithQuery(NgsiOpenApi.Attrs, NgsiOpenApi.Options, NgsiOpenApi.Format, NgsiOpenApi.Lang, NgsiOpenApi.GeometryProperty,
                NgsiOpenApi.DatasetId, NgsiOpenApi.Join, NgsiOpenApi.JoinLevel, NgsiOpenApi.ContainedBy)
            .ProducesEntities();
        group.MapDelete("/{entityId}", Delete).WithName("DeleteEntity").WithSummary("Delete an entity").Produces(204);
        group.MapPut("/{entityId}", Replace).WithName("ReplaceEntity").WithSummary("Replace an entity")
            .WithJsonBody("The new entity; createdAt is kept.").AcceptsEntity().Produces(204);
        group.MapPatch("/{entityId}", Merge).WithName("MergeEntity").WithSummary("Merge-patch an entity")
            .WithJsonBody("Attributes to add or merge; \"urn:ngsi-ld:null\" deletes.", mergePatch: true).AcceptsEntity().Produces(204);
        group.MapPost("/{entityId}/attrs", Append).WithName("AppendAttributes").WithSummary("Append attributes (options=noOverwrite)")
            .WithJsonBody("Attributes to append.").WithQuery(("options", "noOverwrite: keep attributes that exist.")).AcceptsEntity().Produces(204).Produces(207);
        group.MapPatch("/{entityId}/attrs", Update).WithName("UpdateAttributes").WithSummary("Update existing attributes")
            .WithJsonBody("Attributes to update; others are reported in notUpdated.").AcceptsEntity().Produces(204).Produces(207);
        group.MapPatch("/{entityId}/attrs/{attrId}", PatchAttribute).WithName("PartialAttributeUpdate").WithSummary("Partially update one attribute")
            .WithJsonBody("The members to change (value, observedAt, unitCode, sub-attributes, datasetId to pick the instance).").AcceptsEntity().Produces(204);
        group.MapPut("/{entityId}/attrs/{attrId}", ReplaceAttribute).WithName("ReplaceAttribute").WithSummary("Replace one attribute")
            .WithJsonBody("The new attribute instance.").AcceptsEntity().Produces(204);
        group.MapDelete("/{entityId}/attrs/{attrId}", DeleteAttribute).WithName("DeleteAttribute").WithSummary("Delete an attribute (datasetId, deleteAll)")
            .WithQuery(("datasetId", "The instance to delete (absent: the default instance)."), ("deleteAll", "true: every instance.")).Produces(204);
        return group;
    }

    /// <summary>Documents the errors of a body-taking operation. Content types are checked by the handler (so a wrong
    /// one is a 415 ProblemDetails), not by route metadata.</summary>
    internal static RouteHandlerBuilder AcceptsEntity(this RouteHandlerBuilder builder) =>
        builder.ProducesProblem(400).ProducesProblem(404).ProducesProblem(415);

    internal static RouteHandlerBuilder ProducesEntities(this RouteHandlerBuilder builder) =>
        builder.Produces<JsonObject>(200, MediaTypes.Json, MediaTypes.JsonLd, MediaTypes.GeoJson).ProducesProblem(400).ProducesProblem(404);

    private static async Task<IResult> Create(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("An entity must be a JSON object.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType);
        var entity = EntityParser.ParseEntity(body, context, entities.Now());
        await entities.CreateAsync(tenant, entity, http.Caller(), http.RequestAborted);
        return Results.Created("/ngsi-ld/v1/entities/" + PathSegment(entity.Id), null);
    }

    private static async Task<IResult> Retrieve(HttpContext http, string entityId, EntityService entities, IContextResolver resolver, DistributedQuery distributed)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: true);
        var options = RequestOptions.Parse(http.Request.Query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        // Distributed operations (clause 4.3.6): registered context sources may hold (parts of) this entity.
        var id = NgsiRequest.EntityId(entityId);
        var entity = await distributed.RetrieveAsync(http, tenant, id, options.Attrs?.Select(context.ExpandTerm).ToList(), context,
            ct => entities.GetAsync(tenant, id, http.Caller(), ct));
        var render = options.Render(context, mediaType);
        if (EntityJoin.FromUrl(http.Request.Query) is not { } join)
        {
            return new NgsiJsonResult(200, mediaType, context, w => EntityRenderer.WriteEntity(w, entity, render));
        }

        // join=flat answers the entity and its Linked Entities as an array; join=inline, the entity with them inside.
        var (written, joined) = await join.ApplyAsync(
            ids => distributed.QueryByIdsAsync(http, tenant, ids, context, entities.QueriesAs(tenant, http.Caller())), [entity], render);
        return join.Mode == JoinMode.Flat
            ? new NgsiJsonResult(200, mediaType, context, w => WriteEntities(w, written, joined))
            : new NgsiJsonResult(200, mediaType, context, w => EntityRenderer.WriteEntity(w, entity, joined));
    }

    /// <summary>An id as a URL path segment: escaped, but URIs keep their colons.</summary>
    internal static string PathSegment(string id) => Uri.EscapeDataString(id).Replace("%3A", ":", StringComparison.Ordinal);

    internal static void WriteEntities(Utf8JsonWriter w, IReadOnlyList<Entity> entities, RenderOptions render)
    {
        if (render.GeometryProperty is not null)
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            w.WriteStartArray("features");
            var inner = render with { IncludeContext = false };
            foreach (var e in entities)
            {
                EntityRenderer.WriteEntity(w, e, inner);
            }

            w.WriteEndArray();
            if (render.IncludeContext)
            {
                EntityRenderer.WriteContext(w, render.Context);
            }

            w.WriteEndObject();
            return;
        }

        w.WriteStartArray();
        foreach (var e in entities)
        {
            EntityRenderer.WriteEntity(w, e, render);
        }

        w.WriteEndArray();
    }

    private static async Task<IResult> Delete(HttpContext http, string entityId, EntityService entities)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        await entities.DeleteAsync(tenant, NgsiRequest.EntityId(entityId), http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Replace(HttpContext http, string entityId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var (obj, context) = await ReadObjectAsync(http, resolver);
        var replacement = EntityParser.ParseEntity(obj, context, entities.Now(), idFromPath: id);
        await entities.ReplaceAsync(tenant, replacement, http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Merge(HttpContext http, string entityId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var (obj, context) = await ReadObjectAsync(http, resolver, allowMergePatch: true);
        var patch = EntityParser.ParseEntity(obj, context, entities.Now(), idFromPath: id, fragment: true, allowNullMarker: true);
        await entities.MergeAsync(tenant, patch, http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Append(HttpContext http, string entityId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var options = RequestOptions.Parse(http.Request.Query);
        var (obj, context) = await ReadObjectAsync(http, resolver);
        var attributes = EntityParser.ParseAttributes(obj, context, entities.Now(), allowNullMarker: false);
        var result = await entities.AppendAsync(tenant, id, attributes, options.NoOverwrite, http.Caller(), http.RequestAborted);
        return UpdateResultOf(result, context);
    }

    private static async Task<IResult> Update(HttpContext http, string entityId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var (obj, context) = await ReadObjectAsync(http, resolver);
        var attributes = EntityParser.ParseAttributes(obj, context, entities.Now(), allowNullMarker: false);
        if (attributes.Count == 0)
        {
            throw NgsiException.BadData("The body names no attribute to update.");
        }

        var result = await entities.UpdateAsync(tenant, id, attributes, http.Caller(), http.RequestAborted);
        return UpdateResultOf(result, context);
    }

    private static async Task<IResult> PatchAttribute(HttpContext http, string entityId, string attrId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var (obj, context) = await ReadObjectAsync(http, resolver);
        var name = EntityParser.ExpandAttributeName(attrId, context);
        var fragment = EntityParser.ParseFragment(attrId, obj, context, entities.Now(), allowNullMarker: false, depth: 0, partial: true);
        await entities.PatchAttributeAsync(tenant, id, name, fragment, http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> ReplaceAttribute(HttpContext http, string entityId, string attrId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var (obj, context) = await ReadObjectAsync(http, resolver);
        var name = EntityParser.ExpandAttributeName(attrId, context);
        var instance = EntityParser.ParseInstance(attrId, obj, context, entities.Now(), allowNullMarker: false, depth: 0);
        await entities.ReplaceAttributeAsync(tenant, id, name, instance, http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> DeleteAttribute(HttpContext http, string entityId, string attrId, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = NgsiRequest.EntityId(entityId);
        var options = RequestOptions.Parse(http.Request.Query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var name = EntityParser.ExpandAttributeName(attrId, context);
        await entities.DeleteAttributeAsync(tenant, id, name, options.DatasetId, options.DeleteAll, http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<(JsonElement Body, LdContext Context)> ReadObjectAsync(HttpContext http, IContextResolver resolver, bool allowMergePatch = false)
    {
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http, allowMergePatch);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("The body must be a JSON object.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType == MediaTypes.MergePatch ? MediaTypes.Json : mediaType);
        return (body, context);
    }

    /// <summary>204 when every attribute was changed, else 207 with the UpdateResult (clause 5.2.18).</summary>
    private static IResult UpdateResultOf(UpdateResult result, LdContext context)
    {
        if (result.IsComplete)
        {
            return Results.NoContent();
        }

        return new NgsiJsonResult(207, MediaTypes.Json, null, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("updated");
            foreach (var name in result.Updated)
            {
                w.WriteStringValue(context.CompactIri(name));
            }

            w.WriteEndArray();
            w.WriteStartArray("notUpdated");
            foreach (var item in result.NotUpdated)
            {
                w.WriteStartObject();
                w.WriteString("attributeName", context.CompactIri(item.AttributeName));
                w.WriteString("reason", item.Reason);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }
}
