using Machi.Ngsi.Model;
using Machi.Ngsi.Query;

namespace Machi.Broker.Storage;

/// <summary>
/// Where entities live. A backend (embedded SQLite today, PostgreSQL later) implements reads, paged queries and
/// one write primitive: run a mutation against the current state of an entity inside a durable transaction.
/// Every entity operation of the API is such a mutation, so backends never grow operation-specific code.
/// A completed write task means the change is committed to disk.
/// </summary>
public interface IEntityStore : IAsyncDisposable
{
    Task InitializeAsync(CancellationToken cancellationToken);

    ValueTask<Entity?> GetAsync(string tenant, string id, CancellationToken cancellationToken);

    ValueTask<bool> TenantExistsAsync(string tenant, CancellationToken cancellationToken);

    ValueTask<EntityPage> QueryAsync(string tenant, EntityQuery query, CancellationToken cancellationToken);

    /// <summary>The entity types and attribute names in use in a tenant, with counts (discovery, clauses 5.7.5–5.7.10).</summary>
    ValueTask<EntityCatalog> DescribeAsync(string tenant, CatalogQuery query, CancellationToken cancellationToken);

    /// <summary>Runs each mutation (in order) in one transaction; each succeeds or fails on its own.</summary>
    /// <returns>Per item: null on success, else the exception the mutation threw (nothing of it was kept).</returns>
    Task<Exception?[]> WriteAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken cancellationToken);

    ValueTask<long> CountAsync(CancellationToken cancellationToken);

    /// <summary>(tenant, id) of every personal entity <paramref name="resident"/> owns, over all tenants (export and erasure).</summary>
    ValueTask<IReadOnlyList<(string Tenant, string Id)>> OwnedEntitiesAsync(string resident, CancellationToken cancellationToken);

    /// <summary>
    /// The change log: every committed entity change, in commit order, after <paramref name="afterSeq"/> (at most
    /// <paramref name="max"/>). It is written in the same transaction as the change, so a consumer that keeps its
    /// own position misses nothing across crashes. Changes stay until <see cref="PruneChangesAsync"/> drops them.
    /// </summary>
    ValueTask<IReadOnlyList<EntityChange>> ReadChangesAsync(long afterSeq, int max, CancellationToken cancellationToken);

    /// <summary>The sequence number of the last committed change (0 when none).</summary>
    long LastChangeSeq { get; }

    /// <summary>Completes when a change after <paramref name="afterSeq"/> is committed (at once if one already is).</summary>
    Task WaitForChangeAsync(long afterSeq, CancellationToken cancellationToken);

    /// <summary>Drops the changes up to and including <paramref name="throughSeq"/>.</summary>
    ValueTask PruneChangesAsync(long throughSeq, CancellationToken cancellationToken);

    ValueTask<bool> PingAsync(CancellationToken cancellationToken);
}

/// <summary>Decides the new state of one entity from its current state (null: it does not exist).</summary>
public delegate Mutation EntityMutation(Entity? current);

/// <summary>One entity write: the entity id and the mutation to apply to it.</summary>
/// <param name="NewEntity">The entity the mutation stores when none exists yet (create, upsert); what storing it
/// writes is worked out ahead by the caller in <see cref="Prepared"/>, so the single writer does not have to.</param>
public readonly record struct EntityWrite(string Id, EntityMutation Mutate, Entity? NewEntity = null)
{
    /// <summary>The stored form, index and history rows of <see cref="NewEntity"/>, used when the write creates it.</summary>
    internal NewEntityRows? Prepared { get; init; }

    /// <summary>A write that will store <paramref name="entity"/> if it is new, its rows prepared now on the calling thread.</summary>
    public static EntityWrite Creating(Entity entity, EntityMutation mutate) =>
        new(entity.Id, mutate, entity) { Prepared = NewEntityRows.Of(entity) };

    /// <summary>The prepared rows when the mutation stored <see cref="NewEntity"/> where no entity was.</summary>
    internal NewEntityRows? PreparedFor(Entity? current, Entity stored) =>
        current is null && ReferenceEquals(stored, NewEntity) ? Prepared : null;
}

public enum MutationKind
{
    None,
    Put,
    Delete,
}

/// <summary>What a mutation decided: keep, store the given entity, or delete.</summary>
public readonly record struct Mutation(MutationKind Kind, Entity? Entity)
{
    public static Mutation None => new(MutationKind.None, null);

    public static Mutation Delete => new(MutationKind.Delete, null);

    public static Mutation Put(Entity entity) => new(MutationKind.Put, entity);
}

/// <summary>A paged entity query: which entities (names and types expanded IRIs) and which page of them.</summary>
public sealed record EntityQuery(EntityFilter Filter)
{
    public int Limit { get; init; } = 20;

    public int Offset { get; init; }

    public bool Count { get; init; }

    /// <summary>Which entities the caller may see (null: no restriction, for the platform's own work).</summary>
    public Access.AccessFilter? Access { get; init; }
}

public enum ChangeKind
{
    Created = 1,
    Updated = 2,
    Deleted = 3,
}

/// <summary>One committed change of one entity; the states are in <see cref="EntityCodec"/>'s form.</summary>
public sealed record EntityChange(long Seq, string Tenant, string EntityId, ChangeKind Kind, byte[]? Before, byte[]? After, DateTimeOffset At)
{
    public Entity? BeforeEntity() => Before is null ? null : EntityCodec.Decode(Before);

    public Entity? AfterEntity() => After is null ? null : EntityCodec.Decode(After);
}

public sealed record EntityPage(IReadOnlyList<Entity> Entities, long? TotalCount);

public static class EntityStoreExtensions
{
    /// <summary>Runs one mutation; rethrows its failure.</summary>
    public static Task WriteOneAsync(this IEntityStore store, string tenant, string id, EntityMutation mutate, CancellationToken cancellationToken) =>
        store.WriteOneAsync(tenant, new EntityWrite(id, mutate), cancellationToken);

    /// <summary>Runs one write; rethrows its failure.</summary>
    public static async Task WriteOneAsync(this IEntityStore store, string tenant, EntityWrite write, CancellationToken cancellationToken)
    {
        var results = await store.WriteAsync(tenant, [write], cancellationToken).ConfigureAwait(false);
        if (results[0] is { } error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }
}
