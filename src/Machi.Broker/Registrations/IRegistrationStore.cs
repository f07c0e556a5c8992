namespace Machi.Broker.Registrations;

/// <summary>
/// Where context source registrations live, per tenant. A registration is kept as its JSON document (names expanded);
/// the service reads and checks it. Writes are durable when their task completes.
/// </summary>
public interface IRegistrationStore
{
    /// <summary>Raised when another node may have changed the registrations (a shared database): caches are stale.</summary>
    event Action? ChangedElsewhere;

    /// <summary>Adds a registration; false when one with the same id exists in the tenant.</summary>
    Task<bool> AddAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken);

    /// <summary>Replaces a registration; false when there is none with its id.</summary>
    Task<bool> ReplaceAsync(string tenant, StoredRegistration registration, CancellationToken cancellationToken);

    Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken);

    /// <summary>Every registration of a tenant, oldest first.</summary>
    Task<IReadOnlyList<StoredRegistration>> ListAsync(string tenant, CancellationToken cancellationToken);
}

/// <summary>A registration as stored: id, JSON document and system timestamps.</summary>
public sealed record StoredRegistration(string Id, string Json, DateTimeOffset CreatedAt, DateTimeOffset ModifiedAt);
