using System.Diagnostics.Metrics;
using Machi.Broker;

namespace Machi.Host.Telemetry;

/// <summary>
/// The <c>machi.entities</c> gauge (Prometheus: <c>machi_entities</c>). Counting entities is a database query,
/// so the count is cached and refreshed in the background: a scrape waits a moment for a fresh count at most,
/// and otherwise reports the last one it has.
/// </summary>
internal sealed class EntityCountGauge
{
    internal static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(5);
    internal static readonly TimeSpan WaitAtMost = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan CountTimeout = TimeSpan.FromSeconds(30);

    private readonly IBrokerHealth _broker;
    private readonly TimeProvider _time;
    private readonly ILogger<EntityCountGauge> _logger;
    private readonly Lock _gate = new();
    private long? _count;
    private long _refreshedAt;
    private Task? _refresh;

    public EntityCountGauge(IMeterFactory meters, IBrokerHealth broker, TimeProvider time, ILogger<EntityCountGauge> logger)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _broker = broker;
        _time = time;
        _logger = logger;
        meters.Create(Telemetry.MeterName).CreateObservableGauge(
            "machi.entities",
            Observe,
            unit: "{entity}",
            description: "Entities stored in the broker, over all tenants.");
    }

    private IEnumerable<Measurement<long>> Observe() =>
        CurrentCount() is { } count ? [new Measurement<long>(count)] : [];

    /// <summary>The latest known count, refreshing it first when stale; null until the first count succeeds.</summary>
    internal long? CurrentCount()
    {
        Task? refresh;
        lock (_gate)
        {
            var stale = _count is null || _time.GetElapsedTime(_refreshedAt) >= CacheFor;
            if (stale && _refresh is null)
            {
                _refresh = Task.Run(RefreshAsync);
            }

            refresh = _refresh;
        }

        // Observable instruments are called synchronously by the exporter: a bounded wait, never a long block.
        refresh?.Wait(WaitAtMost);
        lock (_gate)
        {
            return _count;
        }
    }

    private async Task RefreshAsync()
    {
        long? count = null;
        try
        {
            using var timeout = new CancellationTokenSource(CountTimeout, _time);
            count = await _broker.CountEntitiesAsync(timeout.Token);
        }
        catch (Exception e)
        {
            // A failed count must not break the scrape: keep the last value, and try again on the next one.
            _logger.LogWarning(e, "Counting entities for the machi.entities gauge failed");
        }
        finally
        {
            lock (_gate)
            {
                if (count is not null)
                {
                    _count = count;
                    _refreshedAt = _time.GetTimestamp();
                }

                _refresh = null;
            }
        }
    }
}
