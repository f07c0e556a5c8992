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
    int Seed,
    PushParametersReport? Push = null,
    int? QueryEntities = null,
    int? QueryConcurrency = null,
    int ValueVariants = Scenarios.VehicleDocuments.DefaultVariants);

internal sealed record PushParametersReport(
    double NotifyRate, double SseRate, int Subscriptions, int Fanout, bool SharedEndpoint, int SseClients, int Senders, double DrainSeconds);

/// <param name="Storage">"sqlite" or "postgresql" for a broker the bench launched; null for one it was pointed at.</param>
internal sealed record ServerReport(string Url, bool Launched, string? Dll, long? RssBytesAtEnd, long? PeakRssBytes, string? Log, string? Storage = null, long? PssBytesAtEnd = null);

internal sealed record BaselineReport(string Engine, string Synchronous, string Description);

internal sealed record ScenarioReport(
    string Name,
    string Description,
    int EntitiesPerRequest,
    LoadReport? Broker,
    LoadReport? Baseline,
    double? BrokerOverRaw,
    PushReport? Push = null,
    LoadReport? HttpFloor = null);

/// <summary>
/// What a push scenario measured besides its update requests (which are <see cref="ScenarioReport.Broker"/>, their
/// latency counted from the time each was due): the delivery of every change to every receiver it should reach.
/// Delivery latency is the time a receiver had the change minus the time the update's 2xx reached the client, on
/// the bench's one clock; a delivery that beat the 2xx counts as 0 (and in <see cref="BeforeResponse"/>).
/// </summary>
internal sealed record PushReport(
    string Setup,
    double OfferedRate,
    long Expected,
    long Received,
    long Missing,
    long Duplicates,
    long BeforeResponse,
    LatencyReport DeliveryMs,
    LatencyReport SendLagMs,
    double DrainSeconds,
    long? RssBeforeBytes,
    long? RssAtEndBytes,
    long? PeakRssBytes,
    CpuReport Cpu,
    NotifyReport? Notify,
    StreamReport? Stream);

/// <summary>CPU used from the first update to the end of the drain, in % of one core (200 % = both of two cores).</summary>
internal sealed record CpuReport(double Seconds, double? BrokerPercent, double? BenchPercent);

internal sealed record NotifyReport(int Subscriptions, int Fanout, int Endpoints, long Unexpected, long? BrokerTimesSent, long? BrokerTimesFailed);

internal sealed record StreamReport(
    int Clients,
    int Connected,
    double ConnectSeconds,
    int ClientsWithMisses,
    long MostMissedByOneClient,
    int Dropped,
    int Closed,
    IReadOnlyDictionary<string, long> ConnectFailures);

internal sealed record LoadReport(
    long Requests,
    long Errors,
    double ElapsedSeconds,
    double RequestsPerSecond,
    double EntitiesPerSecond,
    LatencyReport LatencyMs,
    IReadOnlyDictionary<string, long> ErrorsByStatus,
    IReadOnlyDictionary<string, string> ErrorSamples,
    string? Note,
    double? ServerCpuMicrosecondsPerRequest = null,
    double? ServerCpuPercent = null,
    double? ServerBusiestThreadPercent = null)
{
    /// <summary>A broker run's report, with its server CPU (<see cref="Scenarios.ScenarioRun"/>).</summary>
    public static LoadReport From(Scenarios.ScenarioRun run) =>
        From(run.Result, run.Note, run.ServerCpuMicrosecondsPerRequest) with
        {
            ServerCpuPercent = run.ServerCpuPercent,
            ServerBusiestThreadPercent = run.ServerBusiestThreadPercent,
        };

    /// <param name="serverCpuMicrosecondsPerRequest">The broker's CPU time over the measured requests, per request.</param>
    public static LoadReport From(LoadResult result, string? note, double? serverCpuMicrosecondsPerRequest = null)
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
            note,
            serverCpuMicrosecondsPerRequest);
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
    LoadReport Load,
    long? PssAfterSettleBytes = null);

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BenchReport))]
internal sealed partial class ReportJsonContext : JsonSerializerContext;
