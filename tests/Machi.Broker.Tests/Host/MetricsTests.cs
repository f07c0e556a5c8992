using System.Diagnostics;
using Machi.Broker.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Machi.Broker.Tests.Host;

public sealed class MetricsTests
{
    [Fact]
    public async Task Metrics_report_request_duration_per_route_after_a_request()
    {
        await using var server = await MachiServer.StartAsync();
        (await server.Client.GetAsync(new Uri("/health", UriKind.Relative))).Dispose();

        // The request is recorded as it completes, just after the client has its response: poll briefly.
        var text = await ScrapeUntilAsync(server.Client, t =>
            t.Contains("http_server_request_duration_seconds_count{", StringComparison.Ordinal)
            && t.Contains("http_route=\"/health\"", StringComparison.Ordinal));

        Assert.Contains("# TYPE http_server_request_duration_seconds histogram", text, StringComparison.Ordinal);
        Assert.Contains("http_route=\"/health\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_report_the_entity_count_gauge_and_runtime_metrics()
    {
        var broker = new FakeBrokerHealth { Entities = 42 };
        await using var server = await MachiServer.StartAsync(configureServices: services =>
            services.Replace(ServiceDescriptor.Singleton<IBrokerHealth>(broker)));

        var text = await ScrapeUntilAsync(server.Client, t => t.Contains("machi_entities{", StringComparison.Ordinal));

        Assert.Contains("# TYPE machi_entities gauge", text, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^machi_entities\{[^}]*\} 42( |$)", text);
        Assert.Contains("dotnet_gc_", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_are_prometheus_text()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("/metrics", UriKind.Relative));

        response.EnsureSuccessStatusCode();
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Two_hosts_in_one_process_each_report_only_their_own_metrics()
    {
        await using var first = await MachiServer.StartAsync(configureServices: services =>
            services.Replace(ServiceDescriptor.Singleton<IBrokerHealth>(new FakeBrokerHealth { Entities = 5 })));
        await using var second = await MachiServer.StartAsync(configureServices: services =>
            services.Replace(ServiceDescriptor.Singleton<IBrokerHealth>(new FakeBrokerHealth { Entities = 42 })));
        (await first.Client.GetAsync(new Uri("/health", UriKind.Relative))).Dispose();

        var firstText = await ScrapeUntilAsync(first.Client, t =>
            t.Contains("http_route=\"/health\"", StringComparison.Ordinal) && t.Contains("machi_entities{", StringComparison.Ordinal));
        var secondText = await ScrapeUntilAsync(second.Client, t => t.Contains("machi_entities{", StringComparison.Ordinal));

        Assert.Matches(@"(?m)^machi_entities\{[^}]*\} 5( |$)", firstText);
        Assert.DoesNotMatch(@"(?m)^machi_entities\{[^}]*\} 42( |$)", firstText);
        Assert.Matches(@"(?m)^machi_entities\{[^}]*\} 42( |$)", secondText);
        Assert.DoesNotContain("http_route=\"/health\"", secondText, StringComparison.Ordinal);
    }

    private static async Task<string> ScrapeUntilAsync(HttpClient client, Func<string, bool> done)
    {
        var text = "";
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            text = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            if (done(text))
            {
                return text;
            }

            await Task.Delay(200);
        }

        Assert.Fail($"/metrics never showed what was expected:\n{text}");
        return text;
    }
}
