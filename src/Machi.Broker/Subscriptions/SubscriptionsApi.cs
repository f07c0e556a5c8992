using Machi.Broker.Access;
using System.Globalization;
using System.Text.Json;
using Machi.Broker.Contexts;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Subscriptions;

/// <summary>The subscription endpoints (clause 5.8, HTTP binding 6.10–6.11).</summary>
internal static class SubscriptionsApi
{
    public const string Path = "/ngsi-ld/v1/subscriptions/";

    public static RouteGroupBuilder MapSubscriptions(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/subscriptions").WithTags("Subscriptions").WithNgsiHeaders().RequiresScope(Caller.ReadScope);
        group.MapPost("/", Create).WithName("CreateSubscription").WithSummary("Subscribe to entity changes (notifications by HTTP POST)")
            .WithJsonBody("A Subscription: entities, watchedAttributes, notificationTrigger, q, geoQ, scopeQ, throttling or timeInterval, expiresAt, isActive, notification {attributes, format, showChanges, sysAttrs, endpoint {uri, accept, receiverInfo}}.")
            .ProducesProblem(400).ProducesProblem(409).ProducesProblem(415).Produces(201);
        group.MapGet("/", List).WithName("QuerySubscriptions").WithSummary("List the subscriptions of the tenant")
            .WithQuery(("limit", "Page size."), ("offset", "Subscriptions to skip."), ("count", "true: total in NGSILD-Results-Count."),
                ("options", "sysAttrs: include createdAt and modifiedAt."))
            .Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400);
        group.MapGet("/{subscriptionId}", Retrieve).WithName("RetrieveSubscription").WithSummary("Retrieve a subscription with its status and delivery counters")
            .WithQuery(("options", "sysAttrs: include createdAt and modifiedAt."))
            .Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400).ProducesProblem(404);
        group.MapPatch("/{subscriptionId}", Update).WithName("UpdateSubscription").WithSummary("Update members of a subscription (e.g. isActive to pause)")
            .WithJsonBody("The members to replace; notification members are merged one by one.", mergePatch: true)
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(415).Produces(204);
        group.MapDelete("/{subscriptionId}", Delete).WithName("DeleteSubscription").WithSummary("Delete a subscription and its undelivered notifications")
            .Produces(204).ProducesProblem(400).ProducesProblem(404);
        return group;
    }

    private static async Task<IResult> Create(HttpContext http, SubscriptionService subscriptions, IContextResolver resolver, ContextRegistry registry)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("A subscription must be a JSON object.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType);
        var document = SubscriptionParser.ParseMembers(body, context, fragment: false);
        var contextUrl = await registry.GetLinkUrlAsync(context, ContextsApi.BaseUrl(http.Request), http.RequestAborted);
        var subscription = await subscriptions.CreateAsync(tenant, document, context, contextUrl, http.Caller(), http.RequestAborted);
        return Results.Created(Path + EntitiesApi.PathSegment(subscription.Id), null);
    }

    private static async Task<IResult> Retrieve(HttpContext http, string subscriptionId, SubscriptionService subscriptions, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var options = RequestOptions.Parse(http.Request.Query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var subscription = await subscriptions.GetAsync(tenant, Id(subscriptionId), http.Caller(), http.RequestAborted);
        var counters = await subscriptions.CountersAsync(tenant, subscription.Id, http.RequestAborted);
        var now = subscriptions.Now();
        return new NgsiJsonResult(200, mediaType, context, w =>
            SubscriptionParser.Write(w, subscription, counters, context, now, options.SysAttrs, mediaType == MediaTypes.JsonLd));
    }

    private static async Task<IResult> List(HttpContext http, SubscriptionService subscriptions, IContextResolver resolver, IOptions<BrokerOptions> settings)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var options = RequestOptions.Parse(http.Request.Query);
        var limit = options.PageLimit(settings.Value);

        var context = await NgsiRequest.ContextAsync(http, resolver);
        var all = await subscriptions.ListAsync(tenant, http.Caller(), http.RequestAborted);
        if (options.Count)
        {
            http.Response.Headers["NGSILD-Results-Count"] = all.Count.ToString(CultureInfo.InvariantCulture);
        }

        var page = all.Skip(options.Offset).Take(limit).ToList();
        var counters = new List<DeliveryCounters>(page.Count);
        foreach (var subscription in page)
        {
            counters.Add(await subscriptions.CountersAsync(tenant, subscription.Id, http.RequestAborted));
        }

        var now = subscriptions.Now();
        return new NgsiJsonResult(200, mediaType, context, w =>
        {
            w.WriteStartArray();
            for (var i = 0; i < page.Count; i++)
            {
                SubscriptionParser.Write(w, page[i], counters[i], context, now, options.SysAttrs, mediaType == MediaTypes.JsonLd);
            }

            w.WriteEndArray();
        });
    }

    private static async Task<IResult> Update(HttpContext http, string subscriptionId, SubscriptionService subscriptions, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = Id(subscriptionId);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http, allowMergePatch: true);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("The body must be a JSON object with the members to change.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType == MediaTypes.MergePatch ? MediaTypes.Json : mediaType);
        var fragment = SubscriptionParser.ParseMembers(body, context, fragment: true);
        if (fragment.Count == 0)
        {
            throw NgsiException.BadData("The body names no member to update.");
        }

        await subscriptions.UpdateAsync(tenant, id, fragment, context, http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Delete(HttpContext http, string subscriptionId, SubscriptionService subscriptions)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        await subscriptions.DeleteAsync(tenant, Id(subscriptionId), http.Caller(), http.RequestAborted);
        return Results.NoContent();
    }

    private static string Id(string id) =>
        NgsiText.IsUri(id) ? id : throw NgsiException.BadData($"'{EntityParser.Truncate(id)}' is not a valid subscription id (a URI is required).");
}
