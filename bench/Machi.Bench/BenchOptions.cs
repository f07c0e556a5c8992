using System.Globalization;
using System.Net;
using Machi.Bench.Load;
using Machi.Bench.Scenarios;

namespace Machi.Bench;

/// <summary>The command line, parsed once into typed values.</summary>
internal sealed record BenchOptions
{
    public const string Usage = """
        Machi benchmark: load on the NGSI-LD broker, next to a raw SQLite baseline.

        usage: machi bench [options]        (or: dotnet run -c Release --project bench/Machi.Bench -- [options])

          --scenario LIST         create | update | update-attr | read | batch-upsert | query-q | query-near |
                                  query-within | queries | temporal-one | temporal-many | temporal | notify | sse |
                                  push | all | memory, or a comma-separated list (default: all; temporal and
                                  push are not part of all)
          --url URL               measure a running broker (loopback only) instead of launching one
          --server-pid PID        that broker's process id, to report its memory
          --server-dll PATH       broker to launch (default: src/Machi.Host/bin/Release/net10.0/machi.dll)
          --concurrency N         closed-loop workers (default: 64)
          --connections N         HTTP/1.1 keep-alive connections at most (default: = concurrency)
          --batch-concurrency N   workers for batch-upsert and preload (default: 4)
          --batch-size N          entities per upsert request (default: 1000)
          --warmup SECONDS        unrecorded warm-up per scenario (default: 15, until the JIT's tiering settles)
          --duration SECONDS      recorded time per scenario (default: 10)
          --requests N            record exactly N requests per scenario instead of a duration
          --entities N            entities preloaded for update, update-attr and read (default: 10000)
          --query-entities N      city entities preloaded for the query scenarios (default: 100000)
          --preloaded             the broker (--url) holds the query entities of an earlier run with the
                                  same --query-entities and --seed already: skip their preload
          --query-concurrency N   closed-loop workers of the query scenarios (default: 16)
          --rate N                push scenarios: changes per second sent on schedule (open loop)
                                  (default: notify 1000, sse 50)
          --subscriptions N       notify: subscriptions, each with its own endpoint (default: 100)
          --fanout N              notify: subscriptions each update matches (default: 1)
          --shared-endpoint       notify: all subscriptions notify one endpoint URL instead of one each
          --sse-clients N         sse: concurrent event-stream clients (default: 5000)
          --drain SECONDS         push: wait at most this long after the last change for what is still
                                  due to arrive (default: 10)
          --memory-entities N     also measure the broker's RSS holding N entities, on a fresh broker
                                  (default: off; the memory scenario alone uses 100000)
          --settle SECONDS        pause before the second RSS reading (default: 10)
          --baseline | --no-baseline
                                  run the same scenarios on raw SQLite too (default: on)
          --http-floor | --no-http-floor
                                  run read also against a bare Kestrel server that answers every read with
                                  the broker's answer for one entity: the floor any read has on this machine
                                  (default: on; needs a broker launched here or given with --url)
          --no-broker             run only the raw SQLite baseline
          --baseline-sync MODE    normal | full: the baseline's PRAGMA synchronous (default: full, as the broker)
          --baseline-postgres CONNSTRING
                                  run the raw baseline on PostgreSQL (Npgsql) instead of SQLite, in the
                                  schema machi_bench of that database (dropped and created at the start)
          --server-database CONNSTRING
                                  launch the broker on this PostgreSQL database (machi serve --database);
                                  give an empty database (the preloads and creates expect no entities)
          --timeout SECONDS       per request (default: 30)
          --max-duration SECONDS  cap on a --requests run or a preload (default: 600)
          --startup-timeout SECONDS
                                  wait for a launched broker's /health (default: 60)
          --seed N                seed of ids and values (default: 42)
          --value-variants N      different sets of attribute values the entities cycle through (default: 64;
                                  e.g. 4096 for values nearly all different, as real readings are)
          --results DIR           where the JSON goes (default: bench/results)
          --help
        """;

    public IReadOnlyList<ScenarioKind> Scenarios { get; init; } = Scenario.All;

    /// <summary>What --scenario said, for the results file name.</summary>
    public string ScenarioLabel { get; init; } = "all";

    public Uri? Url { get; init; }

    public int? ServerPid { get; init; }

    public string? ServerDll { get; init; }

    public int Concurrency { get; init; } = 64;

    public int? Connections { get; init; }

    public int BatchConcurrency { get; init; } = 4;

    public int BatchSize { get; init; } = 1000;

    public double WarmupSeconds { get; init; } = 15;

    public double DurationSeconds { get; init; } = 10;

    public long? Requests { get; init; }

    public int Entities { get; init; } = 10_000;

    public int MemoryEntities { get; init; }

    /// <summary>City entities preloaded for the query scenarios.</summary>
    public int QueryEntities { get; init; } = 100_000;

    /// <summary>The broker already holds the query entities (an earlier run's preload, same seed): do not load them again.</summary>
    public bool Preloaded { get; init; }

    /// <summary>Closed-loop workers of the query scenarios.</summary>
    public int QueryConcurrency { get; init; } = 16;

    public double SettleSeconds { get; init; } = 10;

    public bool Baseline { get; init; } = true;

    /// <summary>The read scenario is also run against the HTTP floor (<see cref="Server.HttpFloor"/>), after the broker.</summary>
    public bool HttpFloor { get; init; } = true;

    public bool Broker { get; init; } = true;

    /// <summary>How each scenario is measured: the warm-up, then the duration or the request count, capped.</summary>
    public RunPlan MeasuredPlan => new(
        TimeSpan.FromSeconds(WarmupSeconds), TimeSpan.FromSeconds(DurationSeconds), Requests, TimeSpan.FromSeconds(MaxDurationSeconds));

    public string BaselineSynchronous { get; init; } = "FULL";

    /// <summary>When set, the raw baseline writes to this PostgreSQL database instead of a SQLite file.</summary>
    public string? BaselinePostgres { get; init; }

    /// <summary>When set, the launched broker stores everything in this PostgreSQL database instead of SQLite.</summary>
    public string? ServerDatabase { get; init; }

    public double TimeoutSeconds { get; init; } = 30;

    public double MaxDurationSeconds { get; init; } = 600;

    public double StartupTimeoutSeconds { get; init; } = 60;

    public int Seed { get; init; } = 42;

    /// <summary>--value-variants: how many different sets of attribute values the entities cycle through.</summary>
    public int ValueVariants { get; init; } = Machi.Bench.Scenarios.VehicleDocuments.DefaultVariants;

    public string? ResultsDirectory { get; init; }

    public bool Help { get; init; }

    /// <summary>--rate: changes per second of the push scenarios (null: each scenario's default).</summary>
    public double? Rate { get; init; }

    public double NotifyRate => Rate ?? 1000;

    public double SseRate => Rate ?? 50;

    public int Subscriptions { get; init; } = 100;

    /// <summary>How many of the subscriptions each update matches.</summary>
    public int Fanout { get; init; } = 1;

    public bool SharedEndpoint { get; init; }

    public int SseClients { get; init; } = 5000;

    public double DrainSeconds { get; init; } = 10;

    public int EffectiveConnections => Connections ?? Concurrency;

    /// <summary>Parses <paramref name="args"/>; on a mistake returns null and says what is wrong.</summary>
    public static BenchOptions? Parse(IReadOnlyList<string> args, out string? error)
    {
        ArgumentNullException.ThrowIfNull(args);
        var options = new BenchOptions();
        error = null;
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string name = arg;
            string? inline = null;
            int equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && equals > 0)
            {
                name = arg[..equals];
                inline = arg[(equals + 1)..];
            }

            switch (name)
            {
                case "--help" or "-h":
                    options = options with { Help = true };
                    continue;
                case "--baseline" or "--no-baseline":
                    options = options with { Baseline = name == "--baseline" };
                    continue;
                case "--http-floor" or "--no-http-floor":
                    options = options with { HttpFloor = name == "--http-floor" };
                    continue;
                case "--no-broker":
                    options = options with { Broker = false };
                    continue;
                case "--shared-endpoint":
                    options = options with { SharedEndpoint = true };
                    continue;
                case "--preloaded":
                    options = options with { Preloaded = true };
                    continue;
            }

            string? value = inline ?? (i + 1 < args.Count ? args[++i] : null);
            if (value is null)
            {
                error = $"{name} needs a value";
                return null;
            }

            options = Apply(options, name, value, out error);
            if (options is null)
            {
                return null;
            }
        }

        error = Validate(options);
        return error is null ? options : null;
    }

    private static BenchOptions? Apply(BenchOptions o, string name, string value, out string? error)
    {
        error = null;
        switch (name)
        {
            case "--scenario":
                return ParseScenarios(o, value, out error);
            case "--url":
                if (!Uri.TryCreate(value, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                {
                    error = $"--url: not an http URL: {value}";
                    return null;
                }

                return o with { Url = url };
            case "--server-dll":
                return o with { ServerDll = Path.GetFullPath(value) };
            case "--results":
                return o with { ResultsDirectory = Path.GetFullPath(value) };
            case "--baseline-postgres":
                return o with { BaselinePostgres = value };
            case "--server-database":
                return o with { ServerDatabase = value };
            case "--baseline-sync":
                if (!value.Equals("normal", StringComparison.OrdinalIgnoreCase) && !value.Equals("full", StringComparison.OrdinalIgnoreCase))
                {
                    error = "--baseline-sync: normal or full";
                    return null;
                }

                return o with { BaselineSynchronous = value.ToUpperInvariant() };
            case "--rate":
                if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double rate) || rate <= 0 || rate > 1_000_000)
                {
                    error = $"--rate: not a rate per second: {value}";
                    return null;
                }

                return o with { Rate = rate };
        }

        if (name is "--warmup" or "--duration" or "--settle" or "--drain" or "--timeout" or "--max-duration" or "--startup-timeout")
        {
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) || seconds < 0 || seconds > 86_400)
            {
                error = $"{name}: not a number of seconds: {value}";
                return null;
            }

            return name switch
            {
                "--warmup" => o with { WarmupSeconds = seconds },
                "--duration" => o with { DurationSeconds = seconds },
                "--settle" => o with { SettleSeconds = seconds },
                "--timeout" => o with { TimeoutSeconds = seconds },
                "--max-duration" => o with { MaxDurationSeconds = seconds },
                "--drain" => o with { DrainSeconds = seconds },
                _ => o with { StartupTimeoutSeconds = seconds },
            };
        }

        if (name is not ("--concurrency" or "--connections" or "--batch-concurrency" or "--batch-size" or "--requests"
            or "--entities" or "--memory-entities" or "--server-pid" or "--seed" or "--value-variants" or "--query-entities" or "--query-concurrency"
            or "--subscriptions" or "--fanout" or "--sse-clients"))
        {
            error = $"unknown option: {name} (see --help)";
            return null;
        }

        if (!long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long number) || number < 0)
        {
            error = $"{name}: not a count: {value}";
            return null;
        }

        int count = (int)Math.Min(number, int.MaxValue);
        switch (name)
        {
            case "--concurrency":
                return o with { Concurrency = count };
            case "--connections":
                return o with { Connections = count };
            case "--batch-concurrency":
                return o with { BatchConcurrency = count };
            case "--batch-size":
                return o with { BatchSize = count };
            case "--requests":
                return o with { Requests = number };
            case "--entities":
                return o with { Entities = count };
            case "--memory-entities":
                return o with { MemoryEntities = count };
            case "--query-entities":
                return o with { QueryEntities = count };
            case "--query-concurrency":
                return o with { QueryConcurrency = count };
            case "--server-pid":
                return o with { ServerPid = count };
            case "--subscriptions":
                return o with { Subscriptions = count };
            case "--fanout":
                return o with { Fanout = count };
            case "--sse-clients":
                return o with { SseClients = count };
            case "--value-variants" when count < 1:
                error = $"{name}: at least 1";
                return null;
            case "--value-variants":
                return o with { ValueVariants = count };
            default:
                return o with { Seed = count };
        }
    }

    private static BenchOptions? ParseScenarios(BenchOptions o, string value, out string? error)
    {
        error = null;
        var chosen = new HashSet<ScenarioKind>();
        bool memory = false;
        foreach (string part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part.Equals("all", StringComparison.OrdinalIgnoreCase))
            {
                chosen.UnionWith(Scenario.All);
            }
            else if (part.Equals("queries", StringComparison.OrdinalIgnoreCase))
            {
                chosen.UnionWith(Scenario.Queries);
            }
            else if (part.Equals("temporal", StringComparison.OrdinalIgnoreCase))
            {
                chosen.UnionWith(Scenario.Temporal);
            }
            else if (part.Equals("push", StringComparison.OrdinalIgnoreCase))
            {
                chosen.UnionWith(Scenario.Push);
            }
            else if (part.Equals("memory", StringComparison.OrdinalIgnoreCase))
            {
                memory = true;
            }
            else if (Scenario.TryParse(part, out var kind))
            {
                chosen.Add(kind);
            }
            else
            {
                error = $"--scenario: unknown scenario {part} (create, update, update-attr, read, batch-upsert, query-q, query-near, query-within, queries, temporal-one, temporal-many, temporal, notify, sse, push, all, memory)";
                return null;
            }
        }

        if (chosen.Count == 0 && !memory)
        {
            error = "--scenario: name at least one scenario";
            return null;
        }

        // Keep the canonical order whatever order they were named in.
        var ordered = new List<ScenarioKind>();
        foreach (var kind in Scenario.Named)
        {
            if (chosen.Contains(kind))
            {
                ordered.Add(kind);
            }
        }

        return o with
        {
            Scenarios = ordered,
            ScenarioLabel = value.Replace(',', '+').ToLowerInvariant(),
            MemoryEntities = memory && o.MemoryEntities == 0 ? 100_000 : o.MemoryEntities,
        };
    }

    private static string? Validate(BenchOptions o)
    {
        if (o.Concurrency < 1 || o.BatchConcurrency < 1 || o.EffectiveConnections < 1)
        {
            return "--concurrency, --connections and --batch-concurrency must be at least 1";
        }

        if (!o.Broker && !o.Baseline)
        {
            return "--no-broker with --no-baseline leaves nothing to measure";
        }

        if (o.BatchSize < 1)
        {
            return "--batch-size must be at least 1";
        }

        if (o.Entities < 1)
        {
            return "--entities must be at least 1";
        }

        if (o.Requests is 0 || (o.Requests is null && o.DurationSeconds <= 0))
        {
            return "--duration and --requests must be positive";
        }

        if (o.Subscriptions < 1 || o.Fanout < 1 || o.Fanout > o.Subscriptions || o.Subscriptions % o.Fanout != 0)
        {
            return "--subscriptions must be at least 1 and a multiple of --fanout (at least 1)";
        }

        if (o.SseClients < 1)
        {
            return "--sse-clients must be at least 1";
        }

        if (o.Url is { } url && !IsLoopback(url))
        {
            return $"--url: the bench only sends load to this machine (127.0.0.0/8, localhost, [::1]), not {url.Host}";
        }

        return null;
    }

    private static bool IsLoopback(Uri url) =>
        url.IsLoopback || (IPAddress.TryParse(url.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));
}
