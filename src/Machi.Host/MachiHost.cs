using System.Text.Encodings.Web;
using Machi.Broker;
using Machi.Broker.Storage;
using Machi.Host.ApiDocs;
using Machi.Host.Cli;
using Machi.Host.Health;
using Machi.Host.Telemetry;
using Machi.Portal;
using Machi.Snow;
using Machi.Trust;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using BadHttpRequestException = Microsoft.AspNetCore.Http.BadHttpRequestException;

namespace Machi.Host;

/// <summary>What <c>machi serve</c> was given on the command line; each value, when set, beats every other source.</summary>
public sealed record ServeOptions
{
    /// <summary>Listen address(es), ';'-separated; <c>http://127.0.0.1:0</c> picks a free port.</summary>
    public string? Urls { get; init; }

    /// <summary>Data directory; relative paths are taken from the current directory.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>PostgreSQL connection string (Broker:Database); unset: the embedded SQLite file in the data directory.</summary>
    public string? Database { get; init; }

    /// <summary>Extra configuration keys ("Broker:MaxLimit" …), above appsettings and environment variables.</summary>
    public IReadOnlyDictionary<string, string?>? Settings { get; init; }
}

/// <summary>
/// The composition root. <see cref="CreateBuilder"/> wires configuration, logging, Kestrel and every module's
/// services; callers (tests) may still change <c>builder.Services</c>; <see cref="Build(WebApplicationBuilder)"/>
/// then maps the endpoints.
/// </summary>
public static class MachiHost
{
    public const string DefaultUrls = "http://127.0.0.1:8080";

    /// <summary>The app for <c>machi serve</c> arguments (<c>--urls</c>, <c>--data</c>).</summary>
    public static WebApplication Build(string[] args) =>
        CommandLine.Parse(args) switch
        {
            ServeCommand serve => Build(CreateBuilder(serve.Options)),
            UsageError error => throw new ArgumentException(error.Message, nameof(args)),
            _ => throw new ArgumentException("Only serve arguments build a host.", nameof(args)),
        };

    public static WebApplicationBuilder CreateBuilder(ServeOptions? options = null)
    {
        options ??= new ServeOptions();

        // Content root is the install directory, so the appsettings.json shipped next to machi.dll is found from
        // anywhere; the data directory, by contrast, is relative to where machi was started.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
        });
        AddConfiguration(builder.Configuration, options);

        builder.WebHost.UseUrls(builder.Configuration["Urls"] ?? DefaultUrls);
        builder.Services.Configure<HostOptions>(host =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(builder.Configuration.GetValue("ShutdownTimeoutSeconds", 10)));
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<BrokerOptions>>((kestrel, broker) =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = broker.Value.MaxRequestBodyBytes;
        });

        // JSON lines for log collectors, readable text for a person at a terminal; Logging:Console:FormatterName wins.
        builder.Services.Configure<ConsoleLoggerOptions>(console =>
            console.FormatterName ??= Console.IsOutputRedirected ? ConsoleFormatterNames.Json : ConsoleFormatterNames.Simple);
        builder.Services.Configure<JsonConsoleFormatterOptions>(json =>
        {
            json.TimestampFormat ??= "yyyy-MM-ddTHH:mm:ss.fffzzz";
            // Log lines are data, not HTML: keep Japanese text and '+' readable instead of \uXXXX escapes.
            json.JsonWriterOptions = json.JsonWriterOptions with { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        });

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddProblemDetails();
        builder.Services.Configure<ExceptionHandlerOptions>(handler =>
        {
            // A client's bad request (body too large, malformed) is the client's error: its own 4xx, not a 500,
            // and not logged as a server fault.
            handler.StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError;
            handler.SuppressDiagnosticsCallback = context => context.Exception is BadHttpRequestException;
        });
        builder.Services.AddMachiBroker(builder.Configuration);
        builder.Services.AddMachiTrust(builder.Configuration);
        builder.Services.AddMachiPortal(builder.Configuration);
        builder.Services.AddMachiSnow(builder.Configuration);
        builder.Services.AddMachiTelemetry();
        builder.Services.AddMachiApiDocs();
        builder.Services.AddHostedService<Memory.IdleMemoryTrim>();
        return builder;
    }

    public static WebApplication Build(WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var app = builder.Build();
        var data = app.Services.GetRequiredService<IOptions<BrokerOptions>>().Value.DataDirectory;
        if (PrivateDirectory.Create(data) is { } mode)
        {
            app.Logger.LogWarning(
                "The data directory {DataDirectory} can be opened by other users (mode {Mode}); it holds residents' personal data and sign-in keys: chmod 700 it",
                data, PrivateDirectory.Octal(mode));
        }

        app.UseExceptionHandler();
        app.MapHealth();
        app.MapMetrics();
        app.MapApiDocs();
        app.MapMachiBroker();
        app.MapMachiTrust();
        app.MapMachiPortal();
        app.MapMachiSnow();

        app.Lifetime.ApplicationStarted.Register(() => LogStarted(app));
        return app;
    }

    /// <summary>The configuration <c>machi serve</c> would see, for commands that work on the data without serving.</summary>
    internal static IConfiguration LoadConfiguration(string? dataDirectory, string? database = null)
    {
        var configuration = new ConfigurationManager();
        configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: false);
        AddConfiguration(configuration, new ServeOptions { DataDirectory = dataDirectory, Database = database });
        return configuration;
    }

    private static void AddConfiguration(ConfigurationManager configuration, ServeOptions options)
    {
        var userSettings = Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json");
        if (!string.Equals(Path.GetFullPath(userSettings), Path.Combine(AppContext.BaseDirectory, "appsettings.json"), StringComparison.Ordinal))
        {
            configuration.AddJsonFile(userSettings, optional: true, reloadOnChange: false);
        }

        configuration.AddEnvironmentVariables("Machi__");

        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in options.Settings ?? new Dictionary<string, string?>())
        {
            overrides[key] = value;
        }

        if (options.Urls is not null)
        {
            overrides["Urls"] = options.Urls;
        }

        if (options.DataDirectory is not null)
        {
            overrides["Broker:DataDirectory"] = options.DataDirectory;
        }

        if (options.Database is not null)
        {
            overrides["Broker:Database"] = options.Database;
        }

        configuration.AddInMemoryCollection(overrides);

        // Resolve once against the current directory, so every module sees the same absolute path.
        configuration.AddInMemoryCollection(
        [
            new("Broker:DataDirectory", TrustModule.DataDirectory(configuration)),
        ]);
    }

    private static void LogStarted(WebApplication app)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var data = app.Services.GetRequiredService<IOptions<BrokerOptions>>().Value.DataDirectory;
        app.Logger.LogInformation(
            "Machi {Version} serving on {Addresses}, data in {DataDirectory}",
            MachiVersion.Current, string.Join(", ", addresses), data);
    }
}
