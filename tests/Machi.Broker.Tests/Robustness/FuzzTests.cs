using System.Net.Http.Headers;
using System.Text;
using CsCheck;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Robustness;

/// <summary>Arbitrary bodies, headers, paths and parameters never make the API answer 5xx or lose data.</summary>
public abstract class FuzzTests(Backend backend) : IAsyncLifetime
{
    private MachiServer _server = null!;

    public async Task InitializeAsync() => _server = await backend.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static readonly string[] Paths =
    [
        "/ngsi-ld/v1/entities", "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:fz", "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:fz/attrs",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:fz/attrs/speed", "/ngsi-ld/v1/entityOperations/create", "/ngsi-ld/v1/entityOperations/upsert",
        "/ngsi-ld/v1/entityOperations/update", "/ngsi-ld/v1/entityOperations/delete", "/ngsi-ld/v1/entityOperations/merge",
        "/ngsi-ld/v1/jsonldContexts", "/ngsi-ld/v1/jsonldContexts/x", "/ngsi-ld/v1/entities/%00", "/ngsi-ld/v1/entities/urn:a:%2F..%2F",
        "/ngsi-ld/v1/temporal/entities", "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:fz", "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:fz/attrs/speed",
    ];

    private static readonly string[] Queries =
    [
        "", "?type=Vehicle", "?options=keyValues,sysAttrs", "?limit=abc", "?limit=99999999999", "?offset=-3", "?count=maybe",
        "?lang=ja,en;q=x", "?attrs=,,", "?format=weird", "?id=not%20uri", "?datasetId=urn:d:1&deleteAll=true", "?options=noOverwrite",
        "?type=Vehicle&geometryProperty=location", "?type=((", "?q=speed>1",
        "?type=Vehicle&timerel=between&timeAt=2026-01-01T00:00:00Z&endTimeAt=2027-01-01T00:00:00Z&options=aggregatedValues&aggrMethods=sum,avg,stddev&aggrPeriodDuration=P1M",
        "?type=Vehicle&lastN=2&options=temporalValues", "?type=Vehicle&aggrPeriodDuration=PT0.0000001S&options=aggregatedValues&aggrMethods=totalCount",
    ];

    private static readonly string[] Fragments =
    [
        "{", "}", "[", "]", "\"id\"", "\"urn:ngsi-ld:Vehicle:fz\"", "\"type\"", "\"Vehicle\"", ":", ",", "\"value\"", "1e999", "-0", "null",
        "true", "\"Property\"", "\"Relationship\"", "\"object\"", "\"GeoProperty\"", "{\"type\":\"Point\",\"coordinates\":[1,2]}",
        "\"@context\"", "\"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld\"", "\"\\u0000\"", "\"\\ud800\"", "\"languageMap\"",
        "\"urn:ngsi-ld:null\"", "\"datasetId\"", "\"observedAt\"", "\"2026-13-45T99:99:99Z\"", " ", "\"\u65e5\u672c\"", "[[[[[[[[[[",
    ];

    private static readonly string[] MediaTypes =
        ["application/json", "application/ld+json", "application/merge-patch+json", "text/plain", "application/json; charset=utf-16", "*/*", "garbage/"];

    [Fact]
    public async Task Random_requests_never_get_a_5xx()
    {
        // Valid JSON shapes built from fragments and random bytes in any media type, to every route and method.
        var body = Gen.OneOf(
            Gen.Int[0, Fragments.Length - 1].Array[0, 40].Select(ix => string.Concat(ix.Select(i => Fragments[i]))),
            Gen.Byte.Array[0, 200].Select(b => Encoding.Latin1.GetString(b)),
            Gen.Const(NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:fz")),
            Gen.Const("[" + NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:fz") + ",{\"id\":3}]"));
        var request = Gen.Select(
            Gen.OneOfConst(HttpMethod.Get, HttpMethod.Post, HttpMethod.Patch, HttpMethod.Put, HttpMethod.Delete),
            Gen.OneOfConst(Paths), Gen.OneOfConst(Queries), body, Gen.OneOfConst(MediaTypes),
            Gen.OneOfConst("application/json", "application/ld+json", "application/geo+json", "text/html", "*/*;q=0", "nonsense"),
            Gen.OneOfConst("", "aizu", "bad tenant!", new string('t', 100)));
        var failures = new List<string>();
        var succeeded = 0;
        foreach (var (method, path, query, text, mediaType, accept, tenant) in request.Array[600].Single())
        {
            using var message = new HttpRequestMessage(method, path + query);
            if (method != HttpMethod.Get && method != HttpMethod.Delete)
            {
                message.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
                message.Content.Headers.TryAddWithoutValidation("Content-Type", mediaType);
            }

            message.Headers.TryAddWithoutValidation("Accept", accept);
            if (tenant.Length > 0)
            {
                message.Headers.TryAddWithoutValidation("NGSILD-Tenant", tenant);
            }

            if (text.Length % 3 == 0 && text.All(c => c is >= (char)0x20 and < (char)0x7f))
            {
                message.Headers.TryAddWithoutValidation("Link", "<" + text + ">; rel=\"http://www.w3.org/ns/json-ld#context\"");
            }

            var response = await _server.Client.SendAsync(message);
            succeeded += response.IsSuccessStatusCode ? 1 : 0;
            if ((int)response.StatusCode >= 500 && (int)response.StatusCode != 503)
            {
                failures.Add($"{method} {path}{query} [{mediaType}] {text} -> {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(5)));

        // The random requests must reach the real handlers, not only their error paths.
        Assert.True(succeeded > 0, "no random request succeeded");
    }

    [Fact]
    public async Task Rejected_writes_leave_stored_data_unchanged()
    {
        const string url = NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:keep?options=sysAttrs";
        await _server.Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:keep", 77));
        var stored = await _server.Client.GetStringAsync(url);
        var bad = Gen.Int[0, Fragments.Length - 1].Array[1, 30].Select(ix => string.Concat(ix.Select(i => Fragments[i])));
        foreach (var text in bad.Array[150].Single())
        {
            foreach (var path in new[] { "/attrs", "/attrs/speed", string.Empty })
            {
                using var patch = new HttpRequestMessage(HttpMethod.Patch, NgsiHttp.Entities + "/urn:ngsi-ld:Vehicle:keep" + path)
                {
                    Content = new StringContent("{\"speed\":" + text + "}", Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
                };
                var response = await _server.Client.SendAsync(patch);
                var status = (int)response.StatusCode;
                Assert.True(status < 500, $"PATCH {path} {{\"speed\":{text}}} -> {status} {await response.Content.ReadAsStringAsync()}");
                var now = await _server.Client.GetStringAsync(url);
                if (status >= 400)
                {
                    // A rejected write changes nothing, not even modifiedAt.
                    Assert.Equal(stored, now);
                }

                stored = now;
            }
        }
    }
}

public sealed class FuzzTestsOnSqlite() : FuzzTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class FuzzTestsOnPostgres(PostgresServer postgres) : FuzzTests(Backend.Postgres(postgres));
