using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;
using Machi.Snow.Live;
using Machi.Snow.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Machi.Snow.Map;

/// <summary>The public live map at <c>/snow</c> and what its script reads: the live stream, trails, "last plowed", towns.</summary>
internal static class MapEndpoints
{
    private static readonly int[] TrailHours = [1, 3, 6, 12, 24];
    internal static readonly HtmlEncoder Html = HtmlEncoder.Create(UnicodeRanges.All);
    private static readonly JsonSerializerOptions ScriptJson = new() { Encoder = JavaScriptEncoder.Create(UnicodeRanges.All) };
    private static readonly Lazy<byte[]> TownsJson = new(() => JsonSerializer.SerializeToUtf8Bytes(
        Towns.All.Select(t => new object[] { t.Name, t.Koaza, t.Lat, t.Lon })));

    public static void MapSnowMap(this IEndpointRouteBuilder app)
    {
        var snow = app.MapGroup("/snow").WithTags("Snowplow Navi");
        snow.MapGet("", Page).ExcludeFromDescription();
        snow.MapGet("/assets/{file}", Asset).ExcludeFromDescription();
        snow.MapGet("/live", Live).WithName("SnowLive").WithSummary("Plow positions as server-sent events (snapshot, then positions)");
        snow.MapGet("/api/vehicles", Vehicles).WithName("SnowVehicles").WithSummary("Every plow's latest position");
        snow.MapGet("/api/trails", Trails).WithName("SnowTrails").WithSummary("Each plow's track over the last N hours (1–24)");
        snow.MapGet("/api/last-plowed", LastPlowed).WithName("SnowLastPlowed")
            .WithSummary("When a plowing vehicle last passed within 30 m: by town name (q) or point (lat, lon)");
        snow.MapGet("/api/towns", (HttpContext http) => Results.Bytes(TownsJson.Value, "application/json")).WithName("SnowTowns")
            .WithSummary("The city's 町字/小字 with their points: [town, koaza, lat, lon]");
    }

    private static IResult Page(HttpContext http, IOptions<SnowOptions> options)
    {
        var lang = SnowTexts.Language(http);
        string T(string key) => Html.Encode(SnowTexts.T(key, lang));
        var o = options.Value;
        var config = JsonSerializer.Serialize(new
        {
            lang,
            bbox = new[] { o.West, o.South, o.East, o.North },
            tileUrl = o.TileUrl,
            tileAttribution = o.TileAttribution,
            radius = o.PassRadiusMetres,
            texts = SnowTexts.ForScript(lang),
        }, ScriptJson);
        var other = lang == "en" ? "ja" : "en";
        var hours = string.Concat(TrailHours.Select(h =>
            $"<option value=\"{h}\">{h} {T(h == 1 ? "hour" : "hours")}</option>"));
        var body = $$"""
            <!DOCTYPE html>
            <html lang="{{lang}}">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{{T("title")}} — Machi</title>
            <link rel="stylesheet" href="/snow/assets/snow.css">
            </head>
            <body>
            <header class="bar">
              <h1>{{T("title")}}</h1>
              <p class="sub">{{T("subtitle")}}</p>
              <nav><a href="?lang={{other}}" hreflang="{{other}}" lang="{{other}}" data-lang-switch>{{T("switch")}}</a>
              <a href="/snow/operator">{{T("operator")}}</a></nav>
            </header>
            <main class="layout">
              <section class="map-wrap" aria-label="{{T("map")}}">
                <svg id="map" role="application" tabindex="0" aria-label="{{T("map")}}" aria-describedby="map-help"></svg>
                <p id="map-help" class="visually-hidden">{{T("search-hint")}}</p>
                <div class="map-buttons">
                  <button type="button" id="zoom-in" aria-label="{{T("zoom-in")}}">+</button>
                  <button type="button" id="zoom-out" aria-label="{{T("zoom-out")}}">−</button>
                </div>
                <p class="status" role="status"><span id="live-status">{{T("connecting")}}</span> · <span id="plow-count">0</span> {{T("plows")}}</p>
                <p class="attribution"><span id="tile-attribution"></span> {{T("attribution")}}</p>
              </section>
              <aside class="panel">
                <section aria-labelledby="search-title">
                  <h2 id="search-title">{{T("search")}}</h2>
                  <form id="search-form" role="search">
                    <label for="search-input">{{T("search-label")}}</label>
                    <div class="row"><input id="search-input" name="q" type="search" autocomplete="off" required>
                    <button type="submit">{{T("search-button")}}</button></div>
                  </form>
                  <p class="hint">{{T("search-hint")}}</p>
                  <div id="search-results" aria-live="polite"></div>
                </section>
                <section aria-labelledby="legend-title">
                  <h2 id="legend-title">{{T("legend")}}</h2>
                  <ul class="legend">
                    <li><svg viewBox="-10 -10 20 20" aria-hidden="true"><path class="plow-shape plowing" d="M0,-8 L6,6 L0,3 L-6,6 Z"/></svg>{{T("plowing")}}</li>
                    <li><svg viewBox="-10 -10 20 20" aria-hidden="true"><path class="plow-shape salting" d="M0,-8 L6,6 L0,3 L-6,6 Z"/></svg>{{T("salting")}}</li>
                    <li><svg viewBox="-10 -10 20 20" aria-hidden="true"><path class="plow-shape travelling" d="M0,-8 L6,6 L0,3 L-6,6 Z"/></svg>{{T("travelling")}}</li>
                    <li><svg viewBox="-10 -10 20 20" aria-hidden="true"><circle class="sim-ring" r="8"/></svg>{{T("simulated")}}</li>
                  </ul>
                  <label for="trail-hours">{{T("trails")}}</label>
                  <select id="trail-hours"><option value="0">{{T("trails-none")}}</option>{{hours}}</select>
                  <label class="check"><input type="checkbox" id="tiles-toggle"> {{T("tiles")}}</label>
                </section>
              </aside>
            </main>
            <script type="application/json" id="snow-config">{{config}}</script>
            <script type="module" src="/snow/assets/snow.js"></script>
            </body>
            </html>
            """;
        return Results.Content(body, "text/html; charset=utf-8");
    }

    private static IResult Asset(string file)
    {
        var (name, type) = file switch
        {
            "snow.js" => ("Machi.Snow.Assets.snow.js", "text/javascript; charset=utf-8"),
            "snow.css" => ("Machi.Snow.Assets.snow.css", "text/css; charset=utf-8"),
            _ => (null, null),
        };
        if (name is null)
        {
            return Results.NotFound();
        }

        var stream = typeof(MapEndpoints).Assembly.GetManifestResourceStream(name)!;
        return Results.Stream(stream, type);
    }

    /// <summary>Server-sent events: a <c>snapshot</c> of every plow, then <c>positions</c> frames as they are ingested.</summary>
    private static async Task Live(HttpContext http, LiveHub hub)
    {
        http.Response.Headers.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        var viewer = hub.Join();
        try
        {
            var body = http.Response.Body;
            await body.WriteAsync("retry: 2000\n\n"u8.ToArray(), http.RequestAborted);
            await body.WriteAsync(hub.Snapshot(), http.RequestAborted);
            await body.FlushAsync(http.RequestAborted);
            // The hub's frames (positions, and a comment line when idle) until the viewer leaves or is dropped for
            // falling too far behind (the channel then completes).
            while (await viewer.Frames.WaitToReadAsync(http.RequestAborted))
            {
                while (viewer.Frames.TryRead(out var frame))
                {
                    await body.WriteAsync(frame, http.RequestAborted);
                }

                await body.FlushAsync(http.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        finally
        {
            hub.Leave(viewer);
        }
    }

    private static IResult Vehicles(LiveHub hub) => Results.Bytes(LiveHub.RenderArray(hub.Latest), "application/json");

    private static async Task<IResult> Trails(HttpContext http, ISnowStore store, TimeProvider time, int? hours)
    {
        var h = hours ?? 3;
        if (h is < 1 or > 24)
        {
            return TypedResults.Problem(detail: "hours must be 1–24.", statusCode: 400, title: "Bad hours");
        }

        var now = time.GetUtcNow();
        // At most one point per unit every h×10 s (3 h: 30 s), but every change of state is kept.
        var spacing = TimeSpan.FromSeconds(h * 10);
        var stream = new MemoryStream();
        await using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartArray();
            string? current = null;
            TrackFix? kept = null;
            TrackFix? seen = null;
            await foreach (var fix in store.TrackAsync(now.AddHours(-h), now.AddMinutes(1), http.RequestAborted))
            {
                if (fix.DeviceId != current)
                {
                    if (current is not null)
                    {
                        // A unit's trail always ends where it is now.
                        if (seen != kept)
                        {
                            WritePoint(json, seen!);
                        }

                        json.WriteEndArray();
                        json.WriteEndObject();
                    }

                    current = fix.DeviceId;
                    kept = null;
                    json.WriteStartObject();
                    json.WriteString("id", current);
                    json.WriteStartArray("points");
                }

                seen = fix;
                if (kept is not null && fix.State == kept.State && fix.Time - kept.Time < spacing)
                {
                    continue;
                }

                kept = fix;
                WritePoint(json, fix);
            }

            if (current is not null)
            {
                if (seen != kept)
                {
                    WritePoint(json, seen!);
                }

                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return Results.Bytes(stream.ToArray(), "application/json");
    }

    private static void WritePoint(Utf8JsonWriter json, TrackFix fix)
    {
        json.WriteStartArray();
        json.WriteNumberValue(Math.Round(fix.Lon, 6));
        json.WriteNumberValue(Math.Round(fix.Lat, 6));
        json.WriteNumberValue((int)fix.State);
        json.WriteNumberValue(fix.Time.ToUnixTimeMilliseconds());
        json.WriteEndArray();
    }

    private static async Task<IResult> LastPlowed(HttpContext http, ISnowStore store, IOptions<SnowOptions> options, string? q, string? lat, string? lon)
    {
        var radius = options.Value.PassRadiusMetres;
        var results = new List<object>();
        if (!string.IsNullOrWhiteSpace(q))
        {
            if (q.Length > 100)
            {
                return TypedResults.Problem(detail: "q is at most 100 characters.", statusCode: 400, title: "Bad query");
            }

            foreach (var town in Towns.Search(q, 20))
            {
                var pass = await store.LastPlowedAsync(town.Lat, town.Lon, radius, DateTimeOffset.UnixEpoch, http.RequestAborted);
                results.Add(Answer(town.FullName, town.Lat, town.Lon, pass));
            }

            return Results.Json(new { query = q, radius, results });
        }

        if (!double.TryParse(lat, NumberStyles.Float, CultureInfo.InvariantCulture, out var la) || !double.IsFinite(la) || la is < -90 or > 90
            || !double.TryParse(lon, NumberStyles.Float, CultureInfo.InvariantCulture, out var lo) || !double.IsFinite(lo) || lo is < -180 or > 180)
        {
            return TypedResults.Problem(detail: "Give q (a town name) or lat and lon (decimal degrees).", statusCode: 400, title: "Bad query");
        }

        var nearest = Towns.All.MinBy(t => Ingestion.Geo.Distance(la, lo, t.Lat, t.Lon));
        var found = await store.LastPlowedAsync(la, lo, radius, DateTimeOffset.UnixEpoch, http.RequestAborted);
        results.Add(Answer(nearest is null ? "" : nearest.FullName, la, lo, found));
        return Results.Json(new { lat = la, lon = lo, radius, results });
    }

    private static object Answer(string name, double lat, double lon, PlowPass? pass) => new
    {
        name,
        lat,
        lon,
        lastPlowed = pass?.Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        device = pass?.DeviceId,
        distance = pass is null ? (double?)null : Math.Round(pass.DistanceMetres, 1),
    };
}
