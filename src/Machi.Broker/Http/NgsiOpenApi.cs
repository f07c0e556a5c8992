using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.OpenApi;

namespace Machi.Broker.Http;

/// <summary>
/// Describes in the OpenAPI document what the handlers read themselves (they parse parameters and bodies into
/// typed values so that every failure is an NGSI-LD ProblemDetails, not a framework 400).
/// </summary>
internal static class NgsiOpenApi
{
    /// <summary>The headers every NGSI-LD operation understands.</summary>
    public static TBuilder WithNgsiHeaders<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(Parameter("NGSILD-Tenant", ParameterLocation.Header,
                "Tenant (multi-tenancy, clause 4.14); created by its first entity. Absent: the default tenant."));
            operation.Parameters.Add(Parameter("Link", ParameterLocation.Header,
                "JSON-LD @context for application/json requests: <url>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"."));
            return Task.CompletedTask;
        });

    /// <summary>Documents URL query parameters by name and meaning.</summary>
    public static RouteHandlerBuilder WithQuery(this RouteHandlerBuilder builder, params (string Name, string Description)[] parameters) =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            foreach (var (name, description) in parameters)
            {
                operation.Parameters.Add(Parameter(name, ParameterLocation.Query, description));
            }

            return Task.CompletedTask;
        });

    /// <summary>Documents a JSON / JSON-LD request body.</summary>
    public static RouteHandlerBuilder WithJsonBody(this RouteHandlerBuilder builder, string description, bool array = false, bool mergePatch = false) =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            var schema = new OpenApiSchema { Type = array ? JsonSchemaType.Array : JsonSchemaType.Object };
            var body = new OpenApiRequestBody
            {
                Description = description,
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    [MediaTypes.Json] = new() { Schema = schema },
                    [MediaTypes.JsonLd] = new() { Schema = schema },
                },
            };
            if (mergePatch)
            {
                body.Content[MediaTypes.MergePatch] = new() { Schema = schema };
            }

            operation.RequestBody = body;
            return Task.CompletedTask;
        });

    public static readonly (string, string) Options = ("options", "Comma list: keyValues | simplified | concise | normalized | sysAttrs (createdAt/modifiedAt).");
    public static readonly (string, string) Format = ("format", "Representation: normalized (default), concise, keyValues or simplified.");
    public static readonly (string, string) Attrs = ("attrs", "Comma list of attribute names to return (queries: entities must have at least one).");
    public static readonly (string, string) Lang = ("lang", "Language preference for LanguageProperty values, e.g. ja,en;q=0.5; * for all.");
    public static readonly (string, string) GeometryProperty = ("geometryProperty", "GeoProperty used as the GeoJSON geometry (Accept: application/geo+json); default location.");
    public static readonly (string, string) DatasetId = ("datasetId", "Comma list of datasetIds: only these attribute instances are returned (@none: the default instance).");
    public static readonly (string, string) Join = ("join", "flat: Linked Entities (named by Relationships) returned beside the entities; inline: inside their Relationships (entity / entityList).");
    public static readonly (string, string) JoinLevel = ("joinLevel", "How many Relationships deep join follows (default 1).");
    public static readonly (string, string) ContainedBy = ("containedBy", "Comma list of entity ids join does not read again (already held by the caller).");
    public static readonly (string, string) EntityMap = ("entityMap", "true: record every matching entity and where it was found in an entity map (id in the NGSILD-EntityMap header); an entity map id: page through that map.");
    public static readonly (string, string) ExpandValues = ("expandValues", "Comma list of attributes whose values in q are expanded with the @context before comparing.");

    private static OpenApiParameter Parameter(string name, ParameterLocation location, string description) => new()
    {
        Name = name,
        In = location,
        Description = description,
        Schema = new OpenApiSchema { Type = JsonSchemaType.String },
    };
}
