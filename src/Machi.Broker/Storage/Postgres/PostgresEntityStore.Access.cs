using Machi.Broker.Access;
using Machi.Ngsi.Model;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>The access marks (entities.access/owner/category) outside the writer: the residents' own entities, and the marks of entities stored before the columns existed.</summary>
internal sealed partial class PostgresEntityStore
{
    public async ValueTask<IReadOnlyList<(string Tenant, string Id)>> OwnedEntitiesAsync(string resident, CancellationToken cancellationToken)
    {
        await using var cmd = DataSource.CreateCommand("SELECT tenant, id FROM entities WHERE owner = $1 AND access = 2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = resident, NpgsqlDbType = NpgsqlDbType.Text });
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<(string, string)>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add((r.GetString(0), r.GetString(1)));
        }

        return list;
    }

    /// <summary>Converts the data of a schema step that SQL cannot (runs in the step's transaction).</summary>
    private static Task MigrateDataAsync(int version, NpgsqlConnection connection, NpgsqlTransaction tx) =>
        version == PostgresSchema.AccessVersion ? MarkAccessAsync(connection, tx) : Task.CompletedTask;

    /// <summary>
    /// Sets the access columns of entities stored before they existed: only documents naming Machi's vocabulary can
    /// differ from the default (internal). Their histories take the same marks, as SQLite's step does.
    /// </summary>
    private static async Task MarkAccessAsync(NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        var marks = new List<(string Tenant, long Rid, EntityAccess Access)>();
        await using (var all = PostgresSchema.Command("SELECT tenant, rid, doc FROM entities WHERE position($1 in doc) > 0", connection, tx))
        {
            all.Parameters.Add(new NpgsqlParameter { Value = System.Text.Encoding.UTF8.GetBytes(EntityAccess.Vocabulary), NpgsqlDbType = NpgsqlDbType.Bytea });
            await using var r = await all.ExecuteReaderAsync().ConfigureAwait(false);
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                var access = EntityAccess.Of(EntityCodec.Decode(r.GetFieldValue<byte[]>(2)));
                if (access != default)
                {
                    marks.Add((r.GetString(0), r.GetInt64(1), access));
                }
            }
        }

        if (marks.Count == 0)
        {
            return;
        }

        await using var update = PostgresSchema.Command("""
            UPDATE entities e SET access = u.access, owner = u.owner, category = u.category
            FROM unnest($1::text[], $2::bigint[], $3::smallint[], $4::text[], $5::text[]) u(tenant, rid, access, owner, category)
            WHERE e.tenant = u.tenant AND e.rid = u.rid;
            """, connection, tx);
        update.Parameters.Add(new NpgsqlParameter { Value = marks.Select(m => m.Tenant).ToArray() });
        update.Parameters.Add(new NpgsqlParameter { Value = marks.Select(m => m.Rid).ToArray() });
        update.Parameters.Add(new NpgsqlParameter { Value = marks.Select(m => (short)m.Access.Level).ToArray() });
        update.Parameters.Add(new NpgsqlParameter { Value = marks.Select(m => m.Access.Owner).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        update.Parameters.Add(new NpgsqlParameter { Value = marks.Select(m => m.Access.Category).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        await update.ExecuteNonQueryAsync().ConfigureAwait(false);
        await using var history = PostgresSchema.Command("""
            UPDATE history_entities h SET access = e.access, owner = e.owner, category = e.category
            FROM entities e WHERE e.tenant = h.tenant AND e.id = h.id AND e.access <> 0
            """, connection, tx);
        await history.ExecuteNonQueryAsync().ConfigureAwait(false);
    }
}
