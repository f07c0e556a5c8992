using System.Globalization;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Registrations;

/// <summary>Registrations in the embedded database (table csource_registrations).</summary>
internal sealed class SqliteRegistrationStore(SqliteEntityStore entities) : IRegistrationStore, IDisposable
{
    // Registration writes are rare and reads are cached by the service: one connection at a time is plenty.
    private readonly SemaphoreSlim _gate = new(1, 1);

    public Task<bool> AddAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            INSERT INTO csource_registrations (tenant, id, doc, created_at, modified_at) VALUES ($tenant, $id, $doc, $created, $modified)
            ON CONFLICT (tenant, id) DO NOTHING
            """;
        Bind(cmd, tenant, registration);
        return cmd.ExecuteNonQuery() > 0;
    }, cancellationToken);

    public Task<bool> ReplaceAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE csource_registrations SET doc = $doc, modified_at = $modified WHERE tenant = $tenant AND id = $id";
        Bind(cmd, tenant, registration);
        return cmd.ExecuteNonQuery() > 0;
    }, cancellationToken);

    public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "DELETE FROM csource_registrations WHERE tenant = $tenant AND id = $id";
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        return cmd.ExecuteNonQuery() > 0;
    }, cancellationToken);

    public Task<IReadOnlyList<StoredRegistration>> ListAsync(string tenant, CancellationToken cancellationToken) => RunAsync(c =>
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT id, doc, created_at, modified_at FROM csource_registrations WHERE tenant = $tenant ORDER BY created_at, id";
        cmd.Parameters.AddWithValue("$tenant", tenant);
        using var r = cmd.ExecuteReader();
        var list = new List<StoredRegistration>();
        while (r.Read())
        {
            list.Add(new StoredRegistration(r.GetString(0), r.GetString(1), Instant(r.GetString(2)), Instant(r.GetString(3))));
        }

        return (IReadOnlyList<StoredRegistration>)list;
    }, cancellationToken);

    public void Dispose() => _gate.Dispose();

    private static void Bind(SqliteCommand cmd, string tenant, StoredRegistration registration)
    {
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", registration.Id);
        cmd.Parameters.AddWithValue("$doc", registration.Json);
        cmd.Parameters.AddWithValue("$created", NgsiText.FormatDateTime(registration.CreatedAt));
        cmd.Parameters.AddWithValue("$modified", NgsiText.FormatDateTime(registration.ModifiedAt));
    }

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);

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
