using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Machi.Bench.Push;

/// <summary>
/// The notify scenario's consumer: Kestrel on a free loopback port, in the bench process, answering every
/// notification 204 at once. It notes when it had each (change, subscription) pair — the change's number is the
/// <c>seq</c> the update wrote, the subscription comes in the header its receiverInfo sets — with one timestamp
/// store per notification and no allocation beyond Kestrel's own, so it is never what the latency measures.
/// </summary>
internal sealed class NotificationReceiver : IAsyncDisposable
{
    public const string SubscriptionHeader = "X-Machi-Bench-Subscription";

    private static readonly byte[] SeqName = "seq"u8.ToArray();

    private readonly WebApplication _app;
    private readonly long[] _receivedAt;
    private readonly long _changes;
    private readonly int _fanout;
    private readonly int _groups;
    private long _received;
    private long _duplicates;
    private long _unexpected;

    private NotificationReceiver(WebApplication app, long changes, int fanout, int groups)
    {
        _app = app;
        _changes = changes;
        _fanout = fanout;
        _groups = groups;
        _receivedAt = new long[changes * fanout];
    }

    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Distinct (change, subscription) pairs received.</summary>
    public long Received => Interlocked.Read(ref _received);

    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Notifications that named no change of this run or no subscription of it.</summary>
    public long Unexpected => Interlocked.Read(ref _unexpected);

    /// <summary>When change <paramref name="change"/>'s notification for subscription slot <paramref name="slot"/>
    /// arrived (Stopwatch ticks), or 0.</summary>
    public long ReceivedAt(long change, int slot) => Volatile.Read(ref _receivedAt[(change * _fanout) + slot]);

    /// <param name="changes">Changes the run makes (their seq is 0…changes-1).</param>
    /// <param name="fanout">Subscriptions each change matches.</param>
    /// <param name="groups">Subscriptions ÷ fanout: subscription k matches group k mod groups, so its slot among the
    /// subscriptions of a change is k ÷ groups.</param>
    public static async Task<NotificationReceiver> StartAsync(long changes, int fanout, int groups, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        var receiver = new NotificationReceiver(app, changes, fanout, groups);
        app.Run(receiver.HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.BaseUri = new Uri(address.TrimEnd('/') + "/");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Connections the broker kept open are cut.
        }

        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HandleAsync(HttpContext http)
    {
        PipeReader body = http.Request.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await body.ReadAsync(http.RequestAborted).ConfigureAwait(false);
            if (read.IsCompleted || read.IsCanceled)
            {
                break;
            }

            body.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        long now = Stopwatch.GetTimestamp();
        bool known = int.TryParse(http.Request.Headers[SubscriptionHeader].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out int subscription)
            && subscription < _groups * _fanout;
        Record(read.Buffer, known ? subscription / _groups : -1, now);
        body.AdvanceTo(read.Buffer.End);
        http.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    // Every entity in data: normally one (one change per notification).
    private void Record(ReadOnlySequence<byte> notification, int slot, long now)
    {
        var json = new Utf8JsonReader(notification);
        bool found = false;
        try
        {
            while (json.Read())
            {
                if (json.TokenType != JsonTokenType.PropertyName || !json.ValueTextEquals(SeqName) || !json.Read())
                {
                    continue;
                }

                found = true;
                if (slot < 0 || json.TokenType != JsonTokenType.Number || !json.TryGetInt64(out long change) || change < 0 || change >= _changes)
                {
                    Interlocked.Increment(ref _unexpected);
                    continue;
                }

                if (Interlocked.CompareExchange(ref _receivedAt[(change * _fanout) + slot], now, 0) == 0)
                {
                    Interlocked.Increment(ref _received);
                }
                else
                {
                    Interlocked.Increment(ref _duplicates);
                }
            }
        }
        catch (JsonException)
        {
            found = false;
        }

        if (!found)
        {
            Interlocked.Increment(ref _unexpected);
        }
    }
}
