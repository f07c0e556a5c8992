using System.Text;
using System.Text.Encodings.Web;
using System.Text.Unicode;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Machi.Trust.Pages;

/// <summary>
/// One request's page: its language (<c>?lang=en|ja</c>, remembered in a cookie, Japanese by default), and the small
/// HTML building blocks every account page shares — phone-first, labelled fields, antiforgery in every form.
/// </summary>
internal sealed class Html
{
    public const string LangCookie = "machi.lang";
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Create(UnicodeRanges.All);
    private readonly HttpContext _http;
    private readonly IAntiforgery _antiforgery;

    private Html(HttpContext http, IAntiforgery antiforgery, string lang)
    {
        _http = http;
        _antiforgery = antiforgery;
        Lang = lang;
    }

    public string Lang { get; }

    public static Html For(HttpContext http, IAntiforgery antiforgery)
    {
        var asked = http.Request.Query["lang"].ToString();
        string lang;
        if (asked is "ja" or "en")
        {
            lang = asked;
            http.Response.Cookies.Append(LangCookie, lang, new CookieOptions
            {
                MaxAge = TimeSpan.FromDays(365), SameSite = SameSiteMode.Lax, HttpOnly = true, IsEssential = true, Path = "/",
            });
        }
        else
        {
            lang = http.Request.Cookies[LangCookie] is "en" ? "en" : "ja";
        }

        return new Html(http, antiforgery, lang);
    }

    public string T(string key) => Texts.Get(key, Lang);

    public static string E(string? text) => Encoder.Encode(text ?? "");

    public IResult Page(string titleKey, string body, int status = StatusCodes.Status200OK)
    {
        var other = Lang == "en" ? "ja" : "en";
        var query = QueryHelpers.ParseQuery(_http.Request.QueryString.Value)
            .Where(p => p.Key != "lang")
            .Select(p => new KeyValuePair<string, string?>(p.Key, p.Value.ToString()))
            .Append(new KeyValuePair<string, string?>("lang", other));
        var switchUrl = QueryHelpers.AddQueryString(_http.Request.PathBase + _http.Request.Path, query);
        var html = $$"""
            <!DOCTYPE html>
            <html lang="{{Lang}}">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{{E(T(titleKey))}} — {{E(T("site"))}}</title>
            <style>
            body{font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;margin:0;background:#f4f6f8;color:#1b1f23;line-height:1.6}
            header{display:flex;justify-content:space-between;align-items:center;padding:.75rem 1rem;background:#1d4e89;color:#fff}
            header a{color:#fff}
            main{max-width:28rem;margin:1.5rem auto;padding:1.25rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
            h1{font-size:1.35rem;margin-top:0}
            label{display:block;margin:.9rem 0 .25rem;font-weight:600}
            input{box-sizing:border-box;width:100%;padding:.7rem;font-size:1rem;border:1px solid #9aa5b1;border-radius:.35rem}
            button{margin-top:1.2rem;width:100%;padding:.8rem;font-size:1rem;border:0;border-radius:.35rem;background:#1d4e89;color:#fff}
            .error{color:#a4161a;background:#fde8e8;padding:.6rem;border-radius:.35rem}
            .notice{color:#0b5d1e;background:#e6f4ea;padding:.6rem;border-radius:.35rem}
            code{word-break:break-all;font-size:1.05rem}
            nav a{display:block;margin-top:.8rem}
            </style>
            </head>
            <body>
            <header><strong>{{E(T("site"))}}</strong><a href="{{E(switchUrl)}}" hreflang="{{other}}">{{E(T("switch"))}}</a></header>
            <main>
            <h1>{{E(T(titleKey))}}</h1>
            {{body}}
            </main>
            </body>
            </html>
            """;
        _http.Response.Headers.CacheControl = "no-store";
        _http.Response.Headers["X-Frame-Options"] = "DENY";
        _http.Response.Headers.ContentSecurityPolicy = "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'";
        return Results.Content(html, "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    /// <summary>A POST form to <paramref name="action"/> (keeping <c>lang</c>) with its antiforgery token.</summary>
    public string Form(string action, string submitKey, params string[] fields)
    {
        var tokens = _antiforgery.GetAndStoreTokens(_http);
        var body = new StringBuilder();
        body.Append("<form method=\"post\" action=\"").Append(E(action)).Append("\">");
        body.Append(Hidden(tokens.FormFieldName, tokens.RequestToken));
        foreach (var field in fields)
        {
            body.Append(field);
        }

        body.Append("<button type=\"submit\">").Append(E(T(submitKey))).Append("</button></form>");
        return body.ToString();
    }

    public string Field(string name, string labelKey, string type, string autocomplete, string? value = null, string extra = "", bool required = true) =>
        $"<label for=\"{name}\">{E(T(labelKey))}</label>" +
        $"<input id=\"{name}\" name=\"{name}\" type=\"{type}\" autocomplete=\"{autocomplete}\" value=\"{E(value)}\"{(required ? " required" : "")} {extra}>";

    public static string Hidden(string name, string? value) => $"<input type=\"hidden\" name=\"{E(name)}\" value=\"{E(value)}\">";

    public string Error(string code, IEnumerable<string>? details = null)
    {
        var list = details?.ToList() ?? [];
        var items = list.Count == 0 ? "" : "<ul>" + string.Concat(list.Select(d => $"<li>{E(d)}</li>")) + "</ul>";
        return $"<div class=\"error\" role=\"alert\" data-error=\"{code}\">{E(T("error_" + code))}{items}</div>";
    }

    public string Notice(string code) => $"<p class=\"notice\" role=\"status\" data-notice=\"{code}\">{E(T(code))}</p>";

    public string Link(string href, string textKey) => $"<a href=\"{E(href)}\">{E(T(textKey))}</a>";
}
