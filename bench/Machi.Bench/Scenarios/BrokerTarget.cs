using System.Globalization;
using System.Net;
using Machi.Bench.Load;

namespace Machi.Bench.Scenarios;

/// <summary>The broker's NGSI-LD API over HTTP/1.1 keep-alive connections.</summary>
internal sealed class BrokerTarget : IScenarioTarget, IDisposable
{
    private const string JsonMediaType = "application/json";

    private readonly HttpClient _client;
    private readonly Uri _entitiesUri;
    private readonly Uri _upsertUri;
    private readonly string _entitiesPath;
    private readonly Func<string?> _problem;
    private readonly int? _processId;
    private Uri[] _entityUris = [];
    private Uri[] _attrsUris = [];
    private Uri[] _speedUris = [];

    /// <param name="problem">Says why the broker can no longer be measured (it exited), or null.</param>
    /// <param name="processId">The broker's process, whose CPU time each scenario reports per request; null when unknown.</param>
    /// <param name="name">What the progress lines call it.</param>
    public BrokerTarget(Uri baseUri, int connections, TimeSpan requestTimeout, Func<string?> problem, int? processId = null, string name = "broker")
    {
        ArgumentNullException.ThrowIfNull(baseUri);
        _problem = problem;
        _processId = processId;
        Name = name;
        _entitiesPath = baseUri.AbsoluteUri.TrimEnd('/') + "/ngsi-ld/v1/entities";
        _entitiesUri = new Uri(_entitiesPath);
        _upsertUri = new Uri(baseUri.AbsoluteUri.TrimEnd('/') + "/ngsi-ld/v1/entityOperations/upsert");
        _client = CreateClient(connections, requestTimeout);
    }

    /// <summary>
    /// The access token every request sends: the launched broker's admin client's, or for a broker given with --url the
    /// MACHI_TOKEN environment variable (e.g. from <c>machi client add --admin</c> then the token endpoint).
    /// </summary>
    public static string? AccessToken { get; set; } = Environment.GetEnvironmentVariable("MACHI_TOKEN");

    public string Name { get; }

    public bool BlockingWorkers => false;

    /// <summary>One handler, up to <paramref name="connections"/> HTTP/1.1 keep-alive connections; with closed-loop
    /// workers each in-flight request holds one connection, so workers ≤ connections never queue in the client.</summary>
    public static HttpClient CreateClient(int connections, TimeSpan requestTimeout)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            UseCookies = false,
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        var client = new HttpClient(handler, disposeHandler: true)
        {
            Timeout = requestTimeout,
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        client.DefaultRequestHeaders.TryAddWithoutValidation("Accept", JsonMediaType);
        if (AccessToken is { Length: > 0 } token)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    public IReadOnlyList<ILoadWorker> CreateWorkers(ScenarioKind kind, Workload workload)
    {
        ArgumentNullException.ThrowIfNull(workload);
        if (Scenario.UsesPreloadedEntities(kind))
        {
            BuildEntityUris(workload.Preloaded);
        }

        var documents = workload.Documents;
        var expected = Scenario.Expected(kind);
        int count = workload.WorkersFor(kind);
        var workers = new ILoadWorker[count];
        for (int i = 0; i < count; i++)
        {
            var random = workload.RandomFor(i);
            Func<HttpRequestMessage> next = kind switch
            {
                ScenarioKind.Create => () => WithJson(HttpMethod.Post, _entitiesUri, documents.Entity(workload.Ids.Next())),
                ScenarioKind.Update => () => WithJson(
                    HttpMethod.Patch,
                    _attrsUris[random.Next(_attrsUris.Length)],
                    documents.UpdateBodies[random.Next(documents.UpdateBodies.Count)]),
                ScenarioKind.UpdateAttr => () => WithJson(
                    HttpMethod.Patch,
                    _speedUris[random.Next(_speedUris.Length)],
                    documents.SpeedBodies[random.Next(documents.SpeedBodies.Count)]),
                ScenarioKind.Read => () => new HttpRequestMessage(HttpMethod.Get, _entityUris[random.Next(_entityUris.Length)]),
                ScenarioKind.Preload => BatchRequests(workload, () => workload.Slices!.Take()),
                ScenarioKind.BatchUpsert => BatchRequests(workload, () => (workload.Ids.Take(workload.BatchSize), workload.BatchSize)),
                ScenarioKind.CityPreload => CityBatchRequests(workload),
                ScenarioKind.QueryQ => () => Get(QueryQ(workload.City!, random)),
                ScenarioKind.QueryNear => () => Get(QueryNear(workload.City!, random)),
                ScenarioKind.QueryWithin => () => Get(QueryWithin(workload.City!, random)),
                ScenarioKind.HistoryPreload => HistoryRequests(workload),
                ScenarioKind.TemporalOne => () => new HttpRequestMessage(HttpMethod.Get, new Uri(
                    TemporalPath + "/" + HistoryId(-1) + "?" + Aggregation)),
                ScenarioKind.TemporalMany => () => new HttpRequestMessage(HttpMethod.Get, new Uri(
                    TemporalPath + "?type=" + HistoryManyType + "&limit=1000&" + Aggregation)),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
            workers[i] = new HttpWorker(_client, next, expected);
        }

        return workers;
    }

    public bool Supports(ScenarioKind kind) => true;

    /// <summary>The body of the answer to a read of preloaded entity <paramref name="number"/>, as the read scenario gets it.</summary>
    public async Task<byte[]> ReadEntityAsync(long number, CancellationToken cancellationToken)
    {
        using var response = await _client.GetAsync(new Uri(_entitiesPath + "/" + VehicleDocuments.Id(number)), cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.OK
            ? body
            : throw new BenchFailure($"reading {VehicleDocuments.Id(number)} for the HTTP floor gave {(int)response.StatusCode}: {System.Text.Encoding.UTF8.GetString(body)}");
    }

    /// <summary>
    /// A temporal read makes the broker record every change committed so far in the history before it answers, so
    /// the queries are measured on a broker that has finished the preload's work rather than during it.
    /// </summary>
    public async Task SettleAsync(CancellationToken cancellationToken)
    {
        var uri = new Uri(_entitiesPath.Replace("/ngsi-ld/v1/entities", "/ngsi-ld/v1/temporal/entities/", StringComparison.Ordinal) + CityDocuments.IdPrefix + "0?lastN=1");
        for (var attempt = 0; attempt < 8; attempt++)
        {
            try
            {
                using var response = await _client.GetAsync(uri, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Still recording (a request times out after --timeout): ask again.
            }
        }
    }

    public void ReleaseWorkers(IReadOnlyList<ILoadWorker> workers)
    {
    }

    public void EnsureAlive()
    {
        if (_problem() is { } problem)
        {
            throw new BenchFailure(problem);
        }
    }

    public string? Annotation() => null;

    public TimeSpan? ServerCpu() => Server.ProcessCpu.Read(_processId);

    public Dictionary<int, TimeSpan> ServerThreads() => Server.ProcessCpu.ReadThreads(_processId);

    public void Dispose() => _client.Dispose();

    // The buffer is the worker's own and is rewritten only after its previous request has completed.
    private Func<HttpRequestMessage> BatchRequests(Workload workload, Func<(long First, int Count)> nextSlice)
    {
        var buffer = new byte[workload.Documents.MaxBatchLength(workload.BatchSize)];
        return () =>
        {
            var (first, count) = nextSlice();
            int length = workload.Documents.WriteBatch(first, count, buffer);
            return WithJson(HttpMethod.Post, _upsertUri, buffer, length);
        };
    }

    private Func<HttpRequestMessage> CityBatchRequests(Workload workload)
    {
        var buffer = new byte[CityDocuments.MaxBatchLength(workload.BatchSize)];
        return () =>
        {
            var (first, count) = workload.Slices!.Take();
            int length = workload.City!.WriteBatch(first, count, buffer);
            return WithJson(HttpMethod.Post, _upsertUri, buffer, length);
        };
    }

    private const string HistoryOneType = "HistoryBenchOne";
    private const string HistoryManyType = "HistoryBenchMany";
    private static readonly DateTimeOffset HistoryStart = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    // Average per hour of everything after the start: the aggregation.
    private static readonly string Aggregation =
        "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H&timerel=after&timeAt=" + Uri.EscapeDataString("2025-12-31T00:00:00Z");

    private string TemporalPath => _entitiesPath.Replace("/ngsi-ld/v1/entities", "/ngsi-ld/v1/temporal/entities", StringComparison.Ordinal);

    /// <summary>The entity of history batch n: -1 or a batch below 100 is the one big entity, others one each.</summary>
    private static string HistoryId(long entity) =>
        entity < 0 ? "urn:ngsi-ld:Vehicle:history-one" : "urn:ngsi-ld:Vehicle:history-" + entity.ToString(CultureInfo.InvariantCulture);

    // Batch b of 1,000 instances: the first 100 build one entity's 100,000 instances (every 30 s), the next 1,000 one
    // entity each (1,000 instances every minute).
    private Func<HttpRequestMessage> HistoryRequests(Workload workload)
    {
        var uri = new Uri(TemporalPath);
        return () =>
        {
            var (first, count) = workload.Slices!.Take();
            var batch = first / Scenario.ManyEntityInstances;
            var one = batch < Scenario.OneEntityInstances / Scenario.ManyEntityInstances;
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(count * 80);
            using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteString("id", HistoryId(one ? -1 : batch - (Scenario.OneEntityInstances / Scenario.ManyEntityInstances)));
                w.WriteString("type", one ? HistoryOneType : HistoryManyType);
                w.WriteStartArray("speed");
                for (var i = 0; i < count; i++)
                {
                    var n = one ? first + i : i;
                    w.WriteStartObject();
                    w.WriteString("type", "Property");
                    w.WriteNumber("value", (n * 7) % 61);
                    w.WriteString("observedAt", HistoryStart.AddSeconds(n * (one ? 30 : 60)).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            var body = buffer.WrittenSpan.ToArray();
            return WithJson(HttpMethod.Post, uri, body);
        };
    }

    private HttpRequestMessage Get(string query) => new(HttpMethod.Get, new Uri(_entitiesPath + "?" + query));

    // type + q equality on an indexed attribute: one of the five types in one 町字.
    private static string QueryQ(CityDocuments city, Random random) =>
        "type=" + CityDocuments.Types[random.Next(CityDocuments.Types.Length)]
        + "&q=" + Uri.EscapeDataString("district==\"" + city.Districts[random.Next(city.Districts.Count)] + "\"");

    private static string QueryNear(CityDocuments city, Random random)
    {
        var (lon, lat) = city.RandomPlace(random);
        return "georel=" + Uri.EscapeDataString("near;maxDistance==1000") + "&geometry=Point&coordinates="
            + Uri.EscapeDataString(string.Create(CultureInfo.InvariantCulture, $"[{lon:F6},{lat:F6}]"));
    }

    // A square of 1 km² around a random place.
    private static string QueryWithin(CityDocuments city, Random random)
    {
        var (lon, lat) = city.RandomPlace(random);
        var dLat = 0.5 / 111.32;
        var dLon = 0.5 / (111.32 * Math.Cos(lat * Math.PI / 180));
        var ring = string.Create(
            CultureInfo.InvariantCulture,
            $"[[[{lon - dLon:F6},{lat - dLat:F6}],[{lon + dLon:F6},{lat - dLat:F6}],[{lon + dLon:F6},{lat + dLat:F6}],[{lon - dLon:F6},{lat + dLat:F6}],[{lon - dLon:F6},{lat - dLat:F6}]]]");
        return "georel=within&geometry=Polygon&coordinates=" + Uri.EscapeDataString(ring);
    }

    private static HttpRequestMessage WithJson(HttpMethod method, Uri uri, byte[] body) =>
        WithJson(method, uri, body, body.Length);

    private static HttpRequestMessage WithJson(HttpMethod method, Uri uri, byte[] body, int length)
    {
        var content = new ByteArrayContent(body, 0, length);

        // A raw header string is written to the wire as it is; a parsed MediaTypeHeaderValue is re-formatted per request.
        content.Headers.TryAddWithoutValidation("Content-Type", JsonMediaType);
        return new HttpRequestMessage(method, uri) { Content = content };
    }

    private void BuildEntityUris(long count)
    {
        if (_entityUris.Length == count)
        {
            return;
        }

        _entityUris = new Uri[count];
        _attrsUris = new Uri[count];
        _speedUris = new Uri[count];
        for (int n = 0; n < count; n++)
        {
            string entity = _entitiesPath + "/" + VehicleDocuments.Id(n);
            _entityUris[n] = new Uri(entity);
            _attrsUris[n] = new Uri(entity + "/attrs");
            _speedUris[n] = new Uri(entity + "/attrs/speed");
        }
    }
}
