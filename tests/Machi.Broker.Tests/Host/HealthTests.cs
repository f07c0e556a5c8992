using System.Net;
using System.Text.Json;
using Machi.Broker.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Machi.Broker.Tests.Host;

public sealed class HealthTests
{
    [Fact]
    public async Task Health_returns_200_healthy_with_a_reachable_database_and_the_version()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("healthy", body.RootElement.GetProperty("status").GetString());
        Assert.Equal("reachable", body.RootElement.GetProperty("database").GetString());
        Assert.StartsWith("0.", body.RootElement.GetProperty("version").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_returns_503_unhealthy_when_the_database_is_unreachable()
    {
        await using var server = await MachiServer.StartAsync(configureServices: services =>
            services.Replace(ServiceDescriptor.Singleton<IBrokerHealth>(new FakeBrokerHealth { Reachable = false })));

        using var response = await server.Client.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("unhealthy", body.RootElement.GetProperty("status").GetString());
        Assert.Equal("unreachable", body.RootElement.GetProperty("database").GetString());
    }

    [Fact]
    public async Task Health_returns_503_not_500_when_the_database_check_throws()
    {
        await using var server = await MachiServer.StartAsync(configureServices: services =>
            services.Replace(ServiceDescriptor.Singleton<IBrokerHealth>(new FakeBrokerHealth { Failure = new IOException("disk gone") })));

        using var response = await server.Client.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("\"unreachable\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
