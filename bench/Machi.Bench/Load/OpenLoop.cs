using System.Diagnostics;

namespace Machi.Bench.Load;

/// <summary>
/// Open-loop load: operation i is due at start + i / rate whatever happened to the earlier ones, so a slow answer
/// does not slow the offered load (as it would in <see cref="ClosedLoop"/>). Up to <c>senders</c> operations are in
/// flight; when all are busy the next ones start late, and how late is reported (the send lag) rather than hidden.
/// Latency is measured from the time an operation was due, so queueing in the generator counts against the target.
/// </summary>
internal static class OpenLoop
{
    /// <param name="send">Performs operation i; it records what it needs (e.g. when its answer came) itself.</param>
    /// <param name="measureFrom">Operations before this index are warm-up: sent on schedule, not recorded.</param>
    public static async Task<OpenLoopResult> RunAsync(
        long count,
        double rate,
        int senders,
        long measureFrom,
        ExpectedStatus expected,
        Func<long, CancellationToken, ValueTask<Outcome>> send,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(send);
        long start = Stopwatch.GetTimestamp();
        double ticksPerOperation = Stopwatch.Frequency / rate;
        long measureStart = start + (long)(measureFrom * ticksPerOperation);
        long next = -1;
        var stats = new WorkerStats[senders];
        var lags = new LatencyHistogram[senders];
        var tasks = new Task[senders];
        for (int s = 0; s < senders; s++)
        {
            var own = stats[s] = new WorkerStats();
            var lag = lags[s] = new LatencyHistogram();
            tasks[s] = Task.Run(
                async () =>
                {
                    while (!cancellationToken.IsCancellationRequested)
                    {
                        long i = Interlocked.Increment(ref next);
                        if (i >= count)
                        {
                            break;
                        }

                        long due = start + (long)(i * ticksPerOperation);
                        long wait = due - Stopwatch.GetTimestamp();
                        if (wait > 0)
                        {
                            await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), cancellationToken).ConfigureAwait(false);
                        }

                        long sent = Stopwatch.GetTimestamp();
                        Outcome outcome;
                        try
                        {
                            outcome = await send(i, cancellationToken).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                        {
                            break;
                        }
                        catch (OperationCanceledException e)
                        {
                            outcome = new Outcome(WorkerStats.TimeoutStatus, e.Message);
                        }
                        catch (Exception e) when (e is HttpRequestException or IOException or InvalidOperationException)
                        {
                            outcome = new Outcome(WorkerStats.ExceptionStatus, e.GetType().Name + ": " + e.Message);
                        }

                        if (i >= measureFrom)
                        {
                            own.Record(outcome, expected, due, Stopwatch.GetTimestamp());
                            lag.Record((long)((sent - due) * (1e9 / Stopwatch.Frequency)));
                        }
                    }
                },
                CancellationToken.None);
        }

        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Interrupted while waiting for a due time: report what was sent.
        }

        var sendLag = new LatencyHistogram();
        foreach (var lag in lags)
        {
            sendLag.Add(lag);
        }

        return new OpenLoopResult(LoadResult.From(stats, measureStart, 1), sendLag);
    }
}

/// <summary>The recorded operations (latency from their due time) and how late each one was sent.</summary>
internal sealed record OpenLoopResult(LoadResult Load, LatencyHistogram SendLag);
