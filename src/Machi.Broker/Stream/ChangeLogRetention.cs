using Machi.Broker.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Stream;

/// <summary>
/// Prunes the change log: a change goes once every consumer in change_cursors has processed it and it is older
/// than Broker:ChangeRetention (the window in which a stream client can resume with Last-Event-ID). The last
/// change is always kept: SQLite's seqs are rowids, which would start again at 1 in an empty table.
/// </summary>
internal sealed class ChangeLogRetention(IEntityStore store, IStoreMaintenance maintenance, IOptions<BrokerOptions> options, TimeProvider time, ILogger<ChangeLogRetention> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.ChangePruneInterval > TimeSpan.Zero ? options.Value.ChangePruneInterval : TimeSpan.FromMinutes(1);
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await PruneAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogError(ex, "Pruning the change log failed; trying again later");
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Prunes what may go now; returns the seq pruned through (0: nothing).</summary>
    public async Task<long> PruneAsync(CancellationToken cancellationToken)
    {
        var through = await maintenance.PrunableChangesThroughAsync(time.GetUtcNow() - options.Value.ChangeRetention, cancellationToken).ConfigureAwait(false);
        if (through > 0)
        {
            await store.PruneChangesAsync(through, cancellationToken).ConfigureAwait(false);
        }

        return through;
    }
}
