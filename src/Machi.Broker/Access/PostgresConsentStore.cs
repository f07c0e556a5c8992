using Machi.Broker.Storage.Postgres;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Access;

/// <summary>
/// Consents in PostgreSQL, the same two tables as <see cref="SqliteConsentStore"/>: <c>consents</c> with the receipts,
/// <c>consent_grants</c> one row per active (client, purpose, resident, category) for the queries' access condition.
/// Every change commits in one transaction with a NOTIFY, so every other node drops its cached grants.
/// </summary>
internal sealed class PostgresConsentStore : IConsentStore
{
    private readonly PostgresEntityStore _entities;

    public PostgresConsentStore(PostgresEntityStore entities)
    {
        _entities = entities;
        entities.ConsentsChanged += () => ChangedElsewhere?.Invoke();
    }

    public event Action? ChangedElsewhere;

    public async Task AddAsync(Consent consent, string receipt, CancellationToken cancellationToken)
    {
        await using var batch = _entities.DataSource.CreateBatch();
        batch.BatchCommands.Add(Command("""
            INSERT INTO consents (id, resident, client_id, purpose, categories, granted_at, expires_at, terms_version, receipt)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """, consent.Id, consent.Resident, consent.ClientId, consent.Purpose, consent.CategoriesText,
            consent.GrantedAt.UtcTicks, consent.ExpiresAt.UtcTicks, consent.TermsVersion, receipt));
        var categories = consent.Categories.Distinct(StringComparer.Ordinal).ToArray();
        batch.BatchCommands.Add(Command("""
            INSERT INTO consent_grants (client_id, purpose, resident, category, consent_id, expires_at)
            SELECT $1, $2, $3, unnest($4::text[]), $5, $6
            """, consent.ClientId, consent.Purpose, consent.Resident, categories, consent.Id, consent.ExpiresAt.UtcTicks));
        await ExecuteAnnouncedAsync(batch, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> RevokeAsync(string resident, string consentId, DateTimeOffset at, string receipt, CancellationToken cancellationToken)
    {
        await using var batch = _entities.DataSource.CreateBatch();
        var revoke = Command("""
            UPDATE consents SET revoked_at = $3, revocation_receipt = $4
            WHERE id = $1 AND resident = $2 AND revoked_at IS NULL
            """, consentId, resident, at.UtcTicks, receipt);
        batch.BatchCommands.Add(revoke);

        // Only the grants of a consent this statement revoked (none when it was not the resident's, or already revoked).
        batch.BatchCommands.Add(Command("""
            DELETE FROM consent_grants WHERE consent_id = $1
              AND EXISTS (SELECT 1 FROM consents WHERE id = $1 AND resident = $2 AND revoked_at = $3)
            """, consentId, resident, at.UtcTicks));
        await ExecuteAnnouncedAsync(batch, cancellationToken).ConfigureAwait(false);
        return revoke.RecordsAffected > 0;
    }

    public async Task<IReadOnlyList<Consent>> ListAsync(string resident, CancellationToken cancellationToken)
    {
        await using var cmd = _entities.DataSource.CreateCommand($"{Consent.Select} WHERE resident = $1 ORDER BY granted_at DESC, id");
        cmd.Parameters.Add(new NpgsqlParameter { Value = resident });
        return await ConsentsAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<Consent>> ActiveAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = _entities.DataSource.CreateCommand($"{Consent.Select} WHERE revoked_at IS NULL AND expires_at > $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = now.UtcTicks });
        return await ConsentsAsync(cmd, cancellationToken).ConfigureAwait(false);
    }

    public async Task<string?> ReceiptAsync(string resident, string consentId, bool revocation, CancellationToken cancellationToken)
    {
        await using var cmd = _entities.DataSource.CreateCommand(
            $"SELECT {(revocation ? "revocation_receipt" : "receipt")} FROM consents WHERE id = $1 AND resident = $2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = consentId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = resident });
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    public async Task<int> DeleteResidentAsync(string resident, CancellationToken cancellationToken)
    {
        await using var batch = _entities.DataSource.CreateBatch();
        batch.BatchCommands.Add(Command("DELETE FROM consent_grants WHERE resident = $1", resident));
        var consents = Command("DELETE FROM consents WHERE resident = $1", resident);
        batch.BatchCommands.Add(consents);
        await ExecuteAnnouncedAsync(batch, cancellationToken).ConfigureAwait(false);
        return consents.RecordsAffected;
    }


    /// <summary>Runs a change with the announcement to the other nodes (one batch: one implicit transaction, NOTIFY delivered at its commit).</summary>
    private static async Task ExecuteAnnouncedAsync(NpgsqlBatch batch, CancellationToken cancellationToken)
    {
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT pg_notify('{PostgresEntityStore.ConsentChannel}', '')"));
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<List<Consent>> ConsentsAsync(NpgsqlCommand cmd, CancellationToken cancellationToken)
    {
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<Consent>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(Consent.Read(r));
        }

        return list;
    }

    private static NpgsqlBatchCommand Command(string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(value is string[] array
                ? new NpgsqlParameter { Value = array, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text }
                : new NpgsqlParameter { Value = value });
        }

        return command;
    }
}
