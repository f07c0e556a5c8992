using System.Globalization;
using Machi.Bench.Load;
using Machi.Bench.Reporting;
using Machi.Bench.Scenarios;
using Machi.Bench.Server;

namespace Machi.Bench.Push;

/// <summary>
/// Server-sent events at scale (issue 4): <c>--sse-clients</c> streams of <c>GET /x-machi/stream?type=</c><see
/// cref="Type"/><c>&amp;attrs=seq&amp;options=keyValues</c> are opened (at most <see cref="Opening"/> at a time) and
/// held; once every one has started, updates of those entities go out on schedule at <c>--rate</c> per second, and
/// every client should receive every one of them.
/// </summary>
internal static class SseScenario
{
    public const string Type = "PushBenchStream";
    public const string IdPrefix = "urn:ngsi-ld:PushBenchStream:sse-";
    public const int Entities = 10;

    /// <summary>Streams being opened at once: the broker's listen backlog is not what this measures.</summary>
    private const int Opening = 64;

    private static readonly TimeSpan ConnectLimit = TimeSpan.FromSeconds(120);

    public static async Task<ScenarioRun> RunAsync(BrokerServer server, BenchOptions options, Action<string> progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(progress);

        double rate = options.SseRate;
        long warmup = (long)(rate * options.WarmupSeconds);
        long changes = warmup + Math.Max(1, (long)(rate * options.DurationSeconds));
        var baseUri = server.BaseUri;
        using var client = BrokerTarget.CreateClient(options.Concurrency + 4, TimeSpan.FromSeconds(options.TimeoutSeconds));
        await ChangeWriter.UpsertAsync(client, baseUri, IdPrefix, Type, Entities, _ => null, cancellationToken).ConfigureAwait(false);

        // Streams never end by themselves: no overall timeout, the run's token ends them.
        using var streams = BrokerTarget.CreateClient(options.SseClients, Timeout.InfiniteTimeSpan);
        var uri = new Uri(baseUri, "/ngsi-ld/v1/x-machi/stream?type=" + Type + "&attrs=seq&options=keyValues");
        var clients = new StreamClient[options.SseClients];
        var tasks = new Task[clients.Length];
        using var opening = new SemaphoreSlim(Opening);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        int settled = 0;
        var allSettled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Settled(StreamClient c)
        {
            if (Interlocked.Increment(ref settled) == clients.Length)
            {
                allSettled.TrySetResult();
            }
        }

        progress($"broker: sse: opening {clients.Length:N0} event streams ({Opening} at a time) …");
        long connectStart = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int c = 0; c < clients.Length; c++)
        {
            var one = clients[c] = new StreamClient(changes);
            tasks[c] = Task.Run(() => one.RunAsync(streams, uri, opening, Settled, stop.Token), CancellationToken.None);
        }

        try
        {
            try
            {
                await allSettled.Task.WaitAsync(ConnectLimit, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                progress($"broker: sse: not every stream had started after {ConnectLimit.TotalSeconds:0} s; measuring the ones that had");
            }

            double connectSeconds = Math.Round(System.Diagnostics.Stopwatch.GetElapsedTime(connectStart).TotalSeconds, 3);
            int connected = clients.Count(c => c.Connected);
            var rssConnected = server.ReadMemory();
            progress(string.Create(CultureInfo.InvariantCulture,
                $"broker: sse: {connected:N0} streams open in {connectSeconds:0.0} s (RSS {Megabytes(rssConnected?.ResidentBytes)}); {changes:N0} updates at {rate:N0}/s …"));

            var writer = new ChangeWriter(client, baseUri, IdPrefix, Entities, changes);
            var cpu = CpuWindow.Start(server.ProcessId);
            var load = await OpenLoop.RunAsync(changes, rate, Math.Min(options.Concurrency, 16), warmup, Scenario.Expected(ScenarioKind.Sse), writer.SendAsync, cancellationToken)
                .ConfigureAwait(false);
            long due = 0;
            for (long i = 0; i < changes; i++)
            {
                due += writer.RespondedAt(i) != 0 ? 1 : 0;
            }

            double drained = await DeliveryTally.DrainAsync(
                    () => clients.All(c => !c.Live || c.Received >= due), TimeSpan.FromSeconds(options.DrainSeconds), cancellationToken)
                .ConfigureAwait(false);
            var rssAfter = server.ReadMemory();
            var cpuReport = cpu.Stop();

            var tally = new DeliveryTally();
            int withMisses = 0;
            long mostMissed = 0;
            long duplicates = 0;
            var failures = new SortedDictionary<string, long>(StringComparer.Ordinal);
            foreach (var one in clients)
            {
                if (!one.Connected)
                {
                    string why = one.Failure ?? "not started in time";
                    failures[why] = failures.GetValueOrDefault(why) + 1;
                    continue;
                }

                long missed = tally.Add(writer, warmup, one.ReceivedAt);
                withMisses += missed > 0 ? 1 : 0;
                mostMissed = Math.Max(mostMissed, missed);
                duplicates += one.Duplicates;
            }

            var push = new PushReport(
                string.Create(CultureInfo.InvariantCulture,
                    $"{clients.Length:N0} clients of GET /x-machi/stream?type={Type}&attrs=seq&options=keyValues; updates round {Entities} entities; one HTTP/1.1 connection per client"),
                rate,
                tally.Expected,
                tally.Expected - tally.Missing,
                tally.Missing,
                duplicates,
                tally.BeforeResponse,
                LatencyReport.From(tally.Latency),
                LatencyReport.From(load.SendLag),
                drained,
                rssConnected?.ResidentBytes,
                rssAfter?.ResidentBytes,
                rssAfter?.PeakResidentBytes,
                cpuReport,
                null,
                new StreamReport(
                    clients.Length, connected, connectSeconds, withMisses, mostMissed,
                    clients.Count(c => c.Dropped), clients.Count(c => c.Closed), failures));
            progress(string.Create(CultureInfo.InvariantCulture,
                $"broker: sse: {load.Load.RequestsPerSecond:N1} updates/s; {push.Received:N0} of {push.Expected:N0} events, p50 {push.DeliveryMs.P50:0.0} ms, p99 {push.DeliveryMs.P99:0.0} ms, {push.Missing:N0} missed"));
            return new ScenarioRun(ScenarioKind.Sse, load.Load, null) { Push = push };
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException)
            {
                // Clients still waiting to open when the run was cancelled.
            }
        }
    }

    private static string Megabytes(long? bytes) =>
        bytes is { } b ? (b / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MB" : "n/a";
}
