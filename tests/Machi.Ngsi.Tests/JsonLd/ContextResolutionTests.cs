using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

/// <summary>Resolving @context values: core URLs, remote references, caching and invalid contexts.</summary>
public sealed class ContextResolutionTests
{
    private const string VehicleUrl = "http://example.org/ngsi-ld/latest/vehicle.jsonld";
    private const string ParkingUrl = "http://example.org/ngsi-ld/latest/parking.jsonld";

    public static TheoryData<string> CoreUrls =>
    [
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.4.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.5.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.1.jsonld",
        "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
    ];

    [Theory]
    [MemberData(nameof(CoreUrls))]
    public async Task Every_core_context_url_resolves_to_the_core_context_without_a_fetch(string url)
    {
        var kit = new ContextKit();

        var fromLink = await kit.ResolveLinkAsync(url);
        var fromBody = await kit.ResolveAsync($"\"{url}\"");
        var inArray = await kit.ResolveAsync($"[\"{url}\"]");

        Assert.Same(LdContext.Core, fromLink);
        Assert.Same(LdContext.Core, fromBody);
        Assert.Same(LdContext.Core, inArray);
        Assert.Equal(0, kit.Loader.TotalCalls);
    }

    [Fact]
    public async Task A_user_context_listing_the_core_url_first_is_processed_without_a_fetch()
    {
        var kit = new ContextKit();

        var context = await kit.ResolveAsync("""
            [ "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
              { "Vehicle": "http://example.org/vehicle/Vehicle" } ]
            """);

        Assert.Equal("http://example.org/vehicle/Vehicle", context.ExpandTerm("Vehicle"));
        Assert.Equal(0, kit.Loader.TotalCalls);
    }

    [Fact]
    public async Task A_link_header_context_is_fetched_once_and_then_served_from_the_cache()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");

        var first = await kit.ResolveLinkAsync(VehicleUrl);
        var second = await kit.ResolveLinkAsync(VehicleUrl);
        var asBody = await kit.ResolveAsync($"\"{VehicleUrl}\"");

        Assert.Equal("http://example.org/vehicle/brandName", first.ExpandTerm("brandName"));
        Assert.Same(first, second);
        Assert.Same(first, asBody);
        Assert.Equal(1, kit.Loader.CallsFor(VehicleUrl));
        Assert.Equal(VehicleUrl, first.Value!.GetValue<string>());
        Assert.Equal($"\"{VehicleUrl}\"", first.ValueJson);
    }

    [Fact]
    public async Task Different_contexts_referencing_one_url_share_one_fetch()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");

        var a = await kit.ResolveAsync($$"""[ "{{VehicleUrl}}", { "a": "http://example.org/a" } ]""");
        var b = await kit.ResolveAsync($$"""[ "{{VehicleUrl}}", { "b": "http://example.org/b" } ]""");

        Assert.Equal("http://example.org/vehicle/brandName", a.ExpandTerm("brandName"));
        Assert.Equal("http://example.org/vehicle/brandName", b.ExpandTerm("brandName"));
        Assert.Equal(1, kit.Loader.CallsFor(VehicleUrl));
    }

    [Fact]
    public async Task Concurrent_requests_for_a_new_url_share_one_fetch()
    {
        var kit = new ContextKit();
        kit.Loader.Delay = TimeSpan.FromMilliseconds(100);
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");

        var contexts = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => kit.ResolveLinkAsync(VehicleUrl)));

        Assert.All(contexts, c => Assert.Equal("http://example.org/vehicle/brandName", c.ExpandTerm("brandName")));
        Assert.Equal(1, kit.Loader.CallsFor(VehicleUrl));
    }

    [Fact]
    public async Task Remote_contexts_may_reference_further_remote_contexts()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, $$"""[ "{{ParkingUrl}}", { "Vehicle": "http://example.org/vehicle/Vehicle" } ]""");
        kit.Loader.ServeContext(ParkingUrl, """{ "OffStreetParking": "http://example.org/parking/OffStreetParking" }""");

        var context = await kit.ResolveLinkAsync(VehicleUrl);

        Assert.Equal("http://example.org/parking/OffStreetParking", context.ExpandTerm("OffStreetParking"));
        Assert.Equal("http://example.org/vehicle/Vehicle", context.ExpandTerm("Vehicle"));
    }

    [Fact]
    public async Task Import_brings_in_a_remote_context_under_the_local_definitions()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(ParkingUrl, """
            { "OffStreetParking": "http://example.org/parking/OffStreetParking", "level": "http://example.org/parking/level" }
            """);

        var context = await kit.ResolveAsync($$"""{ "@import": "{{ParkingUrl}}", "level": "http://example.org/mine/level" }""");

        Assert.Equal("http://example.org/parking/OffStreetParking", context.ExpandTerm("OffStreetParking"));
        Assert.Equal("http://example.org/mine/level", context.ExpandTerm("level"));
    }

    [Fact]
    public async Task Contexts_referencing_each_other_end_in_a_clear_error()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, $"\"{ParkingUrl}\"");
        kit.Loader.ServeContext(ParkingUrl, $"\"{VehicleUrl}\"");

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveLinkAsync(VehicleUrl));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Contains("nest deeper", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_remote_context_is_LdContextNotAvailable()
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveLinkAsync(VehicleUrl));

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Equal(503, error.Status);
    }

    [Theory]
    [InlineData("not json at all", "not valid JSON")]
    [InlineData("[1, 2, 3]", "\"@context\" member")]
    [InlineData("""{ "Vehicle": "http://example.org/Vehicle" }""", "\"@context\" member")]
    public async Task A_remote_document_that_is_not_a_context_document_is_LdContextNotAvailable(
        string document, string reason)
    {
        var kit = new ContextKit();
        kit.Loader.Serve(VehicleUrl, document);

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveLinkAsync(VehicleUrl));

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Contains(reason, error.Detail, StringComparison.Ordinal);
        Assert.Contains(VehicleUrl, error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_invalid_remote_context_is_bad_request_data_naming_its_url()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "speed": 42 }""");

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveLinkAsync(VehicleUrl));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Contains(VehicleUrl, error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("relative/context.jsonld")]
    [InlineData("file:///etc/passwd")]
    [InlineData("ftp://example.org/context.jsonld")]
    [InlineData("urn:ngsi-ld:context")]
    public async Task Link_urls_that_are_not_absolute_http_urls_are_rejected_without_a_fetch(string url)
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveLinkAsync(url));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Equal(0, kit.Loader.TotalCalls);
    }

    [Theory]
    [InlineData("""{ "speed": 42 }""", "speed")]
    [InlineData("""{ "speed": { "@id": "http://example.org/speed", "@reverse": "http://example.org/s" } }""", "@reverse")]
    [InlineData("""{ "speed": { "@id": "http://example.org/speed", "@container": "@bag" } }""", "@bag")]
    [InlineData("""{ "speed": { "@id": "http://example.org/speed", "@type": 7 } }""", "@type")]
    [InlineData("""{ "speed": { "@id": "http://example.org/speed", "@protected": "yes" } }""", "@protected")]
    [InlineData("""{ "speed": { "@id": "http://example.org/speed", "color": "red" } }""", "color")]
    [InlineData("""{ "@vocab": 5 }""", "@vocab")]
    [InlineData("""{ "@vocab": "_:blank" }""", "@vocab")]
    [InlineData("""{ "@version": 1.0 }""", "@version")]
    [InlineData("""{ "@id": "http://example.org/id" }""", "@id")]
    [InlineData("""{ "": "http://example.org/empty" }""", "empty")]
    [InlineData("""{ "a": "b:x", "b": "a:y" }""", "cyclic")]
    [InlineData("""{ "ex:speed": "http://other.example/speed", "ex": "http://example.org/" }""", "ex:speed")]
    [InlineData("""[ [ { "a": "http://example.org/a" } ] ]""", "array")]
    [InlineData("""[ 42 ]""", "number")]
    public async Task Invalid_contexts_are_bad_request_data_saying_what_is_wrong(string context, string mentioned)
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveAsync(context));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Contains(mentioned, error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_context_that_is_neither_url_object_nor_array_is_rejected()
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => kit.Resolver.ResolveAsync(JsonValue.Create(42), CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
    }

    [Fact]
    public async Task A_protected_user_term_cannot_be_redefined_by_a_later_context()
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveAsync("""
            [ { "@protected": true, "speed": "http://example.org/a/speed" },
              { "speed": "http://example.org/b/speed" } ]
            """));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Contains("protected", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_protected_user_term_may_be_repeated_with_the_same_meaning()
    {
        var kit = new ContextKit();

        var context = await kit.ResolveAsync("""
            [ { "speed": { "@id": "http://example.org/a/speed", "@protected": true } },
              { "speed": "http://example.org/a/speed" } ]
            """);

        Assert.Equal("http://example.org/a/speed", context.ExpandTerm("speed"));
    }

    [Fact]
    public async Task Scoped_contexts_and_type_set_containers_are_accepted()
    {
        var kit = new ContextKit();

        var context = await kit.ResolveAsync("""
            {
              "@type": { "@container": "@set" },
              "address": { "@id": "https://schema.org/address", "@context": { "street": "https://schema.org/street" } },
              "@unknownKeyword": "ignored"
            }
            """);

        Assert.Equal("https://schema.org/address", context.ExpandTerm("address"));
    }

    [Fact]
    public async Task Resolved_contexts_are_cached_by_their_json_text()
    {
        var kit = new ContextKit();

        var a = await kit.ResolveAsync("""{ "speed": "http://example.org/speed" }""");
        var b = await kit.ResolveAsync("""{"speed":   "http://example.org/speed"}""");
        var c = await kit.ResolveAsync("""{ "speed": "http://example.org/other" }""");

        Assert.Same(a, b);
        Assert.NotSame(a, c);
    }

    [Fact]
    public async Task The_resolved_context_cache_stays_bounded()
    {
        var kit = new ContextKit(options: new LdContextOptions { ResolvedContextCacheSize = 10 });
        var first = await kit.ResolveAsync("""{ "t0": "http://example.org/0" }""");

        for (var i = 1; i < 50; i++)
        {
            await kit.ResolveAsync($$"""{ "t{{i}}": "http://example.org/{{i}}" }""");
        }

        var again = await kit.ResolveAsync("""{ "t0": "http://example.org/0" }""");
        Assert.NotSame(first, again);
        Assert.Equal("http://example.org/0", again.ExpandTerm("t0"));
    }
}
