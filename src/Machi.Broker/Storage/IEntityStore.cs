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

    /// <summary>
    /// What storing <paramref name="entity"/> as a new entity writes, worked out on the calling thread; the parsed entity
    /// is let go (<see cref="NewEntityRows.Release"/>), so a batch's entities do not wait in the queue as object graphs.
    /// A backend that still needs the parsed entity when the writes are queued keeps it here and lets it go in
    /// <see cref="WriteAsync"/>.
    /// </summary>
    internal NewEntityRows Prepare(Entity entity)
    {
        var rows = NewEntityRows.Of(entity);
        rows.Release();
        return rows;
    }
}

/// <summary>Decides the new state of one entity from its current state (null: it does not exist).</summary>
public delegate Mutation EntityMutation(Entity? current);

/// <summary>One entity write: the entity id and the mutation to apply to it.</summary>
public readonly record struct EntityWrite(string Id, EntityMutation Mutate)
{
    /// <summary>
    /// The entity the write creates when none exists (create, upsert), prepared for storing on the calling thread;
    /// its mutation answers <see cref="Mutation.Create"/> with it.
    /// </summary>
    internal NewEntityRows? Prepared { get; init; }

    /// <summary>A write that may create <paramref name="entity"/>: its rows are prepared now, and the mutation is made from them.</summary>
    internal static EntityWrite Creating(Entity entity, Func<NewEntityRows, EntityMutation> mutate) => Creating(NewEntityRows.Of(entity), mutate);

    /// <summary>A write that may create the prepared entity, with the mutation made from it.</summary>
    internal static EntityWrite Creating(NewEntityRows entity, Func<NewEntityRows, EntityMutation> mutate) =>
        new(entity.Id, mutate(entity)) { Prepared = entity };
}

public enum MutationKind
{
    None,
    Put,
    Delete,
}

/// <summary>What a mutation decided: keep, store the given entity, or delete.</summary>
public readonly struct Mutation
{
    private readonly Entity? _entity;

    private Mutation(MutationKind kind, Entity? entity, NewEntityRows? created)
    {
        Kind = kind;
        _entity = entity;
        Created = created;
    }

    public MutationKind Kind { get; }

    /// <summary>The entity to store (for a creation from prepared rows, decoded from them: writers use <see cref="Created"/>).</summary>
    public Entity? Entity => _entity ?? Created?.Entity;

    /// <summary>The prepared new entity when the mutation creates it where none was (<see cref="Create"/>).</summary>
    internal NewEntityRows? Created { get; }

    public static Mutation None => new(MutationKind.None, null, null);

    public static Mutation Delete => new(MutationKind.Delete, null, null);

    public static Mutation Put(Entity entity) => new(MutationKind.Put, entity, null);

    /// <summary>Stores a prepared new entity; only where no entity exists.</summary>
    internal static Mutation Create(NewEntityRows rows) => new(MutationKind.Put, null, rows);
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
