using Machi.Broker.Access;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Broker.Entities;

/// <summary>
/// The entity operations of clause 5.6 over a store: each is a mutation run in the store's write transaction,
/// so checks ("does it exist?") and changes are atomic.
/// </summary>
internal sealed class EntityService(IEntityStore store, AccessPolicy access, AccessAudit audit, TimeProvider time)
{
    public DateTimeOffset Now() => time.GetUtcNow();

    public async Task RequireTenantAsync(string tenant, CancellationToken ct)
    {
        if (!await store.TenantExistsAsync(tenant, ct).ConfigureAwait(false))
        {
            throw new NgsiException(NgsiErrorType.NonexistentTenant, $"Tenant '{tenant}' does not exist.");
        }
    }

    /// <summary>An entity the caller may see; one it may not see is as missing as one that does not exist.</summary>
    public async Task<Entity> GetAsync(string tenant, string id, Caller caller, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        var entity = await store.GetAsync(tenant, id, ct).ConfigureAwait(false);
        if (entity is null || !access.CanRead(caller, EntityAccess.Of(entity)))
        {
            throw Missing(id);
        }

        await audit.RecordAsync(caller, tenant, [entity], "read").ConfigureAwait(false);
        return entity;
    }

    /// <summary>Queries on this broker as <paramref name="caller"/>: the local part of a distributed query, a join or an entity map.</summary>
    public Func<EntityQuery, CancellationToken, Task<EntityPage>> QueriesAs(string tenant, Caller caller) =>
        (query, ct) => QueryAsync(tenant, query, caller, ct);

    /// <summary>A page of the entities the caller may see, decided in the store's query (counts and pages stay right).</summary>
    public async Task<EntityPage> QueryAsync(string tenant, EntityQuery query, Caller caller, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        var page = await store.QueryAsync(tenant, query with { Access = access.FilterFor(caller) }, ct).ConfigureAwait(false);
        await audit.RecordAsync(caller, tenant, page.Entities, "query").ConfigureAwait(false);
        return page;
    }

    public async Task CreateAsync(string tenant, Entity entity, Caller caller, CancellationToken ct)
    {
        var touched = new List<(string, EntityAccess)>();
        await store.WriteOneAsync(tenant, Guard(caller, EntityWrite.Creating(entity, Create), creates: true, touched), ct).ConfigureAwait(false);
        await LogWritesAsync(caller, tenant, touched).ConfigureAwait(false);
    }

    public Task DeleteAsync(string tenant, string id, Caller caller, CancellationToken ct) =>
        WriteAsync(tenant, id, caller, Delete(id), ct);

    public Task ReplaceAsync(string tenant, Entity replacement, Caller caller, CancellationToken ct) =>
        WriteAsync(tenant, replacement.Id, caller, Replace(replacement), ct);

    public Task MergeAsync(string tenant, Entity patch, Caller caller, CancellationToken ct) =>
        WriteAsync(tenant, patch.Id, caller, Merge(patch), ct);

    public Task<UpdateResult> AppendAsync(string tenant, string id, AttributeMap attributes, bool noOverwrite, Caller caller, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributesAsync(tenant, id, caller, entity => EntityOperations.Append(entity, attributes, noOverwrite, now), ct);
    }

    public Task<UpdateResult> UpdateAsync(string tenant, string id, AttributeMap attributes, Caller caller, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributesAsync(tenant, id, caller, entity => EntityOperations.Update(entity, attributes, now), ct);
    }

    public Task PatchAttributeAsync(string tenant, string id, string name, AttributeFragment fragment, Caller caller, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributeAsync(tenant, id, name, fragment.Instance.DatasetId, caller, entity => EntityOperations.PatchAttribute(entity, name, fragment, now), ct);
    }

    public Task ReplaceAttributeAsync(string tenant, string id, string name, AttributeInstance replacement, Caller caller, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributeAsync(tenant, id, name, replacement.DatasetId, caller, entity => EntityOperations.ReplaceAttribute(entity, name, replacement, now), ct);
    }

    public Task DeleteAttributeAsync(string tenant, string id, string name, string? datasetId, bool deleteAll, Caller caller, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributeAsync(tenant, id, name, datasetId, caller, entity => EntityOperations.DeleteAttribute(entity, name, datasetId, deleteAll, now), ct);
    }

    /// <summary>Runs one mutation in an existing tenant.</summary>
    private async Task WriteAsync(string tenant, string id, Caller caller, EntityMutation mutate, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        var touched = new List<(string, EntityAccess)>();
        await store.WriteOneAsync(tenant, Guard(caller, new EntityWrite(id, mutate), creates: false, touched), ct).ConfigureAwait(false);
        await LogWritesAsync(caller, tenant, touched).ConfigureAwait(false);
    }

    /// <summary>Logs writes to residents' personal data by others than the resident (collected by <see cref="Guard"/>).</summary>
    public Task LogWritesAsync(Caller caller, string tenant, List<(string Id, EntityAccess Access)> touched) =>
        touched.Count == 0
            ? Task.CompletedTask
            : audit.LogAsync([.. touched.Select(t => audit.Record(caller, tenant, t.Id, t.Access.Owner!, "write"))]);

    /// <summary>An attribute-level change of an existing entity, stored only when something changed.</summary>
    private async Task<UpdateResult> ChangeAttributesAsync(string tenant, string id, Caller caller, Func<Entity, UpdateResult> change, CancellationToken ct)
    {
        UpdateResult? result = null;
        await WriteAsync(tenant, id, caller, Existing(id, entity =>
        {
            result = change(entity);
            return result.Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None;
        }), ct).ConfigureAwait(false);
        return result!;
    }

    /// <summary>A change of one attribute instance of an existing entity; false from the change means it is missing.</summary>
    private Task ChangeAttributeAsync(string tenant, string id, string name, string? datasetId, Caller caller, Func<Entity, bool> change, CancellationToken ct) =>
        WriteAsync(tenant, id, caller, Existing(id, entity => change(entity) ? Mutation.Put(entity) : throw MissingAttribute(id, name, datasetId)), ct);

    /// <summary>
    /// The write, run only on entities the caller may see and change, and stored only when the caller may hold what it
    /// stores: an entity it may not see is missing (or, for a creation, already there); personal data of a resident
    /// who gave the caller no consent is refused.
    /// </summary>
    public EntityWrite Guard(Caller caller, EntityWrite write, bool creates, List<(string Id, EntityAccess Access)>? touched = null) => write with
    {
        Mutate = current =>
        {
            if (current is not null)
            {
                var before = EntityAccess.Of(current);
                if (!access.CanRead(caller, before) || !access.CanWrite(caller, before))
                {
                    throw creates
                        ? new NgsiException(NgsiErrorType.AlreadyExists, $"Entity '{write.Id}' already exists.")
                        : Missing(write.Id);
                }
            }

            var mutation = write.Mutate(current);
            var after = mutation.Kind == MutationKind.Put
                ? mutation.Created?.Access ?? EntityAccess.Of(mutation.Entity)
                : EntityAccess.Of(current);
            if (mutation.Kind == MutationKind.Put && !access.CanWrite(caller, after))
            {
                throw new NgsiException(NgsiErrorType.Forbidden,
                    $"Entity '{write.Id}' would be personal data of a resident who has not consented to this service storing it.");
            }

            if (touched is not null && mutation.Kind != MutationKind.None && AccessPolicy.IsThirdParty(caller, after))
            {
                lock (touched)
                {
                    touched.Add((write.Id, after));
                }
            }

            return mutation;
        },
    };

    /// <summary>A mutation of an entity that must exist (ResourceNotFound otherwise).</summary>
    private static EntityMutation Existing(string id, Func<Entity, Mutation> change) => current => change(current ?? throw Missing(id));

    /// <summary>A new entity prepared for storing (<see cref="IEntityStore.Prepare"/>), to be written with <see cref="EntityWrite.Creating(NewEntityRows, Func{NewEntityRows, EntityMutation})"/>.</summary>
    public NewEntityRows Prepare(Entity entity) => store.Prepare(entity);

    /// <summary>Runs a batch of mutations in one transaction; per item null or the failure.</summary>
    public Task<Exception?[]> BatchAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken ct) =>
        store.WriteAsync(tenant, writes, ct);

    /// <summary>Create (5.6.1) of a prepared entity: stored where none exists, AlreadyExists otherwise.</summary>
    internal static EntityMutation Create(NewEntityRows entity) => current =>
        current is null
            ? Mutation.Create(entity)
            : throw new NgsiException(NgsiErrorType.AlreadyExists, $"Entity '{entity.Id}' already exists.");

    public static EntityMutation Delete(string id) => Existing(id, _ => Mutation.Delete);

    public EntityMutation Replace(Entity replacement)
    {
        var now = Now();
        return Existing(replacement.Id, current => Mutation.Put(EntityOperations.Replace(current, replacement, now)));
    }

    /// <summary>Merge (5.6.17) of a parsed fragment: its types are added, its scope and attributes merged.</summary>
    public EntityMutation Merge(Entity patch)
    {
        var now = Now();
        return Existing(patch.Id, entity =>
        {
            EntityOperations.Merge(entity, patch.Types, patch.Scope, patch.Attributes, now);
            return Mutation.Put(entity);
        });
    }

    /// <summary>Upsert (5.6.8) of a prepared entity: create, or replace (default) / append (options=update) when it exists.</summary>
    internal EntityMutation Upsert(NewEntityRows prepared, bool update, Action created)
    {
        var now = Now();
        return current =>
        {
            if (current is null)
            {
                created();
                return Mutation.Create(prepared);
            }

            var entity = prepared.Entity;
            if (update)
            {
                EntityOperations.Append(current, entity.Attributes, noOverwrite: false, now);
                EntityOperations.Merge(current, entity.Types, entity.Scope, new AttributeMap(), now);
                return Mutation.Put(current);
            }

            return Mutation.Put(EntityOperations.Replace(current, entity, now));
        };
    }

    /// <summary>Batch update (5.6.9): append to existing entities, honouring noOverwrite.</summary>
    public EntityMutation AppendTo(Entity fragment, bool noOverwrite)
    {
        var now = Now();
        return Existing(fragment.Id, entity =>
            EntityOperations.Append(entity, fragment.Attributes, noOverwrite, now).Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None);
    }

    public static NgsiException Missing(string id) => NgsiException.NotFound($"Entity '{id}' does not exist.");

    private static NgsiException MissingAttribute(string id, string name, string? datasetId) =>
        NgsiException.NotFound(datasetId is null
            ? $"Entity '{id}' has no attribute '{name}'."
            : $"Entity '{id}' has no attribute '{name}' with datasetId '{datasetId}'.");
}
