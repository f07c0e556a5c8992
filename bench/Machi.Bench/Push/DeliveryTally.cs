using System.Diagnostics;
using Machi.Bench.Load;

namespace Machi.Bench.Push;

/// <summary>
/// Delivery latencies of the measured changes: for each change whose update succeeded and each receiver that should
/// have it, the time the receiver had it minus the time the 2xx arrived, or a miss. Counted after the run, from the
/// timestamps the writer and the receivers stored, so nothing is tallied while the load runs.
/// </summary>
internal sealed class DeliveryTally
{
    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    public LatencyHistogram Latency { get; } = new();

    public long Expected { get; private set; }

    public long Missing { get; private set; }

    /// <summary>Delivered before the update's 2xx reached the client (counted as 0 ms).</summary>
    public long BeforeResponse { get; private set; }

    /// <summary>Tallies one receiver; returns how many of its deliveries were missing.</summary>
    public long Add(ChangeWriter writer, long measureFrom, Func<long, long> receivedAt)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(receivedAt);
        long missing = 0;
        for (long change = measureFrom; change < writer.Changes; change++)
        {
            long responded = writer.RespondedAt(change);
            if (responded == 0)
            {
                continue;
            }

            Expected++;
            long received = receivedAt(change);
            if (received == 0)
            {
                missing++;
                continue;
            }

            if (received < responded)
            {
                BeforeResponse++;
            }

            Latency.Record((long)((received - responded) * NanosecondsPerTick));
        }

        Missing += missing;
        return missing;
    }

    /// <summary>Waits until <paramref name="done"/> or <paramref name="limit"/> has passed; returns the seconds waited.</summary>
    public static async Task<double> DrainAsync(Func<bool> done, TimeSpan limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(done);
        long start = Stopwatch.GetTimestamp();
        while (!done() && Stopwatch.GetElapsedTime(start) < limit)
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }

        return Math.Round(Stopwatch.GetElapsedTime(start).TotalSeconds, 3);
    }
}
