using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Storage;

/// <summary>
/// Makes committed transactions durable off the writer's thread. The writer commits with synchronous=NORMAL (the
/// WAL frames are written, not flushed) and hands each committed batch here; this thread flushes the write-ahead
/// log to disk (one fdatasync for every batch committed since the last one) and only then acknowledges the batch
/// and publishes its changes. A 2xx still means the write is on disk; meanwhile the writer is already applying the
/// next batch instead of waiting for the disk (measured: the flush was a quarter of the writer's time).
/// </summary>
internal sealed class WalSyncer : IAsyncDisposable
{
    private readonly string _walPath;
    private readonly ILogger _logger;
    private readonly Channel<Committed> _committed = Channel.CreateUnbounded<Committed>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Task _loop;
    private FileStream? _wal;

    /// <param name="path">The append-only file to flush: a database's write-ahead log, or the access log's journal.</param>
    public WalSyncer(string path, ILogger logger)
    {
        _walPath = path;
        _logger = logger;
        _loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>A committed batch: acknowledged (<paramref name="Acknowledge"/>) once the log holding it is on disk.</summary>
    public readonly record struct Committed(Action<Exception?> Acknowledge);

    /// <summary>Queues a committed batch (writer thread; never blocks).</summary>
    public void Add(Action<Exception?> acknowledge) => _committed.Writer.TryWrite(new Committed(acknowledge));

    private async Task Loop()
    {
        var pending = new List<Committed>();
        while (await _committed.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            pending.Clear();
            while (_committed.Reader.TryRead(out var item))
            {
                pending.Add(item);
            }

            Exception? failure = null;
            try
            {
                Flush();
            }
            catch (IOException ex)
            {
                _logger.LogCritical(ex, "Flushing the write-ahead log to disk failed: {Count} committed batches are not known to be durable", pending.Count);
                failure = ex;
            }

            foreach (var item in pending)
            {
                item.Acknowledge(failure);
            }
        }
    }

    private void Flush()
    {
        // The log exists once the first transaction has been written; the same file (inode) lives until the last
        // connection closes, so one handle serves the whole run.
        _wal ??= new FileStream(_walPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        _wal.Flush(flushToDisk: true);
    }

    /// <summary>Acknowledges everything already queued (the writer has stopped adding).</summary>
    public async ValueTask DisposeAsync()
    {
        _committed.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        if (_wal is not null)
        {
            await _wal.DisposeAsync().ConfigureAwait(false);
        }
    }
}
