using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Host;

public sealed partial class ApiDocsTests
{
    [Fact]
    public async Task OpenApi_document_is_version_3_1_with_the_Machi_title_in_English_and_Japanese()
    {
        await using var server = await MachiServer.StartAsync();

        using var document = JsonDocument.Parse(await server.Client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)));

        var root = document.RootElement;
        Assert.StartsWith("3.1.", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        Assert.Equal("Machi city OS API", root.GetProperty("info").GetProperty("title").GetString());
        var description = root.GetProperty("info").GetProperty("description").GetString();
        Assert.Contains("city OS", description, StringComparison.Ordinal);
        Assert.Contains("都市OS", description, StringComparison.Ordinal);
        Assert.True(root.GetProperty("paths").TryGetProperty("/health", out _), "/health is described");
    }

    [Fact]
    public async Task OpenApi_document_describes_the_NGSI_LD_operations_with_their_parameters_and_bodies()
    {
        await using var server = await MachiServer.StartAsync();

        using var document = JsonDocument.Parse(await server.Client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)));

        var paths = document.RootElement.GetProperty("paths");
        var query = paths.GetProperty("/ngsi-ld/v1/entities").GetProperty("get");
        var names = query.GetProperty("parameters").EnumerateArray().Select(p => p.GetProperty("name").GetString()).ToList();
        Assert.Superset(new HashSet<string?> { "NGSILD-Tenant", "Link", "type", "id", "attrs", "limit", "offset", "count", "options", "lang" }, names.ToHashSet());
        var create = paths.GetProperty("/ngsi-ld/v1/entities").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        Assert.True(create.TryGetProperty("application/ld+json", out _));
        foreach (var op in new[] { "create", "upsert", "update", "delete", "merge" })
        {
            Assert.True(paths.TryGetProperty("/ngsi-ld/v1/entityOperations/" + op, out _), op);
        }

        Assert.True(paths.TryGetProperty("/ngsi-ld/v1/jsonldContexts", out _));
        Assert.True(paths.GetProperty("/ngsi-ld/v1/subscriptions").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/ngsi-ld/v1/subscriptions/{subscriptionId}").TryGetProperty("patch", out _));
        Assert.False(paths.TryGetProperty("/ngsi-ld/v1/{path}", out _), "the catch-all is not an operation");
    }

    [Fact]
    public async Task Docs_page_is_html_that_loads_only_from_this_server()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("/docs/", UriKind.Relative));
        var html = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Machi city OS API", html, StringComparison.Ordinal);
        Assert.Empty(ExternalUrls(html, server.BaseAddress));
        Assert.Contains("\"withDefaultFonts\":false", html, StringComparison.Ordinal);

        // Every script the page loads is served here (Scalar's bundle ships inside the NuGet package).
        var scripts = ScriptSources().Matches(html).Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(scripts);
        foreach (var script in scripts)
        {
            using var js = await server.Client.GetAsync(new Uri(new Uri(server.BaseAddress, "/docs/"), script));
            Assert.True(js.IsSuccessStatusCode, $"{script} is served locally ({js.StatusCode})");
        }
    }

    [Fact]
    public async Task Docs_without_a_trailing_slash_leads_to_the_page()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("/docs", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>Absolute and protocol-relative URLs (//host/…) in a page whose host is not the server's.</summary>
    internal static List<string> ExternalUrls(string html, Uri self) =>
        UrlWithHost().Matches(html)
            .Where(m => m.Groups["host"].Value != self.Host && m.Groups["host"].Value != "localhost")
            .Select(m => m.Value)
            .ToList();

    [GeneratedRegex(@"(?:https?:)?//(?<host>[A-Za-z0-9][A-Za-z0-9.-]*)")]
    private static partial Regex UrlWithHost();

    [GeneratedRegex(@"<script[^>]*\ssrc=""([^""]+)""")]
    private static partial Regex ScriptSources();
}
