using System.Diagnostics;
using System.Diagnostics.Metrics;
using Machi.Host.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Host;

public sealed class EntityCountGaugeTests
{
    [Fact]
    public void Count_is_cached_between_scrapes_and_refreshed_once_stale()
    {
        var broker = new FakeBrokerHealth { Entities = 7 };
        var time = new ManualTime();
        var gauge = NewGauge(broker, time);

        Assert.Equal(7, WaitForCount(gauge, 7));
        broker.Entities = 8;
        Assert.Equal(7, gauge.CurrentCount());
        Assert.Equal(1, broker.Counts);

        time.Advance(EntityCountGauge.CacheFor + TimeSpan.FromSeconds(1));
        Assert.Equal(8, WaitForCount(gauge, 8));
        Assert.Equal(2, broker.Counts);
    }

    [Fact]
    public void A_slow_database_does_not_block_the_scrape()
    {
        var slow = new TaskCompletionSource();
        var broker = new FakeBrokerHealth { Entities = 3, CountGate = slow.Task };
        var gauge = NewGauge(broker, new ManualTime());

        var clock = Stopwatch.StartNew();
        var count = gauge.CurrentCount();

        Assert.Null(count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"the scrape waited {clock.Elapsed}");

        slow.SetResult();
        Assert.Equal(3, WaitForCount(gauge, 3));
    }

    [Fact]
    public void A_failing_count_reports_nothing_instead_of_throwing()
    {
        var gauge = NewGauge(new FakeBrokerHealth { Failure = new InvalidOperationException("no table") }, new ManualTime());

        Assert.Null(gauge.CurrentCount());
    }

    private static EntityCountGauge NewGauge(FakeBrokerHealth broker, TimeProvider time)
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        return new EntityCountGauge(
            services.GetRequiredService<IMeterFactory>(), broker, time, NullLogger<EntityCountGauge>.Instance);
    }

    private static long? WaitForCount(EntityCountGauge gauge, long expected)
    {
        long? count = null;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5) && (count = gauge.CurrentCount()) != expected)
        {
            Thread.Sleep(20);
        }

        return count;
    }

    /// <summary>A clock that moves only when told to.</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = TimeSpan.FromDays(1).Ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
