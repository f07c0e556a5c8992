using Machi.Host;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>
/// The real Machi host, started in-process on 127.0.0.1 with a free port: the same composition as <c>machi serve</c>,
/// so tests exercise the real pipeline over real HTTP.
/// </summary>
public sealed class MachiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly bool _ownsDataDirectory;
    private bool _stopped;

    private MachiServer(WebApplication app, Uri baseAddress, string dataDirectory, bool ownsDataDirectory)
    {
        _app = app;
        _ownsDataDirectory = ownsDataDirectory;
        BaseAddress = baseAddress;
        DataDirectory = dataDirectory;
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        Anonymous = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Where the server listens, e.g. http://127.0.0.1:41234/.</summary>
    public Uri BaseAddress { get; }

    /// <summary>
    /// A client for <see cref="BaseAddress"/> that sends an access token of an admin client (every scope), got the way a
    /// real service gets one: registered with <c>machi client add --admin</c>, then client credentials at the token
    /// endpoint. Disposed with the server.
    /// </summary>
    public HttpClient Client { get; }

    /// <summary>A client for <see cref="BaseAddress"/> without a token.</summary>
    public HttpClient Anonymous { get; }

    /// <summary>The admin client's access token (the one <see cref="Client"/> sends).</summary>
    public string AdminToken { get; private set; } = "";

    /// <summary>The PostgreSQL connection string the server runs on (Broker:Database), or null on SQLite.</summary>
    public string? Database { get; private set; }

    /// <summary>The data directory in use (absolute).</summary>
    public string DataDirectory { get; }

    /// <summary>The host's services, to reach internals a test must arrange or inspect.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Starts a server. Without <paramref name="dataDirectory"/> a fresh temporary one is made and deleted on dispose;
    /// a given one is kept (so a test can restart on the same data). <paramref name="settings"/> are configuration keys
    /// such as "Broker:MaxLimit", above every other source. <paramref name="configureServices"/> runs after Machi's
    /// own registrations (replace a service there); <paramref name="configureApp"/> may map test-only endpoints.
    /// </summary>
    public static async Task<MachiServer> StartAsync(
        string? dataDirectory = null,
        IDictionary<string, string?>? settings = null,
        Action<IServiceCollection>? configureServices = null,
        Action<WebApplication>? configureApp = null)
    {
        var ownsDataDirectory = dataDirectory is null;
        dataDirectory = Path.GetFullPath(dataDirectory ?? TempDirectory.Create("machi-test-"));

        // Quiet by default: a test's output should be its own. Settings may turn logging back up.
        var merged = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            merged[key] = value;
        }

        var builder = MachiHost.CreateBuilder(new ServeOptions
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = dataDirectory,
            Settings = merged,
        });
        configureServices?.Invoke(builder.Services);
        var app = MachiHost.Build(builder);
        configureApp?.Invoke(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            if (ownsDataDirectory)
            {
                TempDirectory.Delete(dataDirectory);
            }

            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>()
            .Addresses.First();
        var server = new MachiServer(app, new Uri(address.TrimEnd('/') + "/"), dataDirectory, ownsDataDirectory)
        {
            Database = merged.TryGetValue("Broker:Database", out var database) && !string.IsNullOrWhiteSpace(database) ? database : null,
        };
        try
        {
            server.AdminToken = await Tokens.AdminTokenAsync(server.Anonymous, dataDirectory, server.Database);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        server.Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", server.AdminToken);
        return server;
    }

    /// <summary>Stops gracefully, as on SIGTERM: no new requests, in-flight ones finish, hosted services stop.</summary>
    public async Task StopAsync()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        await _app.StopAsync();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Anonymous.Dispose();
        await StopAsync();
        await _app.DisposeAsync();
        if (_ownsDataDirectory)
        {
            TempDirectory.Delete(DataDirectory);
        }
    }
}
