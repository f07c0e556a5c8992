using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Machi.Snow.Tests.Infrastructure;

namespace Machi.Snow.Tests;

public sealed class NgsiLdIngestionTests
{
    [Fact]
    public async Task A_unit_may_report_as_an_NGSI_LD_update_of_its_own_Vehicle_with_its_token()
    {
        await using var server = await MachiServer.StartAsync();
        var token = await Plows.RegisterAsync(server, "ngsi-1");
        var observed = DateTimeOffset.UtcNow.AddSeconds(-2).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        var body = $$$"""
            {"location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [139.931, 37.492]}, "observedAt": "{{{observed}}}"},
             "speed": {"type": "Property", "value": 24.5, "unitCode": "KMH"}, "heading": {"type": "Property", "value": 180},
             "plowState": {"type": "Property", "value": "salting"}}
            """;

        async Task<HttpResponseMessage> PatchAsync(string id, string? bearer, string json)
        {
            using var request = new HttpRequestMessage(HttpMethod.Patch, $"snow/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:{id}/attrs")
            {
                Content = new StringContent(json, Encoding.UTF8, "application/json"),
            };
            if (bearer is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            }

            return await server.Anonymous.SendAsync(request);
        }

        using var ok = await PatchAsync("ngsi-1", token, body);
        using var wrongToken = await PatchAsync("ngsi-1", "nope", body);
        using var notJson = await PatchAsync("ngsi-1", token, "{");
        using var noLocation = await PatchAsync("ngsi-1", token, """{"speed": 3}""");

        Assert.Equal(HttpStatusCode.NoContent, ok.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongToken.StatusCode);
        Assert.Contains("invalid_token", await wrongToken.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, noLocation.StatusCode);
        var vehicle = await Plows.VehicleAsync(server.Client, "ngsi-1");
        Assert.Equal("salting", vehicle!["plowState"]!.GetValue<string>());
        Assert.Equal(24.5, vehicle["speed"]!.GetValue<double>(), 6);
        Assert.Equal(37.492, vehicle["location"]!["coordinates"]![1]!.GetValue<double>(), 6);
    }
}
