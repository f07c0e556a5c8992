using Machi.Bench.Load;

namespace Machi.Bench.Scenarios;

/// <summary>What the workers of one scenario share: the documents, the ids and the shape of the load.</summary>
internal sealed record Workload(
    VehicleDocuments Documents,
    int Concurrency,
    int BatchConcurrency,
    int BatchSize,
    long Preloaded,
    IdAllocator Ids,
    PreloadSlices? Slices,
    int Seed)
{
    /// <summary>The query scenarios' entities (null until a query scenario needs them).</summary>
    public CityDocuments? City { get; init; }

    public int QueryConcurrency { get; init; } = 16;

    // The temporal scenarios measure one user's aggregation: one worker.
    public int WorkersFor(ScenarioKind kind) =>
        Scenario.IsBatch(kind) ? BatchConcurrency : Scenario.IsQuery(kind) ? QueryConcurrency : Scenario.IsTemporal(kind) ? 1 : Concurrency;

    public int EntitiesPerRequest(ScenarioKind kind) => Scenario.IsBatch(kind) ? BatchSize : 1;

    /// <summary>Each worker draws ids and bodies from its own seeded source, so runs are repeatable.</summary>
    public Random RandomFor(int worker) => new(HashCode.Combine(Seed, worker));
}

/// <summary>Something the scenarios run against: the broker over HTTP, or SQLite directly.</summary>
internal interface IScenarioTarget
{
    /// <summary>"broker" or "raw".</summary>
    string Name { get; }

    /// <summary>True when the workers block (so each needs its own thread).</summary>
    bool BlockingWorkers { get; }

    IReadOnlyList<ILoadWorker> CreateWorkers(ScenarioKind kind, Workload workload);

    /// <summary>Waits until work the preload left behind (e.g. the broker recording history) is done.</summary>
    Task SettleAsync(CancellationToken cancellationToken);

    /// <summary>Whether this target can run the scenario (the raw baseline has no query engine).</summary>
    bool Supports(ScenarioKind kind);

    /// <summary>Called after each scenario with the workers it used.</summary>
    void ReleaseWorkers(IReadOnlyList<ILoadWorker> workers);

    /// <summary>Throws <see cref="BenchFailure"/> when the target can no longer be measured (server exited).</summary>
    void EnsureAlive();

    /// <summary>Anything worth saying about the scenario just run (e.g. how writes were grouped), or null.</summary>
    string? Annotation();

    /// <summary>CPU time the server process has used so far, or null when it cannot be read (no server process).</summary>
    TimeSpan? ServerCpu() => null;

    /// <summary>CPU time each thread of the server process has used so far, by thread id (empty: no server process).</summary>
    Dictionary<int, TimeSpan> ServerThreads() => [];
}
