using System.Diagnostics;
using Machi.Bench.Load;
using Machi.Bench.Reporting;

namespace Machi.Bench.Scenarios;

/// <summary>One scenario's measurements on one target.</summary>
internal sealed record ScenarioRun(ScenarioKind Kind, LoadResult Result, string? Note)
{
    /// <summary>Delivery measurements of a push scenario.</summary>
    public PushReport? Push { get; init; }

    /// <summary>The server's CPU time over the measured part of the run, per successful request; null when it could
    /// not be read (no server process, or a run counted in requests rather than seconds).</summary>
    public double? ServerCpuMicrosecondsPerRequest { get; init; }

    /// <summary>The server's CPU over the measured part, as a percentage of one core (200: both cores of two).</summary>
    public double? ServerCpuPercent { get; init; }

    /// <summary>The busiest server thread's CPU over the measured part, as a percentage of one core: near 100 means one
    /// thread (the SQLite writer, say) is what limits the run, whatever the cores have left.</summary>
    public double? ServerBusiestThreadPercent { get; init; }
}

/// <summary>Runs the chosen scenarios against one target: the preload first when any scenario needs it, then each
/// scenario in turn, with fresh workers each time.</summary>
internal static class SuiteRunner
{
    /// <param name="firstNewId">The first number for entities that create and batch-upsert add (the preloaded ones
    /// are always 0…entities-1, so a rerun upserts the same ones).</param>
    /// <param name="runs">Receives each scenario as it completes, so what was measured survives a later failure.</param>
    public static async Task RunAsync(
        IScenarioTarget target,
        BenchOptions options,
        VehicleDocuments documents,
        long firstNewId,
        List<ScenarioRun> runs,
        Action<string> progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentNullException.ThrowIfNull(progress);

        var maxDuration = TimeSpan.FromSeconds(options.MaxDurationSeconds);
        var workload = new Workload(
            documents, options.Concurrency, options.BatchConcurrency, options.BatchSize, 0, new IdAllocator(firstNewId), null, options.Seed)
        {
            QueryConcurrency = options.QueryConcurrency,
        };

        bool needsPreload = false;
        foreach (var kind in options.Scenarios)
        {
            needsPreload |= Scenario.UsesPreloadedEntities(kind);
        }

        if (needsPreload)
        {
            var slices = new PreloadSlices(options.Entities, options.BatchSize);
            var preload = await RunOneAsync(
                target, ScenarioKind.Preload, workload with { Slices = slices }, RunPlan.Count(slices.BatchCount, maxDuration), progress, cancellationToken)
                .ConfigureAwait(false);
            runs.Add(preload);
            target.EnsureAlive();
            if (preload.Result.ErrorCount > 0 || preload.Result.Ok < slices.BatchCount)
            {
                progress($"{target.Name}: the preload did not store all {options.Entities} entities; update and read will count errors");
            }

            workload = workload with { Preloaded = options.Entities, Ids = new IdAllocator(Math.Max(firstNewId, options.Entities)) };
        }

        if (options.Scenarios.Any(k => Scenario.IsQuery(k) && target.Supports(k)) && options.Preloaded)
        {
            progress($"{target.Name}: the query entities are taken as loaded already (--preloaded)");
            workload = workload with { City = new CityDocuments(options.Seed) };
        }
        else if (options.Scenarios.Any(k => Scenario.IsQuery(k) && target.Supports(k)))
        {
            var city = new CityDocuments(options.Seed);
            var slices = new PreloadSlices(options.QueryEntities, options.BatchSize);
            var preload = await RunOneAsync(
                target, ScenarioKind.CityPreload, workload with { Slices = slices, City = city }, RunPlan.Count(slices.BatchCount, maxDuration), progress, cancellationToken)
                .ConfigureAwait(false);
            runs.Add(preload);
            target.EnsureAlive();
            await target.SettleAsync(cancellationToken).ConfigureAwait(false);
            workload = workload with { City = city };
        }

        if (options.Scenarios.Any(k => Scenario.IsTemporal(k) && target.Supports(k)))
        {
            var total = (long)Scenario.OneEntityInstances + ((long)Scenario.ManyEntities * Scenario.ManyEntityInstances);
            var slices = new PreloadSlices(total, Scenario.ManyEntityInstances);
            runs.Add(await RunOneAsync(
                target, ScenarioKind.HistoryPreload, workload with { Slices = slices, BatchSize = Scenario.ManyEntityInstances },
                RunPlan.Count(slices.BatchCount, maxDuration), progress, cancellationToken).ConfigureAwait(false));
            target.EnsureAlive();
        }

        var plan = options.MeasuredPlan;
        // The push scenarios run beside this suite (BenchRunner), with their own open-loop load and receivers.
        foreach (var kind in options.Scenarios.Where(k => !Scenario.IsPush(k) && target.Supports(k)))
        {
            // Kept even when the target died during it: its errors show what happened.
            runs.Add(await RunOneAsync(target, kind, workload, plan, progress, cancellationToken).ConfigureAwait(false));
            target.EnsureAlive();
        }
    }

    public static async Task<ScenarioRun> RunOneAsync(
        IScenarioTarget target,
        ScenarioKind kind,
        Workload workload,
        RunPlan plan,
        Action<string> progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(progress);

        target.EnsureAlive();
        progress($"{target.Name}: {Scenario.Name(kind)} with {workload.WorkersFor(kind)} workers …");
        var workers = target.CreateWorkers(kind, workload);
        LoadResult result;
        TimeSpan? cpu;
        double? cpuPercent = null;
        double? busiest = null;
        try
        {
            // The server's CPU is read when the warm-up ends and after the last request: the CPU of the measured
            // requests (a duration run ends for all workers at once, so nothing else runs after it).
            var load = ClosedLoop.RunAsync(
                workers, plan, Scenario.Expected(kind), workload.EntitiesPerRequest(kind), target.BlockingWorkers, cancellationToken);
            await Task.Delay(plan.Warmup, cancellationToken).ConfigureAwait(false);
            var cpuBefore = target.ServerCpu();
            var threadsBefore = target.ServerThreads();
            var measured = Stopwatch.GetTimestamp();
            result = await load.ConfigureAwait(false);
            cpu = plan.Requests is null ? target.ServerCpu() - cpuBefore : null;
            if (cpu is not null)
            {
                var elapsed = Stopwatch.GetElapsedTime(measured);
                cpuPercent = Server.ProcessCpu.Percent(TimeSpan.Zero, cpu, elapsed);
                busiest = Server.ProcessCpu.BusiestThreadPercent(threadsBefore, target.ServerThreads(), elapsed);
            }
        }
        finally
        {
            target.ReleaseWorkers(workers);
        }

        cancellationToken.ThrowIfCancellationRequested();
        double? cpuPerRequest = cpu is { } c && result.Ok > 0 ? Math.Round(c.TotalMicroseconds / result.Ok, 1) : null;
        progress($"{target.Name}: {Scenario.Name(kind)}: {result.Ok:N0} ok, {result.ErrorCount:N0} errors, {result.RequestsPerSecond:N0} req/s"
            + (cpuPerRequest is { } us ? $", server CPU {us:N0} µs/request" : "")
            + (cpuPercent is { } all ? $", {all:N0} % of a core" : "")
            + (busiest is { } one ? $" (busiest thread {one:N0} %)" : ""));
        return new ScenarioRun(kind, result, target.Annotation())
        {
            ServerCpuMicrosecondsPerRequest = cpuPerRequest,
            ServerCpuPercent = cpuPercent,
            ServerBusiestThreadPercent = busiest,
        };
    }
}
