using System.Net;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Host;

public sealed class HomePageTests
{
    [Fact]
    public async Task Home_page_is_the_portal_in_Japanese_with_English_a_switch_away_and_links_the_APIs()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("/", UriKind.Relative));
        var html = await response.Content.ReadAsStringAsync();
        var english = await server.Client.GetStringAsync(new Uri("/?lang=en", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        Assert.Contains("<html lang=\"ja\">", html, StringComparison.Ordinal);
        Assert.Contains("都市OS", html, StringComparison.Ordinal);
        Assert.Contains("<html lang=\"en\">", english, StringComparison.Ordinal);
        Assert.Contains("open-source city OS", english, StringComparison.Ordinal);
        Assert.Contains("href=\"/docs\"", html, StringComparison.Ordinal);
        Assert.Contains("href=\"/health\"", html, StringComparison.Ordinal);
        Assert.Contains("href=\"/ngsi-ld/v1/entities\"", html, StringComparison.Ordinal);
        Assert.Empty(ApiDocsTests.ExternalUrls(html, server.BaseAddress));
    }

    [Fact]
    public async Task Responses_carry_no_server_header()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("/", UriKind.Relative));

        Assert.Empty(response.Headers.Server);
    }
}
