using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Storage;
using Machi.Broker.Temporal;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Trust.Connect;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Access;

/// <summary>
/// Residents' side of trust, as JSON under <c>/api</c>: their consents (list, revoke, receipts), who accessed their data,
/// export of all their data and erasure (APPI). Staff read the whole access log. A consent is granted only on Machi's own
/// consent page (a signed-in session with antiforgery), never with a bearer token a service could hold.
/// </summary>
internal static class AccessApi
{
    public static IEndpointRouteBuilder MapAccess(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api").WithTags("Consent and access log");
        api.MapGet("/consents", ListConsents).WithName("ListMyConsents").WithSummary("My consents (granted, expired, revoked)");
        api.MapDelete("/consents/{consentId}", Revoke).WithName("RevokeConsent").WithSummary("Revoke one of my consents; returns the revocation receipt");
        api.MapGet("/consents/{consentId}/receipt", Receipt).WithName("ConsentReceipt").WithSummary("A consent's receipt (revocation=true: the revocation's)");
        api.MapGet("/access-log", AccessLogEntries).WithName("AccessLog").WithSummary("Who accessed my data (staff: everyone's, with filters)");
        api.MapGet("/me/data", Export).WithName("ExportMyData").WithSummary("All my personal data, consents and access records (JSON)");
        api.MapDelete("/me/data", Erase).WithName("EraseMyData").WithSummary("Delete my personal entities, their history and my consents");
        return app;
    }

    /// <summary>The signed-in person: a bearer token with a subject, or the portal's session cookie; null when neither.</summary>
    internal static async Task<Caller?> PersonAsync(HttpContext http)
    {
        var (state, identity) = await http.RequestServices.GetRequiredService<AccessTokens>().AuthenticateAsync(http);
        if (state == TokenState.Valid)
        {
            return identity!.Subject is not null ? Callers.From(identity) : null;
        }

        if (state == TokenState.Invalid)
        {
            return null;
        }

        var cookie = await http.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        if (cookie.Principal?.FindFirstValue("sub") is not { } person)
        {
            return null;
        }

        return new Caller(person, null, new HashSet<string>(), new HashSet<string>(cookie.Principal.FindAll("role").Select(c => c.Value)));
    }

    private static IResult SignInNeeded() =>
        Results.Problem(statusCode: 401, title: "Sign-in needed", detail: "Sign in (or send a resident's access token) to see your own data.");

    private static async Task<IResult> ListConsents(HttpContext http, ConsentService consents)
    {
        if (await PersonAsync(http) is not { Subject: { } resident })
        {
            return SignInNeeded();
        }

        var list = await consents.ListAsync(resident, http.RequestAborted);
        var now = TimeProvider.System.GetUtcNow();
        return Results.Json(list.Select(c => new
        {
            id = c.Id,
            clientId = c.ClientId,
            purpose = c.Purpose,
            categories = c.Categories,
            grantedAt = c.GrantedAt,
            expiresAt = c.ExpiresAt,
            termsVersion = c.TermsVersion,
            revokedAt = c.RevokedAt,
            status = c.RevokedAt is not null ? "revoked" : c.ExpiresAt <= now ? "expired" : "active",
        }));
    }

    private static async Task<IResult> Revoke(HttpContext http, string consentId, ConsentService consents)
    {
        if (await PersonAsync(http) is not { Subject: { } resident })
        {
            return SignInNeeded();
        }

        var receipt = await consents.RevokeAsync(resident, consentId, http.RequestAborted);
        return receipt is null
            ? Results.Problem(statusCode: 404, title: "No such consent", detail: $"You have no active consent '{consentId}'.")
            : Results.Text(receipt, "application/json", statusCode: 200);
    }

    private static async Task<IResult> Receipt(HttpContext http, string consentId, bool? revocation, ConsentService consents)
    {
        if (await PersonAsync(http) is not { Subject: { } resident })
        {
            return SignInNeeded();
        }

        var receipt = await consents.ReceiptAsync(resident, consentId, revocation == true, http.RequestAborted);
        if (receipt is null)
        {
            return Results.Problem(statusCode: 404, title: "No such receipt", detail: $"There is no {(revocation == true ? "revocation " : "")}receipt for '{consentId}'.");
        }

        http.Response.Headers.ContentDisposition = $"attachment; filename=\"consent-receipt{(revocation == true ? "-revocation" : "")}.json\"";
        return Results.Text(receipt, "application/json");
    }

    private static async Task<IResult> AccessLogEntries(
        HttpContext http, IAccessLog log, string? resident, string? clientId, DateTimeOffset? from, DateTimeOffset? to, int? limit, int? offset)
    {
        if (await PersonAsync(http) is not { Subject: { } person } caller)
        {
            return SignInNeeded();
        }

        // Residents see their own records; staff see everyone's (and may filter by resident).
        var staff = caller.Roles.Contains(AccessPolicy.StaffRole);
        var entries = await log.ReadAsync(staff ? resident : person, clientId, from, to, Math.Clamp(limit ?? 100, 1, 1000), Math.Max(offset ?? 0, 0), cancellationToken: http.RequestAborted);
        return Results.Json(entries.Select(Json));
    }

    private static async Task<IResult> Export(HttpContext http, IEntityStore store, IAccessLog log, ConsentService consents)
    {
        if (await PersonAsync(http) is not { Subject: { } resident })
        {
            return SignInNeeded();
        }

        var entities = new JsonArray();
        var render = RequestOptions.Parse(new QueryCollection()).Render(LdContext.Core, MediaTypes.Json);
        foreach (var (tenant, id) in await store.OwnedEntitiesAsync(resident, http.RequestAborted))
        {
            if (await store.GetAsync(tenant, id, http.RequestAborted) is { } entity)
            {
                var buffer = new System.Buffers.ArrayBufferWriter<byte>();
                using (var w = new Utf8JsonWriter(buffer))
                {
                    EntityRenderer.WriteEntity(w, entity, render);
                }

                var node = JsonNode.Parse(buffer.WrittenSpan)!.AsObject();
                node["machi:tenant"] = tenant;
                entities.Add(node);
            }
        }

        var consentList = new JsonArray();
        foreach (var consent in await consents.ListAsync(resident, http.RequestAborted))
        {
            var receipt = await consents.ReceiptAsync(resident, consent.Id, revocation: false, http.RequestAborted);
            consentList.Add(new JsonObject
            {
                ["id"] = consent.Id,
                ["clientId"] = consent.ClientId,
                ["purpose"] = consent.Purpose,
                ["categories"] = new JsonArray([.. consent.Categories.Select(c => (JsonNode)c)]),
                ["grantedAt"] = consent.GrantedAt,
                ["expiresAt"] = consent.ExpiresAt,
                ["revokedAt"] = consent.RevokedAt,
                ["receipt"] = receipt is null ? null : JsonNode.Parse(receipt),
            });
        }

        var export = new JsonObject
        {
            ["subject"] = resident,
            ["exportedAt"] = DateTimeOffset.UtcNow,
            ["entities"] = entities,
            ["consents"] = consentList,
            ["accessLog"] = new JsonArray([.. (await log.ReadAsync(resident, limit: 100_000, newestFirst: false, cancellationToken: http.RequestAborted)).Select(e => JsonSerializer.SerializeToNode(Json(e)))]),
        };
        http.Response.Headers.ContentDisposition = "attachment; filename=\"machi-my-data.json\"";
        return Results.Text(export.ToJsonString(), "application/json");
    }

    private static async Task<IResult> Erase(
        HttpContext http, IEntityStore store, EntityService entities, ITemporalHistory history, ConsentService consents, IAccessLog log, AccessAudit audit)
    {
        if (await PersonAsync(http) is not { Subject: { } resident })
        {
            return SignInNeeded();
        }

        var owner = new Caller(resident, null, new HashSet<string> { Caller.WriteScope }, new HashSet<string>());
        var deleted = 0;
        foreach (var (tenant, id) in await store.OwnedEntitiesAsync(resident, http.RequestAborted))
        {
            try
            {
                await entities.DeleteAsync(tenant, id, owner, http.RequestAborted);
            }
            catch (NgsiException e) when (e.Type == NgsiErrorType.ResourceNotFound)
            {
                // Deleted meanwhile.
            }

            await history.DeleteEntityAsync(tenant, id, http.RequestAborted);
            deleted++;
        }

        var consentCount = await consents.EraseAsync(resident, http.RequestAborted);
        var redacted = await log.RedactAsync(resident, audit.Record(owner, "", "urn:machi:erasure", resident, "erasure"));
        return Results.Json(new { deletedEntities = deleted, deletedConsents = consentCount, redactedAccessRecords = redacted });
    }

    private static object Json(AccessLogEntry e) => new
    {
        seq = e.Seq,
        at = e.Record?.At,
        resident = e.Record?.Resident,
        clientId = e.Record?.ClientId,
        subject = e.Record?.Subject,
        purpose = e.Record?.Purpose,
        emergencyReason = e.Record?.EmergencyReason,
        operation = e.Record?.Operation,
        tenant = e.Record?.Tenant,
        entityId = e.Record?.EntityId,
        attributes = e.Record?.Attributes,
        node = e.Record?.Node,
        redacted = e.Record is null,
        hash = e.Hash,
    };
}
