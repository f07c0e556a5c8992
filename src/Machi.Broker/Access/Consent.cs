using System.Data.Common;

namespace Machi.Broker.Access;

/// <summary>
/// A resident's opt-in: the service (OAuth client) may use the resident's data of these categories for this purpose,
/// from <see cref="GrantedAt"/> until <see cref="ExpiresAt"/> or revocation, under the given version of its terms.
/// </summary>
public sealed record Consent(
    string Id,
    string Resident,
    string ClientId,
    string Purpose,
    IReadOnlyList<string> Categories,
    DateTimeOffset GrantedAt,
    DateTimeOffset ExpiresAt,
    string TermsVersion)
{
    public DateTimeOffset? RevokedAt { get; init; }

    public bool IsActive(DateTimeOffset now) => RevokedAt is null && ExpiresAt > now;

    /// <summary>How both stores keep the categories in one column.</summary>
    internal string CategoriesText => string.Join('\n', Categories);

    /// <summary>The query both stores read consents with (<see cref="Read"/> maps its rows).</summary>
    internal const string Select =
        "SELECT id, resident, client_id, purpose, categories, granted_at, expires_at, terms_version, revoked_at FROM consents";

    /// <summary>The consent in the current row of a <see cref="Select"/>.</summary>
    internal static Consent Read(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3),
        r.GetString(4).Split('\n', StringSplitOptions.RemoveEmptyEntries),
        new DateTimeOffset(r.GetInt64(5), TimeSpan.Zero), new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero), r.GetString(7))
    {
        RevokedAt = r.IsDBNull(8) ? null : new DateTimeOffset(r.GetInt64(8), TimeSpan.Zero),
    };
}

/// <summary>Where consents live (the broker's database, so a query's SQL can join the active grants).</summary>
public interface IConsentStore
{
    /// <summary>Raised when another node may have granted or revoked consents (a shared database): cached grants are stale.</summary>
    event Action? ChangedElsewhere;

    Task AddAsync(Consent consent, string receipt, CancellationToken cancellationToken);

    /// <summary>Revokes one of <paramref name="resident"/>'s consents; false when there is no such active consent.</summary>
    Task<bool> RevokeAsync(string resident, string consentId, DateTimeOffset at, string receipt, CancellationToken cancellationToken);

    Task<IReadOnlyList<Consent>> ListAsync(string resident, CancellationToken cancellationToken);

    /// <summary>Every consent not revoked and not expired at <paramref name="now"/>.</summary>
    Task<IReadOnlyList<Consent>> ActiveAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The receipt of the grant (<paramref name="revocation"/> false) or of the revocation of a resident's consent.</summary>
    Task<string?> ReceiptAsync(string resident, string consentId, bool revocation, CancellationToken cancellationToken);

    /// <summary>Deletes every consent of a resident (erasure on request); the number deleted.</summary>
    Task<int> DeleteResidentAsync(string resident, CancellationToken cancellationToken);
}
