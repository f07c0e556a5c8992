using System.Globalization;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>Hosted and implicitly created @contexts in the embedded database (table jsonld_contexts).</summary>
internal sealed class SqliteHostedContextStore(SqliteEntityStore entities) : IHostedContextStore
{
    public async Task<IReadOnlyList<HostedContextRecord>> ListAsync(CancellationToken cancellationToken)
    {
        return await ReadAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT local_id, body, kind, created_at FROM jsonld_contexts ORDER BY created_at, local_id";
            using var r = cmd.ExecuteReader();
            var list = new List<HostedContextRecord>();
            while (r.Read())
            {
                list.Add(Read(r));
            }

            return (IReadOnlyList<HostedContextRecord>)list;
        }, cancellationToken).ConfigureAwait(false);
    }

    public async Task<HostedContextRecord?> GetAsync(string localId, CancellationToken cancellationToken)
    {
        return await ReadAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT local_id, body, kind, created_at FROM jsonld_contexts WHERE local_id = $id";
            cmd.Parameters.AddWithValue("$id", localId);
            using var r = cmd.ExecuteReader();
            return r.Read() ? Read(r) : null;
        }, cancellationToken).ConfigureAwait(false);
    }

    public Task PutAsync(HostedContextRecord record, CancellationToken cancellationToken) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT INTO jsonld_contexts (local_id, kind, body, created_at) VALUES ($id, $kind, $body, $at)
            ON CONFLICT (local_id) DO UPDATE SET kind = excluded.kind, body = excluded.body, created_at = excluded.created_at
            """;
        cmd.Parameters.AddWithValue("$id", record.LocalId);
        cmd.Parameters.AddWithValue("$kind", record.Kind.ToString());
        cmd.Parameters.AddWithValue("$body", record.Json);
        cmd.Parameters.AddWithValue("$at", NgsiText.FormatDateTime(record.CreatedAt));
        return cmd.ExecuteNonQuery();
    }, cancellationToken);

    public async Task<bool> DeleteAsync(string localId, CancellationToken cancellationToken)
    {
        return await WriteAsync((c, tx) =>
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "DELETE FROM jsonld_contexts WHERE local_id = $id";
            cmd.Parameters.AddWithValue("$id", localId);
            return cmd.ExecuteNonQuery() > 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    private static HostedContextRecord Read(SqliteDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        Enum.TryParse<ContextKind>(r.GetString(2), out var kind) ? kind : ContextKind.Hosted,
        DateTimeOffset.Parse(r.GetString(3), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal));

    private Task<T> ReadAsync<T>(Func<SqliteConnection, T> read, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(entities.Read(read));
    }

    /// <summary>Writes in the entity store's writer transaction: one writer for the whole database.</summary>
    private Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken cancellationToken) =>
        entities.RunInWriterAsync(work, cancellationToken);
}
