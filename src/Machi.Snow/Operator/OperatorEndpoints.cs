using System.Globalization;
using System.Text;
using Machi.Snow.Devices;
using Machi.Snow.Ingestion;
using Machi.Snow.Map;
using Machi.Snow.Storage;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Snow.Operator;

/// <summary>
/// The operator view for city staff (role <c>staff</c>, signed in with the Machi login): units not reporting, coverage
/// per district for the current snowfall event, a day's tracks as CSV, unit registration, rejection counts.
/// </summary>
internal static class OperatorEndpoints
{
    public const string StaffRole = "staff";

    /// <summary>Japan has one time zone and no daylight saving: days and times on these pages are JST.</summary>
    private static readonly TimeSpan Jst = TimeSpan.FromHours(9);

    public static void MapSnowOperator(this IEndpointRouteBuilder app)
    {
        var staff = app.MapGroup("/snow/operator").WithTags("Snowplow Navi (staff)").ExcludeFromDescription()
            .RequireAuthorization(policy => policy.AddAuthenticationSchemes(IdentityConstants.ApplicationScheme).RequireRole(StaffRole));
        staff.MapGet("", Page);
        staff.MapGet("/tracks.csv", TracksCsv);
        staff.MapPost("/devices", RegisterDevice).DisableAntiforgery();
        staff.MapPost("/events", StartEvent).DisableAntiforgery();
    }

    private static async Task<IResult> Page(HttpContext http, IAntiforgery antiforgery, DeviceRegistry devices, SnowIngestion ingestion,
        ISnowStore store, IOptions<SnowOptions> options, TimeProvider time, int? stale)
    {
        var html = await RenderAsync(http, antiforgery, devices, ingestion, store, options.Value, time, stale, notice: null);
        return Results.Content(html, "text/html; charset=utf-8");
    }

    private static async Task<string> RenderAsync(HttpContext http, IAntiforgery antiforgery, DeviceRegistry devices, SnowIngestion ingestion,
        ISnowStore store, SnowOptions options, TimeProvider time, int? staleMinutes, string? notice)
    {
        var lang = SnowTexts.Language(http);
        string T(string key) => MapEndpoints.Html.Encode(SnowTexts.T(key, lang));
        static string E(string? text) => MapEndpoints.Html.Encode(text ?? "");
        var now = time.GetUtcNow();
        var tokens = antiforgery.GetAndStoreTokens(http);
        var hidden = $"<input type=\"hidden\" name=\"{E(tokens.FormFieldName)}\" value=\"{E(tokens.RequestToken)}\">";
        var minutes = Math.Clamp(staleMinutes ?? (int)options.StaleAfter.TotalMinutes, 1, 24 * 60);
        var ct = http.RequestAborted;

        var body = new StringBuilder();
        if (notice is not null)
        {
            body.Append(CultureInfo.InvariantCulture, $"<div class=\"notice\" role=\"status\" data-notice>{notice}</div>");
        }

        // Units not reporting.
        var all = (await store.DevicesAsync(ct)).ToList();
        var staleUnits = all
            .Select(d => (Device: d, Fix: ingestion.LastFix(d.Id)))
            .Where(x => x.Fix is null || now - x.Fix.Time > TimeSpan.FromMinutes(minutes))
            .OrderBy(x => x.Fix?.Time ?? DateTimeOffset.MinValue)
            .ToList();
        body.Append(CultureInfo.InvariantCulture, $"""
            <section aria-labelledby="stale-title"><h2 id="stale-title">{T("stale")}</h2>
            <form method="get" class="row"><label for="stale">{T("stale-minutes")}</label>
            <input id="stale" name="stale" type="number" min="1" max="1440" value="{minutes}"> <button type="submit">{T("show")}</button></form>
            """);
        if (staleUnits.Count == 0)
        {
            body.Append(CultureInfo.InvariantCulture, $"<p data-stale-none>{T("stale-none")}</p>");
        }
        else
        {
            body.Append(CultureInfo.InvariantCulture, $"<table data-stale><thead><tr><th scope=\"col\">{T("unit")}</th><th scope=\"col\">{T("last-report")}</th><th scope=\"col\">{T("state")}</th></tr></thead><tbody>");
            foreach (var (device, fix) in staleUnits)
            {
                body.Append(CultureInfo.InvariantCulture, $"<tr data-unit=\"{E(device.Id)}\"><td>{E(device.Name)} ({E(device.Id)})</td><td>{(fix is null ? T("never") : Local(fix.Time))}</td><td>{(fix is null ? "" : T(PlowStates.Name(fix.State)))}</td></tr>");
            }

            body.Append("</tbody></table>");
        }

        body.Append("</section>");

        // Coverage per district (町字) since the snowfall event began.
        var since = await store.CurrentEventStartAsync(ct) ?? now.AddHours(-24);
        var coverage = new List<(string District, int Points, int Passed)>();
        foreach (var district in Towns.All.GroupBy(t => t.Name))
        {
            var passed = 0;
            var points = 0;
            foreach (var town in district)
            {
                points++;
                if (await store.LastPlowedAsync(town.Lat, town.Lon, options.PassRadiusMetres, since, ct) is not null)
                {
                    passed++;
                }
            }

            coverage.Add((district.Key, points, passed));
        }

        var totalPoints = coverage.Sum(c => c.Points);
        var totalPassed = coverage.Sum(c => c.Passed);
        body.Append(CultureInfo.InvariantCulture, $"""
            <section aria-labelledby="coverage-title"><h2 id="coverage-title">{T("coverage")}</h2>
            <p>{T("event-since")}: <time data-event-since>{Local(since)}</time> · {T("passed")} {totalPassed} / {totalPoints}
            ({Percent(totalPassed, totalPoints)})</p>
            <form method="post" action="/snow/operator/events">{hidden}<button type="submit">{T("event-start")}</button></form>
            <table data-coverage><thead><tr><th scope="col">{T("district")}</th><th scope="col">{T("points")}</th><th scope="col">{T("passed")}</th><th scope="col">{T("share")}</th></tr></thead><tbody>
            """);
        foreach (var (district, points, passed) in coverage.OrderBy(c => (double)c.Passed / c.Points).ThenBy(c => c.District, StringComparer.Ordinal))
        {
            body.Append(CultureInfo.InvariantCulture, $"<tr data-district=\"{E(district)}\"><td>{E(district)}</td><td>{points}</td><td>{passed}</td><td>{Percent(passed, points)}</td></tr>");
        }

        body.Append("</tbody></table></section>");

        // CSV export.
        var today = (now + Jst).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        body.Append(CultureInfo.InvariantCulture, $"""
            <section aria-labelledby="export-title"><h2 id="export-title">{T("export")}</h2>
            <form method="get" action="/snow/operator/tracks.csv" class="row"><label for="day">{T("day")}</label>
            <input id="day" name="day" type="date" value="{today}" required> <button type="submit">{T("download")}</button></form></section>
            """);

        // Registration, units, rejections.
        body.Append(CultureInfo.InvariantCulture, $"""
            <section aria-labelledby="devices-title"><h2 id="devices-title">{T("devices")}</h2>
            <form method="post" action="/snow/operator/devices">{hidden}
            <label for="device-id">{T("device-id")}</label><input id="device-id" name="id" required maxlength="64" pattern="[A-Za-z0-9._\-]+">
            <label for="device-name">{T("device-name")}</label><input id="device-name" name="name" maxlength="100">
            <button type="submit">{T("register")}</button></form>
            <h3>{T("units")} ({all.Count})</h3><ul class="units">
            """);
        foreach (var device in all.Take(500))
        {
            body.Append(CultureInfo.InvariantCulture, $"<li>{E(device.Name)} <code>{E(device.Id)}</code>{(device.Simulated ? " (" + T("simulated") + ")" : "")}</li>");
        }

        body.Append("</ul></section>");
        var rejections = await store.RejectionCountsAsync(ct);
        body.Append(CultureInfo.InvariantCulture, $"<section aria-labelledby=\"rej-title\"><h2 id=\"rej-title\">{T("rejections")}</h2><table data-rejections><thead><tr><th scope=\"col\">{T("reason")}</th><th scope=\"col\">{T("count")}</th></tr></thead><tbody>");
        foreach (var reason in RejectReasons.All.Select(RejectReasons.Code))
        {
            body.Append(CultureInfo.InvariantCulture, $"<tr data-reason=\"{reason}\"><td><code>{reason}</code></td><td>{rejections.GetValueOrDefault(reason)}</td></tr>");
        }

        body.Append("</tbody></table></section>");
        var other = lang == "en" ? "ja" : "en";
        return $"""
            <!DOCTYPE html>
            <html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{T("operator")} — {T("title")}</title><link rel="stylesheet" href="/snow/assets/snow.css"></head>
            <body class="operator"><header class="bar"><h1>{T("title")} · {T("operator")}</h1>
            <nav><a href="?lang={other}" lang="{other}" hreflang="{other}">{T("switch")}</a> <a href="/snow">{T("back-map")}</a></nav></header>
            <main class="page">{body}</main></body></html>
            """;

        static string Local(DateTimeOffset t) => (t.ToUniversalTime() + Jst).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " JST";

        static string Percent(int part, int whole) => whole == 0 ? "—" : ((double)part / whole).ToString("P0", CultureInfo.InvariantCulture);
    }

    private static async Task<IResult> RegisterDevice(HttpContext http, IAntiforgery antiforgery, DeviceRegistry devices, SnowIngestion ingestion,
        ISnowStore store, IOptions<SnowOptions> options, TimeProvider time)
    {
        if (await ValidAsync(http, antiforgery) is { } invalid)
        {
            return invalid;
        }

        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var id = form["id"].ToString().Trim();
        var lang = SnowTexts.Language(http);
        string notice;
        if (!OsmAndParser.IsDeviceId(id))
        {
            notice = MapEndpoints.Html.Encode(lang == "en" ? "A unit id is 1–64 letters, digits, '.', '_' or '-'." : "端末IDは英数字と . _ - の1〜64文字です。");
            return Results.Content(await RenderAsync(http, antiforgery, devices, ingestion, store, options.Value, time, null, notice), "text/html; charset=utf-8", statusCode: 400);
        }

        var token = await devices.RegisterAsync(id, form["name"].ToString(), simulated: false, http.RequestAborted);
        notice = $"<p>{MapEndpoints.Html.Encode(SnowTexts.T("token-once", lang))}</p><p><code>{MapEndpoints.Html.Encode(id)}</code>: <code data-token>{MapEndpoints.Html.Encode(token)}</code></p>";
        return Results.Content(await RenderAsync(http, antiforgery, devices, ingestion, store, options.Value, time, null, notice), "text/html; charset=utf-8");
    }

    private static async Task<IResult> StartEvent(HttpContext http, IAntiforgery antiforgery, ISnowStore store, TimeProvider time)
    {
        if (await ValidAsync(http, antiforgery) is { } invalid)
        {
            return invalid;
        }

        await store.StartEventAsync(time.GetUtcNow(), null, http.RequestAborted);
        return Results.Redirect("/snow/operator");
    }

    private static async Task<IResult?> ValidAsync(HttpContext http, IAntiforgery antiforgery)
    {
        try
        {
            await antiforgery.ValidateRequestAsync(http);
            return null;
        }
        catch (AntiforgeryValidationException)
        {
            return TypedResults.Problem(detail: "The form expired or did not come from this site; reload the page and try again.", statusCode: 400, title: "Invalid form");
        }
    }

    /// <summary>Every position of one day (JST) as CSV, by unit then time.</summary>
    private static async Task<IResult> TracksCsv(HttpContext http, ISnowStore store, string? day)
    {
        if (!DateOnly.TryParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            return TypedResults.Problem(detail: "day must be a date like 2026-01-15.", statusCode: 400, title: "Bad day");
        }

        var from = new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), Jst);
        http.Response.ContentType = "text/csv; charset=utf-8";
        http.Response.Headers.ContentDisposition = $"attachment; filename=\"snowplow-tracks-{date:yyyy-MM-dd}.csv\"";
        await using var writer = new StreamWriter(http.Response.Body, new UTF8Encoding(false));
        await writer.WriteAsync("device_id,time_utc,time_jst,lat,lon,speed_kmh,heading_deg,state,source\n");
        await foreach (var fix in store.TrackAsync(from, from.AddDays(1), http.RequestAborted))
        {
            await writer.WriteAsync(string.Create(CultureInfo.InvariantCulture,
                $"{fix.DeviceId},{fix.Time.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ},{fix.Time.ToOffset(Jst):yyyy-MM-ddTHH:mm:ss.fffzzz},{fix.Lat:0.000000},{fix.Lon:0.000000},{fix.SpeedKmh:0.#},{fix.Heading:0.#},{PlowStates.Name(fix.State)},{fix.Source}\n"));
        }

        return Results.Empty;
    }
}
