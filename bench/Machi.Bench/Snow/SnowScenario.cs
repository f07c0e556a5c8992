using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Machi.Bench.Load;
using Machi.Bench.Reporting;
using Machi.Bench.Server;
using Machi.Snow.Devices;
using Machi.Snow.Storage;

namespace Machi.Bench.Snow;

/// <summary>
/// Snowplow Navi (issue 7): <c>--plows</c> units report through the OsmAnd protocol every <c>--interval</c> seconds
/// (staggered evenly) while <c>--viewers</c> live maps hold <c>GET /snow/live</c> open. Measured: for every position
/// and every viewer, the time from the moment its OsmAnd request was sent to the moment the server-sent event carrying
/// it arrived (p50/p99/max), the ingest responses, and the server's CPU and RSS.
/// </summary>
/// <remarks>
/// Every viewer receives the same frames (the server renders each once), so one viewer parses each frame's JSON and
/// the others only note which frame id arrived when; latencies are computed after the run.
/// </remarks>
internal static class SnowScenario
{
    public sealed record Settings(int Plows, double IntervalSeconds, int Viewers, double WarmupSeconds, double DurationSeconds, Uri? Url,
        int? ServerPid, string? DataDirectory, string? ServerDll, string? ResultsDirectory);

    public const string Usage = """
        ./machi bench --scenario snow [--plows 250] [--interval 5] [--viewers 5000] [--warmup 10] [--duration 60]
                                      [--url URL --data DIR [--server-pid PID]] [--server-dll PATH] [--results DIR]
        """;

    public static bool IsSnow(string[] args) =>
        args.Select((a, i) => (a, i)).Any(p => (p.a == "--scenario" && p.i + 1 < args.Length && args[p.i + 1] == "snow") || p.a == "--scenario=snow");

    public static Settings? Parse(string[] args, out string? error)
    {
        var s = new Settings(250, 5, 5000, 10, 60, null, null, null, null, null);
        error = null;
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            var value = name.Contains('=', StringComparison.Ordinal) ? name[(name.IndexOf('=', StringComparison.Ordinal) + 1)..] : i + 1 < args.Length ? args[++i] : null;
            name = name.Split('=')[0];
            if (value is null)
            {
                error = $"{name} needs a value";
                return null;
            }

            double Number() => double.Parse(value, CultureInfo.InvariantCulture);
            try
            {
                s = name switch
                {
                    "--scenario" => s,
                    "--plows" => s with { Plows = (int)Number() },
                    "--interval" => s with { IntervalSeconds = Number() },
                    "--viewers" or "--sse-clients" => s with { Viewers = (int)Number() },
                    "--warmup" => s with { WarmupSeconds = Number() },
                    "--duration" => s with { DurationSeconds = Number() },
                    "--url" => s with { Url = new Uri(value.TrimEnd('/') + "/") },
                    "--server-pid" => s with { ServerPid = (int)Number() },
                    "--data" => s with { DataDirectory = Path.GetFullPath(value) },
                    "--server-dll" => s with { ServerDll = Path.GetFullPath(value) },
                    "--results" => s with { ResultsDirectory = Path.GetFullPath(value) },
                    _ => throw new FormatException($"unknown option {name} for --scenario snow"),
                };
            }
            catch (FormatException e)
            {
                error = e.Message;
                return null;
            }
        }

        if (s.Plows < 1 || s.Viewers < 0 || s.IntervalSeconds <= 0 || s.DurationSeconds <= 0)
        {
            error = "--plows ≥ 1, --viewers ≥ 0, --interval > 0 and --duration > 0";
            return null;
        }

        if (s.Url is not null && s.DataDirectory is null)
        {
            error = "--url needs --data (the server's data directory, where the bench registers its units)";
            return null;
        }

        return s;
    }

    public static async Task<int> RunAsync(Settings settings, string root, TextWriter output, CancellationToken ct)
    {
        await using var server = settings.Url is { } url
            ? BrokerServer.External(url, settings.ServerPid)
            : await BrokerServer.LaunchAsync(settings.ServerDll ?? Path.Combine(root, "src", "Machi.Host", "bin", "Release", "net10.0", "machi.dll"), root,
                TimeSpan.FromSeconds(60), ct);
        var data = settings.DataDirectory ?? server.DataDirectory!;
        await output.WriteLineAsync($"snow: server {server.BaseUri} (pid {server.ProcessId}), data {data}");

        // Register the units (tokens) in the server's database, as `machi simulate snowplows` does.
        var tokens = new string[settings.Plows];
        await using (var store = new SqliteSnowStore(Path.Combine(data, "machi.db")))
        {
            await store.InitializeAsync(ct);
            var registry = new DeviceRegistry(store, TimeProvider.System);
            for (var i = 0; i < settings.Plows; i++)
            {
                tokens[i] = await registry.RegisterAsync(Id(i), null, simulated: true, ct);
            }
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var sent = new ConcurrentDictionary<(int Plow, long Time), long>();
        var frames = new ConcurrentDictionary<long, (int Plow, long Time)[]>();
        var viewers = Enumerable.Range(0, settings.Viewers).Select(i => new Viewer(i == 0)).ToArray();
        using var viewerHandler = new SocketsHttpHandler { MaxConnectionsPerServer = Math.Max(1, settings.Viewers), PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        using var viewerClient = new HttpClient(viewerHandler) { BaseAddress = server.BaseUri, Timeout = Timeout.InfiniteTimeSpan };
        using var opening = new SemaphoreSlim(64);
        var connectWatch = Stopwatch.StartNew();
        var viewerTasks = viewers.Select(v => Task.Run(() => v.RunAsync(viewerClient, opening, frames, stop.Token), CancellationToken.None)).ToArray();
        var connectDeadline = DateTime.UtcNow.AddSeconds(180);
        while (viewers.Any(v => !v.Connected && v.Failure is null) && DateTime.UtcNow < connectDeadline)
        {
            await Task.Delay(200, ct);
        }

        var connected = viewers.Count(v => v.Connected);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"snow: {connected:N0} of {settings.Viewers:N0} viewers connected in {connectWatch.Elapsed.TotalSeconds:0.0} s; RSS {Mb(server.ReadMemory()?.ResidentBytes)}"));

        // The plows: each sends every interval, offset so that reports are spread evenly.
        using var plowHandler = new SocketsHttpHandler { MaxConnectionsPerServer = 64 };
        using var plowClient = new HttpClient(plowHandler) { BaseAddress = server.BaseUri, Timeout = TimeSpan.FromSeconds(30) };
        var ingest = new LatencyHistogram();
        long ok = 0, failed = 0;
        var measureFrom = Stopwatch.GetTimestamp() + (long)(settings.WarmupSeconds * Stopwatch.Frequency);
        var runFor = TimeSpan.FromSeconds(settings.WarmupSeconds + settings.DurationSeconds);
        var runStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        runStop.CancelAfter(runFor);
        CpuWindow? cpu = null;
        _ = Task.Delay(TimeSpan.FromSeconds(settings.WarmupSeconds), ct).ContinueWith(_ => cpu = CpuWindow.Start(server.ProcessId), TaskScheduler.Default);
        var interval = TimeSpan.FromSeconds(settings.IntervalSeconds);
        var random = new Random(11);
        var starts = Enumerable.Range(0, settings.Plows).Select(_ => (Lat: 37.46 + (random.NextDouble() * 0.06), Lon: 139.90 + (random.NextDouble() * 0.06))).ToArray();
        var plowTasks = Enumerable.Range(0, settings.Plows).Select(p => Task.Run(async () =>
        {
            var (lat, lon) = starts[p];
            var r = new Random(p);
            try
            {
                await Task.Delay(TimeSpan.FromTicks(interval.Ticks * p / settings.Plows), runStop.Token);
                using var timer = new PeriodicTimer(interval);
                do
                {
                    lat += (r.NextDouble() - 0.5) * 0.0005;
                    lon += (r.NextDouble() - 0.5) * 0.0005;
                    var time = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                    var state = ((p + (time / 60_000)) % 3) switch { 0 => "plowing", 1 => "salting", _ => "travelling" };
                    var uri = string.Create(CultureInfo.InvariantCulture,
                        $"snow/osmand?id={Id(p)}&token={tokens[p]}&lat={lat:0.000000}&lon={lon:0.000000}&timestamp={time}&speed=10&bearing={r.Next(360)}&plow={state}");
                    var start = Stopwatch.GetTimestamp();
                    sent[(p, time)] = start;
                    var accepted = false;
                    try
                    {
                        using var response = await plowClient.GetAsync(uri, runStop.Token);
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            accepted = true;
                            Interlocked.Increment(ref ok);
                            if (start >= measureFrom)
                            {
                                lock (ingest)
                                {
                                    ingest.Record((long)Stopwatch.GetElapsedTime(start).TotalNanoseconds);
                                }
                            }
                        }
                        else
                        {
                            Interlocked.Increment(ref failed);
                        }
                    }
                    catch (HttpRequestException)
                    {
                        Interlocked.Increment(ref failed);
                    }
                    finally
                    {
                        // Only acknowledged positions are expected on the map (a cancelled request at the end may not be).
                        if (!accepted)
                        {
                            sent.TryRemove((p, time), out _);
                        }
                    }
                }
                while (await timer.WaitForNextTickAsync(runStop.Token));
            }
            catch (OperationCanceledException)
            {
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(plowTasks);
        var cpuReport = cpu?.Stop();
        var memory = server.ReadMemory();

        // Let the last frames arrive, then stop the viewers.
        await Task.Delay(TimeSpan.FromSeconds(3), ct);
        await stop.CancelAsync();
        await Task.WhenAll(viewerTasks).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);

        // Position-to-event latency for every measured position at every viewer.
        var latency = new LatencyHistogram();
        long expected = 0, delivered = 0;
        var measured = sent.Where(p => p.Value >= measureFrom).ToDictionary(p => p.Key, p => p.Value);
        foreach (var viewer in viewers.Where(v => v.Connected))
        {
            var seen = 0L;
            foreach (var (frame, at) in viewer.Received)
            {
                if (!frames.TryGetValue(frame, out var positions))
                {
                    continue;
                }

                foreach (var position in positions)
                {
                    if (measured.TryGetValue(position, out var start))
                    {
                        latency.Record((long)((at - start) * 1e9 / Stopwatch.Frequency));
                        seen++;
                    }
                }
            }

            expected += measured.Count;
            delivered += seen;
        }

        var report = new
        {
            scenario = "snow",
            started = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            parameters = new { settings.Plows, settings.IntervalSeconds, settings.Viewers, settings.WarmupSeconds, settings.DurationSeconds },
            viewersConnected = connected,
            positionsSent = ok + failed,
            positionsAccepted = ok,
            positionsFailed = failed,
            measuredPositions = measured.Count,
            eventsExpected = expected,
            eventsDelivered = delivered,
            positionToEventMs = Percentiles(latency),
            ingestResponseMs = Percentiles(ingest),
            serverCpuPercent = cpuReport?.BrokerPercent,
            benchCpuPercent = cpuReport?.BenchPercent,
            serverRssMb = memory is null ? (double?)null : Math.Round(memory.ResidentBytes / 1048576.0, 1),
            serverPeakRssMb = memory is null ? (double?)null : Math.Round(memory.PeakResidentBytes / 1048576.0, 1),
        };
        var directory = settings.ResultsDirectory ?? Path.Combine(root, "bench", "results");
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, $"{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-snow.json");
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(report, Indented), ct);
        var p = report.positionToEventMs;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"""

            Snowplow Navi: {settings.Plows} plows every {settings.IntervalSeconds:0.#} s, {connected:N0}/{settings.Viewers:N0} SSE viewers, {settings.DurationSeconds:0} s measured
              positions sent {ok + failed:N0} (accepted {ok:N0}, failed {failed:N0}); ingest response p50 {report.ingestResponseMs.P50:0.0} ms, p99 {report.ingestResponseMs.P99:0.0} ms
              position → screen event: p50 {p.P50:0.0} ms, p99 {p.P99:0.0} ms, max {p.Max:0.0} ms; {delivered:N0} of {expected:N0} events delivered
              server CPU {report.serverCpuPercent:0.0} % (of one core; {Environment.ProcessorCount} cores), RSS {report.serverRssMb:0.0} MB (peak {report.serverPeakRssMb:0.0} MB); bench CPU {report.benchCpuPercent:0.0} %
            results: {file}
            """));
        return failed == 0 && delivered == expected ? 0 : 1;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static string Id(int i) => string.Create(CultureInfo.InvariantCulture, $"bench-plow-{i:0000}");

    private static string Mb(long? bytes) => bytes is { } b ? (b / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MB" : "n/a";

    private sealed record Percentile(double P50, double P90, double P99, double Max, long Count);

    private static Percentile Percentiles(LatencyHistogram h) => new(
        Ms(h.ValueAtPercentile(50)), Ms(h.ValueAtPercentile(90)), Ms(h.ValueAtPercentile(99)), Ms(h.Count == 0 ? 0 : h.Max), h.Count);

    private static double Ms(long nanoseconds) => Math.Round(nanoseconds / 1e6, 1);

    /// <summary>One live map: which frame (by its <c>id:</c>) arrived when; the parsing viewer also maps frames to positions.</summary>
    private sealed class Viewer(bool parses)
    {
        private static readonly byte[] IdLine = "\nid: "u8.ToArray();

        public bool Connected { get; private set; }

        public string? Failure { get; private set; }

        public List<(long Frame, long At)> Received { get; } = new(4096);

        public async Task RunAsync(HttpClient http, SemaphoreSlim opening, ConcurrentDictionary<long, (int, long)[]> frames, CancellationToken ct)
        {
            try
            {
                Stream stream;
                await opening.WaitAsync(ct);
                try
                {
                    var response = await http.GetAsync("snow/live", HttpCompletionOption.ResponseHeadersRead, ct);
                    response.EnsureSuccessStatusCode();
                    stream = await response.Content.ReadAsStreamAsync(ct);
                    Connected = true;
                }
                finally
                {
                    opening.Release();
                }

                var buffer = new byte[64 * 1024];
                var pending = new ArrayBufferWriter<byte>(64 * 1024);
                var first = true;
                while (true)
                {
                    var read = await stream.ReadAsync(buffer, ct);
                    if (read == 0)
                    {
                        return;
                    }

                    var at = Stopwatch.GetTimestamp();
                    pending.Write(buffer.AsSpan(0, read));
                    // Complete events end with a blank line; handle each, keep the rest.
                    var span = pending.WrittenSpan;
                    var consumed = 0;
                    int end;
                    while ((end = span[consumed..].IndexOf("\n\n"u8)) >= 0)
                    {
                        var frame = span.Slice(consumed, end + 1);
                        consumed += end + 2;
                        var idAt = frame.IndexOf(IdLine);
                        var idSpan = idAt >= 0 ? frame[(idAt + IdLine.Length)..] : frame.StartsWith("id: "u8) ? frame[4..] : default;
                        if (idSpan.IsEmpty)
                        {
                            continue;
                        }

                        var idEnd = idSpan.IndexOf((byte)'\n');
                        var id = long.Parse(idEnd < 0 ? idSpan : idSpan[..idEnd], CultureInfo.InvariantCulture);
                        if (first)
                        {
                            first = false; // the snapshot
                            continue;
                        }

                        Received.Add((id, at));
                        if (parses)
                        {
                            var dataAt = frame.IndexOf("data: "u8);
                            var data = frame[(dataAt + 6)..];
                            var dataEnd = data.IndexOf((byte)'\n');
                            frames[id] = ParsePositions(dataEnd < 0 ? data : data[..dataEnd]);
                        }
                    }

                    var rest = span[consumed..].ToArray();
                    pending.ResetWrittenCount();
                    pending.Write(rest);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                Failure = e.Message;
            }
        }

        private static (int, long)[] ParsePositions(ReadOnlySpan<byte> json)
        {
            var list = new List<(int, long)>();
            var reader = new Utf8JsonReader(json);
            string? id = null;
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName)
                {
                    continue;
                }

                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = reader.GetString();
                }
                else if (reader.ValueTextEquals("t"u8))
                {
                    reader.Read();
                    var t = DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
                    if (id is not null && id.StartsWith("bench-plow-", StringComparison.Ordinal))
                    {
                        list.Add((int.Parse(id.AsSpan(11), CultureInfo.InvariantCulture), t));
                    }
                }
            }

            return [.. list];
        }
    }
}
