namespace Machi.Broker.Subscriptions;

/// <summary>
/// Where subscriptions, the notification outbox and the change-log cursor live (the embedded SQLite file or
/// PostgreSQL). A completed write task means the change is durable.
/// </summary>
internal interface ISubscriptionStore
{
    /// <summary>
    /// Raised when another node may have changed the subscriptions (PostgreSQL; SQLite has one node and never raises
    /// it): cached copies are to be read again.
    /// </summary>
    event Action? ChangedElsewhere;

    Task<bool> AddAsync(StoredSubscription s, CancellationToken ct);

    Task<bool> ReplaceAsync(StoredSubscription s, CancellationToken ct);

    /// <summary>Deletes a subscription and the notifications still waiting for it.</summary>
    Task<bool> DeleteAsync(string tenant, string id, CancellationToken ct);

    /// <summary>Every subscription of every tenant, oldest first.</summary>
    Task<List<StoredSubscription>> ListAsync(CancellationToken ct);

    Task<DeliveryCounters> CountersAsync(string tenant, string id, CancellationToken ct);

    Task<long> ReadCursorAsync(CancellationToken ct);

    /// <summary>Writes matched notifications and, when given, moves the cursor, in one transaction: a crash keeps both or neither.</summary>
    Task AppendAsync(IReadOnlyList<OutboxItem> items, long? cursor, CancellationToken ct);

    /// <summary>Endpoints with notifications still to deliver.</summary>
    Task<List<string>> PendingEndpointsAsync(CancellationToken ct);

    /// <summary>The oldest notifications waiting for one endpoint after <paramref name="afterSeq"/>, in outbox order.</summary>
    Task<List<OutboxRow>> PendingAsync(string endpoint, long afterSeq, int max, CancellationToken ct);

    /// <summary>A notification was acknowledged: it leaves the outbox and the subscription counts it.</summary>
    Task RecordSuccessAsync(OutboxRow row, DateTimeOffset at, CancellationToken ct);

    /// <summary>An attempt failed: retry at <paramref name="nextAttemptAt"/>, or, with <paramref name="dead"/>, give up on it.</summary>
    Task RecordFailureAsync(OutboxRow row, DateTimeOffset at, DateTimeOffset nextAttemptAt, bool dead, string error, CancellationToken ct);

    /// <summary>Dead-lettered notifications of a subscription.</summary>
    Task<long> DeadCountAsync(string tenant, string id, CancellationToken ct);
}

/// <summary>
/// Who matches changes and delivers notifications: one node at a time per database. With SQLite that is always this
/// node; with PostgreSQL, the node holding a session advisory lock (released by the server when the node dies).
/// </summary>
internal interface INotificationLeadership
{
    /// <summary>Completes once this node leads; the token it returns is cancelled when it stops leading (or is stopping).</summary>
    Task<CancellationToken> LeadAsync(CancellationToken stopping);
}

/// <summary>The embedded database has one node: it always leads.</summary>
internal sealed class SoleNodeLeadership : INotificationLeadership
{
    public Task<CancellationToken> LeadAsync(CancellationToken stopping) => Task.FromResult(stopping);
}
