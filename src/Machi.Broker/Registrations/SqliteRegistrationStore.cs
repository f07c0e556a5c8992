using System.Globalization;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Registrations;

/// <summary>Registrations in the embedded database (table csource_registrations).</summary>
internal sealed class SqliteRegistrationStore(SqliteEntityStore entities) : IRegistrationStore
{
    /// <summary>One node per file: nobody else changes the registrations.</summary>
    public event Action? ChangedElsewhere
    {
        add { }
        remove { }
    }

    public Task<bool> AddAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT INTO csource_registrations (tenant, id, doc, created_at, modified_at) VALUES ($tenant, $id, $doc, $created, $modified)
            ON CONFLICT (tenant, id) DO NOTHING
            """;
        Bind(cmd, tenant, registration);
        return cmd.ExecuteNonQuery() > 0;
    }, cancellationToken);

    public Task<bool> ReplaceAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE csource_registrations SET doc = $doc, modified_at = $modified WHERE tenant = $tenant AND id = $id";
        Bind(cmd, tenant, registration);
        return cmd.ExecuteNonQuery() > 0;
    }, cancellationToken);

    public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "DELETE FROM csource_registrations WHERE tenant = $tenant AND id = $id";
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", id);
        return cmd.ExecuteNonQuery() > 0;
    }, cancellationToken);

    public Task<IReadOnlyList<StoredRegistration>> ListAsync(string tenant, CancellationToken cancellationToken) => ReadAsync(c =>
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

    private static void Bind(SqliteCommand cmd, string tenant, StoredRegistration registration)
    {
        cmd.Parameters.AddWithValue("$tenant", tenant);
        cmd.Parameters.AddWithValue("$id", registration.Id);
        cmd.Parameters.AddWithValue("$doc", registration.Json);
        cmd.Parameters.AddWithValue("$created", NgsiText.FormatDateTime(registration.CreatedAt));
        cmd.Parameters.AddWithValue("$modified", NgsiText.FormatDateTime(registration.ModifiedAt));
    }

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);

    private Task<T> ReadAsync<T>(Func<SqliteConnection, T> read, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(entities.Read(read));
    }

    /// <summary>Writes in the entity store's writer transaction: one writer for the whole database.</summary>
    private Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken cancellationToken) =>
        entities.RunInWriterAsync(work, cancellationToken);
}
