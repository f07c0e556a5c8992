using Machi.Broker.Storage.Postgres;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Machi.Broker.Storage;

/// <summary>The housekeeping reads and deletes of the change log and the history, per backend.</summary>
internal interface IStoreMaintenance
{
    /// <summary>
    /// The seq through which the change log may go: every consumer in change_cursors has processed it, it is older
    /// than <paramref name="olderThan"/>, and it is not the last change (0: nothing).
    /// </summary>
    Task<long> PrunableChangesThroughAsync(DateTimeOffset olderThan, CancellationToken cancellationToken);

    /// <summary>Every entity with a history: its number, tenant and types (JSON array of expanded IRIs).</summary>
    Task<List<(long Hid, string Tenant, string Types)>> HistoryEntitiesAsync(CancellationToken cancellationToken);

    /// <summary>Deletes the history instances of each entity before its cutoff (UTC ticks); the number deleted.</summary>
    Task<long> DeleteHistoryBeforeAsync(IReadOnlyList<(long Hid, string Tenant, long Cutoff)> cutoffs, CancellationToken cancellationToken);
}

internal sealed class SqliteStoreMaintenance(SqliteEntityStore store) : IStoreMaintenance
{
    public Task<long> PrunableChangesThroughAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        using var connection = new SqliteConnection(store.ConnectionString);
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = """
            SELECT min(
                coalesce((SELECT min(seq) FROM change_cursors), 9223372036854775807),
                coalesce((SELECT max(seq) FROM entity_changes WHERE at < $before), 0),
                coalesce((SELECT max(seq) FROM entity_changes), 0) - 1)
            """;
        cmd.Parameters.AddWithValue("$before", olderThan.UtcTicks);
        return Task.FromResult(Math.Max(0, (long)cmd.ExecuteScalar()!));
    }

    public Task<List<(long Hid, string Tenant, string Types)>> HistoryEntitiesAsync(CancellationToken cancellationToken) =>
        Task.FromResult(store.Read(connection =>
        {
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT hid, tenant, types FROM history_entities";
            using var r = cmd.ExecuteReader();
            var rows = new List<(long, string, string)>();
            while (r.Read())
            {
                rows.Add((r.GetInt64(0), r.GetString(1), r.GetString(2)));
            }

            return rows;
        }));

    /// <summary>Through the writer, so writes go on between the steps; SQLite reuses the freed pages.</summary>
    public Task<long> DeleteHistoryBeforeAsync(IReadOnlyList<(long Hid, string Tenant, long Cutoff)> cutoffs, CancellationToken cancellationToken) =>
        store.RunInWriterAsync(
            (writer, tx) =>
            {
                using var delete = writer.CreateCommand();
                delete.Transaction = tx;
                delete.CommandText = "DELETE FROM history WHERE hid = $h AND t < $cutoff";
                var hid = delete.Parameters.Add("$h", SqliteType.Integer);
                var cutoff = delete.Parameters.Add("$cutoff", SqliteType.Integer);
                var count = 0L;
                foreach (var (h, _, c) in cutoffs)
                {
                    // A folded creation with an instance before the cutoff is unfolded, so that its later instances stay.
                    SqliteEntityStore.UnfoldCreations(writer, tx, h, before: c);
                    hid.Value = h;
                    cutoff.Value = c;
                    count += delete.ExecuteNonQuery();
                }

                return count;
            },
            cancellationToken);
}

internal sealed class PostgresStoreMaintenance(PostgresEntityStore store) : IStoreMaintenance
{
    public async Task<long> PrunableChangesThroughAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        await using var cmd = store.DataSource.CreateCommand("""
            SELECT least(
                coalesce((SELECT min(seq) FROM change_cursors), 9223372036854775807),
                coalesce((SELECT max(seq) FROM entity_changes WHERE at < $1), 0),
                coalesce((SELECT max(seq) FROM entity_changes), 0) - 1)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = olderThan.UtcTicks });
        return Math.Max(0, (long)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);
    }

    public async Task<List<(long Hid, string Tenant, string Types)>> HistoryEntitiesAsync(CancellationToken cancellationToken)
    {
        await using var cmd = store.DataSource.CreateCommand("SELECT hid, tenant, types FROM history_entities");
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var rows = new List<(long, string, string)>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add((r.GetInt64(0), r.GetString(1), r.GetString(2)));
        }

        return rows;
    }

    /// <summary>
    /// One statement for the whole step (after the folded creations straddling a cutoff are unfolded, so that their
    /// later instances stay); the time partitioning keeps each entity's range scan in few partitions.
    /// </summary>
    public async Task<long> DeleteHistoryBeforeAsync(IReadOnlyList<(long Hid, string Tenant, long Cutoff)> cutoffs, CancellationToken cancellationToken)
    {
        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await store.UnfoldCreationsAsync(connection, tx, cutoffs, cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("""
            DELETE FROM history h USING unnest($1::text[], $2::bigint[], $3::bigint[]) c(tenant, hid, cutoff)
            WHERE h.tenant = c.tenant AND h.hid = c.hid AND h.t < c.cutoff
            """, connection, tx);
        cmd.Parameters.Add(new NpgsqlParameter { Value = cutoffs.Select(c => c.Tenant).ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = cutoffs.Select(c => c.Hid).ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = cutoffs.Select(c => c.Cutoff).ToArray() });
        var deleted = await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return deleted;
    }
}
