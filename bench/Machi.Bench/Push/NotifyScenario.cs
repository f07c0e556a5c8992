using System.Globalization;
using System.Net;
using System.Text.Json;
using Machi.Bench.Load;
using Machi.Bench.Reporting;
using Machi.Bench.Scenarios;
using Machi.Bench.Server;

namespace Machi.Bench.Push;

/// <summary>
/// Notification latency (issue 4): <c>--subscriptions</c> subscriptions on the <see cref="Type"/> entities, each
/// with <c>q=group==g</c> so that every update matches exactly <c>--fanout</c> of them, notify a receiver in the
/// bench (each subscription its own endpoint URL unless <c>--shared-endpoint</c>); the updates go out on schedule at
/// <c>--rate</c> per second. The subscriptions are deleted at the end, also against a broker given with --url.
/// </summary>
internal static class NotifyScenario
{
    public const string Type = "PushBench";
    public const string IdPrefix = "urn:ngsi-ld:PushBench:notify-";

    /// <summary>Updates go round the entities in turn, so one entity changes about once a second at 1,000/s (the
    /// broker never has two notifications of one entity in flight to an endpoint).</summary>
    public const int Entities = 1000;

    public static async Task<ScenarioRun> RunAsync(BrokerServer server, BenchOptions options, Action<string> progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(progress);

        double rate = options.NotifyRate;
        int fanout = options.Fanout;
        int groups = options.Subscriptions / fanout;
        long warmup = (long)(rate * options.WarmupSeconds);
        long changes = warmup + Math.Max(1, (long)(rate * options.DurationSeconds));
        var timeout = TimeSpan.FromSeconds(options.TimeoutSeconds);
        using var client = BrokerTarget.CreateClient(options.Concurrency + 4, timeout);
        var baseUri = server.BaseUri;

        progress($"broker: notify: {Entities:N0} {Type} entities, {options.Subscriptions} subscriptions (each update matches {fanout}) …");
        await ChangeWriter.UpsertAsync(client, baseUri, IdPrefix, Type, Entities,
            n => string.Create(CultureInfo.InvariantCulture, $"\"group\":{{\"type\":\"Property\",\"value\":{n % groups}}}"), cancellationToken)
            .ConfigureAwait(false);
        var receiver = await NotificationReceiver.StartAsync(changes, fanout, groups, cancellationToken).ConfigureAwait(false);
        await using (receiver.ConfigureAwait(false))
        {
            var subscriptions = new List<Uri>();
            try
            {
                for (int k = 0; k < options.Subscriptions; k++)
                {
                    var endpoint = new Uri(receiver.BaseUri, options.SharedEndpoint ? "notify" : "notify/" + k.ToString(CultureInfo.InvariantCulture));
                    subscriptions.Add(await SubscribeAsync(client, baseUri, endpoint, k, k % groups, cancellationToken).ConfigureAwait(false));
                }

                var rssBefore = server.ReadMemory();
                var writer = new ChangeWriter(client, baseUri, IdPrefix, Entities, changes);
                progress(string.Create(CultureInfo.InvariantCulture,
                    $"broker: notify: {changes:N0} updates at {rate:N0}/s ({options.WarmupSeconds:0.#} s warm-up + {options.DurationSeconds:0.#} s) with ≤{options.Concurrency} in flight …"));
                var cpu = CpuWindow.Start(server.ProcessId);
                var load = await OpenLoop.RunAsync(changes, rate, options.Concurrency, warmup, Scenario.Expected(ScenarioKind.Notify), writer.SendAsync, cancellationToken)
                    .ConfigureAwait(false);

                long due = 0;
                for (long i = 0; i < changes; i++)
                {
                    due += writer.RespondedAt(i) != 0 ? fanout : 0;
                }

                double drained = await DeliveryTally.DrainAsync(() => receiver.Received >= due, TimeSpan.FromSeconds(options.DrainSeconds), cancellationToken)
                    .ConfigureAwait(false);
                var rssAfter = server.ReadMemory();
                var cpuReport = cpu.Stop();
                var tally = new DeliveryTally();
                for (int slot = 0; slot < fanout; slot++)
                {
                    tally.Add(writer, warmup, change => receiver.ReceivedAt(change, slot));
                }

                var (sent, failed) = await CountersAsync(client, subscriptions, cancellationToken).ConfigureAwait(false);
                var push = new PushReport(
                    string.Create(CultureInfo.InvariantCulture,
                        $"{options.Subscriptions} subscriptions (q=group==g, keyValues of seq) on {Entities:N0} {Type} entities; each update matches {fanout}; "
                        + $"{(options.SharedEndpoint ? "one endpoint URL for all" : "one endpoint URL each")}; receiver: Kestrel in the bench at {receiver.BaseUri}"),
                    rate,
                    tally.Expected,
                    tally.Expected - tally.Missing,
                    tally.Missing,
                    receiver.Duplicates,
                    tally.BeforeResponse,
                    LatencyReport.From(tally.Latency),
                    LatencyReport.From(load.SendLag),
                    drained,
                    rssBefore?.ResidentBytes,
                    rssAfter?.ResidentBytes,
                    rssAfter?.PeakResidentBytes,
                    cpuReport,
                    new NotifyReport(options.Subscriptions, fanout, options.SharedEndpoint ? 1 : options.Subscriptions, receiver.Unexpected, sent, failed),
                    null);
                progress(string.Create(CultureInfo.InvariantCulture,
                    $"broker: notify: {load.Load.RequestsPerSecond:N0} updates/s; {push.Received:N0} of {push.Expected:N0} notifications, p50 {push.DeliveryMs.P50:0.0} ms, p99 {push.DeliveryMs.P99:0.0} ms, {push.Missing:N0} missing"));
                return new ScenarioRun(ScenarioKind.Notify, load.Load, null) { Push = push };
            }
            finally
            {
                await UnsubscribeAsync(client, subscriptions, progress).ConfigureAwait(false);
            }
        }
    }

    private static async Task<Uri> SubscribeAsync(HttpClient client, Uri baseUri, Uri endpoint, int number, int group, CancellationToken cancellationToken)
    {
        var body = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(body))
        {
            w.WriteStartObject();
            w.WriteString("type", "Subscription");
            w.WriteString("description", "Machi bench notify " + number.ToString(CultureInfo.InvariantCulture));
            w.WriteStartArray("entities");
            w.WriteStartObject();
            w.WriteString("type", Type);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteString("q", "group==" + group.ToString(CultureInfo.InvariantCulture));
            w.WriteStartObject("notification");
            w.WriteStartArray("attributes");
            w.WriteStringValue("seq");
            w.WriteEndArray();
            w.WriteString("format", "keyValues");
            w.WriteStartObject("endpoint");
            w.WriteString("uri", endpoint.AbsoluteUri);
            w.WriteString("accept", "application/json");
            w.WriteStartArray("receiverInfo");
            w.WriteStartObject();
            w.WriteString("key", NotificationReceiver.SubscriptionHeader);
            w.WriteString("value", number.ToString(CultureInfo.InvariantCulture));
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();
        }

        using var content = new ByteArrayContent(body.WrittenSpan.ToArray());
        content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        using var response = await client.PostAsync(new Uri(baseUri, "/ngsi-ld/v1/subscriptions"), content, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Created || response.Headers.Location is not { } location)
        {
            string answer = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new BenchFailure(string.Create(CultureInfo.InvariantCulture, $"creating subscription {number} failed: {(int)response.StatusCode} {answer}"));
        }

        return location.IsAbsoluteUri ? location : new Uri(baseUri, location);
    }

    /// <summary>The broker's own count of notifications sent and failed, over the subscriptions.</summary>
    private static async Task<(long? Sent, long? Failed)> CountersAsync(HttpClient client, List<Uri> subscriptions, CancellationToken cancellationToken)
    {
        long sent = 0;
        long failed = 0;
        foreach (var uri in subscriptions)
        {
            using var response = await client.GetAsync(uri, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return (null, null);
            }

            using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false));
            var notification = json.RootElement.GetProperty("notification");
            sent += notification.TryGetProperty("timesSent", out var s) ? s.GetInt64() : 0;
            failed += notification.TryGetProperty("timesFailed", out var f) ? f.GetInt64() : 0;
        }

        return (sent, failed);
    }

    private static async Task UnsubscribeAsync(HttpClient client, List<Uri> subscriptions, Action<string> progress)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int failed = 0;
        foreach (var uri in subscriptions)
        {
            try
            {
                using var response = await client.DeleteAsync(uri, timeout.Token).ConfigureAwait(false);
                failed += response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
            {
                failed++;
            }
        }

        if (failed > 0)
        {
            progress($"broker: notify: {failed} of the bench's subscriptions could not be deleted (description \"Machi bench notify …\")");
        }
    }
}
