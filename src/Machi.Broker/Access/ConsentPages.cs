using System.Globalization;
using System.Security.Claims;
using System.Text;
using Machi.Trust.Pages;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;
using Machi.Trust.Clients;

namespace Machi.Broker.Access;

/// <summary>
/// The resident's pages of consent (Japanese and English, phone-first): the opt-in page a service sends residents to,
/// like Aizu's DCP opt-in URL (<c>/consent?client_id=…&amp;purpose=…&amp;categories=…&amp;redirect_uri=…</c>), the list of
/// their consents with withdrawal and receipts (<c>/account/consents</c>), and who accessed their data
/// (<c>/account/access-log</c>).
/// </summary>
internal static class ConsentPages
{
    public static IEndpointRouteBuilder MapConsentPages(this IEndpointRouteBuilder app)
    {
        app.MapGet("/consent", ConsentForm).ExcludeFromDescription();
        app.MapPost("/consent", Consent).ExcludeFromDescription();
        app.MapGet("/account/consents", Consents).ExcludeFromDescription();
        app.MapPost("/account/consents/revoke", RevokeConsent).ExcludeFromDescription();
        app.MapGet("/account/access-log", AccessLogPage).ExcludeFromDescription();
        return app;
    }

    private static async Task<string?> ResidentAsync(HttpContext http) =>
        (await http.AuthenticateAsync(IdentityConstants.ApplicationScheme)).Principal?.FindFirstValue("sub");

    private static IResult SignIn(HttpContext http) =>
        Results.Redirect("/account/login?ReturnUrl=" + Uri.EscapeDataString(http.Request.Path + http.Request.QueryString));

    /// <summary>The registered service, when the client exists and <paramref name="redirectUri"/> (if any) is one it registered.</summary>
    private static async Task<ServiceProfile?> ServiceAsync(ServiceDirectory directory, string? clientId, string? redirectUri, CancellationToken ct) =>
        await directory.FindAsync(clientId, ct) is { } service && (string.IsNullOrEmpty(redirectUri) || service.RedirectUris.Contains(redirectUri, StringComparer.Ordinal))
            ? service
            : null;

    private static string[] Categories(string? text) =>
        (text ?? "").Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static async Task<IResult> ConsentForm(
        HttpContext http, IAntiforgery af, ServiceDirectory directory,
        string? client_id, string? purpose, string? categories, string? redirect_uri, int? days)
    {
        if (await ResidentAsync(http) is null)
        {
            return SignIn(http);
        }

        var page = Html.For(http, af);
        var service = await ServiceAsync(directory, client_id, redirect_uri, http.RequestAborted);
        var kinds = Categories(categories);
        if (service is null || string.IsNullOrEmpty(purpose) || kinds.Length == 0)
        {
            return page.Page("consent_title", page.Error("unknown_service"), StatusCodes.Status400BadRequest);
        }

        if (!service.Covers(purpose, kinds))
        {
            return page.Page("consent_title", page.Error("undeclared_use"), StatusCodes.Status400BadRequest);
        }

        var until = DateTimeOffset.UtcNow.AddDays(Math.Clamp(days ?? 365, 1, 3650));
        var body = new StringBuilder()
            .Append("<p>").Append(Html.E(page.T("consent_intro"))).Append("</p><dl>")
            .Append("<dt>").Append(Html.E(page.T("consent_service"))).Append("</dt><dd data-service>").Append(Html.E(service.Name)).Append("</dd>")
            .Append("<dt>").Append(Html.E(page.T("consent_operator"))).Append("</dt><dd data-operator>").Append(Html.E(service.Operator ?? "—")).Append("</dd>")
            .Append("<dt>").Append(Html.E(page.T("consent_purpose"))).Append("</dt><dd data-purpose>").Append(Html.E(purpose)).Append("</dd>")
            .Append("<dt>").Append(Html.E(page.T("consent_categories"))).Append("</dt><dd data-categories>").Append(Html.E(string.Join(", ", kinds))).Append("</dd>")
            .Append("<dt>").Append(Html.E(page.T("consent_until"))).Append("</dt><dd>").Append(Html.E(until.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))).Append("</dd></dl>")
            .Append(page.Form("/consent", "consent_agree",
                Html.Hidden("client_id", client_id), Html.Hidden("purpose", purpose), Html.Hidden("categories", string.Join(',', kinds)),
                Html.Hidden("redirect_uri", redirect_uri), Html.Hidden("days", (days ?? 365).ToString(CultureInfo.InvariantCulture)), Html.Hidden("decision", "agree")))
            .Append(page.Form("/consent", "consent_decline",
                Html.Hidden("client_id", client_id), Html.Hidden("purpose", purpose), Html.Hidden("categories", string.Join(',', kinds)),
                Html.Hidden("redirect_uri", redirect_uri), Html.Hidden("decision", "decline")));
        return page.Page("consent_title", body.ToString());
    }

    private static async Task<IResult> Consent(HttpContext http, IAntiforgery af, ServiceDirectory directory, ConsentService consents)
    {
        if (await ResidentAsync(http) is not { } resident)
        {
            return SignIn(http);
        }

        var page = Html.For(http, af);
        if (!await af.IsRequestValidAsync(http))
        {
            return page.Page("consent_title", page.Error("form_expired"), StatusCodes.Status400BadRequest);
        }

        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        string? Field(string name) => form[name].ToString() is { Length: > 0 } v ? v : null;
        var clientId = Field("client_id");
        var redirect = Field("redirect_uri");
        if (await ServiceAsync(directory, clientId, redirect, http.RequestAborted) is not { } service)
        {
            return page.Page("consent_title", page.Error("unknown_service"), StatusCodes.Status400BadRequest);
        }

        if (Field("decision") != "agree")
        {
            return redirect is null
                ? Results.Redirect("/account/consents")
                : Results.Redirect(QueryHelpers.AddQueryString(redirect, "consent", "declined"));
        }

        var days = int.TryParse(Field("days"), NumberStyles.None, CultureInfo.InvariantCulture, out var d) ? Math.Clamp(d, 1, 3650) : 365;
        Consent consent;
        try
        {
            (consent, _) = await consents.GrantAsync(resident, service, Field("purpose") ?? "", Categories(Field("categories")),
                DateTimeOffset.UtcNow.AddDays(days), termsVersion: null, http.RequestAborted);
        }
        catch (Ngsi.Errors.NgsiException)
        {
            return page.Page("consent_title", page.Error("undeclared_use"), StatusCodes.Status400BadRequest);
        }

        return redirect is null
            ? Results.Redirect("/account/consents?granted=" + Uri.EscapeDataString(consent.Id))
            : Results.Redirect(QueryHelpers.AddQueryString(redirect, new Dictionary<string, string?> { ["consent"] = "granted", ["consent_id"] = consent.Id }));
    }

    private static async Task<IResult> Consents(HttpContext http, IAntiforgery af, ConsentService consents, string? granted, string? revoked)
    {
        if (await ResidentAsync(http) is not { } resident)
        {
            return SignIn(http);
        }

        var page = Html.For(http, af);
        var body = new StringBuilder();
        if (granted is not null)
        {
            body.Append(page.Notice("consent_granted"));
        }

        if (revoked is not null)
        {
            body.Append(page.Notice("consent_revoked"));
        }

        var list = await consents.ListAsync(resident, http.RequestAborted);
        if (list.Count == 0)
        {
            body.Append("<p>").Append(Html.E(page.T("consents_none"))).Append("</p>");
        }

        var now = DateTimeOffset.UtcNow;
        foreach (var c in list)
        {
            var status = c.RevokedAt is not null ? "revoked" : c.ExpiresAt <= now ? "expired" : "active";
            body.Append("<section data-consent=\"").Append(Html.E(c.Id)).Append("\" data-status=\"").Append(status).Append("\"><h2>")
                .Append(Html.E(c.ClientId)).Append("</h2><p>").Append(Html.E(page.T("consent_purpose"))).Append(": ").Append(Html.E(c.Purpose))
                .Append("<br>").Append(Html.E(page.T("consent_categories"))).Append(": ").Append(Html.E(string.Join(", ", c.Categories)))
                .Append("<br>").Append(Html.E(page.T("consent_until"))).Append(": ").Append(Html.E(c.ExpiresAt.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)))
                .Append("<br><strong>").Append(Html.E(page.T("consent_status_" + status))).Append("</strong></p>")
                .Append("<a href=\"/api/consents/").Append(Html.E(Uri.EscapeDataString(c.Id))).Append("/receipt\">").Append(Html.E(page.T("consent_receipt"))).Append("</a>");
            if (status == "active")
            {
                body.Append(page.Form("/account/consents/revoke", "consent_revoke", Html.Hidden("consent_id", c.Id)));
            }

            body.Append("</section>");
        }

        return page.Page("consents_title", body.ToString());
    }

    private static async Task<IResult> RevokeConsent(HttpContext http, IAntiforgery af, ConsentService consents)
    {
        if (await ResidentAsync(http) is not { } resident)
        {
            return SignIn(http);
        }

        if (!await af.IsRequestValidAsync(http))
        {
            var page = Html.For(http, af);
            return page.Page("consents_title", page.Error("form_expired"), StatusCodes.Status400BadRequest);
        }

        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        await consents.RevokeAsync(resident, form["consent_id"].ToString(), http.RequestAborted);
        return Results.Redirect("/account/consents?revoked=1");
    }

    private static async Task<IResult> AccessLogPage(HttpContext http, IAntiforgery af, IAccessLog log)
    {
        if (await ResidentAsync(http) is not { } resident)
        {
            return SignIn(http);
        }

        var page = Html.For(http, af);
        var entries = await log.ReadAsync(resident, limit: 200, cancellationToken: http.RequestAborted);
        if (entries.Count == 0)
        {
            return page.Page("access_log_title", "<p>" + Html.E(page.T("access_log_none")) + "</p>");
        }

        var body = new StringBuilder("<table><thead><tr>")
            .Append("<th scope=\"col\">").Append(Html.E(page.T("access_log_when"))).Append("</th>")
            .Append("<th scope=\"col\">").Append(Html.E(page.T("access_log_who"))).Append("</th>")
            .Append("<th scope=\"col\">").Append(Html.E(page.T("access_log_what"))).Append("</th>")
            .Append("<th scope=\"col\">").Append(Html.E(page.T("access_log_why"))).Append("</th></tr></thead><tbody>");
        foreach (var e in entries.Where(e => e.Record is not null))
        {
            var r = e.Record!;
            body.Append("<tr data-access>")
                .Append("<td>").Append(Html.E(r.At.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture))).Append("</td>")
                .Append("<td data-client>").Append(Html.E(r.ClientId ?? r.Subject)).Append("</td>")
                .Append("<td>").Append(Html.E(r.Operation)).Append(' ').Append(Html.E(r.EntityId)).Append("</td>")
                .Append("<td>").Append(Html.E(r.EmergencyReason ?? r.Purpose)).Append("</td></tr>");
        }

        return page.Page("access_log_title", body.Append("</tbody></table>").ToString());
    }
}
