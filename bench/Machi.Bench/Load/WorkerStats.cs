using System.Diagnostics;
using System.Globalization;

namespace Machi.Bench.Load;

/// <summary>What one worker measured. Owned by that worker alone, so recording takes no lock.</summary>
internal sealed class WorkerStats
{
    /// <summary>Pseudo-status for a request that timed out.</summary>
    public const int TimeoutStatus = -1;

    /// <summary>Pseudo-status for a request that failed without a response (connection refused, reset, …).</summary>
    public const int ExceptionStatus = -2;

    private const int MaxSampleLength = 400;
    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    public LatencyHistogram Latency { get; } = new();

    public long Ok { get; private set; }

    /// <summary>Errors by status; allocated only when the first error happens.</summary>
    public Dictionary<int, long>? Errors { get; private set; }

    /// <summary>The first thing the target said for each error status, for diagnosis.</summary>
    public Dictionary<int, string>? Samples { get; private set; }

    public long LastEnd { get; private set; }

    public void Record(Outcome outcome, ExpectedStatus expected, long startTimestamp, long endTimestamp)
    {
        LastEnd = endTimestamp;
        if (expected.Contains(outcome.Status))
        {
            Ok++;
            Latency.Record((long)((endTimestamp - startTimestamp) * NanosecondsPerTick));
            return;
        }

        Errors ??= [];
        Samples ??= [];
        Errors[outcome.Status] = Errors.GetValueOrDefault(outcome.Status) + 1;
        if (outcome.Detail is { } detail && !Samples.ContainsKey(outcome.Status))
        {
            Samples[outcome.Status] = detail.Length <= MaxSampleLength ? detail : detail[..MaxSampleLength] + "…";
        }
    }

    public static string StatusName(int status) => status switch
    {
        TimeoutStatus => "timeout",
        ExceptionStatus => "exception",
        _ => status.ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>The merged measurements of one run against one target.</summary>
internal sealed class LoadResult
{
    private LoadResult(LatencyHistogram latency, long ok, SortedDictionary<string, long> errors,
        SortedDictionary<string, string> samples, double elapsedSeconds, int entitiesPerRequest)
    {
        Latency = latency;
        Ok = ok;
        Errors = errors;
        ErrorSamples = samples;
        ElapsedSeconds = elapsedSeconds;
        EntitiesPerRequest = entitiesPerRequest;
    }

    /// <summary>Latency of the successful requests only; failures are counted in <see cref="Errors"/>.</summary>
    public LatencyHistogram Latency { get; }

    public long Ok { get; }

    public IReadOnlyDictionary<string, long> Errors { get; }

    public IReadOnlyDictionary<string, string> ErrorSamples { get; }

    public long ErrorCount
    {
        get
        {
            long total = 0;
            foreach (var count in Errors.Values)
            {
                total += count;
            }

            return total;
        }
    }

    public double ElapsedSeconds { get; }

    public int EntitiesPerRequest { get; }

    /// <summary>Successful requests per second of the measured window.</summary>
    public double RequestsPerSecond => ElapsedSeconds > 0 ? Ok / ElapsedSeconds : 0;

    public double EntitiesPerSecond => RequestsPerSecond * EntitiesPerRequest;

    internal static LoadResult From(IReadOnlyList<WorkerStats> workers, long measureStart, int entitiesPerRequest)
    {
        var latency = new LatencyHistogram();
        var errors = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var samples = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long ok = 0;
        long lastEnd = measureStart;
        foreach (var worker in workers)
        {
            latency.Add(worker.Latency);
            ok += worker.Ok;
            lastEnd = Math.Max(lastEnd, worker.LastEnd);
            if (worker.Errors is null)
            {
                continue;
            }

            foreach (var (status, count) in worker.Errors)
            {
                string name = WorkerStats.StatusName(status);
                errors[name] = errors.GetValueOrDefault(name) + count;
            }

            foreach (var (status, sample) in worker.Samples!)
            {
                samples.TryAdd(WorkerStats.StatusName(status), sample);
            }
        }

        double elapsed = (double)(lastEnd - measureStart) / Stopwatch.Frequency;
        return new LoadResult(latency, ok, errors, samples, elapsed, entitiesPerRequest);
    }
}
