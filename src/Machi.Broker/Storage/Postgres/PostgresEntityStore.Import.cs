using Machi.Ngsi.Model;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>The index rows of entities stored as they were (machi import), which the writer would have made one write at a time.</summary>
internal sealed partial class PostgresEntityStore
{
    private const int IndexChunk = 2_000;

    /// <summary>
    /// Writes the type, attribute, value and geo index rows of every stored entity in the caller's transaction, a chunk
    /// of entities per statement and table (the rows of <see cref="PostgresValueRows"/> and <see cref="PostgresGeo"/>,
    /// as the writer makes them). Terms come from the terms table of the same transaction.
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
            var types = new Rows<long>();
            var attrs = new Rows<long>();
            var numbers = new Rows<double>();
            var strings = new Rows<string>();
            var geo = new Rows<byte[]?>();
            foreach (var (tenant, rid, entity) in chunk)
            {
                foreach (var type in entity.Types.Distinct(StringComparer.Ordinal))
                {
                    types.Add(tenant, await Term(type).ConfigureAwait(false), rid, 0);
                }

                foreach (var name in entity.Attributes.Keys)
                {
                    attrs.Add(tenant, await Term(name).ConfigureAwait(false), rid, 0);
                }

                foreach (var row in PostgresValueRows.Rows(entity))
                {
                    var term = await Term(row.Attribute).ConfigureAwait(false);
                    if (row.Text is null)
                    {
                        numbers.Add(tenant, row.Instant ? -term : term, rid, row.Number);
                    }
                    else
                    {
                        strings.Add(tenant, term, rid, row.Text);
                    }
                }

                foreach (var row in PostgresGeo.Rows(entity))
                {
                    geo.Add(tenant, await Term(row.Attribute).ConfigureAwait(false), rid, row.Wkb);
                }
            }

            await using var batch = new NpgsqlBatch(connection, tx);
            types.Insert(batch, "INSERT INTO entity_types (tenant, type, rid) SELECT t, a, r FROM unnest($1::text[], $2::bigint[], $3::bigint[]) u(t, a, r) ON CONFLICT DO NOTHING", null);
            attrs.Insert(batch, "INSERT INTO entity_attrs (tenant, name, rid) SELECT t, a, r FROM unnest($1::text[], $2::bigint[], $3::bigint[]) u(t, a, r) ON CONFLICT DO NOTHING", null);
            numbers.Insert(batch, "INSERT INTO entity_numbers (tenant, attr, value, rid) SELECT t, a, v, r FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[]) u(t, a, r, v) ON CONFLICT DO NOTHING",
                NpgsqlDbType.Array | NpgsqlDbType.Double);
            strings.Insert(batch, "INSERT INTO entity_strings (tenant, attr, value, rid) SELECT t, a, v, r FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) u(t, a, r, v) ON CONFLICT DO NOTHING",
                NpgsqlDbType.Array | NpgsqlDbType.Text);
            geo.Insert(batch, $"""
                INSERT INTO entity_geo (tenant, rid, attr, geog)
                SELECT t, r, a, CASE WHEN v IS NULL THEN NULL ELSE {PostgresGeo.Geography("v")} END
                FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) u(t, a, r, v)
                ON CONFLICT (tenant, rid, attr) DO NOTHING
                """, NpgsqlDbType.Array | NpgsqlDbType.Bytea);
            if (batch.BatchCommands.Count > 0)
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Index rows of one table, column by column (sent as arrays, unnested by the INSERT).</summary>
    private sealed class Rows<TValue>
    {
        private readonly List<string> _tenants = [];
        private readonly List<long> _terms = [];
        private readonly List<long> _rids = [];
        private readonly List<TValue> _values = [];

        public void Add(string tenant, long term, long rid, TValue value)
        {
            _tenants.Add(tenant);
            _terms.Add(term);
            _rids.Add(rid);
            _values.Add(value);
        }

        /// <param name="valueType">The type of the fourth array; null when the rows have no value (types, attributes).</param>
        public void Insert(NpgsqlBatch batch, string sql, NpgsqlDbType? valueType)
        {
            if (_tenants.Count == 0)
            {
                return;
            }

            var command = new NpgsqlBatchCommand(sql);
            command.Parameters.Add(new NpgsqlParameter { Value = _tenants.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            command.Parameters.Add(new NpgsqlParameter { Value = _terms.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            command.Parameters.Add(new NpgsqlParameter { Value = _rids.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            if (valueType is { } type)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = _values.ToArray(), NpgsqlDbType = type });
            }

            batch.BatchCommands.Add(command);
        }
    }
}
