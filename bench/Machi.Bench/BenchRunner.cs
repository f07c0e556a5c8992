using System.Globalization;
using System.Text.Json;
using Machi.Bench.Baseline;
using Machi.Bench.Load;
using Machi.Bench.Push;
using Machi.Bench.Reporting;
using Machi.Bench.Scenarios;
using Machi.Bench.Server;

namespace Machi.Bench;

/// <summary>
/// A whole run: the scenarios on the broker, the memory measurement on a fresh broker, the same scenarios on
/// raw SQLite (each after the previous one has finished, so they never share the cores), then the results file
/// and the summary.
/// </summary>
internal sealed class BenchRunner(BenchOptions options, TextWriter output, TextWriter progress)
{
    private const string Interrupted = "interrupted";

    /// <summary>Exit codes: 0 all requests succeeded; 1 the run could not be completed; 3 it completed but some
    /// requests failed (they are in the summary and the results file).</summary>
    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        string root = RepositoryRoot();
        var started = DateTimeOffset.UtcNow;
        var machine = MachineInfo.Collect(root);
        if (machine.LoadAverageAtStart is { } load && load > machine.Cores * 0.25)
        {
            await progress.WriteLineAsync(
                $"warning: load average {load:0.0} on {machine.Cores} cores before the run; other work will skew the figures").ConfigureAwait(false);
        }

        var documents = new VehicleDocuments(options.Seed, options.ValueVariants);
        var problems = new List<string>();
        var brokerRuns = new List<ScenarioRun>();
        var rawRuns = new List<ScenarioRun>();
        byte[]? floorBody = null;
        ScenarioRun? floorRun = null;
        ServerReport? server = null;
        MemoryReport? memory = null;

        try
        {
            if (options.Broker && options.Scenarios.Count > 0)
            {
                (server, floorBody) = await RunBrokerAsync(root, documents, brokerRuns, problems, cancellationToken).ConfigureAwait(false);
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (floorBody is { } body)
            {
                floorRun = await RunHttpFloorAsync(body, documents, cancellationToken).ConfigureAwait(false);
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (options.Broker && options.MemoryEntities > 0)
            {
                memory = await MeasureMemoryAsync(root, documents, problems, cancellationToken).ConfigureAwait(false);
            }

            if (options.Baseline && options.Scenarios.Count > 0)
            {
                await RunBaselineAsync(documents, rawRuns, progress.WriteLine, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (BenchFailure e)
        {
            problems.Add(e.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (!problems.Contains(Interrupted))
            {
                problems.Add(Interrupted);
            }
        }

        var report = new BenchReport(
            started.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            machine,
            Parameters(),
            server,
            rawRuns.Count > 0
                ? options.BaselinePostgres is not null
                    ? new BaselineReport("PostgreSQL (Npgsql)", "on", PostgresTarget.Description)
                    : new BaselineReport(
                        "SQLite (Microsoft.Data.Sqlite)",
                        options.BaselineSynchronous,
                        "WAL; mmap 256 MiB; reads: one connection and prepared SELECT per worker; writes: one writer thread, "
                        + $"group commit of up to {GroupCommitWriter.MaxGroup} queued operations per IMMEDIATE transaction, prepared "
                        + "INSERT / INSERT … ON CONFLICT DO UPDATE / UPDATE … json_patch")
                : null,
            Combine(brokerRuns, rawRuns, floorRun),
            memory,
            problems);

        await output.WriteAsync(SummaryTable.Render(report)).ConfigureAwait(false);
        if (report.Scenarios.Count > 0 || report.Memory is not null)
        {
            await output.WriteLineAsync($"results: {WriteResults(report, root, started)}").ConfigureAwait(false);
        }

        if (problems.Count > 0)
        {
            return 1;
        }

        return HasErrors(report) ? 3 : 0;
    }

    /// <returns>What the broker reported, and its answer to a read of entity 0 when the HTTP floor is to serve it.</returns>
    private async Task<(ServerReport Server, byte[]? FloorBody)> RunBrokerAsync(
        string root, VehicleDocuments documents, List<ScenarioRun> runs, List<string> problems, CancellationToken cancellationToken)
    {
        var server = await StartServerAsync(root, cancellationToken).ConfigureAwait(false);
        await using (server.ConfigureAwait(false))
        {
            using var target = new BrokerTarget(
                server.BaseUri, options.EffectiveConnections, TimeSpan.FromSeconds(options.TimeoutSeconds), server.Problem, server.ProcessId);
            byte[]? floorBody = null;
            try
            {
                // A broker launched here starts empty; one given with --url may hold a previous run's entities, so
                // new ones are numbered from this run's start time (bench-1764000000000000, …) and never collide.
                long firstNewId = server.Launched ? 0 : DateTimeOffset.UtcNow.ToUnixTimeSeconds() * 1_000_000;
                await SuiteRunner.RunAsync(target, options, documents, firstNewId, runs, progress.WriteLine, cancellationToken)
                    .ConfigureAwait(false);
                if (options.HttpFloor && runs.Exists(r => r.Kind == ScenarioKind.Read))
                {
                    floorBody = await target.ReadEntityAsync(0, cancellationToken).ConfigureAwait(false);
                }

                if (options.Scenarios.Contains(ScenarioKind.Notify))
                {
                    runs.Add(await NotifyScenario.RunAsync(server, options, progress.WriteLine, cancellationToken).ConfigureAwait(false));
                    target.EnsureAlive();
                }

                if (options.Scenarios.Contains(ScenarioKind.Sse))
                {
                    runs.Add(await SseScenario.RunAsync(server, options, progress.WriteLine, cancellationToken).ConfigureAwait(false));
                    target.EnsureAlive();
                }
            }
            catch (BenchFailure e)
            {
                problems.Add(e.Message);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                problems.Add(Interrupted);
            }

            var memory = server.ReadMemory();
            bool failed = problems.Count > 0 || runs.Exists(r => r.Result.ErrorCount > 0);
            string? log = failed ? server.KeepLog() : null;
            if (log is not null)
            {
                await progress.WriteLineAsync($"broker log kept: {log}").ConfigureAwait(false);
            }

            return (new ServerReport(
                server.BaseUri.AbsoluteUri.TrimEnd('/'), server.Launched, server.Dll, memory?.ResidentBytes, memory?.PeakResidentBytes, log,
                !server.Launched ? null : options.ServerDatabase is null ? "sqlite" : "postgresql", memory?.ProportionalBytes), floorBody);
        }
    }

    /// <summary>
    /// The read scenario against the HTTP floor, launched once the broker has stopped so that they never share the
    /// cores: same workers, connections, warm-up and duration, the same ids asked for.
    /// </summary>
    private async Task<ScenarioRun> RunHttpFloorAsync(byte[] body, VehicleDocuments documents, CancellationToken cancellationToken)
    {
        await progress.WriteLineAsync($"starting the HTTP floor: every read answered with the broker's {body.Length:N0}-byte answer for one entity")
            .ConfigureAwait(false);
        var floor = await BrokerServer.LaunchHttpFloorAsync(body, TimeSpan.FromSeconds(options.StartupTimeoutSeconds), cancellationToken).ConfigureAwait(false);
        await using (floor.ConfigureAwait(false))
        {
            using var target = new BrokerTarget(
                floor.BaseUri, options.EffectiveConnections, TimeSpan.FromSeconds(options.TimeoutSeconds), floor.Problem, floor.ProcessId, "HTTP floor");
            var workload = new Workload(
                documents, options.Concurrency, options.BatchConcurrency, options.BatchSize, options.Entities, new IdAllocator(0), null, options.Seed);

            return await SuiteRunner.RunOneAsync(target, ScenarioKind.Read, workload, options.MeasuredPlan, progress.WriteLine, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<MemoryReport> MeasureMemoryAsync(
        string root, VehicleDocuments documents, List<string> problems, CancellationToken cancellationToken)
    {
        var server = await StartServerAsync(root, cancellationToken).ConfigureAwait(false);
        await using (server.ConfigureAwait(false))
        {
            if (server.ProcessId is null)
            {
                await progress.WriteLineAsync("memory: the broker's process is unknown, so its RSS is not reported (give --server-pid)")
                    .ConfigureAwait(false);
            }

            var idle = server.ReadMemory();
            using var target = new BrokerTarget(server.BaseUri, options.BatchConcurrency, TimeSpan.FromSeconds(options.TimeoutSeconds), server.Problem);
            var slices = new PreloadSlices(options.MemoryEntities, options.BatchSize);
            var workload = new Workload(
                documents, options.Concurrency, options.BatchConcurrency, options.BatchSize, 0, new IdAllocator(0), slices, options.Seed);
            var run = await SuiteRunner.RunOneAsync(
                    target,
                    ScenarioKind.Preload,
                    workload,
                    RunPlan.Count(slices.BatchCount, TimeSpan.FromSeconds(options.MaxDurationSeconds)),
                    progress.WriteLine,
                    cancellationToken)
                .ConfigureAwait(false);
            var afterLoad = server.ReadMemory();
            await progress.WriteLineAsync($"memory: waiting {options.SettleSeconds:0.#} s for the broker to settle …").ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(options.SettleSeconds), cancellationToken).ConfigureAwait(false);
            var afterSettle = server.ReadMemory();
            if (run.Result.ErrorCount > 0 && server.KeepLog() is { } log)
            {
                problems.Add($"the memory load had {run.Result.ErrorCount} errors; broker log: {log}");
            }

            return new MemoryReport(
                options.MemoryEntities,
                idle?.ResidentBytes,
                afterLoad?.ResidentBytes,
                afterSettle?.ResidentBytes,
                afterSettle?.PeakResidentBytes,
                options.SettleSeconds,
                server.DataDirectoryBytes(),
                LoadReport.From(run.Result, null),
                afterSettle?.ProportionalBytes);
        }
    }

    private async Task RunBaselineAsync(
        VehicleDocuments documents, List<ScenarioRun> runs, Action<string> report, CancellationToken cancellationToken)
    {
        if (options.BaselinePostgres is { } connectionString)
        {
            using var postgres = new PostgresTarget(connectionString, documents);
            await SuiteRunner.RunAsync(postgres, options, documents, 0, runs, report, cancellationToken).ConfigureAwait(false);
            return;
        }

        var directory = Directory.CreateTempSubdirectory("machi-bench-raw-");
        try
        {
            using var target = new SqliteTarget(Path.Combine(directory.FullName, "machi.db"), options.BaselineSynchronous, documents);
            await SuiteRunner.RunAsync(target, options, documents, 0, runs, report, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private async Task<BrokerServer> StartServerAsync(string root, CancellationToken cancellationToken)
    {
        if (options.Url is { } url)
        {
            return BrokerServer.External(url, options.ServerPid);
        }

        string dll = options.ServerDll ?? Path.Combine(root, "src", "Machi.Host", "bin", "Release", "net10.0", "machi.dll");
        await progress.WriteLineAsync($"starting the broker: {dll}").ConfigureAwait(false);
        var server = await BrokerServer.LaunchAsync(dll, root, TimeSpan.FromSeconds(options.StartupTimeoutSeconds), cancellationToken,
            database: options.ServerDatabase).ConfigureAwait(false);
        await progress.WriteLineAsync($"broker healthy at {server.BaseUri} (pid {server.ProcessId}, data {server.DataDirectory})")
            .ConfigureAwait(false);
        return server;
    }

    private static List<ScenarioReport> Combine(List<ScenarioRun> broker, List<ScenarioRun> raw, ScenarioRun? floor)
    {
        var reports = new List<ScenarioReport>();
        var kinds = new List<ScenarioKind>();
        foreach (var run in broker)
        {
            kinds.Add(run.Kind);
        }

        foreach (var run in raw)
        {
            if (!kinds.Contains(run.Kind))
            {
                kinds.Add(run.Kind);
            }
        }

        foreach (var kind in kinds)
        {
            var b = broker.Find(r => r.Kind == kind);
            var r = raw.Find(r => r.Kind == kind);
            double? ratio = b is not null && r is not null && r.Result.RequestsPerSecond > 0
                ? Math.Round(b.Result.RequestsPerSecond / r.Result.RequestsPerSecond, 4)
                : null;
            reports.Add(new ScenarioReport(
                Scenario.Name(kind),
                Scenario.Description(kind),
                b?.Result.EntitiesPerRequest ?? r!.Result.EntitiesPerRequest,
                b is null ? null : LoadReport.From(b),
                r is null ? null : LoadReport.From(r.Result, r.Note),
                ratio,
                b?.Push,
                floor is not null && floor.Kind == kind ? LoadReport.From(floor) : null));
        }

        return reports;
    }

    private static bool HasErrors(BenchReport report)
    {
        foreach (var s in report.Scenarios)
        {
            if (s.Broker is { Errors: > 0 } || s.Baseline is { Errors: > 0 } || s.HttpFloor is { Errors: > 0 })
            {
                return true;
            }
        }

        return report.Memory is { Load.Errors: > 0 };
    }

    private ParametersReport Parameters() => new(
        options.ScenarioLabel,
        options.Concurrency,
        options.EffectiveConnections,
        options.BatchConcurrency,
        options.BatchSize,
        options.WarmupSeconds,
        options.DurationSeconds,
        options.Requests,
        options.Entities,
        options.MemoryEntities,
        options.SettleSeconds,
        options.Broker,
        options.Baseline,
        options.Seed,
        options.Scenarios.Any(Scenario.IsPush)
            ? new PushParametersReport(
                options.NotifyRate, options.SseRate, options.Subscriptions, options.Fanout, options.SharedEndpoint, options.SseClients, options.Concurrency, options.DrainSeconds)
            : null,
        options.Scenarios.Any(Scenario.IsQuery) ? options.QueryEntities : null,
        options.Scenarios.Any(Scenario.IsQuery) ? options.QueryConcurrency : null,
        options.ValueVariants);

    private string WriteResults(BenchReport report, string root, DateTimeOffset started)
    {
        string directory = options.ResultsDirectory ?? Path.Combine(root, "bench", "results");
        Directory.CreateDirectory(directory);
        string path = Path.Combine(
            directory,
            started.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) + "-" + options.ScenarioLabel + ".json");
        File.WriteAllText(path, JsonSerializer.Serialize(report, ReportJsonContext.Default.BenchReport) + "\n");
        return path;
    }

    /// <summary>The checkout holding Machi.slnx, seen from the working directory or from this program.</summary>
    internal static string RepositoryRoot()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "Machi.slnx")))
                {
                    return directory.FullName;
                }
            }
        }

        return Environment.CurrentDirectory;
    }
}
