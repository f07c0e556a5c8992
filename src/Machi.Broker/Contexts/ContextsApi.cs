using Machi.Broker.Access;
using System.Text.Json;
using Machi.Broker.Http;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Machi.Broker.Contexts;

/// <summary>The @context endpoints (clause 5.13, HTTP 6.29–6.30): list, serve, host and delete JSON-LD contexts.</summary>
internal static class ContextsApi
{
    public static RouteGroupBuilder MapContexts(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/jsonldContexts").WithTags("JSON-LD contexts");
        group.MapGet("/", List).WithName("ListContexts").WithSummary("List @contexts (details=true, kind=Hosted|Cached|ImplicitlyCreated)");
        group.MapPost("/", Add).WithName("AddContext").WithSummary("Host a @context posted as {\"@context\": …}").WithJsonBody("{\"@context\": …}").Produces(201);
        group.MapGet("/{contextId}", Serve).WithName("ServeContext").WithSummary("Serve a @context (details=true for its metadata)");
        group.MapDelete("/{contextId}", Delete).RequiresScope(Caller.AdminScope).WithName("DeleteContext").WithSummary("Delete a hosted @context, or evict/reload (reload=true) a cached one").Produces(204);
        return group;
    }

    internal static string BaseUrl(HttpRequest request) => $"{request.Scheme}://{request.Host}";

    private static async Task<IResult> List(HttpContext http, ContextRegistry registry)
    {
        var query = http.Request.Query;
        var details = RequestOptions.Flag(query, "details");
        ContextKind? kind = null;
        if (query.TryGetValue("kind", out var kindText))
        {
            kind = ContextRegistry.TryParseKind(kindText.ToString(), out var k)
                ? k
                : throw NgsiException.BadData("kind must be Hosted, Cached or ImplicitlyCreated.");
        }

        var entries = await registry.ListAsync(kind, BaseUrl(http.Request), http.RequestAborted);
        return new NgsiJsonResult(200, MediaTypes.Json, null, w =>
        {
            w.WriteStartArray();
            foreach (var entry in entries)
            {
                if (details)
                {
                    entry.ToDetailsJson().WriteTo(w);
                }
                else
                {
                    w.WriteStringValue(entry.Url);
                }
            }

            w.WriteEndArray();
        });
    }

    private static async Task<IResult> Add(HttpContext http, ContextRegistry registry)
    {
        var (body, _) = await NgsiRequest.ReadBodyAsync(http);
        var entry = await registry.AddHostedAsync(System.Text.Json.Nodes.JsonNode.Parse(body.GetRawText()), BaseUrl(http.Request), http.RequestAborted);
        return Results.Created(entry.Url, null);
    }

    private static async Task<IResult> Serve(HttpContext http, string contextId, ContextRegistry registry)
    {
        var entry = await registry.GetAsync(contextId, BaseUrl(http.Request), http.RequestAborted);
        if (RequestOptions.Flag(http.Request.Query, "details"))
        {
            return new NgsiJsonResult(200, MediaTypes.Json, null, w => entry.ToDetailsJson().WriteTo(w));
        }

        return new NgsiJsonResult(200, MediaTypes.JsonLd, null, w => w.WriteRawValue(entry.DocumentJson, skipInputValidation: true));
    }

    private static async Task<IResult> Delete(HttpContext http, string contextId, ContextRegistry registry)
    {
        await registry.DeleteAsync(contextId, RequestOptions.Flag(http.Request.Query, "reload"), http.RequestAborted);
        return Results.NoContent();
    }
}
