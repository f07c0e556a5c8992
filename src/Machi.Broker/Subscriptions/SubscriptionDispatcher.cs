using Machi.Broker.Access;
using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// Reads the change log from its durable cursor, matches every change against the subscriptions and writes the
/// notifications into the outbox together with the cursor advance (one transaction: after a crash nothing is
/// matched twice and nothing is lost). Also produces periodic (timeInterval) notifications. Never sends anything
/// itself: <see cref="NotificationDelivery"/> does, so no endpoint can slow matching or writes.
/// </summary>
internal sealed class SubscriptionDispatcher(
    IEntityStore entities,
    SubscriptionService subscriptions,
    NotificationDelivery delivery,
    INotificationLeadership leadership,
    AccessPolicy access,
    AccessAudit audit,
    IOptions<SubscriptionOptions> options,
    TimeProvider time,
    ILogger<SubscriptionDispatcher> logger) : BackgroundService
{
    /// <summary>When each subscription last produced a notification (throttling, timeInterval); survives via lastNotification.</summary>
    private readonly ConcurrentDictionary<(string Tenant, string Id), DateTimeOffset> _lastNotified = new();

    /// <summary>The owner of subscriptions made before owners were recorded: city data, no personal data.</summary>
    private static readonly Caller LegacyOwner = new(null, null, new HashSet<string> { Caller.ReadScope }, new HashSet<string>());
    private static readonly TimeSpan CursorSaveInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan QuietBeforeSave = TimeSpan.FromMilliseconds(200);

    private bool _seeded;
    private DateTimeOffset _cursorSavedAt;
    private long _cursorSaved = -1;

    /// <summary>Matches while this node leads (always, on SQLite); when another node takes over, waits to lead again.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var leading = await leadership.LeadAsync(stoppingToken);
                (_seeded, _cursorSaved, _cursorSavedAt) = (false, -1, default);
                _lastNotified.Clear();
                await MatchWhileLeadingAsync(leading);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task MatchWhileLeadingAsync(CancellationToken stoppingToken)
    {
        var cursor = -1L;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (cursor < 0)
                {
                    cursor = await subscriptions.Store.ReadCursorAsync(stoppingToken);
                    logger.LogInformation("Matching resumes after change {Cursor}; the change log ends at {Last}", cursor, entities.LastChangeSeq);
                }

                if (!_seeded)
                {
                    await SeedAsync(stoppingToken);
                }

                // With no subscription to match, the changes need not even be read: the cursor moves past them.
                if ((await subscriptions.AllAsync(stoppingToken)).Count == 0 && entities.LastChangeSeq > cursor)
                {
                    cursor = await AdvanceAsync([], entities.LastChangeSeq, stoppingToken);
                    continue;
                }

                var changes = await entities.ReadChangesAsync(cursor, options.Value.MatchBatchSize, stoppingToken);
                if (changes.Count > 0)
                {
                    cursor = await MatchAsync(changes, stoppingToken);
                    continue;
                }

                // Caught up. Once no change has come for a moment, the cursor on disk catches up too (so the change
                // log can be pruned behind it); under load it is saved by AdvanceAsync, at most once a second.
                if (cursor > _cursorSaved)
                {
                    var next = entities.WaitForChangeAsync(cursor, stoppingToken);
                    if (await Task.WhenAny(next, Task.Delay(QuietBeforeSave, time, stoppingToken)) == next)
                    {
                        continue;
                    }

                    await subscriptions.Store.AppendAsync([], cursor, stoppingToken);
                    (_cursorSaved, _cursorSavedAt) = (cursor, time.GetUtcNow());
                }

                var periodicDue = await PeriodicAsync(stoppingToken);
                var wait = periodicDue is { } due ? Max(due - time.GetUtcNow(), TimeSpan.FromMilliseconds(10)) : TimeSpan.FromSeconds(5);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                timeout.CancelAfter(wait);
                var changed = subscriptions.Changed;
                try
                {
                    await Task.WhenAny(entities.WaitForChangeAsync(cursor, timeout.Token), changed.WaitAsync(timeout.Token));
                }
                finally
                {
                    await timeout.CancelAsync();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The cursor did not move: the same changes are matched again after a pause.
                logger.LogError(ex, "Matching changes against subscriptions failed; retrying");
                cursor = -1;
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task SeedAsync(CancellationToken ct)
    {
        foreach (var stored in await subscriptions.Store.ListAsync(ct))
        {
            if (stored.Counters.LastNotification is { } at)
            {
                _lastNotified.TryAdd((stored.Tenant, stored.Id), at);
            }
        }

        _seeded = true;
    }

    private async Task<long> MatchAsync(IReadOnlyList<EntityChange> changes, CancellationToken ct)
    {
        var all = await subscriptions.AllAsync(ct);
        var byTenant = all.GroupBy(s => s.Tenant).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var items = new List<OutboxItem>();
        foreach (var change in changes)
        {
            if (!byTenant.TryGetValue(change.Tenant, out var candidates))
            {
                continue;
            }

            Entity? before = null;
            Entity? after = null;
            var decoded = false;
            foreach (var subscription in candidates)
            {
                if (!subscription.IsActive || subscription.IsExpired(change.At) || subscription.TimeInterval is not null || change.At < subscription.CreatedAt)
                {
                    continue;
                }

                if (!decoded)
                {
                    before = change.BeforeEntity();
                    after = change.AfterEntity();
                    decoded = true;
                }

                // A subscriber is told only what it may see now: a resident's data stops with the consent.
                var owner = subscription.Owner ?? LegacyOwner;
                var visible = change.Kind == ChangeKind.Deleted ? before : after;
                if (visible is null || !access.CanRead(owner, EntityAccess.Of(visible)))
                {
                    continue;
                }

                var matched = NotificationMatcher.Match(subscription, change.Kind, before, after);
                if (matched is null)
                {
                    continue;
                }

                if (AccessPolicy.IsThirdParty(owner, EntityAccess.Of(visible)))
                {
                    _ = audit.RecordAsync(owner, change.Tenant, [visible], "notify");
                }

                var now = time.GetUtcNow();
                var key = (subscription.Tenant, subscription.Id);
                if (subscription.Throttling is { } throttling && _lastNotified.TryGetValue(key, out var last) && now - last < throttling)
                {
                    continue;
                }

                _lastNotified[key] = now;
                var data = change.Kind == ChangeKind.Deleted
                    ? NotificationMatcher.RenderDeleted(subscription, before!, change.At)
                    : NotificationMatcher.Render(subscription, after!, before, matched);
                items.Add(Item(subscription, change.EntityId, now, new JsonArray(data)));
            }
        }

        return await AdvanceAsync(items, changes[^1].Seq, ct);
    }

    /// <summary>Records the notifications and the cursor past the changes they came from, in one transaction.</summary>
    private async Task<long> AdvanceAsync(List<OutboxItem> items, long cursor, CancellationToken ct)
    {
        // Changes that notify nobody only move the cursor, which may lag on disk while changes keep coming (it is
        // saved at least once a second, and when changes have stopped coming): redoing them after a crash sends
        // nothing (a subscription never sees changes from before it existed), and skipping a commit per batch
        // keeps the dispatcher from taking the write lock and an fsync away from the writer under load.
        var now = time.GetUtcNow();
        if (items.Count > 0 || now - _cursorSavedAt >= CursorSaveInterval)
        {
            await subscriptions.Store.AppendAsync(items, cursor, ct);
            (_cursorSaved, _cursorSavedAt) = (cursor, now);
        }

        if (items.Count > 0)
        {
            delivery.Signal();
        }

        return cursor;
    }

    /// <summary>Sends the periodic notifications that are due; returns when the next one is.</summary>
    private async Task<DateTimeOffset?> PeriodicAsync(CancellationToken ct)
    {
        DateTimeOffset? next = null;
        var items = new List<OutboxItem>();
        foreach (var subscription in await subscriptions.AllAsync(ct))
        {
            if (subscription.TimeInterval is not { } interval)
            {
                continue;
            }

            var now = time.GetUtcNow();
            if (!subscription.IsActive || subscription.IsExpired(now))
            {
                continue;
            }

            var key = (subscription.Tenant, subscription.Id);
            var due = _lastNotified.TryGetValue(key, out var last) ? last + interval : now;
            if (due > now)
            {
                next = next is null || due < next ? due : next;
                continue;
            }

            _lastNotified[key] = now;
            next = next is null || now + interval < next ? now + interval : next;
            var owner = subscription.Owner ?? LegacyOwner;
            var page = await entities.QueryAsync(subscription.Tenant,
                new EntityQuery(subscription.Filter) { Limit = options.Value.MaxPeriodicEntities, Access = access.FilterFor(owner) }, ct);
            await audit.RecordAsync(owner, subscription.Tenant, page.Entities, "notify");
            if (page.Entities.Count == 0)
            {
                continue;
            }

            var data = new JsonArray();
            foreach (var entity in page.Entities)
            {
                data.Add(NotificationMatcher.Render(subscription, entity, null, null));
            }

            items.Add(Item(subscription, string.Empty, now, data));
        }

        if (items.Count > 0)
        {
            await subscriptions.Store.AppendAsync(items, cursor: null, ct);
            delivery.Signal();
        }

        return next;
    }

    private static OutboxItem Item(Subscription subscription, string entityId, DateTimeOffset now, JsonArray data) => new(
        subscription.Tenant, subscription.Id, subscription.Notification.Endpoint.AbsoluteUri, entityId,
        "urn:ngsi-ld:Notification:" + Guid.NewGuid().ToString("N"), now, data.ToJsonString(JsonOptions));

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static readonly System.Text.Json.JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
