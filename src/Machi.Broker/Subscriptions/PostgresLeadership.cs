using Machi.Broker.Storage.Postgres;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// Notification matching and delivery are led by one node per database: the one holding a session-level advisory
/// lock on a connection of its own (outside the pool, so the lock goes with the session). When the leader dies, its
/// connection closes and PostgreSQL releases the lock; the other nodes try every <see cref="RetryInterval"/>, so one
/// of them takes over, and with it the outbox (nothing in it is lost: rows leave it only when acknowledged). The
/// leader checks its connection as often, and stops leading when it is gone (another node may lead by then).
/// </summary>
internal sealed class PostgresLeadership(PostgresEntityStore store, ILogger<PostgresLeadership> logger) : INotificationLeadership, IAsyncDisposable
{
    /// <summary>The advisory lock of the leader (any constant shared by the nodes).</summary>
    internal const long LeaderLock = 0x6D61636869_03;

    internal static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private NpgsqlConnection? _connection;
    private CancellationTokenSource? _leading;
    private Task? _watch;

    public async Task<CancellationToken> LeadAsync(CancellationToken stopping)
    {
        while (true)
        {
            await _gate.WaitAsync(stopping).ConfigureAwait(false);
            try
            {
                if (_leading is { IsCancellationRequested: false } leading)
                {
                    return CancellationTokenSource.CreateLinkedTokenSource(leading.Token, stopping).Token;
                }

                if (await TryAcquireAsync(stopping).ConfigureAwait(false) is { } acquired)
                {
                    return CancellationTokenSource.CreateLinkedTokenSource(acquired, stopping).Token;
                }
            }
            finally
            {
                _gate.Release();
            }

            await Task.Delay(RetryInterval, stopping).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_leading is not null)
        {
            await _leading.CancelAsync().ConfigureAwait(false);
        }

        if (_watch is not null)
        {
            await _watch.ConfigureAwait(false);
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }

        _gate.Dispose();
    }

    private async Task<CancellationToken?> TryAcquireAsync(CancellationToken stopping)
    {
        try
        {
            if (_connection is not { State: System.Data.ConnectionState.Open })
            {
                if (_connection is not null)
                {
                    await _connection.DisposeAsync().ConfigureAwait(false);
                }

                _connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(store.ConnectionString)
                {
                    Pooling = false,
                    ApplicationName = "machi-leader",
                    KeepAlive = 5,
                }.ToString());
                await _connection.OpenAsync(stopping).ConfigureAwait(false);
            }

            await using var cmd = new NpgsqlCommand($"SELECT pg_try_advisory_lock({LeaderLock})", _connection);
            if (!(bool)(await cmd.ExecuteScalarAsync(stopping).ConfigureAwait(false))!)
            {
                return null;
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException)
        {
            logger.LogWarning(ex, "Could not ask for notification leadership; trying again");
            return null;
        }

        logger.LogInformation("This node now matches and delivers notifications");
        _leading?.Dispose();
        _leading = new CancellationTokenSource();
        var leading = _leading;
        var connection = _connection;
        _watch = Task.Run(() => WatchAsync(connection, leading), CancellationToken.None);
        return leading.Token;
    }

    /// <summary>Checks the leader's connection; when it is lost, so is the lock: stop leading.</summary>
    private async Task WatchAsync(NpgsqlConnection connection, CancellationTokenSource leading)
    {
        while (!leading.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(RetryInterval, leading.Token).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand("SELECT 1", connection);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(leading.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                await cmd.ExecuteScalarAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (leading.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException or OperationCanceledException or InvalidOperationException)
            {
                logger.LogWarning(ex, "Lost the connection that holds notification leadership; another node may lead now");
                await leading.CancelAsync().ConfigureAwait(false);
                return;
            }
        }
    }
}
