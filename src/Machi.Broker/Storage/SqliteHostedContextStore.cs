using System.Globalization;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>Hosted and implicitly created @contexts in the embedded database (table jsonld_contexts).</summary>
internal sealed class SqliteHostedContextStore(SqliteEntityStore entities) : IHostedContextStore, IDisposable
{
    // Context writes are rare (a client posts a context, or sends a new inline one): one connection, serialised.
    private readonly SemaphoreSlim _gate = new(1, 1);

    public async Task<IReadOnlyList<HostedContextRecord>> ListAsync(CancellationToken cancellationToken)
    {
        return await RunAsync(c =>
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
        return await RunAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT local_id, body, kind, created_at FROM jsonld_contexts WHERE local_id = $id";
            cmd.Parameters.AddWithValue("$id", localId);
            using var r = cmd.ExecuteReader();
            return r.Read() ? Read(r) : null;
        }, cancellationToken).ConfigureAwait(false);
    }

    public Task PutAsync(HostedContextRecord record, CancellationToken cancellationToken) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
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
        return await RunAsync(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DELETE FROM jsonld_contexts WHERE local_id = $id";
            cmd.Parameters.AddWithValue("$id", localId);
            return cmd.ExecuteNonQuery() > 0;
        }, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _gate.Dispose();

    private static HostedContextRecord Read(SqliteDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        Enum.TryParse<ContextKind>(r.GetString(2), out var kind) ? kind : ContextKind.Hosted,
        DateTimeOffset.Parse(r.GetString(3), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal));

    private async Task<T> RunAsync<T>(Func<SqliteConnection, T> work, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var connection = new SqliteConnection(entities.ConnectionString);
            connection.Open();
            SqliteEntityStore.Execute(connection, "PRAGMA busy_timeout=5000; PRAGMA synchronous=FULL;");
            return work(connection);
        }
        finally
        {
            _gate.Release();
        }
    }
}
