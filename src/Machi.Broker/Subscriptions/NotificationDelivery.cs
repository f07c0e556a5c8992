using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Subscriptions;

/// <summary>One notification to send: the subscription it belongs to and the outbox row holding its data.</summary>
internal sealed record NotificationMessage(Subscription Subscription, OutboxRow Row);

/// <summary>A way to deliver notifications (HTTP or MQTT), chosen by the endpoint's URI scheme.</summary>
internal interface INotificationChannel
{
    bool CanSend(Uri endpoint);

    /// <summary>Sends one notification; completes when the receiver acknowledged it, throws when it did not.</summary>
    Task SendAsync(NotificationMessage message, CancellationToken cancellationToken);
}

/// <summary>
/// Delivers what the outbox holds, at least once: each endpoint has its own worker (a slow or dead endpoint delays
/// only itself), at most <see cref="SubscriptionOptions.ConcurrencyPerEndpoint"/> notifications in flight per
/// endpoint and never two for the same entity, so each entity's notifications arrive in the order of its changes.
/// A failed attempt is retried with exponential backoff; after <see cref="SubscriptionOptions.MaxAttempts"/> the
/// notification is dead-lettered (kept in the outbox, marked dead) and the subscription shows the failures.
/// </summary>
internal sealed class NotificationDelivery(
    SubscriptionService subscriptions,
    IEnumerable<INotificationChannel> channels,
    IOptions<SubscriptionOptions> options,
    TimeProvider time,
    ILogger<NotificationDelivery> logger) : BackgroundService
{
    /// <summary>Outbox rows an endpoint's worker looks at each time (the oldest): enough to find work beside busy entities.</summary>
    private const int PendingWindow = 128;

    private readonly ConcurrentDictionary<string, EndpointWorker> _workers = new(StringComparer.Ordinal);
    private readonly SubscriptionService _subscriptions = subscriptions;
    private readonly SubscriptionOptions _settings = options.Value;
    private readonly TimeProvider _time = time;
    private readonly ILogger _logger = logger;
    private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>New notifications are in the outbox.</summary>
    public void Signal() => Interlocked.Exchange(ref _signal, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var signal = Volatile.Read(ref _signal).Task;
            try
            {
                foreach (var endpoint in await _subscriptions.Store.PendingEndpointsAsync(stoppingToken))
                {
                    var worker = _workers.GetOrAdd(endpoint, e => new EndpointWorker(this, e, stoppingToken));
                    worker.Signal();
                }

                await signal.WaitAsync(TimeSpan.FromSeconds(2), _time, stoppingToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Poll again: retries that came due, workers that ended.
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _logger.LogError(ex, "Reading the notification outbox failed; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stoppingToken).ConfigureAwait(false);
            }
        }

        await Task.WhenAll(_workers.Values.Select(w => w.Completion)).ConfigureAwait(false);
    }

    private TimeSpan Backoff(int attempts)
    {
        var settings = _settings;
        var delay = settings.InitialRetryDelay * Math.Pow(2, Math.Min(attempts - 1, 30));
        return delay > settings.MaxRetryDelay ? settings.MaxRetryDelay : delay;
    }

    /// <param name="sent">Called once the attempt is over (answered, failed or timed out), before it is recorded.</param>
    private async Task SendAsync(OutboxRow row, Action sent, CancellationToken stoppingToken)
    {
        var store = _subscriptions.Store;
        Subscription subscription;
        try
        {
            subscription = await _subscriptions.GetAsync(row.Tenant, row.SubscriptionId, stoppingToken).ConfigureAwait(false);
        }
        catch (Ngsi.Errors.NgsiException)
        {
            // Deleted meanwhile (its rows go with it); nothing to deliver.
            await store.RecordFailureAsync(row, _time.GetUtcNow(), _time.GetUtcNow(), dead: true, "subscription deleted", stoppingToken).ConfigureAwait(false);
            return;
        }

        var endpoint = subscription.Notification.Endpoint;
        var channel = channels.FirstOrDefault(c => c.CanSend(endpoint));
        string? error = null;
        if (channel is null)
        {
            error = $"No notification channel for '{endpoint.Scheme}' endpoints.";
        }
        else
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            timeout.CancelAfter(_settings.RequestTimeout);
            try
            {
                await channel.SendAsync(new NotificationMessage(subscription, row), timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return; // shutting down: the row stays and is sent after the restart
            }
            catch (OperationCanceledException)
            {
                error = $"No answer within {_settings.RequestTimeout.TotalSeconds:0.###} s.";
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or InvalidOperationException or NotificationRejectedException)
            {
                error = ex.Message;
            }
        }

        sent();
        var now = _time.GetUtcNow();
        if (error is null)
        {
            await store.RecordSuccessAsync(row, now, CancellationToken.None).ConfigureAwait(false);
            return;
        }

        var attempts = row.Attempts + 1;
        var dead = attempts >= _settings.MaxAttempts;
        if (dead)
        {
            _logger.LogWarning("Notification {Notification} of subscription {Subscription} to {Endpoint} dead-lettered after {Attempts} attempts: {Error}",
                row.NotificationId, row.SubscriptionId, row.Endpoint, attempts, error);
        }

        await store.RecordFailureAsync(row, now, now + Backoff(attempts), dead, error, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Delivers the outbox rows of one endpoint; ends when none is left (a new one starts when needed).</summary>
    private sealed class EndpointWorker
    {
        private readonly NotificationDelivery _owner;
        private readonly string _endpoint;
        private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public EndpointWorker(NotificationDelivery owner, string endpoint, CancellationToken stoppingToken)
        {
            _owner = owner;
            _endpoint = endpoint;
            Completion = Task.Run(() => RunAsync(stoppingToken), CancellationToken.None);
        }

        public Task Completion { get; }

        public void Signal() => Interlocked.Exchange(ref _signal, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

        /// <summary>
        /// A notification being delivered: <see cref="Sent"/> when the endpoint has answered (it no longer counts
        /// against the endpoint's concurrency), <see cref="Done"/> when the outcome is also recorded (only then may the
        /// entity's next notification go, so a crash can never reorder them).
        /// </summary>
        private sealed record Delivery(string Tenant, string Entity, TaskCompletionSource Sent, Task Done);

        private async Task RunAsync(CancellationToken stoppingToken)
        {
            var settings = _owner._settings;
            var inFlight = new Dictionary<long, Delivery>();
            try
            {
                while (!stoppingToken.IsCancellationRequested)
                {
                    var signal = Volatile.Read(ref _signal).Task;
                    var rows = await _owner._subscriptions.Store.PendingAsync(_endpoint, PendingWindow, stoppingToken).ConfigureAwait(false);
                    if (rows.Count == 0 && inFlight.Count == 0)
                    {
                        return;
                    }

                    var now = _owner._time.GetUtcNow();
                    var busy = inFlight.Values.Select(f => (f.Tenant, f.Entity)).ToHashSet();
                    var sending = inFlight.Values.Count(f => !f.Sent.Task.IsCompleted);
                    DateTimeOffset? nextDue = null;
                    foreach (var row in rows)
                    {
                        if (inFlight.ContainsKey(row.Seq) || !busy.Add((row.Tenant, row.EntityId)))
                        {
                            continue; // only the oldest waiting notification of an entity may go
                        }

                        if (row.NextAttemptAt > now)
                        {
                            nextDue = nextDue is null || row.NextAttemptAt < nextDue ? row.NextAttemptAt : nextDue;
                            continue;
                        }

                        if (sending >= Math.Max(1, settings.ConcurrencyPerEndpoint))
                        {
                            break;
                        }

                        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        inFlight[row.Seq] = new Delivery(row.Tenant, row.EntityId, sent, SendSafelyAsync(row, sent, stoppingToken));
                        sending++;
                    }

                    var wait = nextDue is { } due ? due - now : TimeSpan.FromSeconds(5);
                    var waits = inFlight.Values.Select(f => f.Done)
                        .Concat(inFlight.Values.Where(f => !f.Sent.Task.IsCompleted).Select(f => f.Sent.Task))
                        .Append(signal).Append(Task.Delay(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, _owner._time, stoppingToken));
                    await Task.WhenAny(waits).ConfigureAwait(false);
                    foreach (var seq in inFlight.Where(f => f.Value.Done.IsCompleted).Select(f => f.Key).ToList())
                    {
                        inFlight.Remove(seq);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // shutting down
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _owner._logger.LogError(ex, "Delivery to {Endpoint} stopped; it restarts on the next poll", _endpoint);
            }
            finally
            {
                await Task.WhenAll(inFlight.Values.Select(f => f.Done)).ConfigureAwait(false);
                _owner._workers.TryRemove(new KeyValuePair<string, EndpointWorker>(_endpoint, this));
            }
        }

        private async Task SendSafelyAsync(OutboxRow row, TaskCompletionSource sent, CancellationToken stoppingToken)
        {
            try
            {
                await _owner.SendAsync(row, () => sent.TrySetResult(), stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The row stays in the outbox and is tried again.
                _owner._logger.LogError(ex, "Recording the delivery of notification {Notification} failed", row.NotificationId);
            }
            finally
            {
                sent.TrySetResult();
            }
        }
    }
}

/// <summary>The receiver answered, but not with success.</summary>
internal sealed class NotificationRejectedException(string message) : Exception(message);
