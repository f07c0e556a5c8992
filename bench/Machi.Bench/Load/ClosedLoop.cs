using System.Diagnostics;
using System.Globalization;

namespace Machi.Bench.Load;

/// <summary>One operation of a load run: an HTTP request or a direct storage call.</summary>
internal interface ILoadWorker
{
    ValueTask<Outcome> ExecuteAsync(CancellationToken cancellationToken);
}

/// <summary>What an operation returned: an HTTP status (the baseline uses the same codes), and for an unexpected
/// one, what the target said about it.</summary>
internal readonly record struct Outcome(int Status, string? Detail = null);

/// <summary>The statuses that count as success for a scenario; anything else is an error.</summary>
internal readonly record struct ExpectedStatus(int First, int Second = -1)
{
    public bool Contains(int status) => status == First || status == Second;

    public override string ToString() => Second < 0
        ? First.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{First}/{Second}");
}

/// <summary>How long a run lasts: a warm-up whose requests are not recorded, then either a fixed duration or a
/// fixed number of recorded requests (still capped by <see cref="MaxDuration"/> so no run is unbounded).</summary>
internal sealed record RunPlan(TimeSpan Warmup, TimeSpan Duration, long? Requests, TimeSpan MaxDuration)
{
    public static RunPlan Count(long requests, TimeSpan maxDuration) =>
        new(TimeSpan.Zero, maxDuration, requests, maxDuration);
}

/// <summary>
/// Closed-loop load: each worker issues its next operation as soon as the previous one has completed, so the
/// offered load adapts to the target and the concurrency is exactly the worker count.
/// </summary>
internal static class ClosedLoop
{
    /// <param name="dedicatedThreads">Run each worker on its own thread: for synchronous (SQLite) workers, whose
    /// blocking calls would otherwise starve the thread pool.</param>
    public static async Task<LoadResult> RunAsync(
        IReadOnlyList<ILoadWorker> workers,
        RunPlan plan,
        ExpectedStatus expected,
        int entitiesPerRequest,
        bool dedicatedThreads,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(workers);
        ArgumentNullException.ThrowIfNull(plan);

        var schedule = new Schedule(plan);
        var stats = new WorkerStats[workers.Count];
        var tasks = new Task[workers.Count];
        for (int i = 0; i < workers.Count; i++)
        {
            var worker = workers[i];
            var own = stats[i] = new WorkerStats();
            tasks[i] = dedicatedThreads
                ? Task.Factory.StartNew(
                    () => RunWorkerAsync(worker, own, schedule, expected, cancellationToken),
                    cancellationToken,
                    TaskCreationOptions.LongRunning,
                    TaskScheduler.Default).Unwrap()
                : Task.Run(() => RunWorkerAsync(worker, own, schedule, expected, cancellationToken), cancellationToken);
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
        return LoadResult.From(stats, schedule.MeasureStart, entitiesPerRequest);
    }

    private static async Task RunWorkerAsync(
        ILoadWorker worker, WorkerStats stats, Schedule schedule, ExpectedStatus expected, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            long start = Stopwatch.GetTimestamp();
            if (start >= schedule.End)
            {
                break;
            }

            bool measured = start >= schedule.MeasureStart;
            if (measured && !schedule.TryTakeRequest())
            {
                break;
            }

            Outcome outcome;
            try
            {
                outcome = await worker.ExecuteAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (OperationCanceledException e)
            {
                outcome = new Outcome(WorkerStats.TimeoutStatus, e.Message);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException)
            {
                outcome = new Outcome(WorkerStats.ExceptionStatus, e.GetType().Name + ": " + e.Message);
            }

            long end = Stopwatch.GetTimestamp();
            if (measured)
            {
                stats.Record(outcome, expected, start, end);
            }
        }
    }

    private sealed class Schedule
    {
        private long _remaining;

        public Schedule(RunPlan plan)
        {
            long now = Stopwatch.GetTimestamp();
            MeasureStart = now + Ticks(plan.Warmup);
            End = MeasureStart + Ticks(plan.Requests is null ? plan.Duration : plan.MaxDuration);
            _remaining = plan.Requests ?? long.MaxValue;
        }

        public long MeasureStart { get; }

        public long End { get; }

        public bool TryTakeRequest() => Interlocked.Decrement(ref _remaining) >= 0;

        private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
    }
}
