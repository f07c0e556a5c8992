using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Unicode;
using Machi.Portal.Alerts;
using Machi.Portal.Storage;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Portal.Web;

/// <summary>
/// One portal request's page: its language (<c>?lang=ja|en</c>, remembered in the <c>machi.lang</c> cookie shared with
/// the account pages, Japanese by default), its viewer, and the one layout every portal page uses — header with the
/// menu, the emergency-alert region kept live by server-sent events, the main content, the footer.
/// </summary>
internal sealed class PortalPage
{
    public const string LangCookie = "machi.lang";
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Create(UnicodeRanges.All);
    private readonly HttpContext _http;

    private PortalPage(HttpContext http, string lang, Viewer viewer, IPortalStore store)
    {
        _http = http;
        Lang = lang;
        Viewer = viewer;
        Store = store;
    }

    public string Lang { get; }

    public Viewer Viewer { get; }

    public IPortalStore Store { get; }

    public HttpContext Http => _http;

    public CancellationToken Aborted => _http.RequestAborted;

    public static async Task<PortalPage> ForAsync(HttpContext http)
    {
        var lang = LanguageOf(http);
        var viewer = await Viewer.OfAsync(http);
        return new PortalPage(http, lang, viewer, http.RequestServices.GetRequiredService<IPortalStore>());
    }

    /// <summary>The request's language; a <c>?lang=</c> switch is remembered for a year.</summary>
    public static string LanguageOf(HttpContext http)
    {
        var asked = http.Request.Query["lang"].ToString();
        if (asked is "ja" or "en")
        {
            http.Response.Cookies.Append(LangCookie, asked, new CookieOptions
            {
                MaxAge = TimeSpan.FromDays(365), SameSite = SameSiteMode.Lax, HttpOnly = true, IsEssential = true, Path = "/",
            });
            return asked;
        }

        return http.Request.Cookies[LangCookie] is "en" ? "en" : "ja";
    }

    public string T(string key) => Texts.Get(key, Lang);

    public string T(string key, params object?[] args) => string.Format(CultureInfo.InvariantCulture, T(key), args);

    public static string E(string? text) => Encoder.Encode(text ?? "");

    /// <summary>A time as people in the city read it (JST; Japan has no daylight saving).</summary>
    public static string When(DateTimeOffset at) => at.ToOffset(City.Offset).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);

    public string Status(string status) => $"<span class=\"status status-{E(status)}\" data-status=\"{E(status)}\">{E(T("status_" + status))}</span>";

    /// <summary>Where to sign in and come back to this page.</summary>
    public string LoginUrl => QueryHelpers.AddQueryString("/account/login", "ReturnUrl", _http.Request.Path + _http.Request.QueryString);

    public IResult LoginRedirect() => Results.Redirect(LoginUrl);

    /// <summary>The page for a signed-in account that may not see this (403), or anonymous (sent to sign in).</summary>
    public async Task<IResult> RefuseAsync() =>
        Viewer.IsSignedIn
            ? await RenderAsync("forbidden_title", $"<p data-error=\"forbidden\">{E(T("forbidden_body"))}</p>", StatusCodes.Status403Forbidden)
            : LoginRedirect();

    public Task<IResult> NotFoundAsync() =>
        RenderAsync("not_found_title", $"<p data-error=\"not_found\">{E(T("not_found_body"))}</p>", StatusCodes.Status404NotFound);

    /// <summary>The antiforgery field every POST form carries.</summary>
    public string Antiforgery()
    {
        var antiforgery = _http.RequestServices.GetRequiredService<IAntiforgery>();
        var tokens = antiforgery.GetAndStoreTokens(_http);
        return $"<input type=\"hidden\" name=\"{E(tokens.FormFieldName)}\" value=\"{E(tokens.RequestToken)}\">";
    }

    public string Form(string action, string content, string submitKey, bool multipart = false, string? buttonClass = null) =>
        $"<form method=\"post\" action=\"{E(action)}\"{(multipart ? " enctype=\"multipart/form-data\"" : "")}>{Antiforgery()}{content}"
        + $"<button type=\"submit\"{(buttonClass is null ? "" : $" class=\"{buttonClass}\"")}>{E(T(submitKey))}</button></form>";

    /// <summary>Reads a posted form after checking its antiforgery token; null when the token is missing or wrong.</summary>
    public async Task<IFormCollection?> ReadFormAsync()
    {
        if (!_http.Request.HasFormContentType)
        {
            return null;
        }

        try
        {
            await _http.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(_http);
            return await _http.Request.ReadFormAsync(_http.RequestAborted);
        }
        catch (AntiforgeryValidationException)
        {
            return null;
        }
    }

    public Task<IResult> FormExpiredAsync() =>
        RenderAsync("form_expired_title", $"<p class=\"error\" role=\"alert\" data-error=\"form_expired\">{E(T("form_expired_body"))}</p>", StatusCodes.Status400BadRequest);

    public string Notice(string code) => $"<p class=\"notice\" role=\"status\" data-notice=\"{E(code)}\">{E(T(code))}</p>";

    public async Task<IResult> RenderAsync(string titleKey, string body, int status = StatusCodes.Status200OK) =>
        await RenderRawAsync(T(titleKey), body, status);

    public async Task<IResult> RenderRawAsync(string title, string body, int status = StatusCodes.Status200OK)
    {
        var alerts = await Store.ActiveAlertsAsync(Aborted);
        var district = Viewer.IsSignedIn ? (await Store.GetProfileAsync(Viewer.UserId!, Aborted))?.District : null;
        var unread = Viewer.IsSignedIn ? await Store.UnreadNotificationsAsync(Viewer.UserId!, Aborted) : 0;
        var other = Lang == "en" ? "ja" : "en";
        var html = new StringBuilder(8192);
        html.Append($$"""
            <!DOCTYPE html>
            <html lang="{{Lang}}">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{{E(title)}} — {{E(T("site"))}}</title>
            <link rel="stylesheet" href="/portal/portal.css">
            <script type="module" src="/portal/live.js"></script>
            </head>
            <body>
            <a class="skip" href="#main">{{E(T("skip"))}}</a>
            <header class="site">
            <div class="bar"><a class="brand" href="/">{{E(T("site"))}}</a>
            <a class="lang" href="{{E(SwitchUrl(other))}}" hreflang="{{other}}" lang="{{other}}" data-lang-switch>{{E(T("switch"))}}</a></div>
            <nav aria-label="{{E(T("menu"))}}"><ul>
            """);
        Item(html, "/", "nav_home");
        Item(html, "/portal/procedures", "nav_procedures");
        if (Viewer.IsSignedIn)
        {
            Item(html, "/portal/applications", "nav_applications");
            html.Append("<li><a href=\"/portal/notifications\"").Append(Current("/portal/notifications")).Append('>').Append(E(T("nav_notifications")));
            if (unread > 0)
            {
                html.Append(" <span class=\"count\" data-unread=\"").Append(unread).Append("\">").Append(E(T("unread", unread))).Append("</span>");
            }

            html.Append("</a></li>");
            Item(html, "/portal/profile", "nav_profile");
            Item(html, "/account/consents", "nav_consents");
            Item(html, "/account/access-log", "nav_access_log");
            if (Viewer.IsStaff)
            {
                Item(html, "/portal/staff", "nav_staff");
            }

            Item(html, "/account", "nav_account");
            html.Append("<li><form method=\"post\" action=\"/account/logout\" class=\"inline\">").Append(Antiforgery())
                .Append("<button type=\"submit\" class=\"link\">").Append(E(T("logout"))).Append("</button></form></li>");
        }
        else
        {
            html.Append("<li><a href=\"").Append(E(LoginUrl)).Append("\" data-login>").Append(E(T("login"))).Append("</a></li>");
        }

        html.Append("</ul></nav></header>\n");
        html.Append("<div id=\"alerts\" class=\"alerts\" aria-live=\"assertive\">")
            .Append(AlertBanner.Render(alerts, Lang, district))
            .Append("</div>\n");
        html.Append("<main id=\"main\" tabindex=\"-1\">\n<h1>").Append(E(title)).Append("</h1>\n").Append(body).Append("\n</main>\n");
        html.Append($$"""
            <footer>
            <p>{{E(T("footer_about"))}}</p>
            <ul class="dev"><li><a href="/docs">{{E(T("footer_docs"))}}</a></li><li><a href="/ngsi-ld/v1/entities">NGSI-LD</a></li><li><a href="/health">{{E(T("footer_health"))}}</a></li><li><a href="/metrics">{{E(T("footer_metrics"))}}</a></li></ul>
            <p class="small">{{E(T("footer_attribution"))}}</p>
            </footer>
            </body>
            </html>
            """);
        _http.Response.Headers.CacheControl = "no-store";
        _http.Response.Headers["X-Frame-Options"] = "DENY";
        _http.Response.Headers["X-Content-Type-Options"] = "nosniff";
        _http.Response.Headers["Referrer-Policy"] = "same-origin";
        _http.Response.Headers.ContentSecurityPolicy =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";
        return Results.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    private void Item(StringBuilder html, string href, string key) =>
        html.Append("<li><a href=\"").Append(href).Append('"').Append(Current(href)).Append('>').Append(E(T(key))).Append("</a></li>");

    private string Current(string href) =>
        (href == "/" ? _http.Request.Path == "/" : _http.Request.Path.StartsWithSegments(href)) ? " aria-current=\"page\"" : "";

    private string SwitchUrl(string lang)
    {
        var query = QueryHelpers.ParseQuery(_http.Request.QueryString.Value)
            .Where(p => p.Key != "lang")
            .Select(p => new KeyValuePair<string, string?>(p.Key, p.Value.ToString()))
            .Append(new KeyValuePair<string, string?>("lang", lang));
        return QueryHelpers.AddQueryString(_http.Request.PathBase + _http.Request.Path, query);
    }
}

/// <summary>The city's clock.</summary>
internal static class City
{
    /// <summary>Japan Standard Time, UTC+9 all year.</summary>
    public static readonly TimeSpan Offset = TimeSpan.FromHours(9);

    public static DateOnly Today(TimeProvider time) => DateOnly.FromDateTime(time.GetUtcNow().ToOffset(Offset).DateTime);
}
