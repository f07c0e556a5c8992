using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>One notification as a receiver saw it: the parsed body and the request headers.</summary>
public sealed record ReceivedNotification(JsonNode Body, IReadOnlyDictionary<string, string> Headers, string ContentType)
{
    public JsonArray Data => Body["data"]!.AsArray();

    public JsonNode Entity => Data[0]!;
}

/// <summary>
/// A real HTTP endpoint on loopback (Kestrel) that records the notifications POSTed to /notify. It can answer with
/// an error status, hang, or be started later on a port chosen in advance (an endpoint that is down, then up).
/// </summary>
public sealed class NotificationReceiver : IAsyncDisposable
{
    private readonly ConcurrentQueue<ReceivedNotification> _received = new();
    private readonly CancellationTokenSource _hang = new();
    private WebApplication? _app;

    private NotificationReceiver(int port) => Port = port;

    public int Port { get; }

    public Uri Url => new($"http://127.0.0.1:{Port}/notify");

    /// <summary>Status answered to every notification (200 by default).</summary>
    public int Status { get; set; } = 200;

    /// <summary>When true, requests never get an answer (until the receiver is disposed).</summary>
    public bool Hang { get; set; }

    public IReadOnlyList<ReceivedNotification> Received => [.. _received];

    /// <summary>Starts listening now (on <paramref name="port"/>, or a free one).</summary>
    public static async Task<NotificationReceiver> StartAsync(int? port = null)
    {
        var receiver = new NotificationReceiver(port ?? FreePort.Next());
        await receiver.StartListeningAsync();
        return receiver;
    }

    /// <summary>A receiver whose port is known but which does not listen yet: its endpoint is down.</summary>
    public static NotificationReceiver Down() => new(FreePort.Next());

    public async Task StartListeningAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{Port}");
        var app = builder.Build();
        app.MapPost("/notify", async (HttpContext http) =>
        {
            if (Hang)
            {
                await Task.Delay(Timeout.Infinite, _hang.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                return Results.StatusCode(503);
            }

            var body = await JsonNode.ParseAsync(http.Request.Body);
            if (Status is >= 200 and < 300)
            {
                var headers = http.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
                _received.Enqueue(new ReceivedNotification(body!, headers, http.Request.ContentType ?? string.Empty));
            }

            return Results.StatusCode(Status);
        });
        await app.StartAsync();
        _app = app;
    }

    public async Task StopListeningAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> notifications have arrived; fails the test after the timeout.</summary>
    public async Task<IReadOnlyList<ReceivedNotification>> WaitForAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (_received.Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"expected {count} notifications, got {_received.Count}:\n{string.Join('\n', _received.Select(r => r.Body.ToJsonString()))}");
            await Task.Delay(25);
        }

        return Received;
    }

    /// <summary>
    /// Waits until <paramref name="count"/> different notifications (by id) have arrived: delivery is at least once, so
    /// a notification may come twice (after a crash, a retry), and counting copies would stop waiting too early.
    /// </summary>
    public async Task<IReadOnlyList<ReceivedNotification>> WaitForDistinctAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (Received.DistinctBy(r => r.Body["id"]?.ToJsonString()).Count() < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"expected {count} different notifications, got:\n{string.Join('\n', Received.Select(r => r.Body.ToJsonString()))}");
            await Task.Delay(25);
        }

        return Received;
    }

    /// <summary>Asserts that no more than <paramref name="count"/> notifications arrive within <paramref name="quiet"/>.</summary>
    public async Task AssertNoMoreThanAsync(int count, TimeSpan quiet)
    {
        await Task.Delay(quiet);
        Assert.True(_received.Count <= count, $"expected at most {count} notifications, got {_received.Count}:\n{string.Join('\n', _received.Select(r => r.Body.ToJsonString()))}");
    }

    public async ValueTask DisposeAsync()
    {
        await _hang.CancelAsync();
        await StopListeningAsync();
        _hang.Dispose();
    }
}
