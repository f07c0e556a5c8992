using System.Collections.Concurrent;

namespace Machi.Broker.Access;

/// <summary>
/// What a caller may see of personal entities, as a store renders it into a query's SQL: besides public data, internal
/// data when <see cref="Internal"/>, and personal entities owned by <see cref="Owner"/>, covered by an active consent of
/// <see cref="ConsentClient"/> for <see cref="ConsentPurpose"/>, or all of them under a declared emergency.
/// </summary>
public sealed record AccessFilter(bool Internal, string? Owner, string? ConsentClient, string? ConsentPurpose, bool AllPersonal, DateTimeOffset Now);

/// <summary>
/// The platform's one rule for reading and writing entities: open data for anyone, internal data for callers with
/// <c>ngsi:read</c> (<c>ngsi:write</c> to change it), a resident's personal data only for the resident, for a service
/// holding the resident's active consent for the entity's category and the purpose the service declares, or for staff
/// under a declared emergency (always logged). Scopes never open personal data, not even <c>ngsi:admin</c>.
/// Active consents are held in memory for point decisions and changed here when a consent is granted or revoked, so
/// a revocation takes effect on the next request.
/// </summary>
public sealed class AccessPolicy(IConsentStore consents, TimeProvider time)
{
    public const string StaffRole = "staff";

    private readonly ConcurrentDictionary<(string Client, string Purpose, string Resident, string Category), DateTimeOffset> _grants = new();
    private readonly Lock _loading = new();
    private Task? _load;
    private volatile bool _loaded;

    public DateTimeOffset Now() => time.GetUtcNow();

    /// <summary>Loads the active consents (once; on first use otherwise).</summary>
    public Task LoadAsync(CancellationToken cancellationToken)
    {
        lock (_loading)
        {
            return _load ??= LoadOnceAsync(cancellationToken);
        }
    }

    private async Task LoadOnceAsync(CancellationToken cancellationToken)
    {
        foreach (var consent in await consents.ActiveAsync(Now(), cancellationToken).ConfigureAwait(false))
        {
            Add(consent);
        }

        _loaded = true;
    }

    public void Granted(Consent consent) => Add(consent);

    public void Revoked(Consent consent)
    {
        foreach (var category in consent.Categories)
        {
            _grants.TryRemove((consent.ClientId, consent.Purpose, consent.Resident, category), out _);
        }
    }

    /// <summary>Forgets every grant of a resident (erasure).</summary>
    public void Forget(string resident)
    {
        foreach (var key in _grants.Keys.Where(k => k.Resident == resident))
        {
            _grants.TryRemove(key, out _);
        }
    }

    public bool CanRead(Caller caller, EntityAccess access) => access.Level switch
    {
        AccessLevel.Public => true,
        AccessLevel.Internal => caller.Has(Caller.ReadScope),
        _ => MaySeePersonal(caller, access),
    };

    /// <summary>Whether <paramref name="caller"/> (who holds <c>ngsi:write</c>) may change an entity with these marks.</summary>
    public bool CanWrite(Caller caller, EntityAccess access) =>
        access.Level != AccessLevel.Personal || MaySeePersonal(caller, access);

    /// <summary>True when the caller sees this personal entity only by consent or emergency, not as its owner: an access the log records.</summary>
    public static bool IsThirdParty(Caller caller, EntityAccess access) =>
        access.Level == AccessLevel.Personal && !string.Equals(caller.Subject, access.Owner, StringComparison.Ordinal);

    public AccessFilter FilterFor(Caller caller) => new(
        caller.Has(Caller.ReadScope),
        caller.Subject,
        caller.Purpose is null ? null : caller.ClientId,
        caller.Purpose,
        IsEmergency(caller),
        Now());

    /// <summary>A staff member who declared an emergency reason (break-glass).</summary>
    public static bool IsEmergency(Caller caller) =>
        caller.EmergencyReason is { Length: > 0 } && caller.Subject is not null && caller.Roles.Contains(StaffRole);

    private bool MaySeePersonal(Caller caller, EntityAccess access)
    {
        if (caller.Subject is not null && string.Equals(caller.Subject, access.Owner, StringComparison.Ordinal))
        {
            return true;
        }

        if (IsEmergency(caller))
        {
            return true;
        }

        if (caller.ClientId is null || caller.Purpose is null || access.Owner is null)
        {
            return false;
        }

        if (!_loaded)
        {
            LoadAsync(CancellationToken.None).GetAwaiter().GetResult();
        }

        return _grants.TryGetValue((caller.ClientId, caller.Purpose, access.Owner, access.Category ?? EntityAccess.DefaultCategory), out var expires)
            && expires > Now();
    }

    private void Add(Consent consent)
    {
        foreach (var category in consent.Categories)
        {
            _grants.AddOrUpdate((consent.ClientId, consent.Purpose, consent.Resident, category), consent.ExpiresAt,
                (_, existing) => existing > consent.ExpiresAt ? existing : consent.ExpiresAt);
        }
    }
}
