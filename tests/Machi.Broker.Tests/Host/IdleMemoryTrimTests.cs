using Machi.Host.Memory;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Tests.Host;

public class IdleMemoryTrimTests
{
    [Fact]
    public async Task After_a_burst_of_allocation_and_a_quiet_moment_the_collector_gives_memory_back()
    {
        var log = new TrimLog();
        using var trim = new IdleMemoryTrim(log, TimeSpan.FromMilliseconds(100), burst: 32L << 20, idle: long.MaxValue);
        var fullBefore = GC.GetGCMemoryInfo(GCKind.FullBlocking).Index;
        await trim.StartAsync(CancellationToken.None);
        Allocate(64L << 20);

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (log.Trims == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, CancellationToken.None);
        }

        await trim.StopAsync(CancellationToken.None);
        Assert.True(log.Trims >= 1, "the service reported a trim");
        var full = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        Assert.True(full.Index > fullBefore, "a full blocking collection ran");
        Assert.True(full.Compacted, "it compacted the heap");
    }

    [Fact]
    public async Task Without_a_burst_nothing_is_collected()
    {
        var log = new TrimLog();
        using var trim = new IdleMemoryTrim(log, TimeSpan.FromMilliseconds(50), burst: long.MaxValue, idle: long.MaxValue);
        await trim.StartAsync(CancellationToken.None);
        Allocate(16L << 20);
        await Task.Delay(500, CancellationToken.None);
        await trim.StopAsync(CancellationToken.None);
        Assert.Equal(0, log.Trims);
    }

    private static void Allocate(long bytes)
    {
        for (var done = 0L; done < bytes; done += 1 << 20)
        {
            GC.KeepAlive(new byte[1 << 20]);
        }
    }

    /// <summary>Counts the trims the service reports.</summary>
    private sealed class TrimLog : ILogger<IdleMemoryTrim>
    {
        private int _trims;

        public int Trims => Volatile.Read(ref _trims);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (formatter(state, exception).StartsWith("Idle after a burst", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _trims);
            }
        }
    }
}
