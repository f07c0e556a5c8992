using System.Collections.Concurrent;

namespace Machi.Broker.Access;

/// <summary>
/// What a caller may see of personal entities, as a store renders it into a query's SQL: besides public data, internal
/// data when <see cref="Internal"/>, and personal entities owned by <see cref="Owner"/>, covered by an active consent of
/// <see cref="ConsentClient"/> for <see cref="ConsentPurpose"/>, or all of them under a declared emergency.
/// </summary>
public sealed record AccessFilter(bool Internal, string? Owner, string? ConsentClient, string? ConsentPurpose, bool AllPersonal, DateTimeOffset Now)
{
    /// <summary>
    /// The condition on entities <c>e</c> (columns access, owner, category) every backend adds to a query, so counts
    /// and pages are those of the visible entities only; personal entities covered by a consent are found through
    /// consent_grants' primary key (client, purpose, resident, category). The SQL is the same in SQLite and
    /// PostgreSQL; <paramref name="parameter"/> binds a value (text or UTC ticks) and returns its placeholder.
    /// </summary>
    public string Condition(Func<object, string> parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        var allowed = new List<string> { "e.access = 1" };
        if (Internal)
        {
            allowed.Add("e.access = 0");
        }

        if (AllPersonal)
        {
            allowed.Add("e.access = 2");
        }
        else
        {
            if (Owner is not null)
            {
                allowed.Add($"(e.access = 2 AND e.owner = {parameter(Owner)})");
            }

            if (ConsentClient is not null && ConsentPurpose is not null)
            {
                allowed.Add(
                    $"(e.access = 2 AND EXISTS (SELECT 1 FROM consent_grants g WHERE g.client_id = {parameter(ConsentClient)} " +
                    $"AND g.purpose = {parameter(ConsentPurpose)} AND g.resident = e.owner AND g.category = e.category " +
                    $"AND g.expires_at > {parameter(Now.UtcTicks)}))");
            }
        }

        return $"({string.Join(" OR ", allowed)})";
    }
}

/// <summary>
/// The platform's one rule for reading and writing entities: open data for anyone, internal data for callers with
/// <c>ngsi:read</c> (<c>ngsi:write</c> to change it), a resident's personal data only for the resident, for a service
/// holding the resident's active consent for the entity's category and the purpose the service declares, or for staff
/// under a declared emergency (always logged). Scopes never open personal data, not even <c>ngsi:admin</c>.
/// Active consents are held in memory for point decisions and changed here when a consent is granted or revoked, so
/// a revocation takes effect on the next request. When several nodes share the database, a change made through
/// another node is announced (<see cref="IConsentStore.ChangedElsewhere"/>): the grants are then read again, and
/// decisions wait for that reading.
/// </summary>
public sealed class AccessPolicy
{
    public const string StaffRole = "staff";

    private readonly IConsentStore _consents;
    private readonly TimeProvider _time;
    private readonly Lock _loading = new();
    private volatile ConcurrentDictionary<(string Client, string Purpose, string Resident, string Category), DateTimeOffset> _grants = new();
    private Task? _load;
    private volatile bool _loaded;

    // Counts changes (here or announced); a reading that saw the count move meanwhile is read again.
    private int _changes;

    public AccessPolicy(IConsentStore consents, TimeProvider time)
    {
        _consents = consents;
        _time = time;
        consents.ChangedElsewhere += Stale;
    }

    public DateTimeOffset Now() => _time.GetUtcNow();

    /// <summary>Loads the active consents (once, and again after another node changed them; on first use otherwise).</summary>
    public Task LoadAsync(CancellationToken cancellationToken)
    {
        lock (_loading)
        {
            // A reading that failed (the database was unreachable) is tried again by the next caller.
            if (_load is { IsCompleted: true, IsCompletedSuccessfully: false })
            {
                _load = null;
            }

            return _load ??= LoadOnceAsync(cancellationToken);
        }
    }

    private async Task LoadOnceAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var seen = Volatile.Read(ref _changes);
            var grants = new ConcurrentDictionary<(string Client, string Purpose, string Resident, string Category), DateTimeOffset>();
            foreach (var consent in await _consents.ActiveAsync(Now(), cancellationToken).ConfigureAwait(false))
            {
                Add(grants, consent);
            }

            lock (_loading)
            {
                if (seen == _changes)
                {
                    _grants = grants;
                    _loaded = true;
                    return;
                }
            }
        }
    }

    /// <summary>Another node changed the consents (listener thread): decisions wait for the grants read again.</summary>
    private void Stale()
    {
        lock (_loading)
        {
            Interlocked.Increment(ref _changes);
            _loaded = false;
            _load = null;
        }

        _ = LoadAsync(CancellationToken.None).ContinueWith(
            t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }

    public void Granted(Consent consent)
    {
        Interlocked.Increment(ref _changes);
        Add(_grants, consent);
    }

    public void Revoked(Consent consent)
    {
        Interlocked.Increment(ref _changes);
        foreach (var category in consent.Categories)
        {
            _grants.TryRemove((consent.ClientId, consent.Purpose, consent.Resident, category), out _);
        }
    }

    /// <summary>Forgets every grant of a resident (erasure).</summary>
    public void Forget(string resident)
    {
        Interlocked.Increment(ref _changes);
        var grants = _grants;
        foreach (var key in grants.Keys.Where(k => k.Resident == resident))
        {
            grants.TryRemove(key, out _);
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

    private static void Add(ConcurrentDictionary<(string Client, string Purpose, string Resident, string Category), DateTimeOffset> grants, Consent consent)
    {
        foreach (var category in consent.Categories)
        {
            grants.AddOrUpdate((consent.ClientId, consent.Purpose, consent.Resident, category), consent.ExpiresAt,
                (_, existing) => existing > consent.ExpiresAt ? existing : consent.ExpiresAt);
        }
    }
}
