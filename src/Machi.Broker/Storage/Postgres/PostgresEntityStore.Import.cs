using Machi.Ngsi.Model;
using Npgsql;

namespace Machi.Broker.Storage.Postgres;

/// <summary>The index rows of entities stored as they were (machi import), which the writer would have made one write at a time.</summary>
internal sealed partial class PostgresEntityStore
{
    private const int IndexChunk = 2_000;

    /// <summary>
    /// Writes the type, value and geo index rows and the attribute names (entities.attrs) of every stored entity in the caller's transaction, a chunk
    /// of entities per statement and table (<see cref="IndexChanges"/>, as the writer makes them). Terms come from the terms table of the same transaction.
    /// </summary>
    internal static async Task IndexAllAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        var terms = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var read = new NpgsqlCommand("SELECT iri, id FROM terms", connection, tx))
        await using (var r = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                terms[r.GetString(0)] = r.GetInt64(1);
            }
        }

        async Task<long> Term(string iri)
        {
            if (!terms.TryGetValue(iri, out var id))
            {
                await using var insert = new NpgsqlCommand("INSERT INTO terms (iri) VALUES ($1) RETURNING id", connection, tx);
                insert.Parameters.Add(new NpgsqlParameter { Value = iri });
                terms[iri] = id = (long)(await insert.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }

            return id;
        }

        var after = ("", long.MinValue);
        while (true)
        {
            // Keyset pages in the order of the (tenant, rid) key, so each page is an index range.
            var chunk = new List<(string Tenant, long Rid, Entity Entity)>();
            await using (var read = new NpgsqlCommand("SELECT tenant, rid, doc FROM entities WHERE (tenant, rid) > ($1, $2) ORDER BY tenant, rid LIMIT $3", connection, tx))
            {
                read.Parameters.Add(new NpgsqlParameter { Value = after.Item1 });
                read.Parameters.Add(new NpgsqlParameter { Value = after.Item2 });
                read.Parameters.Add(new NpgsqlParameter { Value = IndexChunk });
                await using var r = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    chunk.Add((r.GetString(0), r.GetInt64(1), EntityCodec.Decode(r.GetFieldValue<byte[]>(2))));
                }
            }

            if (chunk.Count == 0)
            {
                return;
            }

            after = (chunk[^1].Tenant, chunk[^1].Rid);
            var index = new IndexChanges();
            var attrs = new ArrayRows(
                "UPDATE entities e SET attrs = u.attrs::bigint[] FROM unnest($1::text[], $2::bigint[], $3::text[]) u(tenant, rid, attrs) WHERE e.tenant = u.tenant AND e.rid = u.rid",
                NpgsqlTypes.NpgsqlDbType.Text, NpgsqlTypes.NpgsqlDbType.Bigint, NpgsqlTypes.NpgsqlDbType.Text);
            foreach (var (tenant, rid, entity) in chunk)
            {
                var rows = IndexedRows.Of(entity);
                foreach (var name in rows.Names)
                {
                    await Term(name).ConfigureAwait(false);
                }

                index.Change(tenant, rid, IndexedRows.None, rows, terms);
                attrs.Add(tenant, rid, EntityAttrs.Literal(EntityAttrs.Ids(rows, terms)));
            }

            await using var batch = new NpgsqlBatch(connection, tx);
            index.AddTo(batch);
            attrs.AddTo(batch);
            if (batch.BatchCommands.Count > 0)
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
