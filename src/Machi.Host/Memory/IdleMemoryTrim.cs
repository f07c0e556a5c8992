using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Machi.Host.Memory;

/// <summary>
/// Gives memory back once a burst of work is over. The workstation collector sizes its young generation from the
/// processor's cache (on a host with a 260 MB L3 cache, ~130 MB), and after a bulk load (batch upserts, an import)
/// it keeps that budget committed: 100,000 entities held ~160 MB committed for ~80 MB of live objects, 335 MB RSS
/// (bench/README, session 17). Capping the budget instead cost ~10 % of batch-upsert throughput. So the budget stays
/// as large as the processor makes it while work comes, and when the process has allocated next to nothing for a
/// while after a burst, one compacting collection returns what the burst left committed.
/// </summary>
internal sealed partial class IdleMemoryTrim : BackgroundService
{
    private readonly ILogger<IdleMemoryTrim> _logger;
    private readonly TimeSpan _interval;
    private readonly long _burst;
    private readonly long _idle;

    public IdleMemoryTrim(ILogger<IdleMemoryTrim> logger)
        : this(logger, interval: TimeSpan.FromSeconds(2), burst: 256L << 20, idle: 4L << 20)
    {
    }

    /// <param name="interval">How often allocation is looked at.</param>
    /// <param name="burst">Allocated since the last trim: less is no burst worth a collection.</param>
    /// <param name="idle">Allocated in one interval: less is idle.</param>
    internal IdleMemoryTrim(ILogger<IdleMemoryTrim> logger, TimeSpan interval, long burst, long idle)
    {
        _logger = logger;
        _interval = interval;
        _burst = burst;
        _idle = idle;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var last = GC.GetTotalAllocatedBytes();
        var sinceTrim = 0L;
        using var timer = new PeriodicTimer(_interval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            var now = GC.GetTotalAllocatedBytes();
            var allocated = now - last;
            last = now;
            sinceTrim += allocated;
            if (allocated >= _idle || sinceTrim < _burst)
            {
                continue;
            }

            var before = GC.GetGCMemoryInfo().TotalCommittedBytes;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            sinceTrim = 0;
            last = GC.GetTotalAllocatedBytes();
            LogTrimmed(_logger, before >> 20, GC.GetGCMemoryInfo().TotalCommittedBytes >> 20);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Idle after a burst: the collector's committed memory went from {Before} MB to {After} MB")]
    private static partial void LogTrimmed(ILogger logger, long before, long after);
}
