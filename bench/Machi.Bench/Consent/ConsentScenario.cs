using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Bench.Load;
using Machi.Bench.Scenarios;
using Machi.Bench.Server;
using Machi.Broker.Storage;
using Machi.Trust;
using Machi.Trust.Clients;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Bench.Consent;

/// <summary>
/// Trust (issue 6): what the consent check costs. A city of <c>--residents</c> residents, each with a smart meter
/// (a personal entity of category <c>power</c>), and <c>--services</c> services; every resident consents to the
/// metering service (which stores the meters) and to <c>--consents</c> other services chosen at random. The same
/// requests — read one meter by id, and query the meters by <c>type</c> + <c>q</c> on the household — are sent by
/// the meter's owner (a resident signed in through authorization code + PKCE) and by a service holding the owner's
/// consent (client credentials, <c>Machi-Purpose</c>), in alternating rounds on the same server. The service's
/// requests are checked against the consents in SQL and appended to the hash-chained access log; the owner's are not.
/// </summary>
/// <remarks>
/// The consents are written into the database before the server starts (granting them through the consent page would
/// need a browser session per resident); accounts and clients are made as <c>machi user add</c> / <c>client add</c>
/// make them, tokens are got from the token endpoint, and the meters are stored over HTTP by the metering service
/// under its consents. Before measuring, the run checks that the rule holds: the owner and a consenting service see a
/// meter, a service without consent does not, and each service's count equals the residents who consented to it.
/// </remarks>
internal static class ConsentScenario
{
    public sealed record Settings(int Residents, int Services, int ConsentsPerResident, int Owners, int Concurrency, double WarmupSeconds,
        double DurationSeconds, int Rounds, string? ServerDll, string? ResultsDirectory);

    public const string Usage = """
        ./machi bench --scenario consent [--residents 10000] [--services 50] [--consents 5] [--owners 16] [--concurrency 16]
                                         [--warmup 3] [--duration 10] [--rounds 2] [--server-dll PATH] [--results DIR]
        """;

    private const string Password = "bench-resident-2026";
    private const string AdvicePurpose = "energy-advice";
    private const string MeteringPurpose = "metering";
    private const string Category = "power";
    private const string Entities = "ngsi-ld/v1/entities";
    private static readonly Uri RedirectUri = new("http://127.0.0.1:1/callback");
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static bool IsConsent(string[] args) => ScenarioArguments.Names(args, "consent");

    public static Settings? Parse(string[] args, out string? error)
    {
        var s = new Settings(10_000, 50, 5, 16, 16, 3, 10, 2, null, null);
        error = null;
        try
        {
            foreach (var (name, value) in ScenarioArguments.Pairs(args))
            {
                int Count() => (int)ScenarioArguments.Number(value);
                s = name switch
                {
                    "--scenario" => s,
                    "--residents" => s with { Residents = Count() },
                    "--services" => s with { Services = Count() },
                    "--consents" => s with { ConsentsPerResident = Count() },
                    "--owners" => s with { Owners = Count() },
                    "--concurrency" => s with { Concurrency = Count() },
                    "--warmup" => s with { WarmupSeconds = ScenarioArguments.Number(value) },
                    "--duration" => s with { DurationSeconds = ScenarioArguments.Number(value) },
                    "--rounds" => s with { Rounds = Count() },
                    "--server-dll" => s with { ServerDll = Path.GetFullPath(value) },
                    "--results" => s with { ResultsDirectory = Path.GetFullPath(value) },
                    _ => throw new FormatException($"unknown option {name} for --scenario consent"),
                };
            }
        }
        catch (FormatException e)
        {
            error = e.Message;
            return null;
        }

        if (s.Services < 2 || s.ConsentsPerResident < 1 || s.ConsentsPerResident >= s.Services || s.Owners < 1 || s.Owners > s.Residents
            || s.Concurrency < 1 || s.DurationSeconds <= 0 || s.Rounds < 1)
        {
            error = "--services ≥ 2, 1 ≤ --consents < --services, 1 ≤ --owners ≤ --residents, --concurrency ≥ 1, --duration > 0, --rounds ≥ 1";
            return null;
        }

        return s;
    }

    /// <summary>The city the run measures: who the residents are, which services they consented to.</summary>
    private sealed class City
    {
        /// <summary>Every resident's subject id; the first <see cref="Settings.Owners"/> have accounts and sign in.</summary>
        public required string[] Residents { get; init; }

        /// <summary>For each resident, the services (indexes into <see cref="Services"/>, never 0) given the advice consent.</summary>
        public required int[][] Consented { get; init; }

        public required string AppId { get; init; }

        /// <summary>Service 0 is the metering service, which every resident consented to and which stores the meters.</summary>
        public required (string Id, string Secret)[] Services { get; init; }
    }

    /// <summary>One resident who signs in, with a service holding their consent and one that does not.</summary>
    private sealed record Owner(string Subject, string Token, string Meter, string Household, int Consenting, int Stranger);

    public static async Task<int> RunAsync(Settings settings, string root, TextWriter output, CancellationToken ct)
    {
        City? city = null;
        var dll = settings.ServerDll ?? Path.Combine(root, "src", "Machi.Host", "bin", "Release", "net10.0", "machi.dll");
        await using var server = await BrokerServer.LaunchAsync(dll, root, TimeSpan.FromSeconds(60), ct,
            prepare: async (data, token) => city = await PrepareAsync(settings, data, output, token));
        await output.WriteLineAsync($"consent: server {server.BaseUri} (pid {server.ProcessId}), data {server.DataDirectory}");

        using var http = BrokerTarget.CreateClient(settings.Concurrency, TimeSpan.FromSeconds(30));
        http.BaseAddress = server.BaseUri;
        http.DefaultRequestHeaders.Authorization = null;
        var serviceTokens = new string[city!.Services.Length];
        for (var s = 0; s < serviceTokens.Length; s++)
        {
            serviceTokens[s] = await ClientCredentialsAsync(http, city.Services[s], ct);
        }

        await StoreMetersAsync(http, city, serviceTokens[0], output, ct);
        var owners = new Owner[settings.Owners];
        for (var i = 0; i < owners.Length; i++)
        {
            var consenting = city.Consented[i][0];
            var stranger = Enumerable.Range(1, city.Services.Length - 1).First(s => !city.Consented[i].Contains(s));
            owners[i] = new Owner(city.Residents[i], await SignInAsync(server.BaseUri, city.AppId, Email(i), ct), MeterId(i), Household(i), consenting, stranger);
        }

        var problems = await CheckTheRuleAsync(http, city, owners, serviceTokens, ct);
        if (problems.Count > 0)
        {
            foreach (var problem in problems)
            {
                await output.WriteLineAsync("consent: rule broken: " + problem);
            }

            return 1;
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"consent: {settings.Residents:N0} meters stored; the rule holds (owner and consenting service see, others do not, counts match); measuring"));

        // The same requests by the owner and by a consenting service, one after the other.
        var kinds = new (string Name, bool ByService, Func<Owner, string> Path)[]
        {
            ("retrieve-owner", false, o => $"{Entities}/{Uri.EscapeDataString(o.Meter)}"),
            ("retrieve-consent", true, o => $"{Entities}/{Uri.EscapeDataString(o.Meter)}"),
            ("query-owner", false, o => $"{Entities}?type=ElectricityMeter&q={Uri.EscapeDataString($"household==\"{o.Household}\"")}"),
            ("query-consent", true, o => $"{Entities}?type=ElectricityMeter&q={Uri.EscapeDataString($"household==\"{o.Household}\"")}"),
        };
        var results = kinds.ToDictionary(k => k.Name, _ => new List<(LoadResult Load, TimeSpan? Cpu)>());
        var measure = new RunPlan(TimeSpan.Zero, TimeSpan.FromSeconds(settings.DurationSeconds), null, TimeSpan.FromMinutes(10));
        var warmup = measure with { Duration = TimeSpan.FromSeconds(settings.WarmupSeconds) };
        for (var round = -1; round < settings.Rounds; round++)
        {
            // Odd rounds run each pair the other way round, so what drifts during a run (other load on the machine,
            // the server's heaps and files) falls on the owner's and the service's requests alike.
            foreach (var (name, byService, path) in round % 2 == 0 ? kinds : kinds.Chunk(2).SelectMany(pair => pair.Reverse()))
            {
                var workers = Enumerable.Range(0, settings.Concurrency).Select(w =>
                {
                    var next = w;
                    return (ILoadWorker)new HttpWorker(http, () =>
                    {
                        var owner = owners[next++ % owners.Length];
                        var request = new HttpRequestMessage(HttpMethod.Get, path(owner));
                        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", byService ? serviceTokens[owner.Consenting] : owner.Token);
                        if (byService)
                        {
                            request.Headers.Add("Machi-Purpose", AdvicePurpose);
                        }

                        return request;
                    }, new ExpectedStatus(200));
                }).ToArray();

                // Round -1 warms every kind up, unrecorded; the others are measured from their first request, so the
                // server's CPU time over the run is the CPU time of the measured requests.
                var cpuBefore = ProcessCpu.Read(server.ProcessId);
                var result = await ClosedLoop.RunAsync(workers, round < 0 ? warmup : measure, new ExpectedStatus(200), 1, dedicatedThreads: false, ct);

                // Reading the access log makes the broker index every record written before it (the log indexes in
                // large batches, seconds apart): the work the run's requests caused is then inside its CPU window,
                // not in the next kind's.
                using (var read = new HttpRequestMessage(HttpMethod.Get, "api/access-log?limit=1"))
                {
                    read.Headers.Authorization = new AuthenticationHeaderValue("Bearer", owners[0].Token);
                    using var indexed = await http.SendAsync(read, ct);
                    indexed.EnsureSuccessStatusCode();
                }

                var cpu = ProcessCpu.Read(server.ProcessId) - cpuBefore;
                if (round < 0)
                {
                    continue;
                }

                results[name].Add((result, cpu));
                var latency = LatencySummary.Of(result.Latency);
                var sample = result.ErrorSamples.Values.FirstOrDefault() is { } error ? "  e.g. " + error[..Math.Min(200, error.Length)] : "";
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"  round {round + 1} {name,-17} {result.RequestsPerSecond,8:N0}/s  mean {latency.Mean,6:0.00} ms  p50 {latency.P50,5:0.0}  p99 {latency.P99,5:0.0} ms  server CPU {CpuPerRequest(cpu, result.Ok),6:0} µs/request  errors {result.ErrorCount}{sample}"));
            }
        }

        var memory = server.ReadMemory();
        var figures = kinds.Select(k => k.Name).ToDictionary(n => n, n => Combined(results[n]));
        double Extra(Func<Figure, double?> of, string owner, string service) =>
            of(figures[service]) is { } a && of(figures[owner]) is { } b && b > 0 ? Math.Round(((a / b) - 1) * 100, 1) : double.NaN;
        var report = new
        {
            scenario = "consent",
            started = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            parameters = settings with { ServerDll = null, ResultsDirectory = null },
            figures,
            // The cost: server CPU time per request. Also: mean latency at the same number of clients.
            extraCostPercent = new
            {
                retrieve = Extra(f => f.ServerCpuMicroseconds, "retrieve-owner", "retrieve-consent"),
                query = Extra(f => f.ServerCpuMicroseconds, "query-owner", "query-consent"),
            },
            extraLatencyPercent = new
            {
                retrieve = Extra(f => f.MeanMs, "retrieve-owner", "retrieve-consent"),
                query = Extra(f => f.MeanMs, "query-owner", "query-consent"),
            },
            serverRssMb = memory is null ? (double?)null : Math.Round(memory.ResidentBytes / 1048576.0, 1),
        };
        var directory = settings.ResultsDirectory ?? Path.Combine(root, "bench", "results");
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, $"{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-consent.json");
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(report, Indented), ct);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"\nConsent check: {settings.Residents:N0} residents, {settings.Services} services, {settings.ConsentsPerResident} advice consents each, {settings.Concurrency} clients, {settings.Rounds} × {settings.DurationSeconds:0.#} s per kind");
        foreach (var (name, figure) in figures)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  {name,-17} {figure.RequestsPerSecond,8:N0}/s  mean {figure.MeanMs,6:0.00} ms  p50 {figure.Latency.P50,5:0.0} ms  p99 {figure.Latency.P99,5:0.0} ms  server CPU {figure.ServerCpuMicroseconds,6:0} µs/request  errors {figure.Errors}");
        }

        text.AppendLine(CultureInfo.InvariantCulture,
            $"  consent-checked vs owner, server CPU per request: retrieve {report.extraCostPercent.retrieve:+0.0;-0.0} %, query {report.extraCostPercent.query:+0.0;-0.0} % (target < +20 %)");
        text.AppendLine(CultureInfo.InvariantCulture,
            $"  consent-checked vs owner, mean latency at {settings.Concurrency} clients: retrieve {report.extraLatencyPercent.retrieve:+0.0;-0.0} %, query {report.extraLatencyPercent.query:+0.0;-0.0} %");
        text.Append(CultureInfo.InvariantCulture, $"  server RSS {report.serverRssMb:0.0} MB\nresults: {file}");
        await output.WriteLineAsync(text.ToString());
        return figures.Values.All(f => f.Errors == 0) ? 0 : 1;
    }

    private sealed record Figure(double RequestsPerSecond, double MeanMs, LatencySummary Latency, double? ServerCpuMicroseconds, long Errors);

    private static Figure Combined(List<(LoadResult Load, TimeSpan? Cpu)> rounds)
    {
        var latency = new LatencyHistogram();
        foreach (var (round, _) in rounds)
        {
            latency.Add(round.Latency);
        }

        var ok = rounds.Sum(r => r.Load.Ok);
        var seconds = rounds.Sum(r => r.Load.ElapsedSeconds);
        var cpu = rounds.All(r => r.Cpu is not null) ? TimeSpan.FromTicks(rounds.Sum(r => r.Cpu!.Value.Ticks)) : (TimeSpan?)null;
        return new Figure(Math.Round(ok / seconds, 1), Math.Round(latency.Mean / 1e6, 3), LatencySummary.Of(latency), CpuPerRequest(cpu, ok),
            rounds.Sum(r => r.Load.ErrorCount));
    }

    private static double? CpuPerRequest(TimeSpan? cpu, long requests) =>
        cpu is { } c && requests > 0 ? Math.Round(c.TotalMicroseconds / requests, 1) : null;

    private static string Email(int i) => string.Create(CultureInfo.InvariantCulture, $"resident-{i:000}@bench.example");

    private static string MeterId(int i) => string.Create(CultureInfo.InvariantCulture, $"urn:ngsi-ld:ElectricityMeter:bench-{i:00000}");

    private static string Household(int i) => string.Create(CultureInfo.InvariantCulture, $"H-{i:00000}");

    /// <summary>
    /// Before the server starts: accounts for the residents who will sign in, the residents' app and the services as
    /// <c>machi user add</c> / <c>client add</c> register them, the broker's schema, and every resident's consents.
    /// </summary>
    private static async Task<City> PrepareAsync(Settings settings, string data, TextWriter output, CancellationToken ct)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Broker:DataDirectory"] = data }).Build();
        var residents = new string[settings.Residents];
        for (var i = 0; i < settings.Owners; i++)
        {
            residents[i] = await TrustAdmin.AddUserAsync(configuration, "resident", Email(i), Password, ct);
        }

        var random = new Random(2026);
        for (var i = settings.Owners; i < residents.Length; i++)
        {
            residents[i] = new Guid(random.NextInt64().ToString("x16", CultureInfo.InvariantCulture) + random.NextInt64().ToString("x16", CultureInfo.InvariantCulture)).ToString();
        }

        var app = await TrustAdmin.AddClientAsync(configuration,
            new ClientRequest("Bench residents' app", ["openid", "ngsi:read", "ngsi:write"], RedirectUris: [RedirectUri], Public: true), ct);
        var services = new (string, string)[settings.Services];
        for (var s = 0; s < services.Length; s++)
        {
            var credentials = await TrustAdmin.AddClientAsync(configuration,
                new ClientRequest(string.Create(CultureInfo.InvariantCulture, $"Bench service {s:00}"), ["ngsi:read", "ngsi:write"],
                    Operator: "Bench energy companies", Purposes: [s == 0 ? MeteringPurpose : AdvicePurpose], Categories: [Category]), ct);
            services[s] = (credentials.ClientId, credentials.ClientSecret!);
        }

        var database = Path.Combine(data, "machi.db");
        await using (var store = new SqliteEntityStore(database, NullLogger<SqliteEntityStore>.Instance))
        {
            await store.InitializeAsync(ct);
        }

        var consented = new int[residents.Length][];
        for (var r = 0; r < residents.Length; r++)
        {
            consented[r] = [.. Enumerable.Range(1, services.Length - 1).OrderBy(_ => random.Next()).Take(settings.ConsentsPerResident)];
        }

        var granted = WriteConsents(database, residents, consented, services);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"consent: {settings.Owners} resident accounts, {services.Length} services, {granted:N0} consents written"));
        return new City { Residents = residents, Consented = consented, AppId = app.ClientId, Services = services };
    }

    /// <summary>Every resident's consents as the consent page records them (a consent, its receipt, one grant row each).</summary>
    private static int WriteConsents(string database, string[] residents, int[][] consented, (string Id, string Secret)[] services)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Pooling = false }.ToString());
        connection.Open();
        using var transaction = connection.BeginTransaction();
        using var consent = connection.CreateCommand();
        consent.CommandText = """
            INSERT INTO consents (id, resident, client_id, purpose, categories, granted_at, expires_at, terms_version, receipt)
            VALUES ($id, $resident, $client, $purpose, 'power', $granted, $expires, '1', $receipt)
            """;
        using var grant = connection.CreateCommand();
        grant.CommandText = """
            INSERT INTO consent_grants (client_id, purpose, resident, category, consent_id, expires_at)
            VALUES ($client, $purpose, $resident, 'power', $id, $expires)
            """;
        var now = DateTimeOffset.UtcNow;
        var count = 0;
        foreach (var command in new[] { consent, grant })
        {
            foreach (var name in new[] { "$id", "$resident", "$client", "$purpose", "$expires" })
            {
                command.Parameters.Add(new SqliteParameter(name, null));
            }
        }

        consent.Parameters.Add(new SqliteParameter("$granted", now.UtcTicks));
        consent.Parameters.Add(new SqliteParameter("$receipt", null));
        for (var r = 0; r < residents.Length; r++)
        {
            foreach (var (service, purpose) in consented[r].Select(s => (s, AdvicePurpose)).Prepend((0, MeteringPurpose)))
            {
                var id = string.Create(CultureInfo.InvariantCulture, $"urn:machi:consent:bench-{++count:000000}");
                foreach (var command in new[] { consent, grant })
                {
                    command.Parameters["$id"].Value = id;
                    command.Parameters["$resident"].Value = residents[r];
                    command.Parameters["$client"].Value = services[service].Id;
                    command.Parameters["$purpose"].Value = purpose;
                    command.Parameters["$expires"].Value = (now + TimeSpan.FromDays(365)).UtcTicks;
                }

                consent.Parameters["$receipt"].Value = new JsonObject
                {
                    ["version"] = "KI-CR-v1.1.0", ["consentReceiptID"] = id, ["consentTimestamp"] = now.ToUnixTimeSeconds(),
                    ["piiPrincipalId"] = residents[r], ["purpose"] = purpose, ["piiCategory"] = new JsonArray(Category),
                    ["note"] = "written by the consent benchmark",
                }.ToJsonString();
                consent.ExecuteNonQuery();
                grant.ExecuteNonQuery();
            }
        }

        transaction.Commit();
        return count;
    }

    /// <summary>The metering service stores every resident's meter over HTTP, under its consents (1,000 a request).</summary>
    private static async Task StoreMetersAsync(HttpClient http, City city, string meteringToken, TextWriter output, CancellationToken ct)
    {
        var started = DateTime.UtcNow;
        foreach (var chunk in Enumerable.Range(0, city.Residents.Length).Chunk(1000))
        {
            var batch = new JsonArray([.. chunk.Select(r => (JsonNode)new JsonObject
            {
                ["id"] = MeterId(r),
                ["type"] = "ElectricityMeter",
                ["household"] = new JsonObject { ["type"] = "Property", ["value"] = Household(r) },
                ["activePower"] = new JsonObject { ["type"] = "Property", ["value"] = 0.2 + (r % 37 / 10.0), ["unitCode"] = "KWT" },
                ["https://machi.city/ns/owner"] = new JsonObject { ["type"] = "Property", ["value"] = city.Residents[r] },
                ["https://machi.city/ns/dataCategory"] = new JsonObject { ["type"] = "Property", ["value"] = Category },
            })]);
            using var request = new HttpRequestMessage(HttpMethod.Post, "ngsi-ld/v1/entityOperations/upsert")
            {
                Content = new StringContent(batch.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", meteringToken);
            request.Headers.Add("Machi-Purpose", MeteringPurpose);
            using var response = await http.SendAsync(request, ct);
            if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.NoContent))
            {
                throw new BenchFailure($"storing meters: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
            }
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"consent: {city.Residents.Length:N0} meters stored by the metering service in {(DateTime.UtcNow - started).TotalSeconds:0.0} s"));
    }

    /// <summary>What must hold before a figure means anything; each broken expectation, described.</summary>
    private static async Task<List<string>> CheckTheRuleAsync(HttpClient http, City city, Owner[] owners, string[] serviceTokens, CancellationToken ct)
    {
        var problems = new List<string>();
        async Task Expect(string path, string token, string? purpose, HttpStatusCode status, string? count, string what)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (purpose is not null)
            {
                request.Headers.Add("Machi-Purpose", purpose);
            }

            using var response = await http.SendAsync(request, ct);
            var seen = response.Headers.TryGetValues("NGSILD-Results-Count", out var values) ? values.First() : null;
            if (response.StatusCode != status || (count is not null && seen != count))
            {
                problems.Add($"{what}: HTTP {(int)response.StatusCode}, count {seen ?? "-"} (expected {(int)status}, count {count ?? "-"})");
            }
        }

        foreach (var owner in owners.Take(4))
        {
            var meter = $"{Entities}/{Uri.EscapeDataString(owner.Meter)}";
            await Expect(meter, owner.Token, null, HttpStatusCode.OK, null, "the owner reads her meter");
            await Expect(meter, serviceTokens[owner.Consenting], AdvicePurpose, HttpStatusCode.OK, null, "a consenting service reads it");
            await Expect(meter, serviceTokens[owner.Consenting], "marketing", HttpStatusCode.NotFound, null, "the same service for another purpose");
            await Expect(meter, serviceTokens[owner.Stranger], AdvicePurpose, HttpStatusCode.NotFound, null, "a service without her consent");
            await Expect(meter, owners[(Array.IndexOf(owners, owner) + 1) % owners.Length].Token, null, HttpStatusCode.NotFound, null, "another resident");
        }

        foreach (var s in new[] { 1, city.Services.Length / 2, city.Services.Length - 1 })
        {
            var expected = city.Consented.Count(c => c.Contains(s)).ToString(CultureInfo.InvariantCulture);
            await Expect($"{Entities}?type=ElectricityMeter&count=true&limit=1", serviceTokens[s], AdvicePurpose, HttpStatusCode.OK, expected,
                $"service {s} counts the meters of the residents who consented to it");
        }

        await Expect($"{Entities}?type=ElectricityMeter&count=true&limit=1", owners[0].Token, null, HttpStatusCode.OK, "1", "a resident counts her own meters");
        return problems;
    }

    private static async Task<string> ClientCredentialsAsync(HttpClient http, (string Id, string Secret) client, CancellationToken ct)
    {
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = client.Id, ["client_secret"] = client.Secret,
        });
        using var response = await http.PostAsync(new Uri("connect/token", UriKind.Relative), form, ct);
        return await AccessTokenAsync(response, ct);
    }

    /// <summary>A resident signs in as with a phone: authorization code + PKCE through the login page.</summary>
    private static async Task<string> SignInAsync(Uri server, string appId, string email, CancellationToken ct)
    {
        var verifier = Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var challenge = Base64Url(System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = server };
        var authorize = "connect/authorize?" + string.Join('&', new Dictionary<string, string>
        {
            ["response_type"] = "code", ["client_id"] = appId, ["redirect_uri"] = RedirectUri.AbsoluteUri, ["scope"] = "openid ngsi:read ngsi:write",
            ["state"] = "bench", ["code_challenge"] = challenge, ["code_challenge_method"] = "S256",
        }.Select(p => p.Key + "=" + Uri.EscapeDataString(p.Value)));

        // Follow the server's redirects to the login page, post it, follow again until the app's redirect URI.
        var (page, html) = await FollowAsync(browser, new HttpRequestMessage(HttpMethod.Get, authorize), ct);
        var form = LoginForm(html) ?? throw new BenchFailure($"no login form at {page}");
        form["email"] = email;
        form["password"] = Password;
        var (back, _) = await FollowAsync(browser, new HttpRequestMessage(HttpMethod.Post, "account/login") { Content = new FormUrlEncodedContent(form) }, ct);
        var code = back.Query.TrimStart('?').Split('&').Select(p => p.Split('=', 2)).FirstOrDefault(p => p[0] == "code")?[1]
            ?? throw new BenchFailure($"{email} did not come back with a code ({back})");
        using var exchange = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code", ["client_id"] = appId, ["code"] = Uri.UnescapeDataString(code),
            ["redirect_uri"] = RedirectUri.AbsoluteUri, ["code_verifier"] = verifier,
        });
        using var response = await browser.PostAsync(new Uri("connect/token", UriKind.Relative), exchange, ct);
        return await AccessTokenAsync(response, ct);
    }

    private static async Task<(Uri Address, string Html)> FollowAsync(HttpClient browser, HttpRequestMessage request, CancellationToken ct)
    {
        for (var hops = 0; hops < 10; hops++)
        {
            Uri next;
            using (var response = await browser.SendAsync(request, ct))
            {
                var address = new Uri(browser.BaseAddress!, request.RequestUri!);
                request.Dispose();
                if ((int)response.StatusCode is not (301 or 302 or 303 or 307))
                {
                    return (address, await response.Content.ReadAsStringAsync(ct));
                }

                next = new Uri(address, response.Headers.Location!);
            }

            if (next.Authority != browser.BaseAddress!.Authority)
            {
                return (next, "");
            }

            request = new HttpRequestMessage(HttpMethod.Get, next);
        }

        throw new BenchFailure("too many redirects while signing in");
    }

    /// <summary>The hidden fields of the login form (antiforgery token, return URL).</summary>
    private static Dictionary<string, string>? LoginForm(string html)
    {
        var start = html.IndexOf("action=\"/account/login\"", StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        var end = html.IndexOf("</form>", start, StringComparison.Ordinal);
        var fields = new Dictionary<string, string>();
        var form = html[start..end];
        for (var at = form.IndexOf("<input type=\"hidden\"", StringComparison.Ordinal); at >= 0;
             at = form.IndexOf("<input type=\"hidden\"", at + 1, StringComparison.Ordinal))
        {
            var tag = form[at..form.IndexOf('>', at)];
            fields[WebUtility.HtmlDecode(Attribute(tag, "name"))] = WebUtility.HtmlDecode(Attribute(tag, "value"));
        }

        return fields;
    }

    private static string Attribute(string tag, string name)
    {
        var at = tag.IndexOf(name + "=\"", StringComparison.Ordinal) + name.Length + 2;
        return tag[at..tag.IndexOf('"', at)];
    }

    private static async Task<string> AccessTokenAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStringAsync(ct);
        return response.IsSuccessStatusCode && JsonNode.Parse(body)?["access_token"]?.GetValue<string>() is { } token
            ? token
            : throw new BenchFailure($"token endpoint: HTTP {(int)response.StatusCode} {body}");
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
