using Machi.Portal.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Portal.Alerts;

/// <summary>
/// Notices alerts that another Machi node (sharing the database) issued or cancelled, and tells this node's open
/// pages; it reads the database only while some page is listening.
/// </summary>
internal sealed partial class AlertWatcher(IPortalStore store, AlertBroadcaster broadcaster, IOptions<PortalOptions> options, ILogger<AlertWatcher> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        string? seen = null;
        using var timer = new PeriodicTimer(options.Value.AlertPollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (broadcaster.Listeners == 0)
                {
                    seen = null;
                    continue;
                }

                try
                {
                    var version = await store.AlertsVersionAsync(stoppingToken);
                    if (seen is not null && version != seen)
                    {
                        broadcaster.Changed();
                    }

                    seen = version;
                }
                catch (Microsoft.Data.Sqlite.SqliteException e)
                {
                    LogPollFailed(logger, e);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Portal: could not check for new alerts")]
    private static partial void LogPollFailed(ILogger logger, Exception exception);
}
