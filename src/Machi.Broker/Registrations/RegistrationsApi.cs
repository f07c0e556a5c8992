using Machi.Broker.Access;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Query;
using Machi.Broker.Temporal;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Registrations;

/// <summary>The context source registration endpoints (clauses 5.9–5.10, HTTP 6.8–6.9).</summary>
internal static class RegistrationsApi
{
    public const string Path = "/ngsi-ld/v1/csourceRegistrations/";


    public static RouteGroupBuilder MapRegistrations(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/csourceRegistrations").WithTags("Context source registrations").WithNgsiHeaders().RequiresScope(Caller.AdminScope);
        group.MapPost("/", Create).WithName("RegisterContextSource").WithSummary("Register a context source")
            .WithJsonBody("A CSourceRegistration: information (entities, propertyNames, relationshipNames), endpoint, mode, operations, management …")
            .EntitiesApiProblems().ProducesProblem(409).Produces(201);
        group.MapGet("/", Query).RequiresScope(Caller.ReadScope).WithName("QueryContextSourceRegistrations").WithSummary("Query registrations by the entities and attributes they cover")
            .WithQuery(("id", "Comma list of entity ids."), ("type", "Comma list of entity types."), ("idPattern", "Regular expression over entity ids."),
                NgsiOpenApi.Attrs, ("limit", "Page size."), ("offset", "Registrations to skip."), ("count", "true: total in NGSILD-Results-Count."),
                ("options", "sysAttrs: include createdAt and modifiedAt."))
            .Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400);
        group.MapGet("/{registrationId}", Retrieve).RequiresScope(Caller.ReadScope).WithName("RetrieveContextSourceRegistration").WithSummary("Retrieve a registration")
            .WithQuery(("options", "sysAttrs: include createdAt and modifiedAt."))
            .Produces<object>(200, MediaTypes.Json, MediaTypes.JsonLd).ProducesProblem(400).ProducesProblem(404);
        group.MapPatch("/{registrationId}", Update).WithName("UpdateContextSourceRegistration").WithSummary("Update members of a registration")
            .WithJsonBody("The members to replace.").EntitiesApiProblems().ProducesProblem(409).Produces(204);
        group.MapDelete("/{registrationId}", Delete).WithName("DeleteContextSourceRegistration").WithSummary("Delete a registration")
            .Produces(204).ProducesProblem(404);
        return group;
    }

    private static RouteHandlerBuilder EntitiesApiProblems(this RouteHandlerBuilder builder) =>
        builder.ProducesProblem(400).ProducesProblem(404).ProducesProblem(415);

    private static async Task<IResult> Create(HttpContext http, RegistrationService registrations, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("A context source registration must be a JSON object.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType);
        var registration = await registrations.CreateAsync(tenant, RegistrationParser.ParseMembers(body, context, fragment: false), http.RequestAborted);
        return Results.Created(Path + EntitiesApi.PathSegment(registration.Id), null);
    }

    private static async Task<IResult> Retrieve(HttpContext http, string registrationId, RegistrationService registrations, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var options = RequestOptions.Parse(http.Request.Query);
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var registration = await registrations.GetAsync(tenant, Id(registrationId), http.RequestAborted);
        return new NgsiJsonResult(200, mediaType, context, w => RegistrationParser.Write(
            w, registration, context, registrations.Status(tenant, registration.Id), options.SysAttrs, mediaType == MediaTypes.JsonLd));
    }

    private static async Task<IResult> Query(HttpContext http, RegistrationService registrations, IContextResolver resolver, IOptions<BrokerOptions> settings)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var mediaType = MediaTypes.Negotiate(http.Request, allowGeoJson: false);
        var options = RequestOptions.Parse(http.Request.Query);

        var limit = options.PageLimit(settings.Value);

        var context = await NgsiRequest.ContextAsync(http, resolver);
        var selection = new EntitySelection(
            options.Ids,
            IdPattern(http.Request.Query),
            http.Request.Query["type"] is [{ Length: > 0 } type] ? TypeExpression.Parse(type).Expand(context.ExpandTerm).Names.ToList() : null,
            options.Attrs?.Select(a => EntityParser.ExpandAttributeName(a, context)).ToHashSet(StringComparer.Ordinal));
        var filter = RegistrationFilter(http.Request.Query, context);
        var during = TimeFilter(http.Request.Query);
        var q = RequestOptions.Single(http.Request.Query, "q") is { } qText ? QExpressions.Expand(QParser.Parse(qText), context.ExpandTerm) : null;
        var matching = (await registrations.ListAsync(tenant, http.RequestAborted))
            .Where(r => RegistrationMatch.Matches(r, selection) && (filter is null || filter.Matches(RegistrationView.Of(r))) && (during is null || during(r))
                && (q is null || MayHold(r, selection, q)))
            .ToList();
        if (options.Count)
        {
            http.Response.Headers["NGSILD-Results-Count"] = matching.Count.ToString(CultureInfo.InvariantCulture);
        }

        var page = matching.Skip(options.Offset).Take(limit).ToList();
        return new NgsiJsonResult(200, mediaType, context, w =>
        {
            w.WriteStartArray();
            foreach (var registration in page)
            {
                RegistrationParser.Write(w, registration, context, registrations.Status(tenant, registration.Id), options.SysAttrs, mediaType == MediaTypes.JsonLd);
            }

            w.WriteEndArray();
        });
    }

    /// <summary>
    /// q on registrations: whether the registration's sources could hold entities that match q — every attribute a
    /// condition tests is registered (or the registration covers whole entities). A negated existence (!a) holds
    /// anywhere; and/or combine as in q.
    /// </summary>
    private static bool MayHold(CSourceRegistration registration, EntitySelection selection, QExpression q)
    {
        return q switch
        {
            QLogical { IsAnd: true } all => all.Terms.All(t => MayHold(registration, selection, t)),
            QLogical any => any.Terms.Any(t => MayHold(registration, selection, t)),
            QExists { Negated: true } => true,
            QExists exists => Registers(exists.Path),
            QComparison comparison => Registers(comparison.Path),
            QPattern pattern => Registers(pattern.Path),
            _ => true,
        };

        bool Registers(QPath path) =>
            RegistrationMatch.Matches(registration, selection with { Attrs = new HashSet<string>(StringComparer.Ordinal) { path.Names[0] } });
    }

    /// <summary>
    /// The temporal part of a registration query (clause 4.11 on timeproperty = observationInterval, the default, or
    /// managementInterval): a registration matches when its interval [startAt, endAt) meets the asked time — starts
    /// before timeAt (before), has not ended by timeAt (after), overlaps [timeAt, endTimeAt) (between). A registration
    /// without that interval is not bounded in time and always matches. Null when no timerel is given.
    /// </summary>
    private static Func<CSourceRegistration, bool>? TimeFilter(IQueryCollection query)
    {
        var (relation, timeAt, endTimeAt) = TemporalQuery.ParseRelation(query);
        var member = RequestOptions.Single(query, "timeproperty") switch
        {
            null or "observationInterval" => "observationInterval",
            "managementInterval" => "managementInterval",
            var other => throw NgsiException.BadData($"timeproperty must be observationInterval or managementInterval, not '{EntityParser.Truncate(other)}'."),
        };
        if (relation is null)
        {
            return null;
        }

        return registration =>
        {
            if (registration.Document[member] is not JsonObject interval)
            {
                return true;
            }

            var start = DateTimeOffset.Parse(interval["startAt"]!.GetValue<string>(), CultureInfo.InvariantCulture);
            DateTimeOffset? end = interval["endAt"] is { } endAt ? DateTimeOffset.Parse(endAt.GetValue<string>(), CultureInfo.InvariantCulture) : null;
            return relation switch
            {
                TimeRelation.Before => start < timeAt,
                TimeRelation.After => end is null || end > timeAt,
                _ => start < endTimeAt && (end is null || end > timeAt),
            };
        };
    }

    /// <summary>csf (a q expression over the registration's members), geoQ (on location by default) and scopeQ,
    /// evaluated by the entity evaluator on <see cref="RegistrationView"/>; null when none is given.</summary>
    private static EntityFilter? RegistrationFilter(IQueryCollection query, LdContext context)
    {
        var csf = RequestOptions.Single(query, "csf");
        var georel = RequestOptions.Single(query, "georel");
        var geometry = RequestOptions.Single(query, "geometry");
        var coordinates = RequestOptions.Single(query, "coordinates");
        var scopeQ = RequestOptions.Single(query, "scopeQ");
        if (csf is null && georel is null && geometry is null && coordinates is null && scopeQ is null)
        {
            return null;
        }

        return new EntityFilter
        {
            Q = csf is null ? null : QExpressions.Expand(ParseCsf(csf), context.ExpandTerm),
            Geo = georel is null && geometry is null && coordinates is null
                ? null
                : GeoQuery.Parse(georel, geometry, coordinates, RequestOptions.Single(query, "geoproperty"), context.ExpandTerm),
            Scope = scopeQ is null ? null : ScopeQuery.Parse(scopeQ),
        };
    }

    /// <summary>csf is written in the q language; its errors name csf, not q.</summary>
    private static QExpression ParseCsf(string csf)
    {
        try
        {
            return QParser.Parse(csf);
        }
        catch (NgsiException ex) when (ex.Message.StartsWith("q: ", StringComparison.Ordinal))
        {
            throw NgsiException.BadData("csf: " + ex.Message[3..]);
        }
    }

    private static async Task<IResult> Update(HttpContext http, string registrationId, RegistrationService registrations, IContextResolver resolver)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var id = Id(registrationId);
        var (body, mediaType) = await NgsiRequest.ReadBodyAsync(http, allowMergePatch: true);
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("The body must be a JSON object with the members to change.");
        }

        var context = await NgsiRequest.BodyContextAsync(http, resolver, body, mediaType == MediaTypes.MergePatch ? MediaTypes.Json : mediaType);
        var fragment = RegistrationParser.ParseMembers(body, context, fragment: true);
        if (fragment.Count == 0)
        {
            throw NgsiException.BadData("The body names no member to update.");
        }

        await registrations.UpdateAsync(tenant, id, fragment, http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Delete(HttpContext http, string registrationId, RegistrationService registrations)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        await registrations.DeleteAsync(tenant, Id(registrationId), http.RequestAborted);
        return Results.NoContent();
    }

    /// <summary>The idPattern= parameter as a regular expression; BadRequestData when it is not one.</summary>
    internal static System.Text.RegularExpressions.Regex? IdPattern(IQueryCollection query)
    {
        if (!query.TryGetValue("idPattern", out var values))
        {
            return null;
        }

        if (values.Count != 1 || string.IsNullOrEmpty(values[0]))
        {
            throw NgsiException.BadData("Parameter 'idPattern' must be given once, not empty.");
        }

        try
        {
            return RegistrationParser.CompilePattern(values[0]!);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            throw NgsiException.BadData($"idPattern is not a usable regular expression: {ex.Message}");
        }
    }

    private static string Id(string id) =>
        NgsiText.IsUri(id) ? id : throw NgsiException.BadData($"'{EntityParser.Truncate(id)}' is not a valid registration id (a URI is required).");
}
