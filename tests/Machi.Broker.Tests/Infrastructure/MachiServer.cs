using Machi.Broker;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>TEMPORARY: replaced by the host's fixture.</summary>
public sealed class MachiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly bool _ownsData;

    private MachiServer(WebApplication app, string dataDirectory, bool ownsData)
    {
        _app = app;
        DataDirectory = dataDirectory;
        _ownsData = ownsData;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);
        Client = new HttpClient { BaseAddress = BaseAddress };
    }

    public Uri BaseAddress { get; }

    public HttpClient Client { get; }

    public string DataDirectory { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<MachiServer> StartAsync(string? dataDirectory = null, IDictionary<string, string?>? settings = null)
    {
        var dir = dataDirectory ?? Path.Combine(Path.GetTempPath(), "machi-test-" + Guid.NewGuid().ToString("N"));
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration["Broker:DataDirectory"] = dir;
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            builder.Configuration[k] = v;
        }

        builder.Services.AddMachiBroker(builder.Configuration);
        var app = builder.Build();
        app.MapMachiBroker();
        await app.StartAsync();
        return new MachiServer(app, dir, dataDirectory is null);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_ownsData)
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }
}
