using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

/// <summary>The model behind /jsonldContexts: hosting, implicit creation, caching, listing and deletion.</summary>
public sealed class ContextRegistryTests
{
    private const string BaseUrl = ContextKit.BaseUrl;
    private const string VehicleUrl = "http://example.org/ngsi-ld/latest/vehicle.jsonld";

    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task A_posted_context_is_hosted_under_a_new_local_id_and_served_back()
    {
        var kit = new ContextKit();

        var entry = await kit.Registry.AddHostedAsync(
            JsonNode.Parse("""{ "@context": { "Vehicle": "http://example.org/vehicle/Vehicle" } }"""), BaseUrl, None);

        Assert.Equal("hosted-1", entry.LocalId);
        Assert.Equal($"{BaseUrl}/ngsi-ld/v1/jsonldContexts/hosted-1", entry.Url);
        Assert.Equal(ContextKind.Hosted, entry.Kind);
        Assert.Equal(kit.Clock.Now, entry.CreatedAt);
        var served = await kit.Registry.GetAsync("hosted-1", BaseUrl, None);
        Assert.Equal(
            "http://example.org/vehicle/Vehicle",
            (string?)JsonNode.Parse(served.DocumentJson)!["@context"]!["Vehicle"]);
    }

    [Fact]
    public async Task A_link_to_a_hosted_context_resolves_locally_on_any_host_name()
    {
        var kit = new ContextKit();
        await kit.Registry.AddHostedAsync(
            JsonNode.Parse("""{ "@context": { "Vehicle": "http://example.org/vehicle/Vehicle" } }"""), BaseUrl, None);

        var viaProxy = await kit.ResolveLinkAsync("https://city.example/ngsi-ld/v1/jsonldContexts/hosted-1");
        var direct = await kit.ResolveLinkAsync($"{BaseUrl}/ngsi-ld/v1/jsonldContexts/hosted-1");

        Assert.Equal("http://example.org/vehicle/Vehicle", viaProxy.ExpandTerm("Vehicle"));
        Assert.Equal("http://example.org/vehicle/Vehicle", direct.ExpandTerm("Vehicle"));
        Assert.Equal(0, kit.Loader.TotalCalls);
    }

    [Theory]
    [InlineData("""[ "not", "an object" ]""", NgsiErrorType.InvalidRequest)]
    [InlineData("""{ "context": {} }""", NgsiErrorType.InvalidRequest)]
    [InlineData("""{ "@context": null }""", NgsiErrorType.BadRequestData)]
    [InlineData("""{ "@context": 3 }""", NgsiErrorType.BadRequestData)]
    [InlineData("""{ "@context": { "speed": { "@reverse": "http://example.org/s" } } }""", NgsiErrorType.BadRequestData)]
    public async Task Posting_something_that_is_not_a_valid_context_document_is_rejected(
        string body, NgsiErrorType expected)
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => kit.Registry.AddHostedAsync(JsonNode.Parse(body), BaseUrl, None).AsTask());

        Assert.Equal(expected, error.Type);
        Assert.Empty(await kit.Store.ListAsync(None));
    }

    [Fact]
    public async Task Posting_a_context_that_references_an_unreachable_url_is_LdContextNotAvailable()
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.Registry.AddHostedAsync(
            JsonNode.Parse($$"""{ "@context": [ "{{VehicleUrl}}", { "a": "http://example.org/a" } ] }"""),
            BaseUrl,
            None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
    }

    [Fact]
    public async Task Posting_a_context_that_references_a_url_caches_that_url()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");

        await kit.Registry.AddHostedAsync(JsonNode.Parse($$"""{ "@context": [ "{{VehicleUrl}}" ] }"""), BaseUrl, None);

        var cached = await kit.Registry.ListAsync(ContextKind.Cached, BaseUrl, None);
        Assert.Contains(cached, e => e.Url == VehicleUrl);
    }

    [Fact]
    public async Task An_inline_context_gets_a_link_url_to_an_implicitly_created_copy()
    {
        var kit = new ContextKit();
        var context = await kit.ResolveAsync("""{ "Vehicle": "http://example.org/vehicle/Vehicle" }""");

        var link = await kit.Registry.GetLinkUrlAsync(context, BaseUrl, None);

        var localId = link[(BaseUrl + ContextRegistry.ContextsPath).Length..];
        var entry = await kit.Registry.GetAsync(localId, BaseUrl, None);
        Assert.Equal(ContextKind.ImplicitlyCreated, entry.Kind);
        Assert.Equal(link, entry.Url);
        var fromLink = await kit.ResolveLinkAsync(link);
        Assert.Equal("http://example.org/vehicle/Vehicle", fromLink.ExpandTerm("Vehicle"));
        Assert.Equal(0, kit.Loader.TotalCalls);
    }

    [Fact]
    public async Task The_same_inline_context_is_created_implicitly_once()
    {
        var kit = new ContextKit();
        var a = await kit.ResolveAsync("""{ "Vehicle": "http://example.org/vehicle/Vehicle" }""");
        var asArray = await kit.ResolveAsync("""[ { "Vehicle": "http://example.org/vehicle/Vehicle" } ]""");
        var other = await kit.ResolveAsync("""{ "Vehicle": "http://example.org/other/Vehicle" }""");

        var idA = await kit.Registry.HostImplicitlyAsync(a, None);
        var idAgain = await kit.Registry.HostImplicitlyAsync(a, None);
        var idOther = await kit.Registry.HostImplicitlyAsync(other, None);

        Assert.Equal(idA, idAgain);
        Assert.NotEqual(idA, idOther);
        Assert.NotEqual(idA, await kit.Registry.HostImplicitlyAsync(asArray, None));
        Assert.Equal(3, (await kit.Store.ListAsync(None)).Count);
    }

    [Fact]
    public async Task Link_urls_are_the_core_url_or_the_clients_single_url_when_there_is_one()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");
        var single = await kit.ResolveLinkAsync(VehicleUrl);
        var withCore = await kit.ResolveAsync(
            $$"""[ "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld", "{{VehicleUrl}}" ]""");

        Assert.Equal(LdContext.CoreContextUrl, await kit.Registry.GetLinkUrlAsync(LdContext.Core, BaseUrl, None));
        Assert.Equal(VehicleUrl, await kit.Registry.GetLinkUrlAsync(single, BaseUrl, None));
        Assert.Equal(VehicleUrl, await kit.Registry.GetLinkUrlAsync(withCore, BaseUrl, None));
        Assert.Empty(await kit.Store.ListAsync(None));
    }

    [Fact]
    public async Task Hosted_and_implicit_contexts_survive_a_restart()
    {
        var store = new InMemoryHostedContextStore();
        var before = new ContextKit(store);
        var hosted = await before.Registry.AddHostedAsync(
            JsonNode.Parse("""{ "@context": { "Vehicle": "http://example.org/vehicle/Vehicle" } }"""), BaseUrl, None);
        var inline = await before.ResolveAsync("""{ "speed": "http://example.org/vehicle/speed" }""");
        var implicitUrl = await before.Registry.GetLinkUrlAsync(inline, BaseUrl, None);

        var after = new ContextKit(store);

        var listed = await after.Registry.ListAsync(kind: null, BaseUrl, None);
        Assert.Contains(listed, e => e.LocalId == hosted.LocalId && e.Kind == ContextKind.Hosted);
        Assert.Contains(listed, e => e.Url == implicitUrl && e.Kind == ContextKind.ImplicitlyCreated);
        Assert.Equal("http://example.org/vehicle/Vehicle", (await after.ResolveLinkAsync(hosted.Url)).ExpandTerm("Vehicle"));
        Assert.Equal("http://example.org/vehicle/speed", (await after.ResolveLinkAsync(implicitUrl)).ExpandTerm("speed"));
        Assert.Equal(0, after.Loader.TotalCalls);
    }

    [Fact]
    public async Task Listing_shows_every_kind_or_just_the_kind_asked_for()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");
        await kit.ResolveLinkAsync(VehicleUrl);
        kit.Clock.Advance(TimeSpan.FromMinutes(1));
        await kit.Registry.AddHostedAsync(JsonNode.Parse("""{ "@context": { "a": "http://example.org/a" } }"""), BaseUrl, None);
        kit.Clock.Advance(TimeSpan.FromMinutes(1));
        await kit.Registry.HostImplicitlyAsync(await kit.ResolveAsync("""{ "b": "http://example.org/b" }"""), None);

        var all = await kit.Registry.ListAsync(kind: null, BaseUrl, None);
        var hosted = await kit.Registry.ListAsync(ContextKind.Hosted, BaseUrl, None);
        var cached = await kit.Registry.ListAsync(ContextKind.Cached, BaseUrl, None);

        Assert.Equal(
            [ContextKind.Cached, ContextKind.Cached, ContextKind.Hosted, ContextKind.ImplicitlyCreated],
            all.Select(e => e.Kind));
        Assert.Equal(LdContext.CoreContextUrl, all[0].Url);
        Assert.Equal(["hosted-1"], hosted.Select(e => e.LocalId));
        Assert.Equal([LdContext.CoreContextUrl, VehicleUrl], cached.Select(e => e.Url));
    }

    [Fact]
    public async Task Cached_contexts_count_their_hits_and_last_usage_even_from_the_resolved_cache()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");
        await kit.ResolveLinkAsync(VehicleUrl);
        kit.Clock.Advance(TimeSpan.FromSeconds(30));
        await kit.ResolveLinkAsync(VehicleUrl);
        await kit.ResolveAsync($$"""[ "{{VehicleUrl}}", { "x": "http://example.org/x" } ]""");

        var entry = (await kit.Registry.ListAsync(ContextKind.Cached, BaseUrl, None)).Single(e => e.Url == VehicleUrl);

        Assert.Equal(3, entry.NumberOfHits);
        Assert.Equal(kit.Clock.Now, entry.LastUsage);
        var details = entry.ToDetailsJson();
        Assert.Equal(VehicleUrl, (string?)details["URL"]);
        Assert.Equal("Cached", (string?)details["kind"]);
        Assert.Equal("2026-04-01T09:00:30.000Z", (string?)details["lastUsage"]);
        Assert.Equal(3, (long?)details["numberOfHits"]);
        Assert.Equal(entry.LocalId, (string?)details["localId"]);
    }

    [Fact]
    public async Task Deleting_a_hosted_context_removes_it_and_links_to_it_stop_resolving()
    {
        var kit = new ContextKit();
        var entry = await kit.Registry.AddHostedAsync(
            JsonNode.Parse("""{ "@context": { "Vehicle": "http://example.org/vehicle/Vehicle" } }"""), BaseUrl, None);
        await kit.ResolveLinkAsync(entry.Url);

        await kit.Registry.DeleteAsync(entry.LocalId, reload: false, None);

        Assert.Empty(await kit.Store.ListAsync(None));
        await Assert.ThrowsAsync<NgsiException>(() => kit.Registry.GetAsync(entry.LocalId, BaseUrl, None).AsTask());
        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.ResolveLinkAsync(entry.Url));
        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
    }

    [Fact]
    public async Task Deleting_a_cached_context_evicts_it_so_the_next_use_fetches_it_again()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/vehicle/brandName" }""");
        await kit.ResolveLinkAsync(VehicleUrl);
        var entry = (await kit.Registry.ListAsync(ContextKind.Cached, BaseUrl, None)).Single(e => e.Url == VehicleUrl);

        await kit.Registry.DeleteAsync(entry.LocalId, reload: false, None);
        await kit.ResolveLinkAsync(VehicleUrl);

        Assert.Equal(2, kit.Loader.CallsFor(VehicleUrl));
    }

    [Fact]
    public async Task Reloading_a_cached_context_fetches_it_again_and_new_requests_see_the_new_terms()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/v1/brandName" }""");
        await kit.ResolveLinkAsync(VehicleUrl);
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/v2/brandName" }""");

        await kit.Registry.DeleteAsync(VehicleUrl, reload: true, None);

        Assert.Equal(2, kit.Loader.CallsFor(VehicleUrl));
        Assert.Equal("http://example.org/v2/brandName", (await kit.ResolveLinkAsync(VehicleUrl)).ExpandTerm("brandName"));
        Assert.Equal(2, kit.Loader.CallsFor(VehicleUrl));
    }

    [Fact]
    public async Task A_failed_reload_keeps_the_cached_copy()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext(VehicleUrl, """{ "brandName": "http://example.org/v1/brandName" }""");
        await kit.ResolveLinkAsync(VehicleUrl);
        kit.Loader.Serve(VehicleUrl, "<html>down for maintenance</html>");

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => kit.Registry.DeleteAsync(VehicleUrl, reload: true, None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Equal("http://example.org/v1/brandName", (await kit.ResolveLinkAsync(VehicleUrl)).ExpandTerm("brandName"));
    }

    [Fact]
    public async Task Only_cached_contexts_can_be_reloaded()
    {
        var kit = new ContextKit();
        var entry = await kit.Registry.AddHostedAsync(
            JsonNode.Parse("""{ "@context": { "a": "http://example.org/a" } }"""), BaseUrl, None);

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => kit.Registry.DeleteAsync(entry.LocalId, reload: true, None).AsTask());

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Single(await kit.Store.ListAsync(None));
    }

    [Theory]
    [InlineData("ngsi-ld-core-context-v1.9", false)]
    [InlineData("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld", false)]
    [InlineData("ngsi-ld-core-context-v1.9", true)]
    public async Task The_core_context_can_be_neither_deleted_nor_reloaded(string id, bool reload)
    {
        var kit = new ContextKit();

        var error = await Assert.ThrowsAsync<NgsiException>(() => kit.Registry.DeleteAsync(id, reload, None).AsTask());

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
        Assert.Contains("core", error.Detail, StringComparison.Ordinal);
        Assert.Equal(0, kit.Loader.TotalCalls);
    }

    [Fact]
    public async Task The_core_context_is_served_from_the_embedded_copy()
    {
        var kit = new ContextKit();

        var entry = await kit.Registry.GetAsync("ngsi-ld-core-context-v1.9", BaseUrl, None);

        Assert.Equal(LdContext.CoreContextUrl, entry.Url);
        Assert.Equal(
            "https://uri.etsi.org/ngsi-ld/default-context/",
            (string?)JsonNode.Parse(entry.DocumentJson)!["@context"]!["@vocab"]);
    }

    [Fact]
    public async Task Unknown_local_ids_are_not_found()
    {
        var kit = new ContextKit();

        var onGet = await Assert.ThrowsAsync<NgsiException>(() => kit.Registry.GetAsync("nope", BaseUrl, None).AsTask());
        var onDelete = await Assert.ThrowsAsync<NgsiException>(
            () => kit.Registry.DeleteAsync("nope", reload: false, None).AsTask());

        Assert.Equal(NgsiErrorType.ResourceNotFound, onGet.Type);
        Assert.Equal(NgsiErrorType.ResourceNotFound, onDelete.Type);
    }

    [Fact]
    public async Task Cached_documents_beyond_the_limit_evict_the_least_recently_used()
    {
        var kit = new ContextKit(options: new LdContextOptions { MaxCachedDocuments = 2 });
        for (var i = 0; i < 3; i++)
        {
            kit.Loader.ServeContext($"http://example.org/{i}.jsonld", $$"""{ "t{{i}}": "http://example.org/{{i}}" }""");
            await kit.ResolveLinkAsync($"http://example.org/{i}.jsonld");
            kit.Clock.Advance(TimeSpan.FromSeconds(1));
        }

        var cached = await kit.Registry.ListAsync(ContextKind.Cached, BaseUrl, None);

        Assert.Equal(
            [LdContext.CoreContextUrl, "http://example.org/1.jsonld", "http://example.org/2.jsonld"],
            cached.Select(e => e.Url));
    }

    [Theory]
    [InlineData("Hosted", true, ContextKind.Hosted)]
    [InlineData("Cached", true, ContextKind.Cached)]
    [InlineData("ImplicitlyCreated", true, ContextKind.ImplicitlyCreated)]
    [InlineData("hosted", false, default(ContextKind))]
    [InlineData("1", false, default(ContextKind))]
    public void The_kind_parameter_accepts_exactly_the_three_kind_names(string value, bool valid, ContextKind kind)
    {
        Assert.Equal(valid, ContextRegistry.TryParseKind(value, out var parsed));
        Assert.Equal(kind, parsed);
    }
}
