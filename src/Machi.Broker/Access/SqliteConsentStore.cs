using Machi.Broker.Storage;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Access;

/// <summary>
/// Consents in the embedded database: <c>consents</c> holds each consent with its receipts; <c>consent_grants</c> one
/// row per active (client, purpose, resident, category), which queries join to decide personal entities in SQL.
/// </summary>
internal sealed class SqliteConsentStore(SqliteEntityStore entities) : IConsentStore
{
    /// <summary>One node per file: nobody else changes the consents.</summary>
    public event Action? ChangedElsewhere
    {
        add { }
        remove { }
    }

    public Task AddAsync(Consent consent, string receipt, CancellationToken cancellationToken) => entities.RunInWriterAsync((c, tx) =>
    {
        using var cmd = Command(c, tx, """
            INSERT INTO consents (id, resident, client_id, purpose, categories, granted_at, expires_at, terms_version, receipt)
            VALUES ($id, $resident, $client, $purpose, $categories, $granted, $expires, $terms, $receipt)
            """);
        cmd.Parameters.AddWithValue("$id", consent.Id);
        cmd.Parameters.AddWithValue("$resident", consent.Resident);
        cmd.Parameters.AddWithValue("$client", consent.ClientId);
        cmd.Parameters.AddWithValue("$purpose", consent.Purpose);
        cmd.Parameters.AddWithValue("$categories", consent.CategoriesText);
        cmd.Parameters.AddWithValue("$granted", consent.GrantedAt.UtcTicks);
        cmd.Parameters.AddWithValue("$expires", consent.ExpiresAt.UtcTicks);
        cmd.Parameters.AddWithValue("$terms", consent.TermsVersion);
        cmd.Parameters.AddWithValue("$receipt", receipt);
        cmd.ExecuteNonQuery();
        foreach (var category in consent.Categories.Distinct(StringComparer.Ordinal))
        {
            using var grant = Command(c, tx, """
                INSERT INTO consent_grants (client_id, purpose, resident, category, consent_id, expires_at)
                VALUES ($client, $purpose, $resident, $category, $id, $expires)
                """);
            grant.Parameters.AddWithValue("$client", consent.ClientId);
            grant.Parameters.AddWithValue("$purpose", consent.Purpose);
            grant.Parameters.AddWithValue("$resident", consent.Resident);
            grant.Parameters.AddWithValue("$category", category);
            grant.Parameters.AddWithValue("$id", consent.Id);
            grant.Parameters.AddWithValue("$expires", consent.ExpiresAt.UtcTicks);
            grant.ExecuteNonQuery();
        }

        return true;
    }, cancellationToken);

    public Task<bool> RevokeAsync(string resident, string consentId, DateTimeOffset at, string receipt, CancellationToken cancellationToken) =>
        entities.RunInWriterAsync((c, tx) =>
        {
            using var cmd = Command(c, tx, """
                UPDATE consents SET revoked_at = $at, revocation_receipt = $receipt
                WHERE id = $id AND resident = $resident AND revoked_at IS NULL
                """);
            cmd.Parameters.AddWithValue("$id", consentId);
            cmd.Parameters.AddWithValue("$resident", resident);
            cmd.Parameters.AddWithValue("$at", at.UtcTicks);
            cmd.Parameters.AddWithValue("$receipt", receipt);
            if (cmd.ExecuteNonQuery() == 0)
            {
                return false;
            }

            using var grants = Command(c, tx, "DELETE FROM consent_grants WHERE consent_id = $id");
            grants.Parameters.AddWithValue("$id", consentId);
            grants.ExecuteNonQuery();
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<Consent>> ListAsync(string resident, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<Consent>>(entities.Read(c =>
        {
            using var cmd = Command(c, null, $"{Consent.Select} WHERE resident = $resident ORDER BY granted_at DESC, id");
            cmd.Parameters.AddWithValue("$resident", resident);
            return Consents(cmd);
        }));

    public Task<IReadOnlyList<Consent>> ActiveAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<Consent>>(entities.Read(c =>
        {
            using var cmd = Command(c, null, $"{Consent.Select} WHERE revoked_at IS NULL AND expires_at > $now");
            cmd.Parameters.AddWithValue("$now", now.UtcTicks);
            return Consents(cmd);
        }));

    public Task<string?> ReceiptAsync(string resident, string consentId, bool revocation, CancellationToken cancellationToken) =>
        Task.FromResult(entities.Read(c =>
        {
            using var cmd = Command(c, null, $"SELECT {(revocation ? "revocation_receipt" : "receipt")} FROM consents WHERE id = $id AND resident = $resident");
            cmd.Parameters.AddWithValue("$id", consentId);
            cmd.Parameters.AddWithValue("$resident", resident);
            return cmd.ExecuteScalar() as string;
        }));

    public Task<int> DeleteResidentAsync(string resident, CancellationToken cancellationToken) => entities.RunInWriterAsync((c, tx) =>
    {
        using var grants = Command(c, tx, "DELETE FROM consent_grants WHERE resident = $resident");
        grants.Parameters.AddWithValue("$resident", resident);
        grants.ExecuteNonQuery();
        using var cmd = Command(c, tx, "DELETE FROM consents WHERE resident = $resident");
        cmd.Parameters.AddWithValue("$resident", resident);
        return cmd.ExecuteNonQuery();
    }, cancellationToken);


    private static List<Consent> Consents(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<Consent>();
        while (r.Read())
        {
            list.Add(Consent.Read(r));
        }

        return list;
    }

    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd;
    }
}
