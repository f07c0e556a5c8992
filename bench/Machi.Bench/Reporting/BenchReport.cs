using System.Text.Json.Serialization;
using Machi.Bench.Load;

namespace Machi.Bench.Reporting;

/// <summary>The results file: bench/results/&lt;timestamp&gt;-&lt;scenario&gt;.json.</summary>
internal sealed record BenchReport(
    string Timestamp,
    MachineReport Machine,
    ParametersReport Parameters,
    ServerReport? Server,
    BaselineReport? Baseline,
    IReadOnlyList<ScenarioReport> Scenarios,
    MemoryReport? Memory,
    IReadOnlyList<string> Problems);

internal sealed record MachineReport(
    int Cores,
    string? CpuModel,
    long? MemoryBytes,
    string Os,
    string Architecture,
    string Dotnet,
    string? GitCommit,
    string? GitBranch,
    bool? GitDirty,
    double? LoadAverageAtStart);

internal sealed record ParametersReport(
    string Scenario,
    int Concurrency,
    int Connections,
    int BatchConcurrency,
    int BatchSize,
    double WarmupSeconds,
    double DurationSeconds,
    long? Requests,
    int Entities,
    int MemoryEntities,
    double SettleSeconds,
    bool Broker,
    bool Baseline,
    int Seed);

internal sealed record ServerReport(string Url, bool Launched, string? Dll, long? RssBytesAtEnd, long? PeakRssBytes, string? Log);

internal sealed record BaselineReport(string Engine, string Synchronous, string Description);

internal sealed record ScenarioReport(
    string Name,
    string Description,
    int EntitiesPerRequest,
    LoadReport? Broker,
    LoadReport? Baseline,
    double? BrokerOverRaw);

internal sealed record LoadReport(
    long Requests,
    long Errors,
    double ElapsedSeconds,
    double RequestsPerSecond,
    double EntitiesPerSecond,
    LatencyReport LatencyMs,
    IReadOnlyDictionary<string, long> ErrorsByStatus,
    IReadOnlyDictionary<string, string> ErrorSamples,
    string? Note)
{
    public static LoadReport From(LoadResult result, string? note)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new LoadReport(
            result.Ok,
            result.ErrorCount,
            Math.Round(result.ElapsedSeconds, 3),
            Math.Round(result.RequestsPerSecond, 1),
            Math.Round(result.EntitiesPerSecond, 1),
            LatencyReport.From(result.Latency),
            result.Errors,
            result.ErrorSamples,
            note);
    }
}

/// <summary>Milliseconds, of successful requests only.</summary>
internal sealed record LatencyReport(double Min, double Mean, double P50, double P90, double P95, double P99, double P999, double Max)
{
    public static LatencyReport From(LatencyHistogram h)
    {
        ArgumentNullException.ThrowIfNull(h);
        return new LatencyReport(
            Ms(h.Count == 0 ? 0 : h.Min),
            Math.Round(h.Mean / 1e6, 4),
            Ms(h.ValueAtPercentile(50)),
            Ms(h.ValueAtPercentile(90)),
            Ms(h.ValueAtPercentile(95)),
            Ms(h.ValueAtPercentile(99)),
            Ms(h.ValueAtPercentile(99.9)),
            Ms(h.Max));
    }

    private static double Ms(long nanoseconds) => Math.Round(nanoseconds / 1e6, 4);
}

internal sealed record MemoryReport(
    int Entities,
    long? RssIdleBytes,
    long? RssAfterLoadBytes,
    long? RssAfterSettleBytes,
    long? PeakRssBytes,
    double SettleSeconds,
    long? DataDirectoryBytes,
    LoadReport Load);

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BenchReport))]
internal sealed partial class ReportJsonContext : JsonSerializerContext;
