using Machi.Broker.Access;
using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Machi.Broker.Discovery;

/// <summary>
/// The discovery endpoints (clauses 5.7.5–5.7.10, HTTP 6.25–6.28): which entity types and attributes a tenant holds.
/// Names are compacted with the request's @context; the ids of EntityType, EntityTypeInfo and Attribute objects are
/// the expanded IRIs, as the spec's data types (5.2.24–5.2.28) define them.
/// </summary>
internal static class DiscoveryApi
{
    public static RouteGroupBuilder MapDiscovery(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/").WithTags("Discovery").WithNgsiHeaders().RequiresScope(Caller.ReadScope);
        group.MapGet("/types", ListTypes).WithName("RetrieveEntityTypes").WithSummary("Entity types in use (details=true: with their attribute names)")
            .WithQuery(Details).Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400);
        group.MapGet("/types/{type}", TypeInfo).WithName("RetrieveEntityTypeInfo").WithSummary("One entity type: entity count and attribute details")
            .Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400).ProducesProblem(404);
        group.MapGet("/attributes", ListAttributes).WithName("RetrieveAttributes").WithSummary("Attributes in use (details=true: with counts, attribute types and entity types)")
            .WithQuery(Details).Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400);
        group.MapGet("/attributes/{attrId}", AttributeInfo).WithName("RetrieveAttributeInfo").WithSummary("One attribute: count, attribute types and entity types")
            .Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400).ProducesProblem(404);
        return group;
    }

    private static readonly (string, string) Details = ("details", "true: full objects instead of the list of names.");

    private static async Task<IResult> ListTypes(HttpContext http, EntityService entities, IEntityStore store, IContextResolver resolver)
    {
        var (tenant, context, mediaType) = await BeginAsync(http, entities, resolver);
        var details = RequestOptions.Flag(http.Request.Query, "details");
        var catalog = await store.DescribeAsync(tenant, new CatalogQuery(), http.RequestAborted);
        return Json(mediaType, context, w =>
        {
            if (details)
            {
                w.WriteStartArray();
                foreach (var type in catalog.Types)
                {
                    w.WriteStartObject();
                    w.WriteString("id", type.Type);
                    w.WriteString("type", "EntityType");
                    w.WriteString("typeName", context.CompactIri(type.Type));
                    WriteNames(w, "attributeNames", type.AttributeNames, context);
                    EndObject(w, mediaType, context);
                }

                w.WriteEndArray();
                return;
            }

            w.WriteStartObject();
            w.WriteString("id", "urn:ngsi-ld:EntityTypeList:" + Guid.NewGuid().ToString("N"));
            w.WriteString("type", "EntityTypeList");
            WriteNames(w, "typeList", catalog.Types.Select(t => t.Type), context);
            EndObject(w, mediaType, context);
        });
    }

    private static async Task<IResult> TypeInfo(HttpContext http, string type, EntityService entities, IEntityStore store, IContextResolver resolver)
    {
        var (tenant, context, mediaType) = await BeginAsync(http, entities, resolver);
        var iri = context.ExpandTerm(Name(type, "entity type"));
        var catalog = await store.DescribeAsync(tenant, new CatalogQuery { Type = iri, AttributeKinds = true }, http.RequestAborted);
        if (catalog.Types is not [var info])
        {
            throw NgsiException.NotFound($"No entity of type '{EntityParser.Truncate(type)}' exists.");
        }

        return Json(mediaType, context, w =>
        {
            w.WriteStartObject();
            w.WriteString("id", info.Type);
            w.WriteString("type", "EntityTypeInfo");
            w.WriteString("typeName", context.CompactIri(info.Type));
            w.WriteNumber("entityCount", info.EntityCount);
            w.WriteStartArray("attributeDetails");
            foreach (var attribute in catalog.Attributes)
            {
                w.WriteStartObject();
                w.WriteString("id", attribute.Name);
                w.WriteString("type", "Attribute");
                w.WriteString("attributeName", context.CompactIri(attribute.Name));
                WriteKinds(w, attribute);
                WriteNames(w, "typeNames", [info.Type], context);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            EndObject(w, mediaType, context);
        });
    }

    private static async Task<IResult> ListAttributes(HttpContext http, EntityService entities, IEntityStore store, IContextResolver resolver)
    {
        var (tenant, context, mediaType) = await BeginAsync(http, entities, resolver);
        var details = RequestOptions.Flag(http.Request.Query, "details");
        var catalog = await store.DescribeAsync(tenant, new CatalogQuery { AttributeKinds = details }, http.RequestAborted);
        return Json(mediaType, context, w =>
        {
            if (details)
            {
                w.WriteStartArray();
                foreach (var attribute in catalog.Attributes)
                {
                    WriteAttribute(w, attribute, context, mediaType);
                }

                w.WriteEndArray();
                return;
            }

            w.WriteStartObject();
            w.WriteString("id", "urn:ngsi-ld:AttributeList:" + Guid.NewGuid().ToString("N"));
            w.WriteString("type", "AttributeList");
            WriteNames(w, "attributeList", catalog.Attributes.Select(a => a.Name), context);
            EndObject(w, mediaType, context);
        });
    }

    private static async Task<IResult> AttributeInfo(HttpContext http, string attrId, EntityService entities, IEntityStore store, IContextResolver resolver)
    {
        var (tenant, context, mediaType) = await BeginAsync(http, entities, resolver);
        var iri = EntityParser.ExpandAttributeName(Name(attrId, "attribute name"), context);
        var catalog = await store.DescribeAsync(tenant, new CatalogQuery { Attribute = iri, AttributeKinds = true }, http.RequestAborted);
        if (catalog.Attributes is not [var attribute])
        {
            throw NgsiException.NotFound($"No entity has an attribute '{EntityParser.Truncate(attrId)}'.");
        }

        return Json(mediaType, context, w => WriteAttribute(w, attribute, context, mediaType));
    }

    private static async Task<(string Tenant, LdContext Context, string MediaType)> BeginAsync(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        return (tenant, context, mediaType);
    }

    /// <summary>A type or attribute name from the path; a full IRI may arrive with its slashes escaped.</summary>
    private static string Name(string segment, string what)
    {
        var name = segment.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        return NgsiText.IsName(name) ? name : throw NgsiException.BadData($"'{EntityParser.Truncate(name)}' is not a valid {what}.");
    }

    private static void WriteAttribute(Utf8JsonWriter w, AttributeSummary attribute, LdContext context, string mediaType)
    {
        w.WriteStartObject();
        w.WriteString("id", attribute.Name);
        w.WriteString("type", "Attribute");
        w.WriteString("attributeName", context.CompactIri(attribute.Name));
        w.WriteNumber("attributeCount", attribute.EntityCount);
        WriteKinds(w, attribute);
        WriteNames(w, "typeNames", attribute.TypeNames, context);
        EndObject(w, mediaType, context);
    }

    private static void WriteKinds(Utf8JsonWriter w, AttributeSummary attribute)
    {
        if (attribute.Kinds is null)
        {
            return;
        }

        w.WriteStartArray("attributeTypes");
        foreach (var kind in attribute.Kinds)
        {
            w.WriteStringValue(AttributeKinds.Name(kind));
        }

        w.WriteEndArray();
    }

    private static void WriteNames(Utf8JsonWriter w, string member, IEnumerable<string> iris, LdContext context)
    {
        w.WriteStartArray(member);
        foreach (var iri in iris)
        {
            w.WriteStringValue(context.CompactIri(iri));
        }

        w.WriteEndArray();
    }

    /// <summary>Closes a top-level object; application/ld+json answers carry their @context in it.</summary>
    private static void EndObject(Utf8JsonWriter w, string mediaType, LdContext context)
    {
        if (mediaType == MediaTypes.JsonLd)
        {
            EntityRenderer.WriteContext(w, context);
        }

        w.WriteEndObject();
    }

    private static NgsiJsonResult Json(string mediaType, LdContext context, Action<Utf8JsonWriter> write) => new(200, mediaType, context, write);
}
