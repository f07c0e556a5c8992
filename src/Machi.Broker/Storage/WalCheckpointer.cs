using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Storage;

/// <summary>
/// Copies the write-ahead log back into the database file on a connection and thread of its own, so the writer
/// does little of it. SQLite's automatic checkpoint runs inside the commit that crosses the threshold: the writer
/// then copies and fsyncs tens of megabytes while every waiting write stalls behind it (measured: p99 of partial
/// updates 200–250 ms). Here PASSIVE checkpoints run beside the writer and the readers without blocking either. Under
/// a steady stream of writes such a pass never catches up with the end of the log, and SQLite starts the log again
/// from its beginning only after a pass that did; so once the log has grown past a size the writer is asked to copy
/// the short tail written since the last pass itself, between two transactions (<see cref="TakeTailRequest"/>), and
/// its next transaction restarts the log: the file stays about that size.
/// </summary>
internal sealed class WalCheckpointer : IAsyncDisposable
{
    /// <summary>How often the log is copied back while writes keep coming.</summary>
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    /// <summary>The size of the log past which the writer restarts it (a larger log slows every read, which looks pages up in its index).</summary>
    private const long RestartBytes = 16 << 20;

    private readonly SqliteConnection _connection;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _written = new(0, 1);
    private readonly Task _loop;

    /// <summary>Frames (pages of the database's size) in <see cref="RestartBytes"/>.</summary>
    private readonly long _restartFrames;
    private int _tailRequested;

    public WalCheckpointer(string connectionString, ILogger logger)
    {
        _logger = logger;
        _connection = new SqliteConnection(connectionString);
        _connection.Open();
        SqliteEntityStore.Execute(_connection, "PRAGMA busy_timeout=5000; PRAGMA cache_size=-2000;");
        _restartFrames = RestartBytes / SqliteEntityStore.Scalar(_connection, "PRAGMA page_size");
        _loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Tells the checkpointer a transaction was committed (called by the writer; never blocks).</summary>
    public void Committed()
    {
        if (_written.CurrentCount == 0)
        {
            try
            {
                _written.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another commit signalled in between: one wake-up is enough.
            }
        }
    }

    /// <summary>True once after each background pass: the writer should checkpoint the tail now (writer thread only).</summary>
    public bool TakeTailRequest() => Volatile.Read(ref _tailRequested) == 1 && Interlocked.Exchange(ref _tailRequested, 0) == 1;

    private async Task Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _written.WaitAsync(_stop.Token).ConfigureAwait(false);
                await Task.Delay(Interval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            try
            {
                // Twice: the second pass copies what the writer added during the first, so the tail left is short.
                // The writer is asked to restart the log only once it has grown past RestartBytes: its copy of the
                // tail holds every write for a few milliseconds, a pause better taken every few seconds under heavy
                // load (and never under light load) than five times a second.
                SqliteEntityStore.Execute(_connection, "PRAGMA wal_checkpoint(PASSIVE);");
                if (LogFrames() >= _restartFrames)
                {
                    Volatile.Write(ref _tailRequested, 1);
                }
            }
            catch (SqliteException ex)
            {
                // A checkpoint that fails now is retried after the next commit; the log only grows meanwhile.
                _logger.LogWarning(ex, "Checkpoint of the write-ahead log failed");
            }
        }
    }

    /// <summary>Runs a PASSIVE checkpoint and returns the number of frames the log holds.</summary>
    private long LogFrames()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
        using var r = cmd.ExecuteReader();
        return r.Read() ? r.GetInt64(1) : 0;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
        _written.Dispose();
    }
}
