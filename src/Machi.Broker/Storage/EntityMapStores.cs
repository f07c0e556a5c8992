using Machi.Broker.Storage.Postgres;
using Npgsql;

namespace Machi.Broker.Storage;

/// <summary>
/// An entity map as stored (clause 5.2.35): which entities a query found and where (<c>@none</c> for this broker, else
/// the registration of the context source), in the query's order, as a JSON object of id → sources.
/// </summary>
internal sealed record EntityMapRecord(string Tenant, string Id, string Owner, DateTimeOffset ExpiresAt, string Entries);

/// <summary>Where entity maps are kept: in the city's database, so that any node can page through a map another made.</summary>
internal interface IEntityMapStore
{
    /// <summary>Stores the map (replacing one with its id) and forgets maps that have expired.</summary>
    Task PutAsync(EntityMapRecord map, CancellationToken cancellationToken);

    /// <summary>The map, or null when there is none or it has expired.</summary>
    Task<EntityMapRecord?> GetAsync(string tenant, string id, CancellationToken cancellationToken);

    /// <summary>True when a map was deleted.</summary>
    Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken);
}

internal sealed class SqliteEntityMapStore(SqliteEntityStore entities, TimeProvider time) : IEntityMapStore
{
    public Task PutAsync(EntityMapRecord map, CancellationToken cancellationToken) => entities.RunInWriterAsync((c, tx) =>
    {
        using var prune = c.CreateCommand();
        prune.Transaction = tx;
        prune.CommandText = "DELETE FROM entity_maps WHERE expires_at <= $now";
        prune.Parameters.AddWithValue("$now", time.GetUtcNow().UtcTicks);
        prune.ExecuteNonQuery();

        using var put = c.CreateCommand();
        put.Transaction = tx;
        put.CommandText = """
            INSERT INTO entity_maps (tenant, id, owner, expires_at, entries) VALUES ($tenant, $id, $owner, $expires, $entries)
            ON CONFLICT (tenant, id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at, entries = excluded.entries
            """;
        put.Parameters.AddWithValue("$tenant", map.Tenant);
        put.Parameters.AddWithValue("$id", map.Id);
        put.Parameters.AddWithValue("$owner", map.Owner);
        put.Parameters.AddWithValue("$expires", map.ExpiresAt.UtcTicks);
        put.Parameters.AddWithValue("$entries", map.Entries);
        put.ExecuteNonQuery();
    }, cancellationToken);

    public Task<EntityMapRecord?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(entities.Read(c =>
        {
            using var get = c.CreateCommand();
            get.CommandText = "SELECT owner, expires_at, entries FROM entity_maps WHERE tenant = $tenant AND id = $id AND expires_at > $now";
            get.Parameters.AddWithValue("$tenant", tenant);
            get.Parameters.AddWithValue("$id", id);
            get.Parameters.AddWithValue("$now", time.GetUtcNow().UtcTicks);
            using var r = get.ExecuteReader();
            return r.Read() ? new EntityMapRecord(tenant, id, r.GetString(0), new DateTimeOffset(r.GetInt64(1), TimeSpan.Zero), r.GetString(2)) : null;
        }));
    }

    public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => entities.RunInWriterAsync((c, tx) =>
    {
        using var delete = c.CreateCommand();
        delete.Transaction = tx;
        delete.CommandText = "DELETE FROM entity_maps WHERE tenant = $tenant AND id = $id";
        delete.Parameters.AddWithValue("$tenant", tenant);
        delete.Parameters.AddWithValue("$id", id);
        return delete.ExecuteNonQuery() > 0;
    }, cancellationToken);
}

internal sealed class PostgresEntityMapStore(PostgresEntityStore entities, TimeProvider time) : IEntityMapStore
{
    public async Task PutAsync(EntityMapRecord map, CancellationToken cancellationToken)
    {
        await using var batch = entities.DataSource.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM entity_maps WHERE expires_at <= $1") { Parameters = { new() { Value = time.GetUtcNow().UtcTicks } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("""
            INSERT INTO entity_maps (tenant, id, owner, expires_at, entries) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant, id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at, entries = excluded.entries
            """)
        {
            Parameters = { new() { Value = map.Tenant }, new() { Value = map.Id }, new() { Value = map.Owner }, new() { Value = map.ExpiresAt.UtcTicks }, new() { Value = map.Entries } },
        });
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<EntityMapRecord?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        await using var get = entities.DataSource.CreateCommand("SELECT owner, expires_at, entries FROM entity_maps WHERE tenant = $1 AND id = $2 AND expires_at > $3");
        get.Parameters.Add(new NpgsqlParameter { Value = tenant });
        get.Parameters.Add(new NpgsqlParameter { Value = id });
        get.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow().UtcTicks });
        await using var r = await get.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new EntityMapRecord(tenant, id, r.GetString(0), new DateTimeOffset(r.GetInt64(1), TimeSpan.Zero), r.GetString(2))
            : null;
    }

    public async Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        await using var delete = entities.DataSource.CreateCommand("DELETE FROM entity_maps WHERE tenant = $1 AND id = $2");
        delete.Parameters.Add(new NpgsqlParameter { Value = tenant });
        delete.Parameters.Add(new NpgsqlParameter { Value = id });
        return await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }
}
