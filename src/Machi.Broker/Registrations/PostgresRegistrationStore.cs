using System.Globalization;
using Machi.Broker.Storage.Postgres;
using Machi.Ngsi.Model;
using Npgsql;

namespace Machi.Broker.Registrations;

/// <summary>Registrations in PostgreSQL (table csource_registrations); every statement commits on its own.</summary>
internal sealed class PostgresRegistrationStore : IRegistrationStore
{
    private readonly PostgresEntityStore entities;

    public PostgresRegistrationStore(PostgresEntityStore entities)
    {
        this.entities = entities;
        entities.RegistrationsChanged += () => ChangedElsewhere?.Invoke();
    }

    public event Action? ChangedElsewhere;

    public async Task<bool> AddAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken) => await ExecuteAsync("""
        INSERT INTO csource_registrations (tenant, id, doc, created_at, modified_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant, id) DO NOTHING
        """, cancellationToken, tenant, registration.Id, registration.Json, NgsiText.FormatDateTime(registration.CreatedAt), NgsiText.FormatDateTime(registration.ModifiedAt)).ConfigureAwait(false) > 0;

    public async Task<bool> ReplaceAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken) => await ExecuteAsync(
        "UPDATE csource_registrations SET doc = $3, modified_at = $4 WHERE tenant = $1 AND id = $2",
        cancellationToken, tenant, registration.Id, registration.Json, NgsiText.FormatDateTime(registration.ModifiedAt)).ConfigureAwait(false) > 0;

    public async Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => await ExecuteAsync(
        "DELETE FROM csource_registrations WHERE tenant = $1 AND id = $2", cancellationToken, tenant, id).ConfigureAwait(false) > 0;

    public async Task<IReadOnlyList<StoredRegistration>> ListAsync(string tenant, CancellationToken cancellationToken)
    {
        await using var cmd = entities.DataSource.CreateCommand("SELECT id, doc, created_at, modified_at FROM csource_registrations WHERE tenant = $1 ORDER BY created_at, id");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<StoredRegistration>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new StoredRegistration(r.GetString(0), r.GetString(1), Instant(r.GetString(2)), Instant(r.GetString(3))));
        }

        return list;
    }

    /// <summary>One change, announced to every node at its commit (one batch: one implicit transaction).</summary>
    private async Task<int> ExecuteAsync(string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var batch = entities.DataSource.CreateBatch();
        var change = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            change.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        batch.BatchCommands.Add(change);
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT pg_notify('{PostgresEntityStore.RegistrationChannel}', '')"));
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return change.RecordsAffected;
    }

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);
}
