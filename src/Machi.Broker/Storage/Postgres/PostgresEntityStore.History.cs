using Machi.Ngsi.Model;
using Npgsql;

namespace Machi.Broker.Storage.Postgres;

internal sealed partial class PostgresEntityStore
{
    /// <summary>
    /// Turns the folded creations (<see cref="FoldedCreation"/>) of each entity whose earliest instance is before its
    /// cutoff (UTC ticks) into a row an instance, in <paramref name="tx"/>, before something changes single instances of
    /// their history. The delete takes the folded rows first, so of two transactions unfolding the same entity the second
    /// waits and finds none.
    /// </summary>
    internal async Task UnfoldCreationsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<(long Hid, string Tenant, long Cutoff)> entities, CancellationToken cancellationToken)
    {
        var folded = new List<(string Tenant, long Hid, long N, byte[] Doc)>();
        await using (var delete = new NpgsqlCommand("""
            DELETE FROM history h USING unnest($1::text[], $2::bigint[], $3::bigint[]) c(tenant, hid, cutoff)
            WHERE h.tenant = c.tenant AND h.hid = c.hid AND h.attr = 0 AND h.t < c.cutoff
            RETURNING h.tenant, h.hid, h.n, h.instance
            """, connection, tx))
        {
            delete.Parameters.Add(new NpgsqlParameter { Value = entities.Select(e => e.Tenant).ToArray() });
            delete.Parameters.Add(new NpgsqlParameter { Value = entities.Select(e => e.Hid).ToArray() });
            delete.Parameters.Add(new NpgsqlParameter { Value = entities.Select(e => e.Cutoff).ToArray() });
            await using var r = await delete.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                folded.Add((r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetFieldValue<byte[]>(3)));
            }
        }

        if (folded.Count == 0)
        {
            return;
        }

        var rows = folded.SelectMany(f => FoldedCreation.Unfold(f.N, f.Doc).Select(u => (f.Tenant, f.Hid, u.N, u.Row))).ToList();
        var terms = await TermIdsAsync(rows.Select(r => r.Row.Attr)).ConfigureAwait(false);
        await using var insert = new NpgsqlCommand("""
            INSERT INTO history (tenant, hid, attr, t, n, dataset_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
            SELECT tenant, hid, attr, t, n, dataset_id, kind, observed_at, at, at, value, instance, false
            FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::smallint[], $8::bigint[], $9::bigint[], $10::text[], $11::bytea[])
                AS u(tenant, hid, attr, t, n, dataset_id, kind, observed_at, at, value, instance)
            """, connection, tx);
        foreach (var column in (object[])[
            rows.Select(r => r.Tenant).ToArray(), rows.Select(r => r.Hid).ToArray(), rows.Select(r => terms[r.Row.Attr]).ToArray(),
            rows.Select(r => r.Row.Time).ToArray(), rows.Select(r => r.N).ToArray(), rows.Select(r => r.Row.DatasetId).ToArray(),
            rows.Select(r => (short)r.Row.Kind).ToArray(), rows.Select(r => r.Row.ObservedAt).ToArray(), rows.Select(r => r.Row.At).ToArray(),
            rows.Select(r => r.Row.Value).ToArray(), rows.Select(r => EntityCodec.EncodeInstance(r.Row.Instance!)).ToArray()])
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = column });
        }

        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
