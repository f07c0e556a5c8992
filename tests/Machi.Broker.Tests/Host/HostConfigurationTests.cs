using System.Net;
using Machi.Broker.Tests.Infrastructure;
using Machi.Host;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Tests.Host;

public sealed class HostConfigurationTests
{
    [Fact]
    public async Task A_missing_data_directory_is_created_and_given_to_the_broker_as_an_absolute_path()
    {
        var parent = TempDirectory.Create();
        try
        {
            var data = Path.Combine(parent, "city", "data");
            await using var server = await MachiServer.StartAsync(dataDirectory: data);

            Assert.True(Directory.Exists(data));
            Assert.Equal(data, server.Services.GetRequiredService<IOptions<BrokerOptions>>().Value.DataDirectory);
        }
        finally
        {
            TempDirectory.Delete(parent);
        }
    }

    [Fact]
    public async Task A_temporary_data_directory_is_deleted_on_dispose_and_a_given_one_is_kept()
    {
        string temporary;
        await using (var server = await MachiServer.StartAsync())
        {
            temporary = server.DataDirectory;
            Assert.True(Directory.Exists(temporary));
        }

        Assert.False(Directory.Exists(temporary));

        var given = TempDirectory.Create();
        await using (await MachiServer.StartAsync(dataDirectory: given))
        {
        }

        Assert.True(Directory.Exists(given));
        TempDirectory.Delete(given);
    }

    [Theory]
    [InlineData(null, "/srv/machi", "/srv/machi/data")]
    [InlineData("", "/srv/machi", "/srv/machi/data")]
    [InlineData("state", "/srv/machi", "/srv/machi/state")]
    [InlineData("../shared/data", "/srv/machi", "/srv/shared/data")]
    [InlineData("/var/lib/machi", "/srv/machi", "/var/lib/machi")]
    public void Data_directory_is_resolved_against_the_current_directory(string? configured, string current, string expected)
    {
        Assert.Equal(expected, Machi.Trust.TrustModule.DataDirectory(configured, current));
    }

    [Fact]
    public async Task A_request_body_over_Broker_MaxRequestBodyBytes_gets_413()
    {
        await using var server = await MachiServer.StartAsync(
            settings: new Dictionary<string, string?> { ["Broker:MaxRequestBodyBytes"] = "1024" },
            configureApp: app => app.MapPost("/test/echo", async (HttpRequest request) =>
            {
                using var reader = new StreamReader(request.Body);
                return TypedResults.Ok((await reader.ReadToEndAsync()).Length);
            }));

        using var small = await server.Client.PostAsync(new Uri("/test/echo", UriKind.Relative), new StringContent(new string('a', 1000)));
        using var large = await server.Client.PostAsync(new Uri("/test/echo", UriKind.Relative), new StringContent(new string('a', 5000)));

        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
    }

    [Fact]
    public async Task Settings_override_broker_options()
    {
        await using var server = await MachiServer.StartAsync(
            settings: new Dictionary<string, string?> { ["Broker:MaxLimit"] = "77" });

        Assert.Equal(77, server.Services.GetRequiredService<IOptions<BrokerOptions>>().Value.MaxLimit);
    }
}
