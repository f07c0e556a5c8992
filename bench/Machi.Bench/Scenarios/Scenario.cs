using Machi.Bench.Load;

namespace Machi.Bench.Scenarios;

internal enum ScenarioKind
{
    /// <summary>Batch-upserts the entities that update and read work on; run once, before them.</summary>
    Preload,
    Update,
    UpdateAttr,
    Read,
    Create,
    BatchUpsert,

    /// <summary>Batch-upserts the city entities the query scenarios search; run once, before them.</summary>
    CityPreload,
    QueryQ,
    QueryNear,
    QueryWithin,

    /// <summary>POST /temporal/entities of the history the temporal scenarios aggregate; run once, before them.</summary>
    HistoryPreload,
    TemporalOne,
    TemporalMany,

    /// <summary>Open-loop updates, each matching subscriptions whose notifications a receiver in the bench times.</summary>
    Notify,

    /// <summary>Open-loop updates watched by many event-stream clients.</summary>
    Sse,
}

internal static class Scenario
{
    /// <summary>The order <c>all</c> runs them in: the ones that work on the preloaded entities first, then the
    /// ones that grow the store.</summary>
    public static readonly IReadOnlyList<ScenarioKind> All =
        [ScenarioKind.Update, ScenarioKind.UpdateAttr, ScenarioKind.Read, ScenarioKind.Create, ScenarioKind.BatchUpsert,
         ScenarioKind.QueryQ, ScenarioKind.QueryNear, ScenarioKind.QueryWithin];

    /// <summary>What <c>queries</c> runs.</summary>
    public static readonly IReadOnlyList<ScenarioKind> Queries = [ScenarioKind.QueryQ, ScenarioKind.QueryNear, ScenarioKind.QueryWithin];

    /// <summary>What <c>temporal</c> runs (not part of <c>all</c>: its preload writes 1.1 million instances).</summary>
    public static readonly IReadOnlyList<ScenarioKind> Temporal = [ScenarioKind.TemporalOne, ScenarioKind.TemporalMany];

    /// <summary>What <c>push</c> runs (not part of <c>all</c>: they measure delivery, not request throughput).</summary>
    public static readonly IReadOnlyList<ScenarioKind> Push = [ScenarioKind.Notify, ScenarioKind.Sse];

    /// <summary>Every scenario that can be named, in the order they run.</summary>
    public static readonly IReadOnlyList<ScenarioKind> Named = [.. All, .. Temporal, .. Push];

    /// <summary>History preload: one entity with <see cref="OneEntityInstances"/> instances, then
    /// <see cref="ManyEntities"/> entities with <see cref="ManyEntityInstances"/> each.</summary>
    public const int OneEntityInstances = 100_000;

    public const int ManyEntities = 1_000;

    public const int ManyEntityInstances = 1_000;

    public static string Name(ScenarioKind kind) => kind switch
    {
        ScenarioKind.Preload => "preload",
        ScenarioKind.Update => "update",
        ScenarioKind.UpdateAttr => "update-attr",
        ScenarioKind.Read => "read",
        ScenarioKind.Create => "create",
        ScenarioKind.BatchUpsert => "batch-upsert",
        ScenarioKind.CityPreload => "city-preload",
        ScenarioKind.QueryQ => "query-q",
        ScenarioKind.QueryNear => "query-near",
        ScenarioKind.QueryWithin => "query-within",
        ScenarioKind.HistoryPreload => "history-preload",
        ScenarioKind.TemporalOne => "temporal-one",
        ScenarioKind.TemporalMany => "temporal-many",
        ScenarioKind.Notify => "notify",
        ScenarioKind.Sse => "sse",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static bool TryParse(string name, out ScenarioKind kind)
    {
        foreach (var candidate in Named)
        {
            if (string.Equals(Name(candidate), name, StringComparison.OrdinalIgnoreCase))
            {
                kind = candidate;
                return true;
            }
        }

        kind = default;
        return false;
    }

    public static string Description(ScenarioKind kind) => kind switch
    {
        ScenarioKind.Preload => "POST /entityOperations/upsert of the preloaded entities",
        ScenarioKind.Update => "PATCH /entities/{id}/attrs (speed, fuelLevel), random preloaded id",
        ScenarioKind.UpdateAttr => "PATCH /entities/{id}/attrs/speed, random preloaded id",
        ScenarioKind.Read => "GET /entities/{id}, random preloaded id",
        ScenarioKind.Create => "POST /entities, new unique id each request",
        ScenarioKind.BatchUpsert => "POST /entityOperations/upsert, batches of new entities",
        ScenarioKind.CityPreload => "POST /entityOperations/upsert of the city entities (5 types around Aizuwakamatsu's places)",
        ScenarioKind.QueryQ => "GET /entities?type=T&q=district==\"町字\" (default page: 20), random type and 町字",
        ScenarioKind.QueryNear => "GET /entities?georel=near;maxDistance==1000&geometry=Point (default page: 20), random place",
        ScenarioKind.QueryWithin => "GET /entities?georel=within&geometry=Polygon (1 km²) (default page: 20), random place",
        ScenarioKind.HistoryPreload => "POST /temporal/entities, 1,000 instances a request (1 entity × 100,000, then 1,000 × 1,000)",
        ScenarioKind.TemporalOne => "GET /temporal/entities/{id}?options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H, 100,000 instances",
        ScenarioKind.TemporalMany => "GET /temporal/entities?type=…&aggrMethods=avg&aggrPeriodDuration=PT1H&limit=1000, 1,000 entities × 1,000 instances",
        ScenarioKind.Notify => "PATCH /entities/{id}/attrs on schedule; each matches subscriptions notifying a local HTTP receiver",
        ScenarioKind.Sse => "PATCH /entities/{id}/attrs on schedule, watched by clients of GET /x-machi/stream",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static ExpectedStatus Expected(ScenarioKind kind) => kind switch
    {
        ScenarioKind.Create => new(201),
        ScenarioKind.Update or ScenarioKind.UpdateAttr or ScenarioKind.Notify or ScenarioKind.Sse => new(204),
        ScenarioKind.Read or ScenarioKind.QueryQ or ScenarioKind.QueryNear or ScenarioKind.QueryWithin or ScenarioKind.TemporalOne or ScenarioKind.TemporalMany => new(200),
        // 201 when it created entities, 204 when it only updated; 207 (some failed) is an error here.
        ScenarioKind.Preload or ScenarioKind.BatchUpsert or ScenarioKind.CityPreload or ScenarioKind.HistoryPreload => new(201, 204),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static bool UsesPreloadedEntities(ScenarioKind kind) =>
        kind is ScenarioKind.Update or ScenarioKind.UpdateAttr or ScenarioKind.Read;

    public static bool IsBatch(ScenarioKind kind) => kind is ScenarioKind.Preload or ScenarioKind.BatchUpsert or ScenarioKind.CityPreload or ScenarioKind.HistoryPreload;

    public static bool IsTemporal(ScenarioKind kind) => kind is ScenarioKind.TemporalOne or ScenarioKind.TemporalMany;

    /// <summary>Push scenarios run their own open-loop load and receivers, on the broker only.</summary>
    public static bool IsPush(ScenarioKind kind) => kind is ScenarioKind.Notify or ScenarioKind.Sse;

    public static bool IsQuery(ScenarioKind kind) => kind is ScenarioKind.QueryQ or ScenarioKind.QueryNear or ScenarioKind.QueryWithin;
}

/// <summary>Hands out entity numbers so that every created entity gets an id never used before in the run.</summary>
internal sealed class IdAllocator(long first)
{
    private long _next = first;

    public long Next() => Interlocked.Increment(ref _next) - 1;

    public long Take(int count) => Interlocked.Add(ref _next, count) - count;
}

/// <summary>Cuts entities 0…total-1 into batches that concurrent workers take one at a time.</summary>
internal sealed class PreloadSlices(long total, int batchSize)
{
    private long _nextBatch;

    public long BatchCount { get; } = (total + batchSize - 1) / batchSize;

    public (long First, int Count) Take()
    {
        long batch = Interlocked.Increment(ref _nextBatch) - 1;
        long first = batch * batchSize;
        int count = (int)Math.Clamp(total - first, 0, batchSize);
        return (first, count);
    }
}
