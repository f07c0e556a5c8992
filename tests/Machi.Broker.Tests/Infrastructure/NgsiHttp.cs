using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>Small helpers for talking NGSI-LD over HTTP in tests.</summary>
public static class NgsiHttp
{
    public const string Entities = "/ngsi-ld/v1/entities";

    public static StringContent Json(string json, string mediaType = "application/json") =>
        new(json, Encoding.UTF8, new MediaTypeHeaderValue(mediaType));

    public static Task<HttpResponseMessage> PostJson(this HttpClient client, string path, string json, string mediaType = "application/json") =>
        client.PostAsync(path, Json(json, mediaType));

    public static Task<HttpResponseMessage> PatchJson(this HttpClient client, string path, string json, string mediaType = "application/json") =>
        client.PatchAsync(path, Json(json, mediaType));

    public static Task<HttpResponseMessage> PutJson(this HttpClient client, string path, string json) =>
        client.PutAsync(path, Json(json));

    public static async Task<JsonNode> ReadJson(this HttpResponseMessage response) =>
        JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

    /// <summary>Asserts a ProblemDetails of the given NGSI-LD error type and returns its detail.</summary>
    public static async Task<string> AssertProblem(this HttpResponseMessage response, int status, string errorType)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {body}");
        var problem = JsonNode.Parse(body)!;
        Assert.Equal("https://uri.etsi.org/ngsi-ld/errors/" + errorType, problem["type"]!.GetValue<string>());
        Assert.Equal(status, problem["status"]!.GetValue<int>());
        return problem["detail"]!.GetValue<string>();
    }

    public static string Vehicle(string id, double speed = 10) => $$$"""
        {"id":"{{{id}}}","type":"Vehicle",
         "speed":{"type":"Property","value":{{{speed.ToString(System.Globalization.CultureInfo.InvariantCulture)}}},"unitCode":"KMH","observedAt":"2026-11-25T08:00:00Z"},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9299,37.4947]}},
         "category":{"type":"VocabProperty","vocab":"municipalServices"},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"除雪車1号","en":"Snowplow 1"}},
         "operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"}}
        """;
}
