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
    INotificationLeadership leadership,
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

    /// <summary>Delivers while this node leads (always, on SQLite): a node that stops leading lets its workers end, the
    /// rows they had not recorded stay in the outbox for the next leader.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DeliverWhileLeadingAsync(await leadership.LeadAsync(stoppingToken).ConfigureAwait(false)).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task DeliverWhileLeadingAsync(CancellationToken stoppingToken)
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
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
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

    /// <summary>What became of one attempt, as recorded in the outbox.</summary>
    private enum Outcome
    {
        /// <summary>Acknowledged: the row left the outbox.</summary>
        Delivered,

        /// <summary>Failed: the row waits for its next attempt.</summary>
        Retry,

        /// <summary>Given up (or its subscription is gone): the row is dead or deleted.</summary>
        Dead,

        /// <summary>Not attempted or not recorded (shutting down, or recording failed): the outbox decides.</summary>
        Unknown,
    }

    /// <param name="sent">Called once the attempt is over (answered, failed or timed out), before it is recorded.</param>
    private async Task<(Outcome Outcome, OutboxRow Row)> SendAsync(OutboxRow row, Action sent, CancellationToken stoppingToken)
    {
        var store = _subscriptions.Store;
        Subscription subscription;
        try
        {
            subscription = await _subscriptions.GetAsync(row.Tenant, row.SubscriptionId, Access.Caller.Platform, stoppingToken).ConfigureAwait(false);
        }
        catch (Ngsi.Errors.NgsiException)
        {
            // Deleted meanwhile (its rows go with it); nothing to deliver.
            await store.RecordFailureAsync(row, _time.GetUtcNow(), _time.GetUtcNow(), dead: true, "subscription deleted", stoppingToken).ConfigureAwait(false);
            return (Outcome.Dead, row);
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
                return (Outcome.Unknown, row); // shutting down: the row stays and is sent after the restart
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
            return (Outcome.Delivered, row);
        }

        var attempts = row.Attempts + 1;
        var dead = attempts >= _settings.MaxAttempts;
        if (dead)
        {
            _logger.LogWarning("Notification {Notification} of subscription {Subscription} to {Endpoint} dead-lettered after {Attempts} attempts: {Error}",
                row.NotificationId, row.SubscriptionId, row.Endpoint, attempts, error);
        }

        var next = now + Backoff(attempts);
        await store.RecordFailureAsync(row, now, next, dead, error, CancellationToken.None).ConfigureAwait(false);
        return dead ? (Outcome.Dead, row) : (Outcome.Retry, row with { Attempts = attempts, NextAttemptAt = next });
    }

    /// <summary>
    /// Delivers the outbox rows of one endpoint; ends when none is left (a new one starts when needed). It keeps a
    /// window of the endpoint's oldest rows in memory, adds the rows committed since it last looked (the outbox's seqs
    /// only grow: one writer commits them in order) and updates the window from each attempt's recorded outcome, so a
    /// busy endpoint costs one small read per new batch of notifications, not a re-read of the window per attempt.
    /// </summary>
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
        private sealed record Delivery(string Tenant, string Entity, TaskCompletionSource Sent, Task<(Outcome Outcome, OutboxRow Row)> Done);

        private async Task RunAsync(CancellationToken stoppingToken)
        {
            var settings = _owner._settings;
            var store = _owner._subscriptions.Store;
            var inFlight = new Dictionary<long, Delivery>();
            var window = new List<OutboxRow>();
            var readThrough = 0L;
            try
            {
                while (!stoppingToken.IsCancellationRequested)
                {
                    var signal = Volatile.Read(ref _signal).Task;
                    if (window.Count < PendingWindow)
                    {
                        var fresh = await store.PendingAsync(_endpoint, readThrough, PendingWindow - window.Count, stoppingToken).ConfigureAwait(false);
                        window.AddRange(fresh);
                        readThrough = fresh.Count > 0 ? fresh[^1].Seq : readThrough;
                    }

                    if (window.Count == 0 && inFlight.Count == 0)
                    {
                        return;
                    }

                    var now = _owner._time.GetUtcNow();
                    var busy = inFlight.Values.Select(f => (f.Tenant, f.Entity)).ToHashSet();
                    var sending = inFlight.Values.Count(f => !f.Sent.Task.IsCompleted);
                    DateTimeOffset? nextDue = null;
                    foreach (var row in window)
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
                    var waits = inFlight.Values.Select(f => (Task)f.Done)
                        .Concat(inFlight.Values.Where(f => !f.Sent.Task.IsCompleted).Select(f => f.Sent.Task))
                        .Append(signal).Append(Task.Delay(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, _owner._time, stoppingToken));
                    await Task.WhenAny(waits).ConfigureAwait(false);
                    foreach (var (seq, delivery) in inFlight.Where(f => f.Value.Done.IsCompleted).ToList())
                    {
                        inFlight.Remove(seq);
                        var (outcome, row) = await delivery.Done.ConfigureAwait(false);
                        var index = window.FindIndex(r => r.Seq == seq);
                        switch (outcome)
                        {
                            case Outcome.Delivered or Outcome.Dead when index >= 0:
                                window.RemoveAt(index);
                                break;
                            case Outcome.Retry when index >= 0:
                                window[index] = row;
                                break;
                            case Outcome.Unknown:
                                // What the outbox holds for this row is not known here: read the window again (rows
                                // still in flight are skipped when they come back).
                                window.Clear();
                                readThrough = 0;
                                break;
                        }
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

        private async Task<(Outcome Outcome, OutboxRow Row)> SendSafelyAsync(OutboxRow row, TaskCompletionSource sent, CancellationToken stoppingToken)
        {
            try
            {
                return await _owner.SendAsync(row, () => sent.TrySetResult(), stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The row stays in the outbox and is tried again.
                _owner._logger.LogError(ex, "Recording the delivery of notification {Notification} failed", row.NotificationId);
                return (Outcome.Unknown, row);
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
