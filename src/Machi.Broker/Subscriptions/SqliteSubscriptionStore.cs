using System.Globalization;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Subscriptions;

/// <summary>A subscription row: its document, timestamps and delivery counters.</summary>
internal sealed record StoredSubscription(string Tenant, string Id, string Json, DateTimeOffset CreatedAt, DateTimeOffset ModifiedAt, DeliveryCounters Counters);

/// <summary>A notification to write into the outbox; <see cref="EntityId"/> orders deliveries ("" for periodic ones).</summary>
internal sealed record OutboxItem(string Tenant, string SubscriptionId, string Endpoint, string EntityId, string NotificationId, DateTimeOffset NotifiedAt, string DataJson);

/// <summary>A notification waiting in the outbox.</summary>
internal sealed record OutboxRow(long Seq, string Tenant, string SubscriptionId, string Endpoint, string EntityId, string NotificationId, DateTimeOffset NotifiedAt, string DataJson, int Attempts, DateTimeOffset NextAttemptAt);

/// <summary>
/// Subscriptions, the notification outbox and the change-log cursor in the embedded database. Every write is its own
/// short transaction (synchronous=FULL): a completed task means it is on disk.
/// </summary>
internal sealed class SqliteSubscriptionStore(SqliteEntityStore entities) : ISubscriptionStore
{
    public const string Consumer = "subscriptions";

    /// <summary>One node per file: nobody else changes the subscriptions.</summary>
    public event Action? ChangedElsewhere
    {
        add { }
        remove { }
    }

    public Task<bool> AddAsync(StoredSubscription s, CancellationToken ct) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT INTO subscriptions (tenant, id, doc, created_at, modified_at) VALUES ($tenant, $id, $doc, $created, $modified)
            ON CONFLICT (tenant, id) DO NOTHING
            """;
        Bind(cmd, s);
        return cmd.ExecuteNonQuery() > 0;
    }, ct);

    public Task<bool> ReplaceAsync(StoredSubscription s, CancellationToken ct) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE subscriptions SET doc = $doc, modified_at = $modified WHERE tenant = $tenant AND id = $id";
        Bind(cmd, s);
        return cmd.ExecuteNonQuery() > 0;
    }, ct);

    /// <summary>Deletes a subscription and the notifications still waiting for it.</summary>
    public Task<bool> DeleteAsync(string tenant, string id, CancellationToken ct) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "DELETE FROM subscriptions WHERE tenant = $tenant AND id = $id";
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        var deleted = cmd.ExecuteNonQuery() > 0;
        cmd.CommandText = "DELETE FROM notification_outbox WHERE tenant = $tenant AND subscription_id = $id";
        cmd.ExecuteNonQuery();
        return deleted;
    }, ct);

    /// <summary>Every subscription of every tenant, oldest first.</summary>
    public Task<List<StoredSubscription>> ListAsync(CancellationToken ct) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT tenant, id, doc, created_at, modified_at, times_sent, times_failed, last_notification, last_success, last_failure
            FROM subscriptions ORDER BY created_at, id
            """;
        using var r = cmd.ExecuteReader();
        var list = new List<StoredSubscription>();
        while (r.Read())
        {
            list.Add(new StoredSubscription(r.GetString(0), r.GetString(1), r.GetString(2), Instant(r.GetString(3)), Instant(r.GetString(4)),
                new DeliveryCounters(r.GetInt64(5), r.GetInt64(6), OptionalInstant(r, 7), OptionalInstant(r, 8), OptionalInstant(r, 9))));
        }

        return list;
    }, ct);

    public Task<DeliveryCounters> CountersAsync(string tenant, string id, CancellationToken ct) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT times_sent, times_failed, last_notification, last_success, last_failure FROM subscriptions WHERE tenant = $tenant AND id = $id";
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new DeliveryCounters(r.GetInt64(0), r.GetInt64(1), OptionalInstant(r, 2), OptionalInstant(r, 3), OptionalInstant(r, 4))
            : DeliveryCounters.None;
    }, ct);

    public Task<long> ReadCursorAsync(CancellationToken ct) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT seq FROM change_cursors WHERE consumer = $consumer";
        cmd.Parameters.AddWithValue("$consumer", Consumer);
        return cmd.ExecuteScalar() is long seq ? seq : 0L;
    }, ct);

    /// <summary>Writes matched notifications and, when given, moves the cursor, in one transaction: a crash keeps both or neither.</summary>
    public Task AppendAsync(IReadOnlyList<OutboxItem> items, long? cursor, CancellationToken ct) => WriteAsync((c, tx) =>
    {
        using (var insert = c.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO notification_outbox (tenant, subscription_id, endpoint, entity_id, notification_id, notified_at, data)
                VALUES ($tenant, $sub, $endpoint, $entity, $nid, $at, $data)
                """;
            var tenant = insert.Parameters.Add("$tenant", SqliteType.Text);
            var sub = insert.Parameters.Add("$sub", SqliteType.Text);
            var endpoint = insert.Parameters.Add("$endpoint", SqliteType.Text);
            var entity = insert.Parameters.Add("$entity", SqliteType.Text);
            var nid = insert.Parameters.Add("$nid", SqliteType.Text);
            var at = insert.Parameters.Add("$at", SqliteType.Text);
            var data = insert.Parameters.Add("$data", SqliteType.Text);
            insert.Prepare();
            foreach (var item in items)
            {
                tenant.Value = item.Tenant;
                sub.Value = item.SubscriptionId;
                endpoint.Value = item.Endpoint;
                entity.Value = item.EntityId;
                nid.Value = item.NotificationId;
                at.Value = NgsiText.FormatDateTime(item.NotifiedAt);
                data.Value = item.DataJson;
                insert.ExecuteNonQuery();
            }
        }

        using (var mark = c.CreateCommand())
        {
            mark.Transaction = tx;
            mark.CommandText = "UPDATE subscriptions SET last_notification = $at WHERE tenant = $tenant AND id = $id";
            var tenant = mark.Parameters.Add("$tenant", SqliteType.Text);
            var id = mark.Parameters.Add("$id", SqliteType.Text);
            var at = mark.Parameters.Add("$at", SqliteType.Text);
            foreach (var item in items.DistinctBy(i => (i.Tenant, i.SubscriptionId)))
            {
                tenant.Value = item.Tenant;
                id.Value = item.SubscriptionId;
                at.Value = NgsiText.FormatDateTime(item.NotifiedAt);
                mark.ExecuteNonQuery();
            }
        }

        if (cursor is { } seq)
        {
            using var move = c.CreateCommand();
            move.Transaction = tx;
            move.CommandText = "INSERT INTO change_cursors (consumer, seq) VALUES ($consumer, $seq) ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq";
            move.Parameters.AddWithValue("$consumer", Consumer);
            move.Parameters.AddWithValue("$seq", seq);
            move.ExecuteNonQuery();
        }

        return true;
    }, ct);

    /// <summary>Endpoints with notifications still to deliver.</summary>
    public Task<List<string>> PendingEndpointsAsync(CancellationToken ct) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT DISTINCT endpoint FROM notification_outbox WHERE dead = 0";
        using var r = cmd.ExecuteReader();
        var list = new List<string>();
        while (r.Read())
        {
            list.Add(r.GetString(0));
        }

        return list;
    }, ct);

    /// <summary>The oldest notifications waiting for one endpoint after <paramref name="afterSeq"/>, in outbox order.</summary>
    public Task<List<OutboxRow>> PendingAsync(string endpoint, long afterSeq, int max, CancellationToken ct) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT seq, tenant, subscription_id, endpoint, entity_id, notification_id, notified_at, data, attempts, next_attempt_at
            FROM notification_outbox WHERE endpoint = $endpoint AND dead = 0 AND seq > $after ORDER BY seq LIMIT $max
            """;
        cmd.Parameters.AddWithValue("$endpoint", endpoint);
        cmd.Parameters.AddWithValue("$after", afterSeq);
        cmd.Parameters.AddWithValue("$max", max);
        using var r = cmd.ExecuteReader();
        var list = new List<OutboxRow>();
        while (r.Read())
        {
            list.Add(new OutboxRow(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5),
                Instant(r.GetString(6)), r.GetString(7), (int)r.GetInt64(8), new DateTimeOffset(r.GetInt64(9), TimeSpan.Zero)));
        }

        return list;
    }, ct);

    /// <summary>A notification was acknowledged: it leaves the outbox and the subscription counts it.</summary>
    public Task RecordSuccessAsync(OutboxRow row, DateTimeOffset at, CancellationToken ct) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "DELETE FROM notification_outbox WHERE seq = $seq";
        cmd.Parameters.AddWithValue("$seq", row.Seq);
        cmd.ExecuteNonQuery();
        cmd.CommandText = "UPDATE subscriptions SET times_sent = times_sent + 1, last_success = $at WHERE tenant = $tenant AND id = $id";
        cmd.Parameters.AddWithValue("$at", NgsiText.FormatDateTime(at));
        cmd.Parameters.AddWithValue("$tenant", row.Tenant);
        cmd.Parameters.AddWithValue("$id", row.SubscriptionId);
        cmd.ExecuteNonQuery();
        return true;
    }, ct);

    /// <summary>An attempt failed: retry at <paramref name="nextAttemptAt"/>, or, with <paramref name="dead"/>, give up on it.</summary>
    public Task RecordFailureAsync(OutboxRow row, DateTimeOffset at, DateTimeOffset nextAttemptAt, bool dead, string error, CancellationToken ct) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $next, dead = $dead, last_error = $error WHERE seq = $seq";
        cmd.Parameters.AddWithValue("$seq", row.Seq);
        cmd.Parameters.AddWithValue("$next", nextAttemptAt.UtcTicks);
        cmd.Parameters.AddWithValue("$dead", dead ? 1 : 0);
        cmd.Parameters.AddWithValue("$error", error.Length > 500 ? error[..500] : error);
        cmd.ExecuteNonQuery();
        cmd.CommandText = "UPDATE subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + 1, last_failure = $at WHERE tenant = $tenant AND id = $id";
        cmd.Parameters.AddWithValue("$at", NgsiText.FormatDateTime(at));
        cmd.Parameters.AddWithValue("$tenant", row.Tenant);
        cmd.Parameters.AddWithValue("$id", row.SubscriptionId);
        cmd.ExecuteNonQuery();
        return true;
    }, ct);

    /// <summary>Dead-lettered notifications of a subscription.</summary>
    public Task<long> DeadCountAsync(string tenant, string id, CancellationToken ct) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM notification_outbox WHERE tenant = $tenant AND subscription_id = $id AND dead = 1";
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        return (long)cmd.ExecuteScalar()!;
    }, ct);

    private static void Bind(SqliteCommand cmd, StoredSubscription s)
    {
        cmd.Parameters.AddWithValue("$tenant", s.Tenant);
        cmd.Parameters.AddWithValue("$id", s.Id);
        cmd.Parameters.AddWithValue("$doc", s.Json);
        cmd.Parameters.AddWithValue("$created", NgsiText.FormatDateTime(s.CreatedAt));
        cmd.Parameters.AddWithValue("$modified", NgsiText.FormatDateTime(s.ModifiedAt));
    }

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);

    private static DateTimeOffset? OptionalInstant(SqliteDataReader r, int column) => r.IsDBNull(column) ? null : Instant(r.GetString(column));

    /// <summary>Runs a change in the entity store's writer transaction: durable once the task completes, and never
    /// competing with entity writes for SQLite's write lock.</summary>
    private Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken ct) =>
        entities.RunInWriterAsync(work, ct);

    private Task<T> RunAsync<T>(Func<SqliteConnection, T> read, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(entities.Read(read));
    }
}
