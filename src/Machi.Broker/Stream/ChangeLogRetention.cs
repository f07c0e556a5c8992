using Machi.Broker.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Stream;

/// <summary>
/// Prunes the change log: a change goes once every consumer in change_cursors has processed it and it is older
/// than Broker:ChangeRetention (the window in which a stream client can resume with Last-Event-ID). The last
/// change is always kept: seqs are SQLite rowids, which would start again at 1 in an empty table.
/// </summary>
internal sealed class ChangeLogRetention(SqliteEntityStore store, IOptions<BrokerOptions> options, TimeProvider time, ILogger<ChangeLogRetention> logger)
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
        var through = PrunableThrough(time.GetUtcNow() - options.Value.ChangeRetention);
        if (through > 0)
        {
            await store.PruneChangesAsync(through, cancellationToken).ConfigureAwait(false);
        }

        return through;
    }

    private long PrunableThrough(DateTimeOffset olderThan)
    {
        using var connection = new SqliteConnection(store.ConnectionString);
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = """
            SELECT min(
                coalesce((SELECT min(seq) FROM change_cursors), 9223372036854775807),
                coalesce((SELECT max(seq) FROM entity_changes WHERE at < $before), 0),
                coalesce((SELECT max(seq) FROM entity_changes), 0) - 1)
            """;
        cmd.Parameters.AddWithValue("$before", olderThan.UtcTicks);
        return Math.Max(0, (long)cmd.ExecuteScalar()!);
    }
}
