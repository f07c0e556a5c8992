using Machi.Portal.Alerts;
using Machi.Portal.Feed;
using Machi.Portal.Procedures;
using Machi.Portal.Profiles;
using Machi.Portal.Staff;
using Machi.Portal.Storage;
using Machi.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Machi.Portal;

/// <summary>Wires the citizen portal (会津若松+) into a host: services, then its tables, seed data and pages.</summary>
public static class PortalModule
{
    public static IServiceCollection AddMachiPortal(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var dataDirectory = TrustModule.DataDirectory(configuration);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<PortalOptions>().Bind(configuration.GetSection("Portal"))
            .PostConfigure(portal => portal.DataDirectory = dataDirectory);
        services.TryAddSingleton<IPortalStore>(sp => new SqlitePortalStore(Path.Combine(dataDirectory, "machi.db")));
        services.AddSingleton<AttachmentStore>();
        services.AddSingleton<AlertBroadcaster>();
        services.AddHostedService<AlertWatcher>();
        return services;
    }

    /// <summary>Creates or upgrades the portal's tables, seeds the example procedures (and demo notices), maps the pages.</summary>
    public static WebApplication MapMachiPortal(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var store = app.Services.GetRequiredService<IPortalStore>();
        var time = app.Services.GetRequiredService<TimeProvider>();
        var options = app.Services.GetRequiredService<IOptions<PortalOptions>>().Value;
        Directory.CreateDirectory(options.AttachmentDirectory);
        PortalSeed.RunAsync(store, time, options.SeedDemoData, CancellationToken.None).GetAwaiter().GetResult();

        app.MapGet("/portal/portal.css", () => Asset("Machi.Portal.portal.css", "text/css; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/portal/live.js", () => Asset("Machi.Portal.live.js", "text/javascript; charset=utf-8")).ExcludeFromDescription();
        app.MapHomePages();
        app.MapProfilePages();
        app.MapProcedurePages();
        app.MapStaffPages();
        app.MapAlertEvents();
        return app;
    }

    private static readonly Dictionary<string, byte[]> Assets = new(StringComparer.Ordinal);

    private static IResult Asset(string name, string contentType)
    {
        byte[] bytes;
        lock (Assets)
        {
            if (!Assets.TryGetValue(name, out bytes!))
            {
                using var stream = typeof(PortalModule).Assembly.GetManifestResourceStream(name)
                    ?? throw new InvalidOperationException($"{name} is missing from the build.");
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                Assets[name] = bytes = copy.ToArray();
            }
        }

        return Results.Bytes(bytes, contentType);
    }
}
