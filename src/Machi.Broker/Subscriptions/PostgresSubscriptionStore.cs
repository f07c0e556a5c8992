using System.Globalization;
using Machi.Broker.Storage.Postgres;
using Machi.Ngsi.Model;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// Subscriptions, the notification outbox and the change-log cursor in PostgreSQL. Each write is its own
/// transaction; a change to the subscriptions is announced (NOTIFY, at commit) so every node reads them again.
/// Only the leading node (<see cref="PostgresLeadership"/>) appends to the outbox, so its seqs commit in order.
/// </summary>
internal sealed class PostgresSubscriptionStore : ISubscriptionStore
{
    private readonly PostgresEntityStore _entities;

    public PostgresSubscriptionStore(PostgresEntityStore entities)
    {
        _entities = entities;
        entities.SubscriptionsChanged += () => ChangedElsewhere?.Invoke();
    }

    public event Action? ChangedElsewhere;

    private NpgsqlDataSource DataSource => _entities.DataSource;

    public async Task<bool> AddAsync(StoredSubscription s, CancellationToken ct) => await ChangeAsync("""
        INSERT INTO subscriptions (tenant, id, doc, created_at, modified_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant, id) DO NOTHING
        """, [s.Tenant, s.Id, s.Json, NgsiText.FormatDateTime(s.CreatedAt), NgsiText.FormatDateTime(s.ModifiedAt)], ct).ConfigureAwait(false) > 0;

    public async Task<bool> ReplaceAsync(StoredSubscription s, CancellationToken ct) => await ChangeAsync(
        "UPDATE subscriptions SET doc = $3, modified_at = $4 WHERE tenant = $1 AND id = $2",
        [s.Tenant, s.Id, s.Json, NgsiText.FormatDateTime(s.ModifiedAt)], ct).ConfigureAwait(false) > 0;

    public async Task<bool> DeleteAsync(string tenant, string id, CancellationToken ct)
    {
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        var deleted = await ExecuteAsync(connection, tx, "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2", [tenant, id], ct).ConfigureAwait(false) > 0;
        await ExecuteAsync(connection, tx, "DELETE FROM notification_outbox WHERE tenant = $1 AND subscription_id = $2", [tenant, id], ct).ConfigureAwait(false);
        await ExecuteAsync(connection, tx, $"SELECT pg_notify('{PostgresEntityStore.SubscriptionChannel}', '')", [], ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return deleted;
    }

    public async Task<List<StoredSubscription>> ListAsync(CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("""
            SELECT tenant, id, doc, created_at, modified_at, times_sent, times_failed, last_notification, last_success, last_failure
            FROM subscriptions ORDER BY created_at, id
            """);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<StoredSubscription>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new StoredSubscription(r.GetString(0), r.GetString(1), r.GetString(2), Instant(r.GetString(3)), Instant(r.GetString(4)),
                new DeliveryCounters(r.GetInt64(5), r.GetInt64(6), OptionalInstant(r, 7), OptionalInstant(r, 8), OptionalInstant(r, 9))));
        }

        return list;
    }

    public async Task<DeliveryCounters> CountersAsync(string tenant, string id, CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("SELECT times_sent, times_failed, last_notification, last_success, last_failure FROM subscriptions WHERE tenant = $1 AND id = $2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        return await r.ReadAsync(ct).ConfigureAwait(false)
            ? new DeliveryCounters(r.GetInt64(0), r.GetInt64(1), OptionalInstant(r, 2), OptionalInstant(r, 3), OptionalInstant(r, 4))
            : DeliveryCounters.None;
    }

    public async Task<long> ReadCursorAsync(CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("SELECT seq FROM change_cursors WHERE consumer = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = SqliteSubscriptionStore.Consumer });
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is long seq ? seq : 0L;
    }

    public async Task AppendAsync(IReadOnlyList<OutboxItem> items, long? cursor, CancellationToken ct)
    {
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection, tx);
        if (items.Count > 0)
        {
            var insert = new NpgsqlBatchCommand("""
                INSERT INTO notification_outbox (tenant, subscription_id, endpoint, entity_id, notification_id, notified_at, data)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                """);
            insert.Parameters.Add(TextArray(items.Select(i => i.Tenant)));
            insert.Parameters.Add(TextArray(items.Select(i => i.SubscriptionId)));
            insert.Parameters.Add(TextArray(items.Select(i => i.Endpoint)));
            insert.Parameters.Add(TextArray(items.Select(i => i.EntityId)));
            insert.Parameters.Add(TextArray(items.Select(i => i.NotificationId)));
            insert.Parameters.Add(TextArray(items.Select(i => NgsiText.FormatDateTime(i.NotifiedAt))));
            insert.Parameters.Add(TextArray(items.Select(i => i.DataJson)));
            batch.BatchCommands.Add(insert);

            var last = items.GroupBy(i => (i.Tenant, i.SubscriptionId)).Select(g => g.Last()).ToList();
            var mark = new NpgsqlBatchCommand("""
                UPDATE subscriptions s SET last_notification = v.at FROM unnest($1::text[], $2::text[], $3::text[]) v(tenant, id, at)
                WHERE s.tenant = v.tenant AND s.id = v.id
                """);
            mark.Parameters.Add(TextArray(last.Select(i => i.Tenant)));
            mark.Parameters.Add(TextArray(last.Select(i => i.SubscriptionId)));
            mark.Parameters.Add(TextArray(last.Select(i => NgsiText.FormatDateTime(i.NotifiedAt))));
            batch.BatchCommands.Add(mark);
        }

        if (cursor is { } seq)
        {
            var move = new NpgsqlBatchCommand("INSERT INTO change_cursors (consumer, seq) VALUES ($1, $2) ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq");
            move.Parameters.Add(new NpgsqlParameter { Value = SqliteSubscriptionStore.Consumer });
            move.Parameters.Add(new NpgsqlParameter { Value = seq });
            batch.BatchCommands.Add(move);
        }

        if (batch.BatchCommands.Count > 0)
        {
            await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    public async Task<List<string>> PendingEndpointsAsync(CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("SELECT DISTINCT endpoint FROM notification_outbox WHERE NOT dead");
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<string>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(r.GetString(0));
        }

        return list;
    }

    public async Task<List<OutboxRow>> PendingAsync(string endpoint, long afterSeq, int max, CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("""
            SELECT seq, tenant, subscription_id, endpoint, entity_id, notification_id, notified_at, data, attempts, next_attempt_at
            FROM notification_outbox WHERE endpoint = $1 AND NOT dead AND seq > $2 ORDER BY seq LIMIT $3
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = endpoint });
        cmd.Parameters.Add(new NpgsqlParameter { Value = afterSeq });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)max });
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<OutboxRow>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new OutboxRow(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5),
                Instant(r.GetString(6)), r.GetString(7), r.GetInt32(8), new DateTimeOffset(r.GetInt64(9), TimeSpan.Zero)));
        }

        return list;
    }

    public async Task RecordSuccessAsync(OutboxRow row, DateTimeOffset at, CancellationToken ct)
    {
        await using var batch = DataSource.CreateBatch();
        var delete = new NpgsqlBatchCommand("DELETE FROM notification_outbox WHERE tenant = $1 AND seq = $2");
        delete.Parameters.Add(new NpgsqlParameter { Value = row.Tenant });
        delete.Parameters.Add(new NpgsqlParameter { Value = row.Seq });
        var count = new NpgsqlBatchCommand("UPDATE subscriptions SET times_sent = times_sent + 1, last_success = $3 WHERE tenant = $1 AND id = $2");
        count.Parameters.Add(new NpgsqlParameter { Value = row.Tenant });
        count.Parameters.Add(new NpgsqlParameter { Value = row.SubscriptionId });
        count.Parameters.Add(new NpgsqlParameter { Value = NgsiText.FormatDateTime(at) });
        batch.BatchCommands.Add(delete);
        batch.BatchCommands.Add(count);
        await ExecuteInTransactionAsync(batch, ct).ConfigureAwait(false);
    }

    public async Task RecordFailureAsync(OutboxRow row, DateTimeOffset at, DateTimeOffset nextAttemptAt, bool dead, string error, CancellationToken ct)
    {
        await using var batch = DataSource.CreateBatch();
        var update = new NpgsqlBatchCommand("UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $3, dead = $4, last_error = $5 WHERE tenant = $1 AND seq = $2");
        update.Parameters.Add(new NpgsqlParameter { Value = row.Tenant });
        update.Parameters.Add(new NpgsqlParameter { Value = row.Seq });
        update.Parameters.Add(new NpgsqlParameter { Value = nextAttemptAt.UtcTicks });
        update.Parameters.Add(new NpgsqlParameter { Value = dead });
        update.Parameters.Add(new NpgsqlParameter { Value = error.Length > 500 ? error[..500] : error });
        var count = new NpgsqlBatchCommand("UPDATE subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + 1, last_failure = $3 WHERE tenant = $1 AND id = $2");
        count.Parameters.Add(new NpgsqlParameter { Value = row.Tenant });
        count.Parameters.Add(new NpgsqlParameter { Value = row.SubscriptionId });
        count.Parameters.Add(new NpgsqlParameter { Value = NgsiText.FormatDateTime(at) });
        batch.BatchCommands.Add(update);
        batch.BatchCommands.Add(count);
        await ExecuteInTransactionAsync(batch, ct).ConfigureAwait(false);
    }

    public async Task<long> DeadCountAsync(string tenant, string id, CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("SELECT count(*) FROM notification_outbox WHERE tenant = $1 AND subscription_id = $2 AND dead");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        return (long)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>One statement and the announcement of the change, committed together; the rows it touched.</summary>
    private async Task<int> ChangeAsync(string sql, object[] values, CancellationToken ct)
    {
        await using var connection = await DataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        var rows = await ExecuteAsync(connection, tx, sql, values, ct).ConfigureAwait(false);
        if (rows > 0)
        {
            await ExecuteAsync(connection, tx, $"SELECT pg_notify('{PostgresEntityStore.SubscriptionChannel}', '')", [], ct).ConfigureAwait(false);
        }

        await tx.CommitAsync(ct).ConfigureAwait(false);
        return rows;
    }

    private static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, object[] values, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, connection, tx);
        foreach (var value in values)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>A batch runs as one implicit transaction in PostgreSQL: both statements or neither.</summary>
    private static async Task ExecuteInTransactionAsync(NpgsqlBatch batch, CancellationToken ct) =>
        await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);

    private static NpgsqlParameter TextArray(IEnumerable<string> values) =>
        new() { Value = values.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text };

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);

    private static DateTimeOffset? OptionalInstant(NpgsqlDataReader r, int column) => r.IsDBNull(column) ? null : Instant(r.GetString(column));
}
