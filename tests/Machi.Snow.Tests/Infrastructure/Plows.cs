using System.Globalization;
using System.Text.Json.Nodes;
using Machi.Snow.Devices;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Snow.Tests.Infrastructure;

/// <summary>What a GPS unit and a test do against Snowplow Navi.</summary>
public static class Plows
{
    /// <summary>鶴ヶ城 (Tsuruga-jō), inside the city.</summary>
    public const double CastleLat = 37.4877;
    public const double CastleLon = 139.9298;

    /// <summary>Registers a unit on a running server and returns its token.</summary>
    public static Task<string> RegisterAsync(MachiServer server, string id, string? name = null) =>
        server.Services.GetRequiredService<DeviceRegistry>().RegisterAsync(id, name, simulated: false, CancellationToken.None);

    public static string OsmAndQuery(string id, string? token, double lat, double lon, DateTimeOffset? time = null, double? knots = null,
        double? bearing = null, string? plow = null)
    {
        var q = string.Create(CultureInfo.InvariantCulture, $"id={Uri.EscapeDataString(id)}&lat={lat:R}&lon={lon:R}");
        if (token is not null)
        {
            q += "&token=" + Uri.EscapeDataString(token);
        }

        if (time is { } t)
        {
            q += "&timestamp=" + t.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        }

        if (knots is { } k)
        {
            q += string.Create(CultureInfo.InvariantCulture, $"&speed={k:R}");
        }

        if (bearing is { } b)
        {
            q += string.Create(CultureInfo.InvariantCulture, $"&bearing={b:R}");
        }

        if (plow is not null)
        {
            q += "&plow=" + plow;
        }

        return q;
    }

    /// <summary>GET /snow/osmand?…; returns the status and, for a refusal, the reason.</summary>
    public static async Task<(int Status, string? Reason, string Body)> ReportAsync(HttpClient http, string query)
    {
        using var response = await http.GetAsync(new Uri("snow/osmand?" + query, UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        var reason = body.Length > 0 && body.TrimStart().StartsWith('{') ? JsonNode.Parse(body)?["reason"]?.GetValue<string>() : null;
        return ((int)response.StatusCode, reason, body);
    }

    public static async Task<JsonNode?> VehicleAsync(HttpClient http, string id)
    {
        using var response = await http.GetAsync(new Uri($"ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:{id}?options=keyValues", UriKind.Relative));
        return response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync()) : null;
    }
}
