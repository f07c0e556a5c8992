using System.Globalization;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Npgsql;

namespace Machi.Broker.Storage.Postgres;

/// <summary>Hosted and implicitly created @contexts in PostgreSQL (table jsonld_contexts).</summary>
internal sealed class PostgresHostedContextStore(PostgresEntityStore entities) : IHostedContextStore
{
    private const string Columns = "local_id, body, kind, created_at";

    public async Task<IReadOnlyList<HostedContextRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var cmd = entities.DataSource.CreateCommand($"SELECT {Columns} FROM jsonld_contexts ORDER BY created_at, local_id");
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<HostedContextRecord>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(Read(r));
        }

        return list;
    }

    public async Task<HostedContextRecord?> GetAsync(string localId, CancellationToken cancellationToken)
    {
        await using var cmd = entities.DataSource.CreateCommand($"SELECT {Columns} FROM jsonld_contexts WHERE local_id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = localId });
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(r) : null;
    }

    public async Task PutAsync(HostedContextRecord record, CancellationToken cancellationToken)
    {
        await using var cmd = entities.DataSource.CreateCommand("""
            INSERT INTO jsonld_contexts (local_id, kind, body, created_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (local_id) DO UPDATE SET kind = excluded.kind, body = excluded.body, created_at = excluded.created_at
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = record.LocalId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = record.Kind.ToString() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = record.Json });
        cmd.Parameters.Add(new NpgsqlParameter { Value = NgsiText.FormatDateTime(record.CreatedAt) });
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> DeleteAsync(string localId, CancellationToken cancellationToken)
    {
        await using var cmd = entities.DataSource.CreateCommand("DELETE FROM jsonld_contexts WHERE local_id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = localId });
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    private static HostedContextRecord Read(NpgsqlDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        Enum.TryParse<ContextKind>(r.GetString(2), out var kind) ? kind : ContextKind.Hosted,
        DateTimeOffset.Parse(r.GetString(3), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal));
}
